"""Names for people and the one colour palette shared by every table and figure, from the registry."""

from __future__ import annotations

from collections.abc import Iterable

from trainables import registry
from trainables.examples import ROW_COLOURS
from trainables.registry import Pair, Statistic, correlation_metric
from trainables.settings import AXES

SETTING = AXES[:-1]  # the grid axes but the seed: a setting's results are averaged over its seeds
CLASSES = registry.CLASSES

# Okabe-Ito / Tol colours: distinguishable with colour-blindness, and no colour means two things at once.
BASE_PAIR_COLOURS = ("#0072B2", "#E69F00", "#009E73")  # attn_grad, attn_loo, grad_loo
EXTRA_PAIR_COLOURS = (
    "#CC79A7", "#D55E00", "#56B4E9", "#000000", "#AA4499", "#44AA99",
    "#DDCC77", "#117733", "#661100", "#6699CC", "#888888", "#332288",
)  # fmt: skip
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
    "class": {"0": "#D55E00", "1": "#56B4E9"},
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
