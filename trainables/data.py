"""Datasets: load (Hugging Face Hub or local CSVs), clean, tokenize, split, index, and batch by length.

Preparation runs once in the sweep driver, so bad data fails before any trial starts and every trial of a
sweep sees exactly the same splits and vocabulary. Token id 0 is padding, 1 is unknown. `prepare` is
`tokenize_dataset` (word tokens per split) then `index_dataset` (vocabulary and token ids); the driver
keeps the word tokens of the training split for the word2vec corpus, with `unlabeled_train_texts`.
A pretrained encoder reads the same rows as its own tokenizer's word pieces instead (`index_word_pieces`).
Natural language inference datasets (SNLI, MultiNLI) are sentence pairs: a split's `tokens` are the
premises and its `hypotheses` the hypotheses, indexed with one vocabulary built from both.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from trainables.settings import DataError

PAD, UNK = 0, 1
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives and how the papers preprocess it."""

    hub_id: str
    hub_splits: tuple[
        str, ...
    ]  # splits present at the source; a missing validation split is carved from train
    min_freq: int  # vocabulary: keep words seen at least this often in train
    # keep documents of at most this many tokens (pairs: premise and hypothesis each): LOO builds an L x L
    # batch per document, so one huge document would exhaust a trial worker's memory; `data.max_tokens`
    # overrides it
    max_tokens: int
    test_fraction: float = 1.0  # seeded sample of the (filtered) test split
    validation_fraction: float = 0.0  # seeded share of train held out as validation when the source has none
    label_map: dict[int, int | None] | None = (
        None  # source label -> 0..num_classes-1, None drops the class; None: the labels as they are
    )
    num_classes: int = 2  # labels 0..num_classes-1, named by settings.CLASS_NAMES
    pair: bool = False  # premise/hypothesis pairs (NLI): columns premise,hypothesis,label, not text,label
    # source split -> the split it is used as, where the names differ (MultiNLI's validation_matched: test)
    split_names: dict[str, str] | None = None
    no_gold_label: int | None = None  # source label of rows without a gold label: dropped, counted

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns of a split file (and of the Hub copy)."""
        return ("premise", "hypothesis", "label") if self.pair else ("text", "label")


DATASET_SPECS: dict[str, DatasetSpec] = {
    # Jain & Wallace's SST-2 split: 6,920 / 872 / 1,821 sentences, already lower-cased and de-punctuated.
    # Our cap: 100 tokens, about twice the longest sentence (52 tokens), so it drops none of the real data.
    "sst2": DatasetSpec("SetFit/sst2", SPLITS, min_freq=1, max_tokens=100),
    # Jain & Wallace: reviews shorter than 400 tokens, 80/20 train/dev split, 20% sample of the test set.
    "imdb": DatasetSpec(
        "stanfordnlp/imdb",
        ("train", "test"),
        min_freq=10,
        max_tokens=399,
        test_fraction=0.2,
        validation_fraction=0.2,
    ),
    # Jain & Wallace's binary AG News: World (0) vs Business (2 -> 1); Sports and Sci/Tech dropped.
    # Our choices: 20% of train held out as validation, vocabulary of words seen 5+ times, at most 400 tokens
    # (news titles with a one- or two-sentence description: far shorter, so no real article is dropped).
    "ag_news": DatasetSpec(
        "fancyzhx/ag_news",
        ("train", "test"),
        min_freq=5,
        max_tokens=400,
        validation_fraction=0.2,
        label_map={0: 0, 1: None, 2: 1, 3: None},
    ),
    # Jain & Wallace's 20 Newsgroups sports task: rec.sport.baseball (9 -> 0) vs rec.sport.hockey (10 -> 1),
    # the other 18 groups dropped; labels as scikit-learn's fetch_20newsgroups and the Hub copy number them.
    # Our choices: 20% of train held out as validation, vocabulary of words seen 2+ times, at most 1,000
    # tokens (most posts are a few hundred; the cap bounds LOO at 1,000 x 1,000 token ids per document and
    # drops only the longest posts, such as quoted threads and FAQs; not measured here, see the README).
    "20news_sports": DatasetSpec(
        "SetFit/20_newsgroups",
        ("train", "test"),
        min_freq=2,
        max_tokens=1000,
        validation_fraction=0.2,
        label_map={label: {9: 0, 10: 1}.get(label) for label in range(20)},
    ),
    # Stanford NLI: 550,152 / 10,000 / 10,000 pairs; label -1 marks the pairs whose annotators did not agree
    # on a gold label (785 / 158 / 176), which Jain & Wallace drop too. Vocabulary of words seen 3+ times in
    # train, as J&W (their SNLI preprocessing: min_df 3, over premises and hypotheses). Cap: 100 tokens per
    # premise and per hypothesis, above the longest premise (82 words as commonly reported; not measured
    # here, the data is not in ../shared), so it drops none of the real data.
    "snli": DatasetSpec(
        "stanfordnlp/snli",
        SPLITS,
        min_freq=3,
        max_tokens=100,
        num_classes=3,
        pair=True,
        no_gold_label=-1,
    ),
    # MultiNLI's test labels are not public: validation_matched (9,815 pairs, the genres of train) is the
    # test split, and a seeded 2.5% of train (about 9,800 of 392,702 pairs, as many as validation_matched)
    # is held out as validation with the split seed; validation_mismatched is not used. Our choices: words
    # seen 3+ times, as SNLI; at most 200 tokens per premise and hypothesis (premises are longer than
    # SNLI's, a few sentences of speech or prose; not measured here, the cap drops at most the longest).
    "mnli": DatasetSpec(
        "nyu-mll/multi_nli",
        ("train", "validation_matched"),
        min_freq=3,
        max_tokens=200,
        validation_fraction=0.025,
        num_classes=3,
        pair=True,
        split_names={"validation_matched": "test"},
    ),
}
DROPPED = -1  # label of an instance whose class the dataset's label_map drops
UNLABELED = -2  # label of an instance without a gold label (SNLI's -1), dropped as `{split}_unlabeled`


@dataclass
class Split:
    """One split as token-id arrays (ragged) and class labels; for a pair dataset (NLI) `tokens` are the
    premises and `hypotheses` the hypotheses' token ids, in the same vocabulary (None: single texts)."""

    tokens: list[np.ndarray]
    labels: np.ndarray
    hypotheses: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.hypotheses is not None and len(self.hypotheses) != len(self.tokens):
            raise ValueError(f"{len(self.hypotheses)} hypotheses for {len(self.tokens)} premises")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_pair(self) -> bool:
        """Whether each instance is a premise and a hypothesis."""
        return self.hypotheses is not None

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per instance (the premise's, for pairs)."""
        return np.array([len(t) for t in self.tokens])

    def batch(self, indices: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
        """Instances `indices` padded to token ids [B, T] and mask [B, T] (see `pad`), on `device`; for a
        pair dataset followed by the hypotheses' token ids [B, H] and mask [B, H], so that
        `model(*split.batch(...))` reads either kind."""
        tokens, mask = pad([self.tokens[i] for i in indices])
        if self.hypotheses is None:
            return tokens.to(device), mask.to(device)
        hypotheses, hypothesis_mask = pad([self.hypotheses[i] for i in indices])
        return tokens.to(device), mask.to(device), hypotheses.to(device), hypothesis_mask.to(device)


@dataclass
class TokenizedDataset:
    """A dataset's splits as word tokens and labels, the counts of what preprocessing dropped, and the
    source text of every row (HTML line breaks as spaces, case kept) for tokenizers of pretrained models.
    For a pair dataset `splits` and `texts` hold the premises, `hypotheses` and `hypothesis_texts` the
    hypotheses (both empty for single-text datasets)."""

    name: str
    splits: dict[str, tuple[list[list[str]], np.ndarray]]
    dropped: dict[str, int] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)
    hypotheses: dict[str, list[list[str]]] = field(default_factory=dict)
    hypothesis_texts: dict[str, list[str]] = field(default_factory=dict)

    @property
    def is_pair(self) -> bool:
        """Whether each instance is a premise and a hypothesis."""
        return bool(self.hypotheses)


@dataclass
class Rows:
    """A split's rows while splitting: word tokens, labels and texts, and for pairs the hypotheses'."""

    tokens: list[list[str]]
    labels: np.ndarray
    texts: list[str]
    hypotheses: list[list[str]] | None = None
    hypothesis_texts: list[str] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, chosen: np.ndarray) -> Rows:
        """The rows at positions `chosen`, in that order."""

        def pick(items: list | None) -> list | None:
            return None if items is None else [items[i] for i in chosen]

        return Rows(
            pick(self.tokens),
            self.labels[chosen],
            pick(self.texts),
            pick(self.hypotheses),
            pick(self.hypothesis_texts),
        )


