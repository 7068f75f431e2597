"""Token ids and vectorized n-gram hashing over whole batches of texts.

A batch of texts becomes one flat array of token ids plus offsets (CSR layout). Tokens that are in
the index vocabulary get their vocabulary id (1..V); any other token gets a 64-bit hash with the top
bit set, so it never equals a known id and any n-gram containing it is known to match nothing.
n-gram hashes are a polynomial rolling hash over ids, computed with one numpy operation per
position in the n-gram (n operations per batch, not one Python step per n-gram).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from .normalize import tokens_expr

UNKNOWN_BIT = np.uint64(1 << 63)
_P = np.uint64(0x100000001B3)  # FNV-64 prime: odd, mixes well as a polynomial base


@dataclass(frozen=True)
class TokenBatch:
    """Token ids of a batch of texts."""

    ids: np.ndarray  # [n_tokens] uint64; vocabulary id, or hash | UNKNOWN_BIT
    offsets: np.ndarray  # [n_texts + 1] int64; tokens of text i are ids[offsets[i]:offsets[i+1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1


def splitmix64(x: np.ndarray) -> np.ndarray:
    """Stateless 64-bit mixer (splitmix64 finalizer); numpy uint64 arithmetic wraps, as intended."""
    with np.errstate(over="ignore"):
        x = x.astype(np.uint64, copy=True)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def tokenize_frame(texts: Sequence[str]) -> pl.DataFrame:
    """Exploded tokens: one row per token with the index of its text (texts with no token drop out)."""
    frame = pl.DataFrame({"text": list(texts)}, schema={"text": pl.String})
    return (
        frame.select(tokens_expr(pl.col("text")).alias("tok"))
        .with_row_index("text_ix")
        .explode("tok")
        .drop_nulls("tok")
    )


def build_vocabulary(texts: Sequence[str]) -> list[str]:
    """Sorted distinct tokens of the texts; a token's id is its position + 1 (0 is never used)."""
    tokens = tokenize_frame(texts).get_column("tok").unique().sort()
    return tokens.to_list()


def encode_batch(texts: Sequence[str], vocabulary: pl.Series) -> TokenBatch:
    """Tokenize and map tokens to ids. ``vocabulary`` is the index's token list (id = position + 1)."""
    exploded = tokenize_frame(texts)
    known_ids = pl.Series("id", np.arange(1, len(vocabulary) + 1, dtype=np.uint64))
    # Polars' hash is stable within one process, which is all an unknown token needs: it only has to
    # differ from known ids and from other unknown tokens of the same scan.
    ids = exploded.select(
        pl.col("tok")
        .replace_strict(vocabulary, known_ids, default=None, return_dtype=pl.UInt64)
        .fill_null(pl.col("tok").hash(seed=7) | int(UNKNOWN_BIT))
    ).to_series().to_numpy()
    counts = np.bincount(exploded.get_column("text_ix").to_numpy(), minlength=len(texts))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return TokenBatch(ids=ids.astype(np.uint64, copy=False), offsets=offsets)


@dataclass(frozen=True)
class NgramHashes:
    """All n-grams of one size in a batch."""

    hashes: np.ndarray  # [m] uint64
    text_ix: np.ndarray  # [m] int64; which text each n-gram is in
    start: np.ndarray  # [m] int64; token position of the n-gram inside its text
    known: np.ndarray  # [m] bool; False when an unknown token is inside (can match nothing)


def ngram_hashes(batch: TokenBatch, n: int) -> NgramHashes:
    """Hashes of every run of ``n`` consecutive tokens that lies inside one text."""
    ids = batch.ids
    total = len(ids)
    if total < n:
        empty = np.zeros(0, dtype=np.int64)
        return NgramHashes(np.zeros(0, dtype=np.uint64), empty, empty, np.zeros(0, dtype=bool))
    count = total - n + 1
    mixed = splitmix64(ids)
    h = np.full(count, n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * _P + mixed[j : j + count]
    h = splitmix64(h)

    text_of = np.repeat(np.arange(len(batch), dtype=np.int64), batch.lengths)
    inside = text_of[:count] == text_of[n - 1 : n - 1 + count]
    unknown_before = np.concatenate(([0], np.cumsum(ids >= UNKNOWN_BIT)))
    known = (unknown_before[n : n + count] - unknown_before[:count]) == 0
    starts = np.arange(count, dtype=np.int64) - batch.offsets[text_of[:count]]
    return NgramHashes(
        hashes=h[inside], text_ix=text_of[:count][inside], start=starts[inside], known=known[inside]
    )


def whole_text_hash(ids: np.ndarray) -> np.uint64:
    """Hash of a whole token sequence, equal to ``ngram_hashes`` of n=len(ids) at its only position."""
    batch = TokenBatch(ids=ids.astype(np.uint64), offsets=np.array([0, len(ids)], dtype=np.int64))
    return ngram_hashes(batch, len(ids)).hashes[0]
