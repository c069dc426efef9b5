"""What the benchmarks share: one CPU thread, and the SST-2 test set's sentence lengths.

Import this module before numpy or torch (`from benchmarks import common` then `# isort: split`): the
thread-count variables only take effect if they are set before those libraries size their thread pools.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_variable] = "1"  # before numpy/torch size their thread pools

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SST_TEST = SHARED_DATA / "sst2" / "test.csv"
SST_TEST_SIZE = 1821
VOCAB_SIZE = 15000  # about the SST-2 vocabulary


def sst_test_lengths(rng: np.random.Generator, path: Path = SST_TEST) -> tuple[np.ndarray, str]:
    """Whitespace-token lengths of the CSV's `text` column (default: the 1,821 SST-2 test sentences), or
    synthetic ones (Poisson, mean 19) when the file is missing; and their source."""
    if path.exists():
        import pandas as pd

        lengths = pd.read_csv(path)["text"].fillna("").str.split().str.len().to_numpy()
        return np.maximum(lengths, 1), str(path)
    return np.clip(rng.poisson(19, SST_TEST_SIZE), 1, 56), "synthetic Poisson(19)"


def make_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, vocab_size: int = VOCAB_SIZE
):
    """Random-token sentences sorted by length into padded (tokens [B, T], mask [B, T]) batches of at most
    `batch_size`, as `trainables.data.length_batches` groups a split."""
    import torch

    ordered = np.sort(lengths)
    batches = []
    for start in range(0, len(ordered), batch_size):
        chunk = torch.from_numpy(ordered[start : start + batch_size])
        mask = torch.arange(int(chunk.max())) < chunk.unsqueeze(1)
        tokens = torch.from_numpy(rng.integers(1, vocab_size, size=tuple(mask.shape))) * mask
        batches.append((tokens, mask))
    return batches


def timed(work: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call; they differ when other processes share the cores."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu
