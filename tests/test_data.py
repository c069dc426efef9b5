"""Data preparation on real local files: CSV and Hub paths, IMDB filtering and splits, sentence pairs (SNLI,
MultiNLI), bad input."""

from __future__ import annotations

import codecs
import dataclasses
import time

import numpy as np
import pytest
import torch

from tests.helpers import (
    NLI_COLUMNS,
    NLI_SPLIT_SIZES,
    SNLI_UNLABELED,
    nli_rows,
    sentiment_rows,
    write_csv,
    write_nli_splits,
)
from trainables import data
from trainables.data import DataError, build_vocab, length_batches, pad, prepare, tokenize
from trainables.settings import CLASS_NAMES, PAIR_DATASETS


def test_tokenize_lowercases_and_drops_punctuation_and_break_tags():
    assert tokenize(["A GREAT film, really!<br /><br />Loved it."]) == [
        ["a", "great", "film", "really", "loved", "it"]
    ]


def test_prepare_reads_local_csvs_and_indexes_with_a_train_vocabulary(sst_dir):
    prepared = prepare("sst2", sst_dir)
    assert [len(prepared.splits[s]) for s in ("train", "validation", "test")] == [240, 60, 60]
    assert prepared.vocab[:2] == ["<pad>", "<unk>"]
    train = prepared.splits["train"]
    assert all(t.dtype == np.int64 and (t >= 2).all() for t in train.tokens)  # every train word is known
    assert set(train.labels.tolist()) == {0, 1}


def test_vocabulary_respects_min_freq_and_orders_by_frequency():
    assert build_vocab([["b", "a", "b"], ["c", "b", "a"]], min_freq=2) == ["<pad>", "<unk>", "b", "a"]


def test_max_examples_caps_each_split_deterministically(sst_dir):
    first = prepare("sst2", sst_dir, max_examples=50, split_seed=3)
    again = prepare("sst2", sst_dir, max_examples=50, split_seed=3)
    assert [len(first.splits[s]) for s in data.SPLITS] == [50, 50, 50]
    assert all(
        np.array_equal(a, b)
        for a, b in zip(first.splits["train"].tokens, again.splits["train"].tokens, strict=True)
    )


def imdb_dir(tmp_path, n_train=200, n_test=200, n_long=20):
    """IMDB layout (train/test only); the first `n_long` reviews of each split are 450 tokens long."""
    root = tmp_path / "data"
    for seed, (split, n) in enumerate({"train": n_train, "test": n_test}.items()):
        rows = sentiment_rows(n, seed)
        rows[:n_long] = [(" ".join(["word"] * 450) + "<br />" + text, label) for text, label in rows[:n_long]]
        write_csv(root / "imdb" / f"{split}.csv", rows)
    return root


def test_imdb_follows_jain_and_wallace_filter_split_and_sample(tmp_path):
    prepared = prepare("imdb", imdb_dir(tmp_path))
    assert prepared.dropped["train_too_long"] == 20 and prepared.dropped["test_too_long"] == 20
    kept = 200 - 20
    assert len(prepared.splits["validation"]) == round(0.2 * kept)
    assert len(prepared.splits["train"]) == kept - round(0.2 * kept)
    assert len(prepared.splits["test"]) == round(0.2 * kept)
    assert max(prepared.splits["train"].lengths) <= 399
    again = prepare("imdb", imdb_dir(tmp_path))
    assert np.array_equal(prepared.splits["test"].labels, again.splits["test"].labels)
    other_seed = prepare("imdb", imdb_dir(tmp_path), split_seed=7)
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(
            prepared.splits["validation"].tokens, other_seed.splits["validation"].tokens, strict=False
        )
    )


def test_max_tokens_overrides_the_length_filter(tmp_path):
    prepared = prepare("imdb", imdb_dir(tmp_path, n_long=0), max_tokens=10)
    assert all(split.lengths.max() <= 10 for split in prepared.splits.values())
    assert prepared.dropped["train_too_long"] > 0


