"""Three-class premise-hypothesis models (NLI): the model, and every measure for C classes and a query,
against naive one-instance-at-a-time recomputation."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import LENGTHS, make_batch
from trainables import registry
from trainables.attributions import attribution_importance, signed_integrated_gradients
from trainables.counterfactual import adversarial_attention, permutation_output_diff
from trainables.data import Split
from trainables.explain import explain
from trainables.faithfulness import erasure_curves
from trainables.importance import gradient_importance, leave_one_out_importance
from trainables.model import AttentionClassifier
from trainables.settings import CounterfactualSettings, ExplainSettings
from trainables.train import classification_metrics, make_optimizer, predict, train_epoch

CONFIGS = list(itertools.product(("tanh", "dot"), ("softmax", "sparsemax")))
HYPOTHESIS_LENGTHS = [2, 4, 1, 3, 5, 2]


def make_pair_model(
    attention: str = "tanh", normalizer: str = "softmax", encoder: str = "lstm"
) -> AttentionClassifier:
    """Tiny float64 three-class pair model, its decoder scaled up so probabilities spread out."""
    torch.manual_seed(0)
    model = AttentionClassifier(
        50, 8, 4, encoder=encoder, attention=attention, normalizer=normalizer, num_classes=3, pair=True
    ).double()
    with torch.no_grad():
        model.decoder.output.weight.mul_(20)
    return model


def pair_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    tokens, mask = make_batch(LENGTHS)
    hypothesis, hypothesis_mask = make_batch(HYPOTHESIS_LENGTHS, seed=2)
    return tokens, mask, hypothesis, hypothesis_mask


def alone(model: AttentionClassifier, premise: torch.Tensor, hypothesis: torch.Tensor) -> torch.Tensor:
    """Class probabilities [3] (float64) of one unpadded premise and hypothesis, run alone."""
    with torch.no_grad():
        if len(premise) == 0:
            premise, mask = torch.zeros(1, dtype=torch.long), torch.zeros(1, 1, dtype=torch.bool)
        else:
            mask = torch.ones(1, len(premise), dtype=torch.bool)
        logits, _ = model(
            premise.unsqueeze(0),
            mask,
            hypothesis.unsqueeze(0),
            torch.ones(1, len(hypothesis), dtype=torch.bool),
        )
    return torch.softmax(logits[0].double(), -1)


def test_pair_model_outputs_three_logits_and_attends_over_the_premise() -> None:
    model = make_pair_model()
    tokens, mask, hypothesis, hypothesis_mask = pair_batch()
    logits, attention = model(tokens, mask, hypothesis, hypothesis_mask)
    assert logits.shape == (len(LENGTHS), 3) and attention.shape == tokens.shape
    assert torch.allclose(attention.sum(1), torch.ones(len(LENGTHS), dtype=torch.float64))
    other, _ = model(tokens, mask, hypothesis.flip(0), hypothesis_mask.flip(0))
    assert not torch.allclose(logits, other)  # the hypothesis matters


def test_query_is_the_bilstm_final_state_of_the_hypothesis_run_alone() -> None:
    model = make_pair_model()
    _, _, hypothesis, hypothesis_mask = pair_batch()
    query = model.query(hypothesis, hypothesis_mask)
    for row, length in enumerate(HYPOTHESIS_LENGTHS):
        embeddings = model.embed(hypothesis[row : row + 1, :length])
        _, (final, _) = model.hypothesis_encoder.rnn(embeddings)
        assert torch.allclose(query[row], torch.cat([final[0, 0], final[1, 0]]), atol=1e-12)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, t, k, h, hk: m(t, k), "a pair model needs the hypothesis"),
        (lambda m, t, k, h, hk: m(t, k, h), "pass the hypothesis with its mask, or neither"),
    ],
)
def test_a_pair_model_without_its_hypothesis_is_refused(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(make_pair_model(), *pair_batch())


def test_a_single_text_model_refuses_a_hypothesis_and_distilbert_refuses_pairs() -> None:
    single = AttentionClassifier(50, 8, 4, num_classes=3)
    tokens, mask, hypothesis, hypothesis_mask = pair_batch()
    assert single(tokens, mask)[0].shape == (len(LENGTHS), 3)
    with pytest.raises(ValueError, match="only a pair model"):
        single(tokens, mask, hypothesis, hypothesis_mask)
    with pytest.raises(ValueError, match="the distilbert encoder reads single texts"):
        AttentionClassifier(50, encoder="distilbert", pair=True, source="unused", special={})


@pytest.mark.parametrize("attention, normalizer", CONFIGS)
def test_gradient_is_that_of_the_predicted_class_probability_with_attention_fixed(
    attention: str, normalizer: str
) -> None:
    model = make_pair_model(attention, normalizer)
    tokens, mask, hypothesis, hypothesis_mask = pair_batch()
    query = model.query(hypothesis, hypothesis_mask).detach()
    importance = gradient_importance(model, tokens, mask, query)
    for row, length in enumerate(LENGTHS):
        embeddings = model.embed(tokens[row : row + 1, :length]).detach().requires_grad_(True)
        row_mask = torch.ones(1, length, dtype=torch.bool)
        logits, _ = model.forward_embeddings(
            embeddings, row_mask, detach_attention=True, query=query[row : row + 1]
        )
        probabilities = torch.softmax(logits, -1)[0]
        (gradient,) = torch.autograd.grad(probabilities.max(), embeddings)
        expected = (gradient * embeddings).sum(-1).abs()[0]
        assert torch.allclose(importance[row, :length], expected, rtol=1e-9, atol=1e-15)
    assert (importance[~mask] == 0).all()


@pytest.mark.parametrize("encoder", ["lstm", "cnn", "transformer"])  # lstm: trainables.loo_bilstm
@pytest.mark.parametrize("attention, normalizer", CONFIGS)
def test_leave_one_out_is_the_total_variation_of_deleting_each_premise_token(
    encoder: str, attention: str, normalizer: str
) -> None:
    model = make_pair_model(attention, normalizer, encoder).eval()
    tokens, mask, hypothesis, hypothesis_mask = pair_batch()
    query = model.query(hypothesis, hypothesis_mask).detach()
    importance = leave_one_out_importance(model, tokens, mask, query=query)
    for row, length in enumerate(LENGTHS):
        premise, kept = tokens[row, :length], hypothesis[row, : HYPOTHESIS_LENGTHS[row]]
        full = alone(model, premise, kept)
        for position in range(length):
            shorter = torch.cat([premise[:position], premise[position + 1 :]])
            expected = (full - alone(model, shorter, kept)).abs().sum().item() / 2
            assert importance[row, position].item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert (importance[~mask] == 0).all()


def test_erasure_keeps_each_row_with_its_own_hypothesis() -> None:
    model = make_pair_model("tanh", "sparsemax").eval()
    tokens, mask = make_batch([4, 4, 4])
    tokens[1] = tokens[0]  # the same premise twice, with different hypotheses: not one sequence
    hypothesis, hypothesis_mask = make_batch([2, 3, 1], seed=5)
    query = model.query(hypothesis, hypothesis_mask).detach()
    scores = torch.arange(4, dtype=torch.float64).expand(1, 3, 4).clone()  # the last token ranks first
    comprehensiveness, sufficiency = erasure_curves(model, tokens, mask, scores, [50], query=query)
    for row in range(3):
        kept = hypothesis[row, : [2, 3, 1][row]]
        full = alone(model, tokens[row], kept)
        predicted = int(full.argmax())
        without = alone(model, tokens[row, :2], kept)  # the top half deleted
        only = alone(model, tokens[row, 2:], kept)  # the top half kept alone
        assert comprehensiveness[0, row, 0].item() == pytest.approx(
            (full - without)[predicted].item(), abs=1e-12
        )
        assert sufficiency[0, row, 0].item() == pytest.approx((full - only)[predicted].item(), abs=1e-12)


def test_integrated_gradients_are_complete_for_the_predicted_class() -> None:
    model = make_pair_model("tanh", "softmax").eval()
    tokens, mask, hypothesis, hypothesis_mask = pair_batch()
    query = model.query(hypothesis, hypothesis_mask).detach()
    signed = signed_integrated_gradients(model, tokens, mask, steps=200, query=query)
    for row, length in enumerate(LENGTHS):
        kept = hypothesis[row, : HYPOTHESIS_LENGTHS[row]]
        full = alone(model, tokens[row, :length], kept)
        predicted = int(full.argmax())
        baseline = alone(model, torch.zeros(length, dtype=torch.long), kept)  # every token padding
        assert signed[row].sum().item() == pytest.approx((full - baseline)[predicted].item(), abs=2e-3)
    for method in registry.ATTRIBUTION_METHODS:
        scores = attribution_importance(method, model, tokens, mask, samples=50, steps=8, query=query)
        assert scores.shape == tokens.shape and (scores[~mask] == 0).all() and (scores >= 0).all()


def test_counterfactual_attention_bounds_the_total_variation_of_the_output() -> None:
    model = make_pair_model("tanh", "softmax").eval()
    tokens, mask, hypothesis, hypothesis_mask = pair_batch()
    with torch.no_grad():
        query = model.query(hypothesis, hypothesis_mask)
        hidden = model.encode(model.embed(tokens), mask)
        attention = model.attend(hidden, mask, query)
        reference = torch.softmax(model.decode(hidden, attention, query), -1)
    result = adversarial_attention(model.decode, hidden, mask, attention, steps=50, epsilon=0.05, query=query)
    with torch.no_grad():
        adversarial = torch.softmax(model.decode(hidden, result.distribution, query), -1)
    tvd = (adversarial - reference).abs().sum(-1) / 2
    assert result.found.any()
    assert torch.allclose(tvd[result.found], result.output_diff[result.found], atol=1e-12)
    assert (tvd[result.found] <= 0.05 + 1e-12).all()
    permutation = permutation_output_diff(
        model.decode, hidden, mask, attention, n_permutations=7, query=query
    )
    assert (permutation.median_output_diff >= 0).all() and (permutation.median_output_diff <= 1).all()
    assert permutation.median_output_diff[torch.tensor(LENGTHS) == 1].eq(0).all()  # nothing to permute


def nli_split(n: int, seed: int) -> Split:
    """Label = which of three cue tokens (2, 3, 4) the hypothesis names, found in the premise."""
    rng = np.random.default_rng(seed)
    premises, hypotheses, labels = [], [], np.arange(n) % 3
    for label in labels:
        premise = rng.integers(5, 30, size=rng.integers(3, 9))
        premise[rng.integers(len(premise))] = 2 + label
        premises.append(premise)
        hypotheses.append(rng.integers(5, 30, size=rng.integers(1, 4)))
    return Split(premises, labels, hypotheses)


def test_a_pair_model_learns_three_classes_and_explains_per_class() -> None:
    torch.manual_seed(0)
    train, test = nli_split(240, 0), nli_split(45, 1)
    model = AttentionClassifier(30, 16, 16, normalizer="sparsemax", num_classes=3, pair=True)
    optimizer = make_optimizer(model, 1e-2, 0.0)
    device = torch.device("cpu")
    losses = [
        train_epoch(model, optimizer, train, 16, np.random.default_rng(epoch), device) for epoch in range(6)
    ]
    assert losses[-1] < 0.5 * losses[0]
    probs = predict(model, test, 16, device)
    assert probs.shape == (45, 3) and np.allclose(probs.sum(1), 1)
    metrics = classification_metrics(test.labels, probs)
    assert metrics["accuracy"] > 0.6 and metrics["auc"] > 0.8
    explanation = explain(
        model,
        test,
        ExplainSettings(batch_size=16, chance_permutations=3),
        CounterfactualSettings(steps=5, permutations=3, batch_size=16),
        device,
        seed=1,
    )
    instances = explanation.instances
    assert set(instances["prediction"]) <= {0, 1, 2} and "prob" not in instances
    assert np.allclose(instances["confidence"], probs.max(1))
    for label in ("all", "0", "1", "2"):
        assert registry.correlation_metric("kendall", "attn_grad", label, "mean") in explanation.metrics
        assert f"adversarial/{label}/jsd_mean" in explanation.metrics
        assert registry.erasure_metric("comprehensiveness", "attn", label, "mean") in explanation.metrics
    part = instances[instances["label"] == 2]
    assert explanation.metrics["permutation/2/diff_mean"] == pytest.approx(part["perm_median_diff"].mean())
    assert all(
        np.array_equal(ids, expected)
        for ids, expected in zip(explanation.tokens["hypothesis_ids"], test.hypotheses, strict=True)
    )
    assert isinstance(explanation.tokens, pd.DataFrame)


def test_multi_class_metrics_match_their_definitions() -> None:
    labels = np.array([0, 1, 2, 2, 1, 0])
    probs = np.array(
        [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.1, 0.4], [0.3, 0.4, 0.3], [0.4, 0.5, 0.1]]
    )
    metrics = classification_metrics(labels, probs)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # per class F1: class 0 (tp 1, fp 1, fn 1) 0.5; class 1 (tp 2, fp 1, fn 0) 0.8; class 2 (tp 1, fn 1) 2/3
    assert metrics["f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert 0 < metrics["auc"] <= 1
    assert np.isnan(classification_metrics(labels[:2], probs[:2])["auc"])  # class 2 absent: undefined
