"""Initial word vectors in a sweep: built once in a Ray task, cached in the storage path, reused by a second
sweep and by a resume, rebuilt when a setting changes, and the coverage each trial logs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from sweep.config import SweepConfig, load_preset, parse_config
from sweep.runner import SweepOptions, SweepResult, resume_sweep, run_sweep
from tests.helpers import POSITIVE, fail_once_after_epoch_0, sentiment_rows, write_sst_splits
from trainables.data import PreparedDataset, Split, tokenize
from trainables.embeddings import WordVectors
from trainables.settings import TrainSettings
from trainables.trial import TrialHooks, build_model, token_counts

TINY_WORD2VEC = {"source": "word2vec", "window": 2, "min_count": 1, "epochs": 1}  # trains in a second
SAME_METRICS = ("test/accuracy", "test/auc", "best_val_auc", "kendall/attn_grad/all/mean")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_sst_splits(tmp_path_factory.mktemp("data"))


def smoke_config(name: str, **sections: dict) -> SweepConfig:
    """The smoke preset with one trial (softmax), a short counterfactual search and `sections` replaced."""
    raw = load_preset("smoke").to_dict()
    raw.update(name=name, counterfactual={"steps": 5, "permutations": 3}, **sections)
    raw["grid"]["normalizer"] = ["softmax"]
    return parse_config(raw, "test")


def only_run(result: SweepResult):
    runs = MlflowClient(result.tracking_uri).search_runs([result.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    return runs[0]


def cache_entries(options: SweepOptions) -> list[str]:
    return sorted(path.stem for path in Path(options.embeddings_store()).glob("*.npz"))


# --- the coverage a trial computes ---------------------------------------------------------------------


def test_build_model_reports_the_hand_counted_coverage():
    vocab = ["<pad>", "<unk>", "good", "bad", "film"]
    train = Split([np.array([2, 3, 4]), np.array([2, 2, 1])], np.array([1, 0]))  # good x3, bad, film, <unk>
    data = PreparedDataset("sst2", vocab, {"train": train})
    assert token_counts(data) == {"<unk>": 1, "good": 3, "bad": 1, "film": 1}
    vectors = WordVectors(["zebra", "good"], np.array([[9, 9], [1, 2]], dtype=np.float32))
    settings = TrainSettings(embed_dim=2, hidden_size=2)
    config = {"encoder": "lstm", "attention": "tanh", "normalizer": "softmax", "seed": 1}
    model, coverage = build_model(config, settings, data, vectors, torch.device("cpu"))
    assert coverage == {"vocab": 1 / 3, "tokens": 3 / 6}  # good: 1 of 3 words, 3 of 6 training tokens
    weights = model.embedding.weight.detach()
    assert weights[2].tolist() == [1, 2] and weights[0].tolist() == [0, 0]
    _, coverage = build_model(config, settings, data, None, torch.device("cpu"))
    assert coverage == {"vocab": 0.0, "tokens": 0.0}


# --- sweeps ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def word2vec_sweeps(ray_cluster, data_dir, tmp_path_factory) -> tuple[SweepOptions, dict[str, SweepResult]]:
    """Three sweeps sharing one storage path: word2vec, the same again, and with another window."""
    options = SweepOptions(data_dir=data_dir, output_dir=tmp_path_factory.mktemp("out"))
    results = {
        name: run_sweep(smoke_config(name, embeddings=TINY_WORD2VEC | changes), options)
        for name, changes in (("first", {}), ("again", {}), ("wider", {"window": 3}))
    }
    return options, results


@pytest.mark.ray
def test_a_word2vec_sweep_runs_end_to_end_and_logs_the_coverage(word2vec_sweeps):
    _, results = word2vec_sweeps
    first = results["first"]
    assert first.failed == 0 and first.embeddings["cached"] is False
    run = only_run(first)
    assert run.data.tags["embeddings_cached"] == "false"
    assert run.data.tags["embeddings_key"] == first.embeddings["key"]
    assert run.data.params["embeddings.source"] == "word2vec" and run.data.params["embeddings.window"] == "2"
    metrics = run.data.metrics
    # min_count 1 over the training split: every vocabulary word has a vector (sst2 keeps every word)
    assert metrics["embeddings/vocab_coverage"] == metrics["embeddings/token_coverage"] == 1.0
    assert metrics["time/embeddings_s"] == first.embeddings["seconds"] > 0


@pytest.mark.ray
def test_a_second_sweep_loads_the_cached_vectors_and_gets_the_same_metrics(word2vec_sweeps):
    options, results = word2vec_sweeps
    first, again = results["first"], results["again"]
    assert again.embeddings["cached"] is True and again.embeddings["key"] == first.embeddings["key"]
    assert only_run(again).data.tags["embeddings_cached"] == "true"
    assert cache_entries(options) == sorted({first.embeddings["key"], results["wider"].embeddings["key"]})
    first_metrics, again_metrics = only_run(first).data.metrics, only_run(again).data.metrics
    for name in SAME_METRICS:  # same seed, same vectors: the same trial
        assert first_metrics[name] == again_metrics[name], name


@pytest.mark.ray
def test_a_changed_word2vec_setting_builds_new_vectors(word2vec_sweeps):
    _, results = word2vec_sweeps
    wider, first = results["wider"], results["first"]
    assert wider.embeddings["cached"] is False and wider.embeddings["key"] != first.embeddings["key"]
    assert only_run(wider).data.tags["embeddings_key"] == wider.embeddings["key"]


@pytest.mark.ray
def test_a_resumed_sweep_loads_its_vectors_instead_of_training(ray_cluster, data_dir, tmp_path):
    config = smoke_config("resumed", embeddings=TINY_WORD2VEC, resources={"max_failures": 0})
    options = SweepOptions(data_dir=data_dir, output_dir=tmp_path)
    failed = run_sweep(config, options, hooks=TrialHooks(after_epoch=fail_once_after_epoch_0))
    assert failed.failed == 1 and failed.embeddings["cached"] is False
    resumed = resume_sweep("resumed", options)
    assert resumed.failed == 0 and resumed.embeddings["cached"] is True
    assert resumed.embeddings["key"] == failed.embeddings["key"]
    assert cache_entries(options) == [failed.embeddings["key"]]  # trained once
    run = only_run(resumed)  # the failed trial's run, continued from its checkpoint after epoch 0
    assert run.data.tags["embeddings_cached"] == "true"
    history = MlflowClient(resumed.tracking_uri).get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == [0, 1]


@pytest.mark.ray
def test_a_vec_file_gives_the_coverage_counted_from_the_training_file(ray_cluster, data_dir, tmp_path):
    vec = tmp_path / "positive.vec"
    rng = np.random.default_rng(0)
    vec.write_text("".join(f"{word} {' '.join(map(str, rng.normal(size=32)))}\n" for word in POSITIVE))
    config = smoke_config("vec", embeddings={"source": str(vec)})
    result = run_sweep(config, SweepOptions(data_dir=data_dir, output_dir=tmp_path / "out"))
    assert result.failed == 0 and result.embeddings | {"seconds": 0} == {
        "source": str(vec),
        "key": None,
        "cached": False,
        "words": len(POSITIVE),
        "seconds": 0,
    }
    tokens = [t for document in tokenize([text for text, _ in sentiment_rows(240, 0)]) for t in document]
    metrics = only_run(result).data.metrics
    assert metrics["embeddings/vocab_coverage"] == len(POSITIVE) / len(set(tokens))
    assert metrics["embeddings/token_coverage"] == sum(t in POSITIVE for t in tokens) / len(tokens)
