"""Sweep definitions: a YAML file of grid axes, trial settings and resources, validated before Ray starts.

A sweep YAML has the sections `name`, `description`, `grid` (the axes; every combination is one trial),
the trial's settings sections (`trainables.settings`: data, train, embeddings, explain, counterfactual) and
`resources` (what each trial asks Ray for). Validation is `trainables.settings`'s: one-line
`ConfigError`s naming the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainables.settings import (
    AXES,
    ENCODERS,
    PAIR_DATASETS,
    PRETRAINED_ENCODERS,
    TRIAL_SECTIONS,
    ConfigError,
    CounterfactualSettings,
    DataSettings,
    EmbeddingSettings,
    ExplainSettings,
    TrainSettings,
    build_section,
    check_axis_value,
    non_negative,
    positive,
    run_name,
)

__all__ = ["ConfigError", "Grid", "ResourceSettings", "SweepConfig", "load_config", "load_preset"]

PRESET_DIR = Path(__file__).parent / "presets"
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")  # no separators, no leading dot, no '..' alone
EMBEDDINGS_FOLDER = "embeddings"  # <storage path>/embeddings: the word vectors cache, beside the experiments


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
        size = 1
        for axis in AXES:
            size *= len(getattr(self, axis))
        return size


@dataclass(frozen=True)
class ResourceSettings:
    """What each trial asks Ray for, and how many run at once."""

    cpus_per_trial: float = positive(default=1.0)
    gpus_per_trial: float = non_negative(default=0.0)  # fractions share a GPU (0.25: four trials per GPU)
    max_concurrent: int = positive(default=2)
    max_failures: int = non_negative(default=2)  # retries of a raising trial, from its last checkpoint


SECTIONS: dict[str, type] = {**TRIAL_SECTIONS, "resources": ResourceSettings}


@dataclass(frozen=True)
class SweepConfig:
    """A whole sweep: its name, grid and settings."""

    name: str
    description: str = ""
    grid: Grid = Grid()
    data: DataSettings = field(default_factory=DataSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    embeddings: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    explain: ExplainSettings = field(default_factory=ExplainSettings)
    counterfactual: CounterfactualSettings = field(default_factory=CounterfactualSettings)
    resources: ResourceSettings = ResourceSettings()

    def trial_settings(self) -> dict[str, dict[str, Any]]:
        """The trial's settings sections as plain dicts, the part of every trial's config outside the grid."""
        return {section: dataclasses.asdict(getattr(self, section)) for section in TRIAL_SECTIONS}

    def trial_names(self) -> list[str]:
        """The run name of every grid point: the trials of the sweep, started or not."""
        axes = [getattr(self.grid, axis) for axis in AXES]
        return sorted(run_name(dict(zip(AXES, point, strict=True))) for point in itertools.product(*axes))

    def to_dict(self) -> dict[str, Any]:
        """The YAML-shaped dict that `parse_config` turns back into this config."""
        grid = {axis: list(values) for axis, values in dataclasses.asdict(self.grid).items()}
        sections = {section: dataclasses.asdict(getattr(self, section)) for section in SECTIONS}
        return {"name": self.name, "description": self.description, "grid": grid, **sections}


def _build_grid(values: Any) -> Grid:
    if not isinstance(values, dict):
        raise ConfigError(f"grid: expected a mapping of axes, got {values!r}")
    unknown = sorted(set(values) - set(AXES))
    if unknown:
        raise ConfigError(f"grid: unknown axis {unknown[0]!r}; allowed: {', '.join(AXES)}")
    built = {}
    for axis, raw in values.items():
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise ConfigError(f"grid.{axis}: empty list; give at least one value")
        for item in items:
            check_axis_value(axis, item)
        if len(set(items)) != len(items):
            raise ConfigError(f"grid.{axis}: repeated value in {items!r}")
        built[axis] = tuple(items)
    return Grid(**built)


def check_name(name: Any, source: str) -> str:
    """`name` if it is one safe path component: it names the sweep's results folder and MLflow experiment."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise ConfigError(
            f"{source}: name {name!r} is not allowed; use letters, digits, '_', '-' and '.' "
            "(not first), at most 100 characters"
        )
    if name == EMBEDDINGS_FOLDER:
        raise ConfigError(f"{source}: name {name!r} is reserved for the word vectors cache; pick another")
    return name


def parse_config(raw: Any, source: str) -> SweepConfig:
    """Validate a parsed YAML document into a `SweepConfig`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a YAML mapping at the top level")
    allowed = ["name", "description", "grid", *SECTIONS]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")
    name = check_name(raw.get("name"), source)
    sections = {key: build_section(cls, raw[key], key) for key, cls in SECTIONS.items() if key in raw}
    grid = _build_grid(raw["grid"]) if "grid" in raw else Grid()
    _check_pairs(grid)
    train = sections.get("train", TrainSettings())
    if "transformer" in grid.encoder and train.hidden_size % train.transformer_heads:
        raise ConfigError(
            f"train.hidden_size: {train.hidden_size} is not a multiple of train.transformer_heads "
            f"({train.transformer_heads}), which the transformer encoder needs"
        )
    source = sections.get("embeddings", EmbeddingSettings()).source
    if source != "random" and set(grid.encoder) <= set(PRETRAINED_ENCODERS):
        raise ConfigError(
            f"embeddings.source: {source!r} would be built for nothing: grid.encoder has only "
            f"{', '.join(grid.encoder)}, which keeps its own embeddings; drop embeddings.source"
        )
    return SweepConfig(name=name, description=str(raw.get("description", "")), grid=grid, **sections)


def _check_pairs(grid: Grid) -> None:
    """Refuse a grid that crosses a sentence-pair dataset (NLI) with a pretrained word-piece encoder, which
    reads single texts only (trainables.data.index_word_pieces)."""
    pairs = [dataset for dataset in grid.dataset if dataset in PAIR_DATASETS]
    pretrained = [encoder for encoder in grid.encoder if encoder in PRETRAINED_ENCODERS]
    if pairs and pretrained:
        allowed = ", ".join(encoder for encoder in ENCODERS if encoder not in PRETRAINED_ENCODERS)
        raise ConfigError(
            f"grid: encoder {', '.join(pretrained)} does not read the sentence pairs of dataset "
            f"{', '.join(pairs)}; pair datasets run with {allowed}"
        )


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
    raw["name"] = config.name if name is None else name
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
