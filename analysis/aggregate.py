"""Seed aggregation of logged metrics over the sweep's full grid (pure functions of the runs frame).

A cell is the mean over seeds of a logged metric, beside the mean within-trial spread (a logged `std`)
and the standard deviation across seeds: Wiegreffe & Pinter (2019)'s seed-variance baseline. Every
setting of the grid gets a row, so a failed or missing trial shows as a missing cell, not a lost row.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from analysis.load import finished
from analysis.names import SETTING
from trainables.tracking import AXES, run_name

SUMMARY_COLUMNS = ["mean", "within_std", "seed_std", "n_seeds"]


def axis_values(runs: pd.DataFrame) -> dict[str, list]:
    """The values each grid axis takes in any run, finished or not, in sorted order."""
    return {axis: sorted(runs[axis].unique()) for axis in AXES}


def expected_settings(runs: pd.DataFrame) -> pd.DataFrame:
    """Every combination of the non-seed axis values the runs show: the sweep's grid (a full product)."""
    values = axis_values(runs)
    return pd.DataFrame(itertools.product(*(values[axis] for axis in SETTING)), columns=list(SETTING))


def seed_summary(
    runs: pd.DataFrame, metric: str, spread: str | None = None, minus: str | None = None
) -> pd.DataFrame:
    """Per expected setting: mean over seeds of `metric` (of `metric` − `minus`, run by run, when `minus`
    is given), mean of `spread` (within-trial std), std across seeds and the number of seeds with a value
    (0, and NaN statistics, where none finished)."""
    done = finished(runs)

    def column(name: str | None) -> pd.Series:
        return done[name] if name in done else pd.Series(np.nan, done.index)

    values = pd.DataFrame(
        {
            **{axis: done[axis] for axis in SETTING},
            "value": column(metric) - column(minus) if minus else column(metric),
            "spread": column(spread),
        }
    ).dropna(subset=["value"])
    grouped = values.groupby(list(SETTING))
    summary = pd.DataFrame(
        {
            "mean": grouped["value"].mean(),
            "within_std": grouped["spread"].mean(),
            "seed_std": grouped["value"].std(ddof=1),
            "n_seeds": grouped["value"].count(),
        }
    )
    summary = expected_settings(runs).merge(summary.reset_index(), on=list(SETTING), how="left")
    summary["n_seeds"] = summary["n_seeds"].fillna(0).astype(int)
    return summary


def trial_status(runs: pd.DataFrame) -> pd.DataFrame:
    """Every trial of the grid (seeds included) with its run's status, or "MISSING" where none was logged."""
    values = axis_values(runs)
    grid = pd.DataFrame(itertools.product(*(values[axis] for axis in AXES)), columns=list(AXES))
    status = grid.merge(runs[[*AXES, "status"]], on=list(AXES), how="left").fillna({"status": "MISSING"})
    status.insert(0, "trial", [run_name(row) for row in grid.to_dict("records")])
    return status
