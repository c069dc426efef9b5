"""The Ray Tune trainable: one grid point trained, evaluated, explained and logged to MLflow.

`run_trial(config, datasets, vectors, embedding_info)` is a plain function of the trial's config (the grid
axes, the settings sections of `trainables.settings` and the MLflow `tracking` details) and what the driver
prepared once for every trial and shares through Ray's object store: the datasets (keyed by
`settings.dataset_key`: as words, or as a pretrained encoder's word pieces), and the initial word vectors
with the info of their build (`trainables.embeddings.build_vectors`).
"""

from __future__ import annotations

import logging
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray import tune

from trainables.data import PreparedDataset
from trainables.embeddings import WordVectors, embedding_matrix
from trainables.examples import build_examples, choose_examples, write_examples
from trainables.explain import explain as explain_split
from trainables.model import AttentionClassifier, encoder_options
from trainables.settings import (
    CLASS_NAMES,
    PRETRAINED_ENCODERS,
    CounterfactualSettings,
    ExplainSettings,
    TrainSettings,
    dataset_key,
    run_name,
)
from trainables.tracking import TrialRun, best_effort
from trainables.train import EarlyStopping, classification_metrics, make_training, predict, train_epoch

log = logging.getLogger(__name__)
CHECKPOINT_FILE = "trial_state.pt"


class CheckpointError(RuntimeError):
    """A trial checkpoint that cannot be read back."""


@dataclass
class TrialState:
    """Everything needed to continue a trial after a restore, saved in every epoch's checkpoint as a
    plain dict of numbers and tensors (loaded with `weights_only=True`: no pickled classes, no code)."""

    epoch: int  # last finished epoch, -1 before the first
    model: dict
    optimizer: dict
    stopping: EarlyStopping
    done_training: bool = False
    train_seconds: float = 0.0
    scheduler: dict = field(default_factory=dict)  # the learning-rate schedule's state; {} without one

    def to_checkpoint(self) -> dict:
        return {
            "epoch": self.epoch,
            "model": self.model,
            "optimizer": self.optimizer,
            "stopping": self.stopping.state_dict(),
            "done_training": self.done_training,
            "train_seconds": self.train_seconds,
            "scheduler": self.scheduler,
        }

    @classmethod
    def from_checkpoint(cls, saved: dict) -> TrialState:
        return cls(**{**saved, "stopping": EarlyStopping.from_state_dict(saved["stopping"])})


@dataclass(frozen=True)
class TrialHooks:
    """Calls at fixed points of a trial, for tests that make trials fail on purpose; sweeps pass none."""

    before_training: Callable[[dict[str, Any]], None] | None = None  # (config)
    after_epoch: Callable[[dict[str, Any], int, bool], None] | None = None  # (config, epoch, resumed run)
    after_finish: Callable[[dict[str, Any]], None] | None = None  # (config), once its run is FINISHED


def choose_device() -> torch.device:
    """CUDA when Ray gave this trial a GPU and torch sees one, else CPU (warning if a GPU was given)."""
    if ray.get_gpu_ids():
        if torch.cuda.is_available():
            return torch.device("cuda")
        log.warning("Ray assigned GPU(s) %s but torch sees no CUDA device; using the CPU", ray.get_gpu_ids())
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def token_counts(data: PreparedDataset) -> dict[str, int]:
    """How often each vocabulary word occurs in the training split, premises and hypotheses for pairs
    (`<unk>` for every word outside it)."""
    train = data.splits["train"]
    counts = np.bincount(
        np.concatenate([*train.tokens, *(train.hypotheses or [])]), minlength=len(data.vocab)
    )
    return {word: int(count) for word, count in zip(data.vocab, counts, strict=True) if count}


