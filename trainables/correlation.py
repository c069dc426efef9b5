"""Rank correlations between two importance measures over the tokens of one instance.

Used to compare attention weights with feature-importance scores (gradients, leave-one-out), as in
Jain & Wallace (2019) and Neely & Schouten (2020).

Edge cases, the same for single and batched functions:

- Inputs must be finite 1-D float vectors of equal length; anything else raises ``ValueError``.
- Fewer than 2 positions, or either vector constant: every statistic is NaN (no ranking exists), and
  no warning is emitted.
- Kendall tau is tau-b, so ties within a vector are allowed and corrected for; its two-sided p-value is
  scipy's ``method='auto'`` (exact for small tie-free inputs, asymptotic otherwise).
- Top-k lists hold the ``k`` positions with the largest scores; equal scores are ordered by lower index
  first. ``k`` must be >= 1 and is clipped to the vector length.
- Top-k tau is the K^(p) distance of Fagin, Kumar & Sivakumar (2003), p = 0.5, rescaled to [-1, 1]:
  identical top-k lists give 1, disjoint ones give -1. Since the scale is set by disjoint lists, when
  ``k`` equals the length (both lists hold every position) the minimum reachable value is above -1.
- Published top-k tau is the variant in the code released with Neely & Schouten (2020), kept to compare
  with their numbers (see :func:`published_top_k_tau`). It is not Fagin's: it drops the penalty for pairs
  found one in each list only, so disjoint lists score 1 - (k - 1) / (4k) >= 0.75, not -1; at ``k = n`` it
  equals Kendall tau-b.
"""

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import scipy.special
import scipy.stats
from numpy.typing import ArrayLike

P_TIE = 0.5  # Fagin et al.'s penalty p for a pair that one list does not order.
_CHUNK = 256  # Instances per block in the batched top-k tau, bounding its (block, 2k, 2k) pair arrays.
_PAIRS = 1 << 20  # Position pairs per block (rows * width**2) for tau-b, published top-k tau, chance levels.
STATISTICS = ("kendall", "topk", "topk_published")  # What chance_level can take the chance level of.


def kendall_tau(x: ArrayLike, y: ArrayLike) -> tuple[float, float]:
    """Kendall tau-b between ``x`` and ``y`` (both shape ``(n,)``) and its two-sided p-value."""
    x, y = _check_pair(x, y)
    tau, p_value = batch_kendall_tau([x], [y])
    return float(tau[0]), float(p_value[0])


def top_k_kendall_tau(x: ArrayLike, y: ArrayLike, k: int) -> float:
    """Top-k Kendall tau in [-1, 1] between the top-``k`` lists of scores ``x`` and ``y`` (shape ``(n,)``).

    Unlike Kendall tau over all positions, only the highest-scoring positions matter, which is what a
    reader of an attention map looks at.
    """
    x, y = _check_pair(x, y)
    return float(batch_top_k_kendall_tau([x], [y], _check_k(k))[0])


def published_top_k_tau(x: ArrayLike, y: ArrayLike, k: int) -> float:
    """Top-k tau of Neely & Schouten's released code between scores ``x`` and ``y`` (shape ``(n,)``).

    With top-k sets A of ``x`` and B of ``y``, Z = A & B (z items), S = A - Z, T = B - Z, p = 0.5:

    - term1 = (1 - (tau_b(x[Z], y[Z]) / 2 + 1/2)) * z**2, or 0 where that tau-b is undefined;
    - term2 = #(i in Z, j in S) with x[i] < x[j], plus #(i in Z, j in T) with y[i] < y[j];
    - term4 = 2 * p * C(k - z, 2); Fagin's penalty for a pair split one in each list is not added;
    - value = 1 - 2 * (term1 + term2 + term4) / (|S| + |T| + z)**2.

    So k = 1 always gives 1, two disjoint top-2 lists give 0.875, and k = n gives Kendall tau-b. It is
    here to compare with N&S's published numbers; Fagin's :func:`top_k_kendall_tau` is the measure proper.
    """
    x, y = _check_pair(x, y)
    return float(batch_published_top_k_tau([x], [y], _check_k(k))[0])


