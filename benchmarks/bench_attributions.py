"""Time every importance measure per 100 SST sentences on one CPU thread: gradient, LOO, IG, DeepLIFT, LIME.

Usage: python -m benchmarks.bench_attributions [--sentences 100] [--steps 50] [--samples 500]
A random-weight AttentionClassifier of the paper's size (vocab 15000, embed 300, hidden 128, tanh attention,
softmax) stands in for a trained one: the cost depends on shapes, not weights. Sentence lengths are a seeded
sample of SST-2's test split (`../shared/datasets/sst2/test.csv` beside the repository) when it is present,
else synthetic (mean about 19); token ids are random. Batches are built as `explain` builds them (sorted by
length, `--batch-size` instances). Prints `name: value` lines; `*_s` are wall seconds for the sample,
`*_cpu_s` this process's CPU seconds (they differ when other processes share the cores), and
`*_sst_test_s` scales the wall seconds to the 1,821 sentences of the SST-2 test set.
"""

from __future__ import annotations

from benchmarks import common  # first: it pins numpy/torch to one thread before they load

# isort: split

import argparse
import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from trainables.attributions import (
    DEFAULT_INTERNAL_BATCH_SIZE,
    DEFAULT_SAMPLES,
    DEFAULT_STEPS,
    attribution_importance,
)
from trainables.importance import DEFAULT_MAX_ROWS, gradient_importance, leave_one_out_importance
from trainables.model import AttentionClassifier
from trainables.registry import ATTRIBUTION_METHODS


def sentence_lengths(path: Path, n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """`n` SST test lengths sampled without replacement (or synthetic ones), and their source."""
    lengths, source = common.sst_test_lengths(rng, path)
    return rng.choice(lengths, size=min(n, len(lengths)), replace=False), source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=common.SST_TEST)
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument(
        "--batch-size", type=int, default=256, help="instances per batch (explain.batch_size)"
    )
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="IG steps (explain.ig_steps)")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="LIME samples")
    parser.add_argument("--internal-batch-size", type=int, default=DEFAULT_INTERNAL_BATCH_SIZE)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in ("sentences", "batch_size", "steps", "samples", "internal_batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = AttentionClassifier(common.VOCAB_SIZE, embed_dim=300, hidden_size=128, attention="tanh").eval()
    lengths, source = sentence_lengths(args.data, args.sentences, rng)
    batches = common.make_batches(lengths, args.batch_size, rng)
    internal = args.internal_batch_size
    methods: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "gradient": lambda t, m: gradient_importance(model, t, m),
        "loo": lambda t, m: leave_one_out_importance(model, t, m, DEFAULT_MAX_ROWS),
        **{
            method: functools.partial(
                attribution_importance,
                method,
                model,
                steps=args.steps,
                samples=args.samples,
                internal_batch_size=internal,
                seed=args.seed,
            )
            for method in ATTRIBUTION_METHODS
        },
    }
    warm_tokens, warm_mask = batches[0][0][:2], batches[0][1][:2]
    for compute in methods.values():  # one-time allocations, kernel selection, lazy imports (sklearn)
        compute(warm_tokens, warm_mask)

    print(f"lengths: {source}")
    print(f"sentences: {len(lengths)}")
    print(f"tokens: {int(lengths.sum())}")
    print(f"mean_length: {lengths.mean():.1f}")
    print(f"batch_size: {args.batch_size}")
    print(f"ig_steps: {args.steps}")
    print(f"lime_samples: {args.samples}")
    print(f"internal_batch_size: {internal}")
    print(f"threads: {torch.get_num_threads()}")
    scale = common.SST_TEST_SIZE / len(lengths)
    for name, compute in methods.items():
        wall, cpu = common.timed(lambda compute=compute: [compute(*batch) for batch in batches])
        print(f"{name}_s: {wall:.2f}")
        print(f"{name}_cpu_s: {cpu:.2f}")
        print(f"{name}_sst_test_s: {wall * scale:.1f}")


if __name__ == "__main__":
    main()