def test_every_dataset_has_a_token_cap_and_a_huge_document_is_dropped_and_counted(sst_dir):
    assert all(spec.max_tokens > 0 for spec in data.DATASET_SPECS.values())
    rows = sentiment_rows(40, 0)
    rows[3] = (" ".join(["good"] * 200_000), 1)  # 1 MB, 200k tokens: LOO would need a 200k x 200k batch
    write_csv(sst_dir / "sst2" / "train.csv", rows)
    prepared = prepare("sst2", sst_dir)
    assert prepared.dropped["train_too_long"] == 1 and len(prepared.splits["train"]) == 39
    assert max(prepared.splits["train"].lengths) <= data.DATASET_SPECS["sst2"].max_tokens


def documents(tokens: list[list[str]]) -> set[tuple[str, ...]]:
    return {tuple(t) for t in tokens}


@pytest.mark.parametrize(("max_tokens", "split_seed"), [(None, 0), (10, 7)])
def test_unlabeled_train_texts_are_the_train_file_but_the_validation_rows(tmp_path, max_tokens, split_seed):
    root = imdb_dir(tmp_path)
    rows = sentiment_rows(200, 0)
    rows[:20] = [(" ".join(["word"] * 450) + " " + text, label) for text, label in rows[:20]]  # too long
    write_csv(root / "imdb" / "train.csv", [("", 1), *rows])  # and an empty text
    every = data.tokenize([text for text, _ in rows])
    assert len(documents(every)) == 200  # the texts are unique, so they can be matched by content
    texts = data.unlabeled_train_texts("imdb", root, split_seed, max_tokens)
    held_out = data.tokenize_dataset("imdb", root, split_seed=split_seed, max_tokens=max_tokens)
    validation = held_out.splits["validation"][0]
    assert len(texts) == 200 - len(validation) and sum(len(t) > 399 for t in texts) == 20
    assert documents(texts) == documents(every) - documents(validation)
    capped = data.tokenize_dataset("imdb", root, 30, split_seed, max_tokens)
    assert documents(capped.splits["train"][0]) < documents(texts)


def test_unlabeled_train_texts_keep_only_the_datasets_classes(tmp_path):
    root = tmp_path / "data"
    for seed, split in enumerate(("train", "test")):
        write_csv(root / "ag_news" / f"{split}.csv", four_class_rows(400, seed, [0, 1, 2, 3]))
    texts = data.unlabeled_train_texts("ag_news", root)
    assert len(texts) == 200 - round(0.2 * 200)  # World and Business (labels 0, 2), less validation
    kept = [text for i, (text, _) in enumerate(sentiment_rows(400, 0)) if i % 4 in (0, 2)]
    assert documents(texts) <= documents(data.tokenize(kept))


def test_prepare_indexes_the_tokenized_splits(sst_dir):
    split = data.tokenize_dataset("sst2", sst_dir, max_examples=50)
    prepared = prepare("sst2", sst_dir, max_examples=50)
    for name, (tokens, labels) in split.splits.items():
        ids = prepared.splits[name].tokens
        assert [[prepared.vocab[i] for i in row] for row in ids] == tokens
        assert np.array_equal(prepared.splits[name].labels, labels)


def test_hub_loading_path_reads_a_local_dataset_repository(tmp_path, monkeypatch):
    """The real `datasets.load_dataset(<hub id>)` path, given a local folder laid out like the Hub repo."""
    repo = tmp_path / "SetFit-sst2"
    for seed, split in enumerate(data.SPLITS):
        write_csv(repo / f"{split}.csv", sentiment_rows(30, seed))
    monkeypatch.setitem(
        data.DATASET_SPECS, "sst2", dataclasses.replace(data.DATASET_SPECS["sst2"], hub_id=str(repo))
    )
    probes = []
    monkeypatch.setattr(data, "_probe_hub", probes.append)
    prepared = prepare("sst2", data_dir=None)
    assert len(prepared.splits["test"]) == 30 and probes == []  # load_dataset reads a local path itself


