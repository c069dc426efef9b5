"""Tests for the adversarial-attention search and the attention permutation test."""

from __future__ import annotations

import math
import re

import pytest
import torch

from trainables.counterfactual import (
    adversarial_attention,
    jensen_shannon,
    permutation_output_diff,
    permute_attention,
)
from trainables.model import AttentionClassifier


def constant_decode(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A decoder that ignores attention: every input gets logit 0.3."""
    return torch.full(weights.shape[:1], 0.3)


def tiny_model_inputs(
    normalizer: str,
) -> tuple[AttentionClassifier, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A seeded random tiny classifier and its frozen hidden [6, 7, 8], mask and attention."""
    torch.manual_seed(0)
    model = AttentionClassifier(vocab_size=50, embed_dim=8, hidden_size=4, normalizer=normalizer)
    lengths = torch.tensor([7, 5, 3, 1, 6, 2])
    mask = torch.arange(7) < lengths.unsqueeze(1)
    tokens = torch.randint(1, 50, (6, 7)) * mask
    with torch.no_grad():
        hidden = model.encode(model.embed(tokens), mask)
        attention = model.attend(hidden, mask)
    return model, hidden, mask, attention


def lengths_above_one(mask: torch.Tensor) -> torch.Tensor:
    """Rows [B] with more than one real token (the only ones whose attention can change)."""
    return mask.sum(1) > 1


# --- Jensen-Shannon divergence -------------------------------------------------------------------


def test_jsd_identical_is_zero_and_disjoint_is_ln2():
    p = torch.tensor([0.2, 0.3, 0.5, 0.0])
    assert jensen_shannon(p, p).item() == pytest.approx(0.0, abs=1e-7)
    disjoint = jensen_shannon(torch.tensor([0.5, 0.5, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0, 0.0]))
    assert disjoint.item() == pytest.approx(math.log(2), rel=1e-6)


def test_jsd_hand_computed_two_elements_and_symmetric():
    p, q = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5])
    # m = (0.75, 0.25); KL(p||m) = ln(4/3); KL(q||m) = 0.5 ln(2/3) + 0.5 ln 2.
    expected = 0.5 * math.log(4 / 3) + 0.5 * (0.5 * math.log(2 / 3) + 0.5 * math.log(2))
    assert jensen_shannon(p, q).item() == pytest.approx(expected, rel=1e-6)
    assert jensen_shannon(q, p).item() == pytest.approx(expected, rel=1e-6)


def test_jsd_broadcasts_and_has_finite_gradients_at_zeros():
    p = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]], requires_grad=True)
    q = torch.tensor([0.0, 0.0, 1.0])
    values = jensen_shannon(p, q)
    assert values.shape == (2,)
    values.sum().backward()
    assert torch.isfinite(p.grad).all()


def test_jsd_rejects_unbroadcastable_shapes():
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        jensen_shannon(torch.ones(3) / 3, torch.ones(4) / 4)


# --- adversarial attention -----------------------------------------------------------------------


@pytest.mark.parametrize("normalizer", ["softmax", "sparsemax"])
def test_adversaries_on_tiny_model_are_feasible_valid_distributions(normalizer):
    model, hidden, mask, attention = tiny_model_inputs(normalizer)
    epsilon = 0.01
    result = adversarial_attention(model.decode, hidden, mask, attention, steps=100, epsilon=epsilon)
    assert result.found.all()
    kept = result.distribution
    with torch.no_grad():
        original = torch.sigmoid(model.decode(hidden, attention))
        recomputed = (torch.sigmoid(model.decode(hidden, kept)) - original).abs()
    assert (recomputed <= epsilon + 1e-6).all()
    torch.testing.assert_close(recomputed, result.output_diff, atol=1e-6, rtol=0)
    assert (kept[~mask] == 0).all()
    assert (kept >= 0).all()
    torch.testing.assert_close(kept.sum(1), torch.ones(6))
    torch.testing.assert_close(jensen_shannon(kept, attention), result.max_jsd)
    torch.testing.assert_close(result.max_attention, attention.max(1).values)
    assert (result.max_jsd[lengths_above_one(mask)] > 0.05).all()


def test_single_token_rows_give_zero_divergence_and_are_found():
    hidden = torch.randn(2, 3, 4)
    mask = torch.tensor([[True, False, False], [True, True, True]])
    attention = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    result = adversarial_attention(constant_decode, hidden, mask, attention, steps=20)
    assert result.found.tolist() == [True, True]
    assert result.max_jsd[0].item() == 0.0
    assert result.output_diff[0].item() == 0.0
    assert result.distribution[0].tolist() == [1.0, 0.0, 0.0]


