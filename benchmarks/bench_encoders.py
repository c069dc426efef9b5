"""Time one training epoch of each encoder trained from scratch on the real SST-2 training split, one thread.

The sweep's default sizes (embedding 300, hidden 128, the `train.transformer_*` defaults) and its training
step (`make_training`, `train_epoch`: batch 32 in length buckets), tanh attention and softmax, random
initial embeddings. The encoders take turns, `--rounds` times, so that load from other processes falls
on all of them alike; each figure is the median over rounds, process CPU seconds beside wall seconds
(wall above CPU: time spent waiting for a core). Run from the repository root:
python -m benchmarks.bench_encoders [--encoders lstm transformer] [--rounds 2]. Prints `name: value` lines.
"""

from __future__ import annotations

from benchmarks import common  # first: it pins numpy/torch to one thread before they load

# isort: split
import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from trainables.data import prepare
from trainables.model import AttentionClassifier, encoder_options
from trainables.settings import ENCODERS, PRETRAINED_ENCODERS, TrainSettings
from trainables.train import make_training, train_epoch

FROM_SCRATCH = [encoder for encoder in ENCODERS if encoder not in PRETRAINED_ENCODERS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", choices=FROM_SCRATCH, default=FROM_SCRATCH)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=common.SHARED_DATA)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not (args.data_dir / "sst2").is_dir():
        print(f"skipped: no SST-2 folder at {args.data_dir / 'sst2'} (needs train/validation/test.csv)")
        return

    torch.set_num_threads(1)
    data = prepare("sst2", args.data_dir)
    train, settings, cpu = data.splits["train"], TrainSettings(), torch.device("cpu")
    walls: dict[str, list[float]] = {encoder: [] for encoder in args.encoders}
    cpus: dict[str, list[float]] = {encoder: [] for encoder in args.encoders}
    for round_ in range(args.rounds):
        for encoder in args.encoders:
            torch.manual_seed(1)
            model = AttentionClassifier(
                len(data.vocab),
                settings.embed_dim,
                settings.hidden_size,
                encoder=encoder,
                **encoder_options(encoder, settings, data.special),
            )
            optimizer, scheduler = make_training(model, encoder, settings, len(train))
            rng = np.random.default_rng([1, round_])
            wall, cpu_s = common.timed(
                lambda: train_epoch(model, optimizer, train, settings.batch_size, rng, cpu, scheduler)  # noqa: B023
            )
            walls[encoder].append(wall)
            cpus[encoder].append(cpu_s)

    print(f"data: {args.data_dir / 'sst2'}")
    print(f"train_sentences: {len(train)}")
    print(f"train_tokens: {int(train.lengths.sum())}")
    print(f"threads: {torch.get_num_threads()}")
    print(f"rounds: {args.rounds}")
    for encoder in args.encoders:
        print(f"{encoder}_epoch_wall_s: {statistics.median(walls[encoder]):.2f}")
        print(f"{encoder}_epoch_cpu_s: {statistics.median(cpus[encoder]):.2f}")
    if "lstm" in args.encoders:
        for encoder in args.encoders:
            if encoder != "lstm":
                ratio = statistics.median(cpus[encoder]) / statistics.median(cpus["lstm"])
                print(f"{encoder}_over_lstm_cpu: {ratio:.2f}")


if __name__ == "__main__":
    main()
