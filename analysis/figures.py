"""The papers' figures from the per-instance artifacts, drawn on Agg canvases (no pyplot global state).

- `density_figure`: per setting, the densities of the per-instance correlations of every logged pair of
  importance measures, one panel per logged statistic (Neely & Schouten 2020, Figures 1 and 2), each
  pair's mean chance level a dashed line; with more than three pairs (captum attributions enabled),
  attention's pairs and the others in separate rows.
- `agreement_figure`: per setting with attributions, the mean τ of every pair as a matrix of measures.
- `counterfactual_figure`: per setting, Jain & Wallace (2019)'s adversarial max-JSD histogram per class,
  max JSD against max attention, and median output change under permutation against max attention.
- `normalizer_figure`: per dataset and encoder, statistics (rows) by attention × normalizer (columns).
- `seed_jsd_figure`: per setting with several seeds, the adversarial max JSD beside the JSD between two
  seeds' attention (Wiegreffe & Pinter 2019).
Instances of all seeds of a setting are pooled. Statistics the instances lack (older trials) get no panel.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy.stats import gaussian_kde

from analysis.names import (
    PALETTE,
    class_colour,
    class_ids,
    class_name,
    dataset_classes,
    logged_statistics,
    num_classes,
    setting_name,
    setting_title,
    with_attention,
)
from analysis.seeds import JSD
from trainables import registry
from trainables.registry import Pair, Statistic

FORMATS = ("png", "svg", "pdf")
TAU = np.linspace(-1, 1, 401)
TAU_TICKS = np.linspace(-1, 1, 5)
TAU_BINS = np.linspace(-1, 1, 21)
MIN_KDE_POINTS = 10  # fewer points: a density histogram instead of a kernel estimate
JSD_MAX = math.log(2)  # JSD in nats is at most ln 2
JSD_HIGH = registry.JSD_HIGH
DIFF_SMALL = registry.DIFF_SMALL
PANELS_PER_ROW = 3  # statistics per row of a density or agreement figure
CHANCE_NOTE = "dashed: the pair's mean chance level (scores shuffled)"
LEGEND_ENTRY_WIDTH = 4.5  # inches a figure legend's column takes, at most
DENSITY_LABEL = "probability density (per unit τ)"
TAU_LABEL = "rank correlation τ (−1 to 1)"
COUNTERFACTUAL_COLUMNS = ("adv_max_jsd", "adv_found", "max_attention", "perm_median_diff")


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, stem: Path) -> list[Path]:
    """`stem`.png (150 dpi), .svg and .pdf."""
    paths = [stem.parent / f"{stem.name}.{extension}" for extension in FORMATS]
    for path in paths:
        figure.savefig(path, dpi=150)
    return paths


def select(frame: pd.DataFrame, setting: dict) -> pd.DataFrame:
    """The rows of `frame` whose axis columns equal `setting`'s values."""
    mask = np.ones(len(frame), dtype=bool)
    for axis, value in setting.items():
        mask &= (frame[axis] == value).to_numpy()
    return frame[mask]


def seeds_text(instances: pd.DataFrame) -> str:
    seeds = sorted(instances["seed"].unique())
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def draw_density(ax: Axes, values: np.ndarray, colour: str, label: str) -> None:
    """Kernel density of the finite `values` on [-1, 1], or a density histogram when too few or all equal."""
    values = values[np.isfinite(values)]
    if len(values) >= MIN_KDE_POINTS and np.ptp(values) > 0:
        try:
            density = gaussian_kde(values)(TAU)
        except np.linalg.LinAlgError:
            density = None
        if density is not None:
            ax.plot(TAU, density, color=colour, lw=2, label=f"{label} (n={len(values)})")
            ax.fill_between(TAU, density, color=colour, alpha=0.12)
            return
    if len(values):
        ax.hist(
            values,
            bins=TAU_BINS,
            density=True,
            histtype="step",
            lw=2,
            color=colour,
            label=f"{label} (n={len(values)}, histogram)",
        )
    else:
        ax.plot([], [], color=colour, label=f"{label} (no defined values)")


