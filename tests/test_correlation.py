import itertools
import math
import warnings

import numpy as np
import pytest
import scipy.stats

from benchmarks.reference import reference_published_top_k_tau, reference_top_k_tau
from trainables.correlation import (
    STATISTICS,
    _permutations,
    batch_correlations,
    batch_kendall_tau,
    batch_kendall_tau_b,
    batch_published_top_k_tau,
    batch_top_k_kendall_tau,
    chance_level,
    kendall_tau,
    published_top_k_tau,
    significant_fraction,
    summarize,
    top_k_kendall_tau,
)


def random_pair(rng, n, ties=False):
    if ties:
        return rng.integers(0, 4, n).astype(float), rng.integers(0, 4, n).astype(float)
    return rng.normal(size=n), rng.normal(size=n)


# Kendall tau ----------------------------------------------------------------------------------------


def test_kendall_identical_and_reversed():
    x = np.array([0.1, 0.5, 0.2, 0.9, 0.3])
    assert kendall_tau(x, x)[0] == pytest.approx(1.0)
    assert kendall_tau(x, -x)[0] == pytest.approx(-1.0)


def test_kendall_hand_computed_with_p_value():
    # Pairs of ranks (1,2,3,4) vs (2,1,3,4): 1 discordant of 6, tau = (5 - 1) / 6. Exact null: of the 24
    # permutations, 1 has 0 inversions and 3 have 1, so P(|tau| >= 2/3) = 2 * 4 / 24.
    tau, p = kendall_tau([1, 2, 3, 4], [2, 1, 3, 4])
    assert tau == pytest.approx(4 / 6)
    assert p == pytest.approx(8 / 24)


def test_kendall_ties_use_tau_b():
    # x has one tied pair (positions 0, 1): concordant 5, discordant 0, tau-b = 5 / sqrt(5 * 6).
    tau, p = kendall_tau([1, 1, 2, 3], [1, 2, 3, 4])
    assert tau == pytest.approx(5 / math.sqrt(30))
    assert 0 < p < 1


def test_kendall_matches_scipy_on_random_inputs():
    rng = np.random.default_rng(0)
    for n in (2, 5, 19, 40, 56):
        for ties in (False, True):
            x, y = random_pair(rng, n, ties)
            if np.ptp(x) == 0 or np.ptp(y) == 0:
                continue
            expected = scipy.stats.kendalltau(x, y)
            assert kendall_tau(x, y) == pytest.approx((expected.statistic, expected.pvalue))


