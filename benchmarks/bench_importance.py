"""Time batched gradient and leave-one-out importance against per-instance loops, on one CPU thread.

Workload: the explanation phase for the SST-2 test set (1,821 sentences) with a random-weight classifier
of the paper's size. Sentence lengths come from the test CSV when present (else synthetic, mean 19);
token ids are random. Run from the repository root: python -m benchmarks.bench_importance
Prints `name: value` lines. Target: gradient + LOO under ~10 s, leaving room for the correlations.
"""

from __future__ import annotations

from benchmarks import common  # first: it pins numpy/torch to one thread before they load

# isort: split
import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from trainables.importance import (
    DEFAULT_MAX_ROWS,
    gradient_importance,
    leave_one_out_importance,
)
from trainables.model import AttentionClassifier

SUBSET = 200


def unbatch(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """The unpadded sentences [L] of the batches."""
    return [
        row[: int(length)]
        for tokens, mask in batches
        for row, length in zip(tokens, mask.sum(1), strict=True)
    ]


def probability(model: AttentionClassifier, sentence: torch.Tensor) -> torch.Tensor:
    """P(label 1) of one unpadded sentence [L] run alone; an empty one is a single masked column."""
    if len(sentence) == 0:
        logits, _ = model(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1, dtype=torch.bool))
    else:
        logits, _ = model(sentence.unsqueeze(0), torch.ones(1, len(sentence), dtype=torch.bool))
    return torch.sigmoid(logits)[0]


def gradient_one_by_one(model: AttentionClassifier, sentences: list[torch.Tensor]) -> None:
    """Reference gradient x input: one forward and one backward per sentence."""
    for sentence in sentences:
        embeddings = model.embed(sentence.unsqueeze(0)).detach().requires_grad_(True)
        logits, _ = model.forward_embeddings(embeddings, torch.ones(1, len(sentence), dtype=torch.bool))
        p = torch.sigmoid(logits)[0]
        (gradient,) = torch.autograd.grad(torch.where(p >= 0.5, p, 1 - p), embeddings)
        (gradient * embeddings).sum(-1).abs()


def leave_one_out_one_by_one(model: AttentionClassifier, sentences: list[torch.Tensor]) -> None:
    """Reference leave-one-out: one forward per sentence and per deleted token."""
    with torch.no_grad():
        for sentence in sentences:
            full = probability(model, sentence)
            for position in range(len(sentence)):
                shorter = torch.cat([sentence[:position], sentence[position + 1 :]])
                (full - probability(model, shorter)).abs()


def time_one_by_one(
    work: Callable[[list[torch.Tensor]], None],
    sentences: list[torch.Tensor],
    passes: np.ndarray,
    budget: float,
    seed: int,
) -> tuple[float, float, str]:
    """Wall and CPU seconds for all sentences, or, when that would exceed budget, extrapolated from a subset.

    One-sentence passes cost about the same whatever the length (overhead dominates), so the extrapolation
    scales by the number of forward passes per sentence [N], not by the number of tokens.
    """
    if len(sentences) <= SUBSET:
        return *common.timed(lambda: work(sentences)), "measured"
    subset = np.random.default_rng(seed).choice(len(sentences), size=SUBSET, replace=False)
    wall, cpu = common.timed(lambda: work([sentences[i] for i in subset]))
    scale = passes.sum() / passes[subset].sum()
    if wall * scale <= budget:
        return *common.timed(lambda: work(sentences)), "measured"
    return wall * scale, cpu * scale, f"extrapolated from {SUBSET} random sentences of {len(sentences)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=common.SST_TEST)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS)
    parser.add_argument("--budget", type=float, default=60.0, help="longest full per-instance run, seconds")
    parser.add_argument("--skip-one-by-one", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = AttentionClassifier(common.VOCAB_SIZE, embed_dim=300, hidden_size=128, attention="tanh").eval()
    lengths, source = common.sst_test_lengths(rng, args.data)
    batches = common.make_batches(lengths, args.batch_size, rng)
    gradient_importance(model, *batches[0])  # warm-up: one-time allocations and kernel selection
    leave_one_out_importance(model, *batches[0], max_rows=args.max_rows)

    gradient, gradient_cpu = common.timed(lambda: [gradient_importance(model, *batch) for batch in batches])
    loo, loo_cpu = common.timed(
        lambda: [leave_one_out_importance(model, *batch, max_rows=args.max_rows) for batch in batches]
    )
    print(f"lengths: {source}")
    print(f"sentences: {len(lengths)}")
    print(f"tokens: {int(lengths.sum())}")
    print(f"mean_length: {lengths.mean():.1f}")
    print(f"batch_size: {args.batch_size}")
    print(f"max_rows: {args.max_rows}")
    print(f"threads: {torch.get_num_threads()}")
    print(f"gradient_batched_s: {gradient:.2f}")
    print(f"loo_batched_s: {loo:.2f}")
    print(f"gradient_plus_loo_batched_s: {gradient + loo:.2f}")
    print(f"gradient_batched_cpu_s: {gradient_cpu:.2f}")
    print(f"loo_batched_cpu_s: {loo_cpu:.2f}")
    if args.skip_one_by_one:
        return
    sentences = unbatch(batches)
    sizes = np.array([len(sentence) for sentence in sentences])
    gradient_loop, gradient_loop_cpu, gradient_note = time_one_by_one(
        lambda subset: gradient_one_by_one(model, subset),
        sentences,
        np.ones_like(sizes),
        args.budget,
        args.seed,
    )
    loo_loop, loo_loop_cpu, loo_note = time_one_by_one(
        lambda subset: leave_one_out_one_by_one(model, subset), sentences, sizes + 1, args.budget, args.seed
    )
    print(f"gradient_per_instance_s: {gradient_loop:.2f} ({gradient_note})")
    print(f"loo_per_instance_s: {loo_loop:.2f} ({loo_note})")
    print(f"gradient_per_instance_cpu_s: {gradient_loop_cpu:.2f}")
    print(f"loo_per_instance_cpu_s: {loo_loop_cpu:.2f}")
    print(f"gradient_speedup: {gradient_loop / gradient:.1f}")
    print(f"loo_speedup: {loo_loop / loo:.1f}")
    print(f"gradient_speedup_cpu: {gradient_loop_cpu / gradient_cpu:.1f}")
    print(f"loo_speedup_cpu: {loo_loop_cpu / loo_cpu:.1f}")


if __name__ == "__main__":
    main()
