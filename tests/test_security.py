"""Secure by default: a sweep's local Ray instance keeps Ray's token authentication on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweep import environment
from sweep.runner import ray_instance

pytestmark = pytest.mark.ray

CONNECT = (
    "import sys, ray; ray.init(address=sys.argv[1]); "
    "print('CONNECTED', ray.get(ray.remote(lambda: 1).remote()))"
)


def connect(address: str, home: Path | None, mode: str | None) -> subprocess.CompletedProcess:
    """A separate process attaching to `address` with RAY_AUTH_MODE `mode` (None: unset); with `home`,
    one that has no Ray token in ~/.ray."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    if home is not None:
        env["HOME"] = str(home)
    if mode is not None:
        env["RAY_AUTH_MODE"] = mode
    return subprocess.run(
        [sys.executable, "-c", CONNECT, address], env=env, capture_output=True, text=True, timeout=180
    )


def test_a_client_without_the_token_is_refused_by_a_sweeps_ray_instance(tmp_path: Path) -> None:
    import ray

    assert "RAY_AUTH_MODE" not in environment.set_up("sqlite://")
    with ray_instance(None, environment.set_up("sqlite://")):
        address = ray.get_runtime_context().gcs_address
        outsiders = [connect(address, home=tmp_path, mode=mode) for mode in (None, "token", "disabled")]
        owner = connect(address, home=None, mode="token")  # the same user, with the token Ray saved in ~/.ray
    for outsider in outsiders:
        assert outsider.returncode != 0 and "CONNECTED" not in outsider.stdout
        assert "token" in outsider.stderr and "authentication" in outsider.stderr.lower()  # why: no token
    assert owner.returncode == 0 and "CONNECTED 1" in owner.stdout, owner.stderr[-2000:]
