"""The one registry of names that the trial logs and the analysis reads: importance measures and their
pairs, correlation statistics, classes, counterfactual summaries, erasure faithfulness, timed phases and
their thresholds.

A new measure or statistic is added here once; the trial computes and logs what this lists, and the
analysis shows every name of this registry that the runs contain. No heavy imports.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Measure:
    """A per-token importance measure: its column in `tokens.parquet`, its short name in pair names,
    and its name for people."""

    name: str
    short: str
    label: str


@dataclass(frozen=True)
class Pair:
    """Two measures whose per-instance rankings are correlated; `name` is `{short}_{short}`."""

    first: Measure
    second: Measure

    @property
    def name(self) -> str:
        return f"{self.first.short}_{self.second.short}"

    @property
    def label(self) -> str:
        return f"{self.first.label} vs {self.second.label}"


@dataclass(frozen=True)
class Statistic:
    """A per-instance rank correlation, logged per pair and class as `{name}/{pair}/{class}/{summary}`.

    `formula` names the statistic of `trainables.correlation.chance_level` it computes ("kendall": τ-b;
    "topk": Fagin's top-k τ; "topk_published": the top-k τ of Neely & Schouten's released code) and `k`
    the instance's k of a top-k formula: "avg" (the mean test length) or "nz" (its non-zero attention
    weights). Every statistic also gets a chance level, `.../chance`.
    """

    name: str
    label: str
    short_label: str
    formula: str
    k: str | None = None
    summaries: tuple[str, ...] = ("mean", "std", "n_nan", "chance")


# Always computed by a trial, in this order.
BASE_MEASURES = (
    Measure("attention", "attn", "attention"),
    Measure("gradient", "grad", "gradient"),
    Measure("loo", "loo", "leave-one-out"),
)
# captum attributions a trial computes when `explain.attributions` lists them (trainables/attributions.py).
ATTRIBUTION_MEASURES = (
    Measure("integrated_gradients", "ig", "Integrated Gradients"),
    Measure("deeplift", "dl", "DeepLIFT"),
    Measure("lime", "lime", "LIME"),
)
ATTRIBUTION_METHODS = tuple(measure.name for measure in ATTRIBUTION_MEASURES)

STATISTICS = (
    Statistic(
        "kendall", "Kendall τ (all tokens)", "Kendall τ", "kendall",
        summaries=("mean", "std", "n_nan", "chance", "sig_frac"),
    ),
    Statistic("topk_avg", "top-k Kendall τ, k = mean test length", "top-k τ, k = mean length", "topk", "avg"),
    Statistic(
        "topk_nz", "top-k Kendall τ, k = non-zero attention weights", "top-k τ, k = non-zero", "topk", "nz"
    ),
    Statistic(
        "topk_ns_avg", "top-k τ, published formula, k = mean test length",
        "published top-k τ, k = mean length", "topk_published", "avg",
    ),
    Statistic(
        "topk_ns_nz", "top-k τ, published formula, k = non-zero attention weights",
        "published top-k τ, k = non-zero", "topk_published", "nz",
    ),
)  # fmt: skip
STATISTIC_NAMES = tuple(statistic.name for statistic in STATISTICS)


def class_labels(num_classes: int) -> tuple[str, ...]:
    """The class keys of per-class metrics: "all", then each true label "0" .. str(num_classes - 1)."""
    return ("all", *(str(label) for label in range(num_classes)))


SIGNIFICANCE = 0.05  # a Kendall τ with p below this counts as significant
JSD_HIGH = 0.5  # Jain & Wallace call an adversary with JSD >= 0.5 "very different"
DIFF_SMALL = 0.01  # a permutation changing the output by less than this leaves the prediction as it was

COUNTERFACTUAL_SUMMARIES = {
    "adversarial": {
        "jsd_mean": "max JSD mean",
        "jsd_median": "max JSD median",
        "frac_jsd_ge_05": f"frac. JSD ≥ {JSD_HIGH}",
        "frac_infeasible": "frac. infeasible",
    },
    "permutation": {
        "diff_mean": "output change mean",
        "diff_median": "output change median",
        "frac_diff_lt_001": f"frac. change < {DIFF_SMALL}",
    },
}

# Erasure faithfulness (DeYoung et al. 2020, ERASER): each measure's top tokens, and a random order's, are
# deleted (comprehensiveness) or kept alone (sufficiency) at these percentages of each instance's length
# (rounded up), and the predicted class's probability change is averaged over them (the area over the
# curve, AOPC). 0% and 100% are left out: they give every order the same value.
ERASURE_PERCENTS = (10, 20, 30, 40, 50, 60, 70, 80, 90)
ERASURES = {
    "comprehensiveness": "comprehensiveness (top tokens deleted; higher: more faithful)",
    "sufficiency": "sufficiency (only top tokens kept; lower: more faithful)",
}
RANDOM_ORDER = Measure("random", "random", "random order")  # the baseline: tokens ranked at random
FAITHFULNESS_SUMMARIES = ("mean", "std")

# Timed phases of a trial, logged as `time/{phase}_s`, in the order a trial runs them. `embeddings` is the
# build of the initial word vectors, once per sweep before any trial (shared by all; near 0 when cached).
PHASES = {
    "embeddings": "word vectors (per sweep)",
    "train": "training",
    "gradient": "gradient",
    "loo": "leave-one-out",
    **{measure.name: measure.label for measure in ATTRIBUTION_MEASURES},
    "faithfulness": "erasure faithfulness",
    "correlation": "correlations",
    "chance": "chance levels",
    "adversarial": "adversarial search",
    "permutation": "permutation",
}


def measures(attributions: Iterable[str] = ()) -> tuple[Measure, ...]:
    """The measures of a trial: the base ones, then the enabled attributions in registry order (so pair
    names do not depend on how a YAML lists them)."""
    attributions = set(attributions)
    unknown = sorted(attributions - set(ATTRIBUTION_METHODS))
    if unknown:
        raise ValueError(
            f"unknown attribution method {unknown[0]!r}; allowed: {', '.join(ATTRIBUTION_METHODS)}"
        )
    return (*BASE_MEASURES, *(m for m in ATTRIBUTION_MEASURES if m.name in attributions))


def pairs(attributions: Iterable[str] = ()) -> tuple[Pair, ...]:
    """Every pair of a trial's measures: attn_grad, attn_loo, grad_loo, then those with attributions."""
    return tuple(Pair(first, second) for first, second in itertools.combinations(measures(attributions), 2))


ALL_PAIRS = pairs(ATTRIBUTION_METHODS)  # every pair any trial can log, in display order


def erasure_orders(attributions: Iterable[str] = ()) -> tuple[Measure, ...]:
    """The orders whose top tokens a trial erases: its measures, then the random baseline."""
    return (*measures(attributions), RANDOM_ORDER)


ALL_ERASURE_ORDERS = erasure_orders(ATTRIBUTION_METHODS)  # every order any trial can log, in display order


def erasure_column(erasure: str, order: str) -> str:
    """`comprehensiveness_attn`: an instance's AOPC in `instances.parquet`, by the order's short name."""
    return f"{erasure}_{order}"


def erasure_curve_column(erasure: str, order: str) -> str:
    """`comprehensiveness_curve_attn`: an instance's change per percentage of `ERASURE_PERCENTS` (a list)."""
    return f"{erasure}_curve_{order}"


def erasure_metric(erasure: str, order: str, label: str, summary: str) -> str:
    """`comprehensiveness/attn/0/mean`: the name of a per-trial faithfulness summary."""
    return f"{erasure}/{order}/{label}/{summary}"


def logged_erasure_orders(names: Iterable[str]) -> tuple[Measure, ...]:
    """The registry's erasure orders, in display order, for which `names` (metric names of runs, or
    columns of `instances.parquet`) hold a comprehensiveness."""
    names = set(names)
    return tuple(
        order
        for order in ALL_ERASURE_ORDERS
        if erasure_metric("comprehensiveness", order.short, "all", "mean") in names
        or erasure_column("comprehensiveness", order.short) in names
    )


def correlation_metric(statistic: str, pair: str, label: str, summary: str) -> str:
    """`kendall/attn_grad/0/mean`: the name of a per-trial correlation summary."""
    return f"{statistic}/{pair}/{label}/{summary}"


def chance_column(statistic: str, pair: str) -> str:
    """`kendall_attn_grad_chance`: the column of an instance's chance level in `instances.parquet`."""
    return f"{statistic}_{pair}_chance"


def logged_pairs(names: Iterable[str]) -> tuple[Pair, ...]:
    """The registry's pairs, in display order, for which `names` (metric names of runs, or columns of
    `instances.parquet`) hold a Kendall τ."""
    names = set(names)
    return tuple(
        pair
        for pair in ALL_PAIRS
        if correlation_metric("kendall", pair.name, "all", "mean") in names or f"kendall_{pair.name}" in names
    )
