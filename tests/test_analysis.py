"""The analysis package on a real smoke sweep (local Ray, sqlite MLflow): every table and figure is written,
the tables hold the logged metrics, a failed or missing trial stays visible as a missing cell, and bad
input fails with one line."""

from __future__ import annotations

import contextlib
import io
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from analysis import AnalysisError, analyze, load_instances, load_runs
from analysis.__main__ import main
from analysis.tables import Cell, TableSpec, build
from sweep.runner import PROJECT_ROOT, SweepResult
from tests.helpers import SST_SPLIT_SIZES
from trainables.settings import AXES

pytestmark = pytest.mark.ray

TABLES = (
    "table1_kendall_softmax",
    "table2_topk",
    "agreement_all_pairs",
    "faithfulness",
    "counterfactual",
    "model_quality",
    "timing",
)
SETTINGS = ("sst2-lstm-tanh-softmax", "sst2-lstm-tanh-sparsemax")
TEST_SIZE = SST_SPLIT_SIZES["test"]


@pytest.fixture(scope="module")
def sweep(smoke_sweep) -> SweepResult:
    """The smoke preset (tanh attention, softmax and sparsemax, seed 1) on tiny generated data: the
    session's run (conftest.py), shared with test_sweep.py."""
    assert smoke_sweep.result.failed == 0
    return smoke_sweep.result


@pytest.fixture(scope="module")
def analysed(sweep, tmp_path_factory) -> tuple[Path, str]:
    """`python -m analysis` (in process) on the smoke sweep: its output folder and what it printed."""
    out = tmp_path_factory.mktemp("analysis")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["--experiment", "smoke", "--tracking-uri", sweep.tracking_uri, "--out", str(out)]) == 0
    return out / "smoke", printed.getvalue()


def logged_metrics(sweep: SweepResult) -> dict[str, dict[str, float]]:
    """Each finished run's metrics, by run name without the seed."""
    runs = MlflowClient(sweep.tracking_uri).search_runs(
        [sweep.experiment_id], "attributes.status = 'FINISHED'"
    )
    return {run.info.run_name.rsplit("-s", 1)[0]: run.data.metrics for run in runs}


def test_every_table_and_figure_file_is_written(analysed):
    folder, printed = analysed
    assert str(folder) in printed
    files = {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}
    # the smoke grid has SST tanh softmax and sparsemax, settings with published values, but its 2-epoch
    # models on 300 sentences are no replication; with one seed there is nothing to compare seeds with
    tables = {f"tables/{name}.{ext}" for name in (*TABLES, "verdict") for ext in ("csv", "md", "tex")}
    kinds = ("density", "counterfactual", "examples")
    stems = [f"{kind}_{setting}" for kind in kinds for setting in SETTINGS]
    figures = {
        f"figures/{stem}.{ext}"
        for stem in [*stems, "normalizers_sst2-lstm", "faithfulness"]
        for ext in ("png", "svg", "pdf")
    }
    assert files == tables | figures | {"report.md", "runs.csv"}
    report = (folder / "report.md").read_text()
    assert "Left out: no run was trained as the papers trained (data.max_examples = 300; " in report
    assert "Not computed: no setting has two finished trials that differ only in seed (seed 1)" in report
    faithfulness = report.split("## Erasure faithfulness\n", 1)[1].split("\n## ", 1)[0]
    assert "**Erasure faithfulness per true class" in faithfulness
    examples = report.split("## Example explanations\n", 1)[1].split("\n## ", 1)[0]
    assert "Instances of `sst2` (2 finished trials):" in examples
    assert len(re.findall(r"^- \d+: ", examples, flags=re.MULTILINE)) == 5
    for setting in SETTINGS:
        assert f"![examples_{setting}](figures/examples_{setting}.png)" in examples
        assert f"(figures/examples_{setting}.png)" not in report.split("## Figures", 1)[1]


