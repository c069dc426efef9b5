"""Shared fixtures: tiny generated datasets in the `../shared/datasets` layout, and one local Ray cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_sst_splits


@pytest.fixture
def sst_dir(tmp_path: Path) -> Path:
    """A `--data-dir` with a small learnable `sst2/{train,validation,test}.csv`."""
    return write_sst_splits(tmp_path / "data")


@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray instance (2 CPUs) per test module, shut down after it so that modules which
    connect to clusters of their own (test_cluster.py) find no driver already attached."""
    import ray

    from sweep import environment
    from sweep.runner import runtime_env

    variables = environment.set_up(tracking_uri="sqlite://")
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=runtime_env(variables))
    yield ray
    ray.shutdown()
