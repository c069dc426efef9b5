"""The environment variables a sweep sets, in one explicit call, and forwards to Ray's trial workers.

Nothing here runs on import: `set_up` is called by the driver (`sweep.runner`, and `analysis` for the
MLflow part) before anything else, and the variables it returns go into the workers' runtime environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from sweep.tracking import is_file_store

# Ray's token authentication is left as Ray sets it up, never disabled: a new local instance turns it on
# by itself; a cluster's nodes and the processes that join it run with RAY_AUTH_MODE=token (cluster.yaml,
# docs/CLUSTER.md). The mode must be set before Ray is imported, so it is not set here.
RAY_VARIABLES = {
    # per-epoch checkpoints are the point: silence Ray's warning about frequent experiment snapshots
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}


def mlflow_variables(tracking_uri: str) -> dict[str, str]:
    """No telemetry, and MLflow's opt-in for its file store when the tracking URI is a folder."""
    variables = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    if is_file_store(tracking_uri):
        variables["MLFLOW_ALLOW_FILE_STORE"] = "true"
    return variables


def set_up(tracking_uri: str, *, ray: bool = True) -> dict[str, str]:
    """Set the sweep's variables in this process (values the user already set win) and return them as
    they now are, for the workers' runtime environment; `ray=False` sets only the MLflow ones."""
    wanted = {**mlflow_variables(tracking_uri), **(RAY_VARIABLES if ray else {})}
    for name, value in wanted.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in wanted}


@contextmanager
def quiet_tune(quiet: bool = True) -> Iterator[None]:
    """Within the block, Ray Tune prints nothing of its own in the driver (no experiment banner, status
    table or result-file log line): the sweep's progress lines say it. `quiet=False` changes nothing."""
    if not quiet:
        yield
        return
    saved = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # Tune's legacy reporter, which verbose=0 silences entirely
    tune_logger = logging.getLogger("ray.tune.tune")
    level = tune_logger.level
    tune_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        tune_logger.setLevel(level)
        if saved is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = saved
