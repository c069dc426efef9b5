"""The transformer and DistilBERT encoders: masking and padding, word pieces, importance and counterfactual
attention over their states, fine-tuning schedules, and loading a pretrained model from a local folder (no
download) with one-line errors for what cannot load."""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sweep.config import ConfigError, load_preset, parse_config
from sweep.runner import prepare_data, word_pieces
from tests.helpers import learnable_split, write_tiny_distilbert
from trainables.attributions import attribution_importance
from trainables.counterfactual import adversarial_attention
from trainables.data import index_word_pieces, tokenize_dataset
from trainables.importance import gradient_importance, leave_one_out_importance
from trainables.model import AttentionClassifier, sinusoidal_positions
from trainables.pretrained import (
    PretrainedError,
    load_config,
    load_model,
    load_tokenizer,
    parse_pretrained,
    special_ids,
)
from trainables.registry import ATTRIBUTION_METHODS
from trainables.settings import TrainSettings
from trainables.train import EarlyStopping, make_training, train_epoch, warmup_linear
from trainables.trial import TrialState, load_state

NORMALIZERS = ("softmax", "sparsemax", "entmax15")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return write_tiny_distilbert(tmp_path_factory.mktemp("tiny-distilbert"))


def distilbert(folder: Path, normalizer: str = "softmax", attention: str = "tanh", seed: int = 0):
    torch.manual_seed(seed)
    special = special_ids(load_tokenizer(str(folder)))
    model = AttentionClassifier(
        0,
        encoder="distilbert",
        attention=attention,
        normalizer=normalizer,
        source=str(folder),
        special=special,
    )
    return model.eval()


def transformer(normalizer: str = "softmax", positions: str = "sinusoidal", seed: int = 0):
    torch.manual_seed(seed)
    return AttentionClassifier(
        40, 8, 8, encoder="transformer", normalizer=normalizer, heads=2, positions=positions
    ).eval()


