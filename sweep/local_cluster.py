"""cluster.yaml on one machine: cluster.local.yaml, generated from it, and the launcher's steps for it.

`ray up` cannot start cluster.local.yaml in Ray 2.60. It first merges the provider's defaults file, which
the wheel lacks for the fake multi-node provider (`fake_multi_node/example.yaml`: FileNotFoundError).
Past that, the provider lists a fixed head without a launch hash, which `ray up` would replace, but its
terminate_node fails on that head (KeyError 'node'); and its command runner is SSH to an address that is
the node id, for `ray up`, `ray submit` and `ray down` alike. Ray's documented route for the provider is
`RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=...`, which is the Ray start command of
cluster.local.yaml. This module does around it, on this machine, what `ray up`, `ray submit` and
`ray down` do on a head:

    python -m sweep.local_cluster write       # cluster.local.yaml from cluster.yaml
    python -m sweep.local_cluster up          # the head: file mounts, bootstrap config, setup and start
    python -m sweep.local_cluster submit run_sweep.py -- --preset smoke --address auto ...
    python -m sweep.local_cluster down        # stop every process of the cluster

The head is a folder (default /tmp/ane-sweep-local): `home/` is its home directory (HOME) and `tmp/` its
/tmp (TMPDIR, so Ray's session files, `--address auto` and MLflow's process group file stay apart from
any other Ray instance here). Ray's autoscaler starts worker nodes through the fake provider, as local
raylets, when trials wait for the GPU they declare; workers run no setup or start commands.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CLOUD_FILE = PROJECT_ROOT / "cluster.yaml"
LOCAL_FILE = PROJECT_ROOT / "cluster.local.yaml"
# Short: Ray's socket paths under <folder>/tmp/ray/session_*/sockets/ must stay below 108 characters.
DEFAULT_FOLDER = Path("/tmp/ane-sweep-local")
BOOTSTRAP_CONFIG = "ray_bootstrap_config.yaml"  # where `ray up` puts the cluster config on the head

# The keys of cluster.local.yaml that are not cluster.yaml's: everything else is copied unchanged.
LOCAL_KEYS = (
    "provider",
    "auth",
    "available_node_types",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
)
FAKE_PROVIDER = {
    "type": "fake_multinode",
    "gcs_address": "127.0.0.1:{port}",  # the head's --port; the provider's workers join it there
    "disable_node_updaters": True,  # the provider starts a worker's raylet itself: no SSH, no commands
    "disable_launch_config_check": True,
    "use_node_id_as_ip": True,  # the nodes share one address: the autoscaler tells them apart by id
}
# A g5.xlarge's GPU, which the AWS provider reads from the instance type with its 4 CPUs; 2 CPUs here,
# since Ray starts a worker process per CPU on each node and the machines this runs on may have only 2
# cores. The GPU is declared, not real: trials find no CUDA device and train on the CPU. A small object
# store per worker.
FAKE_WORKER_RESOURCES = {"CPU": 2, "GPU": 1, "object_store_memory": 200_000_000}
# Instead of installing uv, Python and the packages: ~/venv is the virtual environment running `up`.
VENV_LINK = 'ln -sfn "$ANE_SWEEP_VENV" ~/venv'
# (pattern in cluster.yaml's head start commands, what cluster.local.yaml has instead); each must match.
START_CHANGES = (
    (r"^ray stop$", None),  # on one machine it would stop every Ray instance; `down` stops this one's
    (r"RAY_AUTH_MODE=token ray start --head", "RAY_FAKE_CLUSTER=1 RAY_AUTH_MODE=token ray start --head"),
    (r"hostname -I \| cut -d \" \" -f 1 > ~/mlflow/host", "echo 127.0.0.1 > ~/mlflow/host"),
    (r"--artifacts-destination \S+", '--artifacts-destination "$HOME/mlflow/mlartifacts"'),
)
HEADER = """\
# GENERATED from cluster.yaml by `python -m sweep.local_cluster write`: edit cluster.yaml, not this file.
#
# The cluster of cluster.yaml on one machine, with Ray's fake multi-node provider: the same head start
# commands (MLflow, here on 127.0.0.1, and Ray), the same GPU worker type scaling from 0 (its GPU
# declared, not real), the same file mounts. Only these keys differ: provider, auth,
# available_node_types (node_config, and the workers' resources), setup_commands, head_setup_commands,
# worker_setup_commands, head_start_ray_commands (sweep/local_cluster.py says how and why).
# Start, use and stop it from the project root (docs/CLUSTER.md, "Try the launcher on one machine"):
#   python -m sweep.local_cluster up
#   python -m sweep.local_cluster submit run_sweep.py -- --preset smoke --address auto --shared-storage \\
#       --gpus-per-trial 0.5 --tracking-uri http://127.0.0.1:5000 --data-dir "$PWD/../shared/datasets"
#   python -m sweep.local_cluster down

