"""Erasure faithfulness (DeYoung et al. 2020, ERASER): do a measure's top tokens move the prediction?

An order ranks an instance's tokens by a measure's scores (descending, ties to the lower position, as the
top-k correlations rank them; for a pair task, the premise's tokens, the hypothesis kept whole). For an
instance x of length L predicted as class c, and each percentage q
of `registry.ERASURE_PERCENTS`, its top k = ceil(q L / 100) tokens are

- deleted (later tokens shift left, as in leave-one-out):
  comprehensiveness(q) = p_c(x) - p_c(x without them);
- kept alone, in their order: sufficiency(q) = p_c(x) - p_c(only them).

An instance's summary per order is the mean over q: the area over the perturbation curve (AOPC). A
faithful measure has high comprehensiveness and low sufficiency; tokens ranked at random
(`registry.RANDOM_ORDER`, seeded per instance) are the baseline. Like leave-one-out, every erased sequence
of a batch runs through `importance._logits` (at most max_rows sequences of one length per forward pass),
each distinct sequence once, and the probability changes are taken in float64 from the logits
(`outputs.predicted_probability_change`), so saturated predictions keep their digits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from trainables import registry
from trainables.correlation import summarize
from trainables.data import Split, length_batches
from trainables.importance import DEFAULT_MAX_ROWS, _logits, check_batch, eval_mode, premise_batch
from trainables.model import AttentionClassifier
from trainables.outputs import predicted_probability_change
from trainables.registry import Measure
from trainables.settings import ExplainSettings

RANDOM_STREAM = 18  # salts the per-instance seeds of random orders, apart from the counterfactual streams


def erasure_curves(
    model: AttentionClassifier,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    scores: torch.Tensor,
    percents: Sequence[int] = registry.ERASURE_PERCENTS,
    max_rows: int = DEFAULT_MAX_ROWS,
    query: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Comprehensiveness and sufficiency [M, B, F] (float64) of M orders' scores [M, B, T] on the batch
    (token ids [B, T], left-aligned bool mask [B, T]; a pair model: and each row's query [B, D]), at the
    F `percents` (integers in 1..100).

    Scores on padding are ignored; NaN ranks last. Deleting every token of a row leaves an empty input
    (the model then outputs what its decoder gives a zero context), as in leave-one-out.
    """
    check_batch(tokens, mask)
    if scores.ndim != 3 or scores.shape[1:] != tokens.shape:
        raise ValueError(
            f"scores must be [M, B, T] with [B, T] = {tuple(tokens.shape)}, got {tuple(scores.shape)}"
        )
    percents = list(percents)
    if not percents or any(
        not isinstance(q, int) or isinstance(q, bool) or not 1 <= q <= 100 for q in percents
    ):
        raise ValueError(f"percents must be integers in 1..100, got {percents}")
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    orders, batch, width = scores.shape
    lengths = mask.sum(1)
    ranks = token_ranks(scores, mask)
    percent = torch.tensor(percents, device=tokens.device)
    k = (percent * lengths.unsqueeze(1) + 99) // 100  # [B, F]: ceil(q L / 100) in integers
    top = (ranks.unsqueeze(2) < k[None, :, :, None]) & mask[None, :, None, :]  # [M, B, F, T]
    keep = torch.stack([mask[None, :, None, :] & ~top, top])  # deleted, then kept alone: [2, M, B, F, T]
    source = (
        torch.arange(batch, device=tokens.device)[None, None, :, None].expand(keep.shape[:-1]).reshape(-1)
    )
    erased, erased_lengths = compact(tokens[source], keep.reshape(-1, width))
    # the unchanged sequences join the erased ones, so an erasure that keeps every token gives exactly 0;
    # with a query (pairs), the row it belongs to is part of what makes a sequence distinct
    rows = torch.cat(
        [torch.cat([tokens, lengths.unsqueeze(1)], 1), torch.cat([erased, erased_lengths.unsqueeze(1)], 1)]
    )
    owners = torch.cat([torch.arange(batch, device=tokens.device), source])
    if query is not None:
        rows = torch.cat([rows, owners.unsqueeze(1)], 1)
    distinct, inverse = torch.unique(rows, dim=0, return_inverse=True)
    with eval_mode(model), torch.no_grad():
        distinct_query = None if query is None else query[distinct[:, -1]]
        logits = _logits(model, distinct[:, :width], distinct[:, width], max_rows, distinct_query)[inverse]
    full, erased_logits = logits[:batch], logits[batch:]
    change = predicted_probability_change(full[source], erased_logits)
    change = change.reshape(2, orders, batch, len(percents))
    return change[0], change[1]