def test_unreachable_hub_fails_at_once_in_one_line(monkeypatch, capfd):
    """Without the probe, load_dataset retries for about 30 s and logs a line per retry."""
    import datasets
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # port 9 (discard): nothing listens
    started = time.perf_counter()
    with pytest.raises(DataError, match=r"Hub \(SetFit/sst2\): no answer \(ConnectError\); pass --data-dir"):
        data.load_raw("sst2", None)
    assert time.perf_counter() - started < 20
    assert capfd.readouterr() == ("", "")


def test_offline_mode_skips_the_probe_and_says_how_to_use_local_files(monkeypatch, capfd):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # what HF_DATASETS_OFFLINE=1 sets at import
    monkeypatch.setitem(
        data.DATASET_SPECS,
        "sst2",
        dataclasses.replace(data.DATASET_SPECS["sst2"], hub_id="no-such-org/no-such-dataset"),
    )
    probes = []
    monkeypatch.setattr(data, "_probe_hub", probes.append)
    with pytest.raises(DataError, match=r"Hugging Face Hub \(no-such-org/no-such-dataset\).*pass --data-dir"):
        data.load_raw("sst2", None)
    assert probes == []
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda root: (root / "sst2" / "test.csv").unlink(), "missing split file"),
        (
            lambda root: write_csv(root / "sst2" / "train.csv", [("a b", 1)], header=("sentence", "label")),
            "lacks column(s) text; found: sentence, label; required: text,label",
        ),
        (
            lambda root: write_csv(root / "sst2" / "train.csv", [("a b", 1), ("c", 3)]),
            "has label(s) [3]; allowed",
        ),
        (lambda root: write_csv(root / "sst2" / "test.csv", [("!!", 1), ("", 0)]), "split 'test' is empty"),
        (
            lambda root: write_csv(root / "sst2" / "validation.csv", [("a b", 1), ("c d", 1), ("!!", 0)]),
            "'sst2' split 'validation' has only class 1 after filtering; both classes 0 and 1 are needed",
        ),
        (
            lambda root: write_csv(root / "sst2" / "train.csv", [("a b", 0), ("c d", 0), ("x " * 101, 1)]),
            "split 'train' has only class 0 after filtering",
        ),
    ],
)
def test_bad_data_gives_one_line_errors(sst_dir, mutate, fragment):
    mutate(sst_dir)
    with pytest.raises(DataError) as error:
        prepare("sst2", sst_dir)
    assert fragment in str(error.value) and "\n" not in str(error.value)


# Split files that `datasets` cannot read cleanly: (bytes, the expected end of the one-line error).
BROKEN_CSVS = {
    "0-byte file": (b"", "the file is empty; expected a text,label header and data rows"),
    "random bytes": (np.random.default_rng(0).bytes(4096), "line 1 has a byte that is not UTF-8 (0x"),
    "latin-1 text": (
        "text,label\ngood film,1\ncafé crème,0\n".encode("latin-1"),
        "line 3 has a byte that is not UTF-8 (0xe9); save it as UTF-8",
    ),
    "row with an extra field": (b"text,label\na b,1\nc,d,0\n", "line 3 has 3 fields, the header has 2"),
    "row with a missing field": (b"text,label\na b,1\nc d\n", "line 3 has 1 field, the header has 2"),
    "ragged row after a two-line text": (
        b'text,label\n"a\nb",1\nc,d,0\n',
        "line 4 has 3 fields, the header has 2",
    ),
    "missing header column": (
        b"sentence,label\na b,1\n",
        "lacks column(s) text; found: sentence, label; required: text,label",
    ),
    "non-integer label": (b"text,label\na b,1\nc d,pos\n", "line 3 has label 'pos'; labels must be integers"),
    "header only": (b"text,label\n", "no data rows under the header"),
}


@pytest.mark.parametrize("case", BROKEN_CSVS)
def test_a_broken_csv_is_one_line_naming_file_and_line_and_caches_and_prints_nothing(
    case, sst_dir, tmp_path, monkeypatch, capfd
):
    import datasets

    cache = tmp_path / "hf-cache"  # datasets reads HF_DATASETS_CACHE once, at import, into this setting
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    content, fragment = BROKEN_CSVS[case]
    path = sst_dir / "sst2" / "test.csv"  # the last split: the good train and validation files are not loaded
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        data.load_raw("sst2", sst_dir)
    message = str(error.value)
    assert message.startswith(f"cannot read {str(path)!r}: {fragment}") and "\n" not in message
    assert capfd.readouterr() == ("", "")
    assert not any(cache.rglob("*"))


