"""Run or resume a sweep: prepare data, word vectors and MLflow in the driver, then one Ray Tune trial per
grid point.

`run_sweep` and `resume_sweep` check every input first (writing nothing if one is bad; the MLflow store
first of all), then open the sweep's one Ray instance, check that its nodes can hold a trial, build the
initial word vectors in it (a Ray task, cached in the sweep's storage), and hand the trials to `fit`.
The pieces live beside this module: `environment` (variables), `tracking` (MLflow), `storage` (the
sweep's files), `summary` (the final table), `cluster` (what the Ray cluster can hold).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from mlflow.tracking import MlflowClient

from sweep import environment, storage
from sweep.cluster import check_shared_storage, check_trial_fits
from sweep.config import EMBEDDINGS_FOLDER, ConfigError, ResourceSettings, SweepConfig, parse_config
from sweep.summary import summarize
from sweep.tracking import (
    DEFAULT_OUTPUT_DIR,
    check_reachable,
    check_store,
    default_tracking_uri,
    delete_runs,
    ensure_experiment,
    is_local_store,
    mark_failed_runs,
    mark_stopped_runs,
    normalize_uri,
)
from trainables.settings import AXES, PRETRAINED_ENCODERS, dataset_key, run_name
from trainables.tracking import best_effort

if TYPE_CHECKING:
    from ray import tune

    from trainables.data import PreparedDataset, TokenizedDataset
    from trainables.embeddings import WordVectors
    from trainables.trial import TrialHooks

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SWEEP_FILE = "ane_sweep.json"  # beside Ray's experiment state: what `--resume` needs to rebuild the trainable


@dataclass
class SweepOptions:
    """Where a sweep reads and writes, beside what it computes (the `SweepConfig`)."""

    data_dir: Path | None = None
    tracking_uri: str | None = None
    output_dir: Path = DEFAULT_OUTPUT_DIR
    storage_path: str | None = None  # Ray results; default <output_dir>/ray_results
    address: str | None = None  # an existing Ray cluster; None starts a local one
    overwrite: bool = False
    shared_storage: bool | None = None  # storage_path is a mount all nodes share (NFS); see sweep.cluster
    ray_output: bool = False  # Ray Tune's own status tables and result dumps beside the progress lines

    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri:
            return normalize_uri(self.tracking_uri)
        return default_tracking_uri(self.output_dir)

    def resolved_storage_path(self) -> str:
        location = self.storage_path or str((self.output_dir / "ray_results").resolve())
        if not storage.is_uri(location) and not Path(location).is_absolute():
            raise ConfigError(f"storage path {location!r} must be absolute or a URI (s3://, gs://)")
        return location.rstrip("/")

    def embeddings_store(self) -> str:
        """Where word vector builds are cached: beside the experiments, so every sweep there reuses them."""
        return f"{self.resolved_storage_path()}/{EMBEDDINGS_FOLDER}"


@dataclass
class SweepResult:
    """What a sweep returns: a row per trial and where to look."""

    name: str
    summary: pd.DataFrame
    experiment_id: str
    tracking_uri: str
    experiment_dir: str
    embeddings: dict[str, Any] = field(default_factory=dict)  # build_vectors' info: source, key, cached, ...

    @property
    def failed(self) -> int:
        return int((self.summary["status"] != "FINISHED").sum())


@dataclass
class Experiment:
    """An MLflow experiment opened for a sweep."""

    client: MlflowClient
    experiment_id: str
    uri: str


@dataclass
class Embeddings:
    """The sweep's initial word vectors (None: random initialisation) and how they were built."""

    vectors: WordVectors | None
    info: dict[str, Any]


