"""The analysis of a sweep with a three-class dataset (natural language inference, issue #17) beside a binary
one: a real sqlite MLflow store, written without Ray, of snli trials (entailment 0, neutral 1,
contradiction 2) and an sst2 trial, with per-class metrics and `instances.parquet` / `tokens.parquet`
artifacts laid out as the trials log them. Every per-class table has each dataset's own classes, named by
it, and the figures draw three classes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from matplotlib.image import imread
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from analysis import analyze, figures
from analysis.names import (
    CLASS_COLOURS,
    PALETTE,
    class_colour,
    class_name,
    dataset_classes,
    logged_classes,
    num_classes,
)
from trainables import registry

EXPERIMENT = "nli"
SETTING = {"encoder": "lstm", "attention": "tanh"}
TRIALS = (  # dataset, normalizer, seed: snli's two normalizers with two seeds, one sst2 trial
    *(("snli", normalizer, seed) for normalizer in ("softmax", "sparsemax") for seed in (1, 2)),
    ("sst2", "softmax", 1),
)
N = {"snli": 30, "sst2": 24}  # test instances
WORDS = ("a", "man", "is", "sleeping", "outside", "the", "dog", "runs", "two", "people", "eat", "food")


def class_offset(label: np.ndarray) -> np.ndarray:
    """Per true label, what its instances' τ and AOPC lie above the others': the tables tell classes apart."""
    return 0.1 * label


def instances_table(dataset: str, seed: int) -> pd.DataFrame:
    """`instances.parquet` of a trial: the columns a real trial writes (every registry statistic and
    pair with p-values and chance levels, erasure AOPC and curves, counterfactual columns); labels 0 ..
    C-1 in turn, `confidence` (the predicted class's probability), and `prob` only for a binary dataset."""
    rng = np.random.default_rng(seed)
    n, classes = N[dataset], num_classes(dataset)
    index = np.arange(n)
    label = index % classes
    length = 5 + index % 7
    table = {
        "index": index,
        "length": length,
        "label": label,
        "prediction": np.where(index % 4 == 0, (label + 1) % classes, label),
        "confidence": rng.uniform(1 / classes, 1, n),
        "nonzero": length,
        "k_avg": np.full(n, 8),
        "k_nz": length,
    }
    if classes == 2:
        table["prob"] = rng.uniform(0, 1, n)
    shift = class_offset(label)
    for pair in registry.pairs():
        for statistic in registry.STATISTICS:
            table[f"{statistic.name}_{pair.name}"] = np.clip(0.2 + shift + rng.normal(0, 0.1, n), -1, 1)
            if statistic.name == "kendall":
                table[f"kendall_p_{pair.name}"] = rng.uniform(0, 0.2, n)
    for pair in registry.pairs():
        for statistic in registry.STATISTICS:
            table[registry.chance_column(statistic.name, pair.name)] = rng.normal(0, 0.02, n)
    for erasure in registry.ERASURES:
        for order in registry.erasure_orders(()):
            aopc = 0.1 + shift + rng.uniform(0, 0.1, n)
            table[registry.erasure_column(erasure, order.short)] = aopc
            curves = [np.full(len(registry.ERASURE_PERCENTS), value) for value in aopc]
            table[registry.erasure_curve_column(erasure, order.short)] = curves
    table |= {
        "adv_max_jsd": rng.uniform(0, math.log(2), n),
        "adv_found": index % 7 != 0,
        "adv_output_diff": rng.uniform(0, 0.01, n),
        "max_attention": rng.uniform(0.2, 1, n),
        "perm_median_diff": rng.uniform(0, 0.05, n),
    }
    frame = pd.DataFrame(table)
    frame.loc[~frame["adv_found"], "adv_max_jsd"] = 0.0
    return frame


def distribution(rng: np.random.Generator, length: int) -> list[float]:
    """Random weights over `length` tokens that sum to 1."""
    weights = rng.uniform(0.1, 1, length)
    return list(weights / weights.sum())


def tokens_table(instances: pd.DataFrame, seed: int, pair: bool) -> pd.DataFrame:
    """`tokens.parquet` of a trial: per instance its token ids and words (the same in every seed), the
    scores of each measure and of the adversarial attention, and for a `pair` task the hypothesis's ids and
    words."""
    rng = np.random.default_rng(100 + seed)
    rows = []
    for index, length in zip(instances["index"], instances["length"], strict=True):
        ids = (np.arange(length) + index) % len(WORDS)

        rows.append(
            {
                "index": index,
                "token_ids": list(ids + 2),
                "attention": distribution(rng, length),
                "gradient": list(rng.uniform(0, 0.01, length)),
                "loo": list(rng.uniform(0, 0.01, length)),
                "adv_attention": distribution(rng, length),
                "words": [WORDS[i] for i in ids],
            }
        )
        if pair:
            rows[-1] |= {"hypothesis_ids": list(ids[:3] + 2), "hypothesis_words": [WORDS[i] for i in ids[:3]]}
    return pd.DataFrame(rows)


def summary(values: pd.Series) -> dict[str, float]:
    """Mean, population std and NaN count, as the trials summarize (trainables.correlation.summarize)."""
    return {"mean": values.mean(), "std": values.std(ddof=0), "n_nan": int(values.isna().sum())}


def trial_metrics(instances: pd.DataFrame, dataset: str) -> dict[str, float]:
    """The per-trial metrics of `instances`, overall and per true class, named as docs/METRICS.md."""
    metrics = {
        "test/accuracy": float((instances["label"] == instances["prediction"]).mean()),
        "test/f1": 0.7,
        "test/auc": 0.8,
        "embeddings/token_coverage": 0.0,
        **{f"time/{phase}_s": 1.0 for phase in registry.PHASES},
    }
    for label in registry.class_labels(num_classes(dataset)):
        part = instances if label == "all" else instances[instances["label"] == int(label)]
        for pair in registry.pairs():
            for statistic in registry.STATISTICS:
                values = summary(part[f"{statistic.name}_{pair.name}"])
                values["chance"] = part[registry.chance_column(statistic.name, pair.name)].mean()
                if "sig_frac" in statistic.summaries:
                    values["sig_frac"] = (part[f"kendall_p_{pair.name}"] < registry.SIGNIFICANCE).mean()
                for name in statistic.summaries:
                    metrics[registry.correlation_metric(statistic.name, pair.name, label, name)] = values[
                        name
                    ]
        for erasure in registry.ERASURES:
            for order in registry.erasure_orders(()):
                values = summary(part[registry.erasure_column(erasure, order.short)])
                for name in registry.FAITHFULNESS_SUMMARIES:
                    metrics[registry.erasure_metric(erasure, order.short, label, name)] = values[name]
        jsd, diff = part["adv_max_jsd"], part["perm_median_diff"]
        metrics |= {
            f"attention/{label}/nonzero_mean": part["nonzero"].mean(),
            f"adversarial/{label}/jsd_mean": jsd.mean(),
            f"adversarial/{label}/jsd_median": jsd.median(),
            f"adversarial/{label}/frac_jsd_ge_05": (jsd >= registry.JSD_HIGH).mean(),
            f"adversarial/{label}/frac_infeasible": (~part["adv_found"]).mean(),
            f"permutation/{label}/diff_mean": diff.mean(),
            f"permutation/{label}/diff_median": diff.median(),
            f"permutation/{label}/frac_diff_lt_001": (diff < registry.DIFF_SMALL).mean(),
        }
    return {name: float(value) for name, value in metrics.items()}


def log_trial(client: MlflowClient, experiment: str, dataset: str, normalizer: str, seed: int, folder: Path):
    """One finished trial run: axes as tags and params, its metrics, its two parquet artifacts."""
    axes = {"dataset": dataset, **SETTING, "normalizer": normalizer, "seed": str(seed)}
    name = f"{dataset}-lstm-tanh-{normalizer}-s{seed}"
    run = client.create_run(experiment, run_name=name, tags=axes)
    run_id = run.info.run_id
    instances = instances_table(dataset, seed)
    metrics = [Metric(key, value, 0, 0) for key, value in trial_metrics(instances, dataset).items()]
    params = [Param(key, value) for key, value in axes.items()]
    client.log_batch(run_id, metrics=metrics, params=params)
    files = folder / name
    files.mkdir()
    instances.to_parquet(files / "instances.parquet", index=False)
    tokens_table(instances, seed, pair=dataset == "snli").to_parquet(files / "tokens.parquet", index=False)
    client.log_artifact(run_id, str(files / "instances.parquet"))
    client.log_artifact(run_id, str(files / "tokens.parquet"))
    client.set_terminated(run_id, status="FINISHED")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """A sqlite MLflow store of `TRIALS` in experiment `EXPERIMENT`; its tracking URI."""
    root = tmp_path_factory.mktemp("nli_store")
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())
    (root / "files").mkdir()
    for dataset, normalizer, seed in TRIALS:
        log_trial(client, experiment, dataset, normalizer, seed, root / "files")
    return client.tracking_uri


