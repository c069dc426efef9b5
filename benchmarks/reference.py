"""Slow, literal implementations that the vectorised correlations are checked (and benchmarked) against."""

import itertools
import math

import scipy.stats


def top_k_lists(x, y, k):
    """The top-``k`` positions of ``x`` and of ``y``, by descending score, ties to the lower index."""

    def top(scores):
        return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[: min(k, len(scores))]

    return top(x), top(y)


def reference_top_k_tau(x, y, k, p=0.5):
    """Fagin et al.'s K^(p), case by case over pairs, rescaled to [-1, 1]: the slow cross-check."""
    top1, top2 = top_k_lists(x, y, k)
    k = len(top1)
    pos1 = {item: rank for rank, item in enumerate(top1)}
    pos2 = {item: rank for rank, item in enumerate(top2)}
    distance = 0.0
    for i, j in itertools.combinations(sorted(set(top1) | set(top2)), 2):
        if i in pos1 and j in pos1 and i in pos2 and j in pos2:  # Case 1: ordered by both lists.
            distance += (pos1[i] < pos1[j]) != (pos2[i] < pos2[j])
        elif i in pos1 and j in pos1 and (i in pos2) != (j in pos2):  # Case 2: both in list 1.
            inside = i if i in pos2 else j
            outside = j if inside == i else i
            distance += pos1[outside] < pos1[inside]
        elif i in pos2 and j in pos2 and (i in pos1) != (j in pos1):  # Case 2: both in list 2.
            inside = i if i in pos1 else j
            outside = j if inside == i else i
            distance += pos2[outside] < pos2[inside]
        elif (i in pos1) != (j in pos1) and (i in pos2) != (j in pos2):  # Case 3: one only in each list.
            distance += 1
        else:  # Case 4: both in one list, neither in the other.
            distance += p
    return 1 - 2 * distance / (k * k + p * k * (k - 1))


def reference_published_top_k_tau(x, y, k, p=0.5):
    """Neely & Schouten's released top-k tau, term by term over the sets Z, S, T: the slow cross-check."""
    top1, top2 = top_k_lists(x, y, k)
    k = len(top1)
    common = sorted(set(top1) & set(top2))
    only1, only2 = set(top1) - set(common), set(top2) - set(common)
    z = len(common)
    x_common, y_common = [x[i] for i in common], [y[i] for i in common]
    term1 = 0.0
    if len(set(x_common)) > 1 and len(set(y_common)) > 1:  # Else tau-b is undefined and term1 is 0.
        tau_b = scipy.stats.kendalltau(x_common, y_common).statistic
        term1 = (1 - (tau_b / 2 + 1 / 2)) * z**2
    term2 = sum(x[i] < x[j] for i in common for j in only1) + sum(y[i] < y[j] for i in common for j in only2)
    term4 = 2 * p * math.comb(k - z, 2)
    return 1 - 2 * (term1 + term2 + term4) / (len(only1) + len(only2) + z) ** 2