@dataclass
class PreparedDataset:
    """Vocabulary, indexed splits, the number of classes and the counts of what preprocessing dropped; for
    word pieces also the ids of the special tokens the pretrained encoder adds around each row (`special`:
    cls, sep)."""

    name: str
    vocab: list[str]
    splits: dict[str, Split]
    dropped: dict[str, int] = field(default_factory=dict)
    special: dict[str, int] = field(default_factory=dict)
    num_classes: int = 2


_BREAK_TAG = re.compile(r"<br\s*/?>", re.IGNORECASE)
_tokenizer = None


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased word tokens from spaCy's blank English tokenizer, punctuation and spaces dropped."""
    global _tokenizer
    if _tokenizer is None:
        import spacy

        _tokenizer = spacy.blank("en").tokenizer
    cleaned = (_BREAK_TAG.sub(" ", text).lower() for text in texts)
    return [
        [tok.text for tok in doc if not (tok.is_punct or tok.is_space)] for doc in _tokenizer.pipe(cleaned)
    ]


class RawSplit(NamedTuple):
    """A source split as loaded: texts (premises, for pairs), mapped labels and, for pairs, hypotheses."""

    texts: list[str]
    labels: np.ndarray
    hypotheses: list[str] | None = None


def load_raw(name: str, data_dir: str | Path | None) -> dict[str, RawSplit]:
    """Texts and labels 0..C-1 (DROPPED for unused classes, UNLABELED for rows without a gold label) per
    source split, from CSVs or the Hub, keyed by the split each is used as (`DatasetSpec.split_names`).

    Local files are `<data_dir>/<name>/<split>.csv`, named after the source's splits, with the source's own
    labels (e.g. AG News 0-3) and columns `DatasetSpec.columns` (text,label or premise,hypothesis,label).
    """
    if name not in DATASET_SPECS:
        raise DataError(f"unknown dataset {name!r}; allowed: {', '.join(DATASET_SPECS)}")
    spec = DATASET_SPECS[name]
    import datasets

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    if data_dir is not None:
        loaded, source = _load_local(name, spec, Path(data_dir)), str(Path(data_dir) / name)
    else:
        loaded, source = _load_hub(name, spec), spec.hub_id
    raw = {}
    for split in spec.hub_splits:
        if split not in loaded:
            raise DataError(f"{source} has no {split!r} split; found: {', '.join(loaded)}")
        table = loaded[split]
        missing = set(spec.columns) - set(table.column_names)
        if missing:
            raise DataError(
                f"{source} split {split!r} lacks column(s) {', '.join(sorted(missing))}; "
                f"found: {', '.join(table.column_names)}; required: {','.join(spec.columns)}"
            )
        labels = np.asarray(table["label"])
        mapping = spec.label_map or {label: label for label in range(spec.num_classes)}
        unlabeled = {spec.no_gold_label} - {None}
        bad = sorted(set(labels.tolist()) - set(mapping) - unlabeled)
        if bad:
            allowed = ", ".join(str(label) for label in mapping)
            if unlabeled:
                allowed += f", {spec.no_gold_label} (no gold label: dropped)"
            raise DataError(f"{source} split {split!r} has label(s) {bad[:5]}; allowed labels: {allowed}")
        mapped = np.array(
            [
                UNLABELED if label in unlabeled else DROPPED if mapping[label] is None else mapping[label]
                for label in labels.tolist()
            ]
        )
        texts = _strings(table[spec.columns[0]])
        hypotheses = _strings(table["hypothesis"]) if spec.pair else None
        used_as = (spec.split_names or {}).get(split, split)
        raw[used_as] = RawSplit(texts, mapped.astype(np.int64), hypotheses)
    return raw


