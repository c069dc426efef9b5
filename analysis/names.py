"""Names for people and the one colour palette shared by every table and figure, from the registry and
the datasets' class names (`trainables.settings.CLASS_NAMES`)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from trainables import examples, registry
from trainables.examples import ROW_COLOURS
from trainables.registry import Pair, Statistic, correlation_metric
from trainables.settings import AXES, CLASS_NAMES

SETTING = AXES[:-1]  # the grid axes but the seed: a setting's results are averaged over its seeds
ALL_CLASSES = "all"  # the class key of a summary over every test instance

# Okabe-Ito / Tol colours: distinguishable with colour-blindness, and no colour means two things at once.
BASE_PAIR_COLOURS = ("#0072B2", "#E69F00", "#009E73")  # attn_grad, attn_loo, grad_loo
EXTRA_PAIR_COLOURS = (
    "#CC79A7", "#D55E00", "#56B4E9", "#000000", "#AA4499", "#44AA99",
    "#DDCC77", "#117733", "#661100", "#6699CC", "#888888", "#332288",
)  # fmt: skip
# by true label id: Okabe-Ito, those of two classes first (negative, positive), yellow last (faint on white)
CLASS_COLOURS = ("#D55E00", "#56B4E9", "#009E73", "#CC79A7", "#E69F00", "#0072B2", "#000000", "#F0E442")
PALETTE = {
    "pair": dict(
        zip(
            (pair.name for pair in registry.ALL_PAIRS),
            BASE_PAIR_COLOURS + EXTRA_PAIR_COLOURS,
            strict=True,
        )
    ),
    "normalizer": {
        "softmax": "#882255",
        "sparsemax": "#332288",
        "entmax15": "#117733",
        "alpha_entmax": "#999933",
        "uniform": "#888888",
    },
    "class": dict(zip(map(str, range(len(CLASS_COLOURS))), CLASS_COLOURS, strict=True)),  # by label id
    "measure": ROW_COLOURS,  # by measure name (and `random`, `adv_attention`), as in the explanation pages
    "jsd": {"adversarial": "#CC3311", "seeds": "#009988"},  # adversarial attention, another seed's
    "infeasible": "#7F7F7F",
}


def with_attention(pairs: tuple[Pair, ...]) -> tuple[Pair, ...]:
    """The pairs that compare attention with a measure, and gradient vs LOO (the papers' reference)."""
    return tuple(pair for pair in pairs if pair.first.name == "attention" or pair.name == "grad_loo")


def logged_statistics(names: Iterable[str]) -> tuple[Statistic, ...]:
    """The registry's statistics, in registry order, that `names` (metric names of runs, or columns of
    `instances.parquet`) hold for some pair: runs of older trials lack the newer ones."""
    names = set(names)
    return tuple(
        statistic
        for statistic in registry.STATISTICS
        if any(
            correlation_metric(statistic.name, pair.name, "all", "mean") in names
            or f"{statistic.name}_{pair.name}" in names
            for pair in registry.ALL_PAIRS
        )
    )


def logged_chance(names: Iterable[str]) -> bool:
    """Whether `names` (metric names of runs, or columns of `instances.parquet`) hold chance levels."""
    return any(name.endswith(("/chance", "_chance")) for name in names)


def setting_name(setting: dict) -> str:
    """`sst2-lstm-tanh-softmax`: a trial's run name without the seed."""
    return "-".join(str(setting[axis]) for axis in SETTING)


def setting_title(setting: dict) -> str:
    """`sst2 · lstm encoder · tanh attention · softmax`."""
    return (
        f"{setting['dataset']} · {setting['encoder']} encoder · {setting['attention']} attention · "
        f"{setting['normalizer']}"
    )


def class_name(dataset: str, label: str | int) -> str:
    """`negative (0)`: a true label's name in `dataset` (`CLASS_NAMES`) and its id; `all` for the summary
    over all classes, `class 3` for a label the dataset does not name."""
    label = str(label)
    if label == ALL_CLASSES:
        return label
    names = CLASS_NAMES.get(dataset, ())
    return examples.class_name(int(label), names) if int(label) < len(names) else f"class {label}"


def class_colour(label: str | int) -> str:
    """A true label's colour (`PALETTE["class"]`; past its last colour, they repeat)."""
    return CLASS_COLOURS[int(label) % len(CLASS_COLOURS)]


def class_ids(labels: Iterable[str | int]) -> tuple[str, ...]:
    """Distinct true label ids as strings, in numeric order."""
    return tuple(str(label) for label in sorted({int(label) for label in labels}))


def logged_classes(names: Iterable[str]) -> tuple[str, ...]:
    """The true labels that per-class metric names (`kendall/attn_grad/2/mean`, `adversarial/2/jsd_mean`)
    among `names` hold summaries for, in numeric order; "all" is not one."""
    return class_ids(
        parts[-2] for parts in (name.split("/") for name in names) if len(parts) >= 3 and parts[-2].isdigit()
    )


def dataset_classes(dataset: str, logged: Iterable[str] = ()) -> tuple[str, ...]:
    """A dataset's true labels: those `CLASS_NAMES` names, and any other in `logged`."""
    return class_ids([*range(len(CLASS_NAMES.get(dataset, ()))), *logged])


def run_classes(runs: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """Per dataset of `runs` (a frame of `analysis.load_runs`), its true labels: those it names, and those
    its runs logged per-class metrics for."""
    return {
        dataset: dataset_classes(dataset, logged_classes(part.dropna(axis=1, how="all").columns))
        for dataset, part in runs.groupby("dataset", sort=True)
    }


def num_classes(dataset: str, labels: Iterable[int] = ()) -> int:
    """How many classes `dataset` has: those it names, or more where `labels` (true labels) go beyond."""
    ids = dataset_classes(dataset, map(str, labels))
    return int(ids[-1]) + 1 if ids else 0