def test_attention_blind_decoder_reaches_near_maximal_divergence():
    mask = torch.tensor([[True] * 6, [True, True, True, False, False, False], [True] * 4 + [False] * 2])
    attention = torch.tensor(
        [[0.4, 0.2, 0.15, 0.1, 0.1, 0.05], [0.3, 0.3, 0.4, 0, 0, 0], [0.7, 0.1, 0.1, 0.1, 0, 0]]
    )
    result = adversarial_attention(constant_decode, torch.zeros(3, 6, 2), mask, attention, steps=300)
    # JSD(a, onehot_i) = 0.5 [a_i ln(2 a_i / (1 + a_i)) + ln(2 / (1 + a_i))] + 0.5 sum_{j != i} a_j ln 2,
    # which decreases in a_i: the best one-hot sits on the smallest real weight.
    smallest = attention.masked_fill(~mask, float("inf")).min(1).values
    best = 0.5 * (
        torch.xlogy(smallest, 2 * smallest / (1 + smallest))
        + torch.log(2 / (1 + smallest))
        + (1 - smallest) * math.log(2)
    )
    assert best[0].item() == pytest.approx(
        0.5 * (0.05 * math.log(0.1 / 1.05) + math.log(2 / 1.05) + 0.95 * math.log(2))
    )
    assert result.found.all()
    assert (result.max_jsd >= 0.9 * best).all()
    assert (result.max_jsd <= best + 1e-6).all()


