"""Properties of the vectorized n-gram hashing that every layer relies on."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import decontam
from decontam import compiled_tokenizer
from decontam.compiled import kernels
from decontam.layers.ngram import equal_entries, hash_bitmap, in_bitmap
from decontam.normalize import cased_expr, nfkc_expr, nfkc_unsafe_chars
from decontam.ngrams import UNKNOWN_BIT, TokenBatch, build_vocabulary, encode_batch, ngram_hashes, ngram_hashes_at, ngram_hashes_multi
from decontam.scan import ScanOptions

from .conftest import BENCH, DATA, read_jsonl, write_jsonl

# texts as lists of small ids, a few of them unknown tokens (top bit set)
TEXTS = st.lists(st.lists(st.one_of(st.integers(1, 6), st.just(int(UNKNOWN_BIT) | 99)), max_size=12), max_size=6)


@settings(max_examples=60, deadline=None)
@given(texts=TEXTS, n=st.integers(1, 8))
def test_property_hashes_at_positions_equal_the_full_pass(texts, n):
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    batch = TokenBatch(ids=np.array([i for t in texts for i in t], dtype=np.uint64),
                       offsets=np.concatenate(([0], np.cumsum(lengths))).astype(np.int64))
    full = ngram_hashes(batch, n)
    text_of = np.repeat(np.arange(len(batch), dtype=np.int64), batch.lengths)  # every token as (text, start)
    hashes, valid = ngram_hashes_at(batch, text_of, np.arange(len(batch.ids), dtype=np.int64) - batch.offsets[text_of], n)
    starts = batch.offsets[full.text_ix] + full.start  # every n-gram inside one text, with its hash
    assert np.array_equal(hashes[starts], full.hashes)
    assert np.array_equal(valid[starts], full.known)
    inside = np.zeros(len(batch.ids), dtype=bool)
    inside[starts] = True
    assert not valid[~inside].any()  # an n-gram that runs past its text is never valid


def test_short_parts_are_matched_the_same_with_or_without_the_prefix_filter(tmp_path, index):
    """The prefix filter only skips work: short TruthfulQA questions alone, inside a sentence and at
    text ends match exactly as when every short length is hashed at every position."""
    short = [q["Question"] for q in read_jsonl(BENCH / "truthfulqa/TruthfulQA.jsonl.gz") if len(q["Question"].split()) < 8][:60]
    texts = short + [f"So, {q} I wondered." for q in short] + [f"I wondered: {q}" for q in short] + ["nothing to see here at all"]
    layer = index.layers["ngram"]
    assert layer.short_prefixes is not None and len(layer.short_prefixes) > 0
    batch = encode_batch(texts, index.vocabulary)
    with_filter = layer.match(batch, 0.7).sort("text_ix", "part_ix")
    unfiltered = copy.copy(layer)
    unfiltered.short_prefixes = None
    without = unfiltered.match(encode_batch(texts, index.vocabulary), 0.7).sort("text_ix", "part_ix")
    assert with_filter.height >= len(short) and with_filter.equals(without)


# Text to tokenize: ASCII words and punctuation, capitals, markup the normalizer removes, curly
# quotes, accents and combining marks, CJK and Hangul (one token per character), fullwidth digits,
# ligatures, NBSP and zero-width characters, an emoji and a CJK character outside the BMP, and what
# NFKC composes or folds (conjoining jamo, a mathematical letter, superscripts, the Ångström sign).
PIECES = st.sampled_from([
    "the", "Cat", "cats", "42", "x1", "naïve", "cafe\u0301", "Straße", "ＡＢＣ１２", "ﬁne", "漢字", "한국어", "かな",
    "𠀀", "😀", "’", "“quoted”", "-", ", ", ". ", "\n", "\u00a0", "\u200b", "<|im_start|>user", "(A) ", "Human: ", "_", "İ",
    "\u1100\u1161", "\u11a8", "ㄱ", "𝑡", "…", "，", "²", "ΣΑΣ", "\u0345", "\u212b", "\u212a",
])
SEPARATORS = st.sampled_from(["", "", " ", "\n"])  # pieces often run together: "漢a", "42naïve"
FOLDED_TEXTS = st.lists(st.lists(st.tuples(PIECES, SEPARATORS).map("".join), max_size=12).map("".join), min_size=1, max_size=8)
needs_numba = pytest.mark.skipif(kernels() is None, reason="numba is not installed")


@needs_numba
@settings(max_examples=150, deadline=None)
@given(texts=FOLDED_TEXTS, known=st.lists(PIECES, max_size=10))
def test_property_compiled_tokenizer_gives_the_polars_tokens_and_ids(texts, known):
    """Same tokens, token counts and known ids as the polars path; an unknown token gets one id
    wherever it occurs (its hash), different from every other token's."""
    vocabulary = pl.Series(build_vocabulary(known + ["the", "cat"]))
    compiled = encode_batch(texts, vocabulary, keep_tokens=True)
    assert compiled.spans is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DECONTAM_NUMBA", "0")
        reference = encode_batch(texts, vocabulary, keep_tokens=True)
    assert reference.spans is None
    assert np.array_equal(compiled.offsets, reference.offsets)
    assert compiled.token_strings().to_list() == reference.tokens.to_list()
    known_compiled, known_reference = compiled.ids < UNKNOWN_BIT, reference.ids < UNKNOWN_BIT
    assert np.array_equal(known_compiled, known_reference)
    assert np.array_equal(compiled.ids[known_compiled], reference.ids[known_reference])
    pairs = set(zip(compiled.token_strings().to_list(), compiled.ids.tolist()))
    assert len(pairs) == len({token for token, _ in pairs}) == len({i for _, i in pairs})
    take = ~known_compiled
    assert compiled.token_strings(take).to_list() == reference.tokens.filter(pl.Series(take)).to_list()


