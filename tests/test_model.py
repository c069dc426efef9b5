"""The attention classifier: masking, batch invariance, empty rows, and deterministic training."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from tests.helpers import learnable_split
from trainables.model import AttentionClassifier, Normalizer
from trainables.settings import ENCODERS, NORMALIZERS, PRETRAINED_ENCODERS
from trainables.train import EarlyStopping, classification_metrics, make_optimizer, predict, train_epoch

# every encoder trained from scratch; the pretrained DistilBERT needs a model folder (test_transformers.py)
FROM_SCRATCH = [encoder for encoder in ENCODERS if encoder not in PRETRAINED_ENCODERS]
SETTINGS = list(itertools.product(FROM_SCRATCH, ["tanh", "dot"], NORMALIZERS))


def tiny_model(encoder: str, attention: str, normalizer: str, seed: int = 0) -> AttentionClassifier:
    torch.manual_seed(seed)
    return AttentionClassifier(
        vocab_size=30, embed_dim=6, hidden_size=8, encoder=encoder, attention=attention, normalizer=normalizer
    )


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.tensor([[4, 9, 2, 7, 3], [5, 8, 0, 0, 0], [6, 0, 0, 0, 0]])
    return tokens, tokens != 0


@pytest.mark.parametrize(("encoder", "attention", "normalizer"), SETTINGS)
def test_attention_is_zero_on_padding_and_sums_to_one(encoder, attention, normalizer):
    model = tiny_model(encoder, attention, normalizer).eval()
    tokens, mask = batch()
    with torch.no_grad():
        _, weights = model(tokens, mask)
    assert torch.all(weights[~mask] == 0)
    torch.testing.assert_close(weights.sum(1), torch.ones(3))
    assert torch.all(weights >= 0)


@pytest.mark.parametrize(("encoder", "attention", "normalizer"), SETTINGS)
def test_padding_does_not_change_a_row(encoder, attention, normalizer):
    model = tiny_model(encoder, attention, normalizer).eval()
    tokens, mask = batch()
    with torch.no_grad():
        logits, weights = model(tokens, mask)
        alone_logit, alone_weights = model(tokens[1:2, :2], mask[1:2, :2])
    torch.testing.assert_close(logits[1:2], alone_logit)
    torch.testing.assert_close(weights[1:2, :2], alone_weights)


@pytest.mark.parametrize("normalizer", NORMALIZERS)
def test_an_empty_row_gets_zero_attention_and_finite_gradients(normalizer):
    scores = torch.randn(2, 3, requires_grad=True)
    normalize = Normalizer(normalizer)
    weights = normalize(scores, torch.tensor([[True, True, False], [False, False, False]]))
    assert torch.all(weights[1] == 0) and torch.isfinite(weights).all()
    if normalizer == "uniform":  # ignores its scores: nothing to differentiate
        return
    (weights[0, 0] * 3 + weights[0, 1]).backward()
    parameters = [scores, *normalize.parameters()]
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in parameters)


def test_sparse_normalizers_can_zero_real_tokens_while_softmax_cannot():
    scores = torch.tensor([[5.0, 0.0, -5.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    assert (Normalizer("sparsemax")(scores, mask) == 0).sum() == 2
    assert (Normalizer("entmax15")(scores, mask) == 0).sum() >= 1
    assert (Normalizer("softmax")(scores, mask) > 0).all()
    torch.testing.assert_close(Normalizer("uniform")(scores, mask), torch.full((1, 3), 1 / 3))


def test_alpha_entmax_starts_at_1_5_matches_entmax15_and_learns_alpha():
    scores, mask = torch.randn(4, 6), torch.ones(4, 6, dtype=torch.bool)
    learned = Normalizer("alpha_entmax")
    assert learned.alpha == pytest.approx(1.5)
    torch.testing.assert_close(learned(scores, mask), Normalizer("entmax15")(scores, mask), atol=1e-5, rtol=0)
    learned(scores, mask)[:, 0].sum().backward()
    assert learned.alpha_logit.grad is not None and learned.alpha_logit.grad.abs() > 0
    with torch.no_grad():
        learned.alpha_logit.fill_(50.0)
    assert 1.0 < learned.alpha <= 2.0


def test_unknown_settings_are_rejected():
    with pytest.raises(ValueError, match="unknown normalizer 'max'; allowed: softmax, sparsemax, entmax15"):
        AttentionClassifier(10, normalizer="max")
    with pytest.raises(ValueError, match="unknown attention 'mlp'; allowed: tanh, dot"):
        AttentionClassifier(10, attention="mlp")
    with pytest.raises(ValueError, match="unknown encoder 'gru'; allowed: lstm, cnn, average"):
        AttentionClassifier(10, encoder="gru")
    with pytest.raises(ValueError, match="cnn hidden_size must be a multiple of 4, got 6"):
        AttentionClassifier(10, encoder="cnn", hidden_size=6)


def train_once(seed: int) -> tuple[list[float], dict[str, float]]:
    torch.manual_seed(seed)
    model = AttentionClassifier(vocab_size=30, embed_dim=8, hidden_size=6, normalizer="sparsemax")
    optimizer = make_optimizer(model, lr=0.01, weight_decay=1e-5)
    train, test = learnable_split(200, 0), learnable_split(80, 1)
    losses = [
        train_epoch(model, optimizer, train, 16, np.random.default_rng([seed, e]), torch.device("cpu"))
        for e in range(4)
    ]
    return losses, classification_metrics(test.labels, predict(model, test, 32, torch.device("cpu")))


def test_training_is_deterministic_and_learns():
    losses, metrics = train_once(seed=1)
    again_losses, again_metrics = train_once(seed=1)
    assert losses == again_losses and metrics == again_metrics
    assert losses[-1] < losses[0] and metrics["auc"] > 0.9
    other_losses, _ = train_once(seed=2)
    assert other_losses != losses


def test_early_stopping_keeps_the_best_weights_and_stops_after_patience():
    model = torch.nn.Linear(1, 1)
    stopping = EarlyStopping(patience=2)
    for epoch, auc in enumerate([0.6, 0.8, 0.7, 0.75]):
        with torch.no_grad():
            model.weight.fill_(epoch)
        stopping.update(epoch, auc, model)
    assert stopping.best_epoch == 1 and stopping.best_auc == 0.8 and stopping.should_stop
    assert stopping.best_state["weight"].item() == 1.0
