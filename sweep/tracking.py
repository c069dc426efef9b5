"""Driver-side MLflow set-up: the store, its reachability, and the sweep's experiment.

The experiment (and a sqlite database) is created here, before any trial starts: two trials creating
them at once make one fail. Its artifact location is absolute so trials in temporary folders agree.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from mlflow.tracking import MlflowClient


class TrackingError(ValueError):
    """The MLflow store cannot be used."""


def default_tracking_uri(output_dir: Path) -> str:
    """An embedded sqlite store, MLflow's recommended local backend (its file store is deprecated)."""
    return f"sqlite:///{(output_dir / 'mlflow.db').resolve()}"


def is_local_store(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file", "sqlite")


def normalize_uri(uri: str) -> str:
    """Folder paths become absolute `file://` URIs and enable MLflow's (opt-in) file store."""
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        path = Path(urlparse(uri).path if scheme else uri).resolve()
        return path.as_uri()
    return uri


def check_reachable(uri: str, timeout_s: int = 10) -> MlflowClient:
    """A client for `uri`, after one cheap request proves the store answers (fails fast, one line)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout_s))
    client = MlflowClient(tracking_uri=uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as error:  # connection, auth and schema errors all mean "cannot log here"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrackingError(f"MLflow tracking URI {uri!r} is not usable: {first_line[:200]}") from None
    return client


def ensure_experiment(client: MlflowClient, name: str, artifact_root: Path | None) -> str:
    """The id of experiment `name`, created (with an absolute artifact location) if it does not exist."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    location = (artifact_root / name).resolve().as_uri() if artifact_root is not None else None
    return client.create_experiment(name, artifact_location=location)