@needs_numba
def test_compiled_and_polars_scans_find_the_same(tmp_path, index, monkeypatch):
    """Real preference pairs with their MT-Bench and Arena-Hard prompts, non-English rows and curly
    quotes, plus planted items: the same findings table either way, every layer."""
    rows = read_jsonl(DATA / "corpora/auto_j/testdata_pairwise.jsonl.gz")[:400]
    rows += [{"prompt": f"“{q['question']}”", "chosen": "Bien sûr : 漢字 ﬁne"} for q in read_jsonl(BENCH / "gsm8k/test.jsonl.gz")[:20]]
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    compiled = decontam.scan(str(corpus), index=index, options=ScanOptions(methods=("ngram", "minhash", "artifact")))
    monkeypatch.setenv("DECONTAM_NUMBA", "0")
    reference = decontam.scan(str(corpus), index=index, options=ScanOptions(methods=("ngram", "minhash", "artifact")))
    assert compiled.findings.height >= 40
    assert compiled.findings.equals(reference.findings)


@needs_numba
def test_compiled_lookup_compares_bytes_not_only_hashes():
    """A token whose hash equals a vocabulary token's (forged here: a collision of 64-bit hashes is
    too rare to meet) is still unknown unless its bytes are the same."""
    vocabulary = pl.Series(["cat", "dog"])
    table = compiled_tokenizer.vocabulary_table(vocabulary)

    def fnv1a(token: str) -> int:
        h = 0xCBF29CE484222325
        for byte in token.encode():
            h = ((h ^ byte) * 0x100000001B3) % 2**64
        return h

    saved = table.slot_hash.copy(), table.slot_id.copy()
    forged = fnv1a("cow")  # as long as "cat", so only the bytes tell them apart
    slot = ((forged * 0x9E3779B97F4A7C15) % 2**64) >> (64 - table.bits)
    table.slot_hash[:], table.slot_id[:] = 0, 0
    table.slot_hash[slot], table.slot_id[slot] = forged, 1  # "cat" (id 1) filed under the hash of "cow"
    try:
        ids = encode_batch(["cow cat"], vocabulary).ids
        assert ids[0] >= UNKNOWN_BIT and ids[1] >= UNKNOWN_BIT  # not "cat"; and "cat" is not where its hash says
    finally:
        table.slot_hash[:], table.slot_id[:] = saved
    assert encode_batch(["cow cat"], vocabulary).ids[1] == 1


