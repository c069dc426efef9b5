"""The published-vs-ours comparison, on a hand-made runs frame and a hand-made reference file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.replication import PUBLISHED, comparison, comparison_text


def runs_frame() -> pd.DataFrame:
    """Two finished seeds and one failed seed of SST tanh softmax, as `analysis.load_runs` returns them."""
    base = {"dataset": "sst2", "encoder": "lstm", "attention": "tanh", "normalizer": "softmax"}
    return pd.DataFrame(
        [
            {
                **base,
                "seed": 1,
                "status": "FINISHED",
                "kendall/attn_grad/0/mean": 0.30,
                "kendall/attn_grad/0/std": 0.20,
            },
            {
                **base,
                "seed": 2,
                "status": "FINISHED",
                "kendall/attn_grad/0/mean": 0.20,
                "kendall/attn_grad/0/std": 0.10,
            },
            {
                **base,
                "seed": 3,
                "status": "FAILED",
                "kendall/attn_grad/0/mean": 9.0,
                "kendall/attn_grad/0/std": 9.0,
            },
        ]
    )


def test_our_seed_mean_sits_beside_the_published_value_with_the_difference(tmp_path):
    published = tmp_path / "published.csv"
    published.write_text(
        "source,table,dataset,encoder,attention,normalizer,metric,mean,std\n"
        "N&S,Table 1,sst2,lstm,tanh,softmax,kendall/attn_grad/0/mean,0.280,0.221\n"
        "N&S,Table 1,imdb,lstm,tanh,softmax,kendall/attn_grad/0/mean,0.235,0.179\n"
    )
    table = comparison(runs_frame(), published)
    assert len(table) == 1  # the IMDB setting was not in the sweep
    row = table.iloc[0]
    assert row["mean"] == pytest.approx(0.25) and row["within_std"] == pytest.approx(0.15)
    assert row["seed_std"] == pytest.approx(0.0707107) and row["n_seeds"] == 2
    assert row["difference"] == pytest.approx(0.25 - 0.280)
    text = comparison_text(table).iloc[0]
    assert (text["published"], text["ours"], text["difference"]) == (
        "0.280 ± 0.221",
        "0.250 ± 0.150 (seeds ± 0.071, n=2)",
        "-0.030",
    )


def test_the_shipped_reference_file_names_logged_metrics_and_cites_its_source():
    reference = pd.read_csv(PUBLISHED)
    assert set(reference["source"]) == {"Neely & Schouten 2020"}
    assert reference["metric"].str.fullmatch(r"(kendall|topk_nz|topk_ns_nz)/attn_(grad|loo)/[01]/mean").all()
    # N&S's Table 2 was computed with their released formula (topk_ns_nz), kept beside Fagin's (topk_nz)
    table2 = reference[reference["table"] == "Table 2"]
    formula = table2["metric"].str.split("/").str[0]
    by_cell = table2.assign(cell=table2["metric"].str.split("/", n=1).str[1]).groupby("cell")
    assert set(formula) == {"topk_nz", "topk_ns_nz"} and (by_cell["mean"].nunique() == 1).all()
    assert ((reference["mean"] > -1) & (reference["mean"] < 1) & (reference["std"] > 0)).all()


def test_two_sweeps_side_by_side_name_the_one_closer_to_the_published_value(tmp_path):
    from analysis.compare import main, read_runs, side_by_side

    baseline_path = Path(__file__).resolve().parent.parent / "docs/replication_random_vectors/runs.csv"
    baseline = read_runs(baseline_path)
    better = baseline.copy()
    metric = "kendall/attn_grad/0/mean"  # published 0.280 for SST-2 tanh softmax
    rows = (better["dataset"] == "sst2") & (better["attention"] == "tanh")
    rows &= better["normalizer"] == "softmax"
    better.loc[rows, metric] = 0.280
    table = side_by_side(baseline, better, ("random", "better"))
    assert len(table) == 12  # N&S Table 1 (8 cells) and Table 2 (4 cells), both sweeps having each
    cell = table[(table["metric"] == metric) & (table["dataset"] == "sst2")].iloc[0]
    assert cell["better"] == pytest.approx(0.280) and cell["closer"] == "better"
    others = table[(table["metric"] != metric) | (table["dataset"] != "sst2")]
    assert set(others["closer"]) == {"tie"}
    better_path = tmp_path / "better.csv"
    better.to_csv(better_path, index=False)
    out = tmp_path / "side.md"
    argv = [str(baseline_path), str(better_path), "--labels", "random", "better", "--out", str(out)]
    assert main(argv) == 0
    assert "random: 0, better: 1, tie: 11" in out.read_text() and out.with_suffix(".csv").is_file()
