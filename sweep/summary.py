"""The table a sweep prints at the end: one row per trial of the grid with its status and final metrics."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from trainables.settings import run_name

SUMMARY_COLUMNS = ["trial", "status", "epochs_trained", "test_accuracy", "test_auc", "error"]
STATUSES = ("FINISHED", "FAILED", "UNFINISHED")


def summarize(results: Iterable, trial_names: list[str]) -> pd.DataFrame:
    """One row per trial of the grid (`trial_names`) from a Ray Tune `ResultGrid` (any iterable of its
    results): name, status, epochs trained, test metrics, the error if any. A trial the tuner never
    started (the sweep was stopped first) is UNFINISHED with 0 epochs."""
    not_started = {"status": "UNFINISHED", "epochs_trained": 0, "error": ""}
    rows = {name: {"trial": name, **not_started} for name in trial_names}
    for result in results:
        metrics = result.metrics or {}
        config = result.config or metrics.get("config", {})
        if not config:  # stopped before Tune gave the trial its config: one of the names never started
            continue
        if "test/accuracy" in metrics and result.error is None:
            status = "FINISHED"
        else:
            status = "FAILED" if result.error is not None else "UNFINISHED"  # stopped, e.g. by Ctrl-C
        epochs = metrics.get("epochs_trained", metrics["epoch"] + 1 if "epoch" in metrics else 0)
        rows[run_name(config)] = {
            "trial": run_name(config),
            "status": status,
            "epochs_trained": int(epochs),
            "test_accuracy": metrics.get("test/accuracy"),
            "test_auc": metrics.get("test/auc"),
            "error": "" if result.error is None else error_line(result.error),
        }
    return pd.DataFrame(list(rows.values()), columns=SUMMARY_COLUMNS).sort_values("trial", ignore_index=True)


def last_line(text: str) -> str:
    """The last non-empty line of an error's text (a traceback ends with its cause), at most 160 chars;
    "" for a blank text."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


def error_line(error: BaseException) -> str:
    """`last_line` of the error, or its type's name when its text is blank."""
    return last_line(str(error)) or type(error).__name__


def tally(summary: pd.DataFrame) -> str:
    """`4 trials: 3 finished, 1 failed, 0 unfinished`."""
    counts = summary["status"].value_counts()
    parts = ", ".join(f"{counts.get(status, 0)} {status.lower()}" for status in STATUSES)
    return f"{len(summary)} trials: {parts}"