@pytest.mark.parametrize(
    "x, y", [([], []), ([1.0], [2.0]), ([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]), ([1.0, 2.0], [5.0, 5.0])]
)
def test_kendall_undefined_is_nan_without_warnings(x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tau, p = kendall_tau(x, y)
    assert math.isnan(tau) and math.isnan(p)


# Top-k tau ------------------------------------------------------------------------------------------


def test_top_k_identical_lists_give_one():
    x = np.array([0.3, 0.1, 0.9, 0.5, 0.2])
    for k in range(1, 6):
        assert top_k_kendall_tau(x, x, k) == pytest.approx(1.0)


def test_top_k_disjoint_lists_give_minus_one():
    x = np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    for k in (1, 2, 3):
        assert top_k_kendall_tau(x, -x, k) == pytest.approx(-1.0)


def test_top_k_partial_overlap_by_hand():
    # Items a, b, c, d; k = 3; tau1 = [a, b, c], tau2 = [a, c, d]. Pairs of the union:
    #   {a, c} case 1, same order: 0.      {a, b} case 2, a ahead of b in tau1 as tau2 implies: 0.
    #   {b, c} case 2, b ahead of c in tau1, tau2 implies c ahead: 1.
    #   {a, d} case 2, a ahead of d in tau2: 0.   {c, d} case 2, c ahead of d in tau2: 0.
    #   {b, d} case 3: 1.
    # K = 2; K_max = 3 ** 2 + 0.5 * 3 * 2 = 12; tau = 1 - 2 * 2 / 12 = 2 / 3.
    x = [4.0, 3.0, 2.0, 1.0]
    y = [4.0, 1.0, 3.0, 2.0]
    assert top_k_kendall_tau(x, y, 3) == pytest.approx(2 / 3)


def test_top_k_case_4_costs_half():
    # k = 2; tau1 = [a, b], tau2 = [c, d]: 4 case-3 pairs (1 each) and 2 case-4 pairs (0.5 each) = K_max.
    # Swap to tau2 = [a, c]: {a, b} case 2, 0; {a, c} case 2, 0; {b, c} case 3, 1; K = 1, K_max = 5.
    x = [4.0, 3.0, 2.0, 1.0]
    assert top_k_kendall_tau(x, [1.0, 2.0, 4.0, 3.0], 2) == pytest.approx(-1.0)
    assert top_k_kendall_tau(x, [4.0, 1.0, 3.0, 2.0], 2) == pytest.approx(1 - 2 / 5)


def test_top_k_full_reversal_stays_above_minus_one():
    # k = n = 3, reversed: all 3 pairs are case 1 and discordant, K = 3 of K_max = 9 + 3 = 12.
    assert top_k_kendall_tau([3.0, 2.0, 1.0], [1.0, 2.0, 3.0], 3) == pytest.approx(0.5)


def test_top_k_clips_k_to_length():
    x, y = [0.9, 0.1, 0.5], [0.2, 0.8, 0.4]
    assert top_k_kendall_tau(x, y, 10) == top_k_kendall_tau(x, y, 3)


def test_top_k_ties_break_to_lower_index():
    # Top-1 of x = [1, 1, 0] is position 0 by the tie rule, which is y's top item: 1, not -1.
    assert top_k_kendall_tau([1.0, 1.0, 0.0], [2.0, 1.0, 0.0], 1) == pytest.approx(1.0)
    assert top_k_kendall_tau([1.0, 1.0, 0.0], [1.0, 2.0, 0.0], 1) == pytest.approx(-1.0)


@pytest.mark.parametrize("x, y", [([], []), ([1.0], [2.0]), ([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])])
def test_top_k_undefined_is_nan_without_warnings(x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(top_k_kendall_tau(x, y, 1))
        assert math.isnan(top_k_kendall_tau(y, x, 2))


def test_top_k_matches_reference_on_random_cases():
    rng = np.random.default_rng(1)
    for trial in range(300):
        n = int(rng.integers(2, 30))
        x, y = random_pair(rng, n, ties=trial % 3 == 0)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        k = int(rng.integers(1, n + 3))
        assert top_k_kendall_tau(x, y, k) == pytest.approx(reference_top_k_tau(x, y, k)), (x, y, k)


def test_top_k_properties():
    rng = np.random.default_rng(2)
    for _ in range(200):
        n = int(rng.integers(2, 40))
        x, y = random_pair(rng, n)
        k = int(rng.integers(1, n + 1))
        tau = top_k_kendall_tau(x, y, k)
        assert -1 <= tau <= 1
        assert top_k_kendall_tau(y, x, k) == pytest.approx(tau)
        assert top_k_kendall_tau(np.exp(x), y, k) == pytest.approx(tau)
        assert top_k_kendall_tau(3 * x + 1, y, k) == pytest.approx(tau)
        assert kendall_tau(np.exp(x), y)[0] == pytest.approx(kendall_tau(x, y)[0])


# Published top-k tau -------------------------------------------------------------------------------


def test_published_k_1_is_one_whether_or_not_the_top_items_agree():
    # z = 1: tau-b over one item is undefined, term1 = 0. z = 0: term4 = 2 * 0.5 * C(1, 2) = 0.
    x = [3.0, 2.0, 1.0]
    assert published_top_k_tau(x, x, 1) == 1.0
    assert published_top_k_tau(x, [1.0, 2.0, 3.0], 1) == 1.0


def test_published_disjoint_top_2_lists_by_hand():
    # z = 0, |S| = |T| = 2: term1 = term2 = 0, term4 = 2 * 0.5 * C(2, 2) = 1; 1 - 2 * 1 / 4**2 = 0.875.
    assert published_top_k_tau([4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0], 2) == pytest.approx(0.875)


def test_published_partial_overlap_by_hand():
    # k = 3; top of x = [a, b, c], of y = [a, c, d]: Z = {a, c}, S = {b}, T = {d}.
    # term1: x and y both order a above c, tau_b = 1, term1 = 0.
    # term2: (i in Z, j in S) with x[i] < x[j]: x[c] < x[b], 1 pair; (i in Z, j in T) with y[i] < y[j]: 0.
    # term4 = 2 * 0.5 * C(1, 2) = 0. Value 1 - 2 * 1 / (1 + 1 + 2)**2 = 0.875.
    x = [4.0, 3.0, 2.0, 1.0]
    y = [4.0, 1.0, 3.0, 2.0]
    assert published_top_k_tau(x, y, 3) == pytest.approx(0.875)
    # y = [2, 1, 4, 3]: top of y = [c, d, a], Z = {a, c} again but y orders c above a: tau_b = -1,
    # term1 = (1 - 0) * 2**2 = 4. term2 adds x[c] < x[b] and now also y[a] < y[d]: 2. 1 - 2 * 6 / 16.
    assert published_top_k_tau(x, [2.0, 1.0, 4.0, 3.0], 3) == pytest.approx(1 - 12 / 16)


def test_published_at_full_length_is_kendall_tau_b():
    rng = np.random.default_rng(4)
    for trial in range(100):
        n = int(rng.integers(2, 25))
        x, y = random_pair(rng, n, ties=trial % 2 == 0)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        expected = scipy.stats.kendalltau(x, y).statistic
        assert published_top_k_tau(x, y, n) == pytest.approx(expected), (x, y)
        assert published_top_k_tau(x, y, n + 5) == pytest.approx(expected), (x, y)


def test_published_ties_break_to_lower_index():
    # k = 2: x = [1, 1, 1, 0] ties three ways; its top 2 is {0, 1}, disjoint from y's {3, 2}: 0.875.
    # Had the tie gone to position 2, Z = {2}, and y[2] < y[3] would give term2 = 1 and 1 - 2 / 9.
    assert published_top_k_tau([1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0], 2) == pytest.approx(0.875)


@pytest.mark.parametrize("x, y", [([], []), ([1.0], [2.0]), ([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])])
def test_published_undefined_is_nan_without_warnings(x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(published_top_k_tau(x, y, 1))
        assert math.isnan(published_top_k_tau(y, x, 2))


def test_published_matches_reference_on_random_cases():
    rng = np.random.default_rng(5)
    for trial in range(400):
        n = int(rng.integers(2, 30))
        x, y = random_pair(rng, n, ties=trial % 2 == 0)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        k = int(rng.integers(1, n + 3))
        expected = reference_published_top_k_tau(x, y, k)
        assert published_top_k_tau(x, y, k) == pytest.approx(expected), (x, y, k)


# Batched --------------------------------------------------------------------------------------------


def test_batch_matches_single_instance_functions():
    rng = np.random.default_rng(3)
    lengths = [1, 2, 3, 19, 56, 7, 0] + list(rng.integers(2, 57, 600))
    pairs = [random_pair(rng, n, ties=i % 4 == 0) for i, n in enumerate(lengths)]
    pairs[5] = (np.ones(7), rng.normal(size=7))  # Constant instance.
    a, b = [x for x, _ in pairs], [y for _, y in pairs]
    ks = rng.integers(1, 60, len(pairs))
    result = batch_correlations(a, b, ks)
    expected_top_k = [top_k_kendall_tau(x, y, int(k)) for x, y, k in zip(a, b, ks)]
    expected_tau, expected_p = zip(*(kendall_tau(x, y) for x, y in zip(a, b)))
    np.testing.assert_allclose(result["top_k_tau"], expected_top_k, equal_nan=True)
    np.testing.assert_allclose(result["tau"], expected_tau, equal_nan=True)
    np.testing.assert_allclose(result["p_value"], expected_p, equal_nan=True)
    assert np.isnan(result["top_k_tau"][[0, 5, 6]]).all()
    scalar = batch_top_k_kendall_tau(a, b, 5)
    np.testing.assert_allclose(scalar, [top_k_kendall_tau(x, y, 5) for x, y in zip(a, b)], equal_nan=True)
    published = batch_published_top_k_tau(a, b, ks)
    defined = ~np.isnan(result["tau"])  # The reference knows no NaN rule; the NaN rule is shared.
    expected = [reference_published_top_k_tau(a[i], b[i], int(ks[i])) for i in np.flatnonzero(defined)]
    np.testing.assert_allclose(published[defined], expected)
    assert np.array_equal(np.isnan(published), ~defined)


def test_batch_empty():
    tau, p = batch_kendall_tau([], [])
    assert tau.shape == p.shape == (0,)
    assert batch_top_k_kendall_tau([], [], 3).shape == (0,)
    assert batch_published_top_k_tau([], [], 3).shape == (0,)


# Vectorised tau-b and chance levels ------------------------------------------------------------------


def ragged_pairs(rng, lengths, ties_every=3):
    pairs = [random_pair(rng, n, ties=i % ties_every == 0) for i, n in enumerate(lengths)]
    return [x for x, _ in pairs], [y for _, y in pairs]


def test_batch_kendall_tau_b_matches_scipy():
    rng = np.random.default_rng(6)
    lengths = [0, 1, 2, 3, 56] + list(rng.integers(2, 57, 400))
    a, b = ragged_pairs(rng, lengths)
    a[3] = np.full(3, 2.0)  # Constant: NaN.
    tau = batch_kendall_tau_b(a, b)
    expected = [
        scipy.stats.kendalltau(x, y).statistic if i not in (0, 1, 3) else np.nan
        for i, (x, y) in enumerate(zip(a, b))
    ]
    np.testing.assert_allclose(tau, expected, rtol=1e-12, atol=1e-15, equal_nan=True)
    assert batch_kendall_tau_b([], []).shape == (0,)


def test_batch_kendall_tau_and_p_value_match_scipy():
    # Every branch of scipy's method='auto': exact (tie-free, n <= 33), exact past 33 with at most one
    # discordant or concordant pair, asymptotic with and without ties; and undefined rows.
    rng = np.random.default_rng(11)
    lengths = [0, 1, 2, 3, 33, 34, 56, 130] + list(rng.integers(2, 57, 400))
    a, b = ragged_pairs(rng, lengths)
    a[3] = np.full(3, 2.0)  # Constant: NaN.
    sorted_40 = np.arange(40.0)
    one_swap = sorted_40.copy()
    one_swap[[5, 6]] = one_swap[[6, 5]]
    a += [sorted_40, sorted_40, sorted_40, np.repeat([1.0, 2.0], 20)]
    b += [sorted_40, one_swap, -one_swap, sorted_40]
    tau, p = batch_kendall_tau(a, b)
    expected = [
        scipy.stats.kendalltau(x, y) if len(x) > 1 and np.ptp(x) > 0 and np.ptp(y) > 0 else None
        for x, y in zip(a, b)
    ]
    np.testing.assert_allclose(
        tau, [np.nan if e is None else e.statistic for e in expected], rtol=1e-12, atol=1e-15, equal_nan=True
    )
    np.testing.assert_allclose(
        p, [np.nan if e is None else e.pvalue for e in expected], rtol=1e-9, atol=1e-300, equal_nan=True
    )


@pytest.mark.parametrize("statistic", STATISTICS)
def test_chance_is_the_statistics_mean_over_its_permutations(statistic):
    # Rebuild each permuted b explicitly and average the batched statistic over them.
    rng = np.random.default_rng(9)
    lengths = [2, 3, 5, 19, 56, 140] + list(rng.integers(2, 40, 120))
    a, b = ragged_pairs(rng, lengths, ties_every=2)
    ks = rng.integers(1, 30, len(lengths))
    batch = {"kendall": batch_kendall_tau_b, "topk": batch_top_k_kendall_tau}.get(
        statistic, batch_published_top_k_tau
    )
    k = None if statistic == "kendall" else ks
    orders = _permutations(5, np.arange(len(lengths)), np.array(lengths), 7, max(lengths))
    values = [
        batch(a, [y[order[r, : len(y)]] for y, order in zip(b, orders)], *([] if k is None else [k]))
        for r in range(7)
    ]
    chance = chance_level(statistic, a, b, k, permutations=7, seed=5)
    np.testing.assert_allclose(chance, np.mean(values, axis=0), rtol=1e-9, atol=1e-12, equal_nan=True)


def test_long_instances():
    # Past 127 positions ranks need 16 bits; sums of them must not overflow.
    rng = np.random.default_rng(10)
    a, b = ragged_pairs(rng, [130, 300, 300], ties_every=2)
    expected = [scipy.stats.kendalltau(x, y).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(batch_kendall_tau_b(a, b), expected, rtol=1e-12)
    for k in (5, 120, 290):
        expected = [reference_published_top_k_tau(x, y, k) for x, y in zip(a, b)]
        np.testing.assert_allclose(batch_published_top_k_tau(a, b, k), expected, rtol=1e-12)


def test_chance_of_kendall_is_near_zero():
    # Under permutation tau has mean 0 and, without ties, variance 2 (2n + 5) / (9 n (n - 1)). The mean of m
    # instances' chance levels (each a mean of R permutations) has standard error sqrt(mean var / (R m)).
    rng = np.random.default_rng(7)
    lengths = rng.integers(4, 30, 2000)
    a, b = ragged_pairs(rng, lengths, ties_every=10**9)
    chance = chance_level("kendall", a, b, permutations=20)
    variance = 2 * (2 * lengths + 5) / (9 * lengths * (lengths - 1))
    assert abs(chance.mean()) < 5 * math.sqrt(variance.mean() / (20 * lengths.size))
    assert np.abs(chance).max() < 1


@pytest.mark.parametrize("statistic", ["topk", "topk_published"])
@pytest.mark.parametrize("k", [2, 4, 7])
@pytest.mark.parametrize("ties", [False, True])
def test_chance_of_top_k_is_the_mean_over_all_rankings(statistic, k, ties):
    # Brute force: the exact mean of the statistic over all 4! orders of b. chance_level of m copies of the
    # instance averages R * m random orders, so it lies within a few standard errors of that mean.
    single = top_k_kendall_tau if statistic == "topk" else published_top_k_tau
    x = np.array([0.9, 0.1, 0.5, 0.3])
    y = np.array([0.2, 0.7, 0.2, 0.4]) if ties else np.array([0.2, 0.7, 0.6, 0.4])
    values = np.array([single(x, y[list(order)], k) for order in itertools.permutations(range(4))])
    copies, permutations = 300, 20
    chance = chance_level(statistic, [x] * copies, [y] * copies, k, permutations=permutations)
    standard_error = values.std() / math.sqrt(copies * permutations)
    assert abs(chance.mean() - values.mean()) < 5 * standard_error + 1e-12
    assert values.min() - 1e-12 <= chance.min() and chance.max() <= values.max() + 1e-12


def test_chance_is_deterministic_and_depends_only_on_the_instance_and_its_position():
    rng = np.random.default_rng(8)
    lengths = list(rng.integers(2, 57, 400))
    a, b = ragged_pairs(rng, lengths)
    ks = rng.integers(1, 20, len(lengths))
    for statistic, k in (("kendall", None), ("topk", ks), ("topk_published", ks)):
        full = chance_level(statistic, a, b, k, seed=3)
        np.testing.assert_array_equal(full, chance_level(statistic, a, b, k, seed=3))
        prefix = chance_level(statistic, a[:50], b[:50], None if k is None else k[:50], seed=3)
        np.testing.assert_array_equal(prefix, full[:50])  # Other instances and blocks do not matter.
        assert not np.array_equal(full, chance_level(statistic, a, b, k, seed=4))


def test_chance_keeps_the_first_vector_and_k():
    # a's top-1 is position 0; y's scores are all equal but one. Fagin's top-1 tau is 1 when the permuted
    # y puts its largest score at position 0 (1 order in 3), else -1: the mean over orders is -1/3.
    x, y = [3.0, 2.0, 1.0], [0.0, 0.0, 5.0]
    chance = chance_level("topk", [x] * 400, [y] * 400, 1, permutations=30)
    assert abs(chance.mean() + 1 / 3) < 5 * math.sqrt(8 / 9 / (400 * 30))
    assert np.isin(chance * 30, np.arange(-30, 31, 2)).all()  # Each a mean of 30 values in {-1, 1}.


def test_chance_is_nan_where_the_statistic_is():
    a = [[1.0], [2.0, 2.0], [1.0, 2.0, 3.0], []]
    b = [[1.0], [1.0, 2.0], [3.0, 1.0, 2.0], []]
    for statistic, k in (("kendall", None), ("topk", 2), ("topk_published", 2)):
        chance = chance_level(statistic, a, b, k)
        assert np.isnan(chance[[0, 1, 3]]).all() and not np.isnan(chance[2])
    assert chance_level("topk", [], [], 3).shape == (0,)


# Summaries ------------------------------------------------------------------------------------------


def test_summarize_excludes_and_counts_nans():
    summary = summarize([1.0, np.nan, 3.0, np.nan])
    assert summary == {"mean": 2.0, "std": 1.0, "n": 2, "n_nan": 2}
    empty = summarize([np.nan])
    assert math.isnan(empty["mean"]) and math.isnan(empty["std"]) and empty["n"] == 0 and empty["n_nan"] == 1


def test_significant_fraction():
    assert significant_fraction([0.01, 0.2, np.nan, 0.04, 0.05]) == pytest.approx(2 / 4)
    assert significant_fraction([0.01, 0.2], alpha=0.5) == pytest.approx(1.0)
    assert math.isnan(significant_fraction([np.nan]))


# Validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: kendall_tau([1.0, 2.0], [1.0, 2.0, 3.0]), "same length, got 2 and 3"),
        (lambda: top_k_kendall_tau([1.0, 2.0], [1.0], 1), "same length, got 2 and 1"),
        (lambda: kendall_tau([[1.0, 2.0]], [[1.0, 2.0]]), r"x must be 1-D, got shape \(1, 2\)"),
        (lambda: kendall_tau([1.0, np.nan], [1.0, 2.0]), "x must be finite, got nan at index 1"),
        (lambda: top_k_kendall_tau([1.0, 2.0], [np.inf, 2.0], 1), "y must be finite, got inf at index 0"),
        (lambda: top_k_kendall_tau([1.0, 2.0], [1.0, 2.0], 0), "k must be an integer >= 1, got 0"),
        (lambda: top_k_kendall_tau([1.0, 2.0], [1.0, 2.0], 1.5), "k must be an integer >= 1, got 1.5"),
        (
            lambda: batch_top_k_kendall_tau([[1.0, 2.0]], [[1.0, 2.0]], [0]),
            "k must be >= 1, got 0 at index 0",
        ),
        (lambda: batch_top_k_kendall_tau([[1.0, 2.0]], [[1.0, 2.0]], [1, 2]), r"shape \(1,\)"),
        (lambda: published_top_k_tau([1.0, 2.0], [1.0, 2.0], 0), "k must be an integer >= 1, got 0"),
        (lambda: published_top_k_tau([1.0, 2.0], [1.0], 1), "same length, got 2 and 1"),
        (lambda: batch_published_top_k_tau([[1.0, 2.0]], [[1.0, 2.0]], [0]), "k must be >= 1, got 0 at"),
        (lambda: batch_kendall_tau([[1.0]], [[1.0], [2.0]]), "same number of instances, got 1 and 2"),
        (lambda: batch_kendall_tau([[1.0], [1.0, np.nan]], [[1.0], [1.0, 2.0]]), "instance 1: x must be"),
        (lambda: batch_kendall_tau_b([[1.0, 2.0]], [[1.0]]), "instance 0: x and y must have the same length"),
        (
            lambda: chance_level("spearman", [[1.0, 2.0]], [[1.0, 2.0]]),
            "statistic must be one of 'kendall', 'topk', 'topk_published', got 'spearman'",
        ),
        (
            lambda: chance_level("kendall", [[1.0, 2.0]], [[1.0, 2.0]], permutations=0),
            "permutations must be an integer >= 1, got 0",
        ),
        (
            lambda: chance_level("topk", [[1.0, 2.0]], [[1.0, 2.0]], 1, permutations=2.5),
            "permutations must be an integer >= 1, got 2.5",
        ),
        (lambda: chance_level("topk", [[1.0, 2.0]], [[1.0, 2.0]]), "k must be given for a top-k statistic"),
        (lambda: chance_level("kendall", [[1.0, 2.0]], [[1.0, 2.0]], 2), "got 2 for 'kendall'"),
        (lambda: chance_level("topk_published", [[1.0, 2.0]], [[1.0, 2.0]], 0), "k must be an integer >= 1"),
        (
            lambda: chance_level("kendall", [[1.0, 2.0]], [[1.0, 2.0]], seed=-1),
            "seed must be an integer >= 0",
        ),
        (lambda: summarize([[1.0]]), "values must be 1-D"),
        (lambda: significant_fraction([0.1], alpha=1.5), "alpha must be in .0, 1., got 1.5"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