@needs_numba
@settings(max_examples=60, deadline=None)
@given(texts=TEXTS, sizes=st.lists(st.integers(1, 9), min_size=1, max_size=3),
       index_hashes=st.lists(st.integers(0, 2**64 - 1), max_size=300))
def test_property_compiled_ngram_hashes_and_bitmaps_equal_numpy(texts, sizes, index_hashes):
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    batch = TokenBatch(ids=np.array([i for t in texts for i in t], dtype=np.uint64),
                       offsets=np.concatenate(([0], np.cumsum(lengths))).astype(np.int64))
    bitmap = hash_bitmap(np.array(index_hashes, dtype=np.uint64))
    compiled = ngram_hashes_multi(batch, sizes)
    compiled_hits = {n: in_bitmap(bitmap, g.hashes) for n, g in compiled.items()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DECONTAM_NUMBA", "0")
        assert np.array_equal(hash_bitmap(np.array(index_hashes, dtype=np.uint64)), bitmap)
        reference = ngram_hashes_multi(batch, sizes)
        reference_hits = {n: in_bitmap(bitmap, g.hashes) for n, g in reference.items()}
    assert sorted(compiled) == sorted(reference) == sorted(set(sizes))
    for n in reference:
        for name in ("hashes", "text_ix", "start", "known"):
            assert np.array_equal(getattr(compiled[n], name), getattr(reference[n], name)), (n, name)
        assert np.array_equal(compiled_hits[n], reference_hits[n])
    assert in_bitmap(bitmap, np.array(index_hashes, dtype=np.uint64)).all()


def test_nfkc_is_skipped_only_for_text_it_leaves_as_it_is():
    """Every Basic Multilingual Plane character that ``nfkc_unsafe_chars`` lets through, alone, after
    letters that take accents and next to a Hangul jamo, and 50,000 random pairs of them, lower-cased
    as a scan does, come out of NFKC unchanged."""
    unsafe = nfkc_unsafe_chars()
    safe = np.flatnonzero(~unsafe[:0x10000])
    safe = safe[(safe < 0xD800) | (safe > 0xDFFF)]
    pairs = np.random.default_rng(0).choice(safe, size=(50_000, 2))
    contexts = ["x{}y", "a{}", "e{}", "\u1100{}", "{}\u1161"]
    texts = [context.format(chr(c)) for context in contexts for c in safe] + [chr(a) + chr(b) for a, b in pairs]
    cased = pl.DataFrame({"text": texts}).select(cased_expr(pl.col("text"))).to_series()
    stays_safe = pl.Series([not unsafe[[ord(ch) for ch in text]].any() for text in cased.to_list()])
    assert stays_safe.sum() > 150_000  # lower-casing rarely brings in a marked character
    kept = cased.filter(stays_safe)
    assert kept.to_frame("text").select(nfkc_expr(pl.col("text"))).to_series().equals(kept, check_names=False)


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.integers(0, 20), max_size=30), queries=st.lists(st.integers(0, 22), max_size=20))
def test_property_equal_entries_finds_every_equal_pair(values, queries):
    sorted_values = np.array(sorted(values), dtype=np.uint64)
    query, entry = equal_entries(sorted_values, np.array(queries, dtype=np.uint64))
    expected = [(q, e) for q, value in enumerate(queries) for e, v in enumerate(sorted_values.tolist()) if v == value]
    assert list(zip(query.tolist(), entry.tolist())) == expected


@needs_numba
def test_kernels_work_where_numba_cannot_cache_them():
    """A read-only install and home leave numba no place for its cache (simulated: only the zip-file
    locator is allowed); the kernels are then compiled in the process instead of failing the scan."""
    code = ("import polars as pl; from decontam.compiled import kernels; from decontam.ngrams import encode_batch; "
            "assert kernels() is not None; print(encode_batch(['hello world'], pl.Series(['hello'])).ids[0])")
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "ZipCacheLocator"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"