@pytest.fixture(scope="module")
def analysed(store, tmp_path_factory) -> Path:
    """The analysis of the store: its output folder."""
    return analyze(EXPERIMENT, store, tmp_path_factory.mktemp("nli_analysis"))


SNLI = ("entailment (0)", "neutral (1)", "contradiction (2)")
SST2 = ("negative (0)", "positive (1)")


def table_rows(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / "tables" / f"{name}.csv")


def test_class_names_ids_and_colours():
    assert class_name("snli", "2") == "contradiction (2)" and class_name("sst2", 0) == "negative (0)"
    assert class_name("snli", "all") == "all" and class_name("unnamed", 3) == "class 3"
    assert dataset_classes("mnli") == ("0", "1", "2") and dataset_classes("sst2", ["3"]) == ("0", "1", "3")
    assert num_classes("snli") == 3 and num_classes("sst2") == 2 and num_classes("unnamed", [0, 4]) == 5
    names = [
        "kendall/attn_grad/2/mean",
        "adversarial/1/jsd_mean",
        "kendall/attn_grad/all/mean",
        "time/train_s",
    ]
    assert logged_classes(names) == ("1", "2")
    # the binary colours as before, and at least four distinct classes, each far from white
    assert PALETTE["class"]["0"] == "#D55E00" and PALETTE["class"]["1"] == "#56B4E9"
    assert len(set(CLASS_COLOURS)) == len(CLASS_COLOURS) >= 4
    assert [class_colour(label) for label in range(4)] == [PALETTE["class"][str(i)] for i in range(4)]
    assert all(min(to_rgb(class_colour(label))) < 0.6 for label in range(4))


