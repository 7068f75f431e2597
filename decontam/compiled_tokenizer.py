"""Token ids straight from the bytes of normalized text, in compiled code (numba).

Normalization (markup, case, NFKC) runs in polars for every text; what is left is cutting the folded
text into tokens and looking each up in the index vocabulary. With polars that is a regex extracting
every token as a string and a join on strings, ~60 ns a token and most of a scan's time. The kernel in
``_kernels`` walks the UTF-8 bytes once instead: each character's class (a separator, part
of a run, or a token of its own: CJK) comes from a table that ``normalize.char_classes`` fills with the
token regex itself, each token is hashed (FNV-1a, 64 bits) and looked up in an open-addressing table
of the vocabulary whose bytes are compared, so that a hash collision cannot give a token another's id.
It writes what ``ngrams.encode_tokens`` writes: the vocabulary id, or for a token the vocabulary lacks
its hash with the top bit set; and each token's byte span, from which a layer that needs token strings
(the artifact layer's slots) gets them.

Same tokens and known ids as the polars path (``tests/test_ngrams.py`` checks it on random text),
which ``encode_batch`` takes where ``compiled.kernels()`` is None. Only an unknown token's id differs
(its FNV-1a hash here, polars' hash there): no layer matches on unknown tokens, but a text's MinHash
signature includes its shingles that hold one, so a borderline LSH candidate (Jaccard near 0.5) can
come out differently between the two paths -- as between two polars versions, whose hash may change.
Findings were identical on every corpus compared (benchmarks/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from .compiled import kernels
from .normalize import (ascii_folded_expr, cased_expr, char_classes, chunked_frame, nfkc_expr, nfkc_unsafe_chars,
                        sharp_s_expr)


@dataclass(frozen=True)
class TokenSpans:
    """Where each token of a batch is in the folded text: its strings, on demand."""

    data: np.ndarray  # uint8; the folded texts' UTF-8 bytes
    starts: np.ndarray  # [n_tokens] int64
    ends: np.ndarray  # [n_tokens] int64

    def strings(self, take: np.ndarray | None = None) -> pl.Series:
        """The tokens' strings (where ``take``, [n_tokens] bool, is true)."""
        starts, ends = (self.starts, self.ends) if take is None else (self.starts[take], self.ends[take])
        token_bytes, offsets = kernels().gather(self.data, starts, ends)
        array = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(token_bytes))
        return pl.Series("tok", array, dtype=pl.String)

    def select(self, take: np.ndarray) -> TokenSpans:
        return TokenSpans(self.data, self.starts[take], self.ends[take])


@dataclass(frozen=True)
class VocabularyTable:
    """An index vocabulary (id = position + 1) as an open-addressing hash table."""

    data: np.ndarray  # uint8; the tokens' UTF-8 bytes, one after another
    offsets: np.ndarray  # [V + 1] int64
    slot_hash: np.ndarray  # [2^bits] uint64
    slot_id: np.ndarray  # [2^bits] uint64; 0: an empty slot
    bits: int


_tables: dict[int, tuple[pl.Series, VocabularyTable]] = {}


def vocabulary_table(vocabulary: pl.Series) -> VocabularyTable:
    """The table of a vocabulary, built once per vocabulary object (~10 ms for 40k tokens)."""
    cached = _tables.get(id(vocabulary))
    if cached is not None and cached[0] is vocabulary:
        return cached[1]
    data, offsets = _string_buffers(vocabulary)
    bits = max(10, len(vocabulary).bit_length() + 1)  # at most half of the slots used
    table = VocabularyTable(data, offsets, *kernels().build_table(data, offsets, bits), bits)
    if len(_tables) >= 4:
        _tables.clear()
    _tables[id(vocabulary)] = (vocabulary, table)  # holding the series keeps its id from being reused
    return table


def fold(texts: list[str]) -> pl.Series:
    """``normalize.folded_expr`` of every text, in order, with the steps a text does not need left out:
    all-ASCII texts first (``ascii_first`` puts them there) take ``ascii_folded_expr``; of the rest,
    only those with a character NFKC may change (``nfkc_unsafe_chars``: 5% of the non-ASCII texts of
    the shared corpora, NBSP most often) go through NFKC."""
    ascii_count = next((i for i, text in enumerate(texts) if not text.isascii()), len(texts))
    folded = chunked_frame(texts[:ascii_count]).select(ascii_folded_expr(pl.col("text"))).to_series()
    if ascii_count == len(texts):
        return folded
    cased = chunked_frame(texts[ascii_count:]).select(cased_expr(pl.col("text"))).to_series()
    data, offsets = _string_buffers(cased)
    unsafe = np.flatnonzero(kernels().any_marked(data, offsets, nfkc_unsafe_chars()))
    if len(unsafe):
        normalized = cased.gather(unsafe).to_frame("text").select(nfkc_expr(pl.col("text"))).to_series()
        cased = cased.scatter(unsafe, normalized)
    rest = cased.to_frame("text").select(sharp_s_expr(pl.col("text"))).to_series()
    return pl.concat([folded, rest])


def encode_folded(folded: pl.Series, vocabulary: pl.Series) -> tuple[np.ndarray, np.ndarray, TokenSpans]:
    """(ids, [n_texts] token counts, spans) of texts already folded (``normalize.folded_expr``, or
    ``ascii_folded_expr`` for all-ASCII text)."""
    table = vocabulary_table(vocabulary)
    data, offsets = _string_buffers(folded)
    bound = (len(data) + len(folded)) // 2 + 1  # each token is followed by a separator or the end of its text
    ids = np.empty(bound, dtype=np.uint64)
    starts = np.empty(bound, dtype=np.int64)
    ends = np.empty(bound, dtype=np.int64)
    counts = np.empty(len(folded), dtype=np.int64)
    n = kernels().encode(data, offsets, char_classes(), table.slot_hash, table.slot_id, table.bits, table.data, table.offsets,
                         ids, starts, ends, counts)
    return ids[:n].copy(), counts, TokenSpans(data, starts[:n].copy(), ends[:n].copy())


def _string_buffers(strings: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes and [n + 1] int64 offsets of a string series without nulls."""
    array = strings.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.type != pa.large_string():
        array = array.cast(pa.large_string())
    _, offset_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, dtype=np.uint8)
    return data, offsets
