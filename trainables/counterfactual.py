"""Counterfactual attention (experiment 2 of Jain & Wallace 2019): adversarial and permuted attention.

Both searches keep the encoder's hidden states frozen and only swap the attention distribution fed to
`decode(hidden, weights) -> logits`, so they work for any encoder. For a pair model `decode` also takes
each row's query, `decode(hidden, weights, query)`, and the searches take the batch's `query` [B, D].
The output y is the distribution over classes: y = sigmoid(logit) for one logit, softmax for C logits.
The output change |dy| is the total variation distance between two outputs: |Δ P(label 1)| for two
classes, half the L1 distance for C (Jain & Wallace's multi-class criterion). Shapes: B instances, K
adversaries per instance, n permutations, T padded length, D hidden size. `mask` is bool [B, T], True on
real tokens.

Random draws are seeded per instance (`seeds`, one per row; default: the row number), so an instance's
result does not depend on the batch it is in: not on the batch size, nor on its neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

Decode = Callable[..., torch.Tensor]  # (hidden [N, T, D], weights [N, T][, query [N, D]]) -> logits

INIT_NOISE_STD = 3.0  # std of the Gaussian noise added to uniform logits, as in Jain & Wallace's code
DECODE_CHUNK_ELEMENTS = 1 << 24  # hidden-state elements per decode call in the permutation test (64 MB)


@dataclass(frozen=True)
class AdversarialResult:
    """Per instance [B]: the most divergent adversary that keeps the prediction within epsilon."""

    max_jsd: torch.Tensor  # [B] JSD(kept adversary, attention); 0 where none was found
    found: torch.Tensor  # [B] bool, some adversary satisfied |dy| <= epsilon (TVD)
    output_diff: torch.Tensor  # [B] |dy| of the kept adversary; NaN where none was found
    distribution: torch.Tensor  # [B, T] kept adversary; the original attention where none was found
    max_attention: torch.Tensor  # [B] largest weight of the original attention


@dataclass(frozen=True)
class PermutationResult:
    """Per instance [B]: how much the prediction moves when attention is shuffled over real tokens."""

    median_output_diff: torch.Tensor  # [B] median |dy| over the permutations
    max_attention: torch.Tensor  # [B] largest weight of the original attention


def jensen_shannon(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence in nats along the last dim: [..., T], [..., T] -> [...] (broadcast).

    Computed as H(m) - (H(p) + H(q)) / 2 so that, for pairwise divergences, the entropies of p and q are
    computed before broadcasting. Zero entries count 0 (0 log 0 = 0) with finite gradients.
    """
    try:
        torch.broadcast_shapes(p.shape, q.shape)
    except RuntimeError:
        raise ValueError(f"cannot broadcast p {tuple(p.shape)} with q {tuple(q.shape)}") from None
    return (_entropy((p + q) / 2) - (_entropy(p) + _entropy(q)) / 2).clamp_min(0)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats over the last dim; log sees 1 where p = 0 so no inf/NaN reaches gradients."""
    return -(p * torch.where(p > 0, p, torch.ones_like(p)).log()).sum(-1)


def adversarial_attention(
    decode: Decode,
    hidden: torch.Tensor,
    mask: torch.Tensor,
    attention: torch.Tensor,
    *,
    k: int = 5,
    steps: int = 500,
    epsilon: float = 0.01,
    penalty: float = 500.0,
    lr: float = 0.01,
    seeds: Sequence[int] | None = None,
    query: torch.Tensor | None = None,
) -> AdversarialResult:
    """Jain & Wallace's Algorithm 2: K maximally divergent attentions per instance with |dy| <= epsilon.

    hidden [B, T, D], mask [B, T], attention [B, T], a pair model's query [B, D]. One Adam optimisation
    covers the whole batch: the loss is summed over instances, so each instance's gradient is independent
    of the others.
    """
    _check_inputs(hidden, mask, attention)
    for ok, message in (
        (k >= 1, f"k must be >= 1, got {k}"),
        (steps >= 1, f"steps must be >= 1, got {steps}"),
        (epsilon >= 0, f"epsilon must be >= 0, got {epsilon}"),
        (penalty >= 0, f"penalty must be >= 0, got {penalty}"),
        (lr > 0, f"lr must be > 0, got {lr}"),
    ):
        if not ok:
            raise ValueError(message)
    hidden, attention = hidden.detach(), attention.detach()
    batch, length, size = hidden.shape
    with torch.no_grad():
        reference = _probabilities(decode, hidden, attention, query)
    hidden_k = hidden.unsqueeze(1).expand(batch, k, length, size).reshape(batch * k, length, size)
    query_k = None if query is None else query.repeat_interleave(k, dim=0)
    mask_k = mask.unsqueeze(1)  # [B, 1, T]
    logits = _initial_logits(mask, k, _check_seeds(seeds, batch), hidden.dtype)
    optimizer = torch.optim.Adam([logits], lr=lr, amsgrad=True)
    with torch.enable_grad():
        for _ in range(steps):
            adversaries = _masked_softmax(logits, mask_k)
            predicted = _probabilities(decode, hidden_k, adversaries.reshape(batch * k, length), query_k)
            loss = _search_loss(
                adversaries, attention, predicted.view(batch, k, -1), reference, epsilon, penalty
            )
            (logits.grad,) = torch.autograd.grad(loss, logits)
            optimizer.step()
    with torch.no_grad():
        adversaries = _masked_softmax(logits, mask_k)
        predicted = _probabilities(decode, hidden_k, adversaries.reshape(batch * k, length), query_k)
        predicted = predicted.view(batch, k, -1)
    return _keep_best(adversaries, attention, output_change(predicted, reference.unsqueeze(1)), epsilon)


def _initial_logits(mask: torch.Tensor, k: int, seeds: list[int], dtype: torch.dtype) -> torch.Tensor:
    """Uniform attention logits (all zero) plus Gaussian noise on each row's real tokens, drawn from the
    row's own seed: [B, K, T] leaf to optimise (0 on padding, which the masked softmax ignores)."""
    noise = torch.zeros(*mask.shape[:1], k, mask.shape[1], dtype=dtype)
    for row, (seed, real) in enumerate(zip(seeds, mask.cpu(), strict=True)):
        generator = torch.Generator().manual_seed(seed)
        noise[row][:, real] = torch.randn(k, int(real.sum()), generator=generator, dtype=dtype)
    return (noise.to(mask.device) * INIT_NOISE_STD).requires_grad_()


