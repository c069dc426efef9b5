"""Training and evaluation as in the papers: Adam (AMSGrad), length buckets, early stopping on AUC."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from torch import nn

from trainables.data import Split, length_batches
from trainables.model import AttentionClassifier


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam with AMSGrad, as Jain & Wallace.

    The fused kernel computes the same update as the default one but steps the dense 4.5M-parameter SST
    embedding in 3.6 ms instead of 32 ms (1 CPU thread), which makes a training step about 2.5x faster.
    """
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, amsgrad=True, fused=True)


def train_epoch(
    model: AttentionClassifier,
    optimizer: torch.optim.Optimizer,
    split: Split,
    batch_size: int,
    rng: np.random.Generator,
    device: torch.device,
) -> float:
    """One pass over `split` in shuffled length buckets; returns the mean binary cross-entropy."""
    model.train()
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    labels = torch.tensor(split.labels, dtype=torch.float32)
    total = 0.0
    for batch in length_batches(split.lengths, batch_size, rng):
        logits, _ = model(*split.batch(batch, device))
        loss = loss_fn(logits, labels[batch].to(device))
        optimizer.zero_grad(set_to_none=True)
        (loss / len(batch)).backward()
        optimizer.step()
        total += loss.item()
    return total / len(split)


@torch.no_grad()
def predict(model: AttentionClassifier, split: Split, batch_size: int, device: torch.device) -> np.ndarray:
    """P(label 1) for every instance of `split`, in the split's order."""
    model.eval()
    probs = np.empty(len(split), dtype=np.float64)
    for batch in length_batches(split.lengths, batch_size):
        logits, _ = model(*split.batch(batch, device))
        probs[batch] = torch.sigmoid(logits).double().cpu().numpy()
    return probs


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy, macro F1 (threshold 0.5) and ROC-AUC; AUC is NaN when only one class is present."""
    predictions = (probs >= 0.5).astype(int)
    auc = roc_auc_score(labels, probs) if len(np.unique(labels)) == 2 else float("nan")
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "f1": float(f1_score(labels, predictions, average="macro")),
        "auc": float(auc),
    }


@dataclass
class EarlyStopping:
    """Tracks the best validation AUC and its weights; `should_stop` after `patience` epochs without gain.

    Checkpointed as the plain dict of `state_dict` (numbers and tensors), so it loads with
    `torch.load(weights_only=True)` and survives renaming this class.
    """

    patience: int
    best_auc: float = -np.inf
    best_epoch: int = -1
    epochs_without_gain: int = 0
    best_state: dict = field(default_factory=dict)

    def update(self, epoch: int, auc: float, model: nn.Module) -> None:
        if auc > self.best_auc:
            self.best_auc, self.best_epoch, self.epochs_without_gain = auc, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.epochs_without_gain += 1

    @property
    def should_stop(self) -> bool:
        return self.epochs_without_gain >= self.patience

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict) -> EarlyStopping:
        return cls(**state)
