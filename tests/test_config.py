"""Sweep YAML validation: presets load, and every bad value gives one line naming it and what is allowed."""

from __future__ import annotations

import pytest

from sweep.config import ConfigError, load_config, load_preset, parse_config, preset_names, with_overrides
from trainables.embeddings import Word2VecSettings

FASTTEXT = "https://dl.fbaipublicfiles.com/fasttext/vectors-english/wiki-news-300d-1M.vec.zip"


def test_presets_load_with_their_documented_grids():
    assert {"smoke", "sst", "paper"} <= set(preset_names())
    sst = load_preset("sst")
    assert sst.grid.size == 4 and sst.grid.dataset == ("sst2",) and sst.train.max_epochs == 40
    paper = load_preset("paper")
    assert paper.grid.size == 2 * 2 * 2 * 3 and paper.data.max_tokens == 100
    smoke = load_preset("smoke")
    assert smoke.grid.normalizer == ("softmax", "sparsemax") and smoke.train.max_epochs == 2


def test_the_paper_presets_start_from_fasttext_and_their_offline_twins_from_word2vec():
    for name in ("sst", "paper", "xai"):
        assert load_preset(name).embeddings.source == FASTTEXT
    for name in ("smoke", "smoke_wide"):
        assert load_preset(name).embeddings.source == "random"
    for name in ("sst", "paper"):
        online, offline = load_preset(name), load_preset(f"{name}_offline")
        assert offline.embeddings.source == "word2vec" and offline.embeddings.extra_corpus == ("imdb",)
        assert offline.embeddings.word2vec() == Word2VecSettings()
        for section in ("grid", "data", "train", "explain", "counterfactual", "resources"):
            assert getattr(offline, section) == getattr(online, section), section


def test_embeddings_settings_default_to_random_and_to_the_word2vec_defaults(tmp_path, monkeypatch):
    config = parse_config({"name": "x"}, "t")
    assert config.embeddings.source == "random" and config.embeddings.extra_corpus == ()
    assert config.embeddings.word2vec() == Word2VecSettings()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v.vec").write_text("good 1 2\n")
    config = parse_config({"name": "x", "embeddings": {"source": "v.vec", "window": 2}}, "t")
    assert config.embeddings.source == str(tmp_path / "v.vec")  # absolute: for --resume and Ray workers
    assert config.embeddings.word2vec() == Word2VecSettings(window=2)
    assert parse_config(config.to_dict(), "round trip") == config


def test_the_transformer_presets_have_their_documented_grids_and_settings():
    transformer = load_preset("transformer")
    assert transformer.grid.encoder == ("transformer",) and transformer.grid.size == 2 * 3
    assert transformer.grid.normalizer == ("softmax", "sparsemax", "entmax15")
    assert transformer.train == parse_config({"name": "x"}, "t").train  # full training, the defaults
    assert transformer.embeddings.source == "random"  # runs offline
    distilbert = load_preset("distilbert")
    assert distilbert.grid.encoder == ("distilbert",) and distilbert.grid.size == 2 * 3 * 3
    assert distilbert.train.pretrained == "distilbert-base-uncased" and distilbert.train.max_epochs == 3
    assert (distilbert.train.pretrained_lr, distilbert.train.warmup, distilbert.train.batch_size) == (
        1e-5,
        0.1,
        32,
    )
    assert distilbert.resources.gpus_per_trial == 0.5 and not distilbert.train.mixed_precision
    only_lstm = parse_config({"name": "x", "train": {"hidden_size": 30}}, "t")  # heads matter to transformers
    assert only_lstm.train.hidden_size == 30