def _check_seeds(seeds: Sequence[int] | None, batch: int) -> list[int]:
    """One seed per row: `seeds`, or the row numbers."""
    if seeds is None:
        return list(range(batch))
    if len(seeds) != batch:
        raise ValueError(f"seeds must hold one seed per instance ({batch}), got {len(seeds)}")
    return [int(seed) for seed in seeds]


def _masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim with exactly 0 on padding (mask broadcast against logits)."""
    return logits.masked_fill(~mask, float("-inf")).softmax(-1)


def _probabilities(
    decode: Decode, hidden: torch.Tensor, weights: torch.Tensor, query: torch.Tensor | None = None
) -> torch.Tensor:
    """The output from decode on hidden [N, T, D] and weights [N, T] (and query [N, D]): [N, 1] holding
    P(label 1) for one logit, class probabilities [N, C] for C logits."""
    logits = decode(hidden, weights) if query is None else decode(hidden, weights, query)
    if logits.ndim not in (1, 2) or logits.shape[0] != weights.shape[0] or logits.shape[1:] == (1,):
        raise ValueError(
            f"decode must return logits of shape [{weights.shape[0]}] or [{weights.shape[0]}, C] with "
            f"C >= 2, got {tuple(logits.shape)}"
        )
    return torch.sigmoid(logits).unsqueeze(-1) if logits.ndim == 1 else torch.softmax(logits, dim=-1)


def output_change(predicted: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Total variation distance over the last dim between outputs of `_probabilities` [..., 1 or C]
    (broadcast): |Δ P(label 1)| for one column, half the L1 distance for C."""
    distance = (predicted - reference).abs().sum(-1)
    return distance if predicted.shape[-1] == 1 else distance / 2


def _search_loss(
    adversaries: torch.Tensor,
    attention: torch.Tensor,
    predicted: torch.Tensor,
    reference: torch.Tensor,
    epsilon: float,
    penalty: float,
) -> torch.Tensor:
    """Scalar sum over instances of -mean JSD to attention + penalty * mean excess |dy| - diversity.

    adversaries [B, K, T], attention [B, T], predicted [B, K, 1 or C], reference [B, 1 or C].
    """
    divergence = jensen_shannon(adversaries, attention.unsqueeze(1)).mean(1)
    excess = torch.relu(output_change(predicted, reference.unsqueeze(1)) - epsilon).mean(1)
    return (-divergence + penalty * excess - _mean_pairwise_jsd(adversaries)).sum()


def _mean_pairwise_jsd(adversaries: torch.Tensor) -> torch.Tensor:
    """Mean JSD over the K(K-1)/2 pairs of adversaries [B, K, T] -> [B]; 0 when K = 1."""
    k = adversaries.shape[1]
    if k == 1:
        return adversaries.new_zeros(adversaries.shape[0])
    pairwise = jensen_shannon(adversaries.unsqueeze(2), adversaries.unsqueeze(1))  # [B, K, K], 0 diagonal
    return pairwise.sum((1, 2)) / (k * (k - 1))