"""


class LauncherError(ValueError):
    """A bad config file, folder or request: one line, nothing started."""


class CommandError(RuntimeError):
    """A setup or start command failed on the head; what it started keeps running until `down`."""


# --- cluster.local.yaml ---------------------------------------------------------------------------------


def local_config(cloud: dict[str, Any]) -> dict[str, Any]:
    """cluster.local.yaml's content from cluster.yaml's: the LOCAL_KEYS replaced, the rest copied."""
    local = copy.deepcopy(cloud)
    port = re.search(r"ray start --head .*?--port=(\d+)", " ".join(cloud["head_start_ray_commands"]))
    if port is None:
        raise LauncherError("cluster.yaml: no `ray start --head ... --port=N` in head_start_ray_commands")
    local["provider"] = {**FAKE_PROVIDER, "gcs_address": FAKE_PROVIDER["gcs_address"].format(port=port[1])}
    local["auth"] = {}
    for name, node_type in local["available_node_types"].items():
        node_type["node_config"] = {}
        if name != cloud["head_node_type"]:
            node_type["resources"] = dict(FAKE_WORKER_RESOURCES)
    bashrc = [command for command in cloud["setup_commands"] if "~/.bashrc" in command]
    if len(bashrc) != 1:
        raise LauncherError("cluster.yaml: expected one setup command that writes ~/.bashrc")
    local["setup_commands"] = [VENV_LINK, *bashrc]
    local["head_setup_commands"] = []
    local["worker_setup_commands"] = []
    local["head_start_ray_commands"] = changed_start_commands(cloud["head_start_ray_commands"])
    return local


def changed_start_commands(commands: list[str]) -> list[str]:
    """The head start commands with START_CHANGES applied (a None replacement drops the command)."""
    changed = list(commands)
    for pattern, replacement in START_CHANGES:
        if not any(re.search(pattern, command) for command in changed):
            raise LauncherError(f"cluster.yaml: no head start command matches {pattern!r}")
        if replacement is None:
            changed = [command for command in changed if not re.search(pattern, command)]
        else:
            changed = [re.sub(pattern, replacement.replace("\\", "\\\\"), command) for command in changed]
    return changed


def render(config: dict[str, Any]) -> str:
    """The text of cluster.local.yaml: the header, then the config in cluster.yaml's key order, its long
    commands folded (`>-`) as in cluster.yaml."""

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = ">" if len(value) > 80 else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    body = yaml.dump(config, Dumper=Dumper, sort_keys=False, width=100, indent=4, default_flow_style=False)
    return HEADER + body


def write_local_file(cloud_file: Path = CLOUD_FILE, local_file: Path = LOCAL_FILE) -> Path:
    """Regenerate cluster.local.yaml from cluster.yaml (after every change to cluster.yaml)."""
    local_file.write_text(render(local_config(yaml.safe_load(cloud_file.read_text()))))
    return local_file


def load_local_config(path: Path) -> dict[str, Any]:
    """A fake_multinode cluster config, checked against Ray's autoscaler schema as `ray up` checks it."""
    from ray.autoscaler._private.util import validate_config

    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise LauncherError(f"cannot read cluster config {path}: {str(error).splitlines()[0]}") from None
    kind = config.get("provider", {}).get("type") if isinstance(config, dict) else None
    if kind != "fake_multinode":
        raise LauncherError(
            f"{path}: provider type {kind!r}; this launcher starts only a fake_multinode cluster on this "
            f"machine (cluster.local.yaml); a cloud cluster starts with `ray up {path}`"
        )
    try:
        validate_config(config)
    except Exception as error:  # jsonschema's ValidationError and Ray's ValueErrors: say which, in one line
        raise LauncherError(f"{path}: {str(error).splitlines()[0]}") from None
    return config


# --- the head on this machine -------------------------------------------------------------------------


def head_environment(folder: Path) -> dict[str, str]:
    """The environment of every command on the head: its HOME and TMPDIR, the venv for ~/venv, and no
    RAY_ADDRESS (which would send `--address auto` elsewhere)."""
    environment = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    environment.update(HOME=str(folder / "home"), TMPDIR=str(folder / "tmp"), ANE_SWEEP_VENV=sys.prefix)
    return environment