def prepare_data(
    config: SweepConfig, data_dir: Path | None
) -> tuple[dict[str, PreparedDataset], list[list[str]]]:
    """Every dataset of the grid, loaded and indexed once and shared by all trials (keyed by
    `dataset_key`), and the word2vec corpus.

    Encoders trained from scratch read a dataset as spaCy words, a pretrained encoder (DistilBERT) as its
    tokenizer's word pieces of the same rows (`trainables.pretrained`: loaded here, so a model that cannot
    be found fails before any trial starts). The corpus: the training split (tokenized, as prepared; for a
    sentence-pair dataset its premises and hypotheses, `train_corpus`) of each grid dataset, then the
    unlabeled train texts of each `embeddings.extra_corpus` dataset (`unlabeled_train_texts`: no
    validation or test text), in that order; a grid dataset that is also an extra one comes once, as the
    extra texts, which hold its training split. A vectors file source reads the vectors of the corpus's
    words.
    """
    from trainables.data import index_dataset, tokenize_dataset, train_corpus, unlabeled_train_texts

    data, extra = config.data, config.embeddings.extra_corpus
    tokenized = {
        name: tokenize_dataset(name, data_dir, data.max_examples, data.split_seed, data.max_tokens)
        for name in config.grid.dataset
    }
    corpus: list[list[str]] = []
    for name, dataset in tokenized.items():
        if name not in extra:
            corpus += train_corpus(dataset)
    for name in extra:
        corpus += unlabeled_train_texts(name, data_dir, data.split_seed, data.max_tokens)
    encoders = config.grid.encoder
    prepared = {}
    if any(encoder not in PRETRAINED_ENCODERS for encoder in encoders):
        prepared.update({name: index_dataset(dataset) for name, dataset in tokenized.items()})
    if any(encoder in PRETRAINED_ENCODERS for encoder in encoders):
        pieces = word_pieces(config.train.pretrained)
        prepared.update({dataset_key(name, "distilbert"): pieces(d) for name, d in tokenized.items()})
    return prepared, corpus


def word_pieces(source: str) -> Callable[[TokenizedDataset], PreparedDataset]:
    """What turns a tokenized dataset into the word pieces of the pretrained model at `source`
    (`index_word_pieces` with its tokenizer), once its configuration and tokenizer have loaded."""
    from trainables.data import index_word_pieces
    from trainables.pretrained import load_config, load_tokenizer, special_ids

    config, tokenizer = load_config(source), load_tokenizer(source)
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))

    def encode(texts: list[str]) -> list[list[int]]:
        return tokenizer(texts, add_special_tokens=False)["input_ids"]

    special, max_pieces = special_ids(tokenizer), config.max_position_embeddings - 2
    return lambda dataset: index_word_pieces(dataset, encode, vocab, special, max_pieces)


@contextmanager
def ray_session(
    options: SweepOptions, variables: dict[str, str], resources: ResourceSettings
) -> Iterator[None]:
    """The sweep's Ray instance (see `ray_instance`), once its storage path is known to suit its nodes and
    one of them (or one its autoscaler can start) can hold a trial: checked before anything is written."""
    with ray_instance(options.address, variables):
        check_shared_storage(options.resolved_storage_path(), options.address, shared=options.shared_storage)
        check_trial_fits(resources.cpus_per_trial, resources.gpus_per_trial, options.address)
        yield


def build_embeddings(config: SweepConfig, corpus: list[list[str]], store: str) -> Embeddings:
    """`build_vectors` for the sweep, in a Ray task of the connected instance; its errors come back as one
    `EmbeddingError` line. A word2vec build is cached in `store`, so a second sweep or a resume loads it."""
    import ray

    from trainables.embeddings import EmbeddingError, build_vectors, parse_source

    settings = config.embeddings
    task = ray.remote(build_vectors).remote(
        parse_source(settings.source), corpus, config.train.embed_dim, settings.word2vec(), store
    )
    try:
        return Embeddings(*ray.get(task))
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, EmbeddingError):
            raise error.cause from None
        raise


def open_experiment(name: str, options: SweepOptions) -> Experiment:
    """The MLflow client and experiment, creating a local store if needed (after `environment.set_up`)."""
    uri = options.resolved_tracking_uri()
    local = is_local_store(uri)
    if local:
        options.output_dir.mkdir(parents=True, exist_ok=True)
    client = check_reachable(uri)
    experiment_id = ensure_experiment(client, name, options.output_dir / "mlartifacts" if local else None)
    return Experiment(client, experiment_id, uri)


