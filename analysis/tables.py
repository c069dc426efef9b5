"""The papers' tables as specs of logged metrics, built into a numeric long frame and a formatted wide one.

The long frame (written as CSV) has one row per setting and cell with the numbers: mean, within_std,
seed_std, n_seeds and the metric names they come from; a correlation cell whose runs logged chance levels
also has its `chance` and `above_chance` (value − chance, run by run, then the mean over seeds, with its
std across seeds). The wide frame (Markdown, LaTeX) holds the same numbers as text, "0.280 ± 0.221
(seeds ± 0.010, n=3)", a correlation's chance level and its value above chance in columns beside it,
with "—" where no trial finished or the trial logged no such number.

A per-class table has a row per class of each setting's dataset, named by that dataset ("negative (0)",
"entailment (0)"): the classes are those the runs' datasets name (`trainables.settings.CLASS_NAMES`) and
those the runs logged metrics for, so a sweep of several datasets shows each with its own classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from analysis.aggregate import SUMMARY_COLUMNS, axis_values, seed_summary
from analysis.names import (
    ALL_CLASSES,
    SETTING,
    class_ids,
    class_name,
    logged_chance,
    logged_statistics,
    run_classes,
)
from trainables import registry
from trainables.registry import correlation_metric as metric

MISSING = "—"
VALUE = "τ mean ± std"
CHANCE = "chance"
ABOVE = "above chance"
CHANCE_COLUMNS = ["chance_metric", "chance", "above_chance", "above_chance_seed_std"]
CLASS = "class"  # the label level of a per-class table: a row level, its cells' labels the class keys


@dataclass(frozen=True)
class Cell:
    """One logged metric shown in a table, its labels (one per level), its within-trial std metric and
    the metric of its chance level: a cell with one also shows the chance level and the value above it,
    in columns whose last label is `CHANCE` and `ABOVE` instead of its own."""

    metric: str
    labels: tuple[str, ...]
    spread: str | None = None
    chance: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """A table: its file name, caption, label levels (those in `row_levels` go to rows) and cells. A cell's
    label at the `CLASS` level (a row level) is a class key ("all", "0", ...), named row by row by the
    setting's dataset."""

    name: str
    caption: str
    levels: tuple[str, ...]
    cells: tuple[Cell, ...]
    row_levels: tuple[str, ...] = ()
    normalizers: tuple[str, ...] | None = None  # keep only these normalizers' settings

    def __post_init__(self) -> None:
        if CLASS in self.levels and CLASS not in self.row_levels:
            raise ValueError(
                f"table {self.name}: the {CLASS!r} level is named per row, so it must be a row level"
            )


def classes(runs: pd.DataFrame) -> tuple[str, ...]:
    """The true labels of every dataset of the runs (their union, in order): a per-class table's classes."""
    return class_ids(label for labels in run_classes(runs).values() for label in labels)


def multi_class(runs: pd.DataFrame) -> bool:
    """Whether some dataset of the runs has more than two classes."""
    return any(len(labels) > 2 for labels in run_classes(runs).values())


def correlation_cell(runs: pd.DataFrame, statistic: str, pair: str, label: str, labels: tuple) -> Cell:
    """The mean of a correlation over instances, its std, and its chance level where the runs logged any."""
    chance = metric(statistic, pair, label, "chance") if logged_chance(runs.columns) else None
    return Cell(
        metric(statistic, pair, label, "mean"),
        (*labels, VALUE),
        metric(statistic, pair, label, "std"),
        chance,
    )


def chance_caption(runs: pd.DataFrame) -> str:
    """What the chance columns mean, for runs that logged chance levels."""
    if not logged_chance(runs.columns):
        return ""
    return (
        ", its chance level (the mean with the second measure's scores shuffled over each instance's "
        "tokens) and the value above it"
    )


def table1_kendall(runs: pd.DataFrame) -> TableSpec:
    """Neely & Schouten (2020) Table 1 (after Jain & Wallace 2019 Table 2): softmax attention only."""
    cells = []
    for label in classes(runs):
        for pair, importance in (("attn_grad", "gradient"), ("attn_loo", "leave-one-out")):
            labels = (label, importance)
            cells.append(correlation_cell(runs, "kendall", pair, label, labels))
            cells.append(Cell(metric("kendall", pair, label, "sig_frac"), (*labels, "sig. frac.")))
    return TableSpec(
        "table1_kendall_softmax",
        "Kendall τ between softmax attention and gradient or leave-one-out importance, per true class: "
        f"mean ± std over test instances{chance_caption(runs)}, and the fraction of instances whose τ is "
        f"significant (p < {registry.SIGNIFICANCE}). After Neely & Schouten (2020), Table 1.",
        ("class", "importance", "statistic"),
        tuple(cells),
        row_levels=("class",),
        normalizers=("softmax",),
    )