def _strings(column: list) -> list[str]:
    """A text column with missing values (empty CSV fields, None on the Hub) as empty strings."""
    return [text if isinstance(text, str) else "" for text in column]


def _load_local(name: str, spec: DatasetSpec, data_dir: Path) -> dict:
    """The split files `<data_dir>/<name>/<split>.csv` as `datasets.Dataset`s, every file checked first."""
    if not data_dir.is_dir():
        raise DataError(f"--data-dir {str(data_dir)!r} is not a directory")
    files = {split: data_dir / name / f"{split}.csv" for split in spec.hub_splits}
    for split, path in files.items():
        if not path.is_file():
            columns = ",".join(spec.columns)
            raise DataError(f"missing split file {str(path)!r}; expected {split}.csv with columns {columns}")
    for path in files.values():  # all of them before any is loaded: a rejected dataset caches nothing
        check_csv(path, spec.columns)
    return {split: _read_csv(path) for split, path in files.items()}


HUB_PROBE_TIMEOUT_S = 5.0


def _load_hub(name: str, spec: DatasetSpec):
    """The dataset's Hub copy (`datasets.load_dataset`), once one quick request shows the Hub answers.

    Without the probe an unreachable Hub costs about 30 s of retries, each logged. It is skipped in
    offline mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE: the datasets cache is used) and when `hub_id` is a
    local path, which `load_dataset` reads without the Hub.
    """
    import datasets

    failed = f"could not load {name!r} from the Hugging Face Hub ({spec.hub_id})"
    local = f"pass --data-dir DIR with {name}/{{{','.join(spec.hub_splits)}}}.csv files instead"
    if not (datasets.config.HF_HUB_OFFLINE or Path(spec.hub_id).exists()):
        try:
            _probe_hub(spec.hub_id)
        except Exception as error:  # httpx transport errors: no DNS, refused, timed out, proxy failure
            raise DataError(
                f"{failed}: no answer ({type(error).__name__}); {local}, "
                "or set HF_DATASETS_OFFLINE=1 to use the datasets cache"
            ) from None
    try:
        return datasets.load_dataset(spec.hub_id)
    except Exception as error:  # the Hub client raises many types; all mean "not available here"
        raise DataError(f"{failed}: {type(error).__name__}; {local}") from error


