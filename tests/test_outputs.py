"""Class probabilities from one logit (two classes) or C logits, against exact decimal arithmetic."""

from __future__ import annotations

import decimal

import numpy as np
import pytest
import torch

from trainables.outputs import (
    class_probabilities,
    output_distance,
    output_size,
    predicted_class,
    predicted_probability_change,
    predicted_probability_gradient,
)


def exact_softmax(logits: list[float]) -> list[decimal.Decimal]:
    """Softmax of one row in 50-digit decimals."""
    with decimal.localcontext() as context:
        context.prec = 50
        exps = [decimal.Decimal(z).exp() for z in logits]
        return [e / sum(exps) for e in exps]


def exact_binary(z: float) -> list[decimal.Decimal]:
    """(1 - p, p) of one sigmoid logit, in 50-digit decimals."""
    return exact_softmax([0.0, z])


ROWS = [[40.0, 1.0, -3.0], [2.0, 39.5, 0.5], [0.1, 0.2, 0.3], [-5.0, 60.0, 61.0]]
OTHERS = [[39.0, -2.0, 1.0], [2.5, 45.0, 0.0], [0.3, 0.2, 0.1], [-5.0, 61.0, 60.0]]


def test_output_size_is_one_logit_for_two_classes_and_refuses_fewer() -> None:
    assert (output_size(2), output_size(3)) == (1, 3)
    with pytest.raises(ValueError, match="num_classes must be at least 2, got 1"):
        output_size(1)


def test_class_probabilities_and_prediction_for_both_output_shapes() -> None:
    binary = torch.tensor([-2.0, 0.0, 3.0])
    assert torch.allclose(class_probabilities(binary)[:, 1], torch.sigmoid(binary.double()))
    assert predicted_class(binary).tolist() == [0, 1, 1]  # P(label 1) >= 0.5 at logit 0
    multi = torch.tensor(ROWS)
    assert torch.allclose(class_probabilities(multi).sum(-1), torch.ones(4, dtype=torch.float64))
    assert predicted_class(multi).tolist() == [0, 1, 2, 2]


def test_binary_distance_and_change_keep_digits_where_probabilities_round_to_one() -> None:
    logits = torch.tensor([40.0, 38.0, -41.0, 3.0])
    other = torch.tensor([39.0, 45.0, -39.5, -2.0])
    distance = output_distance(logits, other)
    change = predicted_probability_change(logits, other)
    for a, b, tvd, drop in zip(
        logits.tolist(), other.tolist(), distance.tolist(), change.tolist(), strict=True
    ):
        p, q = exact_binary(a), exact_binary(b)
        c = int(a >= 0)
        assert tvd == pytest.approx(float(abs(p[1] - q[1])), rel=1e-12) and tvd != 0.0
        assert drop == pytest.approx(float(p[c] - q[c]), rel=1e-12) and drop != 0.0


def test_multi_class_distance_and_change_keep_digits_where_probabilities_round_to_one() -> None:
    logits, other = torch.tensor(ROWS), torch.tensor(OTHERS)
    distance = output_distance(logits, other)
    change = predicted_probability_change(logits, other)
    for a, b, tvd, drop in zip(
        logits.tolist(), other.tolist(), distance.tolist(), change.tolist(), strict=True
    ):
        p, q = exact_softmax(a), exact_softmax(b)
        c = int(np.argmax(a))
        assert tvd == pytest.approx(float(sum(abs(x - y) for x, y in zip(p, q, strict=True)) / 2), rel=1e-9)
        assert drop == pytest.approx(float(p[c] - q[c]), rel=1e-9)
        assert tvd != 0.0


def test_distance_refuses_logits_of_different_shapes() -> None:
    with pytest.raises(ValueError, match=r"logits shapes differ: \(2,\) and \(2, 3\)"):
        output_distance(torch.zeros(2), torch.zeros(2, 3))


def test_predicted_probability_gradient_matches_autograd_of_the_probability() -> None:
    torch.manual_seed(0)
    inputs = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    for classes in (1, 3):
        layer = torch.nn.Linear(4, classes).double()
        logits = layer(inputs)
        logits = logits.squeeze(-1) if classes == 1 else logits
        probabilities = class_probabilities(logits)
        chosen = probabilities.gather(1, predicted_class(logits).unsqueeze(1)).sum()
        (expected,) = torch.autograd.grad(chosen, inputs, retain_graph=True)
        weights, scale = predicted_probability_gradient(logits)
        (weighted,) = torch.autograd.grad(logits, inputs, grad_outputs=weights)
        assert torch.allclose((weighted * scale.unsqueeze(1)).abs(), expected.abs(), rtol=1e-10)


def test_multi_class_gradient_weights_stay_nonzero_where_the_probability_rounds_to_one() -> None:
    weights, scale = predicted_probability_gradient(torch.tensor([[50.0, 0.0, -1.0]]))
    assert weights[0, 0] > 0 and weights[0, 0] == pytest.approx(
        float(exact_softmax([50.0, 0.0, -1.0])[1] + exact_softmax([50.0, 0.0, -1.0])[2]), rel=1e-12
    )
    assert scale[0] == 1.0
