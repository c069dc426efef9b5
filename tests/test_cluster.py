"""The multi-node path: cluster.yaml against Ray's own schema, `check_shared_storage`, and the sweep on a
real two-node Ray cluster started on this machine with `ray start` (head and worker in separate raylets).

The cluster gets its own temp dir, ports and process groups, and the fixture tears down exactly the
processes it started (never `ray stop`, which would stop every Ray instance on the machine).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from sweep import cluster
from sweep.cluster import SharedStorageError, check_shared_storage

PROJECT = Path(__file__).resolve().parent.parent
CLUSTER_YAML = PROJECT / "cluster.yaml"
RAY_CLI = Path(sys.executable).with_name("ray")
SWEEP_TIMEOUT_S = 240
GPU_WARNING = "torch sees no CUDA device"

POSITIVE = ["good", "great", "superb", "lovely", "moving", "funny", "charming", "bright"]
NEGATIVE = ["bad", "dull", "awful", "boring", "weak", "messy", "tedious", "bland"]
NOUNS = ["film", "plot", "cast", "story", "script", "score"]


# --- cluster.yaml -------------------------------------------------------------------------------------


def load_cluster_yaml() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_matches_ray_autoscaler_schema():
    """The raw file against ray/autoscaler/ray-schema.json, then Ray's own merge with the AWS defaults
    and checks that `ray up` runs before it contacts the cloud (head type, worker counts)."""
    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load_cluster_yaml()
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    validate_config(prepare_config(copy.deepcopy(config)))


def test_cluster_yaml_layout():
    """What the sweep relies on: GPU workers that scale from zero, the project at the same path on every
    node, a CUDA torch installed on workers before requirements.txt, MLflow on the head's private IP."""
    config = load_cluster_yaml()
    assert config["provider"]["type"] == "aws"
    assert config["docker"] == {}
    head = config["head_node_type"]
    workers = {name: t for name, t in config["available_node_types"].items() if name != head}
    assert workers and all(t["min_workers"] == 0 < t["max_workers"] for t in workers.values())
    assert all(t["node_config"]["InstanceType"].startswith(("g5.", "g6.", "p")) for t in workers.values())
    assert config["available_node_types"][head]["resources"] == {"CPU": 0}
    assert config["file_mounts"] == {"~/ane-sweep": ".", "~/.ray/auth_token": "~/.ray/auth_token"}

    worker_setup = config["worker_setup_commands"]
    torch_at = next(i for i, c in enumerate(worker_setup) if c.startswith("pip install torch=="))
    requirements_at = next(i for i, c in enumerate(worker_setup) if "requirements.txt" in c)
    assert torch_at < requirements_at
    assert "/whl/cpu" in config["head_setup_commands"][0]

    mlflow = next(c for c in config["head_start_ray_commands"] if "mlflow server" in c)
    for part in (
        '--host "$(cat ~/mlflow/host)"',
        "--port 5000",
        "--workers 1",
        "--artifacts-destination s3://",
    ):
        assert part in mlflow
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in mlflow and "setsid nohup" in mlflow
    assert '--backend-store-uri "sqlite:///$HOME/mlflow/mlflow.db"' in mlflow  # /home/ubuntu/mlflow/mlflow.db


# --- check_shared_storage without a cluster ----------------------------------------------------------


@pytest.fixture
def fake_cluster(monkeypatch, tmp_path):
    """check_shared_storage against a stated node count and no cluster-launcher head, unless a test
    creates the launcher file."""
    monkeypatch.delenv(cluster.SHARED_STORAGE_ENV, raising=False)
    monkeypatch.setattr(cluster, "LAUNCHER_CONFIG", tmp_path / "ray_bootstrap_config.yaml")

    def with_nodes(count: int) -> None:
        monkeypatch.setattr(cluster, "alive_node_count", lambda: count)

    return with_nodes


@pytest.mark.parametrize(
    ("path", "local"),
    [
        ("/home/ubuntu/ray_results", True),
        ("file:///mnt/results", True),
        ("relative/path", True),
        ("s3://bucket/ane-sweep", False),
        ("gs://bucket/x", False),
        ("abfs://container@account.dfs.core.windows.net/x", False),
    ],
)
def test_is_node_local(path, local):
    assert cluster.is_node_local(path) is local


def test_local_path_on_one_node_passes(fake_cluster):
    fake_cluster(1)
    check_shared_storage("/tmp/ray_results", None)


