"""The explanation page and figure of a trial: which instances are chosen, the page's structure and escaping,
the page as a real browser renders it (Debian's chromium, headless), and the figure as an image."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.image import imread

from analysis.examples import write_example_figures
from tests.helpers import check_page, make_model, parse_page
from trainables import registry
from trainables.data import Split
from trainables.examples import (
    ADVERSARIAL,
    ROW_COLOURS,
    Choice,
    Example,
    build_examples,
    choose_examples,
    to_html,
    write_examples,
)
from trainables.explain import Explanation, explain
from trainables.settings import CLASS_NAMES, CounterfactualSettings, ExplainSettings

SENTIMENT = CLASS_NAMES["sst2"]
WORDS = ["<pad>", "<unk>", "a&b", '"quoted"', "<script>alert(1)</script>", *(f"w{i}" for i in range(5, 50))]


@functools.cache
def tiny_explanation() -> Explanation:
    """A trial's explanation of 12 generated sentences by a tiny random model, with words as a trial adds
    them (some of which need escaping)."""
    rng = np.random.default_rng(0)
    sentences = [rng.integers(1, 50, size=n) for n in [3, 8, 12, 6, 9, 15, 5, 7, 10, 4, 11, 6]]
    sentences[1][:3] = [2, 3, 4]
    split = Split(tokens=sentences, labels=np.array([0, 1] * 6))
    explanation = explain(
        make_model("tanh", "softmax").float(),
        split,
        ExplainSettings(),
        CounterfactualSettings(steps=5, permutations=3),
        torch.device("cpu"),
        seed=1,
    )
    explanation.tokens["words"] = [[WORDS[i] for i in ids] for ids in explanation.tokens["token_ids"]]
    return explanation


def test_the_chosen_instances_are_reproducible_distinct_and_explained() -> None:
    instances = tiny_explanation().instances
    choices = choose_examples(instances, SENTIMENT)
    assert choices == choose_examples(
        instances.sample(frac=1, random_state=3), SENTIMENT
    )  # order does not matter
    assert len({choice.index for choice in choices}) == len(choices) == 5
    lengths = instances.set_index("index")["length"]
    assert all(5 <= lengths[choice.index] <= 60 for choice in choices)  # not the 3- or 4-token sentence
    extremes = pd.DataFrame(
        {"index": [100, 101], "length": [61, 4], "label": [0, 1], "kendall_attn_grad": [1.0, -1.0]}
    )
    assert (
        choose_examples(pd.concat([instances, extremes]), SENTIMENT)[:2] == choices[:2]
    )  # too long, too short
    assert [c.index for c in choose_examples(extremes, SENTIMENT)] == [
        100
    ]  # too long beats too short, if nothing else
    eligible = instances[instances["length"].between(5, 60)]
    agree = eligible.sort_values(["kendall_attn_grad", "index"], ascending=[False, True]).iloc[0]
    assert choices[0] == Choice(
        int(agree["index"]), f"attention agrees most with gradient (τ = {agree.kendall_attn_grad:.2f})"
    )
    assert choices[1].reason.startswith("attention agrees least with gradient (τ = ")
    pooled = choose_examples(instances, SENTIMENT, trials=3)
    assert [c.index for c in pooled] == [c.index for c in choices]
    assert pooled[0].reason.startswith("attention agrees most with gradient (mean of 3 trials: τ = ")
    assert choices[2].reason.startswith("most different adversarial attention (JSD = ")
    labels = instances.set_index("index")["label"]
    assert [labels[choice.index] for choice in choices[3:]] == [0, 1]
    assert choices[3].reason == "an instance of class negative (0) (τ nearest its class's median)"
    without = instances.drop(columns=["kendall_attn_grad", "adv_max_jsd"])
    first = [int(eligible.loc[eligible["label"] == label, "index"].min()) for label in (0, 1)]
    assert choose_examples(without, SENTIMENT) == [
        Choice(first[0], "an instance of class negative (0) (the first of its class)"),
        Choice(first[1], "an instance of class positive (1) (the first of its class)"),
    ]


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[list[Example], Path, Path]:
    """The chosen examples of the tiny explanation, and their page and figure as a trial writes them."""
    explanation = tiny_explanation()
    examples = build_examples(
        choose_examples(explanation.instances, SENTIMENT),
        explanation.instances,
        explanation.tokens,
        class_names=SENTIMENT,
    )
    page, image = write_examples(examples, "tiny", tmp_path_factory.mktemp("examples"))
    return examples, page, image


def test_the_page_has_a_row_per_measure_per_instance_with_the_token_scores(written) -> None:
    examples, page, _ = written
    explanation = tiny_explanation()
    columns = {name: name for name in ("attention", "gradient", "loo", ADVERSARIAL[0])}
    sections = check_page(page.read_text(), explanation.tokens, columns)
    assert [section["index"] for section in sections] == [example.choice.index for example in examples]
    comprehensiveness = explanation.instances.set_index("index")["comprehensiveness_attn"]
    assert f"comprehensiveness {comprehensiveness[sections[0]['index']]:.3f}" in page.read_text()


def test_every_text_on_the_page_is_escaped() -> None:
    explanation = tiny_explanation()
    choice = Choice(1, "why <b>bold</b>?")  # instance 1 holds the words "a&b", '"quoted"' and a script tag
    page = to_html(
        build_examples([choice], explanation.instances, explanation.tokens, class_names=SENTIMENT),
        "sst2 <tiny> & co",
    )
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&amp;b" in page and "&quot;quoted&quot;" in page and "sst2 &lt;tiny&gt; &amp; co" in page
    assert "why &lt;b&gt;bold&lt;/b&gt;?" in page and "<b>" not in page
    assert parse_page(page).sections[0]["index"] == 1


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    chromium() is None,
    reason="no chromium binary on PATH (Debian: apt-get install chromium) to render the page",
)
def test_a_headless_browser_shows_every_row_of_the_page(written, tmp_path: Path) -> None:
    """The page rendered by chromium: every row's coloured stripe appears once per instance, and the page
    ends inside the window."""
    examples, page, _ = written
    screenshot = tmp_path / "screenshot.png"
    command = [chromium(), "--headless", "--hide-scrollbars", "--disable-gpu", "--window-size=1280,4000"]
    if os.geteuid() == 0:
        command.append("--no-sandbox")  # chromium refuses to start as root with its sandbox on
    command += [f"--screenshot={screenshot}", page.as_uri()]
    subprocess.run(command, capture_output=True, timeout=120, check=True)
    pixels = (imread(screenshot)[:, :, :3] * 255).round().astype(int)
    for key in ("attention", "gradient", "loo", ADVERSARIAL[0]):
        colour = np.array([int(ROW_COLOURS[key][i : i + 2], 16) for i in (1, 3, 5)])
        rows = np.flatnonzero((pixels == colour).all(-1).any(1))
        stripes = 1 + int((np.diff(rows) > 1).sum()) if len(rows) else 0
        assert stripes == len(examples), key
    last = np.flatnonzero((pixels < 200).any(-1).any(1)).max()
    assert last < pixels.shape[0] - 50  # the page ends inside the screenshot: nothing cut off


def test_the_figure_is_a_real_image(written) -> None:
    *_, image = written
    pixels = imread(image)
    assert pixels.ndim == 3 and pixels.shape[1] == 15 * 150 and pixels.shape[0] > 1500 and pixels.std() > 0.05
    colours = np.unique((pixels[::3, ::3, :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50


def test_examples_without_words_or_adversary_fall_back_to_token_ids() -> None:
    explanation = tiny_explanation()
    tokens = explanation.tokens.drop(columns=["words", ADVERSARIAL[0]])
    instances = explanation.instances
    choices = [Choice(int(instances["index"][1]), "picked"), Choice(999, "not in this trial")]
    (example,) = build_examples(choices, instances, tokens, class_names=SENTIMENT)
    assert example.words[:3] == ["#2", "#3", "#4"]
    assert [row.key for row in example.rows] == ["attention", "gradient", "loo"]
    assert set(example.taus) == {pair.label for pair in registry.pairs()}


def test_the_analysis_says_why_it_draws_no_examples(tmp_path: Path) -> None:
    """Trials that predate the words in `tokens.parquet`, or left no results, get a note, not a figure."""
    explanation = tiny_explanation()
    axes = {"run_id": "r", "dataset": "sst2", "encoder": "lstm", "attention": "tanh", "normalizer": "softmax"}
    instances = explanation.instances.assign(**axes, seed=1)
    tokens = explanation.tokens.drop(columns=["words"]).assign(**axes, seed=1)
    settings = pd.DataFrame([{k: v for k, v in axes.items() if k != "run_id"}])
    paths, lines = write_example_figures(instances, tokens, settings, tmp_path)
    assert paths == [] and lines[0].startswith("Not drawn: the trials' `tokens.parquet` hold no words")
    paths, lines = write_example_figures(instances.iloc[:0], tokens, settings, tmp_path)
    assert paths == [] and lines[0].startswith("Not drawn: no finished trial left")
    assert not any(tmp_path.iterdir())