def table2_topk(runs: pd.DataFrame) -> TableSpec:
    """Neely & Schouten (2020) Table 2: the top-k τ of every logged pair, for every normalizer, with
    Fagin's formula and (where logged) the published one, at both k."""
    statistics = [statistic for statistic in logged_statistics(runs.columns) if statistic.k is not None]
    cells = [
        correlation_cell(runs, statistic.name, pair.name, label, (label, pair.label, statistic.short_label))
        for label in classes(runs)
        for pair in registry.logged_pairs(runs.columns)
        for statistic in statistics
    ]
    formulas = {statistic.formula for statistic in statistics}
    published = (
        ' "top-k τ" is Fagin et al.\'s (disjoint lists: −1), "published top-k τ" the formula of Neely & '
        "Schouten's released code (disjoint lists: 0.75 or more; docs/METRICS.md)."
        if "topk_published" in formulas
        else ""
    )
    return TableSpec(
        "table2_topk",
        "Top-k Kendall τ between importance measures per true class: mean ± std over test instances"
        f"{chance_caption(runs)}; k is the mean test length, or the instance's number of non-zero "
        f"attention weights.{published} After Neely & Schouten (2020), Table 2.",
        ("class", "pair", "correlation", "statistic"),
        tuple(cells),
        row_levels=("class", "pair"),
    )


def agreement(runs: pd.DataFrame) -> TableSpec:
    """Kendall τ of every logged pair of measures over all test instances: with attributions enabled,
    how attention compares with Integrated Gradients, DeepLIFT and LIME, and how they compare with each
    other."""
    cells = []
    for pair in registry.logged_pairs(runs.columns):
        cells.append(correlation_cell(runs, "kendall", pair.name, "all", (pair.label,)))
        cells.append(Cell(metric("kendall", pair.name, "all", "sig_frac"), (pair.label, "sig. frac.")))
    return TableSpec(
        "agreement_all_pairs",
        "Kendall τ between every pair of importance measures the trials computed, over all test "
        f"instances: mean ± std{chance_caption(runs)}, and the fraction of instances whose τ is "
        f"significant (p < {registry.SIGNIFICANCE}).",
        ("pair", "statistic"),
        tuple(cells),
    )


def output_change_caption(runs: pd.DataFrame) -> str:
    """What "the output probability" changing means for a dataset of more than two classes."""
    if not multi_class(runs):
        return ""
    return (
        " With more than two classes, the change of the output is the total variation distance between "
        "the output distributions (|Δ P| for two classes)."
    )


def counterfactual(runs: pd.DataFrame) -> TableSpec:
    """Jain & Wallace (2019) adversarial attention and permutation summaries."""
    cells = [
        Cell(f"{search}/{label}/{stat}", (label, search, text))
        for label in (ALL_CLASSES, *classes(runs))
        for search, names in registry.COUNTERFACTUAL_SUMMARIES.items()
        for stat, text in names.items()
    ]
    return TableSpec(
        "counterfactual",
        "Counterfactual attention per true class (Jain & Wallace 2019). Adversarial: the largest "
        "Jensen-Shannon divergence (nats, at most ln 2) from the original attention of an attention "
        "distribution that changes the output probability by less than ε, and the fractions of instances "
        f"with JSD ≥ {registry.JSD_HIGH} and with no such adversary (counted as JSD 0). Permutation: the "
        "median absolute change of the output probability when the attention weights are shuffled, and "
        f"the fraction of instances where it is below {registry.DIFF_SMALL}.{output_change_caption(runs)}",
        ("class", "search", "statistic"),
        tuple(cells),
        row_levels=("class",),
    )


