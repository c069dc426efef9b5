"""Sweep YAML validation: presets load, and every bad value gives one line naming it and what is allowed."""

from __future__ import annotations

import pytest

from sweep.config import ConfigError, load_config, load_preset, parse_config, preset_names, with_overrides


def test_presets_load_with_their_documented_grids():
    assert {"smoke", "sst", "paper"} <= set(preset_names())
    sst = load_preset("sst")
    assert sst.grid.size == 4 and sst.grid.dataset == ("sst2",) and sst.train.max_epochs == 40
    paper = load_preset("paper")
    assert paper.grid.size == 2 * 2 * 2 * 3 and paper.data.max_tokens == 100
    smoke = load_preset("smoke")
    assert smoke.grid.normalizer == ("softmax", "sparsemax") and smoke.train.max_epochs == 2


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
        (["name"], "expected a YAML mapping"),
    ],
)
def test_bad_values_name_the_value_and_the_allowed_ones(raw, fragment):
    with pytest.raises(ConfigError) as error:
        parse_config(raw, "test.yaml")
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


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