def test_per_class_tables_show_each_dataset_with_its_own_classes(analysed):
    for name, by_class in (
        ("table1_kendall_softmax", False),
        ("table2_topk", False),
        ("faithfulness", True),
        ("counterfactual", True),
    ):
        rows = table_rows(analysed, name)
        every = ("all",) if by_class else ()
        for dataset, classes in (("snli", SNLI), ("sst2", SST2)):
            shown = rows.loc[rows["dataset"] == dataset, "class"].drop_duplicates().tolist()
            assert shown == [*every, *classes], name
        markdown = (analysed / "tables" / f"{name}.md").read_text()
        for text in (*SNLI, *SST2):
            assert f" | {text} |" in markdown, (name, text)
        assert "class 2" not in markdown and "| snli | lstm | tanh | negative" not in markdown
        assert "contradiction" in (analysed / "tables" / f"{name}.tex").read_text()


def test_a_class_cell_is_the_mean_over_seeds_of_that_class_s_metric(store, analysed):
    runs = MlflowClient(store).search_runs(
        [MlflowClient(store).get_experiment_by_name(EXPERIMENT).experiment_id]
    )
    metric = registry.correlation_metric("kendall", "attn_grad", "2", "mean")
    chance = registry.correlation_metric("kendall", "attn_grad", "2", "chance")
    logged = [
        (run.data.metrics[metric], run.data.metrics[chance])
        for run in runs
        if run.data.tags["dataset"] == "snli" and run.data.tags["normalizer"] == "softmax"
    ]
    rows = table_rows(analysed, "table1_kendall_softmax")
    cell = rows[
        (rows["dataset"] == "snli") & (rows["class"] == "contradiction (2)") & (rows["metric"] == metric)
    ]
    means, chances = np.array(logged).T
    assert len(logged) == 2 and cell["mean"].item() == pytest.approx(means.mean())
    assert cell["chance"].item() == pytest.approx(chances.mean())
    assert cell["above_chance"].item() == pytest.approx((means - chances).mean())
    assert cell["n_seeds"].item() == 2
    # the synthetic classes lie 0.1 apart: class 2's τ above class 0's
    first = rows[
        (rows["dataset"] == "snli")
        & (rows["class"] == "entailment (0)")
        & (rows["metric"] == metric.replace("/2/", "/0/"))
    ]
    assert cell["mean"].item() - first["mean"].item() == pytest.approx(0.2, abs=0.08)


