"""Erasure faithfulness against a naive one-sequence-at-a-time recomputation, and on a hand-made model whose
answer is known: it reads only one planted token, so deleting that token must flip its prediction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.helpers import BAD_BATCHES, LENGTHS, make_batch, make_model
from trainables import registry
from trainables.data import Split
from trainables.explain import explain
from trainables.faithfulness import erasure_curves, faithfulness, random_scores
from trainables.model import AttentionClassifier
from trainables.settings import CounterfactualSettings, ExplainSettings

PLANTED = 7  # the one token the hand-made model reads
PERCENTS = registry.ERASURE_PERCENTS
CPU = torch.device("cpu")


def planted_model() -> AttentionClassifier:
    """A context-free attention model set by hand: token PLANTED embeds to (1, 0), every other token to
    (0, 0); the projection keeps tanh(5 x), attention scores the planted token about 20 and the others 0,
    and the decoder gives logit 16 h - 8. So the logit is about +8 (positive) with the planted token and
    exactly -8 (negative) without it, whatever the other tokens are."""
    model = AttentionClassifier(20, embed_dim=2, hidden_size=2, encoder="average", attention="tanh").double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.embedding.weight[PLANTED, 0] = 1.0
        model.encoder.project.weight[0, 0] = 5.0
        model.attention.project.weight[0, 0] = 10.0
        model.attention.score.weight[0, 0] = 20.0
        model.decoder.weight[0, 0] = 16.0
        model.decoder.bias[0] = -8.0
    return model.eval()


def planted_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Sentences of other tokens (1..19 but PLANTED) with PLANTED at a random position; the positions."""
    rng = np.random.default_rng(seed)
    others = [token for token in range(1, 20) if token != PLANTED]
    width = max(lengths)
    tokens = torch.zeros(len(lengths), width, dtype=torch.long)
    positions = []
    for row, length in enumerate(lengths):
        tokens[row, :length] = torch.from_numpy(rng.choice(others, size=length))
        positions.append(int(rng.integers(length)))
        tokens[row, positions[-1]] = PLANTED
    return tokens, torch.arange(width) < torch.tensor(lengths).unsqueeze(1), positions


def class_probability(model: AttentionClassifier, sequence: list[int], positive: bool) -> float:
    """P(predicted class) of one unpadded sequence run alone (an empty one as one masked column)."""
    if sequence:
        logits, _ = model(torch.tensor([sequence]), torch.ones(1, len(sequence), dtype=torch.bool))
    else:
        logits, _ = model(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1, dtype=torch.bool))
    p = torch.sigmoid(logits.double()).item()
    return p if positive else 1 - p


