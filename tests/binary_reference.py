"""The numbers a small binary trial gives, pinned so that changes for other tasks cannot move them.

`reference_metrics` trains and explains two tiny models (BiLSTM with additive sparsemax attention, CNN
with dot softmax attention) on generated SST-style data, with every measure on: gradient, leave-one-out,
IG, DeepLIFT, erasure faithfulness, correlations, chance levels, adversarial search and permutation.
`tests/data/binary_reference.json` holds what it returned before multi-class (NLI) support was added
(commit 43159b4); `tests/test_binary_reference.py` checks the code still returns them. Rewrite the file
only for a change that is meant to move binary results: `python -m tests.binary_reference --write`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from tests.helpers import write_sst_splits
from trainables.data import prepare
from trainables.explain import explain
from trainables.model import AttentionClassifier
from trainables.settings import CounterfactualSettings, ExplainSettings
from trainables.train import classification_metrics, make_optimizer, predict, train_epoch

REFERENCE = Path(__file__).parent / "data" / "binary_reference.json"
SETTINGS = (("lstm", "tanh", "sparsemax"), ("cnn", "dot", "softmax"))


def reference_metrics() -> dict[str, dict[str, float]]:
    """Per setting (`encoder-attention-normalizer`), the test metrics and every explanation metric."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        data = prepare("sst2", write_sst_splits(Path(folder)), max_examples=80)
    device = torch.device("cpu")
    explain_settings = ExplainSettings(
        batch_size=16, attributions=("integrated_gradients", "deeplift"), ig_steps=8
    )
    counterfactual = CounterfactualSettings(steps=20, permutations=10, batch_size=16)
    results = {}
    for encoder, attention, normalizer in SETTINGS:
        torch.manual_seed(3)
        model = AttentionClassifier(
            len(data.vocab), 16, 16, encoder=encoder, attention=attention, normalizer=normalizer
        ).double()  # float64: the same numbers on any CPU (float32 kernels differ between AVX2 and AVX-512)
        optimizer = make_optimizer(model, 1e-2, 1e-5)
        for epoch in range(3):
            train_epoch(model, optimizer, data.splits["train"], 16, np.random.default_rng([3, epoch]), device)
        test = data.splits["test"]
        metrics = classification_metrics(test.labels, predict(model, test, 32, device))
        metrics.update(explain(model, test, explain_settings, counterfactual, device, seed=3).metrics)
        results[f"{encoder}-{attention}-{normalizer}"] = {
            name: float(value) for name, value in sorted(metrics.items()) if not name.startswith("time/")
        }
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {REFERENCE.name}")
    if parser.parse_args().write:
        REFERENCE.write_text(json.dumps(reference_metrics(), indent=1, sort_keys=True) + "\n")
        print(f"wrote {REFERENCE}")
