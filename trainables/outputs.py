"""The classifier's outputs as class probabilities: one logit (sigmoid) for two classes, C logits (softmax)
for more.

A two-class model outputs logits [N] with P(label 1) = sigmoid(logit), as Jain & Wallace's binary models
do; a C-class model (C >= 3, e.g. NLI) outputs logits [N, C] with softmax probabilities. Every function
here takes either shape and works in float64, in forms that keep the small probabilities of saturated
predictions: a trained model's logits reach tens, where the largest probability rounds to exactly 1 in
float32 and even in float64, so differences are taken from the small complements instead.
"""

from __future__ import annotations

import torch


def output_size(num_classes: int) -> int:
    """Logits per instance: 1 for two classes (sigmoid), else one per class (softmax)."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    return 1 if num_classes == 2 else num_classes


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """[N] or [N, C] logits -> [N, C] probabilities (float64); two classes give (1 - p, p)."""
    logits = logits.double()
    if logits.ndim == 1:
        return torch.stack([torch.sigmoid(-logits), torch.sigmoid(logits)], dim=-1)
    return torch.softmax(logits, dim=-1)


def predicted_class(logits: torch.Tensor) -> torch.Tensor:
    """[N] long: the class of highest probability (two classes: 1 where P(label 1) >= 0.5, as rounded in
    the logits' dtype)."""
    if logits.ndim == 1:
        return (torch.sigmoid(logits) >= 0.5).long()
    return logits.argmax(-1)


def _others_minus(logits: torch.Tensor, other: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """q_j - p_j [N, C] (float64) for softmax probabilities p of `logits` and q of `other`, with column
    `reference` [N] replaced by p_r - q_r computed as the sum of the other columns' q_j - p_j: exact where
    p_r and q_r both round to 1."""
    p = torch.softmax(logits.double(), dim=-1)
    q = torch.softmax(other.double(), dim=-1)
    difference = q - p
    at_reference = torch.nn.functional.one_hot(reference, p.shape[-1]).bool()
    reference_change = difference.masked_fill(at_reference, 0.0).sum(-1, keepdim=True)  # = p_r - q_r
    return torch.where(at_reference, reference_change, difference)


def output_distance(logits: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Total variation distance between the output distributions of two logits of the same shape: [N],
    float64. For two classes this is |p - q|, taken on the side of the sigmoid where both probabilities
    are small; for C classes half the sum of |p_j - q_j|, the largest class of `logits` taken from the
    others."""
    if logits.shape != other.shape:
        raise ValueError(f"logits shapes differ: {tuple(logits.shape)} and {tuple(other.shape)}")
    logits, other = logits.double(), other.double()
    if logits.ndim == 1:
        side = torch.where(logits + other > 0, -1.0, 1.0).to(logits)
        return (torch.sigmoid(side * logits) - torch.sigmoid(side * other)).abs()
    return _others_minus(logits, other, logits.argmax(-1)).abs().sum(-1) / 2


def predicted_probability_change(logits: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """p_c(logits) - p_c(other) [N] (float64), c the class `logits` predicts: how much the predicted
    class's probability drops from the first output to the second (negative if it rises)."""
    if logits.shape != other.shape:
        raise ValueError(f"logits shapes differ: {tuple(logits.shape)} and {tuple(other.shape)}")
    if logits.ndim == 1:
        sign = torch.where(logits >= 0, 1.0, -1.0).to(logits)  # the predicted class's logit: sign * logit
        logits, other = (sign * logits).double(), (sign * other).double()
        upper = logits + other > 0
        return torch.where(
            upper,
            torch.sigmoid(-other) - torch.sigmoid(-logits),
            torch.sigmoid(logits) - torch.sigmoid(other),
        )
    predicted = logits.argmax(-1)
    return _others_minus(logits, other, predicted).gather(-1, predicted.unsqueeze(-1)).squeeze(-1)


def predicted_probability_gradient(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The factors of the gradient of each instance's predicted-class probability p_c: weights w [N] or
    [N, C] (float64) and scale s [N] (float64), with |d p_c| = s * |sum_j w_j d z_j|.

    Two classes: w = 1 on the one logit, s = sigmoid(z) sigmoid(-z) (the sign, which says which class a
    token pushes towards, is dropped). C classes: d p_c = p_c d log p_c with d log p_c / d z_j = [j = c]
    - p_j, so w_j = -p_j, w_c = sum of the other p_j (not 1 - p_c, which rounds to 0), and s = p_c.
    A backward pass of sum(w * logits) gives every instance's sum_j w_j d z_j at once.
    """
    logits = logits.detach().double()
    if logits.ndim == 1:
        return torch.ones_like(logits), torch.sigmoid(logits) * torch.sigmoid(-logits)
    p = torch.softmax(logits, dim=-1)
    predicted = logits.argmax(-1)
    at_predicted = torch.nn.functional.one_hot(predicted, p.shape[-1]).bool()
    others = p.masked_fill(at_predicted, 0.0)
    weights = torch.where(at_predicted, others.sum(-1, keepdim=True), -p)
    return weights, p.gather(-1, predicted.unsqueeze(-1)).squeeze(-1)
