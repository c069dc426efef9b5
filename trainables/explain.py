"""Explain a trained model's test set: importance, faithfulness, correlations and counterfactual attention.

`explain` runs the measures of `importance` and `attributions` (those the registry lists for the
trial's settings), the erasure faithfulness of each (`faithfulness`), `correlation` and `counterfactual`
over length-bucketed batches, and returns the per-instance table, the per-token table and the per-trial
summary metrics that docs/METRICS.md lists.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from trainables import registry
from trainables.attributions import attribution_importance
from trainables.correlation import (
    batch_kendall_tau,
    batch_published_top_k_tau,
    batch_top_k_kendall_tau,
    chance_level,
    significant_fraction,
    summarize,
)
from trainables.counterfactual import adversarial_attention, permutation_output_diff
from trainables.data import Split, length_batches
from trainables.faithfulness import faithfulness, faithfulness_metrics
from trainables.importance import gradient_importance, leave_one_out_importance, premise_batch
from trainables.model import AttentionClassifier
from trainables.outputs import class_probabilities, predicted_class
from trainables.registry import Pair
from trainables.settings import CounterfactualSettings, ExplainSettings

COUNTERFACTUAL_COLUMNS = ("adv_max_jsd", "adv_found", "adv_output_diff", "max_attention", "perm_median_diff")
TOP_K_FORMULAS = {"topk": batch_top_k_kendall_tau, "topk_published": batch_published_top_k_tau}


@dataclass
class Explanation:
    """What a trial logs: `instances` (a row per test instance), `tokens` (list columns), `metrics`."""

    instances: pd.DataFrame
    tokens: pd.DataFrame
    metrics: dict[str, float]


class PhaseTimer:
    """Accumulated wall seconds per named phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started


def explain(
    model: AttentionClassifier,
    split: Split,
    settings: ExplainSettings,
    counterfactual: CounterfactualSettings,
    device: torch.device,
    seed: int,
) -> Explanation:
    """Every measure on every instance of `split` (the test set), in the split's order."""
    model.eval()
    timer = PhaseTimer()
    predictions, scores = importance_scores(model, split, settings, device, seed, timer)
    instances = pd.DataFrame(
        {"index": np.arange(len(split)), "length": split.lengths, "label": split.labels, **predictions}
    )
    tokens = pd.DataFrame({"index": np.arange(len(split)), "token_ids": split.tokens, **scores})
    if split.is_pair:
        tokens["hypothesis_ids"] = split.hypotheses
    if counterfactual.enabled:
        columns, tokens["adv_attention"] = counterfactual_attention(
            model, split, counterfactual, device, seed, timer
        )
    else:
        columns = {"max_attention": np.array([row.max() for row in scores["attention"]])}
    measures = registry.measures(settings.attributions)
    with timer.phase("faithfulness"):
        erasure = faithfulness(model, split, scores, measures, settings, device, seed)
    pairs = registry.pairs(settings.attributions)
    with timer.phase("correlation"):
        table = correlations(scores, pairs)
    with timer.phase("chance"):
        chance = chance_levels(scores, pairs, table, settings.chance_permutations, seed)
    instances = pd.concat([instances, table, chance, erasure, pd.DataFrame(columns)], axis=1)
    metrics = summary_metrics(instances, pairs, counterfactual.enabled, model.num_classes)
    metrics.update(
        faithfulness_metrics(instances, registry.erasure_orders(settings.attributions), model.num_classes)
    )
    metrics.update({f"time/{phase}_s": seconds for phase, seconds in timer.seconds.items()})
    return Explanation(instances, tokens, metrics)


