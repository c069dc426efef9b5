"""The sweep's progress lines and end-of-sweep summary: durations, time-left estimates, every grid trial."""

from __future__ import annotations

import pytest
from ray.tune import Result

from sweep.progress import SweepClock, format_duration
from sweep.summary import summarize, tally


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (42.4, "42s"),
        (59.6, "1m00s"),
        (185, "3m05s"),
        (3599, "59m59s"),
        (7620, "2h07m"),
        (-3, "0s"),
    ],
)
def test_durations_read_as_seconds_minutes_or_hours(seconds, text):
    assert format_duration(seconds) == text


def test_nothing_measured_means_no_estimate():
    assert SweepClock(total_trials=4, concurrency=2, max_epochs=10).seconds_left() is None


def test_before_any_trial_finishes_the_estimate_is_the_worst_case_of_the_running_ones():
    clock = SweepClock(total_trials=4, concurrency=2, max_epochs=10)
    clock.running = {"a": (6.0, 2), "b": (2.0, 2)}  # 3 s and 1 s per epoch: a trial takes at most 30 s
    # work left: 2 not started × 30 + (30 − 6) + (30 − 2) = 112 s, shared by 2 at a time
    assert clock.seconds_left() == pytest.approx(56.0)


def test_once_trials_finish_their_mean_duration_is_the_estimate():
    clock = SweepClock(total_trials=5, concurrency=2, max_epochs=10, ended={"a", "b"}, durations=[20.0, 40.0])
    clock.running = {"c": (10.0, 1), "d": (45.0, 3)}  # d already took longer than the mean: 0 left
    # work left: 1 not started × 30 + (30 − 10) + 0 = 50 s, shared by 2 at a time
    assert clock.seconds_left() == pytest.approx(25.0)


def test_the_last_trial_has_no_one_to_share_its_work_with():
    clock = SweepClock(total_trials=3, concurrency=2, max_epochs=10, ended={"a", "b"}, durations=[30.0])
    clock.running = {"c": (12.0, 4)}
    assert clock.seconds_left() == pytest.approx(18.0)


def test_the_summary_lists_trials_that_never_started_as_unfinished():
    names = ["sst2-lstm-tanh-softmax-s1", "sst2-lstm-tanh-softmax-s2"]
    summary = summarize([], names)
    assert list(summary["trial"]) == names
    assert list(summary["status"]) == ["UNFINISHED", "UNFINISHED"]
    assert list(summary["epochs_trained"]) == [0, 0]
    assert tally(summary) == "2 trials: 0 finished, 0 failed, 2 unfinished"


def test_the_summary_reads_stopped_failed_and_pending_trials_from_tune_results():
    config = {"dataset": "sst2", "encoder": "lstm", "attention": "tanh", "seed": 1}
    stopped = Result(
        metrics={"epoch": 4, "config": {**config, "normalizer": "softmax"}},
        checkpoint=None,
        error=None,
        path="",
    )
    failed = Result(
        metrics={"config": {**config, "normalizer": "sparsemax"}},
        checkpoint=None,
        error=RuntimeError("Traceback ...\nRuntimeError: out of memory\n"),
        path="",
    )
    pending = Result(metrics={}, checkpoint=None, error=None, path="")  # Ctrl-C before it had a config
    names = ["sst2-lstm-tanh-softmax-s1", "sst2-lstm-tanh-sparsemax-s1", "sst2-lstm-tanh-softmax-s2"]
    summary = summarize([stopped, failed, pending], names).set_index("trial")
    assert summary.loc["sst2-lstm-tanh-softmax-s1", ["status", "epochs_trained"]].tolist() == [
        "UNFINISHED",
        5,
    ]
    assert summary.loc["sst2-lstm-tanh-sparsemax-s1", "status"] == "FAILED"
    assert summary.loc["sst2-lstm-tanh-sparsemax-s1", "error"] == "RuntimeError: out of memory"
    assert summary.loc["sst2-lstm-tanh-softmax-s2", ["status", "epochs_trained"]].tolist() == [
        "UNFINISHED",
        0,
    ]
