"""Run a sweep: prepare data and MLflow in the driver, then one Ray Tune trial per grid point."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sweep.config import ConfigError, SweepConfig
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
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def resolved_tracking_uri(self) -> str:
        return (
            normalize_uri(self.tracking_uri) if self.tracking_uri else default_tracking_uri(self.output_dir)
        )

    @property
    def resolved_storage_path(self) -> str:
        return self.storage_path or str((self.output_dir / "ray_results").resolve())


@dataclass
class SweepResult:
    """What `run_sweep` returns: a row per trial and where to look."""

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
    """Validate inputs, run every trial through Ray Tune, and return a summary of the trials."""
    storage = options.resolved_storage_path
    if "://" not in storage and not Path(storage).is_absolute():
        raise ConfigError(f"storage path {storage!r} must be absolute or a URI (s3://, gs://)")
    experiment_dir = f"{storage.rstrip('/')}/{config.name}"
    if "://" not in storage and Path(experiment_dir).exists() and not options.overwrite:
        raise ConfigError(
            f"experiment {config.name!r} already exists at {experiment_dir}; pass --overwrite to replace it"
        )
    uri = options.resolved_tracking_uri
    if is_local_store(uri):
        options.output_dir.mkdir(parents=True, exist_ok=True)
    client = check_reachable(uri)
    datasets = prepare_datasets(config, options.data_dir)

    if "://" not in storage and Path(experiment_dir).exists():
        shutil.rmtree(experiment_dir)
    artifact_root = options.output_dir / "mlartifacts" if is_local_store(uri) else None
    experiment_id = ensure_experiment(client, config.name, artifact_root)
    tracking = {"uri": uri, "experiment_id": experiment_id, "sweep": config.name}
    grid = _run_tuner(config, options, datasets, tracking, storage)
    return SweepResult(summarize(grid), experiment_id, uri, experiment_dir)


def runtime_env(extra: dict[str, str] | None = None) -> dict:
    """Ray runtime env for trial workers: the project importable, and the driver's MLflow/Ray switches."""
    env = {"PYTHONPATH": str(PROJECT_ROOT), **(extra or {})}
    for name in ("MLFLOW_ALLOW_FILE_STORE", "MLFLOW_DISABLE_TELEMETRY", "RAY_AUTH_MODE"):
        if name in os.environ:
            env[name] = os.environ[name]
    return {"env_vars": env}


def _run_tuner(config: SweepConfig, options: SweepOptions, datasets: dict, tracking: dict, storage: str):
    import ray
    from ray import tune

    from trainables.trial import run_trial

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=options.address, include_dashboard=False, runtime_env=runtime_env(options.extra_env))
    try:
        resources = {"cpu": config.resources.cpus_per_trial, "gpu": config.resources.gpus_per_trial}
        trainable = tune.with_resources(tune.with_parameters(run_trial, datasets=datasets), resources)
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(config, tracking),
            tune_config=tune.TuneConfig(
                max_concurrent_trials=config.resources.max_concurrent,
                trial_name_creator=lambda trial: run_name(trial.config),
                trial_dirname_creator=lambda trial: run_name(trial.config),
            ),
            run_config=tune.RunConfig(
                name=config.name,
                storage_path=storage,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                failure_config=tune.FailureConfig(max_failures=config.resources.max_failures),
                verbose=1,
            ),
        )
        return tuner.fit()
    finally:
        if started_here:
            ray.shutdown()


def summarize(grid) -> pd.DataFrame:
    """One row per trial: its name, status, a few final metrics and the error if it failed."""
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        config = result.config or metrics.get("config", {})
        finished = result.error is None and "test/accuracy" in metrics
        rows.append(
            {
                "trial": run_name(config),
                "status": "FINISHED" if finished else "FAILED",
                "epochs_trained": metrics.get("epochs_trained"),
                "test_accuracy": metrics.get("test/accuracy"),
                "test_auc": metrics.get("test/auc"),
                "error": "" if result.error is None else str(result.error).strip().splitlines()[-1][:120],
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS).sort_values("trial", ignore_index=True)