def piece_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Word-piece ids of the tiny vocabulary (5.. are words), left-aligned, 0-padded."""
    tokens = torch.tensor([[5, 9, 7, 30, 31], [6, 8, 0, 0, 0], [12, 0, 0, 0, 0]])
    return tokens, tokens != 0


# --- DistilBERT over word pieces ----------------------------------------------------------------------


def test_distilbert_reads_each_row_between_cls_and_sep_as_in_pretraining(tiny_bert):
    model = distilbert(tiny_bert)
    tokens, mask = piece_batch()
    with torch.no_grad():
        states = model.encode(model.embed(tokens), mask)
        for row, length in enumerate(mask.sum(1).tolist()):
            ids = torch.tensor([[2, *tokens[row, :length].tolist(), 3]])  # [CLS] pieces [SEP]
            direct = model.encoder.bert(input_ids=ids).last_hidden_state[0, 1:-1]
            torch.testing.assert_close(states[row, :length], direct)
    assert torch.all(states[~mask] == 0) and states.shape == (3, 5, 32)
    assert model.embedding is None and model.embed(tokens).shape == (3, 5, 32)


@pytest.mark.parametrize("normalizer", NORMALIZERS)
def test_distilbert_attention_is_zero_on_padding_and_a_row_ignores_its_padding(tiny_bert, normalizer):
    model = distilbert(tiny_bert, normalizer)
    tokens, mask = piece_batch()
    with torch.no_grad():
        logits, weights = model(tokens, mask)
        alone_logit, alone_weights = model(tokens[1:2, :2], mask[1:2, :2])
        empty_logit, empty_weights = model(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1, dtype=bool))
    assert torch.all(weights[~mask] == 0) and torch.all(weights >= 0)
    torch.testing.assert_close(weights.sum(1), torch.ones(3))
    torch.testing.assert_close(logits[1:2], alone_logit)
    torch.testing.assert_close(weights[1:2, :2], alone_weights)
    assert torch.all(empty_weights == 0) and torch.isfinite(empty_logit).all()


def test_distilbert_built_twice_with_one_seed_is_the_same_model(tiny_bert):
    tokens, mask = piece_batch()
    with torch.no_grad():
        first, again, other = (distilbert(tiny_bert, seed=seed)(tokens, mask)[0] for seed in (1, 1, 2))
    assert torch.equal(first, again) and not torch.equal(first, other)  # the pooling head is seeded


@pytest.mark.parametrize("encoder", ["transformer", "distilbert"])
def test_importance_is_per_token_and_leave_one_out_deletes_one_word_piece(tiny_bert, encoder):
    model = distilbert(tiny_bert) if encoder == "distilbert" else transformer()
    tokens, mask = piece_batch()
    gradient = gradient_importance(model, tokens, mask)
    loo = leave_one_out_importance(model, tokens, mask)
    for scores in (gradient, loo):
        assert scores.shape == (3, 5) and scores.dtype == torch.float64
        assert torch.all(scores[~mask] == 0) and torch.all(scores[mask] > 0)
    with torch.no_grad():
        full = torch.sigmoid(model(tokens[:1], mask[:1])[0].double())
        without = torch.cat([tokens[:1, :2], tokens[:1, 3:]], 1)  # the first row without its third piece
        shorter = torch.sigmoid(model(without, without != 0)[0].double())
    assert loo[0, 2].item() == pytest.approx((full - shorter).abs().item(), rel=1e-4)


@pytest.mark.parametrize("encoder", ["transformer", "distilbert"])
def test_the_counterfactual_search_moves_only_the_pooling_attention_over_frozen_states(tiny_bert, encoder):
    model = distilbert(tiny_bert, "sparsemax") if encoder == "distilbert" else transformer("sparsemax")
    tokens, mask = piece_batch()
    with torch.no_grad():
        hidden = model.encode(model.embed(tokens), mask)
        attention = model.attend(hidden, mask)
    before = [parameter.clone() for parameter in model.parameters()]
    result = adversarial_attention(model.decode, hidden, mask, attention, k=2, steps=30, epsilon=1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(parameter.grad is None for parameter in model.parameters())
    assert torch.all(result.distribution[~mask] == 0)
    torch.testing.assert_close(result.distribution.sum(1), torch.ones(3))
    assert result.found.all() and (result.max_jsd[:2] > 0).all()  # epsilon 1: any; one token cannot move


@pytest.mark.parametrize("encoder", ["transformer", "distilbert"])
def test_captums_attributions_work_on_both_encoders(tiny_bert, encoder):
    model = distilbert(tiny_bert) if encoder == "distilbert" else transformer()
    tokens, mask = piece_batch()
    for method in ATTRIBUTION_METHODS:
        scores = attribution_importance(method, model, tokens, mask, steps=4, samples=16, seed=0)
        assert scores.shape == (3, 5) and torch.isfinite(scores).all(), method
        assert torch.all(scores[~mask] == 0) and scores[mask].abs().sum() > 0, method


# --- the transformer trained from scratch -------------------------------------------------------------


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_the_transformer_masks_padding_and_empty_rows_stay_finite(positions):
    model = transformer("sparsemax", positions)
    tokens = torch.tensor([[4, 9, 2, 7, 3], [5, 8, 0, 0, 0], [0, 0, 0, 0, 0]])
    mask = tokens != 0
    with torch.no_grad():
        logits, weights = model(tokens, mask)
        alone, _ = model(tokens[1:2, :2], mask[1:2, :2])
    torch.testing.assert_close(logits[1:2], alone)
    assert torch.isfinite(logits).all() and torch.all(weights[2] == 0)
    assert logits[2].item() == pytest.approx(model.decoder.bias.item())  # nothing attended: the bias


def test_sinusoidal_positions_are_vaswanis_and_learned_ones_have_a_bound():
    table = sinusoidal_positions(50, 6)
    assert table.shape == (50, 6)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1.0] * 3, dtype=torch.float64))
    torch.testing.assert_close(table[7, 2], torch.tensor(7 / 10000 ** (2 / 6), dtype=torch.float64).sin())
    model = transformer(positions="learned")
    long = torch.ones(1, 1025, dtype=torch.long)
    with pytest.raises(ValueError, match="learned positions cover 1024 tokens, got 1025"):
        model(long, long != 0)
    with pytest.raises(ValueError, match="transformer hidden_size must be a multiple of its 4 heads, got 6"):
        AttentionClassifier(30, 8, 6, encoder="transformer", heads=4)


def transformer_losses(seed: int, mixed_precision: bool = False) -> list[float]:
    torch.manual_seed(seed)
    model = AttentionClassifier(30, 8, 8, encoder="transformer", heads=2, normalizer="entmax15")
    optimizer, scheduler = make_training(model, "transformer", TrainSettings(lr=0.01), 100)
    split, cpu = learnable_split(100, 0), torch.device("cpu")
    rngs = [np.random.default_rng([seed, epoch]) for epoch in range(3)]
    return [train_epoch(model, optimizer, split, 16, rng, cpu, scheduler, mixed_precision) for rng in rngs]


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: on tiny matrices a second thread only waits (for seconds per
    epoch when other processes share the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_transformer_training_with_dropout_is_deterministic_per_seed_and_mixed_precision_runs(one_thread):
    losses = transformer_losses(1)
    assert losses == transformer_losses(1) and losses != transformer_losses(2)
    assert losses[-1] < losses[0]
    mixed = transformer_losses(1, mixed_precision=True)
    assert all(np.isfinite(mixed)) and mixed != losses  # bfloat16 autocast: other numbers


# --- fine-tuning: AdamW, two learning rates, warm-up and linear decay ---------------------------------


def test_warmup_rises_linearly_then_decays_to_zero():
    factors = [warmup_linear(step, warmup=2, total=10) for step in range(11)]
    assert factors[:3] == [0.5, 1.0, 1.0]
    assert factors[-1] == 0.0 and factors[6] == pytest.approx(0.5)
    assert all(a >= b for a, b in itertools.pairwise(factors[1:]))


def test_distilbert_fine_tunes_its_weights_and_the_new_head_at_their_own_rates(tiny_bert, tmp_path):
    model = distilbert(tiny_bert)
    settings = TrainSettings(lr=1e-3, pretrained_lr=2e-5, warmup=0.25, batch_size=10, max_epochs=2)
    optimizer, scheduler = make_training(model, "distilbert", settings, train_size=40)  # 8 steps in all
    assert isinstance(optimizer, torch.optim.AdamW)
    bert, head = optimizer.param_groups
    assert len(bert["params"]) == len(list(model.encoder.parameters()))
    assert len(head["params"]) == len(list(model.parameters())) - len(bert["params"])
    assert (bert["lr"], head["lr"]) == pytest.approx((1e-5, 5e-4))  # step 0 of 2 warm-up steps
    tokens, mask = piece_batch()
    for _ in range(5):
        model(tokens, mask)[0].sum().backward()
        optimizer.step()
        scheduler.step()
    assert (bert["lr"], head["lr"]) == pytest.approx((2e-5 * 3 / 6, 1e-3 * 3 / 6))
    stopping = EarlyStopping(2)
    state = TrialState(1, model.state_dict(), optimizer.state_dict(), stopping)
    state.scheduler = scheduler.state_dict()
    torch.save(state.to_checkpoint(), tmp_path / "state.pt")
    resumed_optimizer, resumed = make_training(distilbert(tiny_bert), "distilbert", settings, 40)
    resumed_optimizer.load_state_dict(load_state(tmp_path / "state.pt").optimizer)
    resumed.load_state_dict(load_state(tmp_path / "state.pt").scheduler)  # weights_only: plain data
    resumed_optimizer.step()
    resumed.step()
    optimizer.step()
    scheduler.step()
    assert resumed.get_last_lr() == scheduler.get_last_lr()


# --- word pieces --------------------------------------------------------------------------------------


def test_word_pieces_are_the_same_rows_as_the_words_read_by_the_models_tokenizer(sst_dir, tiny_bert):
    words = tokenize_dataset("sst2", sst_dir, max_examples=50)
    pieces = word_pieces(str(tiny_bert))(words)
    tokenizer = load_tokenizer(str(tiny_bert))
    assert pieces.vocab[:4] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] and pieces.special == {"cls": 2, "sep": 3}
    for split in ("train", "validation", "test"):
        expected = tokenizer(words.texts[split], add_special_tokens=False)["input_ids"]
        assert [row.tolist() for row in pieces.splits[split].tokens] == expected
        assert np.array_equal(pieces.splits[split].labels, words.splits[split][1])
    lengths = [(len(w), len(p)) for w, p in zip(words.splits["train"][0], pieces.splits["train"].tokens)]
    assert all(p >= w for w, p in lengths) and any(p > w for w, p in lengths)  # boring: bor ##ing
    assert 1 not in np.concatenate(pieces.splits["train"].tokens)  # every word is in the vocabulary


def test_rows_without_pieces_or_over_the_models_positions_are_dropped_and_counted(sst_dir):
    words = tokenize_dataset("sst2", sst_dir)
    short = {len(text.split()) for text in words.texts["train"]}
    cap = sorted(short)[len(short) // 2]

    def encode(texts: list[str]) -> list[list[int]]:
        return [[] if i == 0 else [5] * len(text.split()) for i, text in enumerate(texts)]

    prepared = index_word_pieces(words, encode, ["[PAD]"], {"cls": 2, "sep": 3}, cap)
    for split in ("train", "validation", "test"):
        lengths = [len(text.split()) for text in words.texts[split]]
        too_long = sum(length > cap for length in lengths[1:])
        assert prepared.dropped[f"{split}_empty"] == words.dropped[f"{split}_empty"] + 1
        assert prepared.dropped[f"{split}_too_long"] == words.dropped[f"{split}_too_long"] + too_long
        assert len(prepared.splits[split]) == len(lengths) - 1 - too_long


def test_a_sweep_with_both_kinds_of_encoder_prepares_words_and_word_pieces(sst_dir, tiny_bert):
    raw = load_preset("smoke").to_dict()
    raw["grid"]["encoder"] = ["transformer", "distilbert"]
    raw["train"]["pretrained"] = str(tiny_bert)
    datasets, corpus = prepare_data(parse_config(raw, "test"), sst_dir)
    assert set(datasets) == {"sst2", "sst2/word_pieces"}
    assert datasets["sst2"].vocab[:2] == ["<pad>", "<unk>"]
    assert datasets["sst2/word_pieces"].vocab[0] == "[PAD]"
    assert len(corpus) == len(datasets["sst2"].splits["train"])  # words, for word2vec
    raw["grid"]["encoder"] = ["distilbert"]
    assert set(prepare_data(parse_config(raw, "test"), sst_dir)[0]) == {"sst2/word_pieces"}


# --- loading: local folders, the Hub, one-line errors -------------------------------------------------


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_an_unreachable_hub_is_one_line_naming_the_model_and_the_local_folder_way(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    started = time.perf_counter()
    for load in (load_tokenizer, load_config, load_model):
        with pytest.raises(PretrainedError) as error:
            load("distilbert-base-uncased")
        assert one_line(error).startswith(
            "could not load 'distilbert-base-uncased' from the Hugging Face Hub: no answer ("
        )
        assert "set train.pretrained to a local folder holding its save_pretrained files" in str(error.value)
    assert time.perf_counter() - started < 30  # no retries


def test_offline_mode_without_a_cached_copy_is_one_line(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(PretrainedError) as error:
        load_tokenizer("ane-sweep-tests/no-such-model")
    message = one_line(error)
    assert message.startswith(
        "could not load the tokenizer from the Hugging Face Hub ('ane-sweep-tests/no-such-model'): "
    )
    assert message.endswith(
        "HF_HUB_OFFLINE is set and it is not in the Hugging Face cache; set train.pretrained to a local "
        "folder holding its save_pretrained files (config.json, model.safetensors and the tokenizer's files)"
    )


def test_a_folder_of_another_model_type_or_of_pickled_weights_is_refused(tiny_bert, tmp_path):
    from transformers import BertConfig

    BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2).save_pretrained(
        tmp_path / "bert"
    )
    with pytest.raises(PretrainedError) as error:
        load_model(str(tmp_path / "bert"))
    assert one_line(error) == (
        f"train.pretrained '{tmp_path / 'bert'}' is a 'bert' model; the distilbert encoder needs a model "
        "of type distilbert"
    )
    pickled = shutil.copytree(tiny_bert, tmp_path / "pickled")
    state = load_model(str(tiny_bert)).state_dict()
    (pickled / "model.safetensors").unlink()
    torch.save(state, pickled / "pytorch_model.bin")  # a pickle: could run code when loaded
    with pytest.raises(PretrainedError) as error:
        load_model(str(pickled))
    assert one_line(error).startswith(f"could not load the weights from folder {pickled}: ")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("/no/such/folder", "folder '/no/such/folder' does not exist"),
        ("./missing", "folder './missing' does not exist"),
        ("two words", "'two words' is neither a local folder nor a Hugging Face Hub model name"),
        ("a/b/c", "'a/b/c' is neither a local folder nor a Hugging Face Hub model name"),
        ("", "'' is not a Hugging Face Hub model name or a local folder"),
    ],
)
def test_bad_pretrained_settings_are_one_config_line(value, fragment):
    with pytest.raises(ConfigError, match=f"^train.pretrained: {fragment}"):
        parse_config({"name": "x", "train": {"pretrained": value}}, "t")


def test_pretrained_names_stay_and_local_folders_become_absolute(tiny_bert, monkeypatch):
    for name in ("distilbert-base-uncased", "distilbert/distilbert-base-uncased"):
        assert parse_pretrained(name) == name
    monkeypatch.chdir(tiny_bert.parent)
    config = parse_config({"name": "x", "train": {"pretrained": tiny_bert.name}}, "t")
    assert config.train.pretrained == str(tiny_bert)  # for --resume and Ray workers
    with pytest.raises(ConfigError, match="is a file; give the folder that save_pretrained wrote"):
        parse_config({"name": "x", "train": {"pretrained": f"{tiny_bert.name}/config.json"}}, "t")