def login_shell(command: str) -> list[str]:
    """How Ray's SSH command runner runs a command on a node. Ray adds `-i` so that Ubuntu's ~/.bashrc
    does not return early; without a terminal that only prints job-control warnings, and the head's
    ~/.bashrc here holds only what setup_commands write."""
    return [
        "bash",
        "--login",
        "-c",
        f"source ~/.bashrc; export OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore && ({command})",
    ]


def run_commands(commands: list[str], folder: Path) -> None:
    """Run each command in a login shell in the head's home, its output shown; stop at the first failure."""
    for command in commands:
        print(f"$ {command}", flush=True)
        result = subprocess.run(
            login_shell(command), cwd=folder / "home", env=head_environment(folder), stdin=subprocess.DEVNULL
        )
        if result.returncode != 0:
            raise CommandError(f"exit status {result.returncode} from: {command}")


def mount_files(mounts: dict[str, str], home: Path) -> list[str]:
    """`file_mounts` as symbolic links (rsync copies them on a cluster): each ~/ path on the head points at
    its source, read from the current directory and this user's ~ as `ray up` reads it."""
    done = []
    for remote, local in mounts.items():
        target = Path(os.path.normpath(home / remote.removeprefix("~/")))
        if not remote.startswith("~/") or not target.is_relative_to(home):
            raise LauncherError(f"file_mounts target {remote!r} must be a path under ~/ on the head")
        source = Path(local).expanduser().resolve()
        if not source.exists():
            hint = (
                " (create it: RAY_AUTH_MODE=token ray get-auth-token --generate)"
                if "auth_token" in remote
                else ""
            )
            raise LauncherError(f"file_mounts source {local!r} does not exist{hint}")
        if target.exists() and not target.is_symlink():
            raise LauncherError(f"file_mounts target {remote!r} exists on the head and is not a link")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        target.symlink_to(source)
        done.append(f"{remote} -> {source}")
    return done


def own_folder(folder: Path) -> Path:
    """`folder`, created for this user alone if missing. An existing one must be this user's and closed to
    others: whoever can write in it controls the head's ~/.bashrc, and so every command run there."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in (folder, folder / "home", folder / "tmp"):
        if path.exists() and (path.stat().st_uid != os.getuid() or path.stat().st_mode & 0o022):
            raise LauncherError(
                f"{path} belongs to another user or others may write to it; pick another --dir"
            )
    return folder


def up(config_file: Path, folder: Path) -> None:
    """`ray up` for the head on this machine: file mounts, bootstrap config, then every head command."""
    config = load_local_config(config_file)
    if cluster_processes(folder):
        raise LauncherError(
            f"a cluster already runs in {folder}; stop it first: python -m sweep.local_cluster down"
        )
    started = time.monotonic()
    home = own_folder(folder) / "home"
    for path in (home, folder / "tmp"):
        path.mkdir(mode=0o700, exist_ok=True)
    (home / ".bashrc").touch()
    print(f"Head of {config['cluster_name']!r} in {folder}: HOME={home}, TMPDIR={folder / 'tmp'}")
    print("[1/4] File mounts: " + "; ".join(mount_files(config["file_mounts"], home)))
    (home / BOOTSTRAP_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    for step, key in enumerate(("initialization_commands", "setup_commands", "head_start_ray_commands"), 2):
        commands = config.get(key, []) + (
            config.get("head_setup_commands", []) if key == "setup_commands" else []
        )
        name = "setup commands + head setup commands" if key == "setup_commands" else key.replace("_", " ")
        print(f"[{step}/4] {name}{': none' * (not commands)}", flush=True)
        run_commands(commands, folder)
    print(f"Head up in {time.monotonic() - started:.1f} s. Listening:")
    for line in describe_sockets(cluster_processes(folder)):
        print(f"  {line}")


def submit(folder: Path, script: Path, arguments: list[str]) -> int:
    """`ray submit`: copy the script to the head's home and run `python ~/SCRIPT ARGS` there; its exit
    status. (Ray joins the arguments with spaces; they are quoted here.)"""
    if not cluster_processes(folder):
        raise LauncherError(f"no cluster runs in {folder}; start it first: python -m sweep.local_cluster up")
    if not script.is_file():
        raise LauncherError(f"script {script} does not exist")
    shutil.copy(script, folder / "home" / script.name)
    command = f"python ~/{shlex.quote(script.name)} {shlex.join(arguments)}".rstrip()
    print(f"$ {command}", flush=True)
    result = subprocess.run(
        login_shell(command), cwd=folder / "home", env=head_environment(folder), stdin=subprocess.DEVNULL
    )
    return result.returncode


def down(folder: Path) -> int:
    """`ray down`: stop every process of the cluster (workers, Ray, MLflow, a running driver) and clear
    the head's TMPDIR, as a stopped instance loses /tmp; the head's home, with MLflow's database, stays."""
    count = stop_processes(folder)
    shutil.rmtree(folder / "tmp", ignore_errors=True)
    print(f"Stopped {count} processes of the cluster in {folder}; MLflow's runs stay in {folder}/home/mlflow")
    return count