def token_ranks(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each position's rank [M, B, T] in its row's order: 0 for the highest score, ties to the lower
    position, NaN below every score, padding last."""
    ranked = torch.nan_to_num(scores.double(), nan=-torch.inf).masked_fill(~mask, -torch.inf)
    order = ranked.argsort(dim=-1, descending=True, stable=True)
    positions = torch.arange(scores.shape[-1], device=scores.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)


def compact(tokens: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row i of tokens [N, T] reduced to its positions where keep [N, T] is True, in order, left-aligned
    and zero-padded: [N, T], with the kept counts [N]."""
    counts = keep.sum(1)
    order = (~keep).to(torch.int8).argsort(dim=1, stable=True)  # kept positions first, in order
    columns = torch.arange(tokens.shape[1], device=tokens.device)
    return tokens.gather(1, order) * (columns < counts.unsqueeze(1)), counts


def random_scores(
    lengths: np.ndarray, width: int, indices: np.ndarray, seed: int, orders: int
) -> torch.Tensor:
    """`orders` random rankings [orders, B, width] (float64) of instances `indices` with `lengths` [B]:
    each a permutation of 0..L-1 on the instance's tokens, seeded by (seed, its index in the split), so
    it does not depend on the batch."""
    scores = torch.zeros(orders, len(indices), width, dtype=torch.float64)
    for row, (index, length) in enumerate(zip(indices, lengths, strict=True)):
        rng = np.random.default_rng([seed, RANDOM_STREAM, int(index)])
        for order in range(orders):
            scores[order, row, :length] = torch.from_numpy(rng.permutation(int(length)).astype(np.float64))
    return scores


def faithfulness(
    model: AttentionClassifier,
    split: Split,
    scores: dict[str, list[np.ndarray]],
    measures: tuple[Measure, ...],
    settings: ExplainSettings,
    device: torch.device,
    seed: int,
) -> pd.DataFrame:
    """Per instance of `split` (in order), for every measure (its unpadded `scores`) and the random
    baseline (the mean of `settings.faithfulness_random_orders` orders): the comprehensiveness and
    sufficiency AOPC (`registry.erasure_column`) and their curves over `ERASURE_PERCENTS`
    (`registry.erasure_curve_column`, a list per instance)."""
    percents = registry.ERASURE_PERCENTS
    orders = (*measures, registry.RANDOM_ORDER)
    curves = {
        (erasure, order.short): np.full((len(split), len(percents)), np.nan)
        for erasure in registry.ERASURES
        for order in orders
    }
    for batch in length_batches(split.lengths, settings.batch_size):
        tokens, mask, query = premise_batch(model, split, batch, device)
        measured = torch.zeros(len(measures), *tokens.shape, dtype=torch.float64)
        for m, measure in enumerate(measures):
            for row, i in enumerate(batch):
                measured[m, row, : len(scores[measure.name][i])] = torch.from_numpy(scores[measure.name][i])
        random = random_scores(
            split.lengths[batch], tokens.shape[1], batch, seed, settings.faithfulness_random_orders
        )
        stacked = torch.cat([measured, random]).to(device)
        results = erasure_curves(model, tokens, mask, stacked, percents, settings.loo_max_rows, query)
        for erasure, result in zip(registry.ERASURES, results, strict=True):
            result = result.cpu().numpy()
            for m, measure in enumerate(measures):
                curves[erasure, measure.short][batch] = result[m]
            curves[erasure, registry.RANDOM_ORDER.short][batch] = result[len(measures) :].mean(0)
    table = {}
    for (erasure, order), curve in curves.items():
        table[registry.erasure_column(erasure, order)] = curve.mean(1)
        table[registry.erasure_curve_column(erasure, order)] = list(curve)
    return pd.DataFrame(table)


def faithfulness_metrics(
    instances: pd.DataFrame, orders: tuple[Measure, ...], num_classes: int
) -> dict[str, float]:
    """Per erasure, order and class (`all` and each true label of `num_classes`): the mean and std over
    instances of the AOPC, named by `registry.erasure_metric`."""
    metrics = {}
    for label in registry.class_labels(num_classes):
        part = instances if label == "all" else instances[instances["label"] == int(label)]
        if part.empty:
            continue
        for erasure in registry.ERASURES:
            for order in orders:
                summary = summarize(part[registry.erasure_column(erasure, order.short)].to_numpy())
                for name in registry.FAITHFULNESS_SUMMARIES:
                    metrics[registry.erasure_metric(erasure, order.short, label, name)] = summary[name]
    return metrics
