"""End to end: the smoke preset through a real local Ray cluster into a real MLflow sqlite store."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.image import imread
from mlflow.tracking import MlflowClient

from analysis import analyze, load_instances
from analysis.figures import agreement_figure, density_figure
from sweep.config import ConfigError, load_config, load_preset, parse_config, with_overrides
from sweep.runner import SweepOptions, run_sweep
from tests.helpers import (
    check_page,
    sentiment_rows,
    write_csv,
    write_nli_splits,
    write_sst_splits,
    write_tiny_distilbert,
)
from trainables import registry
from trainables.examples import choose_examples
from trainables.pretrained import load_tokenizer
from trainables.registry import ATTRIBUTION_METHODS
from trainables.settings import CLASS_NAMES

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_sst_splits(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def smoke(smoke_sweep):
    """The smoke preset run once, and what it printed: the session's run (conftest.py), shared with
    test_analysis.py; tests below only read its MLflow store."""
    return smoke_sweep


def documented_metrics(labels: tuple[str, ...] = ("all", "0", "1")) -> set[str]:
    """Every final metric name docs/METRICS.md promises for a trial without attributions, with the per-class
    metrics of `labels`."""
    names = {
        f"time/{phase}_s"
        for phase in (
            "embeddings",
            "train",
            "gradient",
            "loo",
            "faithfulness",
            "correlation",
            "chance",
            "adversarial",
            "permutation",
        )
    }
    names |= {"embeddings/vocab_coverage", "embeddings/token_coverage"}
    names |= {f"data/{split}_size" for split in ("train", "validation", "test")}
    names |= {
        f"data/dropped/{split}_{why}"
        for split in ("train", "validation", "test")
        for why in ("empty", "too_long")
    }
    for label in labels:
        for measure in ("kendall", "topk_avg", "topk_nz", "topk_ns_avg", "topk_ns_nz"):
            for pair in ("attn_grad", "attn_loo", "grad_loo"):
                stats = ("mean", "std", "n_nan", "chance", *(("sig_frac",) if measure == "kendall" else ()))
                names |= {f"{measure}/{pair}/{label}/{stat}" for stat in stats}
        names |= {f"attention/{label}/{stat}" for stat in ("nonzero_mean", "nonzero_ratio")}
        names |= {
            f"adversarial/{label}/{stat}"
            for stat in ("jsd_mean", "jsd_median", "frac_jsd_ge_05", "frac_infeasible")
        }
        names |= {f"permutation/{label}/{stat}" for stat in ("diff_mean", "diff_median", "frac_diff_lt_001")}
        names |= {
            f"{erasure}/{order}/{label}/{stat}"
            for erasure in ("comprehensiveness", "sufficiency")
            for order in ("attn", "grad", "loo", "random")
            for stat in ("mean", "std")
        }
    return names


def test_every_trial_finishes_with_its_own_mlflow_run(smoke):
    result, _, _ = smoke
    assert result.failed == 0 and list(result.summary["status"]) == ["FINISHED", "FINISHED"]
    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([result.experiment_id])
    assert sorted(r.info.run_name for r in runs) == [
        "sst2-lstm-tanh-softmax-s1",
        "sst2-lstm-tanh-sparsemax-s1",
    ]
    for run in runs:
        assert run.info.status == "FINISHED"
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert {tags[k] for k in ("dataset", "encoder", "attention", "seed", "sweep")} == {
            "sst2",
            "lstm",
            "tanh",
            "1",
            "smoke",
        }
        assert tags["normalizer"] in run.info.run_name and tags["device"] == "cpu"
        assert tags["embeddings_cached"] == "false" and "embeddings_key" not in tags  # random init
        assert metrics["embeddings/vocab_coverage"] == metrics["embeddings/token_coverage"] == 0.0
        assert params["train.max_epochs"] == "2" and params["train.embed_dim"] == "32"
        for name in ("test/accuracy", "test/f1", "test/auc", "best_val_auc", "time/train_s"):
            assert name in metrics
        assert documented_metrics() <= set(metrics), sorted(documented_metrics() - set(metrics))
        assert metrics["epochs_trained"] == 2
        history = client.get_metric_history(run.info.run_id, "train/loss")
        assert sorted(m.step for m in history) == [0, 1]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert artifacts == {
            "model.pt",
            "instances.parquet",
            "tokens.parquet",
            "explanations.html",
            "explanations.png",
        }


def test_every_run_carries_its_explanation_page_and_faithfulness(smoke, tmp_path):
    """The page holds one row per measure per chosen instance, with the values of the run's
    `tokens.parquet`; `instances.parquet` holds each measure's faithfulness, whose means are the metrics."""
    result, _, _ = smoke
    client = MlflowClient(result.tracking_uri)
    for run in client.search_runs([result.experiment_id]):
        folder = tmp_path / run.info.run_id
        files = {
            name: Path(client.download_artifacts(run.info.run_id, name, str(folder)))
            for name in ("explanations.html", "explanations.png", "tokens.parquet", "instances.parquet")
        }
        tokens = pd.read_parquet(files["tokens.parquet"])
        instances = pd.read_parquet(files["instances.parquet"])
        columns = {name: name for name in ("attention", "gradient", "loo", "adv_attention")}
        sections = check_page(files["explanations.html"].read_text(), tokens, columns)
        assert [section["index"] for section in sections] == [
            choice.index for choice in choose_examples(instances, CLASS_NAMES["sst2"])
        ]
        words = tokens.set_index("index").loc[sections[0]["index"], "words"]
        assert len(words) == len(sections[0]["rows"]["attention"]) and all(isinstance(w, str) for w in words)
        assert imread(files["explanations.png"]).shape[1] == 15 * 150
        for order in ("attn", "grad", "loo", "random"):
            for erasure in ("comprehensiveness", "sufficiency"):
                values = instances[f"{erasure}_{order}"]
                assert values.notna().all() and values.between(-1, 1).all()
                logged = run.data.metrics[f"{erasure}/{order}/all/mean"]
                assert logged == pytest.approx(values.mean(), abs=1e-12)
                curves = np.stack(instances[f"{erasure}_curve_{order}"])
                assert curves.shape == (len(instances), 9)
        assert run.data.metrics["time/faithfulness_s"] > 0


