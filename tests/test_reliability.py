"""Reliability: bad input stops before anything is written; failures, kills and resumes lose nothing."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

import run_sweep
from sweep import storage
from sweep.config import load_config
from sweep.runner import SweepOptions
from sweep.runner import run_sweep as start_sweep_in_process
from sweep.summary import tally
from tests.helpers import fail_once_after_epoch_0, kill_sparsemax_worker, write_csv
from trainables.trial import TrialHooks

ROOT = Path(__file__).resolve().parent.parent


def sweep_yaml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return str(path)


def bad_data(root: Path, split: str, rows: list, header=("text", "label")) -> None:
    write_csv(root / "sst2" / f"{split}.csv", rows, header)


def bad_file(root: Path, split: str, content: bytes) -> list[str]:
    """Overwrite one SST split file with `content`; the argv of a smoke sweep over `root`."""
    (root / "sst2" / f"{split}.csv").write_bytes(content)
    return ["--preset", "smoke", "--data-dir", str(root)]


# Each case: a function of (tmp_path, data_dir) giving extra argv, and a fragment of the one-line error.
BAD_INPUTS = {
    "unknown preset": (
        lambda t, d: ["--preset", "huge"],
        "unknown preset 'huge'; allowed: distilbert, nli, nli_smoke, paper, paper_offline, smoke, "
        "smoke_wide, sst, sst_offline, transformer, xai",
    ),
    "unknown dataset": (
        lambda t, d: ["--config", sweep_yaml(t, "name: x\ngrid: {dataset: [yelp]}\n")],
        "grid.dataset: unknown value 'yelp'; allowed: sst2, imdb",
    ),
    "unknown encoder": (
        lambda t, d: ["--config", sweep_yaml(t, "name: x\ngrid: {encoder: [gru]}\n")],
        "grid.encoder: unknown value 'gru'",
    ),
    "unknown attention": (
        lambda t, d: ["--config", sweep_yaml(t, "name: x\ngrid: {attention: [mlp]}\n")],
        "grid.attention: unknown value 'mlp'; allowed: tanh, dot",
    ),
    "unknown normalizer": (
        lambda t, d: ["--config", sweep_yaml(t, "name: x\ngrid: {normalizer: [max]}\n")],
        "grid.normalizer: unknown value 'max'; allowed: softmax, sparsemax",
    ),
    "malformed yaml": (lambda t, d: ["--config", sweep_yaml(t, "name: [x\n")], "malformed YAML"),
    "unknown yaml key": (
        lambda t, d: ["--config", sweep_yaml(t, "name: x\noptimiser: sgd\n")],
        "unknown key 'optimiser'",
    ),
    "wrong type": (
        lambda t, d: ["--config", sweep_yaml(t, "name: x\ntrain: {lr: fast}\n")],
        "train.lr: 'fast' is a str; expected float",
    ),
    "pretrained model that is not there": (  # offline: the Hub probe fails; online: the Hub says 404
        lambda t, d: [
            "--config",
            sweep_yaml(
                t, "name: x\ngrid: {encoder: [distilbert]}\ntrain: {pretrained: ane-sweep-tests/none}\n"
            ),
            "--data-dir",
            str(d),
        ],
        "could not load ",
    ),
    "pretrained folder that is not there": (
        lambda t, d: ["--config", sweep_yaml(t, "name: x\ntrain: {pretrained: ./no-such-model}\n")],
        "train.pretrained: folder './no-such-model' does not exist",
    ),
    "non-positive epochs": (
        lambda t, d: ["--preset", "smoke", "--max-epochs", "0"],
        "train.max_epochs: 0 must be > 0",
    ),
    "non-positive batch size": (
        lambda t, d: ["--config", sweep_yaml(t, "name: x\ntrain: {batch_size: 0}\n")],
        "train.batch_size: 0 must be > 0",
    ),
    "non-positive concurrency": (
        lambda t, d: ["--preset", "smoke", "--max-concurrent", "-2"],
        "resources.max_concurrent: -2 must be > 0",
    ),
    "non-integer seeds": (
        lambda t, d: ["--preset", "smoke", "--seeds", "1,two"],
        "--seeds must be comma-separated",
    ),
    "non-integer epochs flag": (
        lambda t, d: ["--max-epochs", "ten"],
        "argument --max-epochs: invalid int value",
    ),
    "missing data dir": (
        lambda t, d: ["--preset", "smoke", "--data-dir", str(t / "nowhere")],
        "is not a directory",
    ),
    "missing split file": (
        lambda t, d: (d / "sst2" / "validation.csv").unlink() or ["--preset", "smoke", "--data-dir", str(d)],
        "missing split file",
    ),
    "csv without text": (
        lambda t, d: (
            bad_data(d, "train", [("a b", 1)], ("review", "label"))
            or ["--preset", "smoke", "--data-dir", str(d)]
        ),
        "lacks column(s) text",
    ),
    "labels outside 0/1": (
        lambda t, d: (
            bad_data(d, "test", [("a b", 1), ("c d", 2)]) or ["--preset", "smoke", "--data-dir", str(d)]
        ),
        "has label(s) [2]; allowed labels: 0, 1",
    ),
    "empty split after filtering": (
        lambda t, d: (
            bad_data(d, "validation", [("", 1), ("?!", 0)]) or ["--preset", "smoke", "--data-dir", str(d)]
        ),
        "split 'validation' is empty after filtering",
    ),
    "validation split of one class": (
        lambda t, d: (
            bad_data(d, "validation", [("a b", 1), ("c d", 1)]) or ["--preset", "smoke", "--data-dir", str(d)]
        ),
        "split 'validation' has only class 1 after filtering; both classes 0 and 1 are needed",
    ),
    "0-byte csv": (lambda t, d: bad_file(d, "train", b""), "train.csv': the file is empty"),
    "csv of random bytes": (
        lambda t, d: bad_file(d, "train", bytes(range(128, 256))),
        "train.csv': line 1 has a byte that is not UTF-8 (0x80)",
    ),
    "latin-1 csv": (
        lambda t, d: bad_file(d, "test", "text,label\ncafé,1\n".encode("latin-1")),
        "test.csv': line 2 has a byte that is not UTF-8 (0xe9)",
    ),
    "ragged csv row": (
        lambda t, d: bad_file(d, "validation", b"text,label\na b,1\nc,d,0\n"),
        "validation.csv': line 3 has 3 fields, the header has 2",
    ),
    "csv header without label": (
        lambda t, d: bad_file(d, "train", b"text,stars\na b,1\n"),
        "train.csv': lacks column(s) label",
    ),
    "non-integer label": (
        lambda t, d: bad_file(d, "train", b"text,label\na b,1\nc d,pos\n"),
        "train.csv': line 3 has label 'pos'; labels must be integers",
    ),
    "unreachable tracking uri": (
        lambda t, d: ["--preset", "smoke", "--data-dir", str(d), "--tracking-uri", "http://127.0.0.1:9"],
        "MLflow tracking URI 'http://127.0.0.1:9' is not usable",
    ),
    "missing embeddings file": (
        lambda t, d: ["--config", sweep_yaml(t, "name: x\nembeddings: {source: nowhere/wiki.vec}\n")],
        "embeddings.source: embeddings file 'nowhere/wiki.vec' does not exist",
    ),
    "unreachable embeddings download": (  # port 9 (discard) on 127.0.0.1: nothing listens
        lambda t, d: [
            "--config",
            smoke_yaml(t, "x", embeddings={"source": "http://127.0.0.1:9/wiki.vec.zip"}),
            "--data-dir",
            str(d),
        ],
        "could not download embeddings from http://127.0.0.1:9/wiki.vec.zip: ",
    ),
    "resume of an unknown experiment": (
        lambda t, d: ["--resume", "never-ran"],
        "no experiment 'never-ran' to resume",
    ),
    "resume with overrides": (lambda t, d: ["--resume", "x", "--seeds", "2"], "drop --seeds"),
    "name of the parent folder, overwriting": (
        lambda t, d: ["--preset", "smoke", "--name", "..", "--overwrite"],
        "name '..' is not allowed; use letters, digits",
    ),
    "name with a separator": (
        lambda t, d: ["--preset", "smoke", "--name", "a/b"],
        "name 'a/b' is not allowed",
    ),
    "name with a leading dot": (
        lambda t, d: ["--preset", "smoke", "--name", ".x"],
        "name '.x' is not allowed",
    ),
    "negative seed": (
        lambda t, d: ["--preset", "smoke", "--seeds", "1,-1"],
        "grid.seed: -1 is not an integer in 0..4294967295",
    ),
    "negative split seed": (
        lambda t, d: ["--config", sweep_yaml(t, "name: x\ndata: {split_seed: -1}\n")],
        "data.split_seed: -1 must be >= 0",
    ),
}


STARTS_RAY = {"unreachable embeddings download"}  # the download runs in a Ray task


def text_file(path: Path, text: str = "") -> Path:
    path.write_text(text)
    return path


def smoke_logging_to(data_dir: Path, tracking_uri: str) -> list[str]:
    return ["--preset", "smoke", "--data-dir", str(data_dir), "--tracking-uri", tracking_uri]


# Stores MLflow cannot use here, refused in seconds before the output folder exists (not after minutes of
# MLflow's retries with a traceback). As root only what refuses root models a read-only folder: /proc, a
# path under a regular file; chattr +i in test_a_read_only_sqlite_store_is_refused_in_seconds.
BAD_INPUTS |= {
    "tracking uri of an unknown scheme": (
        lambda t, d: smoke_logging_to(d, "ftp://127.0.0.1/mlflow"),
        "MLflow tracking URI 'ftp://127.0.0.1/mlflow' has scheme 'ftp'; allowed: sqlite, file, http, https, "
        "postgresql, mysql, mssql, databricks or a folder path",
    ),
    "sqlite store in /proc": (  # before: 104 s of MLflow's retries, then a traceback
        lambda t, d: smoke_logging_to(d, "sqlite:////proc/mlflow.db"),
        "MLflow tracking URI 'sqlite:////proc/mlflow.db' is not usable: folder /proc is not writable",
    ),
    "sqlite store under a file": (
        lambda t, d: smoke_logging_to(d, f"sqlite:///{text_file(t / 'notes.txt')}/mlflow.db"),
        "notes.txt/mlflow.db' is not usable: ",  # then: <tmp>/notes.txt is not a folder
    ),
    "sqlite store that is not a database": (
        lambda t, d: smoke_logging_to(d, f"sqlite:///{text_file(t / 'notes.db', 'not a database' * 100)}"),
        "notes.db cannot be written (file is not a database)",
    ),
    "folder store in /proc": (
        lambda t, d: smoke_logging_to(d, "/proc/mlruns"),
        "MLflow tracking URI 'file:///proc/mlruns' is not usable: folder /proc is not writable",
    ),
    "resume with a store in /proc": (
        lambda t, d: ["--resume", "x", "--tracking-uri", "sqlite:////proc/x/mlflow.db"],
        "MLflow tracking URI 'sqlite:////proc/x/mlflow.db' is not usable: folder /proc is not writable",
    ),
    "more cpus per trial than any node has": (  # Tune would wait forever, after writing the outputs
        lambda t, d: ["--preset", "smoke", "--data-dir", str(d), "--cpus-per-trial", "4096"],
        "one trial (--cpus-per-trial 4096, --gpus-per-trial 0) needs a node with 4096 CPUs and 0 GPUs; "
        "the largest node of the Ray cluster has ",
    ),
}
STARTS_RAY |= {"more cpus per trial than any node has"}


@pytest.mark.parametrize(
    "case", [pytest.param(case, marks=pytest.mark.ray) if case in STARTS_RAY else case for case in BAD_INPUTS]
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, sst_dir, capsys, request):
    if case in STARTS_RAY:  # the module's Ray instance, which the sweep joins, instead of a start of its own
        request.getfixturevalue("ray_cluster")
    make_argv, fragment = BAD_INPUTS[case]
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        run_sweep.main([*make_argv(tmp_path, sst_dir), "--output-dir", str(out)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert fragment in error, error
    assert error.count("\n") == 1 and error.startswith("run_sweep.py: error: ")
    assert not out.exists()


def smoke_yaml(tmp_path: Path, name: str, **sections) -> str:
    """The smoke preset with some sections replaced, written to a file."""
    raw = yaml.safe_load((ROOT / "sweep" / "presets" / "smoke.yaml").read_text())
    raw["name"] = name
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def runs_by_name(out: Path, experiment: str, store: Path | None = None) -> dict:
    client = MlflowClient(f"sqlite:///{store or out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    names = [r.info.run_name for r in runs]
    assert len(names) == len(set(names)), f"duplicate runs: {names}"
    return {r.info.run_name: r for r in runs}


def loss_steps(out: Path, run, store: Path | None = None) -> list[int]:
    client = MlflowClient(f"sqlite:///{store or out / 'mlflow.db'}")
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss"))


@pytest.mark.ray
def test_failed_trials_are_retried_then_recorded_and_the_others_finish(ray_cluster, sst_dir, tmp_path):
    """One trial raises once after epoch 0 and recovers; the other's worker process is killed (as Ray's
    memory monitor kills it) every time it starts: its run must end FAILED with Ray's reason, not KILLED."""
    config = load_config(smoke_yaml(tmp_path, "faulty", resources={"max_failures": 1}))
    hooks = TrialHooks(before_training=kill_sparsemax_worker, after_epoch=fail_once_after_epoch_0)
    out = tmp_path / "out"
    result = start_sweep_in_process(config, SweepOptions(data_dir=sst_dir, output_dir=out), hooks=hooks)
    assert tally(result.summary) == "2 trials: 1 finished, 1 failed, 0 unfinished"
    assert "died" in result.summary.set_index("trial").loc["sst2-lstm-tanh-sparsemax-s1", "error"]
    runs = runs_by_name(out, "faulty")
    recovered, failed = runs["sst2-lstm-tanh-softmax-s1"], runs["sst2-lstm-tanh-sparsemax-s1"]
    assert recovered.info.status == "FINISHED" and "test/auc" in recovered.data.metrics
    assert loss_steps(out, recovered) == [
        0,
        1,
    ]  # failed after epoch 0, resumed from its checkpoint: no repeat
    assert failed.info.status == "FAILED"
    assert not any(name.startswith("faults") for name in recovered.data.params)  # hooks are not settings
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    reason = client.download_artifacts(failed.info.run_id, "traceback.txt", str(tmp_path / "failed"))
    assert "ActorDiedError" in Path(reason).read_text()  # Ray's error for a worker that died
    first_failure = client.download_artifacts(recovered.info.run_id, "traceback.txt", str(tmp_path))
    assert "RuntimeError: trial failed on purpose after epoch 0" in Path(first_failure).read_text()