def test_local_path_on_several_nodes_raises_one_line(fake_cluster):
    fake_cluster(3)
    with pytest.raises(SharedStorageError) as error:
        check_shared_storage("/home/ubuntu/ray_results", "auto")
    message = str(error.value)
    assert "\n" not in message
    assert "'/home/ubuntu/ray_results'" in message and "at auto has 3 nodes" in message
    assert "--storage-path s3://" in message and "--shared-storage" in message
    assert isinstance(error.value, ValueError)  # a ConfigError: run_sweep.py exits 2 with the line


def test_local_path_on_launcher_head_raises_before_workers_join(fake_cluster):
    """A `ray up` cluster starts with the head alone; its autoscaler adds workers once trials wait."""
    fake_cluster(1)
    cluster.LAUNCHER_CONFIG.write_text("cluster_name: x\n")
    with pytest.raises(SharedStorageError, match="has 1 node and an autoscaler"):
        check_shared_storage("/home/ubuntu/ray_results", "auto")
    # Without --address the runner starts a Ray instance of its own, which no autoscaler grows.
    check_shared_storage("/home/ubuntu/ray_results", None)
    check_shared_storage("/home/ubuntu/ray_results", "local")


@pytest.mark.parametrize(
    "path", ["s3://bucket/ane-sweep", "gs://bucket/x", "abfs://c@a.dfs.core.windows.net/x"]
)
def test_object_store_uri_passes(fake_cluster, path):
    fake_cluster(3)
    check_shared_storage(path, "auto")


def test_declared_shared_path_passes(fake_cluster, monkeypatch):
    fake_cluster(3)
    check_shared_storage("/mnt/efs/ray_results", "auto", shared=True)
    monkeypatch.setenv(cluster.SHARED_STORAGE_ENV, "1")
    check_shared_storage("/mnt/efs/ray_results", "auto")
    with pytest.raises(SharedStorageError):  # an explicit shared=False wins over the environment
        check_shared_storage("/mnt/efs/ray_results", "auto", shared=False)


