"""The numba kernels: the tokenizer's (``compiled_tokenizer``), n-gram hashing and bitmap checks
(``ngrams``, ``layers/ngram``). Imported only through ``compiled.kernels()``, where numba is installed;
compiled on first use and cached beside this file (or in numba's user cache where it is read-only;
or not cached, where neither can be written).
Each has a numpy or polars twin that gives the same values (tests/test_ngrams.py compares them)."""

from __future__ import annotations

import numba
import numpy as np

from .ngrams import _LENGTH_MIX, _P, SPLITMIX_1, SPLITMIX_2, UNKNOWN_BIT  # the numpy twins' constants
from .normalize import SEPARATOR, WORD  # the classes of normalize.char_classes


def _jit(function):
    """Compiled on first use and cached on disk; where numba finds no writable place for its cache (a
    read-only install and home), compiled in every process instead (about a second) rather than failing."""
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(nogil=True)(function)


_FNV_OFFSET = 0xCBF29CE484222325  # FNV-1a 64, for token bytes
_FNV_PRIME = 0x100000001B3
_GOLDEN = 0x9E3779B97F4A7C15  # Fibonacci hashing: a token hash's first slot in the vocabulary table


@_jit
def _first_slot(h, bits):
    return (h * np.uint64(_GOLDEN)) >> np.uint64(64 - bits)


@_jit
def build_table(data, offsets, bits):
    """Open addressing with linear probing: slot -> (FNV-1a hash of the token's bytes, id = position + 1)."""
    size = 1 << bits
    mask = np.uint64(size - 1)
    slot_hash = np.zeros(size, dtype=np.uint64)
    slot_id = np.zeros(size, dtype=np.uint64)
    for v in range(len(offsets) - 1):
        h = np.uint64(_FNV_OFFSET)
        for i in range(offsets[v], offsets[v + 1]):
            h = (h ^ np.uint64(data[i])) * np.uint64(_FNV_PRIME)
        s = _first_slot(h, bits)
        while slot_id[s] != 0:
            s = (s + np.uint64(1)) & mask
        slot_hash[s] = h
        slot_id[s] = v + 1
    return slot_hash, slot_id


