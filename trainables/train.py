"""Training and evaluation as in the papers: Adam (AMSGrad), length buckets, early stopping on AUC; a
pretrained encoder is fine-tuned with AdamW, its own learning rate, and linear warm-up and decay."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from torch import nn

from trainables.data import Split, length_batches
from trainables.model import AttentionClassifier
from trainables.outputs import class_probabilities
from trainables.settings import PRETRAINED_ENCODERS, TrainSettings

Scheduler = torch.optim.lr_scheduler.LambdaLR


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam with AMSGrad, as Jain & Wallace.

    The fused kernel computes the same update as the default one but steps the dense 4.5M-parameter SST
    embedding in 3.6 ms instead of 32 ms (1 CPU thread), which makes a training step about 2.5x faster.
    """
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, amsgrad=True, fused=True)


def make_training(
    model: AttentionClassifier, encoder: str, train: TrainSettings, train_size: int
) -> tuple[torch.optim.Optimizer, Scheduler | None]:
    """The optimizer of a trial, and its learning-rate schedule (None: constant).

    Encoders trained from scratch: `make_optimizer` at `train.lr`. A pretrained encoder is fine-tuned as
    BERT and DistilBERT are: AdamW, its pretrained weights at `train.pretrained_lr` and the new pooling
    attention and decoder at `train.lr`, both rising linearly from 0 over the first `train.warmup` of all
    `max_epochs` x batches-per-epoch steps, then falling linearly to 0 at the last.
    """
    if encoder not in PRETRAINED_ENCODERS:
        return make_optimizer(model, train.lr, train.weight_decay), None
    pretrained = list(model.encoder.parameters())
    ids = {id(parameter) for parameter in pretrained}
    head = [parameter for parameter in model.parameters() if id(parameter) not in ids]
    groups = [{"params": pretrained, "lr": train.pretrained_lr}, {"params": head, "lr": train.lr}]
    optimizer = torch.optim.AdamW(groups, weight_decay=train.weight_decay, fused=True)
    steps = train.max_epochs * math.ceil(train_size / train.batch_size)
    schedule = functools.partial(warmup_linear, warmup=round(train.warmup * steps), total=steps)
    return optimizer, Scheduler(optimizer, schedule)


def warmup_linear(step: int, warmup: int, total: int) -> float:
    """The learning-rate factor at optimizer step `step` (from 0): (step + 1) / warmup for the first
    `warmup` steps, then linear from 1 down to 0 after the last of `total` steps."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def train_epoch(
    model: AttentionClassifier,
    optimizer: torch.optim.Optimizer,
    split: Split,
    batch_size: int,
    rng: np.random.Generator,
    device: torch.device,
    scheduler: Scheduler | None = None,
    mixed_precision: bool = False,
) -> float:
    """One pass over `split` in shuffled length buckets; returns the mean cross-entropy (binary for a
    two-class model's one logit).

    `scheduler` steps after every optimizer step; `mixed_precision` runs the forward passes under
    bfloat16 autocast on the model's device (the loss is taken in float32).
    """
    model.train()
    if model.num_classes == 2:
        loss_fn, labels = (
            nn.BCEWithLogitsLoss(reduction="sum"),
            torch.tensor(split.labels, dtype=torch.float32),
        )
    else:
        loss_fn, labels = nn.CrossEntropyLoss(reduction="sum"), torch.tensor(split.labels, dtype=torch.long)
    total = 0.0
    for batch in length_batches(split.lengths, batch_size, rng):
        with autocast(device, mixed_precision):
            logits, _ = model(*split.batch(batch, device))
        loss = loss_fn(logits.float(), labels[batch].to(device))
        optimizer.zero_grad(set_to_none=True)
        (loss / len(batch)).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.item()
    return total / len(split)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on `device` when enabled (no gradient scaling needed, unlike float16)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.no_grad()
def predict(model: AttentionClassifier, split: Split, batch_size: int, device: torch.device) -> np.ndarray:
    """For every instance of `split`, in the split's order: P(label 1) [N] for two classes, else the class
    probabilities [N, C]."""
    model.eval()
    shape = (len(split),) if model.num_classes == 2 else (len(split), model.num_classes)
    probs = np.empty(shape, dtype=np.float64)
    for batch in length_batches(split.lengths, batch_size):
        logits, _ = model(*split.batch(batch, device))
        if logits.ndim == 1:
            probs[batch] = torch.sigmoid(logits).double().cpu().numpy()
        else:
            probs[batch] = class_probabilities(logits).cpu().numpy()
    return probs


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy, macro F1 and ROC-AUC from P(label 1) [N] (threshold 0.5) or class probabilities [N, C]
    (the most probable class; AUC one-vs-rest, macro-averaged). AUC is NaN unless every class is present."""
    if probs.ndim == 2:
        predictions = probs.argmax(1)
        classes = np.arange(probs.shape[1])
        every_class = set(np.unique(labels).tolist()) == set(classes.tolist())
        auc = roc_auc_score(labels, probs, multi_class="ovr", labels=classes) if every_class else float("nan")
        return {
            "accuracy": float(accuracy_score(labels, predictions)),
            "f1": float(f1_score(labels, predictions, average="macro", labels=classes, zero_division=0)),
            "auc": float(auc),
        }
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
