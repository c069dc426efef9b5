"""Helpers shared by the tests: generated data in the `../shared/datasets` layout, tiny models and batches."""

from __future__ import annotations

import csv
import os
import signal
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trainables.data import Split
from trainables.model import AttentionClassifier

LENGTHS = [5, 1, 3, 7, 2, 4]

POSITIVE = ["good", "great", "superb", "lovely", "fun", "moving", "brilliant", "charming"]
NEGATIVE = ["bad", "awful", "dull", "boring", "weak", "messy", "tedious", "bland"]
NEUTRAL = ["the", "film", "a", "story", "with", "and", "plot", "actors", "is", "of", "this", "movie"]


def sentiment_rows(n: int, seed: int, min_len: int = 4, max_len: int = 14) -> list[tuple[str, int]]:
    """`n` sentences whose label is given by their sentiment words: learnable by a tiny model."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 2
        cue = POSITIVE if label else NEGATIVE
        length = int(rng.integers(min_len, max_len + 1))
        words = list(rng.choice(NEUTRAL, size=length))
        for position in rng.choice(length, size=max(1, length // 4), replace=False):
            words[position] = str(rng.choice(cue))
        rows.append((" ".join(words), label))
    return rows


SST_SPLIT_SIZES = {"train": 240, "validation": 60, "test": 60}


def write_sst_splits(root: Path) -> Path:
    """A `--data-dir` at `root` with a small learnable `sst2/{train,validation,test}.csv`; returns root."""
    for seed, (split, n) in enumerate(SST_SPLIT_SIZES.items()):
        write_csv(root / "sst2" / f"{split}.csv", sentiment_rows(n, seed))
    return root


def write_csv(path: Path, rows: list[tuple], header: tuple[str, ...] = ("text", "label")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# Sentence pairs (NLI): the hypothesis names a topic; the premise holds that topic next to a cue word
# whose group gives the label (entailment, neutral, contradiction); every other word is filler.
NLI_CUES = (
    ["surely", "indeed", "clearly", "truly"],
    ["maybe", "perhaps", "possibly", "probably"],
    ["never", "not", "no", "hardly"],
)
NLI_TOPICS = ["dog", "cat", "man", "woman", "child", "car", "ball", "horse", "bike", "boat"]
NLI_FILLER = ["the", "a", "is", "in", "on", "with", "park", "street", "near", "and", "outside", "some"]


def nli_rows(
    n: int, seed: int, min_len: int = 4, max_len: int = 14, distractor: bool = False
) -> list[tuple[str, str, int]]:
    """`n` (premise, hypothesis, label) rows, labels 0, 1, 2 in turn: the hypothesis (2-6 words) names a
    topic, and the premise (`min_len`-`max_len` words) holds that topic followed by a cue word of the
    label's group in `NLI_CUES`; learnable by a tiny model from the premise tokens the hypothesis points to.
    With `distractor`, the premise also holds another topic next to a cue of another group, so the label
    can only be read through the hypothesis."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 3
        length = int(rng.integers(max(min_len, 4), max_len + 1))
        premise = [str(word) for word in rng.choice(NLI_FILLER, size=length)]
        topic, other = (str(word) for word in rng.choice(NLI_TOPICS, size=2, replace=False))
        at = int(rng.integers(0, length - 1))
        premise[at : at + 2] = [topic, str(rng.choice(NLI_CUES[label]))]
        if distractor:
            spots = [p for p in range(length - 1) if p + 1 < at or p > at + 1]
            if spots:
                near = int(rng.choice(spots))
                wrong = NLI_CUES[(label + int(rng.integers(1, 3))) % 3]
                premise[near : near + 2] = [other, str(rng.choice(wrong))]
        hypothesis = [str(word) for word in rng.choice(NLI_FILLER, size=int(rng.integers(2, 7)))]
        hypothesis[int(rng.integers(len(hypothesis)))] = topic
        rows.append((" ".join(premise), " ".join(hypothesis), label))
    return rows


NLI_COLUMNS = ("premise", "hypothesis", "label")
# the split files of each pair dataset (named after the source's splits) and their labeled rows
NLI_SPLIT_SIZES = {
    "snli": {"train": 240, "validation": 60, "test": 60},
    "mnli": {"train": 600, "validation_matched": 60},  # 2.5% of train (15) is validation
}
SNLI_UNLABELED = 3  # rows with label -1 (no gold label) in each snli split file, besides the labeled ones


def write_nli_splits(root: Path, name: str = "snli", sizes: dict[str, int] | None = None) -> Path:
    """A `--data-dir` at `root` with learnable `<name>/<split>.csv` pair files (`NLI_SPLIT_SIZES` unless
    `sizes`: split file -> labeled rows; snli files also hold `SNLI_UNLABELED` rows of label -1 first, to
    be dropped); returns root."""
    for seed, (split, n) in enumerate((sizes or NLI_SPLIT_SIZES[name]).items()):
        rows: list[tuple] = nli_rows(n, seed)
        if name == "snli":
            unlabeled = [(premise, hypothesis, -1) for premise, hypothesis, _ in nli_rows(SNLI_UNLABELED, 99)]
            rows = unlabeled + rows
        write_csv(root / name / f"{split}.csv", rows, NLI_COLUMNS)
    return root