@_jit
def _char_at(data, i):
    """(code point, byte length) of the UTF-8 character that starts at byte i."""
    b = np.int64(data[i])
    if b < 0x80:
        return b, 1
    if b < 0xE0:
        return ((b & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F), 2
    if b < 0xF0:
        return ((b & 0x0F) << 12) | ((np.int64(data[i + 1]) & 0x3F) << 6) | (np.int64(data[i + 2]) & 0x3F), 3
    return (((b & 0x07) << 18) | ((np.int64(data[i + 1]) & 0x3F) << 12) | ((np.int64(data[i + 2]) & 0x3F) << 6)
            | (np.int64(data[i + 3]) & 0x3F)), 4


@_jit
def encode(data, offsets, char_class, slot_hash, slot_id, bits, vocab_data, vocab_offsets, ids, starts, ends, counts):
    """Tokens of every text (bytes offsets[t]:offsets[t + 1] of data, valid UTF-8): for each, its id
    (vocabulary id, or FNV-1a hash | 2^63) and byte span; counts[t] tokens per text. Returns the count."""
    mask = np.uint64((1 << bits) - 1)
    n = 0
    for t in range(len(offsets) - 1):
        i = offsets[t]
        end = offsets[t + 1]
        first = n
        while i < end:
            cp, width = _char_at(data, i)
            kind = char_class[cp]
            if kind == SEPARATOR:
                i += width
                continue
            j = i + width
            if kind == WORD:
                while j < end:
                    cp, width = _char_at(data, j)
                    if char_class[cp] != WORD:
                        break
                    j += width
            h = np.uint64(_FNV_OFFSET)
            for k in range(i, j):
                h = (h ^ np.uint64(data[k])) * np.uint64(_FNV_PRIME)
            token_id = np.uint64(0)
            s = _first_slot(h, bits)
            while slot_id[s] != 0:
                if slot_hash[s] == h:  # the bytes are compared: a hash collision gives no wrong id
                    v = slot_id[s] - np.uint64(1)
                    lo = vocab_offsets[v]
                    if vocab_offsets[v + np.uint64(1)] - lo == j - i:
                        same = True
                        for k in range(j - i):
                            if vocab_data[lo + k] != data[i + k]:
                                same = False
                                break
                        if same:
                            token_id = slot_id[s]
                            break
                s = (s + np.uint64(1)) & mask
            ids[n] = token_id if token_id != 0 else h | UNKNOWN_BIT
            starts[n] = i
            ends[n] = j
            n += 1
            i = j
        counts[t] = n - first
    return n


@_jit
def gather(data, starts, ends):
    """The bytes of the spans, one after another, and their [n + 1] offsets (an Arrow string array)."""
    offsets = np.empty(len(starts) + 1, dtype=np.int64)
    offsets[0] = 0
    for t in range(len(starts)):
        offsets[t + 1] = offsets[t] + ends[t] - starts[t]
    out = np.empty(offsets[-1], dtype=np.uint8)
    p = 0
    for t in range(len(starts)):
        for k in range(starts[t], ends[t]):
            out[p] = data[k]
            p += 1
    return out, offsets


@_jit
def _splitmix64(x):
    x ^= x >> np.uint64(30)
    x *= np.uint64(SPLITMIX_1)
    x ^= x >> np.uint64(27)
    x *= np.uint64(SPLITMIX_2)
    x ^= x >> np.uint64(31)
    return x


@_jit
def ngram_hashes(ids, offsets, n):
    """``ngrams.ngram_hashes_multi`` for one size: (hashes, text_ix, start, known) of every run of n
    tokens inside one text, in text and position order; the same polynomial (Horner from 0 over the
    mixed ids) and finish."""
    n_texts = len(offsets) - 1
    count = 0
    for t in range(n_texts):
        count += max(0, offsets[t + 1] - offsets[t] - n + 1)
    mixed = np.empty(len(ids), dtype=np.uint64)
    for i in range(len(ids)):
        mixed[i] = _splitmix64(ids[i])
    hashes = np.empty(count, dtype=np.uint64)
    text_ix = np.empty(count, dtype=np.int64)
    start = np.empty(count, dtype=np.int64)
    known = np.empty(count, dtype=np.bool_)
    finish = np.uint64(n) * np.uint64(_LENGTH_MIX)
    k = 0
    for t in range(n_texts):
        lo = offsets[t]
        for p in range(lo, offsets[t + 1] - n + 1):
            h = np.uint64(0)
            ok = True
            for q in range(p, p + n):
                h = h * _P + mixed[q]
                if ids[q] >= UNKNOWN_BIT:
                    ok = False
            hashes[k] = _splitmix64(h + finish)
            text_ix[k] = t
            start[k] = p - lo
            known[k] = ok
            k += 1
    return hashes, text_ix, start, known


@_jit
def fill_bitmap(bitmap, hashes, shift):
    """``layers.ngram.hash_bitmap``: set bit (h >> shift) of the bitmap for every hash."""
    for i in range(len(hashes)):
        s = hashes[i] >> np.uint64(shift)
        bitmap[s >> np.uint64(3)] |= np.uint8(1) << np.uint8(s & np.uint64(7))


@_jit
def in_bitmap(bitmap, hashes, shift):
    """``layers.ngram.in_bitmap``: bit (h >> shift) of the bitmap, for every hash."""
    out = np.empty(len(hashes), dtype=np.bool_)
    for i in range(len(hashes)):
        s = hashes[i] >> np.uint64(shift)
        out[i] = (bitmap[s >> np.uint64(3)] >> (s & np.uint64(7))) & np.uint8(1)
    return out


@_jit
def any_marked(data, offsets, marked):
    """For each text (bytes offsets[t]:offsets[t + 1], UTF-8), whether any of its characters is marked."""
    out = np.zeros(len(offsets) - 1, dtype=np.bool_)
    for t in range(len(offsets) - 1):
        i = offsets[t]
        while i < offsets[t + 1]:
            cp, width = _char_at(data, i)
            if marked[cp]:
                out[t] = True
                break
            i += width
    return out