def test_a_sweep_prints_one_line_per_trial_per_epoch_and_none_of_ray_tunes_tables(smoke):
    *_, printed = smoke
    lines = printed.splitlines()
    assert lines[0].startswith("2 trials, at most 2 at a time; a line per trial per epoch")
    epoch_line = re.compile(
        r"\[ *\d+(m\d\ds)?s?\] (?P<trial>\S+) epoch (?P<epoch>\d)/≤2 loss \d\.\d{3} val AUC \d\.\d{3} "
        r"no gain [0-2]/2 \| [0-2]/2 done, (~\d+(m\d\d)?s left|time left not known yet)$"
    )
    epochs = sorted((m["trial"], m["epoch"]) for m in map(epoch_line.match, lines) if m)
    trials = ["sst2-lstm-tanh-softmax-s1", "sst2-lstm-tanh-sparsemax-s1"]
    assert epochs == [(trial, epoch) for trial in trials for epoch in "12"]
    finished = [line for line in lines if " finished in " in line]
    assert len(finished) == 2 and all(", 2 epochs, test accuracy 0." in line for line in finished)
    assert finished[-1].endswith("| 2/2 done, ~0s left")
    assert len(lines) == 7, printed  # the header, 4 epochs, 2 trials finished: no table or config dump


def test_the_same_config_and_seed_give_the_same_metrics(smoke, ray_cluster, tmp_path):
    result, options, _ = smoke
    config = load_preset("smoke")
    config = dataclasses.replace(config, grid=dataclasses.replace(config.grid, normalizer=("sparsemax",)))
    config = with_overrides(config, name="smoke-again")
    again = run_sweep(config, dataclasses.replace(options, output_dir=tmp_path))
    client = MlflowClient(result.tracking_uri)
    first = client.search_runs([result.experiment_id], "attributes.run_name = 'sst2-lstm-tanh-sparsemax-s1'")[
        0
    ]
    second = MlflowClient(again.tracking_uri).search_runs([again.experiment_id])[0]
    for name in ("test/accuracy", "test/auc", "best_val_auc"):
        assert first.data.metrics[name] == second.data.metrics[name]


