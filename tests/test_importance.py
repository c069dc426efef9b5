"""Gradient and leave-one-out importance against independent, deliberately naive recomputations."""

from __future__ import annotations

import itertools

import pytest
import torch

from tests.helpers import BAD_BATCHES, LENGTHS, make_batch, make_model
from trainables.importance import gradient_importance, leave_one_out_importance
from trainables.model import AttentionClassifier

CONFIGS = list(itertools.product(("tanh", "dot"), ("softmax", "sparsemax")))


def probability(model: AttentionClassifier, tokens: torch.Tensor) -> float:
    """P(label 1) of one unpadded sequence [L], run alone; an empty sequence is one masked padding column."""
    if len(tokens) == 0:
        logits, _ = model(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1, dtype=torch.bool))
    else:
        logits, _ = model(tokens.unsqueeze(0), torch.ones(1, len(tokens), dtype=torch.bool))
    return torch.sigmoid(logits).item()


@pytest.fixture(params=CONFIGS, ids=["-".join(config) for config in CONFIGS])
def model(request: pytest.FixtureRequest) -> AttentionClassifier:
    return make_model(*request.param)


def test_gradient_matches_finite_differences_with_attention_held_fixed(model: AttentionClassifier) -> None:
    tokens, mask = make_batch(LENGTHS)
    importance = gradient_importance(model, tokens, mask)
    embeddings = model.embed(tokens).detach()
    step = 1e-6

    def logit(row: int, shifted: torch.Tensor) -> torch.Tensor:
        """The output with the original attention of `row` kept while its embeddings move."""
        _, attention = model.forward_embeddings(embeddings[row : row + 1], mask[row : row + 1])
        return model.decode(model.encode(shifted, mask[row : row + 1]), attention)

    with torch.no_grad():
        for row, position in mask.nonzero().tolist():
            direction = torch.zeros_like(embeddings[row : row + 1])
            direction[0, position] = embeddings[row, position]
            plus = logit(row, embeddings[row : row + 1] + step * direction)
            minus = logit(row, embeddings[row : row + 1] - step * direction)
            full = logit(row, embeddings[row : row + 1])
            sign = 1.0 if torch.sigmoid(full).item() >= 0.5 else -1.0  # d(1 - p) = -dp
            derivative = sign * (torch.sigmoid(plus) - torch.sigmoid(minus)).item() / (2 * step)
            assert importance[row, position].item() == pytest.approx(abs(derivative), rel=1e-5, abs=1e-9)
    assert (importance[mask] > 0).all()
    assert (importance[~mask] == 0).all()


def test_gradient_accumulates_no_parameter_gradients(model: AttentionClassifier) -> None:
    tokens, mask = make_batch(LENGTHS)
    gradient_importance(model, tokens, mask)
    assert all(parameter.grad is None for parameter in model.parameters())


def test_gradient_works_inside_no_grad(model: AttentionClassifier) -> None:
    tokens, mask = make_batch(LENGTHS)
    expected = gradient_importance(model, tokens, mask)
    with torch.no_grad():
        assert torch.equal(gradient_importance(model, tokens, mask), expected)


def test_leave_one_out_matches_one_by_one_recomputation(model: AttentionClassifier) -> None:
    tokens, mask = make_batch(LENGTHS)
    importance = leave_one_out_importance(model, tokens, mask)
    with torch.no_grad():
        for row, length in enumerate(LENGTHS):
            sequence = tokens[row, :length]
            full = probability(model, sequence)
            for position in range(length):
                shorter = torch.cat([sequence[:position], sequence[position + 1 :]])
                expected = abs(full - probability(model, shorter))
                assert importance[row, position].item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert (importance[mask] > 0).all()
    assert (importance[~mask] == 0).all()