def _keep_best(
    adversaries: torch.Tensor, attention: torch.Tensor, output_diff: torch.Tensor, epsilon: float
) -> AdversarialResult:
    """Per instance, the feasible (|dy| <= epsilon) adversary with the largest JSD to attention.

    adversaries [B, K, T], attention [B, T], output_diff [B, K].
    """
    divergence = jensen_shannon(adversaries, attention.unsqueeze(1))  # [B, K]
    feasible = output_diff <= epsilon
    best = divergence.masked_fill(~feasible, float("-inf")).argmax(1, keepdim=True)  # [B, 1]
    found = feasible.any(1)
    kept = adversaries.gather(1, best.unsqueeze(-1).expand(-1, -1, adversaries.shape[-1])).squeeze(1)
    return AdversarialResult(
        max_jsd=torch.where(found, divergence.gather(1, best).squeeze(1), 0.0),
        found=found,
        output_diff=torch.where(found, output_diff.gather(1, best).squeeze(1), float("nan")),
        distribution=torch.where(found.unsqueeze(1), kept, attention),
        max_attention=attention.max(1).values,
    )


def permutation_output_diff(
    decode: Decode,
    hidden: torch.Tensor,
    mask: torch.Tensor,
    attention: torch.Tensor,
    *,
    n_permutations: int = 100,
    seeds: Sequence[int] | None = None,
    query: torch.Tensor | None = None,
) -> PermutationResult:
    """Median |dy| (TVD) when each instance's attention is randomly permuted over its real tokens.

    hidden [B, T, D], mask [B, T], attention [B, T], a pair model's query [B, D]; decode runs on chunks
    of the [B * n, T, D] rows.
    """
    _check_inputs(hidden, mask, attention)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    seeds = _check_seeds(seeds, hidden.shape[0])
    with torch.no_grad():
        reference = _probabilities(decode, hidden, attention, query)
        permuted = permute_attention(attention, mask, n_permutations, seeds)  # [B, n, T]
        predicted = _chunked_probabilities(decode, hidden, permuted, query)
        diffs = output_change(predicted, reference.unsqueeze(1))
    return PermutationResult(
        median_output_diff=diffs.quantile(0.5, dim=1), max_attention=attention.max(1).values
    )


def permute_attention(
    attention: torch.Tensor, mask: torch.Tensor, n_permutations: int, seeds: Sequence[int]
) -> torch.Tensor:
    """n random permutations of each row's weights among its real tokens: [B, T] -> [B, n, T], 0 on padding.

    Row b's permutations come from a generator seeded with `seeds[b]`. Works for any mask layout (not only
    right padding): real weights, shuffled, are written back to the real positions in order.
    """
    batch, length = attention.shape
    keys = torch.full((batch, n_permutations, length), float("inf"))
    for row, (seed, real) in enumerate(zip(_check_seeds(seeds, batch), mask.cpu(), strict=True)):
        generator = torch.Generator().manual_seed(seed)
        keys[row][:, real] = torch.rand(n_permutations, int(real.sum()), generator=generator)
    keys = keys.to(attention.device)
    real = mask.unsqueeze(1).expand(batch, n_permutations, length)
    sources = keys.argsort(-1)  # real positions first, shuffled
    targets = (~mask).to(torch.int8).argsort(dim=-1, stable=True).unsqueeze(1).expand_as(keys)  # in order
    shuffled = attention.unsqueeze(1).expand_as(keys).gather(-1, sources)
    return torch.zeros_like(shuffled).scatter(-1, targets, shuffled) * real


def _chunked_probabilities(
    decode: Decode, hidden: torch.Tensor, weights: torch.Tensor, query: torch.Tensor | None
) -> torch.Tensor:
    """Outputs [B, n, 1 or C] for hidden [B, T, D] (and query [B, D]) under each of weights [B, n, T], in
    chunks."""
    batch, n, length = weights.shape
    flat = weights.reshape(batch * n, length)
    rows = max(1, DECODE_CHUNK_ELEMENTS // max(1, length * hidden.shape[-1]))
    owners = torch.arange(batch * n, device=hidden.device) // n
    chunks = [
        _probabilities(
            decode,
            hidden.index_select(0, owners[start : start + rows]),
            flat[start : start + rows],
            None if query is None else query.index_select(0, owners[start : start + rows]),
        )
        for start in range(0, batch * n, rows)
    ]
    return torch.cat(chunks).view(batch, n, -1)


def _check_inputs(hidden: torch.Tensor, mask: torch.Tensor, attention: torch.Tensor) -> None:
    """Shapes hidden [B, T, D], mask bool [B, T], attention [B, T], and at least one real token per row."""
    if hidden.dim() != 3:
        raise ValueError(f"hidden must be [B, T, D], got shape {tuple(hidden.shape)}")
    if mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match hidden [B, T] {tuple(hidden.shape[:2])}"
        )
    if attention.shape != mask.shape:
        raise ValueError(f"attention shape {tuple(attention.shape)} does not match mask {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool, got {mask.dtype}")
    empty = (~mask.any(1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"every row needs at least one real token; empty rows (first 10): {empty[:10]}")