def test_csv_check_accepts_what_pandas_reads(tmp_path):
    path = tmp_path / "sst2" / "train.csv"
    path.parent.mkdir()
    rows = (
        b'text,label\r\n"a ""quoted""\r\ntext, with a comma",1\r\n\r\nb, -0 \r\n' + b"x" * 200_000 + b",0\r\n"
    )
    path.write_bytes(codecs.BOM_UTF8 + rows)  # a byte order mark, CRLF, blank lines, a 200k-character field
    data.check_csv(path)
    table = data._read_csv(path)
    assert table.column_names == ["text", "label"] and table["label"] == [1, 0, 0]


def test_missing_data_dir_and_unknown_dataset(tmp_path):
    with pytest.raises(DataError, match="is not a directory"):
        prepare("sst2", tmp_path / "nowhere")
    with pytest.raises(DataError, match="unknown dataset 'sst5'; allowed: sst2, imdb"):
        prepare("sst5", tmp_path)


def test_empty_texts_are_dropped_and_counted(sst_dir):
    rows = sentiment_rows(40, 0) + [("", 1), ("...", 0)]
    write_csv(sst_dir / "sst2" / "train.csv", rows)
    prepared = prepare("sst2", sst_dir)
    assert prepared.dropped["train_empty"] == 2 and len(prepared.splits["train"]) == 40


def test_pad_masks_and_length_batches_group_similar_lengths():
    tokens, mask = pad([np.array([5, 6, 7]), np.array([8])])
    assert torch.equal(tokens, torch.tensor([[5, 6, 7], [8, 0, 0]]))
    assert torch.equal(mask, tokens != 0)
    lengths = np.array([5, 1, 9, 2, 8, 3])
    batches = list(length_batches(lengths, 2))
    assert [sorted(lengths[b].tolist()) for b in batches] == [[1, 2], [3, 5], [8, 9]]
    shuffled = list(length_batches(lengths, 2, np.random.default_rng(0)))
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(6))


def four_class_rows(n: int, seed: int, classes: list[int]) -> list[tuple[str, int]]:
    return [(text, classes[i % len(classes)]) for i, (text, _) in enumerate(sentiment_rows(n, seed))]


@pytest.mark.parametrize(
    ("name", "classes", "kept"),
    [("ag_news", [0, 1, 2, 3], {0: 0, 2: 1}), ("20news_sports", list(range(20)), {9: 0, 10: 1})],
)
def test_multiclass_sources_become_jain_and_wallace_binary_tasks(tmp_path, name, classes, kept):
    root = tmp_path / "data"
    for seed, split in enumerate(("train", "test")):
        write_csv(root / name / f"{split}.csv", four_class_rows(400, seed, classes))
    prepared = prepare(name, root)
    per_class = 400 // len(classes)
    assert prepared.dropped["train_other_class"] == 400 - len(kept) * per_class
    assert len(prepared.splits["test"]) == len(kept) * per_class
    assert len(prepared.splits["validation"]) == round(0.2 * len(kept) * per_class)
    assert set(prepared.splits["train"].labels.tolist()) == {0, 1}
    assert prepared.splits["test"].labels.sum() == per_class  # the second kept class is label 1


def test_a_label_outside_the_sources_classes_is_rejected(tmp_path):
    write_csv(tmp_path / "ag_news" / "train.csv", [("a b", 0), ("c d", 7)])
    write_csv(tmp_path / "ag_news" / "test.csv", [("a b", 0)])
    with pytest.raises(DataError, match=r"has label\(s\) \[7\]; allowed labels: 0, 1, 2, 3"):
        prepare("ag_news", tmp_path)


# --- sentence pairs (natural language inference): snli, mnli ------------------------------------------


