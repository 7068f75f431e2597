"""Token ids and vectorized n-gram hashing over whole batches of texts.

A batch of texts becomes one flat array of token ids plus offsets (CSR layout). Tokens that are in
the index vocabulary get their vocabulary id (1..V); any other token gets a 64-bit hash with the top
bit set, so it never equals a known id and any n-gram containing it is known to match nothing.
n-gram hashes are a polynomial rolling hash over ids, computed with one numpy operation per
position in the n-gram (n operations per batch, not one Python step per n-gram), or where numba is
installed by compiled twins of these loops (``compiled``), which give the same values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from . import compiled_tokenizer
from .compiled import kernels
from .compiled_tokenizer import TokenSpans
from .normalize import ascii_tokens_expr, chunked_frame, tokens_expr

UNKNOWN_BIT = np.uint64(1 << 63)
_P = np.uint64(0x100000001B3)  # FNV-64 prime: odd, mixes well as a polynomial base
SPLITMIX_1, SPLITMIX_2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB  # splitmix64's multipliers
_LENGTH_MIX = 0x9E3779B97F4A7C15  # an n-gram's length is mixed in with this odd constant


@dataclass(frozen=True)
class TokenBatch:
    """Token ids of a batch of texts."""

    ids: np.ndarray  # [n_tokens] uint64; vocabulary id, or hash | UNKNOWN_BIT
    offsets: np.ndarray  # [n_texts + 1] int64; tokens of text i are ids[offsets[i]:offsets[i+1]]
    tokens: pl.Series | None = field(default=None, repr=False, compare=False)  # [n_tokens] token strings, when kept
    spans: TokenSpans | None = field(default=None, repr=False, compare=False)  # or where they are (compiled path)
    _ngrams: dict = field(default_factory=dict, repr=False, compare=False)

    def ngrams(self, sizes: Sequence[int]) -> dict[int, NgramHashes]:
        """n-gram hashes of this batch, computed once and shared by every layer that asks."""
        missing = [n for n in sizes if n not in self._ngrams]
        if missing:
            self._ngrams.update(ngram_hashes_multi(self, missing))
        return {n: self._ngrams[n] for n in sizes}

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def has_strings(self) -> bool:
        """Whether ``token_strings`` can answer (encoded with ``keep_tokens``, or by the compiled path)."""
        return self.tokens is not None or self.spans is not None

    def token_strings(self, take: np.ndarray | None = None) -> pl.Series:
        """The strings of the tokens (where ``take``, [n_tokens] bool, is true)."""
        if self.spans is not None:
            return self.spans.strings(take)
        if self.tokens is None:
            raise ValueError("this batch was encoded without keep_tokens=True")
        return self.tokens if take is None else self.tokens.filter(pl.Series(take))

    def select(self, mask: np.ndarray) -> TokenBatch:
        """The texts where ``mask`` ([n_texts] bool) is true, in order."""
        lengths = self.lengths[mask]
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        take = np.repeat(mask, self.lengths)
        return TokenBatch(ids=self.ids[take], offsets=offsets,
                          tokens=self.tokens.filter(pl.Series(take)) if self.tokens is not None else None,
                          spans=self.spans.select(take) if self.spans is not None else None)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """Stateless 64-bit mixer (splitmix64 finalizer); numpy uint64 arithmetic wraps, as intended."""
    with np.errstate(over="ignore"):
        x = x.astype(np.uint64, copy=True)
        x ^= x >> np.uint64(30)
        x *= np.uint64(SPLITMIX_1)
        x ^= x >> np.uint64(27)
        x *= np.uint64(SPLITMIX_2)
        x ^= x >> np.uint64(31)
    return x


def tokenize_frame(texts: Sequence[str]) -> pl.DataFrame:
    """Exploded tokens: one row per token with the index of its text (texts with no token drop out).

    The leading run of all-ASCII texts takes the shorter ASCII pipeline (same tokens, no NFKC and no
    Unicode classes; 15% off tokenization on the throughput corpus): callers that put their ASCII
    texts first (``ascii_first``) get the most from it."""
    texts = list(texts)
    ascii_count = next((i for i, text in enumerate(texts) if not text.isascii()), len(texts))
    pieces = [chunked_frame(texts[:ascii_count]).select(ascii_tokens_expr(pl.col("text")).alias("tok"))]
    if ascii_count < len(texts):
        pieces.append(chunked_frame(texts[ascii_count:]).select(tokens_expr(pl.col("text")).alias("tok")))
    return pl.concat(pieces).with_row_index("text_ix").explode("tok").drop_nulls("tok")


def ascii_first(texts: Sequence[str]) -> list[int]:
    """An order of the texts with the all-ASCII ones first (stable), for ``tokenize_frame``."""
    return sorted(range(len(texts)), key=lambda i: not texts[i].isascii())


def build_vocabulary(texts: Sequence[str]) -> list[str]:
    """Sorted distinct tokens of the texts; a token's id is its position + 1 (0 is never used)."""
    tokens = tokenize_frame(texts).get_column("tok").unique().sort()
    return tokens.to_list()