# --- processes and sockets ------------------------------------------------------------------------------


def cluster_processes(folder: Path) -> list[int]:
    """Live processes of the cluster in `folder`: running in it or holding a file in it open (every Ray
    process writes its log there, MLflow its log and database), this process excepted."""
    root = str(folder.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            paths = [os.readlink(entry / "cwd")]
            paths += [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:  # gone, or another user's
            continue
        if any(path == root or path.startswith(root + "/") for path in paths):
            found.append(int(entry.name))
    return found


def stop_processes(folder: Path, grace_s: float = 1.0, timeout_s: float = 20.0) -> int:
    """SIGTERM every process of the cluster once, SIGKILL what is left after `grace_s` until none is; how
    many there were. Raises RuntimeError if some outlive SIGKILL for `timeout_s`."""
    seen: set[int] = set()
    for how, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, timeout_s)):
        deadline = time.monotonic() + wait_s
        while (pids := set(cluster_processes(folder))) and time.monotonic() < deadline:
            for pid in pids - seen if how == signal.SIGTERM else pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, how)
            seen |= pids
            time.sleep(0.2)
    if pids := cluster_processes(folder):
        raise RuntimeError(f"processes {pids} of the cluster in {folder} outlived SIGKILL")
    return len(seen)


def listening_sockets(pids: Iterable[int] | None = None) -> set[tuple[str, int, int | None]]:
    """TCP sockets in LISTEN state as (address, port, pid): those of `pids`, or all (pid None)."""
    owners = {}
    for pid in pids or ():
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    owners[link[8:-1]] = pid
        except OSError:
            continue
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or (pids is not None and fields[9] not in owners):
                continue
            address, port = fields[1].split(":")
            found.add((decode_address(address), int(port, 16), owners.get(fields[9])))
    return found


def decode_address(hex_address: str) -> str:
    """An address of /proc/net/tcp{,6} (32-bit words in host byte order) as text."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words)


def describe_sockets(pids: list[int]) -> list[str]:
    """'address:port  program' for every listening socket of `pids`, by program then port."""
    found = sorted((process_name(pid), port, address) for address, port, pid in listening_sockets(pids))
    return [f"{address}:{port}  {name}" for name, port, address in found]


def process_name(pid: int) -> str:
    """The program a process runs: its executable's name, or for Python the module or script it runs."""
    try:
        argv = [
            part.decode(errors="replace") for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        ]
    except OSError:
        return "?"
    name = Path(argv[0]).name
    if name.startswith("python"):
        name = next((Path(part).name for part in argv[1:] if part and not part.startswith("-")), name)
    return name


# --- command line -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sweep.local_cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("write", help=f"write {LOCAL_FILE.name} from {CLOUD_FILE.name}")
    for name, text in (
        ("up", "start the head: file mounts, bootstrap config, setup and start commands"),
        ("submit", "run a script on the head as `ray submit` does"),
        ("down", "stop every process of the cluster"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument(
            "--dir", type=Path, default=DEFAULT_FOLDER, help=f"the head's folder (default {DEFAULT_FOLDER})"
        )
        if name == "up":
            command.add_argument("config", type=Path, nargs="?", default=Path(LOCAL_FILE.name))
        if name == "submit":
            command.add_argument("script", type=Path)
            command.add_argument(
                "arguments", nargs=argparse.REMAINDER, help="after --: the script's arguments"
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "write":
            print(f"wrote {write_local_file()}")
        elif args.command == "up":
            up(args.config, args.dir.resolve())
        elif args.command == "submit":
            arguments = args.arguments[1:] if args.arguments[:1] == ["--"] else args.arguments
            return submit(args.dir.resolve(), args.script, arguments)
        else:
            down(args.dir.resolve())
    except LauncherError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    except CommandError as error:
        parser.exit(1, f"{parser.prog}: error: {error}; stop what started with: {parser.prog} down\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