def draw_statistic(ax: Axes, instances: pd.DataFrame, statistic: str, pairs: tuple[Pair, ...]) -> bool:
    """The densities of one statistic for `pairs`, overlaid, and each pair's mean chance level as a thin
    dashed line in its colour where the instances have one; returns whether any chance line was drawn."""
    chance_drawn = False
    for pair in pairs:
        colour = PALETTE["pair"][pair.name]
        values = instances[f"{statistic}_{pair.name}"].to_numpy(float)
        draw_density(ax, values, colour, pair.label)
        chance = instances.get(registry.chance_column(statistic, pair.name))
        if chance is not None and chance.notna().any():
            ax.axvline(chance.mean(), color=colour, lw=1, ls="--")
            chance_drawn = True
    ax.axvline(0, color="0.5", lw=0.8, ls=":")
    ax.set_xlim(-1, 1)
    ax.set_xticks(TAU_TICKS)
    ax.grid(alpha=0.3)
    return chance_drawn


def legend_columns(figure: Figure, entries: int) -> int:
    """Columns for a figure legend of `entries` below the panels, as many as fit the figure's width."""
    return max(1, min(entries, int(figure.get_figwidth() // LEGEND_ENTRY_WIDTH)))


def chance_legend(figure: Figure) -> None:
    """A figure-level note on the dashed chance lines, below the panels."""
    handle = Line2D([], [], color="0.3", lw=1, ls="--")
    figure.legend([handle], [CHANCE_NOTE], loc="outside lower center", fontsize="small", frameon=False)


def panel_figure(groups: int, panels: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    """A figure of `groups` blocks of `panels` panels, `PANELS_PER_ROW` a row, each `width` × `height`
    inches, and its axes, shape (groups, panels); unused slots of a block's last row are removed."""
    columns = min(panels, PANELS_PER_ROW)
    rows = math.ceil(panels / columns)
    figure = new_figure(width * columns, height * rows * groups + 0.8)
    blocks = figure.subplots(rows * groups, columns, squeeze=False).reshape(groups, rows * columns)
    for ax in blocks[:, panels:].ravel():
        ax.remove()
    return figure, blocks[:, :panels]


def pair_rows(pairs: tuple[Pair, ...]) -> list[tuple[str, tuple[Pair, ...]]]:
    """The pairs in one row, or, when there are more than three, attention's pairs and the others."""
    if len(pairs) <= 3:
        return [("", pairs)]
    attention = tuple(pair for pair in pairs if pair.first.name == "attention")
    others = tuple(pair for pair in pairs if pair.first.name != "attention")
    return [("attention vs importance measures\n", attention), ("between importance measures\n", others)]


def density_figure(instances: pd.DataFrame, setting: dict) -> Figure:
    """One panel per logged statistic, the logged pairs overlaid with their chance levels (Neely &
    Schouten 2020, Figures 1 and 2)."""
    rows = pair_rows(registry.logged_pairs(instances.columns))
    statistics = logged_statistics(instances.columns)
    figure, axes = panel_figure(len(rows), len(statistics), 5, 4.6)
    chance = False
    for (title, pairs), row in zip(rows, axes, strict=True):
        for ax, statistic in zip(row, statistics, strict=True):
            chance |= draw_statistic(ax, instances, statistic.name, pairs)
            ax.set_title(title + statistic.label)
            ax.set_xlabel(TAU_LABEL)
            ax.set_ylabel(DENSITY_LABEL)
            ax.legend(fontsize="small", loc="upper left")
            ax.set_ylim(bottom=0)
    if chance:
        chance_legend(figure)
    figure.suptitle(
        f"How far importance rankings agree: {setting_title(setting)}\n"
        f"per-instance τ over {len(instances)} test instances ({seeds_text(instances)})"
    )
    return figure


def agreement_figure(instances: pd.DataFrame, setting: dict) -> Figure:
    """Per logged statistic, a measures × measures matrix of the mean per-instance τ of every logged pair."""
    pairs = registry.logged_pairs(instances.columns)
    statistics = logged_statistics(instances.columns)
    measures = list(dict.fromkeys(m for pair in pairs for m in (pair.first, pair.second)))
    index = {measure.name: i for i, measure in enumerate(measures)}
    figure, axes = panel_figure(1, len(statistics), 5.4, 5.2)
    axes = axes[0]
    for ax, statistic in zip(axes, statistics, strict=True):
        matrix = np.full((len(measures), len(measures)), np.nan)
        np.fill_diagonal(matrix, 1.0)
        for pair in pairs:
            mean = float(np.nanmean(instances[f"{statistic.name}_{pair.name}"].to_numpy(float)))
            i, j = index[pair.first.name], index[pair.second.name]
            matrix[i, j] = matrix[j, i] = mean
        image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
        for (i, j), value in np.ndenumerate(matrix):
            if i != j:
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize="small")
        labels = [measure.label for measure in measures]
        ax.set_xticks(range(len(measures)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(measures)), labels)
        ax.set_title(f"mean {statistic.short_label}")
    figure.colorbar(image, ax=list(axes), shrink=0.8, label="mean per-instance τ (−1 to 1)")
    figure.suptitle(
        f"Agreement between every pair of importance measures: {setting_title(setting)}\n"
        f"{len(instances)} test instances ({seeds_text(instances)})"
    )
    return figure


def class_parts(instances: pd.DataFrame, dataset: str) -> list[tuple[str, pd.DataFrame]]:
    """The instances of each class of `dataset` (those it names, and any other true label there)."""
    labels = dataset_classes(dataset, class_ids(instances["label"].unique()))
    return [(label, instances[instances["label"] == int(label)]) for label in labels]


def output_change_label(dataset: str, labels: pd.Series) -> str:
    """The permutation panel's y label: |Δ P(class 1)| for two classes, the total variation distance
    between output distributions (which it equals for two) for more."""
    if num_classes(dataset, labels.unique()) > 2:
        return "median output change (probability)\ntotal variation distance, |Δ P| for two classes"
    name = class_name(dataset, 1).removesuffix(" (1)")
    return f"median |Δ P({name})| (probability)"


def counterfactual_figure(instances: pd.DataFrame, setting: dict) -> Figure:
    """Jain & Wallace (2019): adversarial max JSD per class; JSD and permutation effect by max attention."""
    figure = new_figure(16, 5)
    hist, jsd, perm = figure.subplots(1, 3)
    bins = np.linspace(0, JSD_MAX, 24)
    dataset = setting["dataset"]
    for label, part in class_parts(instances, dataset):
        if part.empty:
            continue
        colour, name = class_colour(label), class_name(dataset, label)
        bars = {"bins": bins, "weights": np.full(len(part), 1 / len(part)), "color": colour}
        hist.hist(part["adv_max_jsd"], alpha=0.35, **bars)
        hist.hist(part["adv_max_jsd"], histtype="step", lw=2, label=f"{name}, n={len(part)}", **bars)
        dots = {"s": 14, "alpha": 0.6, "color": colour, "label": name}
        found = part[part["adv_found"].astype(bool)]
        jsd.scatter(found["max_attention"], found["adv_max_jsd"], **dots)
        perm.scatter(part["max_attention"], part["perm_median_diff"], **dots)
    infeasible = instances[~instances["adv_found"].astype(bool)]
    jsd.scatter(
        infeasible["max_attention"],
        infeasible["adv_max_jsd"],
        s=22,
        marker="x",
        color=PALETTE["infeasible"],
        label=f"no adversary within ε (n={len(infeasible)})",
    )
    hist.axvline(JSD_HIGH, color="0.3", ls="--", lw=1, label="JSD = 0.5")
    jsd.axhline(JSD_HIGH, color="0.3", ls="--", lw=1, label="JSD = 0.5")
    perm.axhline(DIFF_SMALL, color="0.3", ls="--", lw=1, label="change = 0.01")
    hist.set(
        title="Adversarial attention: max JSD per class",
        xlabel="max JSD, adversarial vs original attention (nats, ≤ ln 2)",
        ylabel="fraction of the class's instances",
        xlim=(0, JSD_MAX),
    )
    jsd.set(
        title="Max JSD against peak attention",
        xlabel="max attention weight (probability)",
        ylabel="max JSD (nats)",
        xlim=(0, 1.02),
        ylim=(-0.02, JSD_MAX),
    )
    perm.set(
        title="Permuted attention: output change",
        xlabel="max attention weight (probability)",
        ylabel=output_change_label(dataset, instances["label"]),
        xlim=(0, 1.02),
    )
    perm.set_ylim(bottom=0)
    for ax in (hist, jsd, perm):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle(
        f"Counterfactual attention: {setting_title(setting)}\n"
        f"{len(instances)} test instances ({seeds_text(instances)}), by true class"
    )
    return figure


def normalizer_figure(instances: pd.DataFrame, columns: list[dict]) -> Figure:
    """Logged statistics (rows) by settings (columns, e.g. attention × normalizer of one dataset), pairs
    overlaid with their chance levels; shared axes per row so the normalizers compare at a glance.
    Settings without instances say so."""
    pairs = with_attention(registry.logged_pairs(instances.columns))
    statistics: tuple[Statistic, ...] = logged_statistics(instances.columns)
    figure = new_figure(max(3.9 * len(columns) + 1.2, 9), 3.2 * len(statistics) + 1.6)
    axes = figure.subplots(len(statistics), len(columns), sharex=True, sharey="row", squeeze=False)
    chance = False
    for column, setting in enumerate(columns):
        part = select(instances, setting)
        for row, statistic in enumerate(statistics):
            ax = axes[row, column]
            if part.empty:
                ax.text(
                    0.5,
                    0.5,
                    "no finished trial",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    color="0.4",
                )
                ax.set_xlim(-1, 1)
            else:
                chance |= draw_statistic(ax, part, statistic.name, pairs)
            if column == 0:
                ax.set_ylabel(f"{statistic.short_label}\n{DENSITY_LABEL}")
            if row == len(statistics) - 1:
                ax.set_xlabel(TAU_LABEL)
        top = axes[0, column]
        colour = PALETTE["normalizer"].get(setting["normalizer"], "black")
        label = f"{setting['attention']} attention · {setting['normalizer']}"
        top.set_title(f"{label}\n({len(part)} instances)", color=colour, fontweight="bold")
    for ax in axes[:, 0]:
        ax.set_ylim(bottom=0)  # after drawing: an earlier limit would stop the shared row autoscaling
    handles, labels = next(
        (ax.get_legend_handles_labels() for ax in axes[0] if ax.get_legend_handles_labels()[0]), ([], [])
    )
    labels = [text.split(" (")[0] for text in labels]
    if chance:
        handles, labels = [*handles, Line2D([], [], color="0.3", lw=1, ls="--")], [*labels, CHANCE_NOTE]
    figure.legend(handles, labels, loc="outside lower center", ncols=legend_columns(figure, len(labels)))
    first = columns[0]
    figure.suptitle(
        f"{first['dataset']} · {first['encoder']} encoder: agreement of importance rankings by attention "
        f"and normalizer\n(densities of per-instance τ over test instances, all seeds pooled)"
    )
    return figure


def seed_jsd_figure(instances: pd.DataFrame, pairs: pd.DataFrame, settings: list[dict]) -> Figure:
    """Per setting with seed pairs, the distribution of Jain & Wallace's adversarial max JSD (instances of
    all seeds) beside that of the JSD between two seeds' attention of the same instance (Wiegreffe &
    Pinter 2019): an adversary means little if another seed diverges as far."""
    columns = min(len(settings), 4)
    rows = math.ceil(len(settings) / columns)
    figure = new_figure(4.2 * columns + 0.6, 3.4 * rows + 1.4)
    grid = figure.subplots(rows, columns, sharex=True, squeeze=False).ravel()
    bins = np.linspace(0, JSD_MAX, 24)
    kinds = (
        ("adversarial max JSD (Jain & Wallace)", PALETTE["jsd"]["adversarial"]),
        ("JSD between seeds' attention (Wiegreffe & Pinter)", PALETTE["jsd"]["seeds"]),
    )
    for number, ax in enumerate(grid):
        if number >= len(settings):
            ax.remove()
            continue
        setting = settings[number]
        part = select(instances, setting)
        adversarial = part["adv_max_jsd"] if "adv_max_jsd" in part else pd.Series(dtype=float)
        for values, (label, colour) in zip((adversarial, select(pairs, setting)[JSD]), kinds, strict=True):
            values = values.dropna().to_numpy(float)
            if not len(values):
                continue
            weights = np.full(len(values), 1 / len(values))
            ax.hist(values, bins=bins, weights=weights, color=colour, alpha=0.3)
            ax.hist(values, bins=bins, weights=weights, color=colour, histtype="step", lw=2, label=label)
            ax.axvline(values.mean(), color=colour, ls="--", lw=1)
        ax.set_title(setting_name(setting), fontsize="medium")
        ax.set_xlim(0, JSD_MAX)
        ax.grid(alpha=0.3)
        if number % columns == 0:
            ax.set_ylabel("fraction of instances")
        if number + columns >= len(settings):
            ax.set_xlabel("JSD (nats, ≤ ln 2)")
    handles = [Line2D([], [], color=colour, lw=2) for _, colour in kinds]
    handles.append(Line2D([], [], color="0.3", lw=1, ls="--"))
    labels = [label for label, _ in kinds] + ["dashed: the mean"]
    figure.legend(handles, labels, loc="outside lower center", ncols=legend_columns(figure, len(labels)))
    figure.suptitle(
        "Adversarial attention against another seed: how far attention distributions diverge\n"
        "(per test instance; seeds pooled for the adversary, every pair of seeds for the seed JSD)"
    )
    return figure


def has_counterfactual(instances: pd.DataFrame) -> bool:
    return all(c in instances for c in COUNTERFACTUAL_COLUMNS) and instances["adv_max_jsd"].notna().any()


def write_figures(
    instances: pd.DataFrame, settings: pd.DataFrame, seed_pairs: pd.DataFrame, folder: Path
) -> list[Path]:
    """Every figure for the expected `settings` into `folder`; settings without instances get no
    per-setting figure and an empty panel in their dataset's normalizer figure. The seed figure is drawn
    where `seed_pairs` (`analysis.seeds.seed_pairs`) has rows: only a sweep of several seeds has them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    records = settings.to_dict("records")
    for setting in records:
        part = select(instances, setting)
        if part.empty:
            continue
        name = setting_name(setting)
        paths += save(density_figure(part, setting), folder / f"density_{name}")
        if len(registry.logged_pairs(part.columns)) > 3:
            paths += save(agreement_figure(part, setting), folder / f"agreement_{name}")
        if has_counterfactual(part):
            paths += save(counterfactual_figure(part, setting), folder / f"counterfactual_{name}")
    for (dataset, encoder), group in settings.groupby(["dataset", "encoder"], sort=False):
        figure = normalizer_figure(instances, group.to_dict("records"))
        paths += save(figure, folder / f"normalizers_{dataset}-{encoder}")
    with_seeds = [setting for setting in records if not select(seed_pairs, setting).empty]
    if with_seeds:
        paths += save(seed_jsd_figure(instances, seed_pairs, with_seeds), folder / "adversarial_vs_seeds")
    return paths