# The tiny DistilBERT's word pieces: special tokens first ([PAD] = 0), the test sentences' words, and two
# words only as pieces, so that some sentences have more pieces than words.
WORD_PIECES = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    *sorted(set(POSITIVE + NEGATIVE + NEUTRAL) - {"boring", "brilliant"}),
    "bor",
    "##ing",
    "brill",
    "##iant",
]


def write_tiny_distilbert(folder: Path, max_positions: int = 64) -> Path:
    """A random DistilBERT (2 layers, 32 wide, 2 heads) and a word-piece tokenizer of `WORD_PIECES`, as
    `save_pretrained` writes them into `folder`: a `train.pretrained` folder that needs no download."""
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()
    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=len(WORD_PIECES),
        dim=32,
        n_layers=2,
        n_heads=2,
        hidden_dim=64,
        max_position_embeddings=max_positions,
    )
    DistilBertModel(config).save_pretrained(folder)
    DistilBertTokenizer(vocab={piece: i for i, piece in enumerate(WORD_PIECES)}).save_pretrained(folder)
    return folder


def learnable_split(n: int, seed: int) -> Split:
    """Label 1 iff token 2 occurs: one epoch is enough to move the AUC well above chance."""
    rng = np.random.default_rng(seed)
    tokens = [rng.integers(3, 30, size=rng.integers(3, 9)) for _ in range(n)]
    labels = np.arange(n) % 2
    for seq, label in zip(tokens, labels, strict=True):
        if label:
            seq[rng.integers(len(seq))] = 2
    return Split(tokens, labels)


def make_model(attention: str, normalizer: str, encoder: str = "lstm") -> AttentionClassifier:
    """Tiny float64 classifier with a decoder scaled up so probabilities spread away from 0.5."""
    torch.manual_seed(0)
    model = AttentionClassifier(
        vocab_size=50, embed_dim=8, hidden_size=4, encoder=encoder, attention=attention, normalizer=normalizer
    ).double()
    with torch.no_grad():
        model.decoder.weight.mul_(20)
    return model


def make_batch(
    lengths: list[int], width: int | None = None, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids 1..49, left-aligned, zero-padded to `width` (default: the longest row)."""
    generator = torch.Generator().manual_seed(seed)
    width = width or max(lengths)
    mask = torch.arange(width) < torch.tensor(lengths).unsqueeze(1)
    tokens = torch.randint(1, 50, (len(lengths), width), generator=generator) * mask
    return tokens, mask


# Batches that every per-token importance function must refuse: (tokens, mask, error fragment).
BAD_BATCHES = [
    (torch.ones(2, 3, dtype=torch.long), torch.ones(2, 4, dtype=torch.bool), "differs from tokens shape"),
    (torch.ones(3, dtype=torch.long), torch.ones(3, dtype=torch.bool), r"tokens must be \[B, T\]"),
    (torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long), "mask must be bool"),
    (torch.ones(0, 3, dtype=torch.long), torch.ones(0, 3, dtype=torch.bool), "non-empty"),
    (torch.ones(1, 3, dtype=torch.long), torch.tensor([[True, False, True]]), "left-aligned"),
]


# Trial hooks (trainables.trial.TrialHooks) that make trials fail on purpose. They live in a module the
# trial workers can import, since Ray pickles them by reference.
def fail_once_after_epoch_0(config: dict, epoch: int, resumed: bool) -> None:
    if epoch == 0 and not resumed:
        raise RuntimeError("trial failed on purpose after epoch 0")


def kill_sparsemax_worker(config: dict) -> None:
    """Kill the sparsemax trial's worker process outright, as Ray's memory monitor or the kernel would."""
    if config["normalizer"] == "sparsemax":
        os.kill(os.getpid(), signal.SIGKILL)


# The explanation page of a trial (trainables/examples.py), read back as its sections and rows.
class PageParser(HTMLParser):
    """Per instance section: its index and, per measure row, the `data-value` of every token span."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict] = []
        self.tags: set[str] = set()
        self.links: list[str] = []
        self.row: list[float] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.add(tag)
        self.links += [value for name, value in attrs if name in ("src", "href") and value]
        if tag == "section":
            self.sections.append({"index": int(attributes["data-index"]), "rows": {}})
        elif tag == "tr":
            self.row = self.sections[-1]["rows"].setdefault(attributes["data-measure"], [])
        elif tag == "span" and "data-value" in attributes:
            self.row.append(float(attributes["data-value"]))


def parse_page(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    return parser


def check_page(page: str, tokens: pd.DataFrame, columns: dict[str, str]) -> list[dict]:
    """Assert that every section has one row per measure of `columns` (row key -> `tokens` column), whose
    values are the instance's scores there; return the sections."""
    parser = parse_page(page)
    tokens = tokens.set_index("index")
    assert parser.sections and "script" not in parser.tags and not parser.links  # no code, no network asset
    for section in parser.sections:
        assert list(section["rows"]) == list(columns)
        for key, column in columns.items():
            np.testing.assert_array_equal(section["rows"][key], tokens.loc[section["index"], column])
    return parser.sections
