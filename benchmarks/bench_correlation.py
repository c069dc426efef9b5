"""Time the per-instance correlations of one SST-sized test set, and their chance levels, on one thread.

Run from the repository root: ``python -m benchmarks.bench_correlation``. Prints ``name: value`` lines.
"""

from benchmarks import common  # first: it pins numpy to one thread before numpy loads

# isort: split
import itertools
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from benchmarks.reference import reference_top_k_tau  # the slow reference the tests check against
from trainables.correlation import (
    batch_kendall_tau,
    batch_kendall_tau_b,
    batch_published_top_k_tau,
    batch_top_k_kendall_tau,
    chance_level,
)

N_MEASURES = 3  # attention, gradients, leave-one-out: 3 pairs to correlate
REPEATS = 7  # The fast-versus-reference timings keep the best of this many runs.
PERMUTATIONS = 20  # Permutations per instance behind each chance level.


def reference_batch(a: list[np.ndarray], b: list[np.ndarray], ks: list[int]) -> np.ndarray:
    return np.array([reference_top_k_tau(x, y, k) for x, y, k in zip(a, b, ks)])


def best_of(repeats: int, run: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    """Shortest wall time of ``repeats`` calls of ``run``, and its result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def over_pairs(measures: list[list[np.ndarray]], run: Callable[[list, list], object]) -> float:
    """Wall time of ``run(a, b)`` for every pair of measures."""
    start = time.perf_counter()
    for a, b in itertools.combinations(measures, 2):
        run(a, b)
    return time.perf_counter() - start


def main() -> None:
    rng = np.random.default_rng(0)
    lengths, source = common.sst_test_lengths(rng)
    n_instances = len(lengths)
    measures = [[rng.random(n) for n in lengths] for _ in range(N_MEASURES)]
    k_mean = max(1, round(lengths.mean()))
    k_instance = np.maximum(1, np.ceil(0.2 * lengths)).astype(np.int64)  # e.g. top 20% of each sentence
    print(f"lengths_source: {source}")
    print(f"instances: {n_instances}")
    print(f"mean_length: {lengths.mean():.2f}")
    print(f"max_length: {lengths.max()}")
    print(f"k_mean_length: {k_mean}")
    print(f"k_per_instance_mean: {k_instance.mean():.2f}")

    kendall_s = over_pairs(measures, batch_kendall_tau)
    top_k_s = over_pairs(
        measures, lambda a, b: [batch_top_k_kendall_tau(a, b, k) for k in (k_mean, k_instance)]
    )
    print(f"kendall_tau_3_pairs_s: {kendall_s:.3f}")
    print(f"top_k_tau_3_pairs_x_2_k_s: {top_k_s:.3f}")
    print(f"all_correlations_s: {kendall_s + top_k_s:.3f}")
    tau_b_s = over_pairs(measures, batch_kendall_tau_b)
    published_s = over_pairs(
        measures, lambda a, b: [batch_published_top_k_tau(a, b, k) for k in (k_mean, k_instance)]
    )
    print(f"kendall_tau_b_no_p_value_3_pairs_s: {tau_b_s:.3f}")
    print(f"published_top_k_tau_3_pairs_x_2_k_s: {published_s:.3f}")

    a, b = measures[0], measures[1]
    for name, k in (("per_instance_k", k_instance), ("mean_length_k", k_mean)):
        ks = [int(k_i) for k_i in np.broadcast_to(k, (n_instances,))]
        fast_s, fast = best_of(REPEATS, partial(batch_top_k_kendall_tau, a, b, k))
        slow_s, slow = best_of(REPEATS, partial(reference_batch, a, b, ks))
        defined = ~np.isnan(fast)  # The reference knows no NaN rule (length 1, constant vectors).
        print(f"top_k_{name}_vectorised_s: {fast_s:.4f}")
        print(f"top_k_{name}_reference_loop_s: {slow_s:.4f}")
        print(f"top_k_{name}_speedup: {slow_s / fast_s:.1f}")
        print(f"top_k_{name}_max_abs_difference: {np.abs(fast - slow)[defined].max():.1e}")

    print(f"chance_permutations: {PERMUTATIONS}")
    chance_total = 0.0
    for name, statistic, k in (
        ("kendall", "kendall", None),
        ("topk_avg", "topk", k_mean),
        ("topk_nz", "topk", k_instance),
        ("topk_ns_avg", "topk_published", k_mean),
        ("topk_ns_nz", "topk_published", k_instance),
    ):
        seconds = min(
            over_pairs(measures, partial(chance_level, statistic, k=k, permutations=PERMUTATIONS))
            for _ in range(3)
        )
        chance_total += seconds
        print(f"chance_{name}_3_pairs_s: {seconds:.3f}")
    print(f"chance_all_3_pairs_s: {chance_total:.3f}")


if __name__ == "__main__":
    main()