@dataclass(frozen=True)
class KeyedVocabulary:
    """A vocabulary that holds no words: keyed BLAKE2b hashes of the tokens (8 bytes), sorted; a
    token's id is its hash's position + 1. Used by text-free (private) indexes."""

    keys: pl.Series  # [V] UInt64, sorted
    salt: bytes

    def __len__(self) -> int:
        return len(self.keys)

    def key_tokens(self, tokens: pl.Series) -> pl.Series:
        """Keyed hash of every token (computed once per distinct token)."""
        distinct = tokens.unique()
        keyed = pl.Series([token_key(t, self.salt) for t in distinct.to_list()], dtype=pl.UInt64)
        return tokens.replace_strict(distinct, keyed, return_dtype=pl.UInt64)


def token_key(token: str, salt: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), key=salt, digest_size=8).digest(), "little")


def encode_batch(texts: Sequence[str], vocabulary: pl.Series | KeyedVocabulary, *, keep_tokens: bool = False) -> TokenBatch:
    """Tokenize and map tokens to ids. ``vocabulary`` is the index's token list (id = position + 1), or
    a ``KeyedVocabulary``. ``keep_tokens`` keeps the token strings for layers that need them (the
    artifact layer's slots).

    Where numba is installed the tokens are cut and looked up in compiled code (``compiled_tokenizer``:
    the same ids, ~2x faster), which always keeps where each token is (``spans``); otherwise, and
    for keyed vocabularies, with polars."""
    if isinstance(vocabulary, pl.Series) and kernels() is not None:
        texts = list(texts)
        ids, counts, spans = compiled_tokenizer.encode_folded(compiled_tokenizer.fold(texts), vocabulary)
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return TokenBatch(ids=ids, offsets=offsets, spans=spans)
    return encode_tokens(tokenize_frame(texts), len(texts), vocabulary, keep_tokens=keep_tokens)