def test_needs_ray_init(monkeypatch):
    import ray

    monkeypatch.delenv(cluster.SHARED_STORAGE_ENV, raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(RuntimeError, match=r"after ray\.init"):
        check_shared_storage("/tmp/ray_results", None)


# --- a real two-node cluster ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_ports() -> list[str]:
    """A free port for each of a node's services: some default to fixed numbers (the dashboard agent's
    52365) that two nodes on one machine, or other Ray instances here, would both claim."""
    names = [
        "node-manager-port",
        "object-manager-port",
        "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port",
        "metrics-export-port",
        "runtime-env-agent-port",
    ]
    return [f"--{name}={free_port()}" for name in names]


def ray_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0", MLFLOW_DISABLE_TELEMETRY="true")
    return env


@dataclass
class TwoNodeCluster:
    """A head (1 CPU) and a worker (1 CPU, 1 declared GPU but no CUDA), each its own raylet."""

    temp_dir: Path
    address: str = ""
    groups: list[int] = field(default_factory=list)  # process groups of the `ray start` commands
    head_ip: str = ""
    gpu_node_ip: str = "127.0.0.2"  # a second loopback address, so Tune's node_ip tells the nodes apart

    def start(self, *args: str) -> None:
        command = [str(RAY_CLI), "start", f"--temp-dir={self.temp_dir}", "--disable-usage-stats"]
        command += ["--object-store-memory=100000000", *node_ports(), *args]
        process = subprocess.Popen(
            command, env=ray_env(), start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.groups.append(process.pid)
        output, _ = process.communicate(timeout=120)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{output.decode()[-3000:]}")

    def own_pids(self) -> list[int]:
        """Live processes of this cluster: in its process groups, or naming its temp dir."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                state, _, pgid = stat.rsplit(")", 1)[1].split()[:3]
                if state == "Z":
                    continue
                mine = int(pgid) in self.groups
                if not mine:
                    mine = str(self.temp_dir) in (entry / "cmdline").read_bytes().decode(errors="replace")
                if mine:
                    pids.append(int(entry.name))
        return pids

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGKILL this cluster's processes, as `ray stop --force` would, but only this cluster's (Ray's
        gcs_server and raylets take about 10 s to obey SIGTERM, and its runtime-env agents ignore it)."""
        deadline = time.monotonic() + timeout_s
        while (pids := self.own_pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        if pids:
            raise RuntimeError(f"Ray processes {pids} of the test cluster outlived SIGKILL")


@pytest.fixture(scope="module")
def two_node_cluster() -> Iterator[TwoNodeCluster]:
    # Short temp dir: Ray's socket paths under it must stay below the 107-character limit.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray_ct_", dir="/tmp"))
    ray_cluster = TwoNodeCluster(temp_dir)
    try:
        ray_cluster.start(
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={free_port()}",
            f"--dashboard-port={free_port()}",
            "--include-dashboard=false",
            "--num-cpus=1",
        )
        # The GCS address as Ray advertises it: it may pick this machine's own IP over 127.0.0.1.
        ray_cluster.address = (temp_dir / "ray_current_cluster").read_text().strip()
        ray_cluster.start(
            f"--address={ray_cluster.address}",
            f"--node-ip-address={ray_cluster.gpu_node_ip}",
            "--num-cpus=1",
            "--num-gpus=1",
        )
        ray_cluster.head_ip = ray_cluster.address.rsplit(":", 1)[0]
        yield ray_cluster
    finally:
        ray_cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def write_sst2(data_dir: Path, seed: int = 0) -> Path:
    """120 short labelled sentences as <data_dir>/sst2/{train,validation,test}.csv (text,label)."""
    rng = random.Random(seed)
    folder = data_dir / "sst2"
    folder.mkdir(parents=True)
    for split, count in (("train", 80), ("validation", 20), ("test", 20)):
        rows = ["text,label"]
        for i in range(count):
            label = i % 2
            words = POSITIVE if label else NEGATIVE
            rows.append(f"the {rng.choice(NOUNS)} was {rng.choice(words)} and {rng.choice(words)},{label}")
        (folder / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return data_dir


@pytest.fixture(scope="module")
def sst2_dir(tmp_path_factory) -> Path:
    return write_sst2(tmp_path_factory.mktemp("data"))


def run_sweep_cli(
    ray_cluster: TwoNodeCluster, out: Path, data_dir: Path, *args: str, shared: bool = True
) -> subprocess.CompletedProcess:
    """`python run_sweep.py --preset smoke --address ...` as `ray submit` runs it on a head. Both nodes
    are on this machine, so tmp_path is shared storage, declared so unless `shared` is False. Without the
    analysis after the sweep, which runs on the driver alone (tested in test_reliability.py)."""
    command = [sys.executable, str(PROJECT / "run_sweep.py"), "--preset", "smoke", "--no-analysis"]
    command += ["--address", ray_cluster.address, "--data-dir", str(data_dir)]
    command += ["--output-dir", str(out), "--tracking-uri", f"sqlite:///{out / 'mlflow.db'}"]
    command += ["--storage-path", str(out / "ray_results"), *args]
    env = {**ray_env(), "PYTHONPATH": str(PROJECT)}
    if shared:
        env[cluster.SHARED_STORAGE_ENV] = "1"
    return subprocess.run(command, cwd=out, env=env, capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S)


def assert_succeeded(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )


def trial_node_ips(experiment_dir: Path) -> dict[str, set[str]]:
    """Trial folder -> the `node_ip` of every result Ray Tune recorded for it."""
    nodes = {}
    for results in experiment_dir.glob("*/result.json"):
        lines = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
        nodes[results.parent.name] = {line["node_ip"] for line in lines}
    return nodes


def finished_runs(out: Path, experiment: str) -> list:
    """The sweep's MLflow runs, each checked for status, test metrics and the model.pt artifact."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id])
    for run in runs:
        assert run.info.status == "FINISHED", run.info.run_name
        assert any(name.startswith("test") and "accuracy" in name for name in run.data.metrics), run.data
        assert "model.pt" in {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    return runs


SHARED_STORAGE_CHECKS = """
import sys
from pathlib import Path
import pytest, ray
from sweep import cluster
from sweep.cluster import SharedStorageError, check_shared_storage

cluster.LAUNCHER_CONFIG = Path("/nonexistent/ray_bootstrap_config.yaml")
address = sys.argv[1]
ray.init(address=address, include_dashboard=False, log_to_driver=False)
assert cluster.alive_node_count() == 2
with pytest.raises(SharedStorageError, match="has 2 nodes"):
    check_shared_storage("/home/ubuntu/ray_results", address)
check_shared_storage("s3://bucket/ane-sweep/ray_results", address)
check_shared_storage("/mnt/nfs/ray_results", address, shared=True)
print("CHECKED")
"""


@pytest.mark.ray
def test_check_shared_storage_on_two_nodes(two_node_cluster):
    """In a driver of its own: Ray reads RAY_AUTH_MODE (token, as the cluster wants) when first imported."""
    env = {k: v for k, v in ray_env().items() if k != cluster.SHARED_STORAGE_ENV}
    result = subprocess.run(
        [sys.executable, "-c", SHARED_STORAGE_CHECKS, two_node_cluster.address],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0 and "CHECKED" in result.stdout, result.stderr[-3000:]


@pytest.mark.ray
def test_smoke_sweep_runs_trials_on_both_nodes(two_node_cluster, sst2_dir, tmp_path):
    """Two 1-CPU trials at once on two 1-CPU nodes: one per node, each with its MLflow run and model."""
    assert_succeeded(run_sweep_cli(two_node_cluster, tmp_path, sst2_dir))

    nodes = trial_node_ips(tmp_path / "ray_results" / "smoke")
    assert len(nodes) == 2 and all(len(ips) == 1 for ips in nodes.values()), nodes
    assert set().union(*nodes.values()) == {two_node_cluster.head_ip, two_node_cluster.gpu_node_ip}
    runs = finished_runs(tmp_path, "smoke")
    assert sorted(run.info.run_name for run in runs) == sorted(nodes)
    assert {run.data.tags["device"] for run in runs} == {"cpu"}
    assert {run.info.run_name: {run.data.tags["node_ip"]} for run in runs} == nodes


@pytest.mark.ray
def test_gpu_trials_without_cuda_fall_back_to_cpu(two_node_cluster, sst2_dir, tmp_path):
    """`--gpus-per-trial 0.5`: both trials share the worker's declared GPU; torch sees none, so each
    trial logs a warning and trains on the CPU (MLflow tag device=cpu)."""
    gpu_args = ["--name", "smoke-gpu", "--gpus-per-trial", "0.5", "--cpus-per-trial", "0.5"]
    assert_succeeded(run_sweep_cli(two_node_cluster, tmp_path, sst2_dir, *gpu_args))

    nodes = trial_node_ips(tmp_path / "ray_results" / "smoke-gpu")
    assert len(nodes) == 2 and set().union(*nodes.values()) == {two_node_cluster.gpu_node_ip}, nodes
    runs = finished_runs(tmp_path, "smoke-gpu")
    assert len(runs) == 2 and {run.data.tags["device"] for run in runs} == {"cpu"}
    worker_logs = two_node_cluster.temp_dir.glob("session_*/logs/worker-*.err")
    warnings = [line for log in worker_logs for line in log.read_text().splitlines() if GPU_WARNING in line]
    assert len(warnings) >= 2, "expected choose_device's warning from each GPU trial in the worker logs"


@pytest.mark.ray
def test_sweep_refuses_node_local_storage_on_two_nodes(two_node_cluster, sst2_dir, tmp_path):
    """Without the shared declaration, run_sweep.py stops before any trial with the one-line error."""
    result = run_sweep_cli(two_node_cluster, tmp_path, sst2_dir, shared=False)
    assert result.returncode == 2, f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("run_sweep.py: error: storage path") and "is local to one machine" in error
    assert not list((tmp_path / "ray_results").glob("smoke/*/result.json"))


# --- check_trial_fits without a cluster ----------------------------------------------------------------


def test_launcher_node_shapes_read_the_autoscaler_config(fake_cluster):
    """The node types of cluster.yaml as `ray up` writes them to the head, resources filled in from the
    instance types; nothing when this is no `ray up` head or its config cannot be read."""
    assert cluster.launcher_node_shapes() == []
    cluster.LAUNCHER_CONFIG.write_text("available_node_types: [broken\n")
    assert cluster.launcher_node_shapes() == []
    config = load_cluster_yaml()
    config["available_node_types"]["gpu_worker"]["resources"] = {"CPU": 4, "GPU": 1, "memory": 10**10}
    cluster.LAUNCHER_CONFIG.write_text(yaml.safe_dump(config))
    assert sorted(cluster.launcher_node_shapes()) == [(0.0, 0.0), (4.0, 1.0)]


@pytest.mark.parametrize(
    ("cpus", "gpus", "shapes", "problem"),
    [
        (2, 0, [(2.0, 0.0)], None),
        (0.5, 0.25, [(1.0, 0.0), (1.0, 1.0)], None),  # fractions: four trials share the GPU
        (
            4,
            0,
            [(2.0, 0.0), (1.0, 0.0)],
            "one trial (--cpus-per-trial 4, --gpus-per-trial 0) needs a node with 4 CPUs and 0 GPUs; "
            "the largest node of the Ray cluster has 2 CPUs and 0 GPUs",
        ),
        (
            4,
            1,
            [(8.0, 0.0), (4.0, 0.5), (2.0, 0.0)],
            "one trial (--cpus-per-trial 4, --gpus-per-trial 1) needs a node with 4 CPUs and 1 GPU; "
            "the largest nodes of the Ray cluster have 8 CPUs and 0 GPUs, or 4 CPUs and 0.5 GPUs",
        ),
    ],
)
def test_trial_fit_problem_names_the_request_and_the_largest_nodes(cpus, gpus, shapes, problem):
    assert cluster.trial_fit_problem(cpus, gpus, shapes) == problem