def importance_scores(
    model: AttentionClassifier,
    split: Split,
    settings: ExplainSettings,
    device: torch.device,
    seed: int,
    timer: PhaseTimer,
) -> tuple[dict[str, np.ndarray], dict[str, list[np.ndarray]]]:
    """The model's outputs per instance [N] (`prediction`, the predicted class's probability
    `confidence`, and for two classes `prob`, P(label 1)), and per measure of the registry the unpadded
    scores of each instance."""
    measures = [measure.name for measure in registry.measures(settings.attributions)]
    predictions = {"prediction": np.zeros(len(split), dtype=int), "confidence": np.full(len(split), np.nan)}
    if model.num_classes == 2:
        predictions["prob"] = np.full(len(split), np.nan)
    scores: dict[str, list] = {name: [None] * len(split) for name in measures}
    for batch in length_batches(split.lengths, settings.batch_size):
        tokens, mask, query = premise_batch(model, split, batch, device)
        with torch.no_grad():
            logits, attention = model.forward_embeddings(model.embed(tokens), mask, query=query)
        predicted = predicted_class(logits)
        predictions["prediction"][batch] = predicted.cpu().numpy()
        chosen = class_probabilities(logits).gather(1, predicted.unsqueeze(1)).squeeze(1)
        predictions["confidence"][batch] = chosen.cpu().numpy()
        if "prob" in predictions:
            predictions["prob"][batch] = torch.sigmoid(logits).double().cpu().numpy()
        values = {"attention": attention}
        with timer.phase("gradient"):
            values["gradient"] = gradient_importance(model, tokens, mask, query)
        with timer.phase("loo"):
            values["loo"] = leave_one_out_importance(model, tokens, mask, settings.loo_max_rows, query)
        for method in measures[len(registry.BASE_MEASURES) :]:
            with timer.phase(method):
                values[method] = attribution_importance(
                    method,
                    model,
                    tokens,
                    mask,
                    steps=settings.ig_steps,
                    samples=settings.lime_samples,
                    internal_batch_size=settings.internal_batch_size,
                    seed=seed,
                    query=query,
                )
        for name, padded in values.items():
            for i, row in zip(batch, unpad(padded, mask), strict=True):
                scores[name][i] = row
    return predictions, scores


def counterfactual_attention(
    model: AttentionClassifier,
    split: Split,
    settings: CounterfactualSettings,
    device: torch.device,
    seed: int,
    timer: PhaseTimer,
) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """Adversarial search and permutation with the encoder's hidden states frozen: the per-instance
    columns of `COUNTERFACTUAL_COLUMNS` [N] and each instance's kept adversarial attention.

    Each instance's random draws are seeded from (seed, its index in the split), so its result does not
    depend on the batch size or on the other instances of its batch.
    """
    columns = {name: np.full(len(split), np.nan) for name in COUNTERFACTUAL_COLUMNS}
    columns["adv_found"] = np.zeros(len(split), dtype=bool)
    adversaries: list = [None] * len(split)
    for batch in length_batches(split.lengths, settings.batch_size):
        tokens, mask, query = premise_batch(model, split, batch, device)
        seeds = instance_seeds(seed, batch)
        with torch.no_grad():
            hidden = model.encode(model.embed(tokens), mask)
            attention = model.attend(hidden, mask, query)
        with timer.phase("adversarial"):
            adversarial = adversarial_attention(
                model.decode,
                hidden,
                mask,
                attention,
                k=settings.adversaries,
                steps=settings.steps,
                epsilon=settings.epsilon,
                penalty=settings.penalty,
                lr=settings.lr,
                seeds=seeds,
                query=query,
            )
        with timer.phase("permutation"):
            permutation = permutation_output_diff(
                model.decode,
                hidden,
                mask,
                attention,
                n_permutations=settings.permutations,
                seeds=seeds,
                query=query,
            )
        for name, values in (
            ("adv_max_jsd", adversarial.max_jsd),
            ("adv_found", adversarial.found),
            ("adv_output_diff", adversarial.output_diff),
            ("max_attention", adversarial.max_attention),
            ("perm_median_diff", permutation.median_output_diff),
        ):
            columns[name][batch] = values.cpu().numpy()
        for i, row in zip(batch, unpad(adversarial.distribution, mask), strict=True):
            adversaries[i] = row
    return columns, adversaries


def instance_seeds(seed: int, indices: np.ndarray) -> list[int]:
    """One 32-bit seed per instance from (trial seed, instance index): independent streams per instance."""
    return [int(np.random.SeedSequence([seed, int(i)]).generate_state(1)[0]) for i in indices]


def unpad(values: torch.Tensor, mask: torch.Tensor) -> list[np.ndarray]:
    """[B, T] padded tensor -> B float64 arrays of each row's real tokens (left-aligned mask)."""
    values = values.detach().double().cpu().numpy()
    return [values[row, :length] for row, length in enumerate(mask.sum(1).tolist())]


