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


def connect(address: str, home: Path | None, mode: str | None) -> subprocess.Popen:
    """Start a separate process attaching to `address` with RAY_AUTH_MODE `mode` (None: unset); with
    `home`, one that has no Ray token in ~/.ray."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    if home is not None:
        env["HOME"] = str(home)
    if mode is not None:
        env["RAY_AUTH_MODE"] = mode
    command = [sys.executable, "-c", CONNECT, address]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout_s: float = 180) -> subprocess.CompletedProcess:
    """Wait for a `connect` process (killed after `timeout_s`): its exit status and output."""
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_a_client_without_the_token_is_refused_by_a_sweeps_ray_instance(tmp_path: Path) -> None:
    import ray

    assert "RAY_AUTH_MODE" not in environment.set_up("sqlite://")
    with ray_instance(None, environment.set_up("sqlite://")):
        address = ray.get_runtime_context().gcs_address
        # All at once: a refused client retries for about 20 s before it gives up.
        started = [connect(address, home=tmp_path, mode=mode) for mode in (None, "token", "disabled")]
        started.append(connect(address, home=None, mode="token"))  # the same user, with the token in ~/.ray
        *outsiders, owner = [finish(process) for process in started]
    for outsider in outsiders:
        assert outsider.returncode != 0 and "CONNECTED" not in outsider.stdout
        assert "token" in outsider.stderr and "authentication" in outsider.stderr.lower()  # why: no token
    assert owner.returncode == 0 and "CONNECTED 1" in owner.stdout, owner.stderr[-2000:]