def test_attributions_are_off_in_the_fast_presets_and_on_in_xai():
    for name in ("smoke", "sst", "paper"):
        assert load_preset(name).explain.attributions == ()
    xai = load_preset("xai")
    assert xai.explain.attributions == ("integrated_gradients", "deeplift", "lime")
    assert xai.grid.attention == ("tanh",) and xai.grid.normalizer == ("softmax", "sparsemax")
    assert xai.grid.seed == (1,) and xai.train.max_epochs == 40


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"name": "x", "colour": 1}, "unknown key 'colour'; allowed: name, description, grid"),
        (
            {"name": "x", "grid": {"dataset": ["sst3"]}},
            "grid.dataset: unknown value 'sst3'; allowed: sst2, imdb",
        ),
        ({"name": "x", "grid": {"encoder": ["gru"]}}, "grid.encoder: unknown value 'gru'; allowed: lstm"),
        (
            {"name": "x", "grid": {"attention": ["mlp"]}},
            "grid.attention: unknown value 'mlp'; allowed: tanh, dot",
        ),
        ({"name": "x", "grid": {"normalizer": ["max"]}}, "unknown value 'max'; allowed: softmax, sparsemax"),
        ({"name": "x", "grid": {"depth": [1]}}, "grid: unknown axis 'depth'"),
        ({"name": "x", "grid": {"seed": [1, "two"]}}, "grid.seed: 'two' is not an integer"),
        ({"name": "x", "grid": {"seed": [1.5]}}, "grid.seed: 1.5 is not an integer"),
        ({"name": "x", "grid": {"seed": []}}, "grid.seed: empty list"),
        ({"name": "x", "grid": {"seed": [1, 1]}}, "grid.seed: repeated value"),
        ({"name": "x", "train": {"max_epochs": 0}}, "train.max_epochs: 0 must be > 0"),
        ({"name": "x", "train": {"batch_size": -4}}, "train.batch_size: -4 must be > 0"),
        ({"name": "x", "train": {"lr": "fast"}}, "train.lr: 'fast' is a str; expected float"),
        ({"name": "x", "train": {"max_epochs": 2.5}}, "train.max_epochs: 2.5 is a float; expected int"),
        ({"name": "x", "train": {"epochs": 3}}, "train: unknown key 'epochs'; allowed: embed_dim"),
        (
            {"name": "x", "grid": {"encoder": ["lstm", "transformer"]}, "train": {"hidden_size": 30}},
            "train.hidden_size: 30 is not a multiple of train.transformer_heads (4), which the transformer "
            "encoder needs",
        ),
        (
            {"name": "x", "train": {"transformer_positions": "rotary"}},
            "train.transformer_positions: unknown value 'rotary'; allowed: sinusoidal, learned",
        ),
        (
            {"name": "x", "train": {"transformer_dropout": 1.5}},
            "train.transformer_dropout: 1.5 must be <= 1.0",
        ),
        ({"name": "x", "train": {"warmup": -0.1}}, "train.warmup: -0.1 must be >= 0"),
        (
            {"name": "x", "grid": {"encoder": ["distilbert"]}, "embeddings": {"source": "word2vec"}},
            "embeddings.source: 'word2vec' would be built for nothing: grid.encoder has only distilbert, "
            "which keeps its own embeddings; drop embeddings.source",
        ),
        (
            {"name": "x", "grid": {"dataset": ["sst2", "snli", "mnli"], "encoder": ["lstm", "distilbert"]}},
            "grid: encoder distilbert does not read the sentence pairs of dataset snli, mnli; pair datasets "
            "run with lstm, cnn, average, transformer",
        ),
        ({"name": "x", "train": {"pretrained_lr": 0}}, "train.pretrained_lr: 0.0 must be > 0"),
        ({"name": "x", "train": {"mixed_precision": 1}}, "train.mixed_precision: 1 is a int; expected bool"),
        ({"name": "x", "resources": {"max_concurrent": 0}}, "resources.max_concurrent: 0 must be > 0"),
        ({"name": "x", "resources": {"gpus_per_trial": -1}}, "resources.gpus_per_trial: -1.0 must be >= 0"),
        (
            {"name": "x", "counterfactual": {"enabled": "yes"}},
            "counterfactual.enabled: 'yes' is a str; expected bool",
        ),
        ({"name": "x", "data": "all"}, "data: expected a mapping"),
        (
            {"name": "x", "explain": {"attributions": ["lime", "shap"]}},
            "explain.attributions: unknown value 'shap'; allowed: integrated_gradients, deeplift, lime",
        ),
        ({"name": "x", "explain": {"attributions": [3]}}, "explain.attributions: 3 is a int; expected str"),
        ({"name": "x", "explain": {"attributions": None}}, "explain.attributions: null is not allowed"),
        (
            {"name": "x", "explain": {"attributions": ["lime", "lime"]}},
            "explain.attributions: repeated value",
        ),
        ({"name": "x", "explain": {"ig_steps": 0}}, "explain.ig_steps: 0 must be > 0"),
        (
            {"name": "x", "explain": {"lime_samples": 2.5}},
            "explain.lime_samples: 2.5 is a float; expected int",
        ),
        (
            {"name": "x", "explain": {"internal_batch_size": -1}},
            "explain.internal_batch_size: -1 must be > 0",
        ),
        ({"grid": {}}, "name None is not allowed; use letters, digits"),
        ({"name": ".."}, "name '..' is not allowed"),
        ({"name": "."}, "name '.' is not allowed"),
        ({"name": "a/b"}, "name 'a/b' is not allowed"),
        ({"name": ".hidden"}, "name '.hidden' is not allowed"),
        ({"name": "tab\tname"}, "name 'tab\\tname' is not allowed"),
        ({"name": "x", "grid": {"seed": [-1]}}, "grid.seed: -1 is not an integer in 0..4294967295"),
        ({"name": "x", "grid": {"seed": [2**32]}}, "grid.seed: 4294967296 is not an integer in 0.."),
        ({"name": "x", "data": {"split_seed": -1}}, "data.split_seed: -1 must be >= 0"),
        (
            {"name": "x", "embeddings": {"source": "glove"}},
            "embeddings.source: unknown embeddings source 'glove'; allowed: random, word2vec, a .vec or "
            ".vec.zip file, or an http(s):// URL of one",
        ),
        (
            {"name": "x", "embeddings": {"source": "/nowhere/wiki.vec"}},
            "embeddings.source: embeddings file '/nowhere/wiki.vec' does not exist",
        ),
        ({"name": "x", "embeddings": {"source": 300}}, "embeddings.source: 300 is a int; expected str"),
        ({"name": "x", "embeddings": {"window": 0}}, "embeddings.window: 0 must be > 0"),
        ({"name": "x", "embeddings": {"seed": 2**32}}, "embeddings.seed: 4294967296 must be <= 4294967295"),
        (
            {"name": "x", "embeddings": {"source": "word2vec", "extra_corpus": ["yelp"]}},
            "embeddings.extra_corpus: unknown value 'yelp'; allowed: sst2, imdb, ag_news, 20news_sports",
        ),
        (
            {"name": "x", "embeddings": {"extra_corpus": ["imdb"]}},
            "embeddings.extra_corpus: only a word2vec source trains on text; source is 'random'",
        ),
        ({"name": "x", "train": {"vectors": "wiki.vec"}}, "train: unknown key 'vectors'"),
        ({"name": "embeddings"}, "name 'embeddings' is reserved for the word vectors cache"),
        (["name"], "expected a YAML mapping"),
    ],
)
def test_bad_values_name_the_value_and_the_allowed_ones(raw, fragment):
    with pytest.raises(ConfigError) as error:
        parse_config(raw, "test.yaml")
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_pair_datasets_run_with_every_encoder_trained_from_scratch():
    encoders = ["lstm", "cnn", "average", "transformer"]
    config = parse_config({"name": "x", "grid": {"dataset": ["snli", "mnli"], "encoder": encoders}}, "t")
    assert config.grid.dataset == ("snli", "mnli") and config.grid.size == 2 * 4 * 2 * 2
    distilbert = parse_config({"name": "x", "grid": {"dataset": ["sst2"], "encoder": ["distilbert"]}}, "t")
    assert distilbert.grid.encoder == ("distilbert",)  # single-text datasets still run with it


