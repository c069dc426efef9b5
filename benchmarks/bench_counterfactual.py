"""Time the adversarial-attention search and the permutation test on SST-sized data, on one CPU thread.

Usage: python -m benchmarks.bench_counterfactual [--batch-size N] [--steps 500] [--permutations 100]
A random-weight AttentionClassifier (vocab 15000, embed 300, hidden 128) stands in for a trained one: the
cost depends on shapes, not weights. Lengths come from SST-2's test split when it is present.
"""

from __future__ import annotations

from benchmarks import common  # first: it pins numpy/torch to one thread before they load

# isort: split
import argparse
import time

import numpy as np
import torch

from trainables.counterfactual import adversarial_attention, permutation_output_diff
from trainables.model import AttentionClassifier


def length_buckets(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Instance indices sorted by length and cut into batches, so each batch pads little."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def frozen_batches(
    model: AttentionClassifier, lengths: list[int], batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(hidden [B, T, D], mask [B, T], attention [B, T]) per bucket, from random token ids."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    with torch.no_grad():
        for bucket in length_buckets(lengths, batch_size):
            sizes = torch.tensor([lengths[index] for index in bucket])
            mask = torch.arange(int(sizes.max())) < sizes.unsqueeze(1)
            tokens = torch.randint(1, common.VOCAB_SIZE, mask.shape, generator=generator) * mask
            hidden = model.encode(model.embed(tokens), mask)
            batches.append((hidden, mask, model.attend(hidden, mask)))
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--permutations", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = AttentionClassifier(vocab_size=common.VOCAB_SIZE, embed_dim=300, hidden_size=128).eval()
    lengths_array, source = common.sst_test_lengths(np.random.default_rng(0))
    lengths = [int(length) for length in lengths_array]
    start = time.perf_counter()
    batches = frozen_batches(model, lengths, args.batch_size)
    encode_seconds = time.perf_counter() - start

    start = time.perf_counter()
    found = sum(
        int(adversarial_attention(model.decode, *batch, steps=args.steps).found.sum()) for batch in batches
    )
    adversarial_seconds = time.perf_counter() - start

    start = time.perf_counter()
    for batch in batches:
        permutation_output_diff(model.decode, *batch, n_permutations=args.permutations)
    permutation_seconds = time.perf_counter() - start

    count = len(lengths)
    for name, value in (
        ("lengths_source", source),
        ("instances", count),
        ("mean_length", f"{sum(lengths) / count:.1f}"),
        ("max_length", max(lengths)),
        ("batch_size", args.batch_size),
        ("batches", len(batches)),
        ("threads", torch.get_num_threads()),
        ("encode_seconds", f"{encode_seconds:.2f}"),
        ("adversarial_steps", args.steps),
        ("adversarial_seconds", f"{adversarial_seconds:.2f}"),
        ("adversarial_instances_per_second", f"{count / adversarial_seconds:.1f}"),
        ("adversarial_found_fraction", f"{found / count:.3f}"),
        ("permutations", args.permutations),
        ("permutation_seconds", f"{permutation_seconds:.2f}"),
        ("permutation_instances_per_second", f"{count / permutation_seconds:.1f}"),
    ):
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