def test_an_existing_experiment_is_not_silently_overwritten(smoke):
    _, options, _ = smoke
    with pytest.raises(
        ConfigError,
        match="experiment .smoke. already exists at .*; pass --resume smoke to continue it or --overwrite",
    ):
        run_sweep(load_preset("smoke"), options)


def test_every_encoder_and_normalizer_runs_end_to_end(ray_cluster, data_dir, tmp_path):
    """The encoders and normalizers the smoke sweep (lstm × softmax, sparsemax) leaves out, crossed: six
    trials of `smoke_wide` instead of its fifteen (every combination's forward pass is in test_model.py)."""
    config = load_preset("smoke_wide")
    grid = dataclasses.replace(
        config.grid, encoder=("cnn", "average"), normalizer=("entmax15", "alpha_entmax", "uniform")
    )
    result = run_sweep(
        dataclasses.replace(config, grid=grid), SweepOptions(data_dir=data_dir, output_dir=tmp_path)
    )
    assert result.failed == 0 and len(result.summary) == 6
    client = MlflowClient(result.tracking_uri)
    runs = {r.info.run_name: r for r in client.search_runs([result.experiment_id])}
    assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs.values())
    for encoder in ("cnn", "average"):
        alpha = client.get_metric_history(runs[f"sst2-{encoder}-tanh-alpha_entmax-s1"].info.run_id, "alpha")
        assert [m.step for m in alpha] == [0] and 1.0 < alpha[0].value < 2.0
        uniform = runs[f"sst2-{encoder}-tanh-uniform-s1"].data.metrics
        assert uniform["attention/all/nonzero_ratio"] == 1.0
        sparse = runs[f"sst2-{encoder}-tanh-entmax15-s1"].data.metrics
        assert "topk_nz/attn_loo/all/mean" in sparse and "adversarial/all/jsd_mean" in sparse


def test_the_transformer_and_a_local_distilbert_run_end_to_end_into_the_analysis(
    ray_cluster, data_dir, tmp_path
):
    """A transformer trained from scratch and a tiny random DistilBERT saved in a local folder (nothing
    downloaded), through Ray Tune, MLflow and the analysis: every measure, correlation and counterfactual,
    DistilBERT's over word pieces (captum's attributions on both: test_transformers.py)."""
    pretrained = write_tiny_distilbert(tmp_path / "tiny-distilbert")
    raw = load_preset("smoke_wide").to_dict()
    raw.update(name="transformers", grid={**raw["grid"], "encoder": ["transformer", "distilbert"]})
    raw["grid"]["normalizer"] = ["softmax"]
    raw["train"]["pretrained"] = str(pretrained)
    config = parse_config(raw, "test")
    out = tmp_path / "out"
    result = run_sweep(config, SweepOptions(data_dir=data_dir, output_dir=out))
    assert result.failed == 0
    client = MlflowClient(result.tracking_uri)
    runs = {run.info.run_name: run for run in client.search_runs([result.experiment_id])}
    assert sorted(runs) == ["sst2-distilbert-tanh-softmax-s1", "sst2-transformer-tanh-softmax-s1"]
    for run in runs.values():
        missing = documented_metrics() - set(run.data.metrics)
        assert run.info.status == "FINISHED" and not missing, sorted(missing)
        assert run.data.params["train.pretrained"] == str(pretrained)
    bert = runs["sst2-distilbert-tanh-softmax-s1"].info.run_id
    tokens = pd.read_parquet(client.download_artifacts(bert, "tokens.parquet", str(tmp_path)))
    texts = pd.read_csv(data_dir / "sst2" / "test.csv")["text"].tolist()  # 60 rows: all kept, in order
    pieces = load_tokenizer(str(pretrained))(texts, add_special_tokens=False)["input_ids"]
    assert [list(row) for row in tokens["token_ids"]] == pieces  # explained over word pieces
    for measure in ("attention", "gradient", "loo", "adv_attention"):
        assert [len(row) for row in tokens[measure]] == [len(row) for row in pieces], measure
    folder = analyze(config.name, result.tracking_uri, out / "analysis")
    for table in ("table1_kendall_softmax", "agreement_all_pairs", "counterfactual", "model_quality"):
        rows = pd.read_csv(folder / "tables" / f"{table}.csv")
        assert set(rows["encoder"]) == {"transformer", "distilbert"}, table
        assert rows.filter(like="mean").notna().all().all(), table
    for encoder in ("transformer", "distilbert"):
        for figure in ("density", "counterfactual"):
            assert (folder / "figures" / f"{figure}_sst2-{encoder}-tanh-softmax.png").exists()