def test_erasure_matches_one_by_one_recomputation() -> None:
    model = make_model("tanh", "sparsemax")
    tokens, mask = make_batch(LENGTHS)
    scores = torch.rand(2, *tokens.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    scores[1, 3, :4] = 0.5  # ties: the lower position ranks first
    comprehensiveness, sufficiency = erasure_curves(model, tokens, mask, scores, max_rows=5)
    assert comprehensiveness.shape == sufficiency.shape == (2, len(LENGTHS), len(PERCENTS))
    with torch.no_grad():
        for row, length in enumerate(LENGTHS):
            sequence = tokens[row, :length].tolist()
            positive = class_probability(model, sequence, True) >= 0.5
            full = class_probability(model, sequence, positive)
            for order in range(2):
                ranked = sorted(range(length), key=lambda t: (-scores[order, row, t].item(), t))
                for f, percent in enumerate(PERCENTS):
                    top = set(ranked[: math.ceil(percent * length / 100)])
                    deleted = [token for t, token in enumerate(sequence) if t not in top]
                    kept = [token for t, token in enumerate(sequence) if t in top]
                    expected = full - class_probability(model, deleted, positive)
                    assert comprehensiveness[order, row, f].item() == pytest.approx(expected, abs=1e-12)
                    expected = full - class_probability(model, kept, positive)
                    assert sufficiency[order, row, f].item() == pytest.approx(expected, abs=1e-12)


def test_percentages_round_up_exactly() -> None:
    """ceil(q L / 100) in integers: 30% of 10 tokens is 3 (0.3 * 10 in floats rounds up to 4)."""
    model = planted_model()
    tokens, mask, positions = planted_batch([10])
    scores = torch.zeros(1, 1, 10, dtype=torch.float64)
    scores[0, 0, positions[0]] = -1.0  # the planted token ranks last of 10
    comprehensiveness, sufficiency = erasure_curves(model, tokens, mask, scores, percents=[30, 90, 100])
    assert comprehensiveness[0, 0, :2].abs().max() < 1e-6  # 3 and 9 tokens deleted: it stays
    assert comprehensiveness[0, 0, 2] > 0.99 and sufficiency[0, 0, 2] == 0.0  # 100%: all or nothing


def test_deleting_the_planted_token_flips_the_prediction_and_random_orders_do_less() -> None:
    model = planted_model()
    lengths = [3, 5, 8, 12, 20, 6, 9, 15]
    tokens, mask, positions = planted_batch(lengths)
    with torch.no_grad():
        logits, attention = model(tokens, mask)
    assert (logits > 7).all()  # every sentence is predicted positive
    oracle = torch.zeros(1, *tokens.shape, dtype=torch.float64)
    oracle[0, range(len(lengths)), positions] = 1.0
    last = mask.double().unsqueeze(0) - oracle  # the planted token ranks last
    orders = 50
    random = random_scores(np.array(lengths), tokens.shape[1], np.arange(len(lengths)), seed=1, orders=orders)
    scores = torch.cat([attention.double().unsqueeze(0), oracle, last, random])
    comprehensiveness, sufficiency = erasure_curves(model, tokens, mask, scores)
    full = torch.sigmoid(logits.double())
    for ranking in (0, 1):  # the model's attention and the oracle both rank the planted token first
        after = full.unsqueeze(1) - comprehensiveness[ranking]
        assert (after < 0.5).all()  # deleting the top tokens, at every percentage, flips the prediction
        kept = full.unsqueeze(1) - sufficiency[ranking]
        assert (kept > 0.5).all() and sufficiency[ranking].abs().max() < 1e-6  # keeping them alone does not
    random_aopc = comprehensiveness[3:].mean(-1)  # [orders, B]
    assert (comprehensiveness[1].mean(-1) > random_aopc.mean(0) + 0.1).all()  # random does less on average
    assert comprehensiveness[2].mean() < random_aopc.mean() < comprehensiveness[1].mean()
    assert sufficiency[3:].mean() > sufficiency[1].mean() + 0.3  # and random kept tokens do not suffice
    # a random order deletes it at q with chance k / L, and then the change is the whole flip
    chance = np.mean([[math.ceil(q * n / 100) / n for q in PERCENTS] for n in lengths])
    flip = full.mean().item() - 1 / (1 + math.exp(8))
    assert random_aopc.mean().item() == pytest.approx(chance * flip, abs=0.05)


def test_explain_logs_faithfulness_per_measure_and_class_on_the_planted_model() -> None:
    """The whole phase as a trial runs it: attention, gradient and leave-one-out all find the planted
    token, so each comprehensiveness is the full flip, well above the random baseline, whatever the
    batch size."""
    lengths = [4, 6, 9, 12, 7, 5]
    tokens, _, _ = planted_batch(lengths, seed=2)
    split = Split(tokens=[tokens[i, :n].numpy() for i, n in enumerate(lengths)], labels=np.array([0, 1] * 3))
    results = [
        explain(
            planted_model(),
            split,
            ExplainSettings(batch_size=batch_size, faithfulness_random_orders=3),
            CounterfactualSettings(enabled=False),
            CPU,
            seed=4,
        )
        for batch_size in (2, 64)
    ]
    instances, metrics = results[0].instances, results[0].metrics
    flip = instances["prob"] - 1 / (1 + math.exp(8))  # deleting it takes P(positive) to sigmoid(-8)
    for short in ("attn", "grad", "loo"):
        column = registry.erasure_column("comprehensiveness", short)
        assert np.allclose(instances[column], flip, atol=1e-6), short
        assert instances[column].mean() > instances["comprehensiveness_random"].mean() + 0.1, short
        curves = np.stack(instances[registry.erasure_curve_column("comprehensiveness", short)])
        assert curves.shape == (len(lengths), len(PERCENTS)) and np.allclose(
            curves.mean(1), instances[column]
        )
        for label in ("all", "0", "1"):
            part = instances if label == "all" else instances[instances["label"] == int(label)]
            name = registry.erasure_metric("comprehensiveness", short, label, "mean")
            assert metrics[name] == pytest.approx(part[column].mean())
    assert metrics["time/faithfulness_s"] > 0
    for column in results[0].instances.columns:
        if column.startswith(tuple(registry.ERASURES)) and "_curve_" not in column:
            assert np.array_equal(instances[column], results[1].instances[column]), (
                column
            )  # batch-independent


def test_random_orders_are_seeded_per_instance() -> None:
    lengths = np.array([3, 6])
    first = random_scores(lengths, 8, np.array([10, 11]), seed=5, orders=2)
    alone = random_scores(lengths[1:], 6, np.array([11]), seed=5, orders=2)
    assert torch.equal(first[:, 1, :6], alone[:, 0]) and (first[:, :, 6:] == 0).all()
    assert sorted(first[0, 0, :3].tolist()) == [0.0, 1.0, 2.0]
    assert not torch.equal(first, random_scores(lengths, 8, np.array([10, 11]), seed=6, orders=2))


@pytest.mark.parametrize(("tokens", "mask", "message"), BAD_BATCHES)
def test_bad_batches_are_refused(tokens: torch.Tensor, mask: torch.Tensor, message: str) -> None:
    scores = torch.zeros(1, *tokens.shape) if tokens.ndim == 2 else torch.zeros(1, 1, 3)
    with pytest.raises(ValueError, match=message):
        erasure_curves(make_model("tanh", "softmax"), tokens, mask, scores)


@pytest.mark.parametrize(
    ("shape", "percents", "max_rows", "message"),
    [
        ((2, 4), PERCENTS, 8, r"scores must be \[M, B, T\] with \[B, T\] = \(2, 4\), got \(2, 4\)"),
        ((1, 2, 5), PERCENTS, 8, r"scores must be \[M, B, T\] with \[B, T\] = \(2, 4\), got \(1, 2, 5\)"),
        ((1, 2, 4), [], 8, r"percents must be integers in 1..100, got \[\]"),
        ((1, 2, 4), [0, 50], 8, r"percents must be integers in 1..100, got \[0, 50\]"),
        ((1, 2, 4), [0.5], 8, r"percents must be integers in 1..100, got \[0.5\]"),
        ((1, 2, 4), PERCENTS, 0, "max_rows must be at least 1, got 0"),
    ],
)
def test_bad_scores_percents_and_rows_are_refused(shape, percents, max_rows, message) -> None:
    tokens, mask = make_batch([4, 2])
    with pytest.raises(ValueError, match=message):
        erasure_curves(make_model("tanh", "softmax"), tokens, mask, torch.zeros(shape), percents, max_rows)


def test_faithfulness_table_has_every_order() -> None:
    split = Split(tokens=[np.array([3, 4, 5]), np.array([6])], labels=np.array([0, 1]))
    measures = registry.measures()
    scores = {m.name: [np.array([0.1, 0.3, 0.2]), np.array([1.0])] for m in measures}
    table = faithfulness(make_model("dot", "softmax"), split, scores, measures, ExplainSettings(), CPU, 1)
    shorts = [order.short for order in registry.erasure_orders()]
    assert shorts == ["attn", "grad", "loo", "random"]
    assert set(table.columns) == {
        name(erasure, short)
        for erasure in registry.ERASURES
        for short in shorts
        for name in (registry.erasure_column, registry.erasure_curve_column)
    }
    # one token: every percentage deletes it, so every order gives the same change
    assert table.loc[1, [f"comprehensiveness_{s}" for s in shorts]].nunique() == 1