def batch_kendall_tau(a: Sequence[ArrayLike], b: Sequence[ArrayLike]) -> tuple[np.ndarray, np.ndarray]:
    """Kendall tau-b and its two-sided p-value per instance, vectorised across instances; both shape ``(m,)``.

    Instance ``i`` of ``a`` and of ``b`` has shape ``(n_i,)``. Both values are scipy's ``kendalltau`` with
    ``method='auto'``, from the same pair counts: the p-value is exact for tie-free instances with
    ``n_i <= 33`` or at most one discordant (or concordant) pair, and otherwise the normal approximation
    with scipy's tie-corrected variance. The exact null distribution is computed once per length.
    """
    x, y, lengths = _pad_batch(a, b)
    counts = _by_blocks(
        x, y, lengths, 1, lambda rows, width: _kendall_counts(x[rows, :width], y[rows, :width]), columns=8
    )
    tau = np.full(lengths.size, np.nan)
    p_value = np.full(lengths.size, np.nan)
    defined = ~np.isnan(counts[:, 0])
    n = lengths[defined].astype(np.float64)
    dis, xtie, ytie, ntie, x0, x1, y0, y1 = counts[defined].T
    tot = n * (n - 1) / 2
    con_minus_dis = tot - xtie - ytie + ntie - 2 * dis
    tau[defined] = np.clip(con_minus_dis / np.sqrt(tot - xtie) / np.sqrt(tot - ytie), -1.0, 1.0)
    exact = (xtie == 0) & (ytie == 0) & ((n <= 33) | (np.minimum(dis, tot - dis) <= 1))
    p = np.empty(n.size)
    for size in np.unique(n[exact]).astype(int):
        same = exact & (n == size)
        p[same] = _exact_kendall_p_values(size, dis[same].astype(np.int64))
    m, rest = n[~exact] * (n[~exact] - 1), ~exact
    variance = (
        (m * (2 * n[rest] + 5) - x1[rest] - y1[rest]) / 18
        + 2 * xtie[rest] * ytie[rest] / m
        + x0[rest] * y0[rest] / (9 * m * (n[rest] - 2))
    )
    p[rest] = 2 * scipy.special.ndtr(-np.abs(con_minus_dis[rest] / np.sqrt(variance)))
    p_value[defined] = p
    return tau, p_value


def batch_top_k_kendall_tau(a: Sequence[ArrayLike], b: Sequence[ArrayLike], k: int | ArrayLike) -> np.ndarray:
    """Top-k Kendall tau per instance, vectorised across instances; output shape ``(m,)``.

    ``a`` and ``b`` are ragged lists of ``m`` vectors, instance ``i`` of shape ``(n_i,)``; ``k`` is one
    integer for all instances or an integer array of shape ``(m,)``.
    """
    x, y, lengths = _pad_batch(a, b)
    ks = np.minimum(_check_ks(k, lengths.size), lengths)
    out = np.full(lengths.size, np.nan)
    index = np.flatnonzero(_defined(x, y, lengths))
    index = index[np.argsort(lengths[index])]  # Similar lengths per block: less padding.
    for start in range(0, index.size, _CHUNK):
        block = index[start : start + _CHUNK]
        width = lengths[block].max()
        out[block] = _top_k_tau_padded(x[block, :width], y[block, :width], ks[block])
    return out


