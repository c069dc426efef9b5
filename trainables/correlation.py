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

from collections.abc import Sequence

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike

P_TIE = 0.5  # Fagin et al.'s penalty p for a pair that one list does not order.
_CHUNK = 256  # Instances per block in the batched top-k tau, bounding its (block, 2k, 2k) pair arrays.


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
    """Kendall tau-b and p-value per instance for ragged lists ``a`` and ``b``; both outputs shape ``(m,)``.

    Instance ``i`` of ``a`` and of ``b`` has shape ``(n_i,)``. scipy runs once per defined instance.
    """
    x, y, lengths = _pad_batch(a, b)
    tau = np.full(lengths.size, np.nan)
    p_value = np.full(lengths.size, np.nan)
    for i in np.flatnonzero(_defined(x, y, lengths)):
        result = scipy.stats.kendalltau(x[i, : lengths[i]], y[i, : lengths[i]])
        tau[i], p_value[i] = result.statistic, result.pvalue
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
    ks = np.minimum(_check_ks(k, lengths.size), lengths)
    out = np.full(lengths.size, np.nan)
    index = np.flatnonzero(_defined(x, y, lengths))
    index = index[np.argsort(lengths[index])]
    for start in range(0, index.size, _CHUNK):
        block = index[start : start + _CHUNK]
        width = lengths[block].max()
        out[block] = _published_top_k_tau_padded(x[block, :width], y[block, :width], ks[block])
    return out


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


def _published_top_k_tau_padded(x: np.ndarray, y: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Published top-k tau for rows of ``x``, ``y`` (shape ``(m, L)``, padded with -inf) and ``k`` (``(m,)``).

    The union of the two lists is gathered first, as in :func:`_top_k_tau_padded`; tau-b over Z comes from
    pairwise comparisons masked to pairs inside Z: tau_b = (C - D) / sqrt(N_x * N_y), with C (D) the pairs
    both (oppositely) ordered and N_x (N_y) the pairs that ``x`` (``y``) does not tie.
    """
    in_x, in_y = _top_k_ranks(x, k) < k[:, None], _top_k_ranks(y, k) < k[:, None]
    keep = np.argsort(~(in_x | in_y), axis=1, kind="stable")[:, : 2 * k.max()]
    x, y = np.take_along_axis(x, keep, axis=1), np.take_along_axis(y, keep, axis=1)
    in_x, in_y = np.take_along_axis(in_x, keep, axis=1), np.take_along_axis(in_y, keep, axis=1)
    common = in_x & in_y
    pairs = common[:, :, None] & common[:, None, :]
    x_above = (x[:, :, None] > x[:, None, :]) & pairs  # [r, i, j]: x[i] > x[j], both in Z
    y_above = (y[:, :, None] > y[:, None, :]) & pairs
    ordered = (x_above & y_above).sum(axis=(1, 2)) - (x_above & y_above.transpose(0, 2, 1)).sum(axis=(1, 2))
    untied = x_above.sum(axis=(1, 2)) * y_above.sum(axis=(1, 2))
    tau_b = ordered / np.sqrt(np.maximum(untied, 1))  # Used only where untied > 0.
    z = common.sum(axis=1)
    term1 = np.where(untied > 0, (1 - (tau_b / 2 + 1 / 2)) * z**2, 0.0)
    below = (x[:, :, None] < x[:, None, :]) & common[:, :, None] & (in_x & ~in_y)[:, None, :]
    below |= (y[:, :, None] < y[:, None, :]) & common[:, :, None] & (in_y & ~in_x)[:, None, :]
    term2 = below.sum(axis=(1, 2))
    term4 = 2 * P_TIE * (k - z) * (k - z - 1) / 2
    return 1 - 2 * (term1 + term2 + term4) / (2 * k - z) ** 2


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
