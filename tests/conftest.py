"""Shared fixtures: tiny generated datasets in the `../shared/datasets` layout, and one local Ray cluster."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

POSITIVE = ["good", "great", "superb", "lovely", "fun", "moving", "brilliant", "charming"]
NEGATIVE = ["bad", "awful", "dull", "boring", "weak", "messy", "tedious", "bland"]
NEUTRAL = ["the", "film", "a", "story", "with", "and", "plot", "actors", "is", "of", "this", "movie"]


def sentiment_rows(n: int, seed: int, min_len: int = 4, max_len: int = 14) -> list[tuple[str, int]]:
    """`n` sentences whose label is given by their sentiment words: learnable by a tiny model."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 2
        cue = POSITIVE if label else NEGATIVE
        length = int(rng.integers(min_len, max_len + 1))
        words = list(rng.choice(NEUTRAL, size=length))
        for position in rng.choice(length, size=max(1, length // 4), replace=False):
            words[position] = str(rng.choice(cue))
        rows.append((" ".join(words), label))
    return rows


def write_csv(path: Path, rows: list[tuple[str, int]], header: tuple[str, str] = ("text", "label")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def sst_dir(tmp_path: Path) -> Path:
    """A `--data-dir` with a small learnable `sst2/{train,validation,test}.csv`."""
    root = tmp_path / "data"
    for seed, (split, n) in enumerate({"train": 240, "validation": 60, "test": 60}.items()):
        write_csv(root / "sst2" / f"{split}.csv", sentiment_rows(n, seed))
    return root


@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray instance (2 CPUs) per test module, shut down after it so that modules which
    connect to clusters of their own (test_cluster.py) find no driver already attached."""
    import ray

    from sweep.runner import runtime_env

    ray.init(num_cpus=2, include_dashboard=False, runtime_env=runtime_env())
    yield ray
    ray.shutdown()
