"""Text-free (private) indexes: a benchmark owner lets others check their data without publishing the
test set.

``export_private`` rebuilds an index's n-gram and MinHash layers over a **keyed** vocabulary: each
token becomes an 8-byte BLAKE2b hash keyed with a secret salt, and the n-gram hashes and MinHash
signatures are computed over those ids. The exported folder holds no test text: no parts text, no
vocabulary words, no mined templates (curated templates, which are public, are kept). Findings
against it name the benchmark, the item id and the part; the owner resolves ids to items with the
full index (``decontam report FINDINGS --index FULL_INDEX``).

What it still reveals is written out in ``PRIVATE_INDEX_REVEALS`` and in the manifest.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import polars as pl

from .errors import ParameterError
from .index import Index
from .layers import ArtifactLayer, MinHashLayer, NgramLayer
from .ngrams import KeyedVocabulary, build_vocabulary, encode_batch, token_key

PRIVATE_INDEX_REVEALS = [
    "benchmark names, sources and revisions, item ids and subsets, the names of each item's parts and their length in words",
    "the number of distinct words in the test set (not the words)",
    "to anyone holding the salt: whether a guessed word, n-gram or text is in the test set (a dictionary check), "
    "and an estimate of how similar a guessed text is to an item (MinHash signatures); with the salt and enough guesses, "
    "parts of the text can be reconstructed word by word",
    "curated instruction templates (public phrases), in full",
]


def export_private(index: Index, out: str | Path, *, salt: bytes | None = None, keep_salt: bool = False) -> tuple[Index, bytes]:
    """Write a text-free copy of ``index`` to ``out``. Returns the new index and the salt.

    ``keep_salt``: the salt is not stored in the index; the owner gives it only to those allowed to
    scan (who then pass ``--salt``), so the public cannot run dictionary checks. Otherwise the salt is
    stored, and anyone can scan (and run dictionary checks on guessed text).
    """
    if index.manifest.get("private"):
        raise ParameterError(f"{index.path} is already a private index", "export from the full index")
    texts = index.parts["text"].to_list()
    if any(t is None for t in texts):
        raise ParameterError(f"{index.path} holds no test text to export from", "export from the full index")
    salt = salt if salt is not None else os.urandom(32)
    if len(salt) < 16:
        raise ParameterError("the salt is shorter than 16 bytes", "use 32 random bytes (the default)")
    keys = np.unique(np.array([token_key(t, salt) for t in build_vocabulary(texts)], dtype=np.uint64))
    vocabulary = KeyedVocabulary(pl.Series(keys), salt)
    encoded = encode_batch(texts, vocabulary)
    item_no = index.parts.select(pl.struct("benchmark", "item_id").rank("dense")).to_series().to_numpy()
    benchmark = index.parts["benchmark"].to_numpy()
    layers: dict = {}
    if "ngram" in index.layers:
        layers["ngram"] = NgramLayer.build(index.layers["ngram"].params, encoded, item_no, benchmark)
    if "minhash" in index.layers:
        layers["minhash"] = MinHashLayer.build(index.layers["minhash"].params, encoded, item_no, benchmark)
    if "artifact" in index.layers:
        artifact = index.layers["artifact"]
        layers["artifact"] = ArtifactLayer(artifact.params, artifact.templates.filter(pl.col("origin") == "curated"))
    manifest = {k: v for k, v in index.manifest.items() if k != "files"}
    manifest["layers"] = {name: layer.manifest_entry() for name, layer in layers.items()}
    manifest["private"] = {
        "salt": None if keep_salt else salt.hex(),
        "salt_sha256": hashlib.sha256(salt).hexdigest(),
        "exported_from": {"path": str(index.path), "parts_sha256": index.manifest.get("files", {}).get("parts.parquet")},
        "reveals": PRIVATE_INDEX_REVEALS,
    }
    parts = index.parts.with_columns(pl.lit(None, dtype=pl.String).alias("text"))
    private = Index(None, manifest, parts, vocabulary, layers, index.items)
    private.save(Path(out))
    return private, salt


__all__ = ["PRIVATE_INDEX_REVEALS", "export_private"]