def encode_tokens(exploded: pl.DataFrame, n_texts: int, vocabulary: pl.Series | KeyedVocabulary, *,
                  keep_tokens: bool = False) -> TokenBatch:
    """``encode_batch`` for texts already tokenized by ``tokenize_frame``."""
    known_ids = pl.Series("id", np.arange(1, len(vocabulary) + 1, dtype=np.uint64))
    if isinstance(vocabulary, KeyedVocabulary):
        exploded = exploded.with_columns(vocabulary.key_tokens(exploded["tok"]).alias("key"))
        lookup, table = pl.col("key"), vocabulary.keys
    else:
        lookup, table = pl.col("tok"), vocabulary
    # Polars' hash is stable within one process, which is all an unknown token needs: it only has to
    # differ from known ids and from other unknown tokens of the same scan.
    ids = exploded.select(
        lookup
        .replace_strict(table, known_ids, default=None, return_dtype=pl.UInt64)
        .fill_null(pl.col("tok").hash(seed=7) | int(UNKNOWN_BIT))
    ).to_series().to_numpy()
    counts = np.bincount(exploded.get_column("text_ix").to_numpy(), minlength=n_texts)
    offsets = np.zeros(n_texts + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return TokenBatch(ids=ids.astype(np.uint64, copy=False), offsets=offsets,
                      tokens=exploded.get_column("tok") if keep_tokens else None)


@dataclass(frozen=True)
class NgramHashes:
    """All n-grams of one size in a batch."""

    hashes: np.ndarray  # [m] uint64
    text_ix: np.ndarray  # [m] int64; which text each n-gram is in
    start: np.ndarray  # [m] int64; token position of the n-gram inside its text
    known: np.ndarray  # [m] bool; False when an unknown token is inside (can match nothing)


def ngram_hashes(batch: TokenBatch, n: int) -> NgramHashes:
    """Hashes of every run of ``n`` consecutive tokens that lies inside one text."""
    return ngram_hashes_multi(batch, [n])[n]


def ngram_hashes_at(batch: TokenBatch, text_ix: np.ndarray, start: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the ``n``-grams that start at token ``start`` of text ``text_ix`` (the values
    ``ngram_hashes`` gives them), and whether each lies inside its text with no unknown token; for a
    few positions this is much cheaper than hashing every n-gram of the batch."""
    valid = start + n <= batch.lengths[text_ix]
    positions = batch.offsets[text_ix] + start
    last = max(len(batch.ids) - 1, 0)
    h = np.zeros(len(positions), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            token = batch.ids[np.minimum(positions + k, last)]
            valid &= token < UNKNOWN_BIT
            h = h * _P + splitmix64(token)
    return _finish(h, n), valid


def ngram_hashes_multi(batch: TokenBatch, sizes: Sequence[int]) -> dict[int, NgramHashes]:
    """n-gram hashes for several sizes in one pass: the rolling hash of the first L tokens is
    extended by one token per step, and each wanted size is finished (length mixed in) on the way.
    (Where numba is installed, a compiled loop computes the same values, one size at a time.)"""
    compiled = kernels()
    if compiled is not None:
        return {n: NgramHashes(*compiled.ngram_hashes(batch.ids, batch.offsets, n)) for n in sorted(set(sizes))}
    ids = batch.ids
    total = len(ids)
    wanted = sorted(set(sizes))
    out: dict[int, NgramHashes] = {}
    empty = np.zeros(0, dtype=np.int64)
    for n in wanted:
        if total < n:
            out[n] = NgramHashes(np.zeros(0, dtype=np.uint64), empty, empty, np.zeros(0, dtype=bool))
    wanted = [n for n in wanted if total >= n]
    if not wanted:
        return out
    mixed = splitmix64(ids)
    text_of = np.repeat(np.arange(len(batch), dtype=np.int64), batch.lengths)
    position = np.arange(total, dtype=np.int64) - batch.offsets[text_of]
    unknown_before = np.concatenate(([0], np.cumsum(ids >= UNKNOWN_BIT)))
    h = np.zeros(total, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for length in range(1, wanted[-1] + 1):
            count = total - length + 1
            rolling = h[:count]  # a view: the hash of tokens [i, i + length) is built in place
            rolling *= _P
            rolling += mixed[length - 1 : length - 1 + count]
            if length in wanted:
                inside = np.flatnonzero(text_of[:count] == text_of[length - 1 : length - 1 + count])
                known = (unknown_before[inside + length] - unknown_before[inside]) == 0
                out[length] = NgramHashes(hashes=_finish(rolling[inside], length), text_ix=text_of[inside],
                                          start=position[inside], known=known)
    return out



def _finish(rolling: np.ndarray, n: int) -> np.ndarray:
    """An n-gram's hash from its rolling polynomial hash: the length mixed in, then splitmix64."""
    with np.errstate(over="ignore"):
        return splitmix64(rolling + np.uint64(n) * np.uint64(_LENGTH_MIX))