def test_multi_class_captions_say_what_the_output_change_is(analysed):
    counterfactual = (analysed / "tables" / "counterfactual.md").read_text()
    assert (
        "total variation distance between the output distributions (|Δ P| for two classes)" in counterfactual
    )


def test_every_figure_is_drawn_for_three_classes(analysed):
    names = {path.stem for path in (analysed / "figures").glob("*.png")}
    expected = {
        *(
            f"{kind}_snli-lstm-tanh-{n}"
            for kind in ("density", "counterfactual")
            for n in ("softmax", "sparsemax")
        ),
        "density_sst2-lstm-tanh-softmax",
        "counterfactual_sst2-lstm-tanh-softmax",
        "normalizers_snli-lstm",
        "normalizers_sst2-lstm",
        "faithfulness",
        "adversarial_vs_seeds",
    }
    assert expected <= names
    for name in expected:
        image = imread(analysed / "figures" / f"{name}.png")
        assert image.ndim == 3 and min(image.shape[:2]) > 400 and image.std() > 0.05, name
    report = (analysed / "report.md").read_text()
    assert (
        "![counterfactual_snli-lstm-tanh-softmax](figures/counterfactual_snli-lstm-tanh-softmax.png)"
        in report
    )


def test_the_counterfactual_figure_draws_each_class_in_its_colour():
    instances = instances_table("snli", 1).assign(seed=1)
    figure = figures.counterfactual_figure(instances, {"dataset": "snli", **SETTING, "normalizer": "softmax"})
    hist, _, perm = figure.axes
    legend = [text.get_text() for text in hist.get_legend().get_texts()]
    assert legend[:3] == [f"{name}, n=10" for name in SNLI]
    colours = [to_rgb(patch.get_edgecolor()) for patch in hist.get_legend().get_patches()[:3]]
    assert colours == [to_rgb(class_colour(label)) for label in range(3)]
    assert perm.get_ylabel().startswith("median output change (probability)\ntotal variation distance")
    binary = figures.counterfactual_figure(
        instances_table("sst2", 1).assign(seed=1), {"dataset": "sst2", **SETTING, "normalizer": "softmax"}
    )
    assert binary.axes[2].get_ylabel() == "median |Δ P(positive)| (probability)"


def test_example_figures_are_drawn_for_three_classes(analysed):
    for normalizer in ("softmax", "sparsemax"):
        image = imread(analysed / "figures" / f"examples_snli-lstm-tanh-{normalizer}.png")
        assert image.ndim == 3 and image.std() > 0.05
    report = (analysed / "report.md").read_text()
    for name in SNLI:
        assert f"an instance of class {name}" in report
    assert "an instance of class negative (0)" in report and "class 2" not in report