def test_malformed_yaml_and_missing_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ngrid: [dataset: sst2\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: malformed YAML at line \d+"):
        load_config(broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="unknown preset 'nope'; allowed: .*smoke"):
        load_preset("nope")


def test_a_yaml_file_round_trips_into_settings(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ngrid:\n  normalizer: sparsemax\n  seed: [3, 4]\ntrain:\n  lr: 1\n")
    config = load_config(path)
    assert config.grid.normalizer == ("sparsemax",) and config.grid.seed == (3, 4)
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert config.grid.size == 2 * 2  # default attention axis: tanh, dot


def test_command_line_overrides_are_validated_too():
    config = with_overrides(load_preset("sst"), name="other", seeds=[1, 2, 3], max_epochs=5, max_concurrent=3)
    assert (config.name, config.grid.seed, config.train.max_epochs) == ("other", (1, 2, 3), 5)
    assert config.resources.max_concurrent == 3
    with pytest.raises(ConfigError, match="train.max_epochs: -1 must be > 0"):
        with_overrides(config, max_epochs=-1)
    with pytest.raises(ConfigError, match="resources.max_concurrent: 0 must be > 0"):
        with_overrides(config, max_concurrent=0)


def test_attributions_read_as_a_tuple_and_survive_overrides():
    config = parse_config({"name": "x", "explain": {"attributions": "deeplift"}}, "test.yaml")
    assert config.explain.attributions == ("deeplift",)
    config = parse_config(
        {"name": "x", "explain": {"attributions": ["lime", "deeplift"], "ig_steps": 8}}, "t"
    )
    assert config.explain.attributions == ("lime", "deeplift") and config.explain.ig_steps == 8
    again = with_overrides(config, max_epochs=3)
    assert again.explain == config.explain and again.train.max_epochs == 3
    assert parse_config(config.to_dict(), "round trip") == config
    assert parse_config({"name": "x", "explain": {"attributions": []}}, "t").explain.attributions == ()