def model_quality(runs: pd.DataFrame) -> TableSpec:
    """Test-set accuracy, macro F1 and AUC, and how much of the training text had pretrained vectors."""
    names = {
        "test/accuracy": "accuracy",
        "test/f1": "F1 (macro)",
        "test/auc": "AUC",
        "embeddings/token_coverage": "pretrained token coverage",
    }
    return TableSpec(
        "model_quality",
        "Test-set classification with the weights of the best validation AUC (with more than two classes, "
        "AUC is one-vs-rest and macro-averaged); pretrained token coverage: the share of training tokens "
        "whose embedding started from a pretrained vector (0: random).",
        ("statistic",),
        tuple(Cell(name, (text,)) for name, text in names.items()),
    )


def timing(runs: pd.DataFrame) -> TableSpec:
    """Wall seconds of each phase the trials timed (the registry's phases, attributions included)."""
    phases = {phase: text for phase, text in registry.PHASES.items() if f"time/{phase}_s" in runs.columns}
    return TableSpec(
        "timing",
        "Wall-clock seconds per trial phase on the machine that ran the sweep (training: all epochs).",
        ("phase",),
        tuple(Cell(f"time/{phase}_s", (text,)) for phase, text in phases.items()),
    )


def faithfulness(runs: pd.DataFrame) -> TableSpec:
    """Erasure faithfulness (DeYoung et al. 2020) of every logged measure per class, each beside the same
    with tokens in random order (the chance columns) and the difference."""
    orders = registry.logged_erasure_orders(runs.columns)
    measures = [order for order in orders if order != registry.RANDOM_ORDER]
    random = registry.RANDOM_ORDER.short if registry.RANDOM_ORDER in orders else None
    cells = [
        Cell(
            registry.erasure_metric(erasure, measure.short, label, "mean"),
            (label, measure.label, erasure, "AOPC mean ± std"),
            registry.erasure_metric(erasure, measure.short, label, "std"),
            registry.erasure_metric(erasure, random, label, "mean") if random else None,
        )
        for label in (ALL_CLASSES, *classes(runs))
        for measure in measures
        for erasure in registry.ERASURES
    ]
    percents = registry.ERASURE_PERCENTS
    return TableSpec(
        "faithfulness",
        "Erasure faithfulness per true class (DeYoung et al. 2020, ERASER): for each test instance, the "
        f"measure's top {percents[0]}%, {percents[1]}%, ..., {percents[-1]}% of tokens (rounded up) are "
        "deleted (comprehensiveness) or kept alone (sufficiency), and the drop in the predicted class's "
        "probability is averaged over the percentages (AOPC); mean ± std over test instances. A measure "
        "whose top tokens the prediction rests on has high comprehensiveness and low sufficiency. chance: "
        "the same with the tokens in random order; above chance: the measure's value minus it.",
        ("class", "measure", "erasure", "statistic"),
        tuple(cells),
        row_levels=("class", "measure"),
    )


TABLES = (table1_kendall, table2_topk, agreement, faithfulness, counterfactual, model_quality, timing)


