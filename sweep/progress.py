"""What a person sees while a sweep runs: one line per trial per epoch, and one when a trial ends.

Replaces Ray Tune's own console output (a status table every 30 s, a config dump and a metric dump per
trial), which `--ray-output` brings back. The lines come from a Tune callback in the driver:

  [ 2m05s] sst2-lstm-tanh-softmax-s1 epoch 4/≤30 loss 0.412 val AUC 0.871 no gain 2/5 | 1/4 done, ~3m00s left
  [ 3m40s] sst2-lstm-tanh-softmax-s1 finished in 1m52s, 11 epochs, test accuracy 0.812 | 2/4 done, ~2m10s left
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ray.tune import Callback

from sweep.summary import last_line
from trainables.settings import run_name


def format_duration(seconds: float) -> str:
    """`42s`, `3m05s`, `2h07m`: short enough for a progress line."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class SweepClock:
    """Time spent per trial, to estimate how long the rest of the sweep takes.

    A trial's expected duration is the mean of the trials that finished in this session; before any
    finishes, the worst case of the running ones (seconds per epoch × at most `max_epochs`), an upper bound.
    """

    total_trials: int
    concurrency: int
    max_epochs: int
    ended: set[str] = field(default_factory=set)  # trials finished or failed, in any session
    durations: list[float] = field(default_factory=list)  # seconds of the trials finished in this session
    running: dict[str, tuple[float, int]] = field(default_factory=dict)  # trial -> (seconds, epochs)

    def trial_estimate(self) -> float | None:
        if self.durations:
            return sum(self.durations) / len(self.durations)
        per_epoch = [seconds / epochs for seconds, epochs in self.running.values() if epochs]
        return max(per_epoch) * self.max_epochs if per_epoch else None

    def seconds_left(self) -> float | None:
        """Remaining work divided among the trials that run at once; None until something is measured."""
        estimate = self.trial_estimate()
        if estimate is None:
            return None
        not_started = max(self.total_trials - len(self.ended) - len(self.running), 0)
        work = not_started * estimate + sum(max(estimate - s, 0.0) for s, _ in self.running.values())
        return work / max(1, min(self.concurrency, self.total_trials - len(self.ended)))


ENDED = ("TERMINATED", "ERROR")  # Ray Tune's trial statuses of a finished and a failed trial


class ProgressLines(Callback):
    """A Tune callback printing one line per trial per epoch and one when a trial ends, to stdout.

    Tune pickles its callbacks with the experiment, so `setup` starts a fresh clock for a resume.
    """

    def __init__(self, total_trials: int, concurrency: int, max_epochs: int, patience: int):
        self.total_trials, self.concurrency = total_trials, concurrency
        self.max_epochs, self.patience = max_epochs, patience
        self._start_clock()

    def _start_clock(self) -> None:
        self.started = time.monotonic()
        self.clock = SweepClock(self.total_trials, self.concurrency, self.max_epochs)

    def setup(self, **info: Any) -> None:
        """Tune starting (or resuming) the experiment."""
        self._start_clock()
        print(
            f"{self.total_trials} trials, at most {self.concurrency} at a time; "
            "a line per trial per epoch (--ray-output adds Ray Tune's own tables)",
            flush=True,
        )

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if "epochs_without_gain" not in result:  # not an epoch: a run found FINISHED on resume
            return
        epochs = int(result["epoch"]) + 1
        self.clock.running[run_name(trial.config)] = (float(result["time_total_s"]), epochs)
        self._print(
            trials,
            trial,
            f"epoch {epochs}/≤{self.max_epochs} loss {result['train/loss']:.3f} "
            f"val AUC {result['val/auc']:.3f} no gain {int(result['epochs_without_gain'])}/{self.patience}",
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        seconds = float(result.get("time_total_s", 0.0))
        self._end(trial)
        self.clock.durations.append(seconds)
        summary = [f"finished in {format_duration(seconds)}"]
        if "epochs_trained" in result:
            summary.append(f"{int(result['epochs_trained'])} epochs")
        if "test/accuracy" in result:
            summary.append(f"test accuracy {result['test/accuracy']:.3f}")
        self._print(trials, trial, ", ".join(summary))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial)
        reason = last_line(str(getattr(trial, "error_msg", "") or "")) or "see traceback.txt in MLflow"
        self._print(trials, trial, f"FAILED: {reason}")

    def _end(self, trial: Any) -> None:
        name = run_name(trial.config)
        self.clock.running.pop(name, None)
        self.clock.ended.add(name)

    def _print(self, trials: list, trial: Any, text: str) -> None:
        self.clock.ended.update(run_name(t.config) for t in trials if t.status in ENDED)
        left = self.clock.seconds_left()
        eta = f"~{format_duration(left)} left" if left is not None else "time left not known yet"
        elapsed = format_duration(time.monotonic() - self.started)
        done = f"{len(self.clock.ended)}/{self.total_trials} done"
        print(f"[{elapsed:>6}] {run_name(trial.config)} {text} | {done}, {eta}", flush=True)