def test_the_tables_hold_the_logged_metrics(sweep, analysed):
    folder, _ = analysed
    metrics = logged_metrics(sweep)
    assert set(metrics) == set(SETTINGS)
    checked = rows = 0
    for name in TABLES:
        table = pd.read_csv(folder / "tables" / f"{name}.csv").fillna({"spread_metric": ""})
        assert set(table["dataset"]) == {"sst2"}
        rows += len(table)
        for row in table.itertuples():
            logged = metrics[f"{row.dataset}-{row.encoder}-{row.attention}-{row.normalizer}"]
            if row.metric not in logged:  # NaN values are not logged: the cell is missing
                assert row.n_seeds == 0 and math.isnan(row.mean)
                continue
            assert row.n_seeds == 1 and math.isnan(row.seed_std)
            assert row.mean == pytest.approx(logged[row.metric], abs=1e-12)
            if row.spread_metric:
                assert row.within_std == pytest.approx(logged[row.spread_metric], abs=1e-12)
            checked += 1
    # Table 1: softmax x 8 cells; Table 2: 2 settings x 2 classes x 3 pairs x 4 top-k statistics;
    # agreement: 2 x 3 pairs x 2; faithfulness: 2 x 3 classes x 3 measures x 2 erasures; counterfactual:
    # 2 x 3 classes x 7; quality: 2 x 4; timing: 2 x 9 phases (word vectors, train, seven explanation ones)
    assert rows == 8 + 48 + 12 + 36 + 42 + 8 + 18 and checked >= 0.9 * rows
    softmax = metrics["sst2-lstm-tanh-softmax"]
    markdown = (folder / "tables" / "model_quality.md").read_text()
    cells = " | ".join(f"{softmax[f'test/{m}']:.3f}" for m in ("accuracy", "f1", "auc"))
    assert f"| sst2 | lstm | tanh | softmax | {cells} | 0.000 |" in markdown  # random: no pretrained token
    timing = pd.read_csv(folder / "tables" / "timing.csv")
    assert timing["phase"].tolist()[:2] == ["word vectors (per sweep)", "training"]
    table1 = (folder / "tables" / "table1_kendall_softmax.md").read_text()
    mean, std = softmax["kendall/attn_grad/0/mean"], softmax["kendall/attn_grad/0/std"]
    chance = softmax["kendall/attn_grad/0/chance"]
    cells = f"{mean:.3f} ± {std:.3f} | {chance:.3f} | {mean - chance:+.3f}"
    assert f"| sst2 | lstm | tanh | negative (0) | {cells} |" in table1
    assert "sparsemax" not in table1.split("\n", 1)[1]  # Table 1 is softmax attention only
    faithfulness = pd.read_csv(folder / "tables" / "faithfulness.csv").query("normalizer == 'softmax'")
    row = faithfulness.query("measure == 'attention' and `class` == 'all' and erasure == 'comprehensiveness'")
    random = softmax["comprehensiveness/random/all/mean"]
    assert row["chance"].item() == pytest.approx(random, abs=1e-12)
    assert row["above_chance"].item() == pytest.approx(row["mean"].item() - random, abs=1e-12)
    latex = (folder / "tables" / "table2_topk.tex").read_text()
    assert latex.startswith("\\begin{table}") and "$\\pm$" in latex and "\\label{tab:table2_topk}" in latex


def test_the_figures_are_real_images(analysed):
    folder, _ = analysed
    pngs = sorted((folder / "figures").glob("*.png"))
    assert len(pngs) == 8
    for png in pngs:
        image = imread(png)
        assert image.ndim == 3 and min(image.shape[:2]) > 400
        pixels = (image[::3, ::3, :3] * 255).astype(np.uint8).reshape(-1, 3)
        colours = np.unique(pixels, axis=0)
        assert len(colours) > 50 and image.std() > 0.05, png.name
        assert png.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
        assert "<svg" in png.with_suffix(".svg").read_text()


def test_runs_and_instances_load_as_tidy_frames(sweep):
    runs = load_runs("smoke", sweep.tracking_uri)
    assert list(runs.columns[:9]) == ["run_id", "run_name", "status", "start_time", *AXES]
    assert list(runs["normalizer"]) == ["softmax", "sparsemax"] and list(runs["seed"]) == [1, 1]
    assert set(runs["status"]) == {"FINISHED"} and runs["test/auc"].between(0, 1).all()
    instances = load_instances("smoke", sweep.tracking_uri)
    assert len(instances) == 2 * TEST_SIZE
    assert list(instances.columns[:6]) == ["run_id", *AXES]
    assert instances.groupby("run_id").size().to_dict() == dict.fromkeys(runs["run_id"], TEST_SIZE)
    softmax = instances[instances["normalizer"] == "softmax"]
    logged = runs.set_index("normalizer").loc["softmax", "kendall/attn_grad/all/mean"]
    assert softmax["kendall_attn_grad"].mean() == pytest.approx(logged)


