"""The cluster launcher path on one machine: cluster.local.yaml, generated from cluster.yaml, and
`python -m sweep.local_cluster up / submit / down`, which do the head's part of `ray up`, `ray submit` and
`ray down` for it (sweep/local_cluster.py says why `ray up` itself cannot start Ray's fake provider).

The end-to-end test runs them as docs/CLUSTER.md tells a user to, with the head in a folder of its own and
every port it opens moved to a free one, so that it neither meets nor stops any other Ray instance here;
it stops only the processes of its own folder, also when it fails.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
import yaml

from sweep import local_cluster
from sweep.local_cluster import (
    CLOUD_FILE,
    LOCAL_FILE,
    LOCAL_KEYS,
    LauncherError,
    cluster_processes,
    listening_sockets,
    load_local_config,
    local_config,
    mount_files,
    render,
    stop_processes,
)
from tests.helpers import write_sst_splits

PROJECT = Path(__file__).resolve().parent.parent
UP_TIMEOUT_S = 180
SWEEP_TIMEOUT_S = 300


def cloud() -> dict:
    return yaml.safe_load(CLOUD_FILE.read_text())


def local() -> dict:
    return yaml.safe_load(LOCAL_FILE.read_text())


# --- cluster.local.yaml against cluster.yaml ------------------------------------------------------------


def test_local_file_is_generated_from_cluster_yaml():
    assert LOCAL_FILE.read_text() == render(local_config(cloud())), (
        "cluster.local.yaml is out of date: run python -m sweep.local_cluster write"
    )
    assert local() == local_config(cloud())  # the folded commands read back as generated


def test_local_file_shares_every_key_but_the_cloud_specific_ones():
    """The same cluster shape, mounts and ~/.bashrc line; start commands that differ in exactly three
    places: the fake provider's variable on `ray start`, MLflow's address, MLflow's artifact store."""
    cloud_config, local_config_ = cloud(), local()
    assert list(local_config_) == list(cloud_config)
    assert {key for key in cloud_config if cloud_config[key] != local_config_[key]} == set(LOCAL_KEYS)
    for name, node_type in cloud_config["available_node_types"].items():
        fake = local_config_["available_node_types"][name]
        assert {k: v for k, v in fake.items() if k not in ("node_config", "resources")} == {
            k: v for k, v in node_type.items() if k not in ("node_config", "resources")
        }
    worker = local_config_["available_node_types"]["gpu_worker"]
    assert worker["min_workers"] == 0 and worker["resources"]["GPU"] == 1
    assert local_config_["setup_commands"][1:] == [
        c for c in cloud_config["setup_commands"] if "~/.bashrc" in c
    ]

    cloud_start = [c for c in cloud_config["head_start_ray_commands"] if c != "ray stop"]
    local_start = local_config_["head_start_ray_commands"]
    assert len(local_start) == len(cloud_start)
    differing = [(c, lc) for c, lc in zip(cloud_start, local_start) if c != lc]
    assert [lc.replace("RAY_FAKE_CLUSTER=1 ", "") for c, lc in differing if "ray start" in c] == [
        c for c, _ in differing if "ray start" in c
    ]
    assert [lc for c, lc in differing if "ray start" not in c and "mlflow server" not in c] == [
        "mkdir -p ~/mlflow && echo 127.0.0.1 > ~/mlflow/host"
    ]
    mlflow = [(c, lc) for c, lc in differing if "mlflow server" in c]
    assert len(mlflow) == 1 and len(differing) == 3
    assert re.sub(r"--artifacts-destination \S+", "", mlflow[0][0]) == re.sub(
        r"--artifacts-destination \S+", "", mlflow[0][1]
    )


def test_local_file_passes_ray_schema_and_declares_the_fake_provider():
    config = load_local_config(LOCAL_FILE)
    assert config["provider"]["type"] == "fake_multinode"
    assert config["provider"]["gcs_address"] == "127.0.0.1:6379"


def test_dashboard_and_mlflow_listen_on_no_public_interface():
    """Both files: the dashboard on loopback; MLflow on the private IP (cloud) or loopback (local); no
    command binds anything to 0.0.0.0."""
    for config in (cloud(), local()):
        start = config["head_start_ray_commands"]
        assert "--dashboard-host=127.0.0.1" in next(c for c in start if "ray start --head" in c)
        assert '--host "$(cat ~/mlflow/host)"' in next(c for c in start if "mlflow server" in c)
        assert not [c for c in start + config["worker_start_ray_commands"] if "0.0.0.0" in c]
    assert 'hostname -I | cut -d " " -f 1 > ~/mlflow/host' in " ".join(cloud()["head_start_ray_commands"])


