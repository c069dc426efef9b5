"""The table a sweep prints at the end: one row per trial with its status and a few final metrics."""

from __future__ import annotations

import pandas as pd

from trainables.settings import run_name

SUMMARY_COLUMNS = ["trial", "status", "epochs_trained", "test_accuracy", "test_auc", "error"]
STATUSES = ("FINISHED", "FAILED", "UNFINISHED")


def summarize(grid) -> pd.DataFrame:
    """One row per trial of a Ray Tune `ResultGrid`: name, status, a few final metrics, the error if any."""
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        config = result.config or metrics.get("config", {})
        if "test/accuracy" in metrics and result.error is None:
            status = "FINISHED"
        else:
            status = "FAILED" if result.error is not None else "UNFINISHED"  # stopped, e.g. by Ctrl-C
        rows.append(
            {
                "trial": run_name(config),
                "status": status,
                "epochs_trained": metrics.get("epochs_trained"),
                "test_accuracy": metrics.get("test/accuracy"),
                "test_auc": metrics.get("test/auc"),
                "error": "" if result.error is None else str(result.error).strip().splitlines()[-1][:120],
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS).sort_values("trial", ignore_index=True)


def tally(summary: pd.DataFrame) -> str:
    """`4 trials: 3 finished, 1 failed, 0 unfinished`."""
    counts = summary["status"].value_counts()
    parts = ", ".join(f"{counts.get(status, 0)} {status.lower()}" for status in STATUSES)
    return f"{len(summary)} trials: {parts}"
