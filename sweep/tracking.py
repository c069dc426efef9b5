"""Driver-side MLflow: the store, its reachability, the sweep's experiment and its runs.

The experiment (and a sqlite database) is created here, before any trial starts: two trials creating
them at once make one fail. Its artifact location is absolute so trials in temporary folders agree.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from sqlalchemy.engine import make_url

PAGE_SIZE = 1000  # runs per search_runs page, MLflow's maximum
DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parent.parent / "outputs"  # MLflow store, Ray results, analysis
# Tracking stores MLflow 3 opens here (a plain folder path too): local sqlite and folder stores, its REST
# server, Databricks, and SQLAlchemy databases, whose scheme may name a driver (postgresql+psycopg2).
STORE_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")


class TrackingError(ValueError):
    """The MLflow store cannot be used."""


def default_tracking_uri(output_dir: Path = DEFAULT_OUTPUT_DIR) -> str:
    """An embedded sqlite store, MLflow's recommended local backend (its file store is deprecated)."""
    return f"sqlite:///{(output_dir / 'mlflow.db').resolve()}"


def is_local_store(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file", "sqlite")


def is_file_store(uri: str) -> bool:
    """A folder store (plain path or file:// URI), which MLflow 3 opens only with MLFLOW_ALLOW_FILE_STORE."""
    return urlparse(uri).scheme in ("", "file")


def store_scheme(uri: str) -> str:
    """The URI's scheme without a database driver (`postgresql+psycopg2` -> `postgresql`); "" for a path."""
    return urlparse(uri).scheme.lower().split("+")[0]


def local_store_path(uri: str) -> Path | None:
    """The database file of a sqlite store or the folder of a file store, absolute; None for an in-memory
    sqlite store. The sqlite path is read as SQLAlchemy (which opens it for MLflow) reads it."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        database = make_url(uri).database
        return Path(database).absolute() if database and database != ":memory:" else None
    return Path(unquote(parsed.path) if parsed.scheme else uri).absolute()


def nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists: where creating `path` would start."""
    while not path.exists():  # "/" exists, so this ends
        path = path.parent
    return path


def folder_problem(folder: Path) -> str | None:
    """Why no file can be created in `folder`, or None. A file is created and removed to find out: as root
    the permission bits say nothing, yet /proc, read-only mounts and immutable folders still refuse."""
    if not folder.is_dir():
        return f"{folder} is not a folder"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ane-sweep-write-check-"):
            pass
    except OSError as error:
        return f"folder {folder} is not writable ({error.strerror})"
    return None


def database_problem(path: Path) -> str | None:
    """Why the existing sqlite database `path` cannot be written, or None: a write transaction (which also
    creates sqlite's journal beside it) rolled back at once. Opened read-write only, never created."""
    if not path.is_file():
        return f"{path} is not a database file"
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=5, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("CREATE TABLE ane_sweep_write_check (x)")
            connection.execute("ROLLBACK")
        finally:
            connection.close()
    except sqlite3.Error as error:
        return f"database {path} cannot be written ({error})"
    return None


def local_store_problem(path: Path, sqlite: bool) -> str | None:
    """Why MLflow could not write a local store at `path` (a sqlite file, else a folder), or None."""
    if not path.exists():
        return folder_problem(nearest_existing(path.parent))
    if not sqlite:
        return folder_problem(path)
    return folder_problem(path.parent) or database_problem(path)


def check_store(uri: str, timeout_s: int = 10) -> None:
    """Refuse a tracking URI MLflow cannot use here, in seconds and writing nothing, so that a sweep stops
    before it creates anything: an unknown scheme, a local store this process cannot write (its database
    and folder, or the folder that would hold them), or a remote store that does not answer."""
    scheme = store_scheme(uri)
    if scheme and scheme not in STORE_SCHEMES:
        raise TrackingError(
            f"MLflow tracking URI {uri!r} has scheme {scheme!r}; allowed: {', '.join(STORE_SCHEMES)} "
            "or a folder path"
        )
    if not is_local_store(uri):
        check_reachable(uri, timeout_s)
        return
    path = local_store_path(uri)
    problem = local_store_problem(path, scheme == "sqlite") if path else None
    if problem:
        raise TrackingError(f"MLflow tracking URI {uri!r} is not usable: {problem}")


def normalize_uri(uri: str) -> str:
    """Folder paths become absolute `file://` URIs; other URIs are returned as given."""
    if is_file_store(uri):
        path = Path(urlparse(uri).path if urlparse(uri).scheme else uri).resolve()
        return path.as_uri()
    return uri


@contextmanager
def _fail_fast(timeout_s: int) -> Iterator[None]:
    """MLflow's HTTP client without retries and with a short timeout, for this block only."""
    saved = {
        name: os.environ.get(name)
        for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")
    }
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(timeout_s))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def check_reachable(uri: str, timeout_s: int = 10) -> MlflowClient:
    """A client for `uri`, after one cheap request proves the store answers (fails fast, one line)."""
    try:
        with _fail_fast(timeout_s):
            client = MlflowClient(tracking_uri=uri)  # a database store connects here (or lacks its driver)
            client.search_experiments(max_results=1)
    except Exception as error:  # connection, auth, driver and schema errors all mean "cannot log here"
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


def all_runs(client: MlflowClient, experiment_id: str, filter_string: str = "") -> list[Run]:
    """Every run of the experiment matching `filter_string`, page by page (search_runs returns one page)."""
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=PAGE_SIZE, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def delete_runs(client: MlflowClient, experiment_id: str) -> None:
    """Delete every run of the experiment (for `--overwrite`)."""
    for run in all_runs(client, experiment_id):
        client.delete_run(run.info.run_id)


def mark_stopped_runs(client: MlflowClient, experiment_id: str) -> None:
    """Runs still RUNNING after the tuner returned belong to stopped trials: mark them KILLED (a resume
    sets them RUNNING again)."""
    for run in all_runs(client, experiment_id, "attributes.status = 'RUNNING'"):
        client.set_terminated(run.info.run_id, status="KILLED")


def mark_failed_runs(client: MlflowClient, experiment_id: str, errors: dict[str, str]) -> None:
    """Runs of failed trials (by run name -> error text) still RUNNING: their worker died before the trial
    could record its failure (killed for memory, or by a signal). Mark them FAILED, the error as their
    `traceback.txt`, so a dead worker is not mistaken for a Ctrl-C."""
    for run in all_runs(client, experiment_id, "attributes.status = 'RUNNING'"):
        error = errors.get(run.info.run_name)
        if error is not None:
            client.log_text(run.info.run_id, error, "traceback.txt")
            client.set_terminated(run.info.run_id, status="FAILED")