def build_model(
    config: dict[str, Any],
    train: TrainSettings,
    data: PreparedDataset,
    vectors: WordVectors | None,
    device: torch.device,
) -> tuple[AttentionClassifier, dict[str, float]]:
    """The model, its embedding initialised from `vectors` (None: the model's own random init), and the
    share of the vocabulary ("vocab") and of the training tokens ("tokens") that got a vector. A pretrained
    encoder keeps its own embeddings: no vectors, coverage 0."""
    pretrained, coverage = None, {"vocab": 0.0, "tokens": 0.0}
    if vectors is not None and config["encoder"] not in PRETRAINED_ENCODERS:
        pretrained, coverage = embedding_matrix(
            vectors, data.vocab, train.embed_dim, config["seed"], token_counts(data)
        )
    model = AttentionClassifier(
        vocab_size=len(data.vocab),
        embed_dim=train.embed_dim,
        hidden_size=train.hidden_size,
        encoder=config["encoder"],
        attention=config["attention"],
        normalizer=config["normalizer"],
        pretrained=pretrained,
        num_classes=data.num_classes,
        pair=data.splits["train"].is_pair,
        **encoder_options(config["encoder"], train, data.special),
    )
    return model.to(device), coverage


def restore_state() -> TrialState | None:
    """The state of the trial's last checkpoint, or None for a fresh trial."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return load_state(Path(folder) / CHECKPOINT_FILE)


def load_state(path: Path) -> TrialState:
    """A saved `TrialState`, loaded with `weights_only=True`; anything unreadable is one `CheckpointError`."""
    try:
        return TrialState.from_checkpoint(torch.load(path, weights_only=True))
    except Exception as error:  # a missing, truncated or foreign file: say which, in one line
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {reason}") from None


def report_epoch(metrics: dict[str, float], state: TrialState) -> None:
    """Report one epoch to Tune with a checkpoint holding the whole trial state."""
    with tempfile.TemporaryDirectory() as folder:
        torch.save(state.to_checkpoint(), Path(folder) / CHECKPOINT_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def run_trial(
    config: dict[str, Any],
    datasets: dict[str, PreparedDataset],
    vectors: WordVectors | None,
    embedding_info: dict[str, Any],
    hooks: TrialHooks | None = None,
) -> None:
    """Train with early stopping, evaluate on test, explain, and log everything to MLflow and Tune.

    Any error after the MLflow run exists (model building and checkpoint restore included) marks the run
    FAILED with `traceback.txt` before Ray retries or gives up on the trial; if MLflow fails at that, the
    trial's own error is still the one raised.
    """
    hooks = hooks or TrialHooks()
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # no "Checkpoint successfully created" per epoch
    run = TrialRun(config["tracking"], config, trial_id=tune.get_context().get_trial_id())
    if run.finished:  # done before a crash: report what it logged, log nothing twice
        tune.report(run.logged_metrics())
        return
    try:
        data = datasets[dataset_key(config["dataset"], config["encoder"])]
        final = train_and_explain(config, data, vectors, embedding_info, run, hooks)
        run.log_metrics(final)
        run.finish("FINISHED")
    except Exception:
        best_effort(lambda: run.fail(traceback.format_exc()), f"mark MLflow run {run.run_id} FAILED")
        raise
    if hooks.after_finish:
        hooks.after_finish(config)
    tune.report(final)


def train_and_explain(
    config: dict[str, Any],
    data: PreparedDataset,
    vectors: WordVectors | None,
    embedding_info: dict[str, Any],
    run: TrialRun,
    hooks: TrialHooks,
) -> dict[str, float]:
    """The trial's work inside its MLflow run: returns the final metrics (artifacts are logged here)."""
    train = TrainSettings(**config["train"])
    seed_everything(config["seed"])
    device = choose_device()
    tags = {
        "device": device.type,
        "node_ip": ray.util.get_node_ip_address(),
        "node_id": ray.get_runtime_context().get_node_id(),  # tells nodes apart that share an address
        "embeddings_cached": str(embedding_info["cached"]).lower(),  # loaded from the store, not trained
    }
    if embedding_info["key"] is not None:  # word2vec: the build's name in the store
        tags["embeddings_key"] = embedding_info["key"]
    run.set_tags(tags)
    model, coverage = build_model(config, train, data, vectors, device)
    optimizer, scheduler = make_training(model, config["encoder"], train, len(data.splits["train"]))
    state = restore_state()
    if state is None:
        state = TrialState(-1, {}, {}, EarlyStopping(train.patience))
    else:
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        if scheduler is not None:
            scheduler.load_state_dict(state.scheduler)
    if hooks.before_training:
        hooks.before_training(config)
    logged_epochs = run.logged_steps("train/loss")
    for epoch in range(state.epoch + 1, train.max_epochs):
        if state.done_training:
            break
        started = time.perf_counter()
        rng = np.random.default_rng([config["seed"], epoch])
        loss = train_epoch(
            model,
            optimizer,
            data.splits["train"],
            train.batch_size,
            rng,
            device,
            scheduler,
            train.mixed_precision,
        )
        val = data.splits["validation"]
        val_auc = classification_metrics(val.labels, predict(model, val, train.batch_size, device))["auc"]
        state.stopping.update(epoch, val_auc, model)
        state.epoch, state.done_training = epoch, state.stopping.should_stop
        state.model, state.optimizer = model.state_dict(), optimizer.state_dict()
        state.scheduler = {} if scheduler is None else scheduler.state_dict()
        state.train_seconds += time.perf_counter() - started
        metrics = {"epoch": epoch, "train/loss": loss, "val/auc": val_auc}
        if model.normalizer.alpha is not None:
            metrics["alpha"] = model.normalizer.alpha
        if epoch not in logged_epochs:
            run.log_metrics(metrics, step=epoch)
        report_epoch({**metrics, "epochs_without_gain": state.stopping.epochs_without_gain}, state)
        if hooks.after_epoch:
            hooks.after_epoch(config, epoch, run.resumed)

    model.load_state_dict(state.stopping.best_state)
    test = data.splits["test"]
    probs = predict(model, test, train.batch_size, device)
    final = {f"test/{k}": v for k, v in classification_metrics(test.labels, probs).items()}
    final.update(
        best_epoch=state.stopping.best_epoch,
        best_val_auc=state.stopping.best_auc,
        epochs_trained=state.epoch + 1,
        **{
            "embeddings/vocab_coverage": coverage["vocab"],
            "embeddings/token_coverage": coverage["tokens"],
            **{f"data/dropped/{reason}": count for reason, count in data.dropped.items()},
            **{f"data/{split}_size": len(rows) for split, rows in data.splits.items()},
            "time/embeddings_s": embedding_info["seconds"],
            "time/train_s": state.train_seconds,
        },
    )
    explain = ExplainSettings(**config["explain"])
    counterfactual = CounterfactualSettings(**config["counterfactual"])
    explanation = explain_split(model, test, explain, counterfactual, device, config["seed"])
    final.update(explanation.metrics)
    vocab = np.array(data.vocab, dtype=object)
    explanation.tokens["words"] = [list(vocab[ids]) for ids in explanation.tokens["token_ids"]]
    if "hypothesis_ids" in explanation.tokens:
        explanation.tokens["hypothesis_words"] = [
            list(vocab[ids]) for ids in explanation.tokens["hypothesis_ids"]
        ]
    with tempfile.TemporaryDirectory() as folder:
        torch.save(
            {"state_dict": model.state_dict(), "vocab": data.vocab, "config": config},
            Path(folder) / "model.pt",
        )
        explanation.instances.to_parquet(Path(folder) / "instances.parquet", index=False)
        explanation.tokens.to_parquet(Path(folder) / "tokens.parquet", index=False)
        class_names = CLASS_NAMES[config["dataset"]]
        examples = build_examples(
            choose_examples(explanation.instances, class_names),
            explanation.instances,
            explanation.tokens,
            class_names=class_names,
        )
        title = f"{run_name(config)}: what each measure ranks high in {len(examples)} test instances"
        write_examples(examples, title, Path(folder))
        for name in (
            "model.pt",
            "instances.parquet",
            "tokens.parquet",
            "explanations.html",
            "explanations.png",
        ):
            run.log_artifact(Path(folder) / name)
    return final
