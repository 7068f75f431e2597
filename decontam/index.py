"""The index folder: item parts, vocabulary, layers and a manifest with checksums.

Layout of ``INDEX_DIR``::

    manifest.json        format version, decontam version, normalization, layer parameters,
                         benchmarks (source, revision, counts) and the sha256 of every file below
    parts.parquet        one row per indexed item part: benchmark, subset, item_id, part, kind, text
    items.parquet        every test item: benchmark, item_id, subset (parts too short to index included)
    vocabulary.parquet   the tokens of all parts; a token's id is its row number + 1
                         (vocabulary_keys.npy instead in a private, text-free index: keyed hashes)
    ngram/*.npy          exact n-gram layer
    minhash/*.npy        MinHash layer
    artifact/templates.parquet   mined and curated instruction templates
    embedding/*.npy      embedding layer: fp16 unit vectors (searched with FAISS), lexical first stage

Nothing is pickled: numpy arrays are loaded with ``allow_pickle=False`` and Parquet holds plain
columns (indexes from before 0.1 may hold a ``vectors.faiss`` file, FAISS's own binary format), so
loading an index from someone else cannot run code.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from . import __version__
from .checksums import sha256_file, sha256_files
from .errors import IndexFormatError, InputError, ParameterError
from .layers import ArtifactLayer, ArtifactParams, EmbeddingLayer, EmbeddingParams, MinHashLayer, MinHashParams, NgramLayer, NgramParams
from .layers.artifact import load_curated
from .ngrams import KeyedVocabulary, encode_tokens, tokenize_frame
from .normalize import NORMALIZATION_VERSION
from .testsets import LoadedTestSet, SourceSpec, load_test_set, parse_source
from .types import TestItem

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LAYER_CLASSES = {"ngram": NgramLayer, "minhash": MinHashLayer, "artifact": ArtifactLayer, "embedding": EmbeddingLayer}
# The embedding layer needs torch and a model: built on request (--methods ...,embedding); the shipped
# default index has it, so a default scan uses it where the embed extra is installed.
DEFAULT_METHODS = ("ngram", "minhash", "artifact")
CURATED_TEMPLATES = Path(__file__).resolve().parents[1] / "indexes" / "curated_templates.jsonl"


@dataclass(frozen=True)
class IndexParams:
    """Build-time parameters; stored in the manifest and checked when a scan loads the index."""

    ngram: NgramParams = field(default_factory=NgramParams)
    minhash: MinHashParams = field(default_factory=MinHashParams)
    artifact: ArtifactParams = field(default_factory=ArtifactParams)
    embedding: EmbeddingParams = field(default_factory=EmbeddingParams)
    # Shorter parts ("Paris", "4") match everywhere and are not indexed; parts of 3-4 words ("Are toads
    # frogs?") are, but match only a segment they make up most of (layers/ngram.py).
    min_part_tokens: int = 3
    # Parts that are mostly numbers or symbols ("[1, 2], [1, 3]", "\\frac{1}{2}") match code and
    # arithmetic everywhere: at least this share of a part's tokens must contain a letter, or the part
    # must hold this many distinct words of 3+ letters (HumanEval's `unique` is mostly its example
    # list, "[5, 3, 5, 2, 3, 3, 9, 0, 123]", and was left out whole: a verbatim copy went unflagged).
    min_alpha_share: float = 0.5
    min_distinct_words: int = 6
    # A short reference answer is ordinary text or code ("return sum(range(n + 1))", a textbook
    # recursive Fibonacci): answers need more words than questions before they are indexed.
    min_answer_tokens: int = 12
    methods: tuple[str, ...] = DEFAULT_METHODS

    def validate(self) -> None:
        self.ngram.validate()
        self.minhash.validate()
        self.artifact.validate()
        unknown = set(self.methods) - set(LAYER_CLASSES)
        if unknown or not self.methods:
            raise ParameterError(f"unknown method(s) {sorted(unknown) or '(none given)'}", f"choose from {', '.join(LAYER_CLASSES)}")
        if self.min_part_tokens < 1:
            raise ParameterError(f"min_part_tokens={self.min_part_tokens} must be at least 1", "3 is the default")


class Index:
    """A loaded index: parts table, vocabulary and layers, ready to scan against."""

    def __init__(self, path: Path | None, manifest: dict, parts: pl.DataFrame, vocabulary: pl.Series, layers: dict,
                 items: pl.DataFrame, file_stats: dict[str, list[int]] | None = None):
        self.path = path
        self.file_stats = file_stats or {}  # size and mtime of each file as loaded: workers check they load the same
        self.manifest = manifest
        self.parts = parts
        self.items = items  # every test item (benchmark, item_id, subset), indexed parts or not
        self.vocabulary = vocabulary
        self.layers = layers

    @functools.cached_property
    def part_descriptors(self) -> pl.DataFrame:
        """part_ix and the finding columns that describe a part: benchmark, subset, item_id, item_part, kind."""
        return (self.parts.select("benchmark", "subset", "item_id", pl.col("part").alias("item_part"), "kind")
                .with_row_index("part_ix").with_columns(pl.col("part_ix").cast(pl.Int32)))

    @property
    def methods(self) -> list[str]:
        return list(self.layers)

    @property
    def benchmarks(self) -> list[str]:
        return [b["name"] for b in self.manifest["benchmarks"]]

    def save(self, path: Path) -> None:
        """Write the index to ``path`` (replacing what is there) with checksums in the manifest."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp-build")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        files = []
        self.parts.write_parquet(tmp / "parts.parquet", statistics=False)
        self.items.write_parquet(tmp / "items.parquet", statistics=False)
        files += ["parts.parquet", "items.parquet"]
        if isinstance(self.vocabulary, KeyedVocabulary):
            np.save(tmp / "vocabulary_keys.npy", self.vocabulary.keys.to_numpy())
            files.append("vocabulary_keys.npy")
        else:
            pl.DataFrame({"token": self.vocabulary}).write_parquet(tmp / "vocabulary.parquet", statistics=False)
            files.append("vocabulary.parquet")
        for name, layer in self.layers.items():
            files += layer.save(tmp / name)
        manifest = dict(self.manifest)
        manifest["files"] = {name: sha256_file(tmp / name) for name in sorted(files)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        if path.exists():
            if not (path / MANIFEST).exists() and any(path.iterdir()):
                shutil.rmtree(tmp)
                raise IndexFormatError(f"{path} exists and is not an index folder; refusing to overwrite it",
                                       "choose a new or empty folder")
            shutil.rmtree(path)
        tmp.rename(path)
        self.path = path
        self.manifest = manifest
        self.file_stats = file_stats(path, manifest)


def cache_key(sources: Iterable[str | SourceSpec], params: IndexParams, background: Iterable[str | Path] = (),
              curated_templates: str | Path | None = CURATED_TEMPLATES) -> str | None:
    """Key of an index in a cache folder: the benchmarks' revisions, the parameters, the curated
    templates, the background corpora and this decontam version. None when a source has no fixed
    revision (a hub dataset without ``revision=``): such an index is rebuilt every time."""
    from dataclasses import asdict

    from .testsets import _is_saved_dataset, _local_files

    parts = {"decontam": __version__, "params": asdict(params), "sources": [], "background": [], "curated": None}
    for source in sources:
        spec = parse_source(source) if isinstance(source, str) else source
        if spec.hub:
            if not spec.revision:
                return None
            revision = spec.revision
        else:
            if _is_saved_dataset(Path(spec.location)):
                return None
            revision = sha256_files(_local_files(spec.location))
        parts["sources"].append([spec.name, spec.location, spec.config, spec.split, revision, sorted(dict(spec.field_map).items())])
    parts["background"] = [sha256_file(b) for b in background]
    if curated_templates is not None and Path(curated_templates).exists():
        parts["curated"] = sha256_file(curated_templates)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def build_index_cached(
    path: str | Path,
    sources: list[str | SourceSpec],
    *,
    cache_dir: str | Path,
    params: IndexParams | None = None,
    background: Iterable[str | Path] = (),
    curated_templates: str | Path | None = CURATED_TEMPLATES,
) -> tuple[Index, bool]:
    """``build_index`` through a cache folder keyed by ``cache_key``: a CI job that indexes the same
    benchmark revisions again copies the cached index instead. Returns (index, came from cache)."""
    params = params or IndexParams()
    background = list(background)
    key = cache_key(sources, params, background, curated_templates)
    cached = Path(cache_dir) / key if key else None
    if cached is not None and (cached / MANIFEST).exists():
        try:
            load_index(cached)
        except IndexFormatError:
            shutil.rmtree(cached)  # damaged cache entry: rebuild it
        else:
            target = Path(path)
            if target.exists():
                if not (target / MANIFEST).exists() and any(target.iterdir()):
                    raise IndexFormatError(f"{target} exists and is not an index folder; refusing to overwrite it", "choose a new or empty folder")
                shutil.rmtree(target)
            shutil.copytree(cached, target)
            return load_index(target), True
    index = build_index(path, sources, params=params, background=background, curated_templates=curated_templates)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(cached.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(Path(path), tmp)
        tmp.rename(cached)
    return index, False


def _shared_ids(items: Sequence[TestItem]) -> list[str]:
    """The item ids that more than one item has, in order of first appearance."""
    counts = Counter(item.item_id for item in items)
    return [item_id for item_id, n in counts.items() if n > 1]


def build_index(
    path: str | Path | None,
    sources: Iterable[str | SourceSpec | LoadedTestSet],
    *,
    params: IndexParams | None = None,
    background: Iterable[str | Path] = (),
    curated_templates: str | Path | None = CURATED_TEMPLATES,
    embedder=None,
) -> Index:
    """Load the test sets, build every layer and (when ``path`` is given) save the index there.

    ``background``: corpus files of ordinary text; a phrase frequent there is not a benchmark template.
    ``curated_templates``: JSON Lines of known templates to add to the artifact layer (None: none).
    ``embedder``: an object with ``name``, ``revision``, ``dim``, ``pooling`` and ``encode(texts)``,
    to use instead of loading ``params.embedding.model`` (tests pass a fake one).

    >>> index = build_index("indexes/mine", ["gsm8k=../shared/data/benchmarks/gsm8k/test.jsonl.gz"])  # doctest: +SKIP
    """
    params = params or IndexParams()
    params.validate()
    loaded = [s if isinstance(s, LoadedTestSet) else load_test_set(parse_source(s) if isinstance(s, str) else s) for s in sources]
    if not loaded:
        raise ParameterError("no test set given", "add at least one --source NAME=PATH_OR_HF_ID")
    names = [t.spec.name for t in loaded]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ParameterError(f"benchmark name(s) {dup} given twice", "give each --source its own NAME")

    rows = []
    for item_no, (test_set, item) in enumerate((t, i) for t in loaded for i in t.items):
        for part in item.parts:
            rows.append((item.benchmark, item.subset, item.item_id, part.name, part.kind, part.text, item_no))
    parts = pl.DataFrame(rows, orient="row", schema={
        "benchmark": pl.String, "subset": pl.String, "item_id": pl.String, "part": pl.String,
        "kind": pl.String, "text": pl.String, "item_no": pl.Int64})
    texts = parts["text"].to_list()
    tokens = tokenize_frame(texts)  # the parts are tokenized once; everything below derives from it
    vocabulary = tokens["tok"].unique().sort().rename("token")
    encoded = encode_tokens(tokens, len(texts), vocabulary)
    alpha_share, distinct_words = _letters(tokens, len(texts))
    is_answer = (parts["kind"] == "answer").to_numpy()
    min_tokens = np.where(is_answer, max(params.min_answer_tokens, params.min_part_tokens), params.min_part_tokens)
    keep = (encoded.lengths >= min_tokens) & ((alpha_share >= params.min_alpha_share) | (distinct_words >= params.min_distinct_words))
    parts = parts.with_columns(pl.Series("n_tokens", encoded.lengths))
    short_counts = parts.filter(~pl.Series(keep)).group_by("benchmark").len()
    all_parts = parts
    parts = parts.filter(pl.Series(keep))
    if parts.is_empty():  # (every layer needs something to index)
        raise InputError(f"nothing to index: no part of {', '.join(names)} ({all_parts.height:,} in all) has {params.min_part_tokens}+ words, "
                         "mostly letters", "check which fields hold the items (--map NAME:question=FIELD), or lower --min-part-tokens")
    encoded = encoded.select(keep)
    item_keys = _item_keys(parts, encoded)

    layers: dict = {}
    if "ngram" in params.methods:
        layers["ngram"] = NgramLayer.build(params.ngram, encoded, item_keys, parts["benchmark"].to_numpy())
    if "minhash" in params.methods:
        layers["minhash"] = MinHashLayer.build(params.minhash, encoded, item_keys, parts["benchmark"].to_numpy())
    if "embedding" in params.methods:
        answer_choices = {(i.benchmark, i.item_id): i.answer_choice for t in loaded for i in t.items if i.answer_choice}
        layers["embedding"] = EmbeddingLayer.build(params.embedding, parts, encoded, embedder, answer_choices=answer_choices)
    background_info = []
    if "artifact" in params.methods:
        question_side = all_parts.filter(pl.col("kind") == "item").select("benchmark", "item_no", "item_id", "text")
        background_texts = []
        for file in background:
            texts = _corpus_texts(str(file))
            background_texts += texts
            background_info.append({"source": str(file), "revision": "sha256:" + sha256_file(file), "rows": len(texts)})
        curated = load_curated(Path(curated_templates)) if curated_templates is not None and Path(curated_templates).exists() else []
        layers["artifact"] = ArtifactLayer.build(params.artifact, question_side, background=background_texts, curated=curated)

    skipped = dict(zip(short_counts["benchmark"].to_list(), short_counts["len"].to_list()))
    benchmarks = []
    for test_set in loaded:
        name = test_set.spec.name
        mine = parts.filter(pl.col("benchmark") == name)
        indexed = set(mine["item_id"].to_list())
        unindexed = [item.item_id for item in test_set.items if item.item_id not in indexed]
        benchmarks.append({
            "name": name,
            "source": ("hf:" if test_set.spec.hub else "") + test_set.spec.location,
            "config": test_set.spec.config,
            "split": test_set.spec.split,
            "revision": test_set.revision,
            "field_map": dict(test_set.spec.field_map),
            "items": len(test_set.items),
            "parts": mine.height,
            "parts_by_name": dict(sorted(mine.group_by("part").len().iter_rows())),
            "parts_too_short": int(skipped.get(name, 0)),  # or mostly numbers / symbols
            # items none of whose parts is indexed (all too short): a scan cannot find them
            "items_not_indexed": {"count": len(unindexed), "examples": unindexed[:5]},
            # rows whose item fields are all empty or null: not items (an image-only item, a placeholder)
            "rows_without_text": {"count": len(test_set.rows_without_text), "examples": test_set.rows_without_text[:5]},
            # ids that more than one item has (a copied row, ids restarting per file): their findings look alike
            "duplicate_item_ids": {"count": len(shared := _shared_ids(test_set.items)), "examples": shared[:5]},
        })
    manifest = {
        "format_version": FORMAT_VERSION,
        "decontam_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "normalization": NORMALIZATION_VERSION,
        "min_part_tokens": params.min_part_tokens,
        "min_alpha_share": params.min_alpha_share,
        "min_distinct_words": params.min_distinct_words,
        "min_answer_tokens": params.min_answer_tokens,
        "layers": {name: layer.manifest_entry() for name, layer in layers.items()},
        "background": background_info,
        "benchmarks": benchmarks,
    }
    parts = parts.drop("item_no")
    items = pl.DataFrame([(i.benchmark, i.item_id, i.subset) for t in loaded for i in t.items], orient="row",
                         schema={"benchmark": pl.String, "item_id": pl.String, "subset": pl.String})
    index = Index(None, manifest, parts, vocabulary, layers, items)
    if path is not None:
        index.save(Path(path))
    return index


def _item_keys(parts: pl.DataFrame, encoded) -> np.ndarray:
    """[n_parts] who counts as "another item" when deciding what is boilerplate: the item itself, except
    that items whose parts read the same after normalization (the same token ids) are one. MMLU asks
    "Find the degree for the given field extension Q(sqrt(2), sqrt(3)) over Q." in three items (with +,
    * or a comma); their shared 8-grams are one question repeated, not boilerplate, and must stay
    matchable."""
    starts, ends = encoded.offsets[:-1], encoded.offsets[1:]
    signatures: dict[int, list] = {}
    for item, bench, name, start, end in zip(parts["item_no"].to_list(), parts["benchmark"].to_list(),
                                             parts["part"].to_list(), starts.tolist(), ends.tolist()):
        signatures.setdefault(item, [bench]).append((name, encoded.ids[start:end].tobytes()))
    dense: dict[tuple, int] = {}
    key_of = {item: dense.setdefault((sig[0], *sorted(sig[1:])), len(dense)) for item, sig in signatures.items()}
    return np.array([key_of[item] for item in parts["item_no"].to_list()], dtype=np.int64)


def _corpus_texts(source: str) -> list[str]:
    """All text of a background corpus, one string per record."""
    from .readers import expand_inputs, iter_records, segments_of
    from .types import Record

    texts = []
    for file in expand_inputs([source]):
        for record in iter_records(file):
            if isinstance(record, Record):
                texts.append("\n".join(s.text for s in segments_of(record.data)))
    return texts


def _letters(tokens: pl.DataFrame, n_texts: int) -> tuple[np.ndarray, np.ndarray]:
    """[n] float, [n] int: the share of each text's tokens that contain a letter (0 for a text with no
    token), and how many distinct words of 3+ letters it holds."""
    per_text = tokens.group_by("text_ix").agg(
        pl.col("tok").str.contains(r"\p{L}").mean().alias("share"),
        pl.col("tok").filter(pl.col("tok").str.contains(r"^\p{L}{3,}$")).n_unique().alias("words"))
    share, words = np.zeros(n_texts), np.zeros(n_texts, dtype=np.int64)
    share[per_text["text_ix"].to_numpy()] = per_text["share"].to_numpy()
    words[per_text["text_ix"].to_numpy()] = per_text["words"].to_numpy()
    return share, words


def load_index(path: str | Path, *, verify: bool = True, salt: bytes | None = None) -> Index:
    """Open an index folder, checking its format version and (by default) every file's checksum.

    A private (text-free) index whose owner kept the salt needs ``salt`` to be scanned against."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise IndexFormatError(f"index folder {path} does not exist", "build one with `decontam index build` or drop --index to use the shipped default")
    if not manifest_path.exists():
        raise IndexFormatError(f"{path} is not a decontam index (no {MANIFEST})", "point --index at a folder written by `decontam index build`")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{manifest_path} is not valid JSON: {exc}", "rebuild the index") from exc
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexFormatError(
            f"{path} has index format version {version}; this decontam ({__version__}) reads version {FORMAT_VERSION}",
            "rebuild the index with this decontam version, or install the version that built it",
        )
    if manifest.get("normalization") != NORMALIZATION_VERSION:
        raise IndexFormatError(f"{path} was built with normalization {manifest.get('normalization')!r}, this decontam uses {NORMALIZATION_VERSION!r}",
                               "rebuild the index with this decontam version")
    if verify:
        problems = verify_files(path, manifest)
        if problems:
            raise IndexFormatError(f"index {path} fails its checksums: {'; '.join(problems)}",
                                   "the files were changed or damaged; rebuild the index or fetch it again")
    parts = pl.read_parquet(path / "parts.parquet")
    private = manifest.get("private")
    if private:
        vocabulary = KeyedVocabulary(pl.Series(np.load(path / "vocabulary_keys.npy", allow_pickle=False)),
                                     _private_salt(private, salt, path))
    else:
        vocabulary = pl.read_parquet(path / "vocabulary.parquet")["token"]
    layers = {name: LAYER_CLASSES[name].load(path / name, entry) for name, entry in manifest["layers"].items() if name in LAYER_CLASSES}
    return Index(path, manifest, parts, vocabulary, layers, pl.read_parquet(path / "items.parquet"), file_stats(path, manifest))


def file_stats(path: Path, manifest: dict) -> dict[str, list[int]]:
    """Size and modification time (ns) of every file the manifest lists."""
    out = {}
    for name in manifest.get("files", {}):
        try:
            st = (path / name).stat()
        except OSError:
            continue
        out[name] = [st.st_size, st.st_mtime_ns]
    return out


def check_unchanged(index: Index, stats: dict[str, list[int]]) -> None:
    """A worker that loads ``index`` from disk without hashing it again checks that its files are the
    ones the scan loaded (and verified): same sizes and modification times."""
    changed = [name for name, stat in stats.items() if index.file_stats.get(name) != stat]
    if changed:
        raise IndexFormatError(f"index {index.path} changed after the scan loaded it: {', '.join(f'{name} changed' for name in changed)}",
                               "the files were changed or damaged; rebuild the index or fetch it again")


def _private_salt(private: dict, given: bytes | None, path: Path) -> bytes:
    stored = bytes.fromhex(private["salt"]) if private.get("salt") else None
    salt = given if given is not None else stored
    if salt is None:
        raise IndexFormatError(f"{path} is a private index whose owner kept the salt", "ask the benchmark owner for it and pass --salt-file FILE")
    if hashlib.sha256(salt).hexdigest() != private["salt_sha256"]:
        raise IndexFormatError(f"the salt given for {path} is not the one it was built with", "check the salt the benchmark owner sent")
    return salt


def verify_files(path: Path, manifest: dict) -> list[str]:
    """Problems with the files listed in the manifest: missing, changed, or unlisted layer files."""
    problems = []
    listed = manifest.get("files", {})
    for name, digest in listed.items():
        file = path / name
        if not file.exists():
            problems.append(f"{name} is missing")
        elif sha256_file(file) != digest:
            problems.append(f"{name} changed (sha256 differs from the manifest)")
    for file in sorted(path.rglob("*")):
        rel = file.relative_to(path).as_posix()
        if file.is_file() and rel != MANIFEST and rel not in listed:
            problems.append(f"{rel} is not listed in the manifest")
    return problems


def default_index_path() -> Path:
    """The index that ships with decontam (``indexes/default`` in the repository)."""
    candidate = Path(__file__).resolve().parents[1] / "indexes" / "default"
    if (candidate / MANIFEST).exists():
        return candidate
    raise IndexFormatError("the default index that ships with decontam was not found",
                           "reinstall from the repository (pip install -e .), or pass --index INDEX_DIR")