def test_leave_one_out_of_length_one_row_is_distance_to_empty_input(model: AttentionClassifier) -> None:
    tokens, mask = make_batch([1, 1], width=1)
    importance = leave_one_out_importance(model, tokens, mask)
    with torch.no_grad():
        logits, _ = model(tokens, mask)
        empty = torch.sigmoid(model.decoder.bias)
    assert torch.allclose(importance[:, 0], (torch.sigmoid(logits) - empty).abs(), rtol=1e-12, atol=0)


# (tokens, mask, message fragment): batches every importance and attribution function must refuse
@pytest.mark.parametrize("method", ["gradient", "leave_one_out"])
def test_row_importance_does_not_depend_on_batch(model: AttentionClassifier, method: str) -> None:
    compute = gradient_importance if method == "gradient" else leave_one_out_importance
    tokens, mask = make_batch(LENGTHS, width=10)
    together = compute(model, tokens, mask)
    for row, length in enumerate(LENGTHS):
        alone = compute(model, tokens[row : row + 1, :length], mask[row : row + 1, :length])
        assert torch.allclose(together[row, :length], alone[0], rtol=1e-10, atol=1e-14)
        assert (together[row, length:] == 0).all()


def test_leave_one_out_chunking_does_not_change_results(model: AttentionClassifier) -> None:
    tokens, mask = make_batch(LENGTHS)
    whole = leave_one_out_importance(model, tokens, mask)
    for max_rows in (1, 3, 7, sum(LENGTHS)):
        chunked = leave_one_out_importance(model, tokens, mask, max_rows=max_rows)
        assert torch.allclose(chunked, whole, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("method", ["gradient", "leave_one_out"])
def test_model_mode_is_restored(model: AttentionClassifier, method: str) -> None:
    compute = gradient_importance if method == "gradient" else leave_one_out_importance
    tokens, mask = make_batch(LENGTHS)
    model.train()
    compute(model, tokens, mask)
    assert model.training
    model.eval()
    compute(model, tokens, mask)
    assert not model.training


def test_all_padding_row_gets_zero(model: AttentionClassifier) -> None:
    tokens, mask = make_batch([3, 0, 2])
    for compute in (gradient_importance, leave_one_out_importance):
        importance = compute(model, tokens, mask)
        assert (importance[1] == 0).all()
        assert (importance[mask] > 0).all()


def test_float32_model_gives_float32_importance() -> None:
    model = make_model("tanh", "softmax").float()
    tokens, mask = make_batch(LENGTHS)
    assert gradient_importance(model, tokens, mask).dtype == torch.float32
    assert leave_one_out_importance(model, tokens, mask).dtype == torch.float32


@pytest.mark.parametrize("method", ["gradient", "leave_one_out"])
@pytest.mark.parametrize(
    ("tokens", "mask", "message"),
    BAD_BATCHES,
)
def test_bad_inputs_raise(method: str, tokens: torch.Tensor, mask: torch.Tensor, message: str) -> None:
    compute = gradient_importance if method == "gradient" else leave_one_out_importance
    with pytest.raises(ValueError, match=message):
        compute(make_model("tanh", "softmax"), tokens, mask)


def test_max_rows_below_one_raises() -> None:
    tokens, mask = make_batch(LENGTHS)
    with pytest.raises(ValueError, match="max_rows"):
        leave_one_out_importance(make_model("tanh", "softmax"), tokens, mask, max_rows=0)


def test_holding_attention_fixed_is_not_the_same_as_the_full_gradient() -> None:
    """The finite-difference test pins the detached definition; this shows the two definitions differ."""
    model = make_model("tanh", "softmax")
    tokens, mask = make_batch(LENGTHS)
    embeddings = model.embed(tokens).detach().requires_grad_(True)
    logits, _ = model.forward_embeddings(embeddings, mask)
    p = torch.sigmoid(logits)
    (gradient,) = torch.autograd.grad(torch.where(p >= 0.5, p, 1 - p).sum(), embeddings)
    full = ((gradient * embeddings).sum(-1).abs() * mask).detach()
    assert not torch.allclose(gradient_importance(model, tokens, mask), full)
