"""Read a sweep's MLflow runs and per-instance artifacts into tidy pandas frames.

Nothing is recomputed: metric columns are the values the trials logged (docs/METRICS.md), `param.*`
columns their logged config, instance and token columns their `instances.parquet` and `tokens.parquet`
artifacts. Errors are one-line `AnalysisError`s.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pyarrow.parquet as pq
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from sweep import environment
from sweep.tracking import TrackingError, all_runs, check_reachable, default_tracking_uri, normalize_uri
from trainables.settings import AXES

RUN_COLUMNS = ["run_id", "run_name", "status", "start_time", *AXES]
INSTANCES_ARTIFACT = "instances.parquet"
TOKENS_ARTIFACT = "tokens.parquet"
PARAM_PREFIX = "param."


class AnalysisError(ValueError):
    """The experiment cannot be analysed: its store is unreachable, or it is unknown or empty."""


def connect(tracking_uri: str | None = None) -> MlflowClient:
    """A client for an existing store; a local database or folder that is not there is an error, not
    created empty (as MLflow would)."""
    uri = normalize_uri(tracking_uri) if tracking_uri else default_tracking_uri()
    environment.set_up(uri, ray=False)
    parsed = urlparse(uri)
    local = {"sqlite": Path(uri.removeprefix("sqlite:///")), "file": Path(parsed.path)}.get(parsed.scheme)
    if local is not None and uri != "sqlite://" and not local.exists():
        raise AnalysisError(f"no MLflow store at {uri!r}: {str(local)!r} does not exist")
    try:
        return check_reachable(uri)
    except TrackingError as error:
        raise AnalysisError(str(error)) from None


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of the active experiment `name`, or an error listing the experiments that exist."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None or experiment.lifecycle_stage != "active":
        names = ", ".join(sorted(e.name for e in client.search_experiments(max_results=50))) or "none"
        raise AnalysisError(f"no experiment {name!r} at {client.tracking_uri}; experiments there: {names}")
    return experiment.experiment_id


def fetch_runs(client: MlflowClient, experiment: str) -> pd.DataFrame:
    """One row per trial (its latest run when a trial was logged more than once), sorted by the axes:
    identity and axes, then the `param.*` columns (strings, as logged), then the metrics."""
    runs = all_runs(client, experiment_id(client, experiment))
    rows = [row for row in map(_run_row, runs) if row is not None]
    if not rows:
        raise AnalysisError(f"experiment {experiment!r} at {client.tracking_uri} has no trial runs")
    frame = pd.DataFrame(rows)
    logged = sorted(set(frame.columns) - set(RUN_COLUMNS))
    params = [name for name in logged if name.startswith(PARAM_PREFIX)]
    metrics = [name for name in logged if not name.startswith(PARAM_PREFIX)]
    frame = frame[RUN_COLUMNS + params + metrics].sort_values("start_time")
    frame = frame.drop_duplicates(subset=list(AXES), keep="last")
    return frame.sort_values(list(AXES), ignore_index=True)


def _run_row(run: Run) -> dict | None:
    """A run's identity, grid axes (tags, else params), params and final metrics; None for a run of no
    trial."""
    tags, params = run.data.tags, run.data.params
    axes = {axis: tags.get(axis, params.get(axis)) for axis in AXES}
    if None in axes.values():
        return None
    seed = axes["seed"]
    axes["seed"] = int(seed) if seed.lstrip("-").isdigit() else seed
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "start_time": pd.Timestamp(run.info.start_time, unit="ms"),
        **axes,
        **{f"{PARAM_PREFIX}{name}": value for name, value in params.items()},
        **run.data.metrics,
    }


def finished(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs whose trial completed: only these have results."""
    return runs[runs["status"] == "FINISHED"]


def loaded_name(column: str) -> str:
    """The name of an artifact's column in the loaded frame: its own, but `{column}_scores` for one named
    like a grid axis (`tokens.parquet`'s `attention` weights, beside the `attention` axis)."""
    return f"{column}_scores" if column in AXES else column


def fetch_artifact_tables(
    client: MlflowClient, runs: pd.DataFrame, artifact: str, columns: list[str] | None = None
) -> pd.DataFrame:
    """The parquet `artifact` of every finished run (only `columns` of it, if given; those a run lacks are
    left out), with its run id and axes in front, its columns renamed by `loaded_name`; a run without
    it is skipped with a warning."""
    parts = []
    with tempfile.TemporaryDirectory() as folder:
        for run in finished(runs).itertuples():
            try:
                path = client.download_artifacts(run.run_id, artifact, f"{folder}/{run.run_id}")
            except (MlflowException, OSError) as error:
                warnings.warn(f"{run.run_name}: no {artifact} ({error})", stacklevel=2)
                continue
            if columns is not None:
                present = set(pq.read_schema(path).names)
                table = pd.read_parquet(path, columns=[c for c in columns if c in present])
            else:
                table = pd.read_parquet(path)
            front = pd.DataFrame({"run_id": run.run_id, **{a: getattr(run, a) for a in AXES}}, table.index)
            parts.append(pd.concat([front, table.rename(columns=loaded_name)], axis=1))
    if not parts:
        return pd.DataFrame(columns=["run_id", *AXES])
    return pd.concat(parts, ignore_index=True)


def fetch_instances(client: MlflowClient, runs: pd.DataFrame) -> pd.DataFrame:
    """The `instances.parquet` of every finished run, with its run id and axes in front."""
    return fetch_artifact_tables(client, runs, INSTANCES_ARTIFACT)


def fetch_tokens(client: MlflowClient, runs: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """The `tokens.parquet` of every finished run (only `columns`, if given), run id and axes in front."""
    return fetch_artifact_tables(client, runs, TOKENS_ARTIFACT, columns)


def load_runs(experiment: str, tracking_uri: str | None = None) -> pd.DataFrame:
    """All trials of a sweep, one row each: run_id, run_name, status, start_time, the grid axes
    (dataset, encoder, attention, normalizer, seed) and every logged metric as a column. A trial logged
    more than once (a rerun into the same experiment) is its latest run."""
    return fetch_runs(connect(tracking_uri), experiment)


def load_instances(experiment: str, tracking_uri: str | None = None) -> pd.DataFrame:
    """Every finished trial's per-instance table (`instances.parquet`), concatenated, with the trial's
    run_id and grid axes as the first columns."""
    client = connect(tracking_uri)
    return fetch_instances(client, fetch_runs(client, experiment))


def load_tokens(experiment: str, tracking_uri: str | None = None) -> pd.DataFrame:
    """Every finished trial's per-token table (`tokens.parquet`: a list of scores per instance and
    measure), concatenated, with the trial's run_id and grid axes as the first columns; the attention
    weights are `attention_scores`, since `attention` is the grid axis."""
    client = connect(tracking_uri)
    return fetch_tokens(client, fetch_runs(client, experiment))