@pytest.mark.ray
def test_eight_trials_logging_at_once_lose_no_metric(ray_cluster, sst_dir, tmp_path):
    config = smoke_yaml(
        tmp_path,
        "eight",
        grid={"seed": [1, 2, 3, 4]},
        resources={"cpus_per_trial": 0.25, "max_concurrent": 8},
        data={"max_examples": 60},  # the point is eight runs logging at once, not what they learn
        counterfactual={"steps": 5, "permutations": 3},
    )
    out = tmp_path / "out"
    argv = ["--config", config, "--data-dir", str(sst_dir), "--output-dir", str(out), "--no-analysis"]
    assert run_sweep.main(argv) == 0
    runs = runs_by_name(out, "eight")
    assert len(runs) == 8
    metric_sets = {frozenset(r.data.metrics) for r in runs.values()}
    assert len(metric_sets) == 1 and len(next(iter(metric_sets))) > 100
    assert all(r.info.status == "FINISHED" and loss_steps(out, r) == [0, 1] for r in runs.values())


def start_sweep(argv: list[str], ray_tmp: Path, cwd: Path = ROOT) -> subprocess.Popen:
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_sweep.py"), *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_ray_under(ray_tmp: Path) -> None:
    """Kill every process of the Ray instance that lives under `ray_tmp` (a SIGKILLed driver leaves them)."""
    found = subprocess.run(["pgrep", "-f", str(ray_tmp)], capture_output=True, text=True).stdout.split()
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)  # the condition is a cheap file check; a sweep's epochs take a fraction of a second


