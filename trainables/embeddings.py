"""Initial word vectors for the embedding layer: from a fastText `.vec` file or URL, or word2vec trained here.

Both papers start from pretrained 300-d vectors (fastText wiki-news-300d-1M); in-domain skip-gram vectors
(IMDB reviews + SST train sentences) are the alternative. `build_vectors` is the one entry point: the sweep
driver calls it once, before trials start, and gives each trial `embedding_matrix` of the result. Word2vec
builds are cached in the sweep's storage (a local folder or an s3:// / gs:// URI) under a hash of the corpus
and settings, so a re-run or a resumed sweep does not retrain.

Importing this module loads no torch (only `embedding_matrix` needs it): `trainables.settings` validates
`embeddings.source` with `parse_source` and takes its defaults from `Word2VecSettings`, and validating a
sweep must stay light.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import logging
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

KINDS = ("random", "word2vec", "file", "url")
ALLOWED_SOURCES = "random, word2vec, a .vec or .vec.zip file, or an http(s):// URL of one"
SUFFIXES = (".vec", ".vec.zip")
DOWNLOAD_TIMEOUT = 60.0  # seconds a download may wait for data before it fails
# Where URL sources are downloaded when the store is remote: the node's own disk, as a 1 GB zip is not worth a
# round trip through object storage (a local store keeps them in `<store>/downloads`).
LOCAL_DOWNLOADS = Path.home() / ".cache" / "ane-sweep" / "downloads"
_KEY = re.compile(r"[0-9a-f]{16}")
MAX_SEED = 2**32 - 1  # numpy's seeds (gensim draws its initial vectors from one) are unsigned 32-bit


class EmbeddingError(ValueError):
    """A bad embeddings source, file, download or cache entry, reported as one line."""


@dataclass(frozen=True)
class Source:
    """Where the initial vectors come from: kind is random, word2vec, file (an absolute path) or url."""

    kind: str
    location: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise EmbeddingError(f"unknown embeddings source kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        if (self.location is None) != (self.kind in ("random", "word2vec")):
            raise EmbeddingError(f"embeddings source {self.kind!r} cannot have location {self.location!r}")


@dataclass(frozen=True)
class Word2VecSettings:
    """Skip-gram settings, chosen here once; the dimension is the model's `embed_dim`.

    window 5, epochs 5: the defaults of word2vec (Mikolov et al. 2013) and gensim; the vectors are an input
    here, not a subject of study, so they are not tuned.
    min_count 2: a word seen once gets a few updates and ends barely moved from its random start; it is
    left to the classifier's own N(0, 1) row instead, which also keeps the stored vectors small.
    seed 0: fixed rather than the trial's seed, so every trial of a sweep shares one cached build.
    Cost: on SST-2 + IMDB train (31,920 documents, 6.1M tokens) a 300-d build took 346 s on one core of
    a busy machine; it runs once per corpus and settings, then loads from the store in under a second.
    """

    window: int = 5
    min_count: int = 2
    epochs: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        for name, minimum in (("window", 1), ("min_count", 1), ("epochs", 1)):
            _check_int(name, getattr(self, name), minimum)
        _check_seed(self.seed)


@dataclass(frozen=True)
class WordVectors:
    """Words and their vectors, row i belonging to words[i]."""

    words: list[str]
    vectors: np.ndarray  # float32 [len(words), dim]

    def __post_init__(self) -> None:
        array = self.vectors
        if not isinstance(self.words, list):
            raise EmbeddingError(f"words must be a list of strings, not {type(self.words).__name__}")
        if not isinstance(array, np.ndarray) or array.dtype != np.float32 or array.ndim != 2:
            raise EmbeddingError(f"vectors must be a 2-d float32 numpy array, not {type(array).__name__}")
        if len(array) != len(self.words):
            raise EmbeddingError(f"{len(array)} vectors for {len(self.words)} words; they must match")

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise EmbeddingError(f"{name} must be an integer >= {minimum}, not {value!r}")


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise EmbeddingError(f"seed must be an integer in 0..{MAX_SEED}, not {seed!r}")


def _check_documents(documents: Any) -> None:
    if not isinstance(documents, list) or not documents or not all(isinstance(d, list) for d in documents):
        raise EmbeddingError("documents must be a non-empty list of token lists")


def parse_source(text: str) -> Source:
    """The source named by `embeddings.source`; a local path is made absolute (Ray workers' cwd differs)."""
    if not isinstance(text, str):
        raise EmbeddingError(f"embeddings source must be a string, not {text!r}; allowed: {ALLOWED_SOURCES}")
    if text in ("random", "word2vec"):
        return Source(text)
    url = urlparse(text)
    if url.scheme in ("http", "https") and url.netloc and url.path.endswith(SUFFIXES):
        return Source("url", text)
    if "://" in text or not text.endswith(SUFFIXES):
        raise EmbeddingError(f"unknown embeddings source {text!r}; allowed: {ALLOWED_SOURCES}")
    path = Path(text).resolve()
    if not path.is_file():
        raise EmbeddingError(f"embeddings file {text!r} does not exist")
    return Source("file", str(path))


def _stable_hash(text: str) -> int:
    """A string hash that is the same in every process, unlike `hash` under PYTHONHASHSEED randomisation."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def train_word2vec(
    documents: list[list[str]], dim: int, window: int, min_count: int, epochs: int, seed: int
) -> WordVectors:
    """Skip-gram vectors (gensim) of the words seen `min_count`+ times, most frequent first.

    Bit-identical for the same input in any process: one worker thread (no scheduling jitter) and a hash
    function that ignores PYTHONHASHSEED (gensim's default is `hash`; Ray workers and the driver differ).
    """
    _check_documents(documents)
    checks = (("dim", dim, 1), ("window", window, 1), ("min_count", min_count, 1), ("epochs", epochs, 1))
    for name, value, minimum in checks:
        _check_int(name, value, minimum)
    _check_seed(seed)
    from gensim.models import Word2Vec  # imported here: only word2vec sources pay its import time

    model = Word2Vec(
        vector_size=dim,
        window=window,
        min_count=min_count,
        epochs=epochs,
        seed=seed,
        sg=1,
        workers=1,
        hashfxn=_stable_hash,  # gensim 4.4 seeds initial vectors from `seed` alone; older ones used this
    )
    model.build_vocab(documents)
    if not model.wv.index_to_key:
        raise EmbeddingError(f"no word occurs min_count={min_count} times in the corpus; lower min_count")
    model.train(documents, total_examples=model.corpus_count, epochs=epochs)
    return WordVectors(list(model.wv.index_to_key), np.array(model.wv.vectors, dtype=np.float32))


@contextmanager
def _open_lines(path: Path) -> Iterator[Iterable[str]]:
    """The text lines of a `.vec` file, or of the one `.vec` file inside a `.zip`."""
    if not path.name.endswith(".zip"):
        with path.open(encoding="utf-8", errors="replace") as lines:
            yield lines
        return
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise EmbeddingError(f"embeddings file {str(path)!r} is not a valid zip archive") from None
    with archive:
        members = [name for name in archive.namelist() if name.endswith(".vec")]
        if len(members) != 1:
            raise EmbeddingError(f"{str(path)!r} must hold exactly one .vec file; it holds {members}")
        with archive.open(members[0]) as raw:
            yield io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


def read_vec(path: str | Path, keep: set[str] | None, dim: int) -> WordVectors:
    """The vectors of the words in `keep` (every word when None) from a fastText `.vec` or `.vec.zip` file.

    The format: an optional "count dim" header, then `word v1 ... vdim` lines. Lines of another width are
    skipped; of a repeated word the first line wins. Only kept words are parsed, so a 1M-word file is cheap.
    """
    path = Path(path)
    _check_int("dim", dim, 1)
    if not path.is_file():
        raise EmbeddingError(f"embeddings file {str(path)!r} does not exist")
    words: list[str] = []
    rows: list[np.ndarray] = []
    seen: set[str] = set()
    found, matched = None, 0  # the width of the first vector line; lines of width `dim`
    with _open_lines(path) as lines:
        for number, line in enumerate(lines, 1):
            word, _, rest = line.rstrip().partition(" ")
            width = rest.count(" ") + 1 if rest else 0
            if number == 1 and width == 1 and word.isdigit() and rest.isdigit():  # the "count dim" header
                if int(rest) != dim:
                    found = int(rest)
                    break
                continue
            if width != dim:
                found = width if found is None else found
                continue
            matched += 1
            if (keep is None or word in keep) and word not in seen:
                try:
                    rows.append(np.array(rest.split(" "), dtype=np.float32))
                except ValueError:
                    raise EmbeddingError(
                        f"embeddings file {str(path)!r} line {number}: not numbers"
                    ) from None
                words.append(word)
                seen.add(word)
    if matched == 0:
        holds = "no vectors" if found is None else f"{found}-d vectors"
        raise EmbeddingError(f"embeddings file {str(path)!r} holds {holds}; expected {dim}-d (the embed_dim)")
    return WordVectors(words, np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32))


def _download_error(url: str, error: Exception) -> EmbeddingError:
    reason = error.reason if type(error) is urllib.error.URLError else error
    return EmbeddingError(
        f"could not download embeddings from {url}: {str(reason) or type(error).__name__}; "
        "pass a local .vec file as embeddings.source or use word2vec"
    )


def fetch(url: str, cache_dir: str | Path, timeout: float = DOWNLOAD_TIMEOUT) -> Path:
    """The local copy of `url` in `cache_dir`, downloaded only if it is not there yet.

    The file name is a hash of the URL plus the URL's file name. The download streams into a temporary file
    that is renamed into place when complete, so an interrupted download never looks like a finished one;
    `cache_dir` is created only once the server answers, so an unreachable one leaves nothing behind.
    `timeout`: seconds to wait for the server at each step (connecting, each read).
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise EmbeddingError(f"embeddings URL {url!r} is not an http(s)://HOST/... URL")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise EmbeddingError(f"download timeout must be a number of seconds > 0, not {timeout!r}")
    cache_dir = Path(cache_dir)
    target = cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{Path(parsed.path).name}"
    if target.is_file():
        return target
    log.info("downloading %s to %s", url, target)
    partial = None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            cache_dir.mkdir(parents=True, exist_ok=True)
            handle, partial = tempfile.mkstemp(dir=cache_dir, prefix=".partial-")
            with os.fdopen(handle, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        os.replace(partial, target)
    except (OSError, http.client.HTTPException) as error:  # URLError, HTTPError and timeouts are OSErrors
        raise _download_error(url, error) from None
    finally:
        if partial is not None:
            Path(partial).unlink(missing_ok=True)
    return target


def corpus_fingerprint(documents: list[list[str]]) -> str:
    """A hash of the documents' tokens in order, document boundaries included; streamed, no corpus copy."""
    _check_documents(documents)
    digest = hashlib.blake2b(digest_size=16)
    for document in documents:
        digest.update("\x1f".join(document).encode())
        digest.update(b"\x1e")  # the tokenizer drops whitespace, so neither separator occurs inside a token
    return digest.hexdigest()


def cache_key(source: Source, settings: Mapping[str, Any], corpus_fingerprint: str) -> str:
    """The name of a build in the cache: a hash of what decides its vectors (source, settings, corpus)."""
    if not isinstance(source, Source) or not isinstance(settings, Mapping):
        raise EmbeddingError("cache_key needs a Source and a mapping of settings")
    identity = {"source": asdict(source), "settings": dict(settings), "corpus": corpus_fingerprint}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _filesystem(store_uri: str) -> tuple[Any, str]:
    """The pyarrow filesystem of a local folder or storage URI (s3://, gs://), and the folder's path in it."""
    from pyarrow import fs

    if not isinstance(store_uri, str) or not store_uri:
        raise EmbeddingError(f"embeddings store must be a folder or storage URI, not {store_uri!r}")
    filesystem, root = fs.FileSystem.from_uri(
        store_uri if "://" in store_uri else Path(store_uri).resolve().as_uri()
    )
    return filesystem, root.rstrip("/")


def _store(store_uri: str, key: str) -> tuple[Any, str]:
    """The store's filesystem and the path prefix of the entry `key` in it."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise EmbeddingError(f"cache key must be 16 hex digits from cache_key, not {key!r}")
    filesystem, root = _filesystem(store_uri)
    return filesystem, f"{root}/{key}"


def _write_atomic(filesystem: Any, path: str, payload: bytes) -> None:
    """Write to a temporary name, then move into place: a reader never sees a partial file."""
    partial = f"{path}.partial-{uuid.uuid4().hex}"
    try:
        with filesystem.open_output_stream(partial) as stream:
            stream.write(payload)
        filesystem.move(partial, path)
    except BaseException:
        with suppress(OSError):  # the partial file may never have been created
            filesystem.delete_file(partial)
        raise


def save_cached(store_uri: str, key: str, vectors: WordVectors, metadata: dict[str, Any]) -> None:
    """Store `<key>.npz` (words, vectors) and then `<key>.json` (metadata), which marks the entry complete."""
    if not isinstance(vectors, WordVectors) or not isinstance(metadata, dict):
        raise EmbeddingError("save_cached needs WordVectors and a metadata dict")
    filesystem, prefix = _store(store_uri, key)
    filesystem.create_dir(prefix.rsplit("/", 1)[0], recursive=True)
    buffer = io.BytesIO()
    np.savez(buffer, words=np.array(vectors.words, dtype=str), vectors=vectors.vectors)
    _write_atomic(filesystem, f"{prefix}.npz", buffer.getvalue())
    _write_atomic(filesystem, f"{prefix}.json", json.dumps(metadata, indent=2, sort_keys=True).encode())


def load_cached(store_uri: str, key: str) -> tuple[WordVectors, dict[str, Any]] | None:
    """The vectors and metadata stored under `key`, or None if there is no complete entry.

    An entry that exists but does not load is an error naming the file, not a silent rebuild: writes are
    atomic, so it means the store was damaged from outside, which a rebuild would hide.
    """
    from pyarrow import fs

    filesystem, prefix = _store(store_uri, key)
    if filesystem.get_file_info(f"{prefix}.json").type != fs.FileType.File:
        return None
    location = f"{store_uri.rstrip('/')}/{key}"
    try:
        with filesystem.open_input_stream(f"{prefix}.json") as stream:
            metadata = json.loads(stream.read())
        if not isinstance(metadata, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        raise EmbeddingError(
            f"cached embeddings file {location}.json does not load ({error}); delete it"
        ) from None
    try:
        with filesystem.open_input_stream(f"{prefix}.npz") as stream:
            archive = np.load(io.BytesIO(stream.read()), allow_pickle=False)
        vectors = WordVectors(archive["words"].tolist(), archive["vectors"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise EmbeddingError(
            f"cached embeddings file {location}.npz does not load ({message}); delete it and its .json"
        ) from None
    return vectors, metadata


def download_dir(store_uri: str) -> Path:
    """Where URL sources are downloaded: `<store>/downloads` for a local store, else LOCAL_DOWNLOADS."""
    from pyarrow import fs

    filesystem, root = _filesystem(store_uri)
    return Path(root) / "downloads" if isinstance(filesystem, fs.LocalFileSystem) else LOCAL_DOWNLOADS


def build_vectors(
    source: Source, documents: list[list[str]], dim: int, settings: Word2VecSettings, store_uri: str
) -> tuple[WordVectors | None, dict[str, Any]]:
    """The initial vectors for `source`, for the sweep driver to build once (in a Ray task) before trials.

    random: None (the model keeps its own initialisation). file or url: the vectors of the words in
    `documents`, a URL downloaded once into `download_dir(store_uri)`. word2vec: trained on `documents` with
    `settings`, or loaded from the store if this corpus and these settings were built before.
    info: source, key (word2vec only), cached (loaded rather than trained), words, seconds (this call).
    """
    if not isinstance(source, Source) or not isinstance(settings, Word2VecSettings):
        raise EmbeddingError("build_vectors needs a Source (see parse_source) and Word2VecSettings")
    _check_int("dim", dim, 1)
    _check_documents(documents)
    start = time.perf_counter()
    key, cached = None, False
    if source.kind == "random":
        vectors = None
    elif source.kind in ("file", "url"):
        path = fetch(source.location, download_dir(store_uri)) if source.kind == "url" else source.location
        vectors = read_vec(path, {word for document in documents for word in document}, dim)
    else:
        identity = {"dim": dim, **asdict(settings), "gensim": version("gensim")}
        key = cache_key(source, identity, corpus_fingerprint(documents))
        hit = load_cached(store_uri, key)
        cached = hit is not None
        if hit is not None:
            vectors = hit[0]
        else:
            trained = time.perf_counter()
            vectors = train_word2vec(documents, dim, **asdict(settings))
            metadata = {
                "source": source.kind,
                "settings": identity,
                "seconds": round(time.perf_counter() - trained, 3),
                "documents": len(documents),
                "tokens": sum(len(document) for document in documents),
                "words": len(vectors.words),
            }
            save_cached(store_uri, key, vectors, metadata)
    info = {
        "source": source.location or source.kind,
        "key": key,
        "cached": cached,
        "words": 0 if vectors is None else len(vectors.words),
        "seconds": round(time.perf_counter() - start, 3),
    }
    return vectors, info


def embedding_matrix(
    vectors: WordVectors, vocab: list[str], dim: int, seed: int, token_counts: Mapping[str, int]
) -> tuple[torch.Tensor, dict[str, float]]:
    """The model's initial embedding matrix [V, dim], and how much of it the vectors cover.

    Rows of words with a vector get it; the others keep N(0, 1) draws from a generator seeded with `seed`
    (drawn for all rows, so a row's draw does not depend on which others are covered). <pad> (row 0) is
    zero, <unk> (row 1) random. coverage: "vocab" = share of vocabulary words (not <pad>, <unk>) with a
    vector; "tokens" = share of the tokens counted in `token_counts` (e.g. the training split's) whose row
    is a vector, so frequent words weigh more; a word outside `vocab` reads as <unk> and counts as uncovered.
    """
    if not isinstance(vectors, WordVectors):
        raise EmbeddingError(f"vectors must be WordVectors, not {type(vectors).__name__}")
    _check_int("dim", dim, 1)
    _check_seed(seed)
    if vectors.dim != dim:
        raise EmbeddingError(f"vectors are {vectors.dim}-d; expected {dim}-d (the embed_dim)")
    if not isinstance(vocab, list):
        raise EmbeddingError(f"vocab must be a list of words, not {type(vocab).__name__}")
    if vocab[:2] != ["<pad>", "<unk>"] or len(vocab) < 3:
        raise EmbeddingError(f"vocab must be ['<pad>', '<unk>', word, ...], not one starting {vocab[:3]!r}")
    if not isinstance(token_counts, Mapping) or any(
        isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in token_counts.values()
    ):
        raise EmbeddingError("token_counts must map words to counts >= 0")
    total = sum(token_counts.values())
    if total == 0:
        raise EmbeddingError("token_counts counts no tokens; pass the training split's token counts")
    import torch  # imported here: see the module docstring

    from trainables.data import PAD, UNK  # which imports torch

    row_of = {word: row for row, word in enumerate(vectors.words)}
    covered = {index: row_of[word] for index, word in enumerate(vocab) if index > UNK and word in row_of}
    matrix = torch.randn(len(vocab), dim, generator=torch.Generator().manual_seed(seed))
    if covered:
        matrix[list(covered)] = torch.from_numpy(vectors.vectors[list(covered.values())])
    matrix[PAD] = 0.0
    covered_words = {vocab[index] for index in covered}
    coverage = {
        "vocab": len(covered) / (len(vocab) - 2),
        "tokens": sum(count for word, count in token_counts.items() if word in covered_words) / total,
    }
    return matrix, coverage