def test_every_dataset_spec_agrees_with_the_settings_classes_and_pair_datasets():
    for name, spec in data.DATASET_SPECS.items():
        assert spec.num_classes == len(CLASS_NAMES[name]), name
        assert spec.pair == (name in PAIR_DATASETS), name
    assert data.DATASET_SPECS["sst2"].columns == ("text", "label")
    assert data.DATASET_SPECS["snli"].columns == NLI_COLUMNS


def words(rows: list[tuple], column: int) -> list[list[str]]:
    return tokenize([row[column] for row in rows])


def test_snli_reads_pairs_drops_the_unlabeled_ones_and_counts_them(tmp_path):
    root = write_nli_splits(tmp_path / "data")
    tokenized = data.tokenize_dataset("snli", root)
    prepared = data.index_dataset(tokenized)
    assert {split: len(prepared.splits[split]) for split in data.SPLITS} == NLI_SPLIT_SIZES["snli"]
    assert {split: prepared.dropped[f"{split}_unlabeled"] for split in data.SPLITS} == dict.fromkeys(
        data.SPLITS, SNLI_UNLABELED
    )
    assert prepared.num_classes == 3 and tokenized.is_pair
    rows = nli_rows(NLI_SPLIT_SIZES["snli"]["train"], 0)  # the train file's labeled rows, in their order
    assert tokenized.splits["train"][0] == words(rows, 0) and tokenized.hypotheses["train"] == words(rows, 1)
    assert tokenized.texts["train"] == [row[0] for row in rows]
    assert tokenized.hypothesis_texts["train"] == [row[1] for row in rows]
    assert tokenized.splits["train"][1].tolist() == [row[2] for row in rows]
    for split in data.SPLITS:
        indexed = prepared.splits[split]
        assert indexed.is_pair and len(indexed.hypotheses) == len(indexed.tokens) == len(indexed)
        assert set(indexed.labels.tolist()) == {0, 1, 2}
        assert [[prepared.vocab[i] for i in row] for row in indexed.hypotheses] == tokenized.hypotheses[split]


def test_the_pair_vocabulary_comes_from_train_premises_and_hypotheses_with_min_freq_3(tmp_path):
    root = write_nli_splits(tmp_path / "data")
    rows = nli_rows(240, 0) + [("a dog surely", "zebra zebra zebra", 0), ("a dog surely", "okapi okapi", 0)]
    write_csv(root / "snli" / "train.csv", rows, NLI_COLUMNS)
    prepared = prepare("snli", root)
    assert "zebra" in prepared.vocab and "okapi" not in prepared.vocab  # seen 3 and 2 times
    assert prepared.splits["train"].hypotheses[-1].tolist() == [data.UNK, data.UNK]
    assert set(prepared.vocab) - {"<pad>", "<unk>"} == {
        w for row in words(rows, 0) + words(rows, 1) for w in row
    } - {"okapi"}


def test_mnli_tests_on_validation_matched_and_holds_out_a_seeded_share_of_train_as_validation(tmp_path):
    root = write_nli_splits(tmp_path / "data", "mnli", {"train": 400, "validation_matched": 60})
    assert sorted(path.name for path in (root / "mnli").iterdir()) == ["train.csv", "validation_matched.csv"]
    every = list(zip(map(tuple, words(nli_rows(400, 0), 0)), map(tuple, words(nli_rows(400, 0), 1))))
    assert len(set(every)) == 400  # the pairs are unique, so they can be matched by content

    def pairs(dataset: data.TokenizedDataset, split: str) -> list[tuple]:
        return list(zip(map(tuple, dataset.splits[split][0]), map(tuple, dataset.hypotheses[split])))

    first = data.tokenize_dataset("mnli", root, split_seed=1)
    train, validation = pairs(first, "train"), pairs(first, "validation")
    assert len(validation) == round(0.025 * 400) and len(train) == 400 - len(validation)
    assert set(train) | set(validation) == set(every) and not set(train) & set(validation)
    assert first.splits["test"][0] == words(nli_rows(60, 1), 0)  # validation_matched, all of it, in order
    assert first.hypotheses["test"] == words(nli_rows(60, 1), 1)
    assert "test_empty" in first.dropped and not any(key.startswith("validation_") for key in first.dropped)
    assert "train_unlabeled" not in first.dropped  # MultiNLI has no unlabeled pairs
    assert pairs(data.tokenize_dataset("mnli", root, split_seed=1), "validation") == validation
    assert set(pairs(data.tokenize_dataset("mnli", root, split_seed=2), "validation")) != set(validation)


