"""Integrated Gradients, DeepLIFT and LIME through captum: conventions, exact properties, and bad inputs."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch

from tests.helpers import BAD_BATCHES, LENGTHS, make_batch, make_model
from trainables.attributions import (
    ClassProbabilities,
    attribution_importance,
    padding_baseline,
    predicted_class,
    signed_deeplift,
    signed_integrated_gradients,
    signed_lime,
)
from trainables.data import Split
from trainables.explain import explain
from trainables.importance import gradient_importance
from trainables.model import AttentionClassifier
from trainables.registry import ATTRIBUTION_METHODS as METHODS
from trainables.registry import pairs
from trainables.settings import CounterfactualSettings, ExplainSettings

CONFIGS = list(itertools.product(("tanh", "dot"), ("softmax", "sparsemax")))
SMALL = {"steps": 16, "samples": 40, "internal_batch_size": 64, "seed": 3}  # keeps LIME cheap


def compute(method: str, model: AttentionClassifier, tokens: torch.Tensor, mask: torch.Tensor, **kwargs):
    return attribution_importance(method, model, tokens, mask, **{**SMALL, **kwargs})


def predicted_probability_gap(
    model: AttentionClassifier, tokens: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """f(x) - f(baseline) [B] for f = P(class predicted for x), the baseline being all padding embeddings."""
    with torch.no_grad():
        logits, _ = model(tokens, mask)
        baseline_logits, _ = model.forward_embeddings(padding_baseline(model, tokens), mask)
    sign = torch.where(torch.sigmoid(logits) >= 0.5, 1.0, -1.0).to(logits)  # P(class 0) = sigmoid(-logit)
    return torch.sigmoid(sign * logits) - torch.sigmoid(sign * baseline_logits)


@pytest.fixture(params=CONFIGS, ids=["-".join(config) for config in CONFIGS])
def model(request: pytest.FixtureRequest) -> AttentionClassifier:
    return make_model(*request.param)


def test_the_batch_predicts_both_classes(model: AttentionClassifier) -> None:
    """The tests below cover attributing 1 - p as well as p only if both classes are predicted."""
    tokens, mask = make_batch(LENGTHS)
    assert set(predicted_class(model, tokens, mask).tolist()) == {0, 1}


@pytest.mark.parametrize("method", METHODS)
def test_one_non_negative_score_per_token_and_zero_on_padding(
    model: AttentionClassifier, method: str
) -> None:
    tokens, mask = make_batch(LENGTHS, width=9)
    scores = compute(method, model, tokens, mask)
    assert scores.shape == tokens.shape and scores.dtype == torch.float64
    assert torch.isfinite(scores).all() and (scores >= 0).all()
    assert (scores[~mask] == 0).all()
    assert (scores[mask] > 0).all()


@pytest.mark.parametrize("method", METHODS)
def test_same_inputs_and_seed_give_the_same_scores(model: AttentionClassifier, method: str) -> None:
    tokens, mask = make_batch(LENGTHS)
    assert torch.equal(compute(method, model, tokens, mask), compute(method, model, tokens, mask))


def test_lime_depends_on_its_seed(model: AttentionClassifier) -> None:
    tokens, mask = make_batch(LENGTHS)
    assert not torch.equal(compute("lime", model, tokens, mask, seed=1), compute("lime", model, tokens, mask))


@pytest.mark.parametrize("method", METHODS)
def test_row_scores_do_not_depend_on_the_batch(model: AttentionClassifier, method: str) -> None:
    tokens, mask = make_batch(LENGTHS, width=10)
    together = compute(method, model, tokens, mask)
    for row, length in enumerate(LENGTHS):
        alone = compute(method, model, tokens[row : row + 1, :length], mask[row : row + 1, :length])
        assert torch.allclose(together[row, :length], alone[0], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method", ["integrated_gradients", "deeplift"])
def test_internal_batch_size_does_not_change_results(method: str) -> None:
    model = make_model("tanh", "sparsemax")
    tokens, mask = make_batch(LENGTHS)
    whole = compute(method, model, tokens, mask, internal_batch_size=1000)
    for size in (1, 5, 17) if method == "deeplift" else (5, 17, 40):  # 5 < steps: captum splits the steps
        chunked = compute(method, model, tokens, mask, internal_batch_size=size)
        assert torch.allclose(chunked, whole, rtol=1e-9, atol=1e-12)


def test_integrated_gradients_are_complete(model: AttentionClassifier) -> None:
    """Signed IG of a row sums to f(x) - f(baseline) for f the predicted-class probability."""
    tokens, mask = make_batch(LENGTHS, width=9)
    signed = signed_integrated_gradients(model, tokens, mask, steps=50, internal_batch_size=128)
    gap = predicted_probability_gap(model, tokens, mask)
    assert gap.abs().min() > 1e-3  # a meaningful check, not 0 = 0
    assert torch.allclose(signed.sum(1), gap, rtol=0, atol=1e-6)
    assert (signed[~mask] == 0).all()


def test_integrated_gradients_agree_with_captums_convergence_delta(model: AttentionClassifier) -> None:
    from captum.attr import IntegratedGradients

    tokens, mask = make_batch(LENGTHS)
    target = predicted_class(model, tokens, mask)
    _, delta = IntegratedGradients(ClassProbabilities(model)).attribute(
        model.embed(tokens).detach(),
        baselines=padding_baseline(model, tokens),
        target=target,
        additional_forward_args=(mask,),
        n_steps=50,
        return_convergence_delta=True,
    )
    signed = signed_integrated_gradients(model, tokens, mask, steps=50)
    gap = predicted_probability_gap(model, tokens, mask)
    assert torch.allclose(signed.sum(1) - gap, delta, rtol=0, atol=1e-9)
    assert delta.abs().max() < 1e-6


def test_deeplift_on_the_lstm_falls_back_to_gradients_inside_it() -> None:
    """captum's DeepLift cannot see into nn.LSTM (documented): with dot attention the rescale rule only
    reaches the output sigmoid, so DeepLIFT = (x . d logit / dx) x (sigma(z) - sigma(z_0)) / (z - z_0)."""
    model = make_model("dot", "softmax")
    tokens, mask = make_batch(LENGTHS, width=9)
    embeddings = model.embed(tokens).detach().requires_grad_(True)
    logits, _ = model.forward_embeddings(embeddings, mask)
    (gradient,) = torch.autograd.grad(logits.sum(), embeddings)
    with torch.no_grad():
        baseline, _ = model.forward_embeddings(padding_baseline(model, tokens), mask)
        sign = torch.where(torch.sigmoid(logits) >= 0.5, 1.0, -1.0).to(logits)
        rescale = (torch.sigmoid(sign * logits) - torch.sigmoid(sign * baseline)) / (logits - baseline)
        expected = (gradient * embeddings).sum(-1) * rescale.unsqueeze(1) * mask
    deeplift = signed_deeplift(model, tokens, mask)
    assert torch.allclose(deeplift, expected, rtol=1e-9, atol=1e-12)
    # so it ranks the tokens of each row exactly like gradient x input (through attention too), and is
    # not complete
    ratio = deeplift.abs()[mask] / (gradient * embeddings).sum(-1).abs().detach()[mask]
    rows = mask.nonzero()[:, 0]
    for row in range(len(LENGTHS)):
        assert torch.allclose(ratio[rows == row], ratio[rows == row][0].expand(LENGTHS[row]), rtol=1e-9)
    gap = predicted_probability_gap(model, tokens, mask)
    assert (deeplift.sum(1) - gap).abs().max() > 1e-2


def test_deeplift_rescales_the_attention_tanh() -> None:
    """With additive attention the tanh is a module, so DeepLIFT differs from the sigmoid-only formula."""
    model = make_model("tanh", "softmax")
    tokens, mask = make_batch(LENGTHS)
    deeplift = signed_deeplift(model, tokens, mask)
    gradient = gradient_importance(model, tokens, mask)
    ratios = [deeplift.abs()[row, :length] / gradient[row, :length] for row, length in enumerate(LENGTHS)]
    assert any(r.max() / r.min() > 1 + 1e-6 for r in ratios if len(r) > 1)


def test_deeplift_leaves_no_hooks_behind(model: AttentionClassifier) -> None:
    tokens, mask = make_batch(LENGTHS)
    with torch.no_grad():
        before, _ = model(tokens, mask)
    signed_deeplift(model, tokens, mask)
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks and not module._backward_hooks
        assert not hasattr(module, "input") and not hasattr(module, "output")
    with torch.no_grad():
        assert torch.equal(model(tokens, mask)[0], before)


def test_lime_recovers_an_additive_model() -> None:
    """When the logit is a sum of per-token terms, LIME's coefficients follow each token's own effect."""
    model = make_model("dot", "softmax")
    with torch.no_grad():  # no recurrence and uniform attention: logit = mean of per-token terms
        model.encoder.rnn.weight_hh_l0.zero_()
        model.encoder.rnn.weight_hh_l0_reverse.zero_()
        model.attention.query.zero_()
    tokens, mask = make_batch([7])
    lime = signed_lime(model, tokens, mask, samples=400, internal_batch_size=400, seed=0)
    effects = []  # change of the predicted class's logit when one token is replaced by padding
    with torch.no_grad():
        full, _ = model(tokens, mask)
        sign = 1.0 if full.item() >= 0 else -1.0
        for position in range(7):
            replaced = model.embed(tokens).clone()
            replaced[0, position] = 0
            logits, _ = model.forward_embeddings(replaced, mask)
            effects.append(sign * (full - logits).item())
    correlation = np.corrcoef(lime[0].numpy(), np.array(effects))[0, 1]
    assert correlation > 0.9


@pytest.mark.parametrize("method", METHODS)
def test_no_parameter_gradients_mode_restored_and_works_inside_no_grad(method: str) -> None:
    model = make_model("tanh", "sparsemax")
    tokens, mask = make_batch(LENGTHS)
    model.train()
    expected = compute(method, model, tokens, mask)
    assert model.training
    assert all(parameter.grad is None for parameter in model.parameters())
    with torch.no_grad():
        assert torch.equal(compute(method, model, tokens, mask), expected)


@pytest.mark.parametrize("method", METHODS)
def test_all_padding_row_gets_zero_and_float32_stays_float32(method: str) -> None:
    model = make_model("tanh", "softmax").float()
    tokens, mask = make_batch([3, 0, 1])
    scores = compute(method, model, tokens, mask)
    assert scores.dtype == torch.float32
    assert (scores[1] == 0).all() and (scores[~mask] == 0).all()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("tokens", "mask", "message"),
    BAD_BATCHES,
)
def test_bad_batches_raise(method: str, tokens: torch.Tensor, mask: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute(method, make_model("tanh", "softmax"), tokens, mask)


@pytest.mark.parametrize(
    ("function", "keyword"),
    [
        (signed_integrated_gradients, "steps"),
        (signed_integrated_gradients, "internal_batch_size"),
        (signed_deeplift, "internal_batch_size"),
        (signed_lime, "samples"),
        (signed_lime, "internal_batch_size"),
    ],
)
@pytest.mark.parametrize("value", [0, -2, 1.5, True])
def test_bad_sizes_raise(function, keyword: str, value) -> None:
    tokens, mask = make_batch(LENGTHS)
    with pytest.raises(ValueError, match=f"{keyword} must be a positive integer, got {value!r}"):
        function(make_model("tanh", "softmax"), tokens, mask, **{keyword: value})


def test_unknown_method_raises() -> None:
    tokens, mask = make_batch(LENGTHS)
    with pytest.raises(ValueError, match="unknown attribution method 'shap'; allowed: integrated_gradients"):
        attribution_importance("shap", make_model("tanh", "softmax"), tokens, mask)


def names(pairs_of_measures) -> list[str]:
    return [pair.name for pair in pairs_of_measures]


def test_pairs_cover_every_pair_of_enabled_measures_in_a_fixed_order() -> None:
    assert [(pair.name, pair.first.name, pair.second.name) for pair in pairs(())] == [
        ("attn_grad", "attention", "gradient"),
        ("attn_loo", "attention", "loo"),
        ("grad_loo", "gradient", "loo"),
    ]
    assert names(pairs(["lime", "integrated_gradients"])) == [
        "attn_grad",
        "attn_loo",
        "attn_ig",
        "attn_lime",
        "grad_loo",
        "grad_ig",
        "grad_lime",
        "loo_ig",
        "loo_lime",
        "ig_lime",
    ]
    assert len(pairs(METHODS)) == 6 * 5 // 2 and "ig_dl" in names(pairs(METHODS))
    with pytest.raises(ValueError, match="unknown attribution method 'shap'"):
        pairs(["shap"])


@functools.cache
def tiny_explanation():
    model = make_model("tanh", "sparsemax").float()
    generator = np.random.default_rng(0)
    sentences = [generator.integers(1, 50, size=n) for n in [4, 9, 1, 6, 3, 12, 5, 7]]
    split = Split(tokens=sentences, labels=np.array([0, 1] * 4))
    settings = ExplainSettings(
        batch_size=3, attributions=("lime", "deeplift", "integrated_gradients"), ig_steps=8, lime_samples=30
    )
    counterfactual = CounterfactualSettings(enabled=False)
    return explain(model, split, settings, counterfactual, torch.device("cpu"), seed=1), sentences


def test_explain_logs_the_enabled_attributions() -> None:
    explanation, sentences = tiny_explanation()
    for pair in names(pairs(METHODS)):
        assert f"kendall_{pair}" in explanation.instances
        assert f"kendall/{pair}/all/mean" in explanation.metrics
        assert f"topk_nz/{pair}/1/n_nan" in explanation.metrics
    for method in METHODS:
        assert explanation.metrics[f"time/{method}_s"] > 0
        column = explanation.tokens[method]
        assert [len(row) for row in column] == [len(s) for s in sentences]
        assert all((row >= 0).all() for row in column)
    assert (
        "kendall/ig_dl/all/mean" in explanation.metrics
        and "kendall/dl_lime/0/sig_frac" in explanation.metrics
    )


def test_explain_without_attributions_keeps_the_three_pairs() -> None:
    model = make_model("dot", "softmax").float()
    split = Split(tokens=[np.array([3, 4, 5]), np.array([6, 7])], labels=np.array([0, 1]))
    explanation = explain(
        model, split, ExplainSettings(), CounterfactualSettings(enabled=False), torch.device("cpu"), seed=1
    )
    pairs = {name.split("/")[1] for name in explanation.metrics if name.startswith("kendall/")}
    assert pairs == {"attn_grad", "attn_loo", "grad_loo"}
    assert list(explanation.tokens.columns) == ["index", "token_ids", "attention", "gradient", "loo"]
    assert not any(
        name.startswith(("time/integrated", "time/deeplift", "time/lime")) for name in explanation.metrics
    )
