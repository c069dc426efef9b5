"""The analysis of chance levels, the published top-k τ, seed ceilings and the verdict, on synthetic runs,
instances and tokens frames laid out as the trials log them (no Ray, no MLflow)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import figures, report
from analysis.names import PALETTE
from analysis.replication import comparison, paper_runs
from analysis.seeds import JSD, adversarial_vs_seeds, seed_agreement, seed_pairs
from analysis.tables import build, table1_kendall, table2_topk
from analysis.verdict import gap_fraction, verdict, verdict_text
from trainables import registry
from trainables.registry import correlation_metric

AXES = {"dataset": "sst2", "encoder": "lstm", "attention": "tanh"}
NORMALIZERS = ("softmax", "sparsemax")
SEEDS = (1, 2, 3)
N = 24  # test instances
PAIRS = registry.pairs()
PUBLISHED = tuple(s for s in registry.STATISTICS if s.formula == "topk_published")
PAPER = {
    "param.data.max_examples": "None",
    "param.train.max_epochs": "40",
    "param.train.embed_dim": "300",
    "param.train.hidden_size": "128",
}
SMOKE = {
    "param.data.max_examples": "300",
    "param.train.max_epochs": "2",
    "param.train.embed_dim": "32",
    "param.train.hidden_size": "16",
}


def statistics(calibrated: bool) -> tuple[registry.Statistic, ...]:
    """What a trial logs: every statistic, or those of the trials before chance levels and `topk_ns_*`."""
    return registry.STATISTICS if calibrated else tuple(s for s in registry.STATISTICS if s not in PUBLISHED)


def runs_frame(
    params: dict = PAPER, calibrated: bool = True, seeds: tuple = SEEDS, old: tuple = ()
) -> pd.DataFrame:
    """A finished run per normalizer and seed, as `analysis.load_runs` returns them. Every correlation
    mean is 0.30 + 0.01 seed and its chance level 0.10 + 0.02 seed; the normalizers in `old` log as
    trials before chance levels and the published top-k τ did."""
    rows = []
    for normalizer in NORMALIZERS:
        new = calibrated and normalizer not in old
        for seed in seeds:
            metrics = {}
            for statistic in statistics(new):
                for pair in PAIRS:
                    for label in registry.class_labels(2):
                        name = {
                            s: correlation_metric(statistic.name, pair.name, label, s)
                            for s in statistic.summaries
                        }
                        metrics |= {name["mean"]: 0.30 + 0.01 * seed, name["std"]: 0.2, name["n_nan"]: 0}
                        metrics |= {name["sig_frac"]: 0.5} if "sig_frac" in name else {}
                        metrics |= {name["chance"]: 0.10 + 0.02 * seed} if new else {}
            rows.append(
                {
                    "run_id": f"{normalizer}-{seed}",
                    "run_name": f"sst2-lstm-tanh-{normalizer}-s{seed}",
                    "status": "FINISHED",
                    "start_time": pd.Timestamp(0),
                    **AXES,
                    "normalizer": normalizer,
                    "seed": seed,
                    **params,
                    **metrics,
                }
            )
    return pd.DataFrame(rows)


def instances_frame(calibrated: bool = True, seeds: tuple = SEEDS) -> pd.DataFrame:
    """Instances of every run of `runs_frame`. An instance's chance level is 0.10 + 0.01 seed for every
    statistic and pair; attention vs gradient lies 0.3 ± 0.05 above it (alternating by instance),
    attention vs LOO ±0.5 around it (mean 0), gradient vs LOO at 0.2."""
    index = np.arange(N)
    sign = np.where(index % 2, -1.0, 1.0)
    parts = []
    for normalizer in NORMALIZERS:
        for seed in seeds:
            chance = np.full(N, 0.10 + 0.01 * seed)
            offsets = {"attn_grad": 0.3 + 0.05 * sign, "attn_loo": 0.5 * sign, "grad_loo": 0.1 + 0 * sign}
            table = {
                **AXES,
                "normalizer": normalizer,
                "seed": seed,
                "run_id": f"{normalizer}-{seed}",
                "index": index,
                "length": 4 + index % 6,
                "label": index % 2,
                "adv_max_jsd": 0.4 + 0.01 * (index % 5),
                "adv_found": True,
                "max_attention": 0.5,
                "perm_median_diff": 0.01,
            }
            for statistic in statistics(calibrated):
                for pair in PAIRS:
                    table[f"{statistic.name}_{pair.name}"] = chance + offsets[pair.name]
                    if calibrated:
                        table[registry.chance_column(statistic.name, pair.name)] = chance
                table[f"kendall_p_{pair.name}"] = np.full(N, 0.01)
            parts.append(pd.DataFrame(table))
    return pd.concat(parts, ignore_index=True)


def scores(length: int, reverse: bool) -> np.ndarray:
    """Distinct increasing scores that sum to 1 (decreasing when `reverse`): a reversed ranking."""
    values = np.arange(1, length + 1, dtype=float) / (length * (length + 1) / 2)
    return values[::-1] if reverse else values


def tokens_frame(reverse_seeds: tuple = (), seeds: tuple = SEEDS) -> pd.DataFrame:
    """`tokens.parquet` of every run as `analysis.load_tokens` returns them: attention, gradient and LOO
    increase along every instance, except in the seeds of `reverse_seeds`, where they decrease; the same
    test instances in every seed."""
    rows = []
    for normalizer in NORMALIZERS:
        for seed in seeds:
            for i in range(N):
                length = 2 + i % 6
                values = scores(length, seed in reverse_seeds)
                rows.append(
                    {
                        **AXES,
                        "normalizer": normalizer,
                        "seed": seed,
                        "index": i,
                        "token_ids": np.arange(length) + i,
                        "attention_scores": values,
                        "gradient": 2 * values,
                        "loo": values**2,
                    }
                )
    return pd.DataFrame(rows)


def entropy(p: np.ndarray) -> float:
    return float(-(p[p > 0] * np.log(p[p > 0])).sum())


# ---- tables: chance levels and the value above them ---------------------------------------------------


def test_table1_cells_show_the_value_its_chance_level_and_the_difference():
    runs = runs_frame()
    long, wide = build(table1_kendall(runs), runs)
    row = long[(long["class"] == "negative (0)") & (long["importance"] == "gradient")]
    row = row[row["statistic"] == "τ mean ± std"].iloc[0]
    assert (
        row["metric"] == "kendall/attn_grad/0/mean" and row["chance_metric"] == "kendall/attn_grad/0/chance"
    )
    assert row["mean"] == pytest.approx(0.32) and row["chance"] == pytest.approx(0.14)
    assert row["above_chance"] == pytest.approx(0.18) and row["above_chance_seed_std"] == pytest.approx(0.01)
    cells = wide.loc[("sst2", "lstm", "tanh", "negative (0)")]
    assert cells[("gradient", "τ mean ± std")] == "0.320 ± 0.200 (seeds ± 0.010, n=3)"
    assert (cells[("gradient", "chance")], cells[("gradient", "above chance")]) == ("0.140", "+0.180")
    assert cells[("gradient", "sig. frac.")] == "0.500 (seeds ± 0.000, n=3)"


def test_table2_has_both_formulas_at_both_k_each_with_its_chance_level():
    runs = runs_frame()
    long, wide = build(table2_topk(runs), runs)
    labels = [s.short_label for s in registry.STATISTICS if s.k is not None]
    assert list(dict.fromkeys(wide.columns.get_level_values(0))) == labels
    assert set(wide.columns.get_level_values(1)) == {"τ mean ± std", "chance", "above chance"}
    assert wide.index.names == ["dataset", "encoder", "attention", "normalizer", "class", "pair"]
    assert len(wide) == 2 * 2 * len(PAIRS)  # normalizers x classes x pairs
    published = long[long["metric"] == "topk_ns_nz/attn_grad/1/mean"]
    assert set(published["normalizer"]) == set(NORMALIZERS)
    assert published["above_chance"].tolist() == pytest.approx([0.18, 0.18])


def test_old_runs_analyse_with_the_missing_numbers_missing():
    """Runs without chance levels or the published top-k τ: no such columns at all; a sweep mixing them
    with newer runs shows "—" where the older ones lack a number."""
    old = runs_frame(calibrated=False)
    long, wide = build(table2_topk(old), old)
    assert "chance" not in long and "chance" not in set(wide.columns.get_level_values(-1))
    assert not long["metric"].str.startswith("topk_ns").any() and long["n_seeds"].eq(3).all()
    long, wide = build(table1_kendall(old), old)
    assert list(wide.columns.get_level_values(-1)) == ["τ mean ± std", "sig. frac."] * 2
    mixed = runs_frame(old=("sparsemax",))
    long, wide = build(table2_topk(mixed), mixed)
    sparse = wide.xs("sparsemax", level="normalizer")
    assert (sparse.filter(like="published").to_numpy() == "—").all()
    assert (sparse.xs("chance", axis=1, level=-1).to_numpy() == "—").all()
    assert (sparse[("top-k τ, k = non-zero", "τ mean ± std")] != "—").all()
    assert (wide.xs("softmax", level="normalizer").to_numpy() != "—").all()


# ---- seed ceilings ------------------------------------------------------------------------------------


def test_identical_seeds_agree_perfectly_and_reversed_ones_disagree():
    same = seed_pairs(tokens_frame())
    assert len(same) == len(NORMALIZERS) * 3 * N  # three pairs of seeds per setting
    assert set(zip(same["seed_a"], same["seed_b"])) == {(1, 2), (1, 3), (2, 3)}
    taus = [f"{m}_{s.name}" for m in ("attention", "gradient", "loo") for s in registry.STATISTICS]
    assert (same[taus].to_numpy() == pytest.approx(1.0)) and (same[JSD].to_numpy() == pytest.approx(0.0))
    flipped = seed_pairs(tokens_frame(reverse_seeds=(2,)))
    against = flipped[(flipped["seed_a"] == 1) & (flipped["seed_b"] == 2)]
    kendall = against[["attention_kendall", "gradient_kendall", "loo_kendall"]].to_numpy()
    assert kendall == pytest.approx(-1.0)
    # two tokens: attention (1/3, 2/3) against (2/3, 1/3), JSD = ln 2 − H(1/3, 2/3) by hand
    two = against[against["index"] % 6 == 0]
    assert two[JSD].to_numpy() == pytest.approx(math.log(2) - entropy(np.array([1 / 3, 2 / 3])))
    # k = non-zero weights = 2 = n: one discordant pair; Fagin's τ is 1 − 2 · 1 / (2² + 0.5 · 2 · 1), the
    # published one τ-b
    assert two["attention_topk_nz"].to_numpy() == pytest.approx(1 - 2 / 5)
    assert two["attention_topk_ns_nz"].to_numpy() == pytest.approx(-1.0)


def test_one_seed_gives_no_seed_pairs():
    pairs = seed_pairs(tokens_frame(seeds=(1,)))
    assert pairs.empty and {"seed_a", "seed_b", JSD, "attention_kendall"} <= set(pairs.columns)


def test_seed_agreement_sits_beside_the_agreement_between_measures():
    pairs = seed_pairs(tokens_frame(reverse_seeds=(3,)))
    table = seed_agreement(pairs, instances_frame())
    softmax = table[(table["normalizer"] == "softmax") & (table["statistic"] == "Kendall τ")]
    seeds = softmax[softmax["kind"] == "seeds"].set_index("comparison")
    assert list(seeds.index) == ["attention", "gradient", "leave-one-out"]
    # pairs (1, 2) agree, (1, 3) and (2, 3) are reversed: mean (1 − 1 − 1) / 3, over N instances each
    assert seeds["mean"].to_numpy() == pytest.approx(-1 / 3) and (seeds["n"] == 3 * N).all()
    measures = softmax[softmax["kind"] == "measures"].set_index("comparison")
    assert measures.loc["attention vs gradient", "mean"] == pytest.approx(0.12 + 0.3)
    jsd = adversarial_vs_seeds(pairs, instances_frame()).set_index("normalizer")
    assert jsd.loc["softmax", "adversarial_mean"] == pytest.approx(0.4 + 0.01 * np.mean(np.arange(N) % 5))
    assert jsd.loc["softmax", "seeds_n"] == 3 * N and jsd.loc["softmax", "seeds_mean"] > 0


# ---- the verdict --------------------------------------------------------------------------------------


def test_the_verdict_says_above_chance_only_beyond_two_standard_errors():
    pairs = seed_pairs(tokens_frame())
    table = verdict(instances_frame(), pairs)
    assert set(table["statistic"]) == {
        "Kendall τ",
        "top-k τ, k = non-zero",
        "published top-k τ, k = non-zero",
    }
    rows = table[(table["normalizer"] == "softmax") & (table["statistic"] == "Kendall τ")].set_index("pair")
    # per instance, averaged over seeds: chance 0.12; attention vs gradient 0.3 ± 0.05 above it
    difference = 0.3 + 0.05 * np.where(np.arange(N) % 2, -1, 1)
    grad = rows.loc["attention vs gradient"]
    assert grad["value"] == pytest.approx(0.42) and grad["chance"] == pytest.approx(0.12)
    assert grad["difference"] == pytest.approx(0.3)
    assert grad["difference_se"] == pytest.approx(difference.std(ddof=1) / math.sqrt(N))
    assert grad["above_chance"] and grad["n_instances"] == N and grad["n_seeds"] == 3
    loo = rows.loc["attention vs leave-one-out"]
    assert loo["difference"] == pytest.approx(0.0, abs=1e-12) and not loo["above_chance"]
    # identical seeds: both ceilings are 1, and the gap from chance to them is (value − chance) / (1 − chance)
    assert grad["ceiling_attention"] == pytest.approx(1.0) and grad["ceiling_other"] == pytest.approx(1.0)
    assert grad["gap_fraction"] == pytest.approx(0.3 / (1 - 0.12))
    text = verdict_text(table).loc[("sst2", "lstm", "tanh", "softmax", "attention vs gradient", "Kendall τ")]
    assert (text["above chance?"], text["gap covered"]) == ("yes", "34%")
    assert text["value − chance ± 2 SE"] == f"+0.300 ± {2 * grad['difference_se']:.3f}"


@pytest.mark.parametrize(
    ("difference", "headroom", "se", "expected"),
    [
        (0.3, 0.88, 0.01, 0.3 / 0.88),  # the ceiling well above chance
        (
            -0.019,
            0.001,
            0.004,
            math.nan,
        ),  # within noise of chance: measured on SST-2 with the published formula
        (0.1, 0.0, math.nan, math.nan),  # not above chance at all
        (0.1, 0.05, math.nan, 2.0),  # one instance, no standard error: any headroom counts
    ],
)
def test_the_gap_to_the_ceiling_needs_a_ceiling_clearly_above_chance(difference, headroom, se, expected):
    assert gap_fraction(difference, headroom, se) == pytest.approx(expected, nan_ok=True)


def test_the_verdict_without_seeds_or_chance_levels():
    one = verdict(instances_frame(seeds=(1,)), seed_pairs(tokens_frame(seeds=(1,))))
    assert one["ceiling_attention"].isna().all() and one["gap_fraction"].isna().all()
    assert one["above_chance"].notna().all()
    text = verdict_text(one)
    assert (text["ceiling: attention across seeds"] == "—").all() and (text["gap covered"] == "—").all()
    assert verdict(instances_frame(calibrated=False), seed_pairs(tokens_frame())).empty


# ---- beside the published numbers ---------------------------------------------------------------------


def test_the_replication_table_only_for_runs_trained_as_the_papers(tmp_path):
    runs = runs_frame()
    kept, reasons = paper_runs(runs)
    assert len(kept) == len(runs) and reasons == []
    table = comparison(kept)
    assert set(table["table"]) == {"Table 1", "Table 2"}
    published = table[table["metric"].str.startswith("topk_ns_nz")]
    fagin = table[table["metric"].str.startswith("topk_nz")]
    assert len(published) == len(fagin) == 4
    assert published["published_mean"].tolist() == fagin["published_mean"].tolist()
    assert table["chance"].to_numpy() == pytest.approx(0.14)
    parts = report.replication_section(runs, tmp_path)
    assert len(parts) == 1 and "topk_ns_nz/attn_grad/0/mean" in parts[0]
    assert {path.name for path in tmp_path.iterdir()} == {f"replication.{e}" for e in ("csv", "md", "tex")}

    smoke = runs_frame(params=SMOKE)
    assert paper_runs(smoke)[0].empty
    folder = tmp_path / "smoke"
    folder.mkdir()
    (note,) = report.replication_section(smoke, folder)
    assert note.startswith("Left out: no run was trained as the papers trained (data.max_examples = 300; ")
    assert "train.max_epochs = 2 < 10" in note and "\n" not in note.strip() and not any(folder.iterdir())
    few_epochs = runs_frame(params={**PAPER, "param.train.max_epochs": "5"})
    assert paper_runs(few_epochs)[1] == ["train.max_epochs = 5 < 10"]
    unlogged = runs_frame(params={})  # runs without params used the settings' defaults: the papers'
    assert len(paper_runs(unlogged)[0]) == len(unlogged)


# ---- figures ------------------------------------------------------------------------------------------


def dashed_lines(ax) -> list[tuple[str, float]]:
    """The thin dashed vertical lines of an Axes: (colour, x)."""
    return [
        (line.get_color(), float(line.get_xdata()[0]))
        for line in ax.lines
        if line.get_linestyle() == "--" and len(set(line.get_xdata())) == 1
    ]


def test_the_density_figures_draw_each_pairs_chance_level():
    instances = instances_frame()
    setting = {**AXES, "normalizer": "softmax"}
    figure = figures.density_figure(figures.select(instances, setting), setting)
    assert [ax.get_title() for ax in figure.axes] == [s.label for s in registry.STATISTICS]
    for ax in figure.axes:
        assert sorted(dashed_lines(ax)) == sorted(
            (PALETTE["pair"][p.name], pytest.approx(0.12)) for p in PAIRS
        )
    assert figures.CHANCE_NOTE in [
        text.get_text() for legend in figure.legends for text in legend.get_texts()
    ]
    columns = [{**AXES, "normalizer": n} for n in NORMALIZERS]
    grid = figures.normalizer_figure(instances, columns)
    assert len(grid.axes) == len(registry.STATISTICS) * len(NORMALIZERS)
    assert all(len(dashed_lines(ax)) == len(PAIRS) for ax in grid.axes)
    assert figures.CHANCE_NOTE in [text.get_text() for text in grid.legends[0].get_texts()]


def test_old_instances_get_no_chance_lines_and_no_empty_panels():
    instances = instances_frame(calibrated=False)
    setting = {**AXES, "normalizer": "sparsemax"}
    figure = figures.density_figure(figures.select(instances, setting), setting)
    assert [ax.get_title() for ax in figure.axes] == [s.label for s in statistics(False)]
    assert not any(dashed_lines(ax) for ax in figure.axes) and not figure.legends
    grid = figures.normalizer_figure(instances, [setting])
    assert len(grid.axes) == len(statistics(False))


def test_the_seed_figure_shows_both_jsds_per_setting():
    pairs = seed_pairs(tokens_frame(reverse_seeds=(2,)))
    settings = [{**AXES, "normalizer": n} for n in NORMALIZERS]
    figure = figures.seed_jsd_figure(instances_frame(), pairs, settings)
    assert [ax.get_title() for ax in figure.axes] == [f"sst2-lstm-tanh-{n}" for n in NORMALIZERS]
    for ax in figure.axes:
        colours = {colour for colour, _ in dashed_lines(ax)}
        assert colours == set(PALETTE["jsd"].values())


# ---- the report ---------------------------------------------------------------------------------------


def analyse(tmp_path, runs: pd.DataFrame, instances: pd.DataFrame, tokens: pd.DataFrame) -> tuple[set, str]:
    """`analysis.report`'s tables, figures and report.md from frames: the Markdown and PNG files written,
    and the report."""
    pairs = seed_pairs(tokens)
    sections = report.write_tables(runs, instances, pairs, tmp_path / "tables")
    figures.write_figures(instances, report.expected_settings(runs), pairs, tmp_path / "figures")
    text = report.write_report(tmp_path, "synthetic", "sqlite://", runs, sections).read_text()
    files = {str(path.relative_to(tmp_path)) for path in [*tmp_path.rglob("*.png"), *tmp_path.rglob("*.md")]}
    return files, text


@pytest.fixture
def unrendered(monkeypatch):
    """Figures built but saved as empty PNG files: rendering is what makes a figure slow."""

    def save(figure, stem):
        path = stem.parent / f"{stem.name}.png"
        path.touch()
        return [path]

    monkeypatch.setattr(figures, "save", save)


def test_the_report_has_a_section_for_each_new_output(tmp_path, unrendered):
    files, text = analyse(tmp_path, runs_frame(), instances_frame(), tokens_frame(reverse_seeds=(2,)))
    for name in ("seed_agreement", "adversarial_vs_seeds", "verdict", "replication", "table2_topk"):
        assert f"tables/{name}.md" in files
    assert "figures/adversarial_vs_seeds.png" in files
    titles = [line for line in text.splitlines() if line.startswith("## ")]
    assert titles == [
        "## Agreement between measures, against chance",
        "## Agreement between seeds",
        "## Verdict",
        "## Erasure faithfulness",
        "## Beside the published numbers",
        "## Counterfactual attention, model quality, timing",
        "## Figures",
    ]
    assert "Agreement between seeds beside agreement between measures" in text
    assert "Not computed: the trials logged no erasure faithfulness (they predate it)." in text


def test_a_one_seed_smoke_sweep_says_why_its_outputs_are_absent(tmp_path, unrendered):
    runs = runs_frame(params=SMOKE, seeds=(1,))
    files, text = analyse(tmp_path, runs, instances_frame(seeds=(1,)), tokens_frame(seeds=(1,)))
    assert not any(
        name.startswith(("tables/seed", "tables/adversarial", "tables/replication")) for name in files
    )
    assert "figures/adversarial_vs_seeds.png" not in files and "tables/verdict.md" in files
    assert "Not computed: no setting has two finished trials that differ only in seed (seed 1)" in text
    assert "The ceilings need two seeds of a setting" in text
    assert "Left out: no run was trained as the papers trained" in text