def batch_published_top_k_tau(
    a: Sequence[ArrayLike], b: Sequence[ArrayLike], k: int | ArrayLike
) -> np.ndarray:
    """:func:`published_top_k_tau` per instance, vectorised; arguments as in :func:`batch_top_k_kendall_tau`.

    Output shape ``(m,)``, NaN where an instance has fewer than 2 positions or a constant vector.
    """
    x, y, lengths = _pad_batch(a, b)
    ks = np.broadcast_to(np.minimum(_check_ks(k, lengths.size), lengths), lengths.shape)

    def compute(rows: np.ndarray, width: int) -> np.ndarray:
        return _mean_published_top_k_tau(x[rows, :width], y[rows, :width], _same(rows, width), ks[rows])

    return _by_blocks(x, y, lengths, 1, compute)


def batch_kendall_tau_b(a: Sequence[ArrayLike], b: Sequence[ArrayLike]) -> np.ndarray:
    """Kendall tau-b per instance, vectorised, without the p-value that makes :func:`batch_kendall_tau`
    slow; ragged ``a``, ``b`` as there, output shape ``(m,)``, NaN where undefined."""
    x, y, lengths = _pad_batch(a, b)

    def compute(rows: np.ndarray, width: int) -> np.ndarray:
        return _mean_kendall_tau_b(x[rows, :width], y[rows, :width], _same(rows, width))

    return _by_blocks(x, y, lengths, 1, compute)


def chance_level(
    statistic: str,
    a: Sequence[ArrayLike],
    b: Sequence[ArrayLike],
    k: int | ArrayLike | None = None,
    permutations: int = 20,
    seed: int = 0,
) -> np.ndarray:
    """Per instance, the mean of ``statistic(a_i, b_i permuted)`` over random permutations; shape ``(m,)``.

    What a statistic reaches when ``b`` carries no information about ``a``: ``b_i``'s scores are shuffled
    over instance ``i``'s positions while ``a_i`` stays, so the top-k list of ``a`` (and with it sparsity
    and ``k``) is kept. ``statistic`` is one of :data:`STATISTICS`: ``"kendall"`` (tau-b; no ``k``),
    ``"topk"`` (Fagin's, :func:`batch_top_k_kendall_tau`) or ``"topk_published"``
    (:func:`batch_published_top_k_tau`), whose ``k`` is as in those functions. NaN where the statistic is
    undefined, which no permutation changes. For tau-b the mean over all permutations is exactly 0, so its
    chance level shows the Monte Carlo noise of ``permutations`` draws.

    Deterministic: instance ``i``'s permutations depend only on ``seed``, ``i`` (its position in ``a``) and
    ``n_i``, never on the other instances or on how they are blocked.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(map(repr, STATISTICS))}, got {statistic!r}")
    if isinstance(permutations, bool) or not isinstance(permutations, int | np.integer) or permutations < 1:
        raise ValueError(f"permutations must be an integer >= 1, got {permutations!r}")
    if (statistic == "kendall") != (k is None):
        raise ValueError(f"k must be given for a top-k statistic and only then, got {k!r} for {statistic!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    x, y, lengths = _pad_batch(a, b)
    ks = lengths if k is None else np.minimum(_check_ks(k, lengths.size), lengths)  # Kendall: unused.
    ks = np.broadcast_to(ks, lengths.shape)
    mean = {
        "kendall": lambda x, y, order, k: _mean_kendall_tau_b(x, y, order),
        "topk": _mean_top_k_tau,
        "topk_published": _mean_published_top_k_tau,
    }[statistic]

    def compute(rows: np.ndarray, width: int) -> np.ndarray:
        order = _permutations(seed, rows, lengths[rows], permutations, width)
        return mean(x[rows, :width], y[rows, :width], order, ks[rows])

    return _by_blocks(x, y, lengths, permutations, compute)


def batch_correlations(
    a: Sequence[ArrayLike], b: Sequence[ArrayLike], k: int | ArrayLike
) -> dict[str, np.ndarray]:
    """Kendall tau (``"tau"``), its p-value (``"p_value"``) and top-k tau (``"top_k_tau"``) per instance.

    Arguments as in :func:`batch_top_k_kendall_tau`; every output has shape ``(m,)``.
    """
    tau, p_value = batch_kendall_tau(a, b)
    return {"tau": tau, "p_value": p_value, "top_k_tau": batch_top_k_kendall_tau(a, b, k)}


def summarize(values: ArrayLike) -> dict[str, float | int]:
    """Mean and population std (ddof=0) of the non-NaN ``values`` (shape ``(m,)``), with counts.

    NaNs mark instances where a correlation is undefined; they are excluded and counted in ``n_nan``,
    so that a report shows how many instances a mean rests on (``n``).
    """
    values = _check_vector(values, "values", allow_nan=True)
    kept = values[~np.isnan(values)]
    if kept.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0, "n_nan": int(values.size)}
    return {
        "mean": float(kept.mean()),
        "std": float(kept.std()),
        "n": int(kept.size),
        "n_nan": int(values.size - kept.size),
    }


def significant_fraction(p_values: ArrayLike, alpha: float = 0.05) -> float:
    """Fraction of non-NaN ``p_values`` (shape ``(m,)``) below ``alpha``; NaN if all are NaN."""
    p_values = _check_vector(p_values, "p_values", allow_nan=True)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    kept = p_values[~np.isnan(p_values)]
    return float(np.mean(kept < alpha)) if kept.size else float("nan")


def _top_k_tau_padded(x: np.ndarray, y: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Top-k tau for rows of ``x``, ``y`` (shape ``(m, L)``, padded with -inf) and ``k`` (shape ``(m,)``).

    Each position gets its rank in a top-k list, or ``k`` when outside it. Fagin et al.'s cases then
    reduce to two counts. Penalty 1 (cases 1-3) goes to exactly the pairs the two rankings order strictly
    oppositely; a pair outside both lists never is. Penalty p (case 4) goes to pairs of the ``c = k -
    overlap`` items found only in one list, ``2 * C(c, 2)`` pairs in all.
    """
    r1, r2 = _top_k_ranks(x, k), _top_k_ranks(y, k)
    in_both = (r1 < k[:, None]) & (r2 < k[:, None])
    # Only the union of the two lists matters: gather its positions into the first columns.
    best = np.minimum(r1, r2)
    keep = np.argsort(best, axis=1)[:, : 2 * k.max()]
    r1, r2 = np.take_along_axis(r1, keep, axis=1), np.take_along_axis(r2, keep, axis=1)
    discordant = ((r1[:, :, None] < r1[:, None, :]) & (r2[:, :, None] > r2[:, None, :])).sum(axis=(1, 2))
    only_one = k - in_both.sum(axis=1)
    distance = discordant + P_TIE * only_one * (only_one - 1)
    max_distance = k**2 + P_TIE * k * (k - 1)
    return 1 - 2 * distance / max_distance