@pytest.fixture
def aws_inbound_rules(monkeypatch):
    """The function of Ray's AWS provider that writes the inbound rules of the security group `ray up`
    creates. Its module imports boto3, the AWS SDK, which is not installed here and which this function
    never calls: stubbed when missing, and the module forgotten afterwards, so nothing else gets it."""
    stub = importlib.util.find_spec("boto3") is None
    if stub:
        for name in ("boto3", "boto3.exceptions", "boto3.resources", "boto3.resources.base"):
            monkeypatch.setitem(sys.modules, name, mock.MagicMock(name=name, __version__="1.40.0"))
        for name in ("botocore", "botocore.client", "botocore.config"):
            monkeypatch.setitem(sys.modules, name, mock.MagicMock(name=name))
    before = set(sys.modules)
    from ray.autoscaler._private.aws.config import _create_default_inbound_rules

    yield _create_default_inbound_rules
    if stub:
        for name in set(sys.modules) - before:
            del sys.modules[name]


def test_aws_security_group_lets_in_only_ssh_from_outside(aws_inbound_rules):
    """The rules for cluster.yaml: everything between the cluster's nodes, and from any address TCP 22
    only, so not MLflow's 5000, the dashboard's 8265 or Ray's ports."""
    extra = cloud()["provider"].get("security_group", {}).get("IpPermissions", [])
    rules = aws_inbound_rules({"sg-cluster"}, extra)
    from_addresses = [rule for rule in rules if rule.get("IpRanges")]
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in from_addresses] == [("tcp", 22, 22)]
    assert [pair["GroupId"] for rule in rules for pair in rule.get("UserIdGroupPairs", [])] == ["sg-cluster"]


# --- bad input: one line, nothing started ------------------------------------------------------------------


