"""Initial word vectors: sources, .vec files, downloads from 127.0.0.1, word2vec, the cache, the matrix."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import sentiment_rows
from trainables import embeddings
from trainables.embeddings import (
    EmbeddingError,
    Source,
    Word2VecSettings,
    WordVectors,
    build_vectors,
    cache_key,
    corpus_fingerprint,
    embedding_matrix,
    fetch,
    load_cached,
    parse_source,
    read_vec,
    save_cached,
    train_word2vec,
)

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [text.split() for text, _ in sentiment_rows(200, seed=0)]
TINY = Word2VecSettings(window=3, min_count=1, epochs=1, seed=0)  # trains in well under a second
VEC_LINES = [
    "4 3",  # the "count dim" header
    "good 0.5 1 -2",
    "bad 1 2",  # wrong width: skipped
    "film 0 0 1.5",
    "good 9 9 9",  # a repeated word: the first line wins
    "zebra 1 1 1",
]


def write_vec(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line} \n" for line in lines), encoding="utf-8")  # fastText ends lines with " "
    return path


def zip_vec(path: Path, members: dict[str, list[str]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, lines in members.items():
            archive.writestr(name, "".join(f"{line}\n" for line in lines))
    return path


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# --- sources -------------------------------------------------------------------------------------------


def test_parse_source_accepts_the_four_kinds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_vec(tmp_path / "v.vec", VEC_LINES)
    zip_vec(tmp_path / "v.vec.zip", {"v.vec": VEC_LINES})
    url = "https://dl.fbaipublicfiles.com/fasttext/vectors-english/wiki-news-300d-1M.vec.zip"
    assert parse_source("random") == Source("random")
    assert parse_source("word2vec") == Source("word2vec")
    assert parse_source("v.vec") == Source("file", str(tmp_path / "v.vec"))  # made absolute for Ray workers
    assert parse_source("v.vec.zip") == Source("file", str(tmp_path / "v.vec.zip"))
    assert parse_source(url) == Source("url", url)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("glove", "unknown embeddings source 'glove'; allowed: random, word2vec, a .vec"),
        ("vectors.txt", "unknown embeddings source 'vectors.txt'"),
        ("s3://bucket/v.vec", "unknown embeddings source 's3://bucket/v.vec'"),
        ("https://host/v.bin", "unknown embeddings source 'https://host/v.bin'"),
        ("missing.vec", "embeddings file 'missing.vec' does not exist"),
        (None, "embeddings source must be a string, not None"),
    ],
)
def test_parse_source_rejects_bad_values_in_one_line(tmp_path, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EmbeddingError) as error:
        parse_source(text)
    assert one_line(error).startswith(expected)


# --- .vec files ----------------------------------------------------------------------------------------


def test_read_vec_keeps_asked_words_of_the_right_width(tmp_path):
    vectors = read_vec(write_vec(tmp_path / "v.vec", VEC_LINES), {"good", "film", "bad", "absent"}, 3)
    assert vectors.words == ["good", "film"]
    assert vectors.vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors.vectors, [[0.5, 1, -2], [0, 0, 1.5]])
    assert read_vec(tmp_path / "v.vec", None, 3).words == ["good", "film", "zebra"]


def test_read_vec_reads_the_vec_file_inside_a_zip(tmp_path):
    path = zip_vec(tmp_path / "v.vec.zip", {"wiki/v.vec": VEC_LINES[1:]})  # no header this time
    vectors = read_vec(path, {"zebra", "good"}, 3)
    assert vectors.words == ["good", "zebra"]
    np.testing.assert_array_equal(vectors.vectors, [[0.5, 1, -2], [1, 1, 1]])


def test_read_vec_returns_no_rows_when_no_word_is_kept(tmp_path):
    vectors = read_vec(write_vec(tmp_path / "v.vec", VEC_LINES), {"absent"}, 3)
    assert vectors.words == [] and vectors.vectors.shape == (0, 3)


@pytest.mark.parametrize(
    "lines, expected",
    [
        (VEC_LINES, "holds 3-d vectors; expected 5-d"),  # from the header, without reading on
        (VEC_LINES[1:], "holds 3-d vectors; expected 5-d"),  # from the first vector line
        (["2 5", "good 1 2 3"], "holds 3-d vectors; expected 5-d"),  # the header matches, no line does
        ([], "holds no vectors; expected 5-d"),
    ],
)
def test_read_vec_names_the_file_and_both_dims_when_none_fits(tmp_path, lines, expected):
    path = write_vec(tmp_path / "v.vec", lines)
    with pytest.raises(EmbeddingError) as error:
        read_vec(path, None, 5)
    assert one_line(error) == f"embeddings file {str(path)!r} {expected} (the embed_dim)"


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda d: d / "missing.vec", "does not exist"),
        (lambda d: write_vec(d / "v.vec", ["good 1 x 3"]), "line 1: not numbers"),
        (lambda d: write_vec(d / "v.vec.zip", ["good 1 2 3"]), "is not a valid zip archive"),
        (lambda d: zip_vec(d / "v.vec.zip", {"a.vec": [], "b.vec": []}), "holds ['a.vec', 'b.vec']"),
    ],
)
def test_read_vec_rejects_bad_files_in_one_line(tmp_path, make, expected):
    path = make(tmp_path)
    with pytest.raises(EmbeddingError) as error:
        read_vec(path, None, 3)
    assert str(path) in one_line(error) and expected in one_line(error)


# --- downloads -----------------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 serving `served/`, with the paths it was asked for."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    root = tmp_path / "served"
    root.mkdir()
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root, requests
    httpd.shutdown()
    httpd.server_close()


def test_fetch_downloads_once_then_uses_the_cached_copy(tmp_path, server):
    base, root, requests = server
    zip_vec(root / "v.vec.zip", {"v.vec": VEC_LINES})
    first = fetch(f"{base}/v.vec.zip", tmp_path / "cache")
    second = fetch(f"{base}/v.vec.zip", tmp_path / "cache")
    assert first == second and first.name.endswith("-v.vec.zip")
    assert first.read_bytes() == (root / "v.vec.zip").read_bytes()
    assert requests == ["/v.vec.zip"]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.name]  # no partial file left


def test_fetch_reports_an_http_error_in_one_line_and_keeps_nothing(tmp_path, server):
    base, _, _ = server
    with pytest.raises(EmbeddingError) as error:
        fetch(f"{base}/absent.vec", tmp_path / "cache")
    assert one_line(error) == (
        f"could not download embeddings from {base}/absent.vec: HTTP Error 404: File not found; "
        "pass a local .vec file as embeddings.source or use word2vec"
    )
    assert not (tmp_path / "cache").exists()  # created only once the server sends the file


def test_fetch_reports_an_unreachable_host_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.vec"
    with pytest.raises(EmbeddingError) as error:
        fetch(url, tmp_path / "cache", timeout=5)
    message = one_line(error)
    assert message.startswith(f"could not download embeddings from {url}: ")
    assert "refused" in message and message.endswith("as embeddings.source or use word2vec")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "url, timeout, expected",
    [
        ("ftp://host/v.vec", 5, "embeddings URL 'ftp://host/v.vec' is not an http(s)://HOST/... URL"),
        ("http://host/v.vec", 0, "download timeout must be a number of seconds > 0, not 0"),
    ],
)
def test_fetch_rejects_bad_arguments(tmp_path, url, timeout, expected):
    with pytest.raises(EmbeddingError) as error:
        fetch(url, tmp_path, timeout)
    assert one_line(error) == expected


def test_build_vectors_downloads_a_url_into_the_store_once(tmp_path, server):
    base, root, requests = server
    zip_vec(root / "v.vec.zip", {"v.vec": VEC_LINES})
    source = parse_source(f"{base}/v.vec.zip")
    store = tmp_path / "store"
    for _ in range(2):
        vectors, info = build_vectors(source, [["good", "film", "plot"]], 3, Word2VecSettings(), str(store))
        assert vectors.words == ["good", "film"]
        assert info["source"] == f"{base}/v.vec.zip" and info["words"] == 2 and info["key"] is None
    assert requests == ["/v.vec.zip"]
    assert len(list((store / "downloads").iterdir())) == 1


# --- word2vec ------------------------------------------------------------------------------------------


def test_word2vec_gives_every_frequent_word_a_vector_deterministically():
    first = train_word2vec(DOCUMENTS, dim=16, **dataclasses.asdict(TINY))
    again = train_word2vec(DOCUMENTS, dim=16, **dataclasses.asdict(TINY))
    other = train_word2vec(DOCUMENTS, dim=16, **dataclasses.asdict(TINY) | {"seed": 1})
    assert set(first.words) == {word for document in DOCUMENTS for word in document}
    assert first.vectors.shape == (len(first.words), 16) and first.vectors.dtype == np.float32
    assert first.words == again.words and first.vectors.tobytes() == again.vectors.tobytes()
    assert not np.allclose(first.vectors, other.vectors)


def test_word2vec_is_identical_in_a_process_with_another_hash_seed(tmp_path):
    corpus, result = tmp_path / "corpus.json", tmp_path / "result.npz"
    corpus.write_text(json.dumps(DOCUMENTS))
    script = (
        "import json, sys, numpy as np\n"
        "from trainables.embeddings import train_word2vec\n"
        "documents = json.loads(open(sys.argv[1]).read())\n"
        "v = train_word2vec(documents, 16, window=3, min_count=1, epochs=1, seed=0)\n"
        "np.savez(sys.argv[2], vectors=v.vectors, words=np.array(v.words), hash=hash('good'))\n"
    )
    hash_seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    subprocess.run(
        [sys.executable, "-c", script, str(corpus), str(result)],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        check=True,
        timeout=120,
    )
    here = train_word2vec(DOCUMENTS, 16, **dataclasses.asdict(TINY))
    there = np.load(result)
    assert there["hash"] != hash("good")  # the two processes really hash strings differently
    assert there["words"].tolist() == here.words
    assert there["vectors"].tobytes() == here.vectors.tobytes()


@pytest.mark.parametrize(
    "documents, changes, expected",
    [
        ([["rare"]], {"min_count": 2}, "no word occurs min_count=2 times in the corpus; lower min_count"),
        (DOCUMENTS, {"dim": 0}, "dim must be an integer >= 1, not 0"),
        (DOCUMENTS, {"window": 1.5}, "window must be an integer >= 1, not 1.5"),
        (DOCUMENTS, {"seed": -1}, "seed must be an integer in 0..4294967295, not -1"),
        (DOCUMENTS, {"seed": 2**32}, "seed must be an integer in 0..4294967295, not 4294967296"),
        ([], {}, "documents must be a non-empty list of token lists"),
        (["a b"], {}, "documents must be a non-empty list of token lists"),
    ],
)
def test_word2vec_rejects_bad_input_in_one_line(documents, changes, expected):
    arguments = {"dim": 8, **dataclasses.asdict(TINY)} | changes
    with pytest.raises(EmbeddingError) as error:
        train_word2vec(documents, **arguments)
    assert one_line(error) == expected


def test_word2vec_settings_are_checked_when_made():
    with pytest.raises(EmbeddingError, match="epochs must be an integer >= 1, not 0"):
        Word2VecSettings(epochs=0)


# --- the cache -----------------------------------------------------------------------------------------


@pytest.fixture
def trainings(monkeypatch):
    """The settings of every word2vec training, counted through the real function."""
    calls: list[dict] = []
    real = embeddings.train_word2vec

    def counted(documents, dim, **settings):
        calls.append(settings)
        return real(documents, dim, **settings)

    monkeypatch.setattr(embeddings, "train_word2vec", counted)
    return calls


def test_word2vec_build_is_cached_and_rebuilt_only_when_corpus_or_settings_change(tmp_path, trainings):
    store = str(tmp_path / "store")
    source = Source("word2vec")
    built, first = build_vectors(source, DOCUMENTS, 16, TINY, store)
    loaded, second = build_vectors(source, DOCUMENTS, 16, TINY, store)
    assert len(trainings) == 1
    assert (first["cached"], second["cached"]) == (False, True) and first["key"] == second["key"]
    assert loaded.words == built.words and loaded.vectors.tobytes() == built.vectors.tobytes()
    metadata = json.loads((tmp_path / "store" / f"{first['key']}.json").read_text())
    assert metadata["settings"] | {"gensim": None} == {"dim": 16, **dataclasses.asdict(TINY), "gensim": None}
    assert (metadata["documents"], metadata["tokens"]) == (200, sum(len(d) for d in DOCUMENTS))
    assert metadata["words"] == len(built.words) and metadata["seconds"] >= 0

    _, epochs = build_vectors(source, DOCUMENTS, 16, dataclasses.replace(TINY, epochs=2), store)
    _, dim = build_vectors(source, DOCUMENTS, 8, TINY, store)
    _, corpus = build_vectors(source, DOCUMENTS[1:], 16, TINY, store)
    assert len(trainings) == 4 and not any(info["cached"] for info in (epochs, dim, corpus))
    assert len({first["key"], epochs["key"], dim["key"], corpus["key"]}) == 4


def test_random_source_builds_nothing(tmp_path, trainings):
    vectors, info = build_vectors(Source("random"), DOCUMENTS, 16, TINY, str(tmp_path))
    assert vectors is None and info["words"] == 0 and not trainings and list(tmp_path.iterdir()) == []


def test_cache_reads_back_through_a_file_uri_and_misses_an_unknown_key(tmp_path):
    vectors = WordVectors(["ünïcode", "b"], np.arange(6, dtype=np.float32).reshape(2, 3))
    save_cached(str(tmp_path), "0123456789abcdef", vectors, {"source": "word2vec"})
    loaded, metadata = load_cached(tmp_path.as_uri(), "0123456789abcdef")
    assert loaded.words == vectors.words and np.array_equal(loaded.vectors, vectors.vectors)
    assert metadata == {"source": "word2vec"}
    assert load_cached(str(tmp_path), "fedcba9876543210") is None


def test_an_interrupted_save_leaves_no_entry(tmp_path):
    vectors = WordVectors(["a"], np.ones((1, 3), dtype=np.float32))
    with pytest.raises(TypeError):  # metadata that cannot be written, after the vectors were
        save_cached(str(tmp_path), "0123456789abcdef", vectors, {"bad": object()})
    assert load_cached(str(tmp_path), "0123456789abcdef") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0123456789abcdef.npz"]  # no partial files


@pytest.mark.parametrize("damaged", ["npz", "json"])
def test_a_damaged_cache_entry_is_an_error_naming_the_file(tmp_path, damaged):
    vectors = WordVectors(["a"], np.ones((1, 3), dtype=np.float32))
    save_cached(str(tmp_path), "0123456789abcdef", vectors, {})
    (tmp_path / f"0123456789abcdef.{damaged}").write_bytes(b"not what was written")
    with pytest.raises(EmbeddingError) as error:
        load_cached(str(tmp_path), "0123456789abcdef")
    assert one_line(error).startswith(
        f"cached embeddings file {tmp_path}/0123456789abcdef.{damaged} does not load"
    )


def test_cache_key_and_fingerprint_follow_what_decides_the_vectors():
    fingerprint = corpus_fingerprint([["a", "b"], ["c"]])
    assert fingerprint == corpus_fingerprint([["a", "b"], ["c"]])
    assert fingerprint != corpus_fingerprint([["a"], ["b", "c"]])  # document boundaries count
    assert fingerprint != corpus_fingerprint([["ab"], ["c"]])
    key = cache_key(Source("word2vec"), {"dim": 8}, fingerprint)
    assert key == cache_key(Source("word2vec"), {"dim": 8}, fingerprint) and len(key) == 16
    assert key != cache_key(Source("word2vec"), {"dim": 9}, fingerprint)
    assert key != cache_key(Source("word2vec"), {"dim": 8}, corpus_fingerprint([["a"]]))


@pytest.mark.parametrize(
    "store, key, expected",
    [
        ("", "0123456789abcdef", "embeddings store must be a folder or storage URI, not ''"),
        ("/tmp", "../escape", "cache key must be 16 hex digits from cache_key, not '../escape'"),
    ],
)
def test_cache_rejects_bad_locations(store, key, expected):
    with pytest.raises(EmbeddingError) as error:
        load_cached(store, key)
    assert one_line(error) == expected


# --- the embedding matrix ------------------------------------------------------------------------------

VOCAB = ["<pad>", "<unk>", "good", "bad", "film", "plot"]
FOUND = WordVectors(["film", "good", "zebra"], np.array([[1, 2], [3, 4], [5, 6]], dtype=np.float32))


def test_embedding_matrix_uses_vectors_where_found_and_seeded_normals_elsewhere():
    counts = {"good": 5, "bad": 3, "film": 2, "plot": 0, "unseen": 10}
    matrix, coverage = embedding_matrix(FOUND, VOCAB, 2, seed=7, token_counts=counts)
    expected = torch.randn(6, 2, generator=torch.Generator().manual_seed(7))
    expected[0] = 0.0
    expected[2] = torch.tensor([3.0, 4.0])
    expected[4] = torch.tensor([1.0, 2.0])
    assert torch.equal(matrix, expected)
    assert coverage == {"vocab": 2 / 4, "tokens": (5 + 2) / 20}  # good, film of 4 words; 7 of 20 tokens


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"dim": 3}, "vectors are 2-d; expected 3-d (the embed_dim)"),
        (
            {"vocab": ["good", "bad"]},
            "vocab must be ['<pad>', '<unk>', word, ...], not one starting ['good', 'bad']",
        ),
        ({"token_counts": {}}, "token_counts counts no tokens; pass the training split's token counts"),
        ({"token_counts": {"good": -1}}, "token_counts must map words to counts >= 0"),
        ({"vectors": None}, "vectors must be WordVectors, not NoneType"),
    ],
)
def test_embedding_matrix_rejects_bad_input_in_one_line(changes, expected):
    arguments = {"vectors": FOUND, "vocab": VOCAB, "dim": 2, "seed": 0, "token_counts": {"good": 1}} | changes
    with pytest.raises(EmbeddingError) as error:
        embedding_matrix(**arguments)
    assert one_line(error) == expected


def test_word_vectors_must_match_their_words():
    with pytest.raises(EmbeddingError, match="2 vectors for 1 words; they must match"):
        WordVectors(["a"], np.ones((2, 3), dtype=np.float32))
    with pytest.raises(EmbeddingError, match="vectors must be a 2-d float32 numpy array, not list"):
        WordVectors(["a"], [[1.0]])
