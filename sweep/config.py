"""Sweep definitions: a YAML file of grid axes and settings, validated before Ray starts.

A sweep YAML has the sections `name`, `description`, `grid` (the axes; every combination is one trial)
and the settings sections below. Unknown keys, unknown axis values and wrong types raise `ConfigError`
with one line naming the bad value and what is allowed. A setting typed `tuple[X, ...]` is a YAML list
(a single value counts as a one-item list); its items are checked like scalars and must not repeat.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainables.attributions import METHODS as ATTRIBUTION_METHODS
from trainables.data import DATASETS
from trainables.model import ATTENTIONS, ENCODERS, NORMALIZERS

PRESET_DIR = Path(__file__).parent / "presets"


class ConfigError(ValueError):
    """An invalid sweep definition or override."""


def positive(**kwargs: Any) -> Any:
    """A dataclass field that must be > 0."""
    return field(metadata={"positive": True}, **kwargs)


def non_negative(**kwargs: Any) -> Any:
    """A dataclass field that must be >= 0."""
    return field(metadata={"non_negative": True}, **kwargs)


def one_of(choices: tuple[str, ...], **kwargs: Any) -> Any:
    """A dataclass field whose value (or, for a tuple field, every item) must be one of `choices`."""
    return field(metadata={"choices": choices}, **kwargs)


@dataclass(frozen=True)
class Grid:
    """The axes crossed into trials."""

    dataset: tuple[str, ...] = ("sst2",)
    encoder: tuple[str, ...] = ("lstm",)
    attention: tuple[str, ...] = ("tanh", "dot")
    normalizer: tuple[str, ...] = ("softmax", "sparsemax")
    seed: tuple[int, ...] = (1,)

    @property
    def size(self) -> int:
        return (
            len(self.dataset)
            * len(self.encoder)
            * len(self.attention)
            * len(self.normalizer)
            * len(self.seed)
        )


ALLOWED_AXIS_VALUES: dict[str, tuple[str, ...]] = {
    "dataset": tuple(DATASETS),
    "encoder": ENCODERS,
    "attention": ATTENTIONS,
    "normalizer": NORMALIZERS,
}


@dataclass(frozen=True)
class DataSettings:
    """Dataset preparation shared by every trial (see trainables.data.prepare)."""

    max_examples: int | None = positive(default=None)  # cap per split, seeded sample (smoke tests)
    split_seed: int = 0  # seeds the IMDB dev split and test sample; fixed so all trials share the data
    max_tokens: int | None = positive(default=None)  # override the dataset's length filter (e.g. 100)


@dataclass(frozen=True)
class TrainSettings:
    """Model size and optimisation, defaults from Jain & Wallace (2019)."""

    embed_dim: int = positive(default=300)
    hidden_size: int = positive(default=128)
    vectors: str | None = None  # optional pretrained `.vec` file; random init otherwise
    batch_size: int = positive(default=32)
    lr: float = positive(default=1e-3)
    weight_decay: float = non_negative(default=1e-5)
    max_epochs: int = positive(default=40)
    patience: int = positive(default=10)  # epochs without a better validation AUC before stopping


@dataclass(frozen=True)
class ExplainSettings:
    """Feature importance and correlations on the test set (always computed: the point of every trial)."""

    batch_size: int = positive(default=256)  # instances per gradient / LOO / attribution batch
    loo_max_rows: int = positive(default=256)  # deleted sequences per LOO forward pass (256 fastest on 1 CPU)
    # captum attributions beyond gradient and LOO (trainables/attributions.py); none by default, slow
    attributions: tuple[str, ...] = one_of(ATTRIBUTION_METHODS, default=())
    ig_steps: int = positive(default=50)  # Integrated Gradients path points (captum's default)
    lime_samples: int = positive(default=500)  # LIME perturbations per instance
    internal_batch_size: int = positive(default=256)  # rows per forward pass of the attribution methods


@dataclass(frozen=True)
class CounterfactualSettings:
    """Jain & Wallace's adversarial attention search and attention permutation."""

    enabled: bool = True
    adversaries: int = positive(default=5)
    steps: int = positive(default=500)
    epsilon: float = positive(default=0.01)
    penalty: float = positive(default=500.0)
    lr: float = positive(default=0.01)
    permutations: int = positive(default=100)
    batch_size: int = positive(default=256)


@dataclass(frozen=True)
class ResourceSettings:
    """What each trial asks Ray for, and how many run at once."""

    cpus_per_trial: float = positive(default=1.0)
    gpus_per_trial: float = non_negative(default=0.0)  # fractions share a GPU (0.25: four trials per GPU)
    max_concurrent: int = positive(default=2)
    max_failures: int = non_negative(default=2)  # retries of a raising trial, from its last checkpoint


@dataclass(frozen=True)
class FaultSettings:
    """Deliberate failures, used only by the tests of retries and failure reporting."""

    fail_after_epoch: int | None = (
        None  # every trial raises once, after this epoch's checkpoint, then recovers
    )
    fail_trial: str | None = None  # the trial with this run name raises at every attempt


SECTIONS: dict[str, type] = {
    "data": DataSettings,
    "train": TrainSettings,
    "explain": ExplainSettings,
    "counterfactual": CounterfactualSettings,
    "resources": ResourceSettings,
    "faults": FaultSettings,
}


