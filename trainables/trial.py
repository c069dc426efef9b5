"""The Ray Tune trainable: one grid point trained, evaluated, explained and logged to MLflow.

`run_trial(config, datasets)` is a plain function of the trial's config (see sweep.config for its
sections) and the prepared datasets that the driver shares through Ray's object store.
"""

from __future__ import annotations

import logging
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray import tune

from sweep.config import CounterfactualSettings, ExplainSettings, FaultSettings, TrainSettings
from trainables.data import PreparedDataset, load_vectors
from trainables.explain import explain as explain_split
from trainables.model import AttentionClassifier
from trainables.tracking import TrialRun, run_name
from trainables.train import EarlyStopping, classification_metrics, make_optimizer, predict, train_epoch

log = logging.getLogger(__name__)
CHECKPOINT_FILE = "trial_state.pt"


@dataclass
class TrialState:
    """Everything needed to continue a trial after a restore, saved in every epoch's checkpoint."""

    epoch: int  # last finished epoch, -1 before the first
    model: dict
    optimizer: dict
    stopping: EarlyStopping
    done_training: bool = False
    train_seconds: float = 0.0


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


def build_model(
    config: dict[str, Any], train: TrainSettings, data: PreparedDataset, device: torch.device
) -> AttentionClassifier:
    vectors = (
        load_vectors(train.vectors, data.vocab, train.embed_dim, config["seed"]) if train.vectors else None
    )
    model = AttentionClassifier(
        vocab_size=len(data.vocab),
        embed_dim=train.embed_dim,
        hidden_size=train.hidden_size,
        encoder=config["encoder"],
        attention=config["attention"],
        normalizer=config["normalizer"],
        pretrained=vectors,
    )
    return model.to(device)


def restore_state() -> TrialState | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / CHECKPOINT_FILE, weights_only=False)


def report_epoch(metrics: dict[str, float], state: TrialState) -> None:
    """Report one epoch to Tune with a checkpoint holding the whole trial state."""
    with tempfile.TemporaryDirectory() as folder:
        torch.save(state, Path(folder) / CHECKPOINT_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def run_trial(config: dict[str, Any], datasets: dict[str, PreparedDataset]) -> None:
    """Train with early stopping, evaluate on test, explain, and log everything to MLflow and Tune."""
    train = TrainSettings(**config["train"])
    explain = ExplainSettings(**config["explain"])
    counterfactual = CounterfactualSettings(**config["counterfactual"])
    faults = FaultSettings(**config["faults"])
    data = datasets[config["dataset"]]
    seed_everything(config["seed"])
    device = choose_device()
    model = build_model(config, train, data, device)
    optimizer = make_optimizer(model, train.lr, train.weight_decay)
    state = restore_state()
    run = TrialRun(config["tracking"], config, trial_id=tune.get_context().get_trial_id())
    try:
        run.set_tags({"device": device.type, "node_ip": ray.util.get_node_ip_address()})
        if faults.fail_trial == run_name(config):
            raise RuntimeError(f"trial {faults.fail_trial} failed on purpose (faults.fail_trial)")
        if state is None:
            state = TrialState(-1, {}, {}, EarlyStopping(train.patience))
        else:
            model.load_state_dict(state.model)
            optimizer.load_state_dict(state.optimizer)
        logged_epochs = run.logged_steps("train/loss")
        for epoch in range(state.epoch + 1, train.max_epochs):
            if state.done_training:
                break
            started = time.perf_counter()
            rng = np.random.default_rng([config["seed"], epoch])
            loss = train_epoch(model, optimizer, data.splits["train"], train.batch_size, rng, device)
            val = data.splits["validation"]
            val_auc = classification_metrics(val.labels, predict(model, val, train.batch_size, device))["auc"]
            state.stopping.update(epoch, val_auc, model)
            state.epoch, state.done_training = epoch, state.stopping.should_stop
            state.model, state.optimizer = model.state_dict(), optimizer.state_dict()
            state.train_seconds += time.perf_counter() - started
            metrics = {"epoch": epoch, "train/loss": loss, "val/auc": val_auc}
            if model.normalizer.alpha is not None:
                metrics["alpha"] = model.normalizer.alpha
            if epoch not in logged_epochs:
                run.log_metrics(metrics, step=epoch)
            report_epoch(metrics, state)
            if epoch == faults.fail_after_epoch and not run.resumed:
                raise RuntimeError(f"trial failed on purpose after epoch {epoch} (faults.fail_after_epoch)")

        model.load_state_dict(state.stopping.best_state)
        test = data.splits["test"]
        probs = predict(model, test, train.batch_size, device)
        final = {f"test/{k}": v for k, v in classification_metrics(test.labels, probs).items()}
        final.update(
            best_epoch=state.stopping.best_epoch,
            best_val_auc=state.stopping.best_auc,
            epochs_trained=state.epoch + 1,
            **{"time/train_s": state.train_seconds},
        )
        explanation = explain_split(model, test, explain, counterfactual, device, config["seed"])
        final.update(explanation.metrics)
        with tempfile.TemporaryDirectory() as folder:
            torch.save(
                {"state_dict": model.state_dict(), "vocab": data.vocab, "config": config},
                Path(folder) / "model.pt",
            )
            explanation.instances.to_parquet(Path(folder) / "instances.parquet", index=False)
            explanation.tokens.to_parquet(Path(folder) / "tokens.parquet", index=False)
            for name in ("model.pt", "instances.parquet", "tokens.parquet"):
                run.log_artifact(Path(folder) / name)
        run.log_metrics(final)
        run.finish("FINISHED")
    except Exception:
        run.fail(traceback.format_exc())
        raise
    tune.report(final)