def correlations(scores: dict[str, list[np.ndarray]], pairs: tuple[Pair, ...]) -> pd.DataFrame:
    """Per instance: the k values (`k_avg`: the mean test length; `k_nz`: the non-zero attention weights,
    at least 1), the non-zero count, and every statistic of the registry for every pair."""
    lengths = np.array([len(row) for row in scores["attention"]])
    nonzero = np.array([int((row > 0).sum()) for row in scores["attention"]])
    table = {
        "nonzero": nonzero,
        "k_avg": np.full(len(lengths), max(1, round(float(lengths.mean())))),
        "k_nz": np.maximum(nonzero, 1),
    }
    for pair in pairs:
        a, b = scores[pair.first.name], scores[pair.second.name]
        for statistic in registry.STATISTICS:
            column = f"{statistic.name}_{pair.name}"
            if statistic.formula == "kendall":
                table[column], table[f"kendall_p_{pair.name}"] = batch_kendall_tau(a, b)
            else:
                table[column] = TOP_K_FORMULAS[statistic.formula](a, b, table[f"k_{statistic.k}"])
    return pd.DataFrame(table)


def chance_levels(
    scores: dict[str, list[np.ndarray]],
    pairs: tuple[Pair, ...],
    table: pd.DataFrame,
    permutations: int,
    seed: int,
) -> pd.DataFrame:
    """Per instance, every statistic's chance level for every pair: its mean when the second measure's
    scores are shuffled over the instance's tokens (`permutations` draws, seeded by the trial seed)."""
    chance = {}
    for pair in pairs:
        a, b = scores[pair.first.name], scores[pair.second.name]
        for statistic in registry.STATISTICS:
            k = None if statistic.k is None else table[f"k_{statistic.k}"].to_numpy()
            chance[registry.chance_column(statistic.name, pair.name)] = chance_level(
                statistic.formula, a, b, k, permutations=permutations, seed=seed
            )
    return pd.DataFrame(chance)


def summary_metrics(
    instances: pd.DataFrame, pairs: tuple[Pair, ...], with_counterfactual: bool, num_classes: int
) -> dict[str, float]:
    """Per-trial metrics, overall and per true class (0 .. num_classes - 1), named as in docs/METRICS.md."""
    metrics: dict[str, float] = {}
    for label in registry.class_labels(num_classes):
        part = instances if label == "all" else instances[instances["label"] == int(label)]
        if part.empty:
            continue
        for statistic in registry.STATISTICS:
            for pair in pairs:
                values = part[f"{statistic.name}_{pair.name}"].to_numpy()
                summary = summarize(values)
                summary["chance"] = float(part[registry.chance_column(statistic.name, pair.name)].mean())
                if "sig_frac" in statistic.summaries:
                    p_values = part[f"{statistic.name}_p_{pair.name}"].to_numpy()
                    summary["sig_frac"] = significant_fraction(p_values, registry.SIGNIFICANCE)
                for name in statistic.summaries:
                    metrics[registry.correlation_metric(statistic.name, pair.name, label, name)] = summary[
                        name
                    ]
        metrics[f"attention/{label}/nonzero_mean"] = float(part["nonzero"].mean())
        metrics[f"attention/{label}/nonzero_ratio"] = float((part["nonzero"] / part["length"]).mean())
        if with_counterfactual:
            jsd, diff = part["adv_max_jsd"], part["perm_median_diff"]
            metrics.update(
                {
                    f"adversarial/{label}/jsd_mean": float(jsd.mean()),
                    f"adversarial/{label}/jsd_median": float(jsd.median()),
                    f"adversarial/{label}/frac_jsd_ge_05": float((jsd >= registry.JSD_HIGH).mean()),
                    f"adversarial/{label}/frac_infeasible": float((~part["adv_found"]).mean()),
                    f"permutation/{label}/diff_mean": float(diff.mean()),
                    f"permutation/{label}/diff_median": float(diff.median()),
                    f"permutation/{label}/frac_diff_lt_001": float((diff < registry.DIFF_SMALL).mean()),
                }
            )
    return metrics