def test_batch_gives_premises_and_hypotheses_for_pairs_and_two_tensors_for_single_texts(tmp_path, sst_dir):
    split = prepare("snli", write_nli_splits(tmp_path / "nli")).splits["test"]
    chosen, cpu = np.array([0, 4, 7]), torch.device("cpu")
    tokens, mask, hypotheses, hypothesis_mask = split.batch(chosen, cpu)
    assert tokens.shape == (3, max(len(split.tokens[i]) for i in chosen))
    assert hypotheses.shape == (3, max(len(split.hypotheses[i]) for i in chosen))
    assert torch.equal(mask, tokens != 0) and torch.equal(hypothesis_mask, hypotheses != 0)
    assert mask.dtype == hypothesis_mask.dtype == torch.bool
    assert hypotheses[1, : len(split.hypotheses[4])].tolist() == split.hypotheses[4].tolist()
    assert hypothesis_mask.sum(1).tolist() == [len(split.hypotheses[i]) for i in chosen]
    single = prepare("sst2", sst_dir)
    assert single.num_classes == 2 and not single.splits["test"].is_pair
    assert single.splits["test"].hypotheses is None and len(single.splits["test"].batch(chosen, cpu)) == 2
    with pytest.raises(ValueError, match="2 hypotheses for 3 premises"):
        data.Split(split.tokens[:3], split.labels[:3], split.hypotheses[:2])


def test_a_pair_with_an_empty_or_too_long_premise_or_hypothesis_is_dropped_and_counted(tmp_path):
    root = write_nli_splits(tmp_path / "data")
    long = " ".join(["dog"] * 101)
    extra = [("", "a dog", 0), ("a dog surely", "...", 1), ("a b", long, 2), (long, "a b", 0)]
    write_csv(root / "snli" / "train.csv", nli_rows(240, 0) + extra, NLI_COLUMNS)
    prepared = prepare("snli", root)
    assert prepared.dropped["train_empty"] == 2 and prepared.dropped["train_too_long"] == 2
    assert prepared.dropped["train_unlabeled"] == 0 and len(prepared.splits["train"]) == 240
    capped = prepare("snli", root, max_tokens=5)
    for split in capped.splits.values():
        assert split.lengths.max() <= 5 and max(len(h) for h in split.hypotheses) <= 5


def nli_file(root, name: str, split: str, rows: list[tuple], header: tuple[str, ...] = NLI_COLUMNS):
    return write_csv(root / name / f"{split}.csv", rows, header)


