"""Properties of the vectorized n-gram hashing that every layer relies on."""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from decontam.ngrams import UNKNOWN_BIT, TokenBatch, encode_batch, ngram_hashes, ngram_hashes_at

from .conftest import BENCH, read_jsonl

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
