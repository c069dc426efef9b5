"""Shared fixtures: tiny generated datasets in the `../shared/datasets` layout, one local Ray cluster per
module, and one smoke sweep for the whole session."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import NamedTuple

import pytest

from sweep.config import load_preset
from sweep.runner import SweepOptions, SweepResult, run_sweep
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


class SmokeSweep(NamedTuple):
    """The smoke preset run once: its result, where it read and wrote, and what it printed."""

    result: SweepResult
    options: SweepOptions
    printed: str


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory) -> SmokeSweep:
    """The smoke preset (tanh attention, softmax and sparsemax, seed 1) on `write_sst_splits` data, run
    once per session for the tests that only read it (test_sweep.py, test_analysis.py). It joins the Ray
    instance of the module that first asks for it, or starts and stops one of its own as a sweep does."""
    data = write_sst_splits(tmp_path_factory.mktemp("smoke_data"))
    options = SweepOptions(data_dir=data, output_dir=tmp_path_factory.mktemp("smoke_out"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = run_sweep(load_preset("smoke"), options)
    return SmokeSweep(result, options, printed.getvalue())