def _probe_hub(hub_id: str) -> None:
    """One request for the dataset's Hub page, no retries: raises if the Hub does not answer within
    `HUB_PROBE_TIMEOUT_S` (any HTTP status, 404 included, is an answer). Uses the Hub client's own session
    and endpoint, so HF_ENDPOINT and proxy settings apply as they do to `load_dataset`."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    get_session().head(f"{constants.ENDPOINT}/api/datasets/{hub_id}", timeout=HUB_PROBE_TIMEOUT_S)


def _read_csv(path: Path):
    """One split file, checked by `check_csv`, as a `datasets.Dataset` (read alone, so each file's errors
    name it)."""
    import datasets

    try:
        return datasets.load_dataset("csv", data_files=str(path), split="train")
    except Exception as error:  # pandas and pyarrow parse errors
        raise DataError(
            f"cannot read {str(path)!r} as CSV: {str(error).strip().splitlines()[0][:200]}"
        ) from None


_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


def check_csv(path: Path, columns: tuple[str, ...] = ("text", "label")) -> None:
    """Refuse, in one line naming the file and line, a split file that is not UTF-8 CSV with a header naming
    `columns` (text,label; premise,hypothesis,label for pairs), as many fields in every row as in the
    header, integer labels and at least one row.

    `datasets.load_dataset` reports these vaguely, logs extra lines and leaves Arrow files in its cache,
    so they are checked first, with Python's csv reader (which splits rows and fields as pandas does).
    """
    where = f"cannot read {str(path)!r}"
    text = _utf8_text(path, where)
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))  # a whole document can be one field
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] = []
    label = rows = end = 0  # the label's column, the data rows so far, the last line of the previous row
    try:
        for row in reader:
            line, end = end + 1, reader.line_num
            if not row:  # a blank line, which pandas skips too
                continue
            if not header:
                header, label = row, _label_column(row, where, columns)
            elif len(row) != len(header):
                fields = f"{len(row)} field{'s' * (len(row) != 1)}"
                raise DataError(f"{where}: line {line} has {fields}, the header has {len(header)}")
            elif not _INTEGER.fullmatch(row[label]):
                raise DataError(f"{where}: line {line} has label {row[label]!r}; labels must be integers")
            else:
                rows += 1
    except csv.Error as error:
        raise DataError(f"{where}: line {reader.line_num}: {error}") from None
    if not header:
        raise DataError(f"{where}: the file is empty; expected a {','.join(columns)} header and data rows")
    if rows == 0:
        raise DataError(f"{where}: no data rows under the header")


def _utf8_text(path: Path, where: str) -> str:
    """The file's text (a UTF-8 byte order mark skipped, as pandas does), or a DataError naming the line
    of the first byte that is not UTF-8."""
    raw = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"{where}: line {line} has a byte that is not UTF-8 (0x{raw[error.start]:02x}); save it as UTF-8"
        ) from None


def _label_column(header: list[str], where: str, columns: tuple[str, ...]) -> int:
    """The position of the `label` column in a CSV header that must name every one of `columns`."""
    missing = set(columns) - set(header)
    if missing:
        raise DataError(
            f"{where}: lacks column(s) {', '.join(sorted(missing))}; found: {', '.join(header)}; "
            f"required: {','.join(columns)}"
        )
    return header.index("label")


def prepare(
    name: str,
    data_dir: str | Path | None = None,
    max_examples: int | None = None,
    split_seed: int = 0,
    max_tokens: int | None = None,
) -> PreparedDataset:
    """Load, tokenize, filter and split a dataset, then index it with a vocabulary built from train."""
    return index_dataset(tokenize_dataset(name, data_dir, max_examples, split_seed, max_tokens))


def tokenize_dataset(
    name: str,
    data_dir: str | Path | None = None,
    max_examples: int | None = None,
    split_seed: int = 0,
    max_tokens: int | None = None,
) -> TokenizedDataset:
    """Load, tokenize, filter and split a dataset: its train, validation and test splits as word tokens.

    `max_examples` caps each split with a seeded sample (the smoke preset); `split_seed` fixes every
    random split and sample so all trials of a sweep share the data; `max_tokens` replaces the
    dataset's own length filter.
    """
    raw = load_raw(name, data_dir)
    spec = DATASET_SPECS[name]
    limit = max_tokens if max_tokens is not None else spec.max_tokens
    rng = np.random.default_rng(split_seed)
    dropped: dict[str, int] = {}
    rows: dict[str, Rows] = {}
    for split, raw_split in raw.items():
        cleaned, keep, split_dropped = _clean(split, raw_split, spec, limit)
        dropped.update(split_dropped)
        rows[split] = cleaned.take(np.flatnonzero(keep))
    if "validation" not in rows:
        validation, train = _hold_out(len(rows["train"]), spec.validation_fraction, rng)
        rows["validation"] = rows["train"].take(validation)
        rows["train"] = rows["train"].take(train)
    if spec.test_fraction < 1.0:
        n_test = int(round(spec.test_fraction * len(rows["test"])))
        rows["test"] = rows["test"].take(np.sort(rng.permutation(len(rows["test"]))[:n_test]))
    if max_examples is not None:
        for split, chosen_rows in rows.items():
            if len(chosen_rows) > max_examples:
                rows[split] = chosen_rows.take(np.sort(rng.permutation(len(chosen_rows))[:max_examples]))
    for split in SPLITS:
        _check_classes(name, split, rows[split].labels, spec.num_classes)
    return TokenizedDataset(
        name,
        {split: (r.tokens, r.labels) for split, r in rows.items()},
        dropped,
        {split: r.texts for split, r in rows.items()},
        {split: r.hypotheses for split, r in rows.items() if r.hypotheses is not None},
        {split: r.hypothesis_texts for split, r in rows.items() if r.hypothesis_texts is not None},
    )


def _check_classes(name: str, split: str, labels: np.ndarray, num_classes: int) -> None:
    """Refuse a split that is empty or lacks one of the classes 0..num_classes-1: training needs every
    class, and so do the validation and test ROC-AUC and per-class metrics (undefined without it, they
    would fail the trial after training)."""
    if len(labels) == 0:
        raise DataError(f"dataset {name!r} split {split!r} is empty after filtering")
    classes = set(labels.tolist())
    missing = [label for label in range(num_classes) if label not in classes]
    if missing and num_classes == 2:
        raise DataError(
            f"dataset {name!r} split {split!r} has only class {classes.pop()} after filtering; "
            "both classes 0 and 1 are needed (training and ROC-AUC)"
        )
    if missing:
        raise DataError(
            f"dataset {name!r} split {split!r} lacks class(es) {', '.join(map(str, missing))} after "
            f"filtering; every class 0..{num_classes - 1} is needed (training and per-class metrics)"
        )


def index_word_pieces(
    dataset: TokenizedDataset,
    encode: Callable[[list[str]], list[list[int]]],
    vocab: list[str],
    special: dict[str, int],
    max_pieces: int,
) -> PreparedDataset:
    """The rows `index_dataset` would give (chosen by their spaCy words, so every encoder of a sweep sees
    the same documents) as a pretrained model's word pieces: `encode` maps texts to piece ids without
    special tokens (its tokenizer), `vocab` lists the pieces by id (id 0 must be padding), `special` holds
    the ids of the tokens the encoder adds around each row. A row with no piece, or with more than
    `max_pieces` (the model's positions less [CLS] and [SEP]), is dropped and counted as
    `{split}_empty` / `{split}_too_long` beside the words' own counts. Sentence pairs are not supported."""
    if dataset.is_pair:
        raise DataError(
            f"dataset {dataset.name!r} is sentence pairs, which word pieces (the distilbert encoder) do not "
            "support; pair datasets run with lstm, cnn, average, transformer"
        )
    num_classes = DATASET_SPECS[dataset.name].num_classes
    dropped = dict(dataset.dropped)
    splits = {}
    for split, (_, labels) in dataset.splits.items():
        pieces = encode(dataset.texts[split])
        lengths = np.array([len(row) for row in pieces], dtype=np.int64)
        keep = (lengths > 0) & (lengths <= max_pieces)
        for reason, count in (("empty", lengths == 0), ("too_long", lengths > max_pieces)):
            dropped[f"{split}_{reason}"] = dropped.get(f"{split}_{reason}", 0) + int(count.sum())
        ids = [np.asarray(row, dtype=np.int64) for row, k in zip(pieces, keep, strict=True) if k]
        splits[split] = Split(ids, labels[keep])
        _check_classes(dataset.name, split, splits[split].labels, num_classes)
    return PreparedDataset(dataset.name, vocab, splits, dropped, special, num_classes)


def index_dataset(dataset: TokenizedDataset) -> PreparedDataset:
    """Token ids of every split, with a vocabulary built from the training split (for pairs, from its
    premises and hypotheses)."""
    spec = DATASET_SPECS[dataset.name]
    vocab = build_vocab(train_corpus(dataset), spec.min_freq)
    index = {word: i for i, word in enumerate(vocab)}

    def ids(tokens: list[list[str]]) -> list[np.ndarray]:
        return [np.array([index.get(w, UNK) for w in t], dtype=np.int64) for t in tokens]

    splits = {
        split: Split(
            ids(tokens), labels, ids(dataset.hypotheses[split]) if split in dataset.hypotheses else None
        )
        for split, (tokens, labels) in dataset.splits.items()
    }
    return PreparedDataset(dataset.name, vocab, splits, dataset.dropped, num_classes=spec.num_classes)


def train_corpus(dataset: TokenizedDataset) -> list[list[str]]:
    """The word tokens of the training split: its texts, or its premises then its hypotheses (the
    vocabulary's source, and each grid dataset's part of the word2vec corpus)."""
    return dataset.splits["train"][0] + dataset.hypotheses.get("train", [])


def unlabeled_train_texts(
    name: str, data_dir: str | Path | None = None, split_seed: int = 0, max_tokens: int | None = None
) -> list[list[str]]:
    """The tokenized texts of a dataset's train file without labels: unlabeled in-domain text (word2vec).

    Every non-empty text of the dataset's classes (for pairs, every non-empty premise and hypothesis of a
    labeled pair, in that order), of any length and uncapped, except those that `tokenize_dataset` with the
    same `split_seed` and `max_tokens` holds out as validation (datasets with no validation file): so no
    validation or test text is among them.
    """
    raw = load_raw(name, data_dir)
    spec = DATASET_SPECS[name]
    limit = max_tokens if max_tokens is not None else spec.max_tokens
    rows, keep, _ = _clean("train", raw["train"], spec, limit)
    held_out: set[int] = set()
    if "validation" not in raw:
        kept = np.flatnonzero(keep)  # the rows tokenize_dataset splits, in its order
        validation, _ = _hold_out(len(kept), spec.validation_fraction, np.random.default_rng(split_seed))
        held_out = set(kept[validation].tolist())
    parts = [rows.tokens] if rows.hypotheses is None else [rows.tokens, rows.hypotheses]
    return [t for row in range(len(rows)) if row not in held_out for part in parts if (t := part[row])]


def _clean(
    split: str, raw: RawSplit, spec: DatasetSpec, limit: int
) -> tuple[Rows, np.ndarray, dict[str, int]]:
    """A split's rows of the dataset's classes (texts with HTML line breaks as spaces, tokens, labels; for
    pairs the hypotheses' too), which of them to keep (every text non-empty and at most `limit` tokens),
    and the counts of what was dropped: a pair goes if its premise or its hypothesis does."""
    dropped: dict[str, int] = {}
    wanted = raw.labels >= 0
    if spec.label_map is not None:
        dropped[f"{split}_other_class"] = int((raw.labels == DROPPED).sum())
    if spec.no_gold_label is not None:
        dropped[f"{split}_unlabeled"] = int((raw.labels == UNLABELED).sum())

    def texts_of(column: list[str]) -> list[str]:
        return [_BREAK_TAG.sub(" ", t) for t, w in zip(column, wanted, strict=True) if w]

    texts = texts_of(raw.texts)
    rows = Rows(tokenize(texts), raw.labels[wanted], texts)
    if raw.hypotheses is not None:
        rows.hypothesis_texts = texts_of(raw.hypotheses)
        rows.hypotheses = tokenize(rows.hypothesis_texts)
    parts = [rows.tokens] if rows.hypotheses is None else [rows.tokens, rows.hypotheses]
    lengths = [np.array([len(t) for t in part], dtype=np.int64) for part in parts]
    keep = np.logical_and.reduce([n > 0 for n in lengths])
    dropped[f"{split}_empty"] = int((~keep).sum())
    short = np.logical_and.reduce([n <= limit for n in lengths])
    dropped[f"{split}_too_long"] = int((keep & ~short).sum())
    return rows, keep & short, dropped


def _hold_out(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions of `n` training rows held out as validation (a seeded share), and the rest in order."""
    order = rng.permutation(n)
    n_val = int(round(fraction * n))
    return order[:n_val], np.sort(order[n_val:])


def build_vocab(documents: list[list[str]], min_freq: int) -> list[str]:
    """Words seen at least `min_freq` times, most frequent first (ties alphabetical), after <pad>, <unk>."""
    counts = Counter(word for doc in documents for word in doc)
    words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    return ["<pad>", "<unk>", *words]


def pad(sequences: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged token arrays -> token ids [B, T] (0-padded) and mask [B, T] (True on real tokens)."""
    longest = max(len(s) for s in sequences)
    tokens = np.zeros((len(sequences), longest), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tokens[row, : len(seq)] = seq
    tokens_t = torch.from_numpy(tokens)
    return tokens_t, tokens_t != PAD


def length_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None = None
) -> Iterator[np.ndarray]:
    """Index batches of similar length: sorted by length (random tie order and batch order with `rng`)."""
    if rng is None:
        order = np.argsort(lengths, kind="stable")
    else:
        order = np.lexsort((rng.random(len(lengths)), lengths))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    yield from batches