def run_sweep(config: SweepConfig, options: SweepOptions, hooks: TrialHooks | None = None) -> SweepResult:
    """Start a new sweep: validate inputs (writing nothing if any is bad), then run every trial.

    `hooks` reach every trial (tests use them to make trials fail on purpose).
    """
    uri = options.resolved_tracking_uri()
    check_store(uri)  # first: in seconds, before the data preparation and before any folder exists
    results_root = options.resolved_storage_path()
    experiment_dir = f"{results_root}/{config.name}"
    exists = storage.exists(experiment_dir)
    if exists and not options.overwrite:
        raise ConfigError(
            f"experiment {config.name!r} already exists at {experiment_dir}; "
            f"pass --resume {config.name} to continue it or --overwrite to replace it"
        )
    datasets, corpus = prepare_data(config, options.data_dir)
    with ray_session(options, environment.set_up(uri), config.resources):
        embeddings = build_embeddings(config, corpus, options.embeddings_store())
        del corpus  # large, and the trials need only the vectors
        experiment = open_experiment(config.name, options)
        make_tuner = start_experiment(config, options, experiment)
        summary = fit(make_tuner, config, datasets, embeddings, experiment, hooks, options.ray_output)
    return SweepResult(config.name, summary, experiment.experiment_id, uri, experiment_dir, embeddings.info)


def start_experiment(
    config: SweepConfig, options: SweepOptions, experiment: Experiment
) -> Callable[[Callable], tune.Tuner]:
    """Clear (`--overwrite`) or refuse what an earlier sweep of this name left, save the sweep for
    `--resume`, and return what makes its tuner from the trainable."""
    from ray import tune

    from sweep.progress import ProgressLines

    results_root = options.resolved_storage_path()
    if options.overwrite:
        storage.remove_folder(results_root, config.name)
        delete_runs(experiment.client, experiment.experiment_id)
    elif experiment.client.search_runs([experiment.experiment_id], max_results=1):
        raise ConfigError(
            f"MLflow experiment {config.name!r} already has runs in {experiment.uri}; "
            "pass --overwrite to replace them or --name to pick another name"
        )
    saved = {
        "config": config.to_dict(),
        "data_dir": str(options.data_dir.resolve()) if options.data_dir else None,
        "tracking_uri": experiment.uri,
    }
    storage.write_text(f"{results_root}/{config.name}/{SWEEP_FILE}", json.dumps(saved, indent=2))
    tracking = {"uri": experiment.uri, "experiment_id": experiment.experiment_id, "sweep": config.name}
    param_space = {
        **{axis: tune.grid_search(list(getattr(config.grid, axis))) for axis in AXES},
        **config.trial_settings(),
        "tracking": tracking,
    }

    trials = len(config.trial_names())
    progress = ProgressLines(
        trials, config.resources.max_concurrent, config.train.max_epochs, config.train.patience
    )

    def make_tuner(trainable: Callable) -> tune.Tuner:
        return tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                max_concurrent_trials=config.resources.max_concurrent,
                trial_name_creator=lambda trial: run_name(trial.config),
                trial_dirname_creator=lambda trial: run_name(trial.config),
            ),
            run_config=tune.RunConfig(
                name=config.name,
                storage_path=results_root,
                # two: after a SIGKILL the saved experiment state can point at the previous checkpoint
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=config.resources.max_failures),
                callbacks=[progress],
                verbose=2 if options.ray_output else 0,  # 0: see environment.quiet_tune
            ),
        )

    return make_tuner


def resume_sweep(name: str, options: SweepOptions) -> SweepResult:
    """Continue an interrupted sweep: finished trials stay, the others continue from their checkpoints.

    The word vectors are built again from the same data and settings, so a word2vec build loads from the
    cache instead of training.
    """
    from ray import tune

    if options.tracking_uri:  # first: in seconds, before anything is read or written
        check_store(options.resolved_tracking_uri())
    experiment_dir = f"{options.resolved_storage_path()}/{name}"
    sweep_file = f"{experiment_dir}/{SWEEP_FILE}"
    saved_text = storage.read_text(sweep_file)
    if saved_text is None or not tune.Tuner.can_restore(experiment_dir):
        raise ConfigError(f"no experiment {name!r} to resume at {experiment_dir}; start it without --resume")
    saved = json.loads(saved_text)
    config = parse_config(saved["config"], sweep_file)
    options = remembered_options(options, saved, name)
    uri = options.resolved_tracking_uri()
    check_store(uri)  # the store the sweep started with
    datasets, corpus = prepare_data(config, options.data_dir)
    with ray_session(options, environment.set_up(uri), config.resources):
        embeddings = build_embeddings(config, corpus, options.embeddings_store())
        del corpus  # large, and the trials need only the vectors
        experiment = open_experiment(config.name, options)

        def make_tuner(trainable: Callable) -> tune.Tuner:
            return tune.Tuner.restore(experiment_dir, trainable, resume_errored=True)

        summary = fit(make_tuner, config, datasets, embeddings, experiment, ray_output=options.ray_output)
    return SweepResult(config.name, summary, experiment.experiment_id, uri, experiment_dir, embeddings.info)