# The kernels below take a block of B instances: x and y of shape (B, W), padded with -inf, and orders of
# shape (B, R, W), each row a permutation of the instance's positions (padding last). They return, per
# instance, the mean of a statistic between x[i] and y[i, order[i, r]] over the R orders: one order (the
# identity) for the batched statistics, random ones for the chance levels. x stays in place, so what
# depends on x alone is computed once per instance, not once per order.


def _kendall_counts(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per row of ``x``, ``y`` (shape ``(B, W)``, padded with -inf), what scipy's ``kendalltau`` counts:
    discordant pairs, pairs tied in x, in y and in both, and for x and for y the tie-group sums
    sum c (c - 1) (c - 2) and sum c (c - 1) (2c + 5) over groups of c equal values; shape ``(B, 8)``.
    """
    valid = x > -np.inf
    x = np.where(valid, x, np.nan)  # NaN compares False: padding drops out of every pair.
    y = np.where(valid, y, np.nan)
    x_equal = x[:, :, None] == x[:, None, :]  # Includes each real position with itself.
    y_equal = y[:, :, None] == y[:, None, :]
    discordant = np.count_nonzero(
        (x[:, :, None] > x[:, None, :]) & (y[:, :, None] < y[:, None, :]), axis=(1, 2)
    )
    n = valid.sum(axis=1)
    columns = [discordant]
    for equal in (x_equal, y_equal, x_equal & y_equal):
        columns.append((np.count_nonzero(equal, axis=(1, 2)) - n) // 2)
    for equal in (x_equal, y_equal):
        group = equal.sum(axis=2)  # Per position, the size c of its group of equal values.
        # Summing (c - 1)(c - 2) over a group's c positions gives the group's c (c - 1) (c - 2).
        columns.append(np.where(valid, (group - 1) * (group - 2), 0).sum(axis=1))
        columns.append(np.where(valid, (group - 1) * (2 * group + 5), 0).sum(axis=1))
    return np.stack(columns, axis=1).astype(np.float64)


def _exact_kendall_p_values(n: int, discordant: np.ndarray) -> np.ndarray:
    """scipy's exact two-sided p-values of Kendall tau for ``n`` tie-free positions with ``discordant``
    discordant pairs (shape ``(r,)``): twice the null probability of a count at least as far from the
    middle, at most 1. Past 33 positions scipy takes it exact only for 0 or 1 discordant (or concordant)
    pairs, where 1 and n - 1 permutations have that many inversions: 2 / n! and 2 / (n - 1)!."""
    c = np.minimum(discordant, n * (n - 1) // 2 - discordant)
    if n <= 33:
        return np.minimum(1.0, 2 * _kendall_null_cdf(n)[c])
    return np.where(c == 0, 2 / math.factorial(n), 2 / math.factorial(n - 1))


@functools.cache
def _kendall_null_cdf(n: int) -> np.ndarray:
    """P(at most j discordant pairs) for j = 0 .. n (n - 1) / 2 between two random tie-free rankings of
    ``n`` positions: the cumulative Mahonian numbers over n!. Placing the m-th item adds 0 .. m - 1
    inversions, so the counts are the running sums of m consecutive counts of m - 1 items."""
    counts = np.zeros(n * (n - 1) // 2 + 1)
    counts[0] = 1.0
    for m in range(2, n + 1):
        counts = np.convolve(counts, np.ones(m))[: counts.size]
    return np.cumsum(counts) / math.factorial(n)


def _mean_kendall_tau_b(x: np.ndarray, y: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Mean tau-b = (C - D) / sqrt(N_x * N_y) over the orders: C (D) counts pairs that both vectors order
    alike (oppositely), N_x (N_y) the pairs that x (y) does not tie. Shape ``(B,)``.

    N_y does not change under permutation, so the R numerators are summed before dividing.
    """
    x = np.where(x == -np.inf, np.nan, x)  # NaN compares False: padding drops out of every pair.
    shuffled = _gather(np.where(y == -np.inf, np.nan, y), order)
    x_above = x[:, :, None] > x[:, None, :]
    sign_x = x_above.view(np.int8) - x_above.transpose(0, 2, 1).view(np.int8)
    y_above = _flat_pairs(shuffled[..., :, None] > shuffled[..., None, :])
    ordered = np.einsum("brp,bp->b", y_above, sign_x.reshape(len(x), -1), dtype=np.int64)
    untied = np.count_nonzero(x_above, axis=(1, 2)) * y_above[:, 0].sum(axis=1, dtype=np.int64)
    return ordered / (order.shape[1] * np.sqrt(untied))


def _mean_top_k_tau(x: np.ndarray, y: np.ndarray, order: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Mean of Fagin's top-k tau (as :func:`_top_k_tau_padded`) over the orders; shape ``(B,)``.

    With s_p the capped rank in y of x's p-th item, the discordant pairs are the inversions of s (pairs
    inside x's list) plus, for the y-only items T, sum over t of #{p in x's list ranked below t in y}, which
    is |T| k - sum of T's ranks + C(|T|, 2); T's ranks are those below k that x's items do not take.
    """
    rank, _ = _top_k_items(x, y, order, k)
    p, q = np.triu_indices(rank.shape[2], 1)
    inversions = np.count_nonzero(rank[..., p] > rank[..., q], axis=2)  # Slots past k hold k: never counted.
    in_both = rank < k[:, None, None]
    k = k[:, None]
    only_one = k - np.count_nonzero(in_both, axis=2)
    y_only_ranks = k * (k - 1) // 2 - np.where(in_both, rank, 0).sum(axis=2)
    cross = only_one * k - y_only_ranks + only_one * (only_one - 1) // 2
    distance = inversions + cross + P_TIE * only_one * (only_one - 1)
    return (1 - 2 * distance / (k**2 + P_TIE * k * (k - 1))).mean(axis=1)


def _mean_published_top_k_tau(x: np.ndarray, y: np.ndarray, order: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Mean of the published top-k tau over the orders; shape ``(B,)``.

    Items with a higher score than an item of Z all lie in its list, so the pairs of term2 follow from
    counts: sum over Z of (#x-scores above) - N_x, plus sum over Z of (#y-scores above) - N_y, where N_x
    (N_y) counts the pairs of Z that x (y) does not tie, as in tau-b over Z.
    """
    rank, y_above_count = _top_k_items(x, y, order, k)
    in_z = rank < k[:, None, None]
    z = np.count_nonzero(in_z, axis=2)
    xs = -np.sort(-x, axis=1)[:, : rank.shape[2]]  # x's list in rank order
    x_above_count = _count_above(xs)
    x_above = xs[:, :, None] > xs[:, None, :]
    sign_x = x_above.view(np.int8) - x_above.transpose(0, 2, 1).view(np.int8)
    y_above_z = np.where(in_z, y_above_count, np.float32(np.nan))  # Fewer above: higher. NaN outside Z.
    y_above = _flat_pairs(y_above_z[..., :, None] < y_above_z[..., None, :])
    ordered = np.einsum("brp,bp->br", y_above, sign_x.reshape(len(x), -1), dtype=np.int64)
    untied_y = y_above.sum(axis=2, dtype=np.int64)
    z_float = in_z.astype(np.float32)
    untied_x = ((z_float @ x_above.astype(np.float32)) * z_float).sum(axis=2)
    untied = untied_x * untied_y
    tau_b = ordered / np.sqrt(np.maximum(untied, 1))  # Used only where untied > 0.
    term1 = np.where(untied > 0, (1 - (tau_b / 2 + 1 / 2)) * z**2, 0.0)
    above_in_z = (in_z * (x_above_count[:, None, :].astype(np.int64) + y_above_count)).sum(axis=2)
    term2 = above_in_z - untied_x - untied_y
    k = k[:, None]
    term4 = 2 * P_TIE * (k - z) * (k - z - 1) / 2
    return (1 - 2 * (term1 + term2 + term4) / (2 * k - z) ** 2).mean(axis=1)


def _top_k_items(
    x: np.ndarray, y: np.ndarray, order: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For the items of x's top-k list, slot p in its rank order (p < K = max k): their rank in each
    shuffled y (ties to the lower position), capped at k (k also in slots p >= k), and how many y-scores
    are above theirs. Both shape ``(B, R, K)``.

    Without ties the rank is the count above, gathered without sorting any shuffled y; instances whose y
    has ties add the equal scores at earlier positions of the shuffled y.
    """
    x_list = np.argsort(-x, axis=1, kind="stable")[:, : k.max()]
    items = order.transpose(0, 2, 1)[np.arange(len(x))[:, None], x_list].transpose(0, 2, 1)  # y positions
    above = _gather(_count_above(y), items)
    rank = above.copy()
    tied = np.flatnonzero(_has_ties(y))
    if tied.size:
        shuffled = _gather(y[tied], order[tied])
        positions = x_list[tied, None, :]
        at = np.take_along_axis(shuffled, np.broadcast_to(positions, items[tied].shape), axis=2)
        before = np.arange(y.shape[1]) < positions[..., None]
        rank[tied] += np.count_nonzero((shuffled[:, :, None, :] == at[..., None]) & before, axis=3).astype(
            rank.dtype
        )
    cap = k.astype(rank.dtype)[:, None, None]
    return np.where(np.arange(x_list.shape[1]) < cap, np.minimum(rank, cap), cap), above


def _count_above(scores: np.ndarray) -> np.ndarray:
    """How many scores of its row (shape ``(B, W)``, padded with -inf) exceed each score; the smallest
    signed integer type that holds W."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ordered = np.take_along_axis(scores, order, axis=1)
    starts = np.ones(ordered.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(scores.shape[1]), 0), axis=1)
    above = np.empty(order.shape, dtype=np.min_scalar_type(-scores.shape[1]))
    np.put_along_axis(above, order, group_start, axis=1)
    return above


def _has_ties(scores: np.ndarray) -> np.ndarray:
    """Rows (shape ``(B, W)``, padded with -inf) where two real scores are equal; shape ``(B,)``."""
    ordered = np.sort(scores, axis=1)
    return ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] > -np.inf)).any(axis=1)


