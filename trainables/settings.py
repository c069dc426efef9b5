"""What a trial accepts: its grid axes, the settings sections, and their validation. No heavy imports.

The sweep driver (`sweep.config`) builds these from YAML and the trial rebuilds them from its config
dict, so both sides agree on every name, default and bound. Validation is driven by the dataclasses'
type annotations and field metadata: unknown keys, unknown values and wrong types raise `ConfigError`
with one line naming the bad value and what is allowed. A setting typed `tuple[X, ...]` is a YAML list
(a single value counts as a one-item list); its items are checked like scalars and must not repeat.
A field with a `parse` function (see `parsed`) is also checked by it, and holds what it returns.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trainables.embeddings import Word2VecSettings, parse_source
from trainables.pretrained import parse_pretrained
from trainables.registry import ATTRIBUTION_METHODS

DATASETS = ("sst2", "imdb", "ag_news", "20news_sports", "snli", "mnli")
# sentence-pair datasets (natural language inference): each instance is a premise and a hypothesis
# (trainables.data.Split.hypotheses); the pretrained word-piece encoders (distilbert) do not read pairs
PAIR_DATASETS = ("snli", "mnli")
# Each dataset's class names by label id; the label ids name the per-class metrics (docs/METRICS.md).
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "sst2": ("negative", "positive"),
    "imdb": ("negative", "positive"),
    "ag_news": ("world", "business"),
    "20news_sports": ("baseball", "hockey"),
    "snli": ("entailment", "neutral", "contradiction"),
    "mnli": ("entailment", "neutral", "contradiction"),
}
ENCODERS = ("lstm", "cnn", "average", "transformer", "distilbert")
# encoders that bring their own tokenizer and embeddings (trainables/pretrained.py): their trials read the
# datasets as the pretrained model's word pieces, not as spaCy words, and ignore the `embeddings` section
PRETRAINED_ENCODERS = ("distilbert",)
POSITIONS = ("sinusoidal", "learned")  # the transformer encoder's position encodings
ATTENTIONS = ("tanh", "dot")
NORMALIZERS = ("softmax", "sparsemax", "entmax15", "alpha_entmax", "uniform")
AXES = ("dataset", "encoder", "attention", "normalizer", "seed")
AXIS_VALUES: dict[str, tuple[str, ...]] = {
    "dataset": DATASETS,
    "encoder": ENCODERS,
    "attention": ATTENTIONS,
    "normalizer": NORMALIZERS,
}
MAX_SEED = 2**32 - 1  # numpy and torch seeds are unsigned 32-bit


class ConfigError(ValueError):
    """An invalid sweep definition, override or trial config."""


class DataError(ValueError):
    """Bad or missing input data, reported as one line before any trial starts (see trainables.data)."""


def positive(**kwargs: Any) -> Any:
    """A dataclass field that must be > 0."""
    return field(metadata={"positive": True}, **kwargs)


def non_negative(**kwargs: Any) -> Any:
    """A dataclass field that must be >= 0."""
    return field(metadata={"non_negative": True}, **kwargs)


def fraction(**kwargs: Any) -> Any:
    """A dataclass field that must be in [0, 1]."""
    return field(metadata={"non_negative": True, "maximum": 1.0}, **kwargs)


def one_of(choices: tuple[str, ...], **kwargs: Any) -> Any:
    """A dataclass field whose value (or, for a tuple field, every item) must be one of `choices`."""
    return field(metadata={"choices": choices}, **kwargs)


def parsed(parse: Callable[[Any], Any], **kwargs: Any) -> Any:
    """A dataclass field checked by `parse`, which returns the value to keep or raises a ValueError."""
    return field(metadata={"parse": parse}, **kwargs)


def embedding_source(text: str) -> str:
    """`embeddings.source` as `parse_source` reads it: a local file becomes its absolute path, which the
    sweep saves for `--resume` and the Ray workers read (their working directory differs)."""
    source = parse_source(text)
    return source.location or source.kind


def dataset_key(dataset: str, encoder: str) -> str:
    """The key of a grid dataset as an encoder reads it, among the prepared datasets shared by the trials:
    `sst2` (spaCy words) or, for a pretrained encoder, `sst2/word_pieces`."""
    return f"{dataset}/word_pieces" if encoder in PRETRAINED_ENCODERS else dataset


@dataclass(frozen=True)
class DataSettings:
    """Dataset preparation shared by every trial (see trainables.data.prepare)."""

    max_examples: int | None = positive(default=None)  # cap per split, seeded sample (smoke tests)
    split_seed: int = non_negative(default=0)  # seeds the held-out splits and samples; shared by all trials
    max_tokens: int | None = positive(default=None)  # override the dataset's length filter (e.g. 100)


@dataclass(frozen=True)
class TrainSettings:
    """Model size and optimisation, defaults from Jain & Wallace (2019).

    The `transformer_*` settings shape the `transformer` encoder (trained from scratch, over hidden_size
    states: the embeddings are projected to hidden_size, which must be a multiple of transformer_heads).
    `pretrained`, `pretrained_lr` and `warmup` are the `distilbert` encoder's: the model's Hub name or
    local folder, the learning rate of its pretrained weights (the new pooling attention and decoder learn
    at `lr`), and the share of training steps over which both rise linearly from 0 before decaying linearly
    to 0; defaults from the fine-tuning of DistilBERT on SST-2 by its authors (lr 1e-5, batch 32, 600
    warm-up steps of 6,315). `distilbert` ignores embed_dim and hidden_size (the model's own sizes).
    `mixed_precision`: training passes under bfloat16 autocast (meant for DistilBERT on GPUs; off, so CPU
    results are exact); evaluation and explanations always run in full precision.
    """

    embed_dim: int = positive(default=300)
    hidden_size: int = positive(default=128)
    batch_size: int = positive(default=32)
    lr: float = positive(default=1e-3)
    weight_decay: float = non_negative(default=1e-5)
    max_epochs: int = positive(default=40)
    patience: int = positive(default=10)  # epochs without a better validation AUC before stopping
    transformer_layers: int = positive(default=2)
    transformer_heads: int = positive(default=4)
    transformer_dropout: float = fraction(default=0.1)
    transformer_positions: str = one_of(POSITIONS, default="sinusoidal")
    pretrained: str = parsed(parse_pretrained, default="distilbert-base-uncased")
    pretrained_lr: float = positive(default=1e-5)
    warmup: float = fraction(default=0.1)
    mixed_precision: bool = False


@dataclass(frozen=True)
class EmbeddingSettings:
    """The initial word vectors (trainables.embeddings), built once per sweep; their size is train.embed_dim.

    source: random (the model's own N(0, 1) initialisation), word2vec (skip-gram trained on the sweep's
    corpus: the training split of every dataset in the grid, plus the train texts of `extra_corpus`),
    a fastText `.vec` / `.vec.zip` file, or an http(s) URL of one (downloaded once into the sweep's storage).
    window, min_count, epochs, seed: the word2vec settings, defaults from `Word2VecSettings`.
    """

    source: str = parsed(embedding_source, default="random")
    window: int = positive(default=Word2VecSettings.window)
    min_count: int = positive(default=Word2VecSettings.min_count)
    epochs: int = positive(default=Word2VecSettings.epochs)
    seed: int = field(default=Word2VecSettings.seed, metadata={"non_negative": True, "maximum": MAX_SEED})
    extra_corpus: tuple[str, ...] = one_of(DATASETS, default=())  # unlabeled in-domain text for word2vec

    def __post_init__(self) -> None:
        if self.extra_corpus and self.source != "word2vec":
            raise ConfigError(
                f"embeddings.extra_corpus: only a word2vec source trains on text; source is {self.source!r}"
            )

    def word2vec(self) -> Word2VecSettings:
        return Word2VecSettings(self.window, self.min_count, self.epochs, self.seed)


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
    chance_permutations: int = positive(default=20)  # permutations per instance behind each chance level
    # random token orders per instance behind the erasure-faithfulness baseline (trainables/faithfulness.py);
    # each costs as much as one measure's erasures
    faithfulness_random_orders: int = positive(default=1)


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


TRIAL_SECTIONS: dict[str, type] = {
    "data": DataSettings,
    "train": TrainSettings,
    "embeddings": EmbeddingSettings,
    "explain": ExplainSettings,
    "counterfactual": CounterfactualSettings,
}


def run_name(config: Mapping[str, Any]) -> str:
    """`sst2-lstm-tanh-sparsemax-s1`: the grid axes of a trial."""
    return "-".join(str(config[a]) for a in AXES[:-1]) + f"-s{config['seed']}"


def check_axis_value(axis: str, value: Any) -> Any:
    """`value` if it is allowed on grid axis `axis` (a known name, or a seed in 0..2³²−1)."""
    if axis == "seed":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SEED:
            raise ConfigError(f"grid.seed: {value!r} is not an integer in 0..{MAX_SEED}")
    elif value not in AXIS_VALUES[axis]:
        raise ConfigError(f"grid.{axis}: unknown value {value!r}; allowed: {', '.join(AXIS_VALUES[axis])}")
    return value


def build_section(cls: type, values: Any, where: str) -> Any:
    """A settings dataclass from a mapping, rejecting unknown keys and bad types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(fields)}")
    return cls(**{k: check_value(f"{where}.{k}", v, hints[k], fields[k].metadata) for k, v in values.items()})


def check_value(where: str, value: Any, annotation: Any, meta: Mapping) -> Any:
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
    if "maximum" in meta and value > meta["maximum"]:
        raise ConfigError(f"{where}: {value!r} must be <= {meta['maximum']}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{where}: unknown value {value!r}; allowed: {', '.join(choices)}")
    if "parse" in meta:
        try:
            return meta["parse"](value)
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None
    return value


def _check_items(where: str, value: Any, annotation: Any, meta: Mapping) -> tuple:
    """Validate a list (or one value, read as a one-item list) against `tuple[X, ...]`; return a tuple."""
    kind, ellipsis = typing.get_args(annotation)
    if ellipsis is not Ellipsis:
        raise TypeError(f"{where}: only tuple[X, ...] settings are supported, not {annotation}")
    if value is None:
        raise ConfigError(f"{where}: null is not allowed; expected a list of {_type_names((kind,))}")
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    checked = tuple(check_value(where, item, kind, meta) for item in items)
    if len(set(checked)) != len(checked):
        raise ConfigError(f"{where}: repeated value in {list(checked)!r}")
    return checked


def _type_names(kinds: tuple) -> str:
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