def test_a_failed_or_missing_trial_is_a_missing_cell(sweep, analysed, tmp_path):
    """A FAILED run (no metrics) for dot attention adds dot to the grid: dot-softmax has only the failed
    run, dot-sparsemax none at all. Both show as missing cells; the finished settings keep their values."""
    client = MlflowClient(sweep.tracking_uri)
    tags = {"dataset": "sst2", "encoder": "lstm", "attention": "dot", "normalizer": "softmax", "seed": "1"}
    failed = client.create_run(sweep.experiment_id, run_name="sst2-lstm-dot-softmax-s1", tags=tags)
    client.set_terminated(failed.info.run_id, status="FAILED")
    try:
        folder = analyze("smoke", sweep.tracking_uri, tmp_path)
    finally:
        client.delete_run(failed.info.run_id)
    quality = pd.read_csv(folder / "tables" / "model_quality.csv")
    dot = quality[quality["attention"] == "dot"]
    assert sorted(set(dot["normalizer"])) == ["softmax", "sparsemax"]
    assert (dot["n_seeds"] == 0).all() and dot["mean"].isna().all()
    assert (quality.loc[quality["attention"] == "tanh", "n_seeds"] == 1).all()
    markdown = (folder / "tables" / "model_quality.md").read_text()
    for normalizer in ("softmax", "sparsemax"):
        assert f"| sst2 | lstm | dot | {normalizer} | — | — | — | — |" in markdown
    table1 = (folder / "tables" / "table1_kendall_softmax.md").read_text()
    assert "| sst2 | lstm | dot | negative (0) | — | — |" in table1
    report = (folder / "report.md").read_text()
    assert (
        "`sst2-lstm-dot-softmax-s1`: FAILED" in report and "`sst2-lstm-dot-sparsemax-s1`: MISSING" in report
    )
    figures = {path.name for path in (folder / "figures").glob("*.png")}
    assert "normalizers_sst2-lstm.png" in figures and not any("-dot-" in name for name in figures)


def test_several_seeds_give_the_seed_spread_beside_the_within_trial_spread(tmp_path):
    """Three finished seeds and a failed fourth, logged straight to MLflow: mean over seeds, mean
    within-trial std, std across seeds, and n = the seeds that finished."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("seeds")
    axes = {"dataset": "sst2", "encoder": "lstm", "attention": "tanh", "normalizer": "softmax"}
    for seed, value, spread in ((1, 0.2, 0.1), (2, 0.3, 0.2), (3, 0.4, 0.3), (4, None, None)):
        run = client.create_run(experiment, run_name=f"s{seed}", tags={**axes, "seed": str(seed)})
        if value is not None:
            metrics = [Metric("m/mean", value, 0, 0), Metric("m/std", spread, 0, 0)]
            client.log_batch(run.info.run_id, metrics=metrics)
        client.set_terminated(run.info.run_id, status="FINISHED" if value is not None else "FAILED")
    runs = load_runs("seeds", client.tracking_uri)
    spec = TableSpec("t", "caption", ("statistic",), (Cell("m/mean", ("m",), "m/std"),))
    long, wide = build(spec, runs)
    assert long.loc[0, ["mean", "within_std", "seed_std"]].tolist() == pytest.approx([0.3, 0.2, 0.1])
    assert long.loc[0, "n_seeds"] == 3
    assert wide.iloc[0, 0] == "0.300 ± 0.200 (seeds ± 0.100, n=3)"


def test_bad_input_is_a_one_line_error(sweep, tmp_path):
    MlflowClient(sweep.tracking_uri).create_experiment("empty")
    cases = {
        ("nope", sweep.tracking_uri): "no experiment 'nope' at .*; experiments there: .*smoke",
        ("empty", sweep.tracking_uri): "experiment 'empty' at .* has no trial runs",
        ("smoke", "http://127.0.0.1:9"): "MLflow tracking URI 'http://127.0.0.1:9' is not usable",
        ("smoke", f"sqlite:///{tmp_path / 'none.db'}"): "no MLflow store at .*none.db",
    }
    for (experiment, uri), message in cases.items():
        with pytest.raises(AnalysisError, match=message) as error:
            analyze(experiment, uri, tmp_path)
        assert isinstance(error.value, ValueError) and "\n" not in str(error.value)
    assert not (tmp_path / "none.db").exists()
    command = [sys.executable, "-m", "analysis", "--experiment", "nope", "--tracking-uri", sweep.tracking_uri]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("python -m analysis: error: no experiment 'nope'")