@dataclass(frozen=True)
class SweepConfig:
    """A whole sweep: its name, grid and settings."""

    name: str
    description: str = ""
    grid: Grid = Grid()
    data: DataSettings = DataSettings()
    train: TrainSettings = TrainSettings()
    explain: ExplainSettings = ExplainSettings()
    counterfactual: CounterfactualSettings = CounterfactualSettings()
    resources: ResourceSettings = ResourceSettings()
    faults: FaultSettings = FaultSettings()

    def settings(self) -> dict[str, dict[str, Any]]:
        """The settings sections as plain dicts, the part of every trial's config outside the grid."""
        return {section: dataclasses.asdict(getattr(self, section)) for section in SECTIONS}

    def to_dict(self) -> dict[str, Any]:
        """The YAML-shaped dict that `parse_config` turns back into this config."""
        grid = {axis: list(values) for axis, values in dataclasses.asdict(self.grid).items()}
        return {"name": self.name, "description": self.description, "grid": grid, **self.settings()}


def _check_value(where: str, value: Any, annotation: Any, meta: typing.Mapping) -> Any:
    """Validate one value against its type annotation; ints are accepted where floats are expected."""
    if typing.get_origin(annotation) is tuple:
        return _check_items(where, value, annotation, meta)
    allowed = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"{where}: null is not allowed; expected {_type_names(allowed)}")
    for kind in allowed:
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
            break
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            break
        if kind in (str, bool) and isinstance(value, kind):
            break
    else:
        raise ConfigError(f"{where}: {value!r} is a {type(value).__name__}; expected {_type_names(allowed)}")
    if meta.get("positive") and value <= 0:
        raise ConfigError(f"{where}: {value!r} must be > 0")
    if meta.get("non_negative") and value < 0:
        raise ConfigError(f"{where}: {value!r} must be >= 0")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{where}: unknown value {value!r}; allowed: {', '.join(choices)}")
    return value


def _check_items(where: str, value: Any, annotation: Any, meta: typing.Mapping) -> tuple:
    """Validate a list (or one value, read as a one-item list) against `tuple[X, ...]`; return a tuple."""
    kind, ellipsis = typing.get_args(annotation)
    if ellipsis is not Ellipsis:
        raise TypeError(f"{where}: only tuple[X, ...] settings are supported, not {annotation}")
    if value is None:
        raise ConfigError(f"{where}: null is not allowed; expected a list of {_type_names((kind,))}")
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    checked = tuple(_check_value(where, item, kind, meta) for item in items)
    if len(set(checked)) != len(checked):
        raise ConfigError(f"{where}: repeated value in {list(checked)!r}")
    return checked


def _type_names(kinds: tuple) -> str:
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)


def _build_section(cls: type, values: Any, where: str) -> Any:
    """A settings dataclass from a YAML mapping, rejecting unknown keys and bad types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(fields)}")
    return cls(
        **{k: _check_value(f"{where}.{k}", v, hints[k], fields[k].metadata) for k, v in values.items()}
    )


def _build_grid(values: Any) -> Grid:
    if not isinstance(values, dict):
        raise ConfigError(f"grid: expected a mapping of axes, got {values!r}")
    axes = [f.name for f in dataclasses.fields(Grid)]
    unknown = sorted(set(values) - set(axes))
    if unknown:
        raise ConfigError(f"grid: unknown axis {unknown[0]!r}; allowed: {', '.join(axes)}")
    built = {}
    for axis, raw in values.items():
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise ConfigError(f"grid.{axis}: empty list; give at least one value")
        for item in items:
            if axis == "seed":
                if not isinstance(item, int) or isinstance(item, bool):
                    raise ConfigError(f"grid.seed: {item!r} is not an integer")
            elif item not in ALLOWED_AXIS_VALUES[axis]:
                raise ConfigError(
                    f"grid.{axis}: unknown value {item!r}; allowed: {', '.join(ALLOWED_AXIS_VALUES[axis])}"
                )
        if len(set(items)) != len(items):
            raise ConfigError(f"grid.{axis}: repeated value in {items!r}")
        built[axis] = tuple(items)
    return Grid(**built)


def parse_config(raw: Any, source: str) -> SweepConfig:
    """Validate a parsed YAML document into a `SweepConfig`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a YAML mapping at the top level")
    allowed = ["name", "description", "grid", *SECTIONS]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise ConfigError(f"{source}: name must be a non-empty string without '/', got {name!r}")
    sections = {key: _build_section(cls, raw[key], key) for key, cls in SECTIONS.items() if key in raw}
    grid = _build_grid(raw["grid"]) if "grid" in raw else Grid()
    return SweepConfig(name=name, description=str(raw.get("description", "")), grid=grid, **sections)


def load_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: malformed YAML{at}: {getattr(error, 'problem', error)}") from None
    return parse_config(raw, str(path))


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> SweepConfig:
    """A preset from `sweep/presets/<name>.yaml`."""
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; allowed: {', '.join(preset_names())}")
    return load_config(PRESET_DIR / f"{name}.yaml")


def with_overrides(
    config: SweepConfig,
    *,
    name: str | None = None,
    seeds: list[int] | None = None,
    max_epochs: int | None = None,
    max_concurrent: int | None = None,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float | None = None,
) -> SweepConfig:
    """Command-line overrides, validated like the YAML values they replace."""
    raw = config.to_dict()
    raw["name"] = name or config.name
    if seeds is not None:
        raw["grid"]["seed"] = seeds
    for section, key, value in (
        ("train", "max_epochs", max_epochs),
        ("resources", "max_concurrent", max_concurrent),
        ("resources", "cpus_per_trial", cpus_per_trial),
        ("resources", "gpus_per_trial", gpus_per_trial),
    ):
        if value is not None:
            raw[section][key] = value
    return parse_config(raw, "command line")