def test_up_refuses_a_cloud_config(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        local_cluster.main(["up", str(CLOUD_FILE), "--dir", str(tmp_path / "head")])
    error = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "\n" not in error
    assert "provider type 'aws'" in error and "ray up" in error
    assert not (tmp_path / "head").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_workers": "four"}, "'four' is not of type 'integer'"),
        ({"head_node_type": "missing"}, "`head_node_type` must be one of `available_node_types`"),
    ],
)
def test_a_config_that_ray_would_refuse_is_one_line(tmp_path, change, message):
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({**local(), **change}))
    with pytest.raises(LauncherError) as error:
        load_local_config(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_file_mounts_refuse_escaping_targets_and_missing_sources(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    for target in ("~/../outside", "/etc/ane-sweep", "~/a/../../outside"):
        with pytest.raises(LauncherError, match="must be a path under ~/ on the head"):
            mount_files({target: str(tmp_path)}, home)
    with pytest.raises(LauncherError, match=r"does not exist \(create it: RAY_AUTH_MODE=token ray get-auth"):
        mount_files({"~/.ray/auth_token": str(tmp_path / "no_token")}, home)
    assert mount_files({"~/project": str(tmp_path)}, home) == [f"~/project -> {tmp_path}"]
    assert (home / "project").resolve() == tmp_path.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]  # nothing written outside the head


def test_up_refuses_a_folder_that_others_may_write(tmp_path, capsys):
    """Whoever may write in the head's folder controls its ~/.bashrc, and so the commands run there."""
    folder = tmp_path / "head"
    (folder / "home").mkdir(parents=True)
    (folder / "home").chmod(0o777)
    with pytest.raises(SystemExit) as exit_:
        local_cluster.main(["up", str(LOCAL_FILE), "--dir", str(folder)])
    assert exit_.value.code == 2
    assert f"{folder / 'home'} belongs to another user or others may write to it" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["home"] and not list((folder / "home").iterdir())


def test_submit_needs_a_running_cluster_and_down_stops_nothing_else(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        local_cluster.main(["submit", "--dir", str(tmp_path), "run_sweep.py", "--", "--preset", "smoke"])
    assert exit_.value.code == 2 and "no cluster runs in" in capsys.readouterr().err
    assert local_cluster.main(["down", "--dir", str(tmp_path)]) == 0
    assert "Stopped 0 processes" in capsys.readouterr().out


def test_a_sweep_on_a_tracking_server_points_at_its_ui():
    """The driver's last lines on a cluster name the server's UI, not an `mlflow ui` for an HTTP store."""
    import run_sweep

    assert (
        run_sweep.where_to_compare("http://10.0.1.23:5000")
        == "http://10.0.1.23:5000 (the tracking server's UI)"
    )
    assert " ui --backend-store-uri sqlite:////x/mlflow.db --host 127.0.0.1 " in run_sweep.where_to_compare(
        "sqlite:////x/mlflow.db"
    )


# --- the processes and sockets of a cluster's folder -------------------------------------------------------


def test_stop_processes_stops_only_those_of_its_folder(tmp_path):
    mine, other = tmp_path / "cluster", tmp_path / "other"
    mine.mkdir(), other.mkdir()
    inside = subprocess.Popen(["sleep", "60"], cwd=mine)
    with (mine / "log").open("w") as log:
        holding = subprocess.Popen(["sleep", "60"], stdout=log)  # a file open in it, cwd elsewhere
    outside = subprocess.Popen(["sleep", "60"], cwd=other)
    try:
        assert sorted(cluster_processes(mine)) == sorted([inside.pid, holding.pid])
        assert stop_processes(mine) == 2
        assert inside.wait(5) and holding.wait(5)  # killed by a signal: non-zero status
        assert outside.poll() is None and cluster_processes(mine) == []
    finally:
        for process in (inside, holding, outside):
            process.kill()
            process.wait()


def test_listening_sockets_reads_address_port_and_owner():
    with socket.socket() as loopback, socket.socket(socket.AF_INET6) as any6:
        loopback.bind(("127.0.0.1", 0))
        loopback.listen()
        any6.bind(("::", 0))
        any6.listen()
        found = listening_sockets([os.getpid()])
        assert ("127.0.0.1", loopback.getsockname()[1], os.getpid()) in found
        assert ("::", any6.getsockname()[1], os.getpid()) in found
        assert ("127.0.0.1", loopback.getsockname()[1], None) in listening_sockets()


# --- the launcher path end to end --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Head:
    """A head folder, the user's home beside it (with the cluster's Ray token), and the config to start."""

    folder: Path
    laptop: Path
    config: Path
    ports: dict[str, int]

    def run(self, *args: str, timeout: int) -> subprocess.CompletedProcess:
        """`python -m sweep.local_cluster ARGS` from the project root, as the user at `laptop`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        # An update every second instead of every 5: the scale-up starts sooner.
        env.update(HOME=str(self.laptop), RAY_USAGE_STATS_ENABLED="0", AUTOSCALER_UPDATE_INTERVAL_S="1")
        command = [sys.executable, "-m", "sweep.local_cluster", *args]
        return subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout)


def with_free_ports(config: dict, ports: dict[str, int]) -> dict:
    """cluster.local.yaml with every port of the head moved to a free one: other Ray instances or MLflow
    servers on this machine may hold the defaults (6379, 8076, 8265, 5000, 52365, ...)."""
    moved = {
        "--port=6379": f"--port={ports['gcs']}",
        "--object-manager-port=8076": f"--object-manager-port={ports['object_manager']}",
        "--port 5000": f"--port {ports['mlflow']}",
        ":5000": f":{ports['mlflow']}",
    }
    extra = " ".join(
        f"--{name.replace('_', '-')}={port}"
        for name, port in ports.items()
        if name not in ("gcs", "object_manager", "mlflow")
    )
    commands = []
    for command in config["head_start_ray_commands"]:
        for old, new in moved.items():
            command = command.replace(old, new)
        commands.append(f"{command} {extra}" if "ray start --head" in command else command)
    provider = {**config["provider"], "gcs_address": f"127.0.0.1:{ports['gcs']}"}
    return {**config, "provider": provider, "head_start_ray_commands": commands}


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""  # gone meanwhile


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True  # gone meanwhile


@pytest.fixture
def head() -> Iterator[Head]:
    # Short: Ray's socket paths under <folder>/tmp/ray/session_*/sockets/ must stay below 108 characters.
    root = Path(tempfile.mkdtemp(prefix="ane-lc-", dir="/tmp"))
    folder, laptop = root / "head", root / "laptop"
    token = laptop / ".ray" / "auth_token"
    token.parent.mkdir(parents=True)
    token.write_text(secrets.token_hex(32))  # what `ray get-auth-token --generate` writes
    token.chmod(0o600)
    names = ("gcs", "object_manager", "mlflow", "dashboard_port", "node_manager_port")
    names += ("dashboard_agent_listen_port", "dashboard_agent_grpc_port", "metrics_export_port")
    ports = {name: free_port() for name in (*names, "runtime_env_agent_port")}
    config = root / "cluster.local.yaml"
    config.write_text(yaml.safe_dump(with_free_ports(local(), ports), sort_keys=False))
    try:
        yield Head(folder, laptop, config, ports)
    finally:
        try:
            stop_processes(folder)  # `down` does this; again here when the test failed before it
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.mark.ray
def test_launcher_path_on_one_machine(head, tmp_path):
    """up: the head's Ray and MLflow start, the dashboard and MLflow on 127.0.0.1 only. submit: the smoke
    sweep with half a GPU per trial makes the autoscaler add a GPU worker, and every trial runs there,
    with its run FINISHED in the head's MLflow server. down: no process and no port of the cluster left."""
    from mlflow.tracking import MlflowClient
    from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

    started = head.run("up", str(head.config), "--dir", str(head.folder), timeout=UP_TIMEOUT_S)
    assert started.returncode == 0, f"{started.stdout[-4000:]}\n{started.stderr[-4000:]}"
    mlflow_uri = f"http://127.0.0.1:{head.ports['mlflow']}"
    assert f"MLflow tracking server: {mlflow_uri}" in started.stdout

    pids = cluster_processes(head.folder)
    seen = set(pids)  # every process of the cluster met along the way must be gone after `down`
    sockets = listening_sockets(pids)
    for port in (head.ports["mlflow"], head.ports["dashboard_port"]):
        assert {address for address, p, _ in sockets if p == port} <= {"127.0.0.1"}, sockets
    assert {address for address, p, _ in sockets if p == head.ports["mlflow"]} == {"127.0.0.1"}
    dashboards = [command for command in map(cmdline, pids) if "dashboard/dashboard.py" in command]
    assert len(dashboards) == 1 and "--host=127.0.0.1" in dashboards[0].split()

    sweep = head.run(
        "submit", "--dir", str(head.folder), "run_sweep.py", "--",
        "--preset", "smoke", "--address", "auto", "--gpus-per-trial", "0.5", "--tracking-uri", mlflow_uri,
        "--shared-storage", "--data-dir", str(write_sst_splits(tmp_path / "data")),
        "--output-dir", str(head.folder / "home" / "outputs"), "--no-analysis",
        timeout=SWEEP_TIMEOUT_S,
    )  # fmt: skip
    assert sweep.returncode == 0, f"{sweep.stdout[-4000:]}\n{sweep.stderr[-4000:]}"
    assert "Sweep 'smoke': 2 trials: 2 finished, 0 failed, 0 unfinished" in sweep.stdout

    seen.update(cluster_processes(head.folder))  # now with the worker node's
    client = MlflowClient(tracking_uri=mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    assert len(runs) == 2 and {run.info.status for run in runs} == {"FINISHED"}
    assert {run.data.tags["device"] for run in runs} == {"cpu"}  # a declared GPU, no CUDA device
    assert "Ray assigned GPU(s) [0] but torch sees no CUDA device" in sweep.stdout + sweep.stderr
    workers = {run.data.tags["node_id"] for run in runs}
    # The fake provider numbers the nodes the autoscaler starts: the head ...00000, workers ...00001 on.
    assert all(re.fullmatch(FAKE_HEAD_NODE_ID[:-5] + r"\d{5}", node) for node in workers), workers
    assert FAKE_HEAD_NODE_ID not in workers
    assert all("model.pt" in {a.path for a in client.list_artifacts(run.info.run_id)} for run in runs)
    monitor_log = next((head.folder / "tmp" / "ray").glob("session_*/logs/monitor.log")).read_text()
    assert re.search(r"Adding \d+ node\(s\) of type gpu_worker", monitor_log)

    stopped = head.run("down", "--dir", str(head.folder), timeout=60)
    assert stopped.returncode == 0 and "Stopped" in stopped.stdout, stopped.stderr
    assert cluster_processes(head.folder) == []
    assert not [pid for pid in seen if Path(f"/proc/{pid}").exists() and not zombie(pid)]
    assert not {port for _, port, _ in listening_sockets()} & set(head.ports.values())
    assert (head.folder / "home" / "mlflow" / "mlflow.db").exists() and not (head.folder / "tmp").exists()
