"""Checks for running a sweep on a multi-node Ray cluster (see cluster.yaml and docs/CLUSTER.md).

Every trial writes its checkpoints under the sweep's storage path from whichever node runs it, and the
driver reads them back from the head. A plain path such as `/home/ubuntu/ray_results` is a different
folder on every machine, so on a cluster of several nodes the results end up scattered and a restore
finds nothing; Ray does not stop such a run. `check_shared_storage` does, before any trial starts.

A storage path counts as shared when it is an object-store URI (`s3://`, `gs://`, `abfs://`, ...) or when
the user declares it shared: `shared=True` (the `--shared-storage` flag) or, when that is not given, the
environment variable `ANE_SWEEP_SHARED_STORAGE=1` (for a mount that every node has, such as NFS or EFS).

A trial that asks for more CPUs or GPUs than any node has would wait forever: `check_trial_fits` refuses
it first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import yaml

from sweep.config import ConfigError

SHARED_STORAGE_ENV = "ANE_SWEEP_SHARED_STORAGE"
# Written by `ray up` on the head of every cluster-launcher (autoscaling) cluster; Ray Tune itself uses it
# to tell such a cluster apart (ray.tune.execution.cluster_info). Worker nodes may join at any time there.
LAUNCHER_CONFIG = Path("~/ray_bootstrap_config.yaml")
# URI schemes that name storage on the local machine only; every other scheme is a remote file system.
NODE_LOCAL_SCHEMES = frozenset({"", "file", "local", "memory"})
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
Shape = tuple[float, float]  # a node's (CPUs, GPUs)


class SharedStorageError(ConfigError):
    """A node-local storage path on a Ray cluster of several nodes."""


class ResourceRequestError(ConfigError):
    """A trial asks for more CPUs or GPUs than any node of the cluster has."""


def is_node_local(storage_path: str) -> bool:
    """True for a plain path or `file://` URI, False for an object-store URI such as `s3://bucket/x`."""
    return urlparse(storage_path).scheme.lower() in NODE_LOCAL_SCHEMES


def declared_shared(shared: bool | None = None) -> bool:
    """`shared` when given, else whether `ANE_SWEEP_SHARED_STORAGE` is set to 1/true/yes/on."""
    if shared is not None:
        return shared
    return os.environ.get(SHARED_STORAGE_ENV, "").strip().lower() in TRUE_VALUES


def alive_node_count() -> int:
    """Nodes of the connected Ray cluster that are alive now (call after `ray.init`)."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("check_shared_storage needs a connected Ray cluster: call it after ray.init()")
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def may_add_nodes() -> bool:
    """True on the head of a cluster started by `ray up`, whose autoscaler can add worker nodes."""
    return LAUNCHER_CONFIG.expanduser().exists()


def autoscaling(address: str | None) -> bool:
    """The sweep attached (`address` given) to the cluster of a `ray up` head, whose autoscaler starts
    worker nodes only once trials wait for them."""
    return address not in (None, "local") and may_add_nodes()


def check_shared_storage(storage_path: str, address: str | None, *, shared: bool | None = None) -> None:
    """Raise `SharedStorageError` if trials on several nodes would write to a node-local storage path.

    Call it after `ray.init`. `address` is the sweep's `--address`: None (or "local") means the runner
    started a Ray instance of its own on this machine. A cluster counts as multi-node when more than one
    node is alive, or when the sweep attached to the cluster of a `ray up` head (`address` given and
    `~/ray_bootstrap_config.yaml` present), whose autoscaler starts worker nodes only once trials wait for
    them, so that at submission time the head may still be alone.
    """
    if not is_node_local(storage_path) or declared_shared(shared):
        return
    nodes = alive_node_count()
    scales = autoscaling(address)
    if nodes <= 1 and not scales:
        return
    cluster = f"the Ray cluster{f' at {address}' if address else ''} has {nodes} node{'s' * (nodes != 1)}"
    if scales:
        cluster += " and an autoscaler that adds more"
    raise SharedStorageError(
        f"storage path {storage_path!r} is local to one machine, but {cluster}: every node must write "
        "trial results to the same place; pass --storage-path s3://BUCKET/PREFIX (or gs://, abfs://), "
        f"or --shared-storage (or {SHARED_STORAGE_ENV}=1) if the path is a mount all nodes share (NFS, EFS)"
    )


def node_shape(resources: Mapping[str, float]) -> Shape:
    """A node's (CPUs, GPUs) from its Ray resources; one it lacks counts 0."""
    return float(resources.get("CPU", 0)), float(resources.get("GPU", 0))


def alive_node_shapes() -> list[Shape]:
    """(CPUs, GPUs) of every node of the connected Ray cluster that is alive now (call after `ray.init`)."""
    import ray

    return [node_shape(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def launcher_node_shapes() -> list[Shape]:
    """(CPUs, GPUs) of every node type in the autoscaler config of a `ray up` head, as declared there (`ray
    up` fills them in from the instance type; a type without them is one the autoscaler never starts for a
    trial either); none when the config is missing or unreadable."""
    try:
        types = yaml.safe_load(LAUNCHER_CONFIG.expanduser().read_text())["available_node_types"]
        return [node_shape(spec.get("resources") or {}) for spec in types.values()]
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return []


def largest(shapes: list[Shape]) -> list[Shape]:
    """The shapes that no other one matches in both CPUs and GPUs, most CPUs first (one shape, unless
    some nodes have more CPUs and others more GPUs)."""
    unique = set(shapes)
    return sorted(
        (s for s in unique if not any(o != s and o[0] >= s[0] and o[1] >= s[1] for o in unique)), reverse=True
    )


def describe(shape: Shape) -> str:
    """`(2.0, 1.0)` -> "2 CPUs and 1 GPU"."""
    return " and ".join(f"{n:g} {unit}{'s' * (n != 1)}" for n, unit in zip(shape, ("CPU", "GPU")))


def trial_fit_problem(cpus: float, gpus: float, shapes: list[Shape], scales: bool = False) -> str | None:
    """Why no node of `shapes` can hold a trial of `cpus` CPUs and `gpus` GPUs, or None if one can."""
    if any(c >= cpus and g >= gpus for c, g in shapes):
        return None
    biggest = largest(shapes)
    cluster = "the Ray cluster (with the nodes its autoscaler can start)" if scales else "the Ray cluster"
    nodes = f"node of {cluster} has" if len(biggest) == 1 else f"nodes of {cluster} have"
    return (
        f"one trial (--cpus-per-trial {cpus:g}, --gpus-per-trial {gpus:g}) needs a node with "
        f"{describe((cpus, gpus))}; the largest {nodes} {', or '.join(map(describe, biggest))}"
    )


def check_trial_fits(cpus: float, gpus: float, address: str | None) -> None:
    """Raise `ResourceRequestError` if no node can ever hold one trial, which Tune would wait for forever.

    Call it after `ray.init`, before anything is written. The alive nodes count, and when the sweep
    attached to the cluster of a `ray up` head, every node type its autoscaler can start.
    """
    scales = autoscaling(address)
    shapes = alive_node_shapes() + (launcher_node_shapes() if scales else [])
    problem = trial_fit_problem(cpus, gpus, shapes, scales)
    if problem:
        raise ResourceRequestError(problem)
