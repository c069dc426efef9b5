"""The erasure faithfulness figure from the per-instance artifacts: which measure's top tokens move the
prediction most (DeYoung et al. 2020; trainables/faithfulness.py computes it).

`faithfulness_figure`: every setting's comprehensiveness and sufficiency AOPC per measure as grouped bars,
the random order's hatched, so measures, settings and normalizers compare at a glance. Instances of all
seeds of a setting are pooled. One figure for the whole sweep keeps the analysis's cost flat in the
number of settings; the per-percentage curves stay in `instances.parquet` for a closer look.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.figures import new_figure, save, select
from analysis.names import PALETTE, setting_name
from trainables import registry
from trainables.registry import Measure

LEGEND_COLUMNS = 4  # orders a row of the legend (their labels are short)
TITLES = {
    "comprehensiveness": "Comprehensiveness: delete the top tokens (higher: more faithful)",
    "sufficiency": "Sufficiency: keep only the top tokens (lower: more faithful)",
}


def has_faithfulness(instances: pd.DataFrame) -> bool:
    return bool(registry.logged_erasure_orders(instances.columns))


def order_style(order: Measure) -> dict:
    """A measure's bar colour; the random order's grey and hatched."""
    hatch = "//" if order == registry.RANDOM_ORDER else None
    return {"color": PALETTE["measure"].get(order.name, "black"), "hatch": hatch}


def standard_error(values: pd.Series) -> float:
    """Two standard errors of the mean of the non-NaN `values` (0 for fewer than two)."""
    values = values.dropna()
    return 2 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0


def faithfulness_figure(instances: pd.DataFrame, settings: list[dict]) -> Figure:
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
            ax.bar(
                np.arange(len(parts)) + (number - (len(orders) - 1) / 2) * width,
                means,
                width,
                yerr=errors,
                **order_style(order),
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


def write_faithfulness_figure(instances: pd.DataFrame, settings: pd.DataFrame, folder: Path) -> list[Path]:
    """`faithfulness` (PNG, SVG, PDF) of the expected settings whose instances hold faithfulness; nothing
    for trials that predate it."""
    drawn = [
        setting
        for setting in settings.to_dict("records")
        if has_faithfulness(select(instances, setting).dropna(axis=1, how="all"))
    ]
    if not drawn:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    return save(faithfulness_figure(instances, drawn), folder / "faithfulness")