def test_binary_versions_of_multiclass_datasets_run_end_to_end(ray_cluster, tmp_path):
    root = tmp_path / "data"
    for name, classes in (("ag_news", 4), ("20news_sports", 20)):
        for seed, split in enumerate(("train", "test")):
            rows = [(text, i % classes) for i, (text, _) in enumerate(sentiment_rows(40 * classes, seed))]
            write_csv(root / name / f"{split}.csv", rows)
    config = load_preset("smoke_wide")
    grid = dataclasses.replace(
        config.grid, dataset=("ag_news", "20news_sports"), encoder=("lstm",), normalizer=("softmax",)
    )
    config = dataclasses.replace(config, name="datasets", grid=grid)
    result = run_sweep(config, SweepOptions(data_dir=root, output_dir=tmp_path / "out"))
    assert result.failed == 0 and sorted(result.summary["trial"]) == [
        "20news_sports-lstm-tanh-softmax-s1",
        "ag_news-lstm-tanh-softmax-s1",
    ]


@pytest.fixture(scope="module")
def xai_sweep(ray_cluster, data_dir, tmp_path_factory):
    """The smoke preset with every attribution method (few IG steps, few LIME samples, a short
    counterfactual search), run once for the two tests below, and its analysis."""
    raw = load_preset("smoke").to_dict()
    raw["name"] = "smoke-xai"
    raw["explain"].update(attributions=list(ATTRIBUTION_METHODS), ig_steps=4, lime_samples=16)
    raw["counterfactual"].update(steps=5, permutations=3)
    out = tmp_path_factory.mktemp("xai")
    path = out / "smoke-xai.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    result = run_sweep(config, SweepOptions(data_dir=data_dir, output_dir=out))
    assert result.failed == 0
    return config, result, analyze(config.name, result.tracking_uri, out / "analysis")


def test_the_smoke_preset_with_attributions_logs_every_pair_and_token_vector(xai_sweep, tmp_path):
    _, result, _ = xai_sweep
    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([result.experiment_id])
    assert len(runs) == 2
    measures = ["attn", "grad", "loo", "ig", "dl", "lime"]
    pairs = [f"{a}_{b}" for i, a in enumerate(measures) for b in measures[i + 1 :]]
    for run in runs:
        metrics = run.data.metrics
        assert run.data.params["explain.attributions"] == "('integrated_gradients', 'deeplift', 'lime')"
        for pair in pairs:
            assert f"kendall/{pair}/all/mean" in metrics, pair
            assert f"topk_avg/{pair}/all/n_nan" in metrics, pair
        for method in ("integrated_gradients", "deeplift", "lime"):
            assert metrics[f"time/{method}_s"] > 0
        folder = client.download_artifacts(run.info.run_id, "tokens.parquet", str(tmp_path))
        tokens = pd.read_parquet(folder)
        for method in ("integrated_gradients", "deeplift", "lime"):
            assert [len(v) for v in tokens[method]] == [len(t) for t in tokens["token_ids"]]


