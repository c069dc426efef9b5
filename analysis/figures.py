"""The papers' figures from the per-instance artifacts, drawn on Agg canvases (no pyplot global state).

- `density_figure`: per setting, the densities of the per-instance correlations of every logged pair of
  importance measures, one panel per statistic (Neely & Schouten 2020, Figures 1 and 2); with more than
  three pairs (captum attributions enabled), attention's pairs and the others in two rows.
- `agreement_figure`: per setting with attributions, the mean τ of every pair as a matrix of measures.
- `counterfactual_figure`: per setting, Jain & Wallace (2019)'s adversarial max-JSD histogram per class,
  max JSD against max attention, and median output change under permutation against max attention.
- `normalizer_figure`: per dataset and encoder, measures (rows) by attention × normalizer (columns).
Instances of all seeds of a setting are pooled.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import gaussian_kde

from analysis.names import CLASSES, PALETTE, setting_name, setting_title, with_attention
from trainables import registry
from trainables.registry import Pair

FORMATS = ("png", "svg", "pdf")
TAU = np.linspace(-1, 1, 401)
TAU_TICKS = np.linspace(-1, 1, 5)
TAU_BINS = np.linspace(-1, 1, 21)
MIN_KDE_POINTS = 10  # fewer points: a density histogram instead of a kernel estimate
JSD_MAX = math.log(2)  # JSD in nats is at most ln 2
JSD_HIGH = registry.JSD_HIGH
DIFF_SMALL = registry.DIFF_SMALL
STATISTICS = registry.STATISTICS
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


def draw_statistic(ax: Axes, instances: pd.DataFrame, statistic: str, pairs: tuple[Pair, ...]) -> None:
    """The densities of one statistic for `pairs`, overlaid."""
    for pair in pairs:
        values = instances[f"{statistic}_{pair.name}"].to_numpy(float)
        draw_density(ax, values, PALETTE["pair"][pair.name], pair.label)
    ax.axvline(0, color="0.5", lw=0.8, ls=":")
    ax.set_xlim(-1, 1)
    ax.set_xticks(TAU_TICKS)
    ax.grid(alpha=0.3)


def pair_rows(pairs: tuple[Pair, ...]) -> list[tuple[str, tuple[Pair, ...]]]:
    """The pairs in one row, or, when there are more than three, attention's pairs and the others."""
    if len(pairs) <= 3:
        return [("", pairs)]
    attention = tuple(pair for pair in pairs if pair.first.name == "attention")
    others = tuple(pair for pair in pairs if pair.first.name != "attention")
    return [("attention vs importance measures\n", attention), ("between importance measures\n", others)]


def density_figure(instances: pd.DataFrame, setting: dict) -> Figure:
    """One panel per statistic, the logged pairs overlaid (Neely & Schouten 2020, Figures 1 and 2)."""
    rows = pair_rows(registry.logged_pairs(instances.columns))
    figure = new_figure(15, 4.8 * len(rows))
    axes = figure.subplots(len(rows), len(STATISTICS), sharex=True, squeeze=False)
    for (title, pairs), row in zip(rows, axes, strict=True):
        for ax, statistic in zip(row, STATISTICS, strict=True):
            draw_statistic(ax, instances, statistic.name, pairs)
            ax.set_title(title + statistic.label)
            ax.set_xlabel(TAU_LABEL)
            ax.set_ylabel(DENSITY_LABEL)
            ax.legend(fontsize="small", loc="upper left")
            ax.set_ylim(bottom=0)
    figure.suptitle(
        f"How far importance rankings agree: {setting_title(setting)}\n"
        f"per-instance τ over {len(instances)} test instances ({seeds_text(instances)})"
    )
    return figure


def agreement_figure(instances: pd.DataFrame, setting: dict) -> Figure:
    """Per statistic, a measures × measures matrix of the mean per-instance τ of every logged pair."""
    pairs = registry.logged_pairs(instances.columns)
    measures = list(dict.fromkeys(m for pair in pairs for m in (pair.first, pair.second)))
    index = {measure.name: i for i, measure in enumerate(measures)}
    figure = new_figure(5.2 * len(STATISTICS) + 1, 5.2)
    axes = figure.subplots(1, len(STATISTICS))
    for ax, statistic in zip(axes, STATISTICS, strict=True):
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
    figure.colorbar(image, ax=axes, shrink=0.8, label="mean per-instance τ (−1 to 1)")
    figure.suptitle(
        f"Agreement between every pair of importance measures: {setting_title(setting)}\n"
        f"{len(instances)} test instances ({seeds_text(instances)})"
    )
    return figure


def _class_parts(instances: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    return [(label, instances[instances["label"] == int(label)]) for label in ("0", "1")]


def counterfactual_figure(instances: pd.DataFrame, setting: dict) -> Figure:
    """Jain & Wallace (2019): adversarial max JSD per class; JSD and permutation effect by max attention."""
    figure = new_figure(16, 5)
    hist, jsd, perm = figure.subplots(1, 3)
    bins = np.linspace(0, JSD_MAX, 24)
    for label, part in _class_parts(instances):
        if part.empty:
            continue
        colour = PALETTE["class"][label]
        bars = {"bins": bins, "weights": np.full(len(part), 1 / len(part)), "color": colour}
        hist.hist(part["adv_max_jsd"], alpha=0.35, **bars)
        hist.hist(
            part["adv_max_jsd"], histtype="step", lw=2, label=f"{CLASSES[label]}, n={len(part)}", **bars
        )
        dots = {"s": 14, "alpha": 0.6, "color": colour, "label": CLASSES[label]}
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
        ylabel="median |Δ P(positive)| (probability)",
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
    """Measures (rows) by settings (columns, e.g. attention × normalizer of one dataset), pairs overlaid;
    shared axes per row so the normalizers compare at a glance. Settings without instances say so."""
    pairs = with_attention(registry.logged_pairs(instances.columns))
    figure = new_figure(max(3.9 * len(columns) + 1.2, 9), 3.2 * len(STATISTICS) + 1.4)
    axes = figure.subplots(len(STATISTICS), len(columns), sharex=True, sharey="row", squeeze=False)
    for column, setting in enumerate(columns):
        part = select(instances, setting)
        for row, statistic in enumerate(STATISTICS):
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
                draw_statistic(ax, part, statistic.name, pairs)
            if column == 0:
                ax.set_ylabel(f"{statistic.short_label}\n{DENSITY_LABEL}")
            if row == len(STATISTICS) - 1:
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
    figure.legend(handles, [text.split(" (")[0] for text in labels], loc="outside lower center", ncols=3)
    first = columns[0]
    figure.suptitle(
        f"{first['dataset']} · {first['encoder']} encoder: agreement of importance rankings by attention "
        f"and normalizer\n(densities of per-instance τ over test instances, all seeds pooled)"
    )
    return figure


def has_counterfactual(instances: pd.DataFrame) -> bool:
    return all(c in instances for c in COUNTERFACTUAL_COLUMNS) and instances["adv_max_jsd"].notna().any()


def write_figures(instances: pd.DataFrame, settings: pd.DataFrame, folder: Path) -> list[Path]:
    """Every figure for the expected `settings` into `folder`; settings without instances get no
    per-setting figure and an empty panel in their dataset's normalizer figure."""
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
    return paths
