"""Time the per-instance correlations of one SST-sized test set on one thread.

Run from the repository root: ``python -m benchmarks.bench_correlation``. Prints ``name: value`` lines.
"""

from benchmarks import common  # first: it pins numpy to one thread before numpy loads

# isort: split
import itertools
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from tests.reference import reference_top_k_tau  # the slow reference the tests check against
from trainables.correlation import batch_kendall_tau, batch_top_k_kendall_tau

N_MEASURES = 3  # attention, gradients, leave-one-out: 3 pairs to correlate
REPEATS = 7  # The fast-versus-reference timings keep the best of this many runs.


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

    start = time.perf_counter()
    for a, b in itertools.combinations(measures, 2):
        batch_kendall_tau(a, b)
    kendall_s = time.perf_counter() - start
    start = time.perf_counter()
    for a, b in itertools.combinations(measures, 2):
        batch_top_k_kendall_tau(a, b, k_mean)
        batch_top_k_kendall_tau(a, b, k_instance)
    top_k_s = time.perf_counter() - start
    print(f"kendall_tau_3_pairs_s: {kendall_s:.3f}")
    print(f"top_k_tau_3_pairs_x_2_k_s: {top_k_s:.3f}")
    print(f"all_correlations_s: {kendall_s + top_k_s:.3f}")

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


if __name__ == "__main__":
    main()