def _gather(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[i, index[i, r, j]]`` for values of shape ``(B, W)``; shape of ``index``."""
    return values.reshape(-1)[index + (np.arange(len(values)) * values.shape[1])[:, None, None]]


def _flat_pairs(pairs: np.ndarray) -> np.ndarray:
    """Boolean pair matrices ``(B, R, W, W)`` as uint8 rows ``(B, R, W * W)``, for integer sums."""
    return pairs.reshape(pairs.shape[:2] + (-1,)).view(np.uint8)


def _same(rows: np.ndarray, width: int) -> np.ndarray:
    """The identity order, shape ``(len(rows), 1, width)``: the statistic itself, not a chance level."""
    return np.broadcast_to(np.arange(width), (len(rows), 1, width))


def _permutations(
    seed: int, instances: np.ndarray, lengths: np.ndarray, count: int, width: int
) -> np.ndarray:
    """``count`` random orders per instance, shape ``(B, count, width)``: row ``[i, r]`` permutes the
    ``lengths[i]`` real positions and leaves the padding after them.

    Sort keys hash (key, instance, r, position) with splitmix64, the key drawn by a numpy Generator from
    ``seed``: so an instance's orders depend on its position in the input, never on the block.
    """
    key = np.random.default_rng(seed).integers(np.iinfo(np.uint64).max, dtype=np.uint64, endpoint=True)
    h = _mix(key ^ (instances.astype(np.uint64) * _GOLDEN))
    h = _mix(h[:, None] + np.arange(count, dtype=np.uint64) * _GOLDEN)
    h = _mix(h[:, :, None] + np.arange(width, dtype=np.uint64) * _GOLDEN) >> np.uint64(1)
    padding = (np.arange(width) >= lengths[:, None]).astype(np.uint64) << np.uint64(63)  # Sorts last.
    return np.argsort(h | padding[:, None, :], axis=2)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 whose every output bit depends on every input bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _by_blocks(
    x: np.ndarray,
    y: np.ndarray,
    lengths: np.ndarray,
    repeats: int,
    compute: Callable[[np.ndarray, int], np.ndarray],
    columns: int | None = None,
) -> np.ndarray:
    """``compute(rows, width)`` over blocks of the defined instances (padded ``x``, ``y``), NaN elsewhere.

    Blocks hold instances of similar length (little padding) and at most ``_PAIRS`` position pairs,
    ``repeats`` rows per instance, unless a single instance has more; shape ``(m,)``, or ``(m, columns)``
    where ``compute`` gives that many values per instance.
    """
    out = np.full((lengths.size,) if columns is None else (lengths.size, columns), np.nan)
    index = np.flatnonzero(_defined(x, y, lengths))
    index = index[np.argsort(lengths[index], kind="stable")]
    start = 0
    while start < index.size:
        window = lengths[index[start : start + _PAIRS // (repeats * lengths[index[start]] ** 2) + 1]]
        cost = np.arange(1, window.size + 1) * repeats * window.astype(np.int64) ** 2
        stop = start + max(1, int(np.searchsorted(cost, _PAIRS, side="right")))
        rows = index[start:stop]
        out[rows] = compute(rows, lengths[rows].max())
        start = stop
    return out


def _top_k_ranks(scores: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Rank by descending score, ties to the lower index, capped at ``k``; shape ``(m, L)``."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1])[None], axis=1)
    return np.minimum(ranks, k[:, None])


def _defined(x: np.ndarray, y: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Rows of padded ``x``, ``y`` where neither vector is constant (so n_i >= 2); shape ``(m,)``."""
    valid = np.arange(x.shape[1]) < lengths[:, None]

    def varies(v: np.ndarray) -> np.ndarray:
        return v.max(axis=1, initial=-np.inf) > np.where(valid, v, np.inf).min(axis=1, initial=np.inf)

    return varies(x) & varies(y)


def _pad_batch(a: Sequence[ArrayLike], b: Sequence[ArrayLike]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate ragged ``a``, ``b`` and pad them with -inf to shape ``(m, max n_i)``; also the lengths."""
    if len(a) != len(b):
        raise ValueError(f"a and b must hold the same number of instances, got {len(a)} and {len(b)}")
    xs, ys = [np.asarray(v, dtype=np.float64) for v in a], [np.asarray(v, dtype=np.float64) for v in b]
    for i, (x, y) in enumerate(zip(xs, ys)):
        if x.ndim != 1 or y.ndim != 1:
            raise ValueError(f"instance {i}: x and y must be 1-D, got shapes {x.shape} and {y.shape}")
        if x.size != y.size:
            raise ValueError(f"instance {i}: x and y must have the same length, got {x.size} and {y.size}")
    lengths = np.array([x.size for x in xs], dtype=np.int64)
    valid = np.arange(lengths.max(initial=0)) < lengths[:, None]
    padded = []
    for name, vectors in (("x", xs), ("y", ys)):
        flat = np.concatenate(vectors) if vectors else np.empty(0)
        bad = np.flatnonzero(~np.isfinite(flat))
        if bad.size:
            i = np.searchsorted(np.cumsum(lengths), bad[0], side="right")
            position = bad[0] - lengths[:i].sum()
            raise ValueError(f"instance {i}: {name} must be finite, got {flat[bad[0]]} at index {position}")
        out = np.full(valid.shape, -np.inf)
        out[valid] = flat
        padded.append(out)
    return padded[0], padded[1], lengths


def _check_vector(values: ArrayLike, name: str, allow_nan: bool = False) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {values.shape}")
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    if bad.any():
        allowed = "finite or NaN" if allow_nan else "finite"
        raise ValueError(f"{name} must be {allowed}, got {values[bad][0]} at index {np.flatnonzero(bad)[0]}")
    return values


def _check_pair(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x, y = _check_vector(x, "x"), _check_vector(y, "y")
    if x.size != y.size:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    return x, y


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def _check_ks(k: int | ArrayLike, m: int) -> np.ndarray:
    if np.ndim(k) == 0:
        return np.array(_check_k(k))
    ks = np.asarray(k)
    if ks.shape != (m,) or not np.issubdtype(ks.dtype, np.integer):
        raise ValueError(
            f"k must be an integer or an integer array of shape ({m},), got {ks.dtype} {ks.shape}"
        )
    if (ks < 1).any():
        raise ValueError(f"k must be >= 1, got {ks[ks < 1][0]} at index {np.flatnonzero(ks < 1)[0]}")
    return ks.astype(np.int64)