def long_table(spec: TableSpec, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per setting and cell: setting axes, labels, metric names and the seed summary numbers; with
    `CHANCE_COLUMNS` where a cell has a chance level. A per-class cell has rows only for the settings
    whose dataset has its class, which is named by that dataset."""
    calibrated = any(cell.chance for cell in spec.cells)
    datasets = run_classes(runs)
    parts = []
    for order, cell in enumerate(spec.cells):
        summary = seed_summary(runs, cell.metric, cell.spread)
        labels = dict(zip(spec.levels, cell.labels, strict=True))
        if CLASS in labels:
            summary, labels[CLASS] = per_class(summary, labels[CLASS], datasets)
        names = {"metric": cell.metric, "spread_metric": cell.spread or ""}
        if calibrated:
            above = seed_summary(runs, cell.metric, minus=cell.chance) if cell.chance else None
            summary = summary.assign(
                chance_metric=cell.chance or "",
                chance=seed_summary(runs, cell.chance)["mean"] if cell.chance else math.nan,
                above_chance=above["mean"] if cell.chance else math.nan,
                above_chance_seed_std=above["seed_std"] if cell.chance else math.nan,
            )
        parts.append(summary.assign(**labels, **names, cell=order).rename_axis("setting").reset_index())
    table = pd.concat(parts, ignore_index=True).sort_values(["setting", "cell"], kind="stable")
    if spec.normalizers is not None:
        table = table[table["normalizer"].isin(spec.normalizers)]
    columns = [*SETTING, *spec.levels, "metric", "spread_metric", *SUMMARY_COLUMNS]
    if calibrated:
        columns += CHANCE_COLUMNS
    return table[columns].reset_index(drop=True)


def per_class(
    summary: pd.DataFrame, label: str, datasets: dict[str, tuple[str, ...]]
) -> tuple[pd.DataFrame, list[str]]:
    """The rows of a `seed_summary` of class `label` whose dataset has it, and the class's name in each."""
    if label != ALL_CLASSES:
        summary = summary[[label in datasets.get(dataset, ()) for dataset in summary["dataset"]]]
    return summary, [class_name(dataset, label) for dataset in summary["dataset"]]


def format_cell(mean: float, within_std: float, seed_std: float, n_seeds: int, several_seeds: bool) -> str:
    """ "0.280 ± 0.221 (seeds ± 0.010, n=3)"; the seed part only in a sweep of several seeds."""
    if n_seeds == 0:
        return MISSING
    text = f"{mean:.3f}" if math.isnan(within_std) else f"{mean:.3f} ± {within_std:.3f}"
    if several_seeds:
        text += f" (seeds ± {seed_std:.3f}, n={n_seeds})" if n_seeds > 1 else " (n=1)"
    return text


def format_number(value: float, signed: bool = False) -> str:
    """ "0.312", or "+0.267" when `signed`; "—" for NaN, and never "-0.000"."""
    if math.isnan(value):
        return MISSING
    value = round(value, 3) + 0.0  # -0.0 + 0.0 is 0.0
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def cell_texts(record: dict, several_seeds: bool) -> dict[str, str]:
    """A long-table row's text by the last label of its column: its own, and `CHANCE` and `ABOVE` when
    it has a chance level."""
    texts = {
        "": format_cell(
            record["mean"], record["within_std"], record["seed_std"], record["n_seeds"], several_seeds
        )
    }
    if record.get("chance_metric"):
        texts[CHANCE] = format_number(record["chance"])
        texts[ABOVE] = format_number(record["above_chance"], signed=True)
    return texts


def column_labels(cell: Cell, labels: tuple[str, ...]) -> list[tuple[str, ...]]:
    """A cell's column keys in the wide table: `labels`, then with `CHANCE` and `ABOVE` as the last label
    when it has a chance level."""
    if cell.chance is None:
        return [labels]
    return [labels, (*labels[:-1], CHANCE), (*labels[:-1], ABOVE)]


def wide_table(spec: TableSpec, long: pd.DataFrame, several_seeds: bool) -> pd.DataFrame:
    """Formatted text cells: rows are settings (and `row_levels`), columns the other label levels."""
    fixed = ("normalizer",) if spec.normalizers is not None and len(spec.normalizers) == 1 else ()
    rows = [axis for axis in SETTING if axis not in fixed] + list(spec.row_levels)
    columns = [level for level in spec.levels if level not in spec.row_levels]
    text = {}
    for record in long.to_dict("records"):
        row, column = tuple(record[r] for r in rows), tuple(record[c] for c in columns)
        for last, cell in cell_texts(record, several_seeds).items():
            text[row, (*column[:-1], last) if last else column] = cell
    row_keys = list(dict.fromkeys(key for key, _ in text))
    level_of = dict(zip(spec.levels, range(len(spec.levels)), strict=True))
    column_keys = list(
        dict.fromkeys(
            key
            for cell in spec.cells
            for key in column_labels(cell, tuple(cell.labels[level_of[c]] for c in columns))
        )
    )
    data = [[text.get((row, column), MISSING) for column in column_keys] for row in row_keys]
    return pd.DataFrame(data, index=make_index(row_keys, rows), columns=make_index(column_keys, columns))


def make_index(keys: list[tuple], names: list[str]) -> pd.Index:
    """A MultiIndex, or a flat Index when there is one level (pandas shows 1-tuples as "('x',)")."""
    if len(names) == 1:
        return pd.Index([key[0] for key in keys], name=names[0])
    return pd.MultiIndex.from_tuples(keys, names=names)


def build(spec: TableSpec, runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The numeric long table and the formatted wide table of `spec` for these runs."""
    long = long_table(spec, runs)
    return long, wide_table(spec, long, several_seeds=len(axis_values(runs)["seed"]) > 1)