def test_the_analysis_of_a_sweep_with_attributions_shows_every_pair(xai_sweep):
    config, result, folder = xai_sweep
    every_pair = registry.pairs(ATTRIBUTION_METHODS)
    assert len(every_pair) == 15
    topk = pd.read_csv(folder / "tables" / "table2_topk.csv")
    agreement = pd.read_csv(folder / "tables" / "agreement_all_pairs.csv")
    for pair in every_pair:
        assert {f"topk_avg/{pair.name}/0/mean", f"topk_nz/{pair.name}/1/mean"} <= set(topk["metric"]), pair
        rows = agreement[agreement["metric"] == f"kendall/{pair.name}/all/mean"]
        assert len(rows) == 2, pair  # one per normalizer
        assert (rows["n_seeds"] == 1).all() and rows["mean"].notna().all(), pair
    timing = set(pd.read_csv(folder / "tables" / "timing.csv")["metric"])
    assert {f"time/{method}_s" for method in ATTRIBUTION_METHODS} | {"time/faithfulness_s"} <= timing
    faithfulness = pd.read_csv(folder / "tables" / "faithfulness.csv")
    measures = registry.measures(ATTRIBUTION_METHODS)
    assert list(dict.fromkeys(faithfulness["measure"])) == [measure.label for measure in measures]
    assert faithfulness["mean"].notna().all() and faithfulness["chance"].notna().all()
    for name in ("sst2-lstm-tanh-softmax", "sst2-lstm-tanh-sparsemax"):
        assert (folder / "figures" / f"density_{name}.png").exists()
        assert (folder / "figures" / f"agreement_{name}.png").exists()
        assert (folder / "figures" / f"examples_{name}.png").exists()
    setting = {"dataset": "sst2", "encoder": "lstm", "attention": "tanh", "normalizer": "softmax"}
    instances = load_instances(config.name, result.tracking_uri)
    legends = {
        text.get_text().split(" (")[0]
        for ax in density_figure(instances, setting).axes
        for text in ax.get_legend().get_texts()
    }
    assert legends == {pair.label for pair in every_pair}
    matrix = agreement_figure(instances, setting).axes[0]
    assert len(matrix.texts) == 2 * len(every_pair)  # each pair's mean, above and below the diagonal


def test_a_pair_task_runs_end_to_end_into_the_analysis(ray_cluster, tmp_path):
    """The nli_smoke preset on generated SNLI-format pairs: three classes through training, every measure,
    the MLflow runs (metrics per class 0-2, the hypothesis in tokens.parquet and the explanation page) and
    the analysis's tables and figures."""
    data = write_nli_splits(tmp_path / "data")
    out = tmp_path / "out"
    config = load_preset("nli_smoke")
    result = run_sweep(config, SweepOptions(data_dir=data, output_dir=out))
    assert result.failed == 0
    client = MlflowClient(result.tracking_uri)
    runs = {run.info.run_name: run for run in client.search_runs([result.experiment_id])}
    assert sorted(runs) == ["snli-lstm-tanh-softmax-s1", "snli-lstm-tanh-sparsemax-s1"]
    test_pairs = pd.read_csv(data / "snli" / "test.csv")
    for run in runs.values():
        missing = documented_metrics(("all", "0", "1", "2")) - set(run.data.metrics)
        assert run.info.status == "FINISHED" and not missing, sorted(missing)
        assert run.data.metrics["data/dropped/test_unlabeled"] == (test_pairs["label"] == -1).sum()
        assert run.data.metrics["test/accuracy"] > 1 / 3  # above chance after 2 epochs on learnable pairs
        folder = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / run.info.run_id)))
        tokens = pd.read_parquet(folder / "tokens.parquet")
        labelled = test_pairs[test_pairs["label"] >= 0]
        assert [" ".join(words) for words in tokens["hypothesis_words"]] == labelled["hypothesis"].tolist()
        assert [len(row) for row in tokens["gradient"]] == [len(row) for row in tokens["words"]]
        instances = pd.read_parquet(folder / "instances.parquet")
        assert sorted(set(instances["label"])) == [0, 1, 2] and "prob" not in instances
        page = (folder / "explanations.html").read_text()
        assert page.count('class="hypothesis"') == page.count('class="instance"') == 6  # 3 + one per class
        assert "contradiction (2)" in page
    analysis = analyze(config.name, result.tracking_uri, out / "analysis")
    table = pd.read_csv(analysis / "tables" / "table1_kendall_softmax.csv")
    assert table.filter(like="mean").notna().all().all()
    report = (analysis / "report.md").read_text()
    for name in ("entailment", "neutral", "contradiction"):
        assert name in report
    for figure in ("density", "counterfactual", "examples"):
        assert (analysis / "figures" / f"{figure}_snli-lstm-tanh-softmax.png").exists(), figure
