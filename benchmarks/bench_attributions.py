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
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from trainables.attributions import (
    DEFAULT_INTERNAL_BATCH_SIZE,
    DEFAULT_SAMPLES,
    DEFAULT_STEPS,
    deeplift_importance,
    integrated_gradients_importance,
    lime_importance,
)
from trainables.importance import DEFAULT_MAX_ROWS, gradient_importance, leave_one_out_importance
from trainables.model import AttentionClassifier

VOCAB_SIZE = 15000


def sentence_lengths(path: Path, n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """`n` SST test lengths sampled without replacement (or synthetic ones), and their source."""
    lengths, source = common.sst_test_lengths(rng, path)
    return rng.choice(lengths, size=min(n, len(lengths)), replace=False), source


def make_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random-token sentences sorted by length into padded (tokens [B, T], mask [B, T]) batches."""
    ordered = np.sort(lengths)
    batches = []
    for start in range(0, len(ordered), batch_size):
        chunk = torch.from_numpy(ordered[start : start + batch_size])
        mask = torch.arange(int(chunk.max())) < chunk.unsqueeze(1)
        tokens = torch.from_numpy(rng.integers(1, VOCAB_SIZE, size=tuple(mask.shape))) * mask
        batches.append((tokens, mask))
    return batches


def timed(work: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


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
    model = AttentionClassifier(VOCAB_SIZE, embed_dim=300, hidden_size=128, attention="tanh").eval()
    lengths, source = sentence_lengths(args.data, args.sentences, rng)
    batches = make_batches(lengths, args.batch_size, rng)
    internal = args.internal_batch_size
    methods: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "gradient": lambda t, m: gradient_importance(model, t, m),
        "loo": lambda t, m: leave_one_out_importance(model, t, m, DEFAULT_MAX_ROWS),
        "integrated_gradients": lambda t, m: integrated_gradients_importance(
            model, t, m, args.steps, internal
        ),
        "deeplift": lambda t, m: deeplift_importance(model, t, m, internal),
        "lime": lambda t, m: lime_importance(model, t, m, args.samples, internal, args.seed),
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
        wall, cpu = timed(lambda compute=compute: [compute(*batch) for batch in batches])
        print(f"{name}_s: {wall:.2f}")
        print(f"{name}_cpu_s: {cpu:.2f}")
        print(f"{name}_sst_test_s: {wall * scale:.1f}")


if __name__ == "__main__":
    main()