@pytest.mark.ray
@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
def test_an_interrupted_sweep_resumes_without_rerunning_finished_trials(stop_signal, sst_dir, tmp_path):
    """Started from `tmp_path` with a relative data folder and its own MLflow store, then resumed from
    elsewhere with only `--resume NAME --output-dir`: the sweep remembers both. (`--no-analysis`: the
    analysis after a sweep is checked in the just-finished test below.)"""
    out, ray_tmp = tmp_path / "out", Path("/tmp") / f"ane_ray_{os.getpid()}_{stop_signal.name}"
    store = tmp_path / "store" / "elsewhere.db"
    config = smoke_yaml(
        tmp_path,
        "interrupted",
        train={"max_epochs": 12, "patience": 12},
        data={"max_examples": 240},
        resources={"max_concurrent": 1},
    )
    assert sst_dir == tmp_path / "data"
    argv = [
        "--config",
        config,
        "--data-dir",
        "data",
        "--output-dir",
        str(out),
        "--tracking-uri",
        f"sqlite:///{store}",
        "--no-analysis",
    ]
    trials = out / "ray_results" / "interrupted"
    driver = start_sweep(argv, ray_tmp, cwd=tmp_path)

    def second_trial_is_past_epoch_1() -> bool:
        assert driver.poll() is None, driver.stdout.read().decode()[-3000:]
        return any(
            p.name > "checkpoint_000001" for p in trials.glob("sst2-lstm-tanh-sparsemax-s1/checkpoint_*")
        )

    try:
        wait_for(second_trial_is_past_epoch_1, 240, "the second trial's third checkpoint")
        os.killpg(driver.pid, stop_signal)  # at once: the second trial's last epochs take seconds
        driver.wait(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        kill_ray_under(ray_tmp)
    finished_before = runs_by_name(out, "interrupted", store)["sst2-lstm-tanh-softmax-s1"]
    assert finished_before.info.status == "FINISHED"  # the first trial (one at a time) ended before the kill
    if stop_signal == signal.SIGINT:
        assert runs_by_name(out, "interrupted", store)["sst2-lstm-tanh-sparsemax-s1"].info.status == "KILLED"
        printed = driver.stdout.read().decode()
        assert "Sweep 'interrupted': 2 trials: 1 finished, 0 failed, 1 unfinished" in printed
        stopped = re.search(r"sst2-lstm-tanh-sparsemax-s1 +UNFINISHED +(\d+)", printed)
        assert stopped and int(stopped[1]) >= 3, printed  # past its third checkpoint
        resume = f"python run_sweep.py --resume interrupted --output-dir {out}\n"  # store and data: saved
        assert f"Continue the unfinished trials: {resume}" in printed

    other_store = f"sqlite:///{tmp_path / 'other.db'}"
    with pytest.raises(SystemExit, match="2"):
        run_sweep.main(["--resume", "interrupted", "--output-dir", str(out), "--tracking-uri", other_store])
    resumed = start_sweep(["--resume", "interrupted", "--output-dir", str(out), "--no-analysis"], ray_tmp)
    try:
        output = resumed.communicate(timeout=300)[0].decode()
    finally:
        kill_ray_under(ray_tmp)
    assert resumed.returncode == 0, output[-3000:]
    assert not (out / "mlflow.db").exists() and not (tmp_path / "other.db").exists()
    runs = runs_by_name(out, "interrupted", store)
    assert set(runs) == {"sst2-lstm-tanh-softmax-s1", "sst2-lstm-tanh-sparsemax-s1"}
    assert all(
        r.info.status == "FINISHED" and loss_steps(out, r, store) == list(range(12)) for r in runs.values()
    )
    finished_after = runs["sst2-lstm-tanh-softmax-s1"]
    assert finished_after.info.end_time == finished_before.info.end_time  # not retrained
    assert finished_after.data.metrics == finished_before.data.metrics


KILL_WHEN_FINISHED = """
import functools, os, signal, sys
from pathlib import Path
from sweep.config import load_config
from sweep.runner import SweepOptions, run_sweep
from trainables.trial import TrialHooks

kill_driver = functools.partial(os.kill, os.getpid(), signal.SIGKILL)
hooks = TrialHooks(after_finish=lambda config: kill_driver())  # right after the run turns FINISHED
options = SweepOptions(data_dir=Path(sys.argv[2]), output_dir=Path(sys.argv[3]))
run_sweep(load_config(sys.argv[1]), options, hooks=hooks)
"""


@pytest.mark.ray
def test_a_trial_finished_just_before_a_kill_is_not_run_again_on_resume(sst_dir, tmp_path):
    """Also the one test of the analysis that `run_sweep.py` writes after a sweep (the others pass
    `--no-analysis`; the analysis itself is tested in test_analysis.py)."""
    out, ray_tmp = tmp_path / "out", Path("/tmp") / f"ane_ray_{os.getpid()}_finished"
    config = smoke_yaml(tmp_path, "just-finished", grid={"normalizer": ["softmax"]})
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    try:
        killed = subprocess.run(
            [sys.executable, "-c", KILL_WHEN_FINISHED, config, str(sst_dir), str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=300,
        )
    finally:
        kill_ray_under(ray_tmp)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-3000:]
    (before,) = runs_by_name(out, "just-finished").values()
    assert before.info.status == "FINISHED"

    resumed = start_sweep(["--resume", "just-finished", "--output-dir", str(out)], ray_tmp)
    try:
        output = resumed.communicate(timeout=300)[0].decode()
    finally:
        kill_ray_under(ray_tmp)
    assert resumed.returncode == 0, output[-3000:]
    folder = out / "analysis" / "just-finished"
    assert f"Tables and figures: {folder} (start with {folder / 'report.md'})" in output
    assert (folder / "report.md").is_file() and (folder / "tables" / "model_quality.csv").is_file()
    runs = runs_by_name(out, "just-finished")
    after = runs[before.info.run_name]
    assert after.info.status == "FINISHED" and after.info.end_time == before.info.end_time
    assert after.data.metrics == before.data.metrics
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    for name in ("test/accuracy", "kendall/attn_grad/all/mean", "time/train_s"):
        assert len(client.get_metric_history(after.info.run_id, name)) == 1, name
    assert len(runs) == 1


@contextlib.contextmanager
def immutable(path: Path):
    """`path` made immutable (chattr +i), which refuses writes even to root, unlike permission bits;
    skips the test where chattr cannot do it."""
    import shutil

    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("frozen", ["database", "folder"])
def test_a_read_only_sqlite_store_is_refused_in_seconds(frozen, tmp_path, sst_dir, capsys):
    """A database that cannot be written, or whose folder cannot hold sqlite's journal: one line, exit 2,
    no output folder, without the minutes of MLflow's retries."""
    import sqlite3

    store = tmp_path / "store"
    store.mkdir()
    database = store / "mlflow.db"
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.execute("CREATE TABLE existing (x)")
    out = tmp_path / "out"
    argv = ["--preset", "smoke", "--data-dir", str(sst_dir), "--output-dir", str(out)]
    started = time.monotonic()
    with immutable(database if frozen == "database" else store), pytest.raises(SystemExit) as exit_info:
        run_sweep.main([*argv, "--tracking-uri", f"sqlite:///{database}"])
    assert time.monotonic() - started < 10
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"MLflow tracking URI 'sqlite:///{database}' is not usable: " in error
    reason = {
        "database": f"database {database} cannot be written (attempt to write a readonly database)",
        "folder": f"folder {store} is not writable (Operation not permitted)",
    }
    assert reason[frozen] in error, error
    assert not out.exists()


@pytest.mark.parametrize("folder_store", [False, True], ids=["sqlite", "folder"])
def test_checking_a_new_local_store_creates_nothing(folder_store, tmp_path):
    from sweep.tracking import check_store

    where = tmp_path / "a" / "b" / ("mlruns" if folder_store else "mlflow.db")
    check_store(where.as_uri() if folder_store else f"sqlite:///{where}")
    assert list(tmp_path.iterdir()) == []  # neither the folders nor the probe's temporary file


def test_a_failing_trial_keeps_its_error_when_mlflow_cannot_record_it(tmp_path, caplog):
    """`run.fail` cannot write traceback.txt (the artifact folder would lie under a regular file): the
    trial's own error (here: its dataset is missing) is raised, MLflow's is one warning line."""
    from trainables.trial import run_trial

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    artifacts = text_file(tmp_path / "notes.txt") / "artifacts"
    experiment_id = client.create_experiment("broken-artifacts", artifact_location=artifacts.as_uri())
    tracking = {"uri": uri, "experiment_id": experiment_id, "sweep": "broken-artifacts"}
    config = {"dataset": "sst2", "encoder": "lstm", "attention": "tanh", "normalizer": "softmax", "seed": 1}
    with pytest.raises(KeyError, match="sst2"):
        run_trial({**config, "tracking": tracking}, datasets={}, vectors=None, embedding_info={})
    (warning,) = [record.getMessage() for record in caplog.records if record.name == "trainables.tracking"]
    assert warning.startswith("could not mark MLflow run ") and " FAILED: " in warning and "\n" not in warning


@pytest.mark.parametrize(
    "error", [RuntimeError("restore failed on purpose"), KeyboardInterrupt()], ids=["error", "ctrl-c"]
)
def test_the_tuners_error_survives_mlflow_failing_afterwards(error, monkeypatch, caplog):
    """`fit` marks stopped trials' runs KILLED in `finally`; with the store gone (nothing listens at the
    URI) that fails too, and the tuner's error (or Ctrl-C) is still the one raised."""
    from sweep.config import load_preset
    from sweep.runner import Embeddings, Experiment, fit

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    uri = "http://127.0.0.1:9"  # port 9 (discard): nothing listens
    experiment = Experiment(MlflowClient(uri), "1", uri)

    def make_tuner(trainable):
        raise error

    with pytest.raises(type(error)) as raised:
        fit(make_tuner, load_preset("smoke"), {}, Embeddings(None, {}), experiment)
    assert raised.value is error
    (warning,) = [record.getMessage() for record in caplog.records if record.name == "trainables.tracking"]
    assert warning.startswith("could not mark the MLflow runs of stopped trials KILLED: ")
    assert "\n" not in warning


@pytest.mark.ray
def test_trial_resources_are_checked_against_the_nodes_and_the_autoscaler(ray_cluster, tmp_path, monkeypatch):
    """On the real local instance (2 CPUs, no GPU), then as the head of a `ray up` cluster whose
    autoscaler config declares a 4-CPU, 1-GPU worker type."""
    from sweep import cluster
    from sweep.cluster import ResourceRequestError, check_trial_fits

    monkeypatch.setattr(cluster, "LAUNCHER_CONFIG", tmp_path / "ray_bootstrap_config.yaml")
    check_trial_fits(2, 0, None)
    local = "needs a node with 4 CPUs and 1 GPU; the largest node of the Ray cluster has 2 CPUs and 0 GPUs"
    with pytest.raises(ResourceRequestError, match=local):
        check_trial_fits(4, 1, "auto")
    node_types = {"head": {"resources": {"CPU": 0}}, "gpu_worker": {"resources": {"CPU": 4, "GPU": 1}}}
    cluster.LAUNCHER_CONFIG.write_text(yaml.safe_dump({"available_node_types": node_types}))
    check_trial_fits(4, 1, "auto")  # the autoscaler can start a gpu_worker for it
    with pytest.raises(ResourceRequestError, match=r"\(with the nodes its autoscaler can start\) has 4 CPUs"):
        check_trial_fits(8, 1, "auto")
    with pytest.raises(ResourceRequestError, match=local):  # the runner's own instance: no autoscaler
        check_trial_fits(4, 1, None)


def test_overwrite_removes_only_the_experiments_own_folder(tmp_path):
    """`--overwrite` ends in `storage.remove_folder(root, name)`: a name that is not one plain folder name
    is refused, and a good one takes its folder and nothing beside or above it."""
    root = tmp_path / "ray_results"
    for folder in ("mine", "other"):
        (root / folder).mkdir(parents=True)
        (root / folder / "state.json").write_text("{}")
    (tmp_path / "mlflow.db").write_text("keep")
    for name in ("..", ".", "", "mine/..", "../ray_results"):
        with pytest.raises(ValueError, match="not a single folder name"):
            storage.remove_folder(str(root), name)
    storage.remove_folder(str(root), "mine")
    assert sorted(p.name for p in root.iterdir()) == ["other"] and (tmp_path / "mlflow.db").exists()
