"""Run or resume a sweep: prepare data and MLflow in the driver, then one Ray Tune trial per grid point."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from sweep.cluster import check_shared_storage
from sweep.config import ConfigError, SweepConfig, parse_config
from sweep.tracking import (
    check_reachable,
    default_tracking_uri,
    ensure_experiment,
    is_local_store,
    normalize_uri,
)
from trainables.data import PreparedDataset, prepare
from trainables.tracking import AXES, run_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT_DIR = PROJECT_ROOT / "outputs"
SWEEP_FILE = "ane_sweep.json"  # beside Ray's experiment state: what `--resume` needs to rebuild the trainable
SUMMARY_COLUMNS = ["trial", "status", "epochs_trained", "test_accuracy", "test_auc", "error"]

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@dataclass
class SweepOptions:
    """Where a sweep reads and writes, beside what it computes (the `SweepConfig`)."""

    data_dir: Path | None = None
    tracking_uri: str | None = None
    output_dir: Path = DEFAULT_OUTPUT_DIR
    storage_path: str | None = None  # Ray results; default <output_dir>/ray_results
    address: str | None = None  # an existing Ray cluster; None starts a local one
    overwrite: bool = False
    shared_storage: bool | None = (
        None  # storage_path is a mount all nodes share (NFS); None: see sweep.cluster
    )

    @property
    def resolved_tracking_uri(self) -> str:
        return (
            normalize_uri(self.tracking_uri) if self.tracking_uri else default_tracking_uri(self.output_dir)
        )

    @property
    def resolved_storage_path(self) -> str:
        storage = self.storage_path or str((self.output_dir / "ray_results").resolve())
        if "://" not in storage and not Path(storage).is_absolute():
            raise ConfigError(f"storage path {storage!r} must be absolute or a URI (s3://, gs://)")
        return storage.rstrip("/")


@dataclass
class SweepResult:
    """What a sweep returns: a row per trial and where to look."""

    name: str
    summary: pd.DataFrame
    experiment_id: str
    tracking_uri: str
    experiment_dir: str

    @property
    def failed(self) -> int:
        return int((self.summary["status"] != "FINISHED").sum())


def prepare_datasets(config: SweepConfig, data_dir: Path | None) -> dict[str, PreparedDataset]:
    """Every dataset of the grid, loaded and indexed once, shared by all trials."""
    settings = config.data
    return {
        name: prepare(name, data_dir, settings.max_examples, settings.split_seed, settings.max_tokens)
        for name in config.grid.dataset
    }


def param_space(config: SweepConfig, tracking: dict[str, str]) -> dict:
    from ray import tune

    grid = {axis: tune.grid_search(list(getattr(config.grid, axis))) for axis in AXES}
    return {**grid, **config.settings(), "tracking": tracking}


def run_sweep(config: SweepConfig, options: SweepOptions) -> SweepResult:
    """Start a new sweep: validate inputs (writing nothing if any is bad), then run every trial."""
    from ray import tune

    experiment_dir = f"{options.resolved_storage_path}/{config.name}"
    exists = (
        Path(experiment_dir).exists()
        if "://" not in experiment_dir
        else tune.Tuner.can_restore(experiment_dir)
    )
    if exists and not options.overwrite:
        raise ConfigError(
            f"experiment {config.name!r} already exists at {experiment_dir}; "
            f"pass --resume {config.name} to continue it or --overwrite to replace it"
        )
    uri = options.resolved_tracking_uri
    if not is_local_store(uri):
        check_reachable(uri)  # before the (possibly long) data preparation, and before writing anything
    datasets = prepare_datasets(config, options.data_dir)
    client, experiment_id = open_experiment(uri, config.name, options)
    if not exists and not options.overwrite and client.search_runs([experiment_id], max_results=1):
        raise ConfigError(
            f"MLflow experiment {config.name!r} already has runs in {uri}; "
            "pass --overwrite to replace them or --name to pick another name"
        )
    if exists or options.overwrite:
        if "://" not in experiment_dir and Path(experiment_dir).exists():
            shutil.rmtree(experiment_dir)
        for run in client.search_runs([experiment_id]):
            client.delete_run(run.info.run_id)
    saved = {"config": config.to_dict(), "data_dir": str(options.data_dir) if options.data_dir else None}
    write_text(f"{experiment_dir}/{SWEEP_FILE}", json.dumps(saved, indent=2))
    tracking = {"uri": uri, "experiment_id": experiment_id, "sweep": config.name}

    def make_tuner(trainable: Callable) -> tune.Tuner:
        return tune.Tuner(
            trainable,
            param_space=param_space(config, tracking),
            tune_config=tune.TuneConfig(
                max_concurrent_trials=config.resources.max_concurrent,
                trial_name_creator=lambda trial: run_name(trial.config),
                trial_dirname_creator=lambda trial: run_name(trial.config),
            ),
            run_config=tune.RunConfig(
                name=config.name,
                storage_path=options.resolved_storage_path,
                # two: after a SIGKILL the saved experiment state can point at the previous checkpoint
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=config.resources.max_failures),
                verbose=1,
            ),
        )

    summary = fit(make_tuner, config, datasets, options, client, experiment_id)
    return SweepResult(config.name, summary, experiment_id, uri, experiment_dir)


def resume_sweep(name: str, options: SweepOptions) -> SweepResult:
    """Continue an interrupted sweep: finished trials stay, the others continue from their checkpoints."""
    from ray import tune

    experiment_dir = f"{options.resolved_storage_path}/{name}"
    sweep_file = f"{experiment_dir}/{SWEEP_FILE}"
    saved_text = read_text(sweep_file)
    if saved_text is None or not tune.Tuner.can_restore(experiment_dir):
        raise ConfigError(f"no experiment {name!r} to resume at {experiment_dir}; start it without --resume")
    saved = json.loads(saved_text)
    config = parse_config(saved["config"], sweep_file)
    data_dir = options.data_dir or (Path(saved["data_dir"]) if saved["data_dir"] else None)
    uri = options.resolved_tracking_uri
    check_reachable(uri)
    datasets = prepare_datasets(config, data_dir)
    client, experiment_id = open_experiment(uri, config.name, options)

    def make_tuner(trainable: Callable) -> tune.Tuner:
        return tune.Tuner.restore(experiment_dir, trainable, resume_errored=True)

    summary = fit(make_tuner, config, datasets, options, client, experiment_id)
    return SweepResult(config.name, summary, experiment_id, uri, experiment_dir)


def write_text(location: str, text: str) -> None:
    """Write a small file to a local path or a storage URI (s3://, gs://), creating its folder."""
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(
        location if "://" in location else Path(location).resolve().as_uri()
    )
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(path) as stream:
        stream.write(text.encode())


def read_text(location: str) -> str | None:
    """The text of a small file at a local path or storage URI, or None if there is none."""
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(
        location if "://" in location else Path(location).resolve().as_uri()
    )
    if filesystem.get_file_info(path).type != fs.FileType.File:
        return None
    with filesystem.open_input_stream(path) as stream:
        return stream.read().decode()


def open_experiment(uri: str, name: str, options: SweepOptions) -> tuple[MlflowClient, str]:
    """The MLflow client and experiment id, creating a local store and the experiment if needed."""
    if is_local_store(uri):
        options.output_dir.mkdir(parents=True, exist_ok=True)
    client = check_reachable(uri)
    artifact_root = options.output_dir / "mlartifacts" if is_local_store(uri) else None
    return client, ensure_experiment(client, name, artifact_root)


def runtime_env() -> dict:
    """Ray runtime env for trial workers: the project importable, and the driver's MLflow/Ray switches."""
    env = {"PYTHONPATH": str(PROJECT_ROOT)}
    for name in ("MLFLOW_ALLOW_FILE_STORE", "MLFLOW_DISABLE_TELEMETRY", "RAY_AUTH_MODE"):
        if name in os.environ:
            env[name] = os.environ[name]
    return {"env_vars": env}


def fit(
    make_tuner: Callable,
    config: SweepConfig,
    datasets: dict[str, PreparedDataset],
    options: SweepOptions,
    client: MlflowClient,
    experiment_id: str,
) -> pd.DataFrame:
    """Run the tuner on a Ray instance (started here unless one is running) and summarise its trials.

    Afterwards, runs still marked RUNNING belong to trials that were stopped (Ctrl-C, a killed worker):
    they are marked KILLED, and a resume sets them RUNNING again.
    """
    import ray
    from ray import tune

    from trainables.trial import run_trial

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=options.address or "local",  # never attach to another cluster unless asked to
            include_dashboard=False,
            runtime_env=runtime_env(),
        )
    try:
        check_shared_storage(options.resolved_storage_path, options.address, shared=options.shared_storage)
        resources = {"cpu": config.resources.cpus_per_trial, "gpu": config.resources.gpus_per_trial}
        trainable = tune.with_resources(tune.with_parameters(run_trial, datasets=datasets), resources)
        grid = make_tuner(trainable).fit()
    finally:
        for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'"):
            client.set_terminated(run.info.run_id, status="KILLED")
        if started_here:
            ray.shutdown()
    return summarize(grid)


def summarize(grid) -> pd.DataFrame:
    """One row per trial: its name, status, a few final metrics and the error if it failed."""
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
