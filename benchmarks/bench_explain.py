"""Time a trial's whole explanation phase on the real SST-2 test set, on one CPU thread.

Runs `trainables.explain.explain` exactly as a trial does (gradient and leave-one-out importance,
correlations and their chance levels, adversarial attention, permutation) with the sweep's default
settings, on a random-weight BiLSTM AttentionClassifier (embed 300, hidden 128) over the prepared SST-2
vocabulary: the cost depends on shapes, not weights. Run from the repository root:
python -m benchmarks.bench_explain [--normalizer sparsemax]. Prints `name: value` lines. Targets (1,821
sentences, 1 thread): gradient + LOO + correlations + chance levels under 10 s, chance levels at most twice
what the correlations cost when that target was set (2.93 s, scipy's kendalltau once per instance; the
correlations are vectorised since), adversarial search under 90 s at 500 steps. The erasure faithfulness a
trial also runs (trainables/faithfulness.py) is printed with its cost beside leave-one-out's and its share
of the phase.
"""

from __future__ import annotations

from benchmarks import common  # first: it pins numpy/torch to one thread before they load

# isort: split
import argparse
import dataclasses
import time
from pathlib import Path

import torch

from trainables.data import prepare
from trainables.explain import explain
from trainables.model import AttentionClassifier
from trainables.settings import ATTENTIONS, NORMALIZERS, CounterfactualSettings, ExplainSettings

IMPORTANCE_TARGET_S = 10.0  # gradient + leave-one-out + correlations + chance levels
# Chance levels at most twice the correlations' cost when the target was set (commit 3d05372, this script).
CORRELATION_WHEN_SET_S = 2.93
CHANCE_TARGET_S = 2 * CORRELATION_WHEN_SET_S
ADVERSARIAL_TARGET_S = 90.0  # at the default 500 steps
TARGET_STEPS = 500
TARGET_INSTANCES = common.SST_TEST_SIZE


def verdict(seconds: float, target: float, applies: str | None) -> str:
    """Whether `seconds` met `target` ("yes" or "NO"), or why the target does not apply to this run."""
    if applies is not None:
        return f"n/a ({applies})"
    return "yes" if seconds < target else "NO"


def main() -> None:
    defaults_explain, defaults_counterfactual = ExplainSettings(), CounterfactualSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attention", choices=ATTENTIONS, default="tanh")
    parser.add_argument("--normalizer", choices=NORMALIZERS, default="softmax")
    parser.add_argument("--explain-batch-size", type=int, default=defaults_explain.batch_size)
    parser.add_argument("--counterfactual-batch-size", type=int, default=defaults_counterfactual.batch_size)
    parser.add_argument("--steps", type=int, default=defaults_counterfactual.steps)
    parser.add_argument("--data-dir", type=Path, default=common.SHARED_DATA)
    parser.add_argument(
        "--max-examples",
        type=int,
        default=None,
        help="seeded sample per split (vocabulary from the sampled train), for quick checks",
    )
    args = parser.parse_args()
    for name in ("explain_batch_size", "counterfactual_batch_size", "steps", "max_examples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not (args.data_dir / "sst2").is_dir():
        print(f"skipped: no SST-2 folder at {args.data_dir / 'sst2'} (needs train/validation/test.csv)")
        return

    torch.set_num_threads(1)
    torch.manual_seed(1)
    started = time.perf_counter()
    data = prepare("sst2", args.data_dir, max_examples=args.max_examples)
    prepare_s = time.perf_counter() - started
    test = data.splits["test"]
    explain_settings = dataclasses.replace(defaults_explain, batch_size=args.explain_batch_size)
    counterfactual_settings = dataclasses.replace(
        defaults_counterfactual, batch_size=args.counterfactual_batch_size, steps=args.steps
    )
    model = AttentionClassifier(
        len(data.vocab), embed_dim=300, hidden_size=128, attention=args.attention, normalizer=args.normalizer
    )

    wall, cpu = time.perf_counter(), time.process_time()
    explanation = explain(model, test, explain_settings, counterfactual_settings, torch.device("cpu"), seed=1)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    times = {name: value for name, value in explanation.metrics.items() if name.startswith("time/")}
    phases = ("gradient", "loo", "correlation", "chance")
    importance_s = sum(times.get(f"time/{phase}_s", 0.0) for phase in phases)
    chance_ratio = times["time/chance_s"] / times["time/correlation_s"]
    adversarial_s = times.get("time/adversarial_s", float("nan"))
    permutation_s = times.get("time/permutation_s", float("nan"))
    faithfulness_s = times.get("time/faithfulness_s", float("nan"))
    subset = None if len(test) == TARGET_INSTANCES else f"target is for all {TARGET_INSTANCES} test sentences"
    other_steps = None if args.steps == TARGET_STEPS else f"target is for {TARGET_STEPS} steps"

    lengths = test.lengths
    for name, value in (
        ("data", args.data_dir / "sst2"),
        ("instances", len(test)),
        ("tokens", int(lengths.sum())),
        ("mean_length", f"{lengths.mean():.1f}"),
        ("max_length", int(lengths.max())),
        ("vocab", len(data.vocab)),
        ("model", f"lstm-{args.attention}-{args.normalizer} (random weights, embed 300, hidden 128)"),
        ("threads", torch.get_num_threads()),
        ("explain_batch_size", explain_settings.batch_size),
        ("loo_max_rows", explain_settings.loo_max_rows),
        ("counterfactual_batch_size", counterfactual_settings.batch_size),
        ("adversarial_steps", counterfactual_settings.steps),
        ("adversaries", counterfactual_settings.adversaries),
        ("permutations", counterfactual_settings.permutations),
        ("prepare_s", f"{prepare_s:.2f}"),
        *((name, f"{value:.2f}") for name, value in sorted(times.items())),
        ("explain_wall_s", f"{wall:.2f}"),
        ("explain_cpu_s", f"{cpu:.2f}"),
        ("gradient_loo_correlation_chance_s", f"{importance_s:.2f}"),
        ("gradient_loo_correlation_chance_target_s", f"{IMPORTANCE_TARGET_S:.0f}"),
        ("gradient_loo_correlation_chance_target_met", verdict(importance_s, IMPORTANCE_TARGET_S, subset)),
        ("chance_over_correlation", f"{chance_ratio:.2f}"),
        (
            "chance_target_s",
            f"{CHANCE_TARGET_S:.2f} (2 x the correlations' {CORRELATION_WHEN_SET_S} s when set)",
        ),
        ("chance_target_met", verdict(times["time/chance_s"], CHANCE_TARGET_S, subset)),
        ("adversarial_s", f"{adversarial_s:.2f}"),
        ("adversarial_target_s", f"{ADVERSARIAL_TARGET_S:.0f}"),
        (
            "adversarial_target_met",
            verdict(adversarial_s, ADVERSARIAL_TARGET_S, subset or other_steps),
        ),
        ("adversarial_frac_infeasible", f"{explanation.metrics['adversarial/all/frac_infeasible']:.3f}"),
        ("permutation_s", f"{permutation_s:.2f}"),
        ("faithfulness_s", f"{faithfulness_s:.2f}"),
        ("faithfulness_over_loo", f"{faithfulness_s / times['time/loo_s']:.2f}"),
        ("faithfulness_share_of_explain", f"{faithfulness_s / wall:.3f}"),
    ):
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