@pytest.mark.parametrize(
    ("name", "mutate", "fragment"),
    [
        (
            "snli",
            lambda root: nli_file(root, "snli", "train", [("a b", 0)], ("premise", "label")),
            "lacks column(s) hypothesis; found: premise, label; required: premise,hypothesis,label",
        ),
        (
            "snli",
            lambda root: nli_file(root, "snli", "test", [("a b", 0)], ("text", "label")),
            "lacks column(s) hypothesis, premise; found: text, label; required: premise,hypothesis,label",
        ),
        (
            "snli",
            lambda root: (root / "snli" / "validation.csv").write_bytes(b""),
            "the file is empty; expected a premise,hypothesis,label header and data rows",
        ),
        (
            "snli",
            lambda root: nli_file(root, "snli", "train", [*nli_rows(30, 0), ("a b", "c", 3)]),
            "split 'train' has label(s) [3]; allowed labels: 0, 1, 2, -1 (no gold label: dropped)",
        ),
        (
            "mnli",
            lambda root: nli_file(root, "mnli", "validation_matched", [*nli_rows(30, 0), ("a b", "c", -1)]),
            "split 'validation_matched' has label(s) [-1]; allowed labels: 0, 1, 2",
        ),
        (
            "mnli",
            lambda root: (root / "mnli" / "validation_matched.csv").unlink(),
            "validation_matched.csv'; expected validation_matched.csv with columns premise,hypothesis,label",
        ),
        (
            "snli",
            lambda root: nli_file(root, "snli", "test", [row for row in nli_rows(30, 0) if row[2] != 2]),
            "dataset 'snli' split 'test' lacks class(es) 2 after filtering; every class 0..2 is needed",
        ),
        (
            "mnli",
            lambda root: nli_file(
                root, "mnli", "validation_matched", [(p, "" if y else h, y) for p, h, y in nli_rows(30, 0)]
            ),
            "dataset 'mnli' split 'test' lacks class(es) 1, 2 after filtering",
        ),
    ],
)
def test_bad_pair_data_gives_one_line_errors(tmp_path, name, mutate, fragment):
    root = write_nli_splits(tmp_path / "data", name)
    mutate(root)
    with pytest.raises(DataError) as error:
        prepare(name, root)
    message = str(error.value)
    assert fragment in message and "\n" not in message
    if name == "mnli":
        assert "no gold label" not in message


def test_hub_loading_path_reads_local_pair_repositories(tmp_path, monkeypatch):
    """The real `datasets.load_dataset(<hub id>)` path for both pair datasets, from local folders laid out
    like their Hub repositories (MultiNLI's split names declared in its README, as on the Hub)."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    hub = tmp_path / "hub"
    write_nli_splits(hub, "snli")
    write_nli_splits(hub, "mnli", {"train": 600, "validation_matched": 60, "validation_mismatched": 30})
    splits = ("train", "validation_matched", "validation_mismatched")
    (hub / "mnli" / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n"
        + "".join(f"  - split: {split}\n    path: {split}.csv\n" for split in splits)
        + "---\n"
    )
    for name in ("snli", "mnli"):
        spec = dataclasses.replace(data.DATASET_SPECS[name], hub_id=str(hub / name))
        monkeypatch.setitem(data.DATASET_SPECS, name, spec)
    probes = []
    monkeypatch.setattr(data, "_probe_hub", probes.append)
    snli = prepare("snli", data_dir=None)
    assert {split: len(snli.splits[split]) for split in data.SPLITS} == NLI_SPLIT_SIZES["snli"]
    assert snli.dropped["test_unlabeled"] == SNLI_UNLABELED
    mnli = prepare("mnli", data_dir=None)
    assert [len(mnli.splits[split]) for split in data.SPLITS] == [585, 15, 60] and probes == []


def test_word_pieces_refuse_sentence_pairs(tmp_path):
    tokenized = data.tokenize_dataset("snli", write_nli_splits(tmp_path / "data"))
    with pytest.raises(
        DataError, match=r"dataset 'snli' is sentence pairs, which word pieces \(the distilbert"
    ):
        data.index_word_pieces(tokenized, lambda texts: [[5]] * len(texts), ["[PAD]"], {}, 10)


def test_the_word2vec_corpus_of_a_pair_dataset_holds_its_premises_and_hypotheses(tmp_path):
    from sweep.config import parse_config
    from sweep.runner import prepare_data

    root = write_nli_splits(tmp_path / "data", "mnli")
    tokenized = data.tokenize_dataset("mnli", root, split_seed=2)
    premises, hypotheses = tokenized.splits["train"][0], tokenized.hypotheses["train"]
    assert data.train_corpus(tokenized) == premises + hypotheses
    # the train file less the held-out validation pairs, each pair's premise then its hypothesis
    texts = data.unlabeled_train_texts("mnli", root, split_seed=2)
    assert texts == [text for pair in zip(premises, hypotheses) for text in pair]
    config = parse_config({"name": "x", "grid": {"dataset": ["mnli"]}, "data": {"split_seed": 2}}, "test")
    datasets, corpus = prepare_data(config, root)
    assert corpus == premises + hypotheses and len(corpus) == 2 * len(datasets["mnli"].splits["train"])
