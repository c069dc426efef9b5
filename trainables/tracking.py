"""One MLflow run per trial, logged from inside the trial with an explicit run id.

The trial (not a driver callback) owns its run so that it can log artifacts written on its own node and
reattach to the same run after a retry or a resumed sweep: the run is found again by its `trial_id` tag,
the Ray trial id, which stays the same across restores.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from trainables.settings import AXES, run_name

MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call
MAX_PARAMS = 100  # and of params

log = logging.getLogger(__name__)


def one_line(error: BaseException) -> str:
    """The error's type and the first line of its message, at most 200 characters."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:200]}" if text else type(error).__name__


def best_effort(action: Callable[[], object], what: str) -> None:
    """Run an MLflow call made while another error may be on its way up (in `except` or `finally`): if the
    call fails too, log one warning line ("could not <what>: ...") instead of raising, so that the first
    error is the one that surfaces."""
    try:
        action()
    except Exception as error:  # any store failure: the error being handled matters more
        log.warning("could not %s: %s", what, one_line(error))


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {"section.key": value}."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class TrialRun:
    """One trial's MLflow run: found by its Ray trial id (retries and restores reuse it), or created.

    `finished` says the run was already FINISHED: the trial completed before a crash that Ray's saved
    experiment state (written at most every ~10 s) had not caught up with, so it must not run again.
    """

    def __init__(self, tracking: Mapping[str, str], config: Mapping[str, Any], trial_id: str):
        self.client = MlflowClient(tracking_uri=tracking["uri"])
        existing = self.client.search_runs(
            [tracking["experiment_id"]], filter_string=f"tags.trial_id = '{trial_id}'", max_results=1
        )
        self.resumed = bool(existing)
        self.finished = self.resumed and existing[0].info.status == "FINISHED"
        if self.resumed:
            self.run_id = existing[0].info.run_id
            if not self.finished:
                self.client.update_run(self.run_id, status="RUNNING")
            return
        tags = {axis: str(config[axis]) for axis in AXES}
        tags.update(sweep=tracking["sweep"], trial_id=trial_id)
        run = self.client.create_run(tracking["experiment_id"], run_name=run_name(config), tags=tags)
        self.run_id = run.info.run_id
        flat = {k: v for k, v in flatten(config).items() if not k.startswith("tracking.")}
        params = [Param(k, str(v)) for k, v in sorted(flat.items())]
        for start in range(0, len(params), MAX_PARAMS):
            self.client.log_batch(self.run_id, params=params[start : start + MAX_PARAMS])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log finite metrics in batches; NaN values are skipped (MLflow's UI cannot chart them)."""
        now = int(time.time() * 1000)
        entries = [Metric(k, float(v), now, step) for k, v in metrics.items() if math.isfinite(float(v))]
        for start in range(0, len(entries), MAX_BATCH):
            self.client.log_batch(self.run_id, metrics=entries[start : start + MAX_BATCH])

    def logged_metrics(self) -> dict[str, float]:
        """The latest value of every metric the run holds."""
        return dict(self.client.get_run(self.run_id).data.metrics)

    def logged_steps(self, metric: str) -> set[int]:
        """Steps already logged for `metric` (a restored trial skips them instead of logging twice)."""
        return {m.step for m in self.client.get_metric_history(self.run_id, metric)}

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)

    def fail(self, traceback_text: str) -> None:
        """Mark the run FAILED with the traceback as an artifact (a retry sets it RUNNING again)."""
        self.client.log_text(self.run_id, traceback_text, "traceback.txt")
        self.finish("FAILED")
