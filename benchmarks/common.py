"""What the benchmarks share: one CPU thread, and the SST-2 test set's sentence lengths.

Import this module before numpy or torch (`from benchmarks import common` then `# isort: split`): the
thread-count variables only take effect if they are set before those libraries size their thread pools.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_variable] = "1"  # before numpy/torch size their thread pools

from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SST_TEST = SHARED_DATA / "sst2" / "test.csv"
SST_TEST_SIZE = 1821


def sst_test_lengths(rng: np.random.Generator, path: Path = SST_TEST) -> tuple[np.ndarray, str]:
    """Whitespace-token lengths of the CSV's `text` column (default: the 1,821 SST-2 test sentences), or
    synthetic ones (Poisson, mean 19) when the file is missing; and their source."""
    if path.exists():
        import pandas as pd

        lengths = pd.read_csv(path)["text"].fillna("").str.split().str.len().to_numpy()
        return np.maximum(lengths, 1), str(path)
    return np.clip(rng.poisson(19, SST_TEST_SIZE), 1, 56), "synthetic Poisson(19)"
