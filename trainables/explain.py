"""Explain a trained model's test set: importance, correlations and counterfactual attention.

Runs the measures of `importance`, `attributions` (those enabled in `ExplainSettings.attributions`),
`correlation` and `counterfactual` over length-bucketed batches and turns them into the per-instance table,
the per-token table and the per-trial summary metrics that docs/METRICS.md lists.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch

from sweep.config import CounterfactualSettings, ExplainSettings
from trainables.attributions import METHODS, SHORT_NAMES, attribution_importance
from trainables.correlation import batch_kendall_tau, batch_top_k_kendall_tau, significant_fraction, summarize
from trainables.counterfactual import adversarial_attention, permutation_output_diff
from trainables.data import Split, length_batches, pad
from trainables.importance import gradient_importance, leave_one_out_importance
from trainables.model import AttentionClassifier

BASE_MEASURES = {"attention": "attn", "gradient": "grad", "loo": "loo"}  # always computed: name -> short


def importance_measures(attributions: tuple[str, ...] | list[str] = ()) -> dict[str, str]:
    """Every importance measure of a trial, name -> short name: the base ones, then the enabled attributions.

    The attributions come in `attributions.METHODS` order whatever their order in the settings, so pair
    names do not depend on how a YAML lists them.
    """
    unknown = sorted(set(attributions) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown attribution method {unknown[0]!r}; allowed: {', '.join(METHODS)}")
    return {**BASE_MEASURES, **{m: SHORT_NAMES[m] for m in METHODS if m in attributions}}


def importance_pairs(attributions: tuple[str, ...] | list[str] = ()) -> dict[str, tuple[str, str]]:
    """Every pair of measures, `{short}_{short}` -> (name, name): `attn_grad`, `attn_loo`, ..., `ig_dl`."""
    measures = importance_measures(attributions)
    return {
        f"{measures[first]}_{measures[second]}": (first, second)
        for first, second in itertools.combinations(measures, 2)
    }


PAIRS = importance_pairs()  # the pairs of a trial without attributions: attn_grad, attn_loo, grad_loo
MEASURES = ("kendall", "topk_avg", "topk_nz")
CLASSES = ("all", "0", "1")
T = TypeVar("T")
SIGNIFICANCE = 0.05
JSD_HIGH = 0.5  # Jain & Wallace call an adversary with JSD >= 0.5 "very different"
DIFF_SMALL = 0.01  # a permutation changing the output by less than this leaves the prediction as it was


@dataclass
class Explanation:
    """What a trial logs: `instances` (a row per test instance), `tokens` (list columns), `metrics`."""

    instances: pd.DataFrame
    tokens: pd.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)


class PhaseTimer:
    """Accumulated wall seconds per named phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def time(self, phase: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        started = time.perf_counter()
        result = function(*args, **kwargs)
        self.seconds[phase] += time.perf_counter() - started
        return result


def _rows(values: torch.Tensor, lengths: torch.Tensor) -> list[np.ndarray]:
    """[B, T] padded tensor -> B unpadded float64 arrays."""
    values = values.detach().double().cpu().numpy()
    return [values[row, :length] for row, length in enumerate(lengths.tolist())]


def explain(
    model: AttentionClassifier,
    split: Split,
    explain_settings: ExplainSettings,
    counterfactual_settings: CounterfactualSettings,
    device: torch.device,
    seed: int,
) -> Explanation:
    """Every measure on every instance of `split` (the test set), in the split's order."""
    model.eval()
    timer = PhaseTimer()
    n = len(split)
    measures = importance_measures(explain_settings.attributions)
    attributions = [name for name in measures if name not in BASE_MEASURES]
    vectors: dict[str, list] = {name: [None] * n for name in [*measures, "adv_attention"]}
    columns: dict[str, np.ndarray] = {
        name: np.full(n, np.nan)
        for name in ("prob", "adv_max_jsd", "adv_output_diff", "max_attention", "perm_median_diff")
    }
    columns["adv_found"] = np.zeros(n, dtype=bool)

    for batch in length_batches(split.lengths, explain_settings.batch_size):
        tokens, mask = (t.to(device) for t in pad([split.tokens[i] for i in batch]))
        lengths = mask.sum(1)
        with torch.no_grad():
            logits, attention = model(tokens, mask)
        columns["prob"][batch] = torch.sigmoid(logits).double().cpu().numpy()
        gradient = timer.time("gradient", gradient_importance, model, tokens, mask)
        loo = timer.time("loo", leave_one_out_importance, model, tokens, mask, explain_settings.loo_max_rows)
        values = {"attention": attention, "gradient": gradient, "loo": loo}
        for method in attributions:
            values[method] = timer.time(
                method,
                attribution_importance,
                method,
                model,
                tokens,
                mask,
                steps=explain_settings.ig_steps,
                samples=explain_settings.lime_samples,
                internal_batch_size=explain_settings.internal_batch_size,
                seed=seed,
            )
        for name, scores in values.items():
            for i, row in zip(batch, _rows(scores, lengths), strict=True):
                vectors[name][i] = row

    if counterfactual_settings.enabled:
        for batch in length_batches(split.lengths, counterfactual_settings.batch_size):
            _counterfactual_batch(
                model, split, batch, counterfactual_settings, device, seed, timer, vectors, columns
            )

    instances = pd.DataFrame(
        {
            "index": np.arange(n),
            "length": split.lengths,
            "label": split.labels,
            "prob": columns["prob"],
            "prediction": (columns["prob"] >= 0.5).astype(int),
        }
    )
    pairs = importance_pairs(explain_settings.attributions)
    started = time.perf_counter()
    instances = pd.concat([instances, correlations(vectors, pairs)], axis=1)
    timer.seconds["correlation"] = time.perf_counter() - started
    if counterfactual_settings.enabled:
        for name in ("adv_max_jsd", "adv_found", "adv_output_diff", "max_attention", "perm_median_diff"):
            instances[name] = columns[name]
    else:
        instances["max_attention"] = [row.max() for row in vectors["attention"]]

    tokens = pd.DataFrame({"index": np.arange(n), "token_ids": split.tokens})
    for name, rows in vectors.items():
        if rows[0] is not None:
            tokens[name] = rows
    metrics = summary_metrics(instances, counterfactual_settings.enabled, pairs)
    metrics.update({f"time/{phase}_s": seconds for phase, seconds in timer.seconds.items()})
    return Explanation(instances, tokens, metrics)


def _counterfactual_batch(
    model: AttentionClassifier,
    split: Split,
    batch: np.ndarray,
    settings: CounterfactualSettings,
    device: torch.device,
    seed: int,
    timer: PhaseTimer,
    vectors: dict[str, list],
    columns: dict[str, np.ndarray],
) -> None:
    """Adversarial search and permutation for one batch, with the encoder's hidden states frozen."""
    tokens, mask = (t.to(device) for t in pad([split.tokens[i] for i in batch]))
    with torch.no_grad():
        hidden = model.encode(model.embed(tokens), mask)
        attention = model.attend(hidden, mask)
    adversarial = timer.time(
        "adversarial",
        adversarial_attention,
        model.decode,
        hidden,
        mask,
        attention,
        k=settings.adversaries,
        steps=settings.steps,
        epsilon=settings.epsilon,
        penalty=settings.penalty,
        lr=settings.lr,
        seed=seed,
    )
    permutation = timer.time(
        "permutation",
        permutation_output_diff,
        model.decode,
        hidden,
        mask,
        attention,
        n_permutations=settings.permutations,
        seed=seed,
    )
    numpy = {
        "adv_max_jsd": adversarial.max_jsd,
        "adv_found": adversarial.found,
        "adv_output_diff": adversarial.output_diff,
        "max_attention": adversarial.max_attention,
        "perm_median_diff": permutation.median_output_diff,
    }
    for name, values in numpy.items():
        columns[name][batch] = values.cpu().numpy()
    for i, row in zip(batch, _rows(adversarial.distribution, mask.sum(1)), strict=True):
        vectors["adv_attention"][i] = row


def correlations(
    vectors: dict[str, list[np.ndarray]], pairs: dict[str, tuple[str, str]] = PAIRS
) -> pd.DataFrame:
    """Per instance: k values, non-zero attention count, and every measure for every pair of `pairs`."""
    lengths = np.array([len(row) for row in vectors["attention"]])
    nonzero = np.array([int((row > 0).sum()) for row in vectors["attention"]])
    k_avg = max(1, round(float(lengths.mean())))
    k_nz = np.maximum(nonzero, 1)
    table = {"nonzero": nonzero, "k_avg": np.full(len(lengths), k_avg), "k_nz": k_nz}
    for pair, (first, second) in pairs.items():
        a, b = vectors[first], vectors[second]
        table[f"kendall_{pair}"], table[f"kendall_p_{pair}"] = batch_kendall_tau(a, b)
        table[f"topk_avg_{pair}"] = batch_top_k_kendall_tau(a, b, k_avg)
        table[f"topk_nz_{pair}"] = batch_top_k_kendall_tau(a, b, k_nz)
    return pd.DataFrame(table)


def summary_metrics(
    instances: pd.DataFrame, with_counterfactual: bool, pairs: dict[str, tuple[str, str]] = PAIRS
) -> dict[str, float]:
    """Per-trial metrics, overall and per true class, named as in docs/METRICS.md."""
    metrics: dict[str, float] = {}
    for label in CLASSES:
        part = instances if label == "all" else instances[instances["label"] == int(label)]
        if part.empty:
            continue
        for measure in MEASURES:
            for pair in pairs:
                stats = summarize(part[f"{measure}_{pair}"].to_numpy())
                prefix = f"{measure}/{pair}/{label}"
                metrics.update({f"{prefix}/{s}": stats[s] for s in ("mean", "std", "n_nan")})
                if measure == "kendall":
                    p_values = part[f"kendall_p_{pair}"].to_numpy()
                    metrics[f"{prefix}/sig_frac"] = significant_fraction(p_values, SIGNIFICANCE)
        metrics[f"attention/{label}/nonzero_mean"] = float(part["nonzero"].mean())
        metrics[f"attention/{label}/nonzero_ratio"] = float((part["nonzero"] / part["length"]).mean())
        if with_counterfactual:
            jsd, diff = part["adv_max_jsd"], part["perm_median_diff"]
            metrics.update(
                {
                    f"adversarial/{label}/jsd_mean": float(jsd.mean()),
                    f"adversarial/{label}/jsd_median": float(jsd.median()),
                    f"adversarial/{label}/frac_jsd_ge_05": float((jsd >= JSD_HIGH).mean()),
                    f"adversarial/{label}/frac_infeasible": float((~part["adv_found"]).mean()),
                    f"permutation/{label}/diff_mean": float(diff.mean()),
                    f"permutation/{label}/diff_median": float(diff.median()),
                    f"permutation/{label}/frac_diff_lt_001": float((diff < DIFF_SMALL).mean()),
                }
            )
    return metrics
