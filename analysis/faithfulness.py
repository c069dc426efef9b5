"""Erasure faithfulness figures from the per-instance artifacts: which measure's top tokens move the
prediction most (DeYoung et al. 2020; trainables/faithfulness.py computes the curves).

- `faithfulness_figure`: per setting, the mean comprehensiveness and sufficiency curves over the erased
  percentages, one line per measure and the random order dashed.
- `faithfulness_summary_figure`: every setting's comprehensiveness and sufficiency AOPC per measure as
  grouped bars, the random order's in grey, so settings and normalizers compare at a glance.
Instances of all seeds of a setting are pooled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.figures import new_figure, save, seeds_text, select
from analysis.names import PALETTE, setting_name, setting_title
from trainables import registry
from trainables.registry import Measure

AXIS_LABELS = {
    "comprehensiveness": (
        "top tokens deleted (% of the instance's tokens)",
        "mean drop in P(predicted class)",
    ),
    "sufficiency": ("top tokens kept alone (% of the instance's tokens)", "mean drop in P(predicted class)"),
}
LEGEND_COLUMNS = 4  # orders a row of the summary's legend (their labels are short)
TITLES = {
    "comprehensiveness": "Comprehensiveness: delete the top tokens (higher: more faithful)",
    "sufficiency": "Sufficiency: keep only the top tokens (lower: more faithful)",
}


def has_faithfulness(instances: pd.DataFrame) -> bool:
    return bool(registry.logged_erasure_orders(instances.columns))


def order_style(order: Measure) -> dict:
    """A measure's colour; the random order grey and dashed."""
    dashed = order == registry.RANDOM_ORDER
    return {"color": PALETTE["measure"].get(order.name, "black"), "ls": "--" if dashed else "-"}


def faithfulness_figure(instances: pd.DataFrame, setting: dict) -> Figure:
    """Mean curve over instances of each logged order, comprehensiveness and sufficiency side by side."""
    orders = registry.logged_erasure_orders(instances.columns)
    percents = registry.ERASURE_PERCENTS
    figure = new_figure(13, 5)
    for ax, erasure in zip(figure.subplots(1, 2), registry.ERASURES, strict=True):
        for order in orders:
            curves = instances[registry.erasure_curve_column(erasure, order.short)].dropna()
            curves = np.stack(curves.to_numpy())
            aopc = instances[registry.erasure_column(erasure, order.short)].mean()
            ax.plot(
                percents,
                curves.mean(0),
                marker="o",
                lw=2,
                label=f"{order.label} (AOPC {aopc:.3f})",
                **order_style(order),
            )
        ax.axhline(0, color="0.5", lw=0.8, ls=":")
        ax.set(title=TITLES[erasure], xlabel=AXIS_LABELS[erasure][0], ylabel=AXIS_LABELS[erasure][1])
        ax.set_xticks(percents)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle(
        f"Which measure's top tokens move the prediction most: {setting_title(setting)}\n"
        f"{len(instances)} test instances ({seeds_text(instances)}); AOPC: the mean over the percentages"
    )
    return figure


def standard_error(values: pd.Series) -> float:
    """Two standard errors of the mean of the non-NaN `values` (0 for fewer than two)."""
    values = values.dropna()
    return 2 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0


def faithfulness_summary_figure(instances: pd.DataFrame, settings: list[dict]) -> Figure:
    """Per erasure a panel of grouped bars: settings along x, one bar per logged order (mean AOPC over the
    setting's instances of every seed, ± 2 standard errors)."""
    orders = registry.logged_erasure_orders(instances.columns)
    parts = [select(instances, setting) for setting in settings]
    width = 0.8 / len(orders)
    figure = new_figure(max(8.0, 1.1 * len(settings) * len(orders) / 2 + 3), 8.5)
    axes = figure.subplots(2, 1, sharex=True)
    for ax, erasure in zip(axes, registry.ERASURES, strict=True):
        for number, order in enumerate(orders):
            column = registry.erasure_column(erasure, order.short)
            means = [part[column].mean() for part in parts]
            errors = [standard_error(part[column]) for part in parts]
            style = order_style(order)
            ax.bar(
                np.arange(len(parts)) + (number - (len(orders) - 1) / 2) * width,
                means,
                width,
                yerr=errors,
                color=style["color"],
                hatch="//" if style["ls"] == "--" else None,
                edgecolor="white",
                label=order.label,
                capsize=2,
            )
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set(title=TITLES[erasure], ylabel="AOPC: mean drop in P(predicted class)")
        ax.grid(alpha=0.3, axis="y")
    axes[-1].set_xticks(range(len(parts)), [setting_name(s) for s in settings], rotation=20, ha="right")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), LEGEND_COLUMNS))
    figure.suptitle(
        "Which measure's top tokens move the prediction most: erasure faithfulness per setting\n"
        "(all test instances, seeds pooled; bars ± 2 standard errors; hatched: tokens in random order)"
    )
    return figure


def write_faithfulness_figures(instances: pd.DataFrame, settings: pd.DataFrame, folder: Path) -> list[Path]:
    """`faithfulness_<setting>` for every expected setting whose instances hold faithfulness, and the
    `faithfulness` summary of those settings (PNG, SVG, PDF); none for trials that predate it."""
    if instances.empty or not has_faithfulness(instances):
        return []
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    drawn = []
    for setting in settings.to_dict("records"):
        part = select(instances, setting)
        if part.empty or not has_faithfulness(part.dropna(axis=1, how="all")):
            continue
        drawn.append(setting)
        paths += save(faithfulness_figure(part, setting), folder / f"faithfulness_{setting_name(setting)}")
    if drawn:
        paths += save(faithfulness_summary_figure(instances, drawn), folder / "faithfulness")
    return paths
