"""Gradient and leave-one-out importance against independent, deliberately naive recomputations."""

from __future__ import annotations

import copy
import decimal
import itertools

import pytest
import torch

from tests.helpers import BAD_BATCHES, LENGTHS, make_batch, make_model
from trainables.importance import gradient_importance, leave_one_out_importance
from trainables.model import AttentionClassifier

CONFIGS = list(itertools.product(("tanh", "dot"), ("softmax", "sparsemax")))


def logit(model: AttentionClassifier, tokens: torch.Tensor) -> float:
    """Logit of one unpadded sequence [L], run alone; an empty sequence is one masked padding column."""
    if len(tokens) == 0:
        logits, _ = model(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1, dtype=torch.bool))
    else:
        logits, _ = model(tokens.unsqueeze(0), torch.ones(1, len(tokens), dtype=torch.bool))
    return logits.item()


def probability(model: AttentionClassifier, tokens: torch.Tensor) -> float:
    """P(label 1) of one unpadded sequence [L], run alone."""
    return torch.sigmoid(torch.tensor(logit(model, tokens), dtype=torch.float64)).item()


def exact_distance(logit: float, other: float) -> float:
    """|sigmoid(logit) - sigmoid(other)| from 50-digit decimals, where no probability rounds to 1."""
    with decimal.localcontext() as context:
        context.prec = 50
        p, q = (1 / (1 + (-decimal.Decimal(z)).exp()) for z in (logit, other))
        return float(abs(p - q))


def shifted(model: AttentionClassifier, shift: float) -> AttentionClassifier:
    """A float32 copy of `model` whose decoder bias is moved by `shift`: logits of tens, as after training."""
    model = copy.deepcopy(model).float()
    with torch.no_grad():
        model.decoder.bias.add_(shift)
    return model


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


@pytest.mark.parametrize("encoder", ["lstm", "cnn", "average"])  # the BiLSTM's runs trainables.loo_bilstm
@pytest.mark.parametrize("attention, normalizer", CONFIGS)
def test_leave_one_out_matches_one_by_one_recomputation(
    encoder: str, attention: str, normalizer: str
) -> None:
    model = make_model(attention, normalizer, encoder)
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
    if encoder != "average":  # a context-free token that sparsemax gives no weight changes nothing
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


def test_float32_model_gives_float64_importance() -> None:
    model = make_model("tanh", "softmax").float()
    tokens, mask = make_batch(LENGTHS)
    assert gradient_importance(model, tokens, mask).dtype == torch.float64
    assert leave_one_out_importance(model, tokens, mask).dtype == torch.float64


@pytest.mark.parametrize("shift", [40.0, -40.0])
def test_gradient_survives_saturated_probabilities(model: AttentionClassifier, shift: float) -> None:
    """At |logit| ~ 40, sigmoid is exactly 1 in float32 (and float64): a gradient taken through it would be 0
    for every token. The bias shift leaves the logit's gradient unchanged, so each row's scores are the
    unshifted ones times one factor, sigmoid'(logit) of the two models: the same ranking."""
    tokens, mask = make_batch(LENGTHS)
    small = gradient_importance(model, tokens, mask)
    large = gradient_importance(shifted(model, shift), tokens, mask)
    with torch.no_grad():
        logits, _ = shifted(model, shift)(tokens, mask)
    assert (logits.abs() > 37).all()  # Past float64's sigmoid saturation too.
    for row, length in enumerate(LENGTHS):
        ratio = large[row, :length] / small[row, :length]
        assert torch.allclose(ratio, ratio[0].expand(length), rtol=1e-4)
        assert torch.equal(large[row, :length].argsort(), small[row, :length].argsort())
        assert (large[row, :length] > 0).all() and large[row, :length].unique().numel() == length


@pytest.mark.parametrize("shift", [40.0, -40.0])
def test_leave_one_out_survives_saturated_probabilities(model: AttentionClassifier, shift: float) -> None:
    """At |logit| ~ 40 every probability is exactly 1 (or differs in its last float32 digits only), so
    differencing probabilities gave 0 or a few float32 steps for every token. Scores must match 50-digit
    arithmetic: to 1e-9 for a float64 model, and within float32 noise, with the same ranking, for float32.
    (Their ranking need not be the unshifted model's: far along the sigmoid, a deletion that lowers the
    logit moves p more than one that raises it as much.)"""
    tokens, mask = make_batch(LENGTHS)
    large32 = shifted(model, shift)
    large64 = copy.deepcopy(large32).double()
    importance32 = leave_one_out_importance(large32, tokens, mask)
    importance64 = leave_one_out_importance(large64, tokens, mask)
    with torch.no_grad():
        for row, length in enumerate(LENGTHS):
            sequence = tokens[row, :length]
            full = logit(large64, sequence)
            shorter = [
                torch.cat([sequence[:position], sequence[position + 1 :]]) for position in range(length)
            ]
            exact = torch.tensor(
                [exact_distance(full, logit(large64, deleted)) for deleted in shorter], dtype=torch.float64
            )
            assert torch.allclose(importance64[row, :length], exact, rtol=1e-9, atol=0)
            assert torch.allclose(importance32[row, :length], exact, rtol=1e-3, atol=0)
            assert torch.equal(importance32[row, :length].argsort(), exact.argsort())
            assert (exact > 0).all() and exact.unique().numel() == length


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