def test_decoder_reading_one_token_keeps_its_weight_within_epsilon():
    slope, epsilon = 20.0, 0.01

    def token0_decode(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return slope * (weights[:, 0] - 0.5)

    attention = torch.tensor([[0.5, 0.2, 0.1, 0.1, 0.1]])
    mask = torch.ones(1, 5, dtype=torch.bool)
    result = adversarial_attention(
        token0_decode, torch.zeros(1, 5, 1), mask, attention, steps=100, epsilon=epsilon
    )
    # y = sigmoid(slope (w0 - 0.5)) is within epsilon of 0.5 iff |w0 - 0.5| <= half_width (~ 4 eps / slope).
    half_width = math.log((0.5 + epsilon) / (0.5 - epsilon)) / slope
    assert result.found.item()
    assert abs(result.distribution[0, 0].item() - 0.5) <= half_width + 1e-6
    assert result.max_jsd.item() > 0.05  # weight did move, among the other tokens


def test_adversarial_search_is_deterministic_and_seed_dependent():
    model, hidden, mask, attention = tiny_model_inputs("softmax")
    seeds, other_seeds = [3] * len(mask), [4] * len(mask)
    first = adversarial_attention(model.decode, hidden, mask, attention, steps=30, seeds=seeds)
    again = adversarial_attention(model.decode, hidden, mask, attention, steps=30, seeds=seeds)
    other = adversarial_attention(model.decode, hidden, mask, attention, steps=30, seeds=other_seeds)
    assert torch.equal(first.distribution, again.distribution)
    assert not torch.equal(first.distribution, other.distribution)


def test_adversarial_search_leaves_model_gradients_alone_and_runs_under_no_grad():
    model, hidden, mask, attention = tiny_model_inputs("softmax")
    with torch.no_grad():
        result = adversarial_attention(model.decode, hidden, mask, attention, steps=5)
    assert result.max_jsd.shape == (6,)
    assert all(parameter.grad is None for parameter in model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be >= 1, got 0"),
        ({"steps": 0}, "steps must be >= 1, got 0"),
        ({"epsilon": -0.1}, "epsilon must be >= 0, got -0.1"),
        ({"lr": 0.0}, "lr must be > 0, got 0.0"),
    ],
)
def test_adversarial_rejects_bad_settings(kwargs, message):
    hidden, mask, attention = (
        torch.zeros(1, 2, 3),
        torch.ones(1, 2, dtype=torch.bool),
        torch.full((1, 2), 0.5),
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        adversarial_attention(constant_decode, hidden, mask, attention, **kwargs)


@pytest.mark.parametrize("search", [adversarial_attention, permutation_output_diff])
def test_searches_reject_bad_shapes(search):
    hidden, mask, attention = (
        torch.zeros(2, 3, 4),
        torch.ones(2, 3, dtype=torch.bool),
        torch.full((2, 3), 1 / 3),
    )
    with pytest.raises(ValueError, match=r"hidden must be \[B, T, D\], got shape \(2, 3\)"):
        search(constant_decode, hidden[..., 0], mask, attention)
    with pytest.raises(ValueError, match=r"mask shape \(2, 4\)"):
        search(constant_decode, hidden, torch.ones(2, 4, dtype=torch.bool), attention)
    with pytest.raises(ValueError, match=r"attention shape \(3, 3\)"):
        search(constant_decode, hidden, mask, torch.full((3, 3), 1 / 3))
    with pytest.raises(ValueError, match=re.escape("mask must be bool, got torch.float32")):
        search(constant_decode, hidden, mask.float(), attention)
    with pytest.raises(ValueError, match=r"empty rows \(first 10\): \[1\]"):
        search(constant_decode, hidden, torch.tensor([[True, False, False], [False] * 3]), attention)


def test_decode_with_wrong_output_shape_is_rejected():
    hidden, mask, attention = (
        torch.zeros(2, 3, 4),
        torch.ones(2, 3, dtype=torch.bool),
        torch.full((2, 3), 1 / 3),
    )
    with pytest.raises(
        ValueError, match=r"decode must return logits of shape \[2\] or \[2, C\] with C >= 2, got \(2, 1\)"
    ):
        adversarial_attention(lambda h, w: torch.zeros(w.shape[0], 1), hidden, mask, attention)


# --- permutation ---------------------------------------------------------------------------------


def test_permutation_with_attention_blind_decoder_changes_nothing():
    _, hidden, mask, attention = tiny_model_inputs("softmax")
    result = permutation_output_diff(constant_decode, hidden, mask, attention, n_permutations=20)
    assert (result.median_output_diff == 0).all()
    torch.testing.assert_close(result.max_attention, attention.max(1).values)


def test_permutation_on_tiny_model_is_deterministic_and_zero_for_one_token():
    model, hidden, mask, attention = tiny_model_inputs("softmax")
    seeds = [1] * len(mask)
    first = permutation_output_diff(model.decode, hidden, mask, attention, n_permutations=30, seeds=seeds)
    again = permutation_output_diff(model.decode, hidden, mask, attention, n_permutations=30, seeds=seeds)
    assert torch.equal(first.median_output_diff, again.median_output_diff)
    assert first.median_output_diff[3].item() == 0.0  # the length-1 row
    # With 2 tokens half the permutations are the identity, so only longer rows must move.
    assert (first.median_output_diff[mask.sum(1) > 2] > 0).all()


def test_permutation_median_matches_direct_computation():
    weights_on_first = torch.tensor([[0.6, 0.3, 0.1]])

    def first_weight_decode(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return weights[:, 0]

    mask = torch.ones(1, 3, dtype=torch.bool)
    result = permutation_output_diff(
        first_weight_decode, torch.zeros(1, 3, 1), mask, weights_on_first, n_permutations=200
    )
    # The first weight becomes 0.6, 0.3 or 0.1 with equal chance: the median |dy| is the middle one.
    middle = abs(torch.sigmoid(torch.tensor(0.3)) - torch.sigmoid(torch.tensor(0.6))).item()
    assert result.median_output_diff.item() == pytest.approx(middle, rel=1e-5)


def test_permute_attention_shuffles_real_tokens_only():
    attention = torch.tensor([[0.0, 0.5, 0.3, 0.0, 0.2], [0.7, 0.3, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[False, True, True, False, True], [True, True, False, False, False]])
    permuted = permute_attention(attention, mask, 50, seeds=[0, 1])
    assert permuted.shape == (2, 50, 5)
    assert (permuted[~mask.unsqueeze(1).expand_as(permuted)] == 0).all()
    for row in range(2):
        expected = attention[row][mask[row]].sort().values
        for sample in permuted[row]:
            assert torch.equal(sample[mask[row]].sort().values, expected)
    assert len({tuple(sample.tolist()) for sample in permuted[0]}) > 1


def test_permutation_rejects_bad_count():
    hidden, mask, attention = (
        torch.zeros(1, 2, 3),
        torch.ones(1, 2, dtype=torch.bool),
        torch.full((1, 2), 0.5),
    )
    with pytest.raises(ValueError, match="n_permutations must be >= 1, got 0"):
        permutation_output_diff(constant_decode, hidden, mask, attention, n_permutations=0)


def test_a_row_of_the_searches_depends_on_its_seed_only_not_on_its_batch():
    """Each instance draws from its own seed: run alone, or in a wider batch beside other rows, an
    instance gets the same adversary and the same permutation effect."""
    model, hidden, mask, attention = tiny_model_inputs("softmax")
    seeds = list(range(11, 11 + len(mask)))
    together = adversarial_attention(model.decode, hidden, mask, attention, steps=20, seeds=seeds)
    permuted = permutation_output_diff(model.decode, hidden, mask, attention, n_permutations=15, seeds=seeds)
    for row, length in enumerate(mask.sum(1).tolist()):
        alone_inputs = (hidden[row : row + 1, :length], mask[row : row + 1, :length])
        alone = adversarial_attention(
            model.decode, *alone_inputs, attention[row : row + 1, :length], steps=20, seeds=[seeds[row]]
        )
        torch.testing.assert_close(alone.distribution[0], together.distribution[row, :length])
        torch.testing.assert_close(alone.max_jsd[0], together.max_jsd[row])
        alone_permuted = permutation_output_diff(
            model.decode,
            *alone_inputs,
            attention[row : row + 1, :length],
            n_permutations=15,
            seeds=[seeds[row]],
        )
        torch.testing.assert_close(alone_permuted.median_output_diff[0], permuted.median_output_diff[row])


def test_the_searches_need_one_seed_per_row():
    model, hidden, mask, attention = tiny_model_inputs("softmax")
    with pytest.raises(ValueError, match=f"seeds must hold one seed per instance \\({len(mask)}\\), got 1"):
        adversarial_attention(model.decode, hidden, mask, attention, steps=2, seeds=[1])