def remembered_options(options: SweepOptions, saved: dict[str, Any], name: str) -> SweepOptions:
    """`options` with the MLflow store and data folder the sweep started with (saved in its SWEEP_FILE);
    a different one given on the command line is refused, since the sweep's runs and data live there."""
    remembered = {"tracking_uri": saved.get("tracking_uri"), "data_dir": saved.get("data_dir")}
    given = {
        "tracking_uri": options.resolved_tracking_uri() if options.tracking_uri else None,
        "data_dir": str(options.data_dir.resolve()) if options.data_dir else None,
    }
    for key, value in given.items():
        if value is not None and remembered[key] is not None and value != remembered[key]:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(
                f"{flag} {value} differs from the {remembered[key]} that sweep {name!r} started with; "
                f"drop {flag} to resume it there"
            )
    data_dir = remembered["data_dir"] or given["data_dir"]
    return dataclasses.replace(
        options,
        tracking_uri=remembered["tracking_uri"] or options.tracking_uri,
        data_dir=Path(data_dir) if data_dir else None,
    )


def runtime_env(variables: dict[str, str]) -> dict:
    """Ray runtime env for trial workers: the project importable, and the sweep's variables."""
    return {"env_vars": {"PYTHONPATH": str(PROJECT_ROOT), **variables}}


@contextmanager
def ray_instance(address: str | None, variables: dict[str, str]) -> Iterator[None]:
    """Connect to Ray for the block: the running instance if this process has one, else a new local
    instance (or the cluster at `address`), shut down afterwards."""
    import ray

    if ray.is_initialized():
        yield
        return
    ray.init(
        address=address or "local",  # never attach to another cluster unless asked to
        include_dashboard=False,
        runtime_env=runtime_env(variables),
    )
    try:
        yield
    finally:
        ray.shutdown()


def fit(
    make_tuner: Callable,
    config: SweepConfig,
    datasets: dict[str, PreparedDataset],
    embeddings: Embeddings,
    experiment: Experiment,
    hooks: TrialHooks | None = None,
    ray_output: bool = False,
) -> pd.DataFrame:
    """Run the tuner in the connected Ray instance and summarise every trial of the grid. The datasets and
    word vectors reach the trials through Ray's object store.

    Afterwards the runs of trials whose worker died (killed for memory, say) are marked FAILED with Ray's
    error, and those of trials stopped before the end (Ctrl-C) KILLED; a resume sets them RUNNING again.
    An MLflow failure there is only a warning: it must not hide the tuner's error (or a Ctrl-C).
    """
    from ray import tune

    from trainables.trial import run_trial

    try:
        resources = {"cpu": config.resources.cpus_per_trial, "gpu": config.resources.gpus_per_trial}
        parameters = {"datasets": datasets, "vectors": embeddings.vectors, "embedding_info": embeddings.info}
        if hooks is not None:
            parameters["hooks"] = hooks
        trainable = tune.with_resources(tune.with_parameters(run_trial, **parameters), resources)
        with environment.quiet_tune(not ray_output):
            grid = make_tuner(trainable).fit()
        errors = {
            run_name(result.config): f"{type(result.error).__name__}: {result.error}"
            for result in grid
            if result.error is not None and result.config
        }
        mark_failed_runs(experiment.client, experiment.experiment_id, errors)
    finally:
        best_effort(
            lambda: mark_stopped_runs(experiment.client, experiment.experiment_id),
            "mark the MLflow runs of stopped trials KILLED",
        )
    return summarize(grid, config.trial_names())
