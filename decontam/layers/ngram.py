"""Exact n-gram layer: verbatim and lightly edited copies, items inside longer prompts, leaked answers.

Score of (segment, item part) = share of the part's distinct n-grams that occur in the segment, so a
test item pasted inside a long prompt still scores 1.0. Parts shorter than ``ngram_size`` tokens are
matched whole (one "n-gram" of their own length). n-grams that occur in ``boilerplate_min_items`` or
more different test items of one benchmark ("which of the following is not a ...", a shared
instruction suffix, a passage several questions refer to) are dropped from the table and from each
part's denominator: they say nothing about which item leaked. A short part matched whole must be
unique to one item: "Which of the following statements is true?" is the whole question of several
MMLU items and identifies none of them. A part under ``TINY_PART_TOKENS`` words ("Are toads frogs?")
matches only a segment it makes up most of.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ..compiled import kernels
from ..errors import ParameterError
from ..ngrams import TokenBatch, ngram_hashes, ngram_hashes_at

NAME = "ngram"
TINY_PART_TOKENS = 5  # parts shorter than this match only a segment they make most of


@dataclass(frozen=True)
class NgramParams:
    ngram_size: int = 8
    boilerplate_min_items: int = 3
    # Default scan threshold, stored in the index: the PaLM rule (70% of 8-grams). Measured with
    # benchmarks/core_quality.py: 0.5 flags GSM8K *train* problems that share a template with a test
    # problem; 0.7 keeps recall 1.0 on every planted disguise.
    min_score: float = 0.7

    def validate(self) -> None:
        if not 2 <= self.ngram_size <= 64:
            raise ParameterError(f"ngram_size={self.ngram_size} is outside 2..64", "8 is the default; 13 is the GPT-3 rule")
        if self.boilerplate_min_items < 2:
            raise ParameterError(f"boilerplate_min_items={self.boilerplate_min_items} must be at least 2",
                                 "an n-gram shared by this many items of one benchmark is boilerplate; 3 is the default")
        if not 0.0 < self.min_score <= 1.0:
            raise ParameterError(f"min_score={self.min_score} must be in (0, 1]", "0.7 is the default")


class NgramLayer:
    name = NAME

    def __init__(self, params: NgramParams, hashes: np.ndarray, part_ix: np.ndarray, part_ngrams: np.ndarray,
                 short_lengths: list[int], short_prefixes: np.ndarray | None = None):
        self.params = params
        self.hashes = hashes  # [m] uint64; sorted n-gram (or whole short part) hashes
        self.part_ix = part_ix  # [m] int32; the part each hash belongs to
        self.part_ngrams = part_ngrams  # [n_parts] int32; distinct non-boilerplate n-grams per part
        self.short_lengths = short_lengths  # token counts of parts shorter than ngram_size
        # [k] uint64 sorted: hashes of the first min(short_lengths) tokens of every short part, so a
        # scan hashes the longer short lengths only where one of them starts (None: an older index)
        self.short_prefixes = short_prefixes

    # The bitmaps are made on first use: a scan's parent process that only hands shards to workers
    # never builds them (filling them loads the compiled kernels: ~0.6 s before any worker started).
    @functools.cached_property
    def _bitmap(self) -> np.ndarray:
        return hash_bitmap(self.hashes)

    @functools.cached_property
    def _prefix_bitmap(self) -> np.ndarray | None:
        return hash_bitmap(self.short_prefixes) if self.short_prefixes is not None else None

    # -- build ------------------------------------------------------------------------------------

    @classmethod
    def build(cls, params: NgramParams, parts: TokenBatch, item_of_part: np.ndarray, benchmark_of_part: np.ndarray) -> NgramLayer:
        """``parts``: token ids of every indexed part; ``item_of_part`` / ``benchmark_of_part``: [n_parts]
        item number and benchmark, for counting in how many items of one benchmark an n-gram occurs
        (the same question in two benchmarks is a duplicate, not boilerplate)."""
        params.validate()
        n = params.ngram_size
        lengths = parts.lengths
        frames = []
        grams = ngram_hashes(parts, n)
        frames.append(pl.DataFrame({"h": grams.hashes, "part_ix": grams.text_ix.astype(np.int32), "whole": False}))
        short_lengths = sorted({int(x) for x in lengths[(lengths > 0) & (lengths < n)]})
        for length in short_lengths:
            whole = ngram_hashes(parts, length)
            is_whole = lengths[whole.text_ix] == length  # only parts that are exactly this long
            frames.append(pl.DataFrame({"h": whole.hashes[is_whole], "part_ix": whole.text_ix[is_whole].astype(np.int32),
                                        "whole": True}))
        table = pl.concat(frames).unique()
        table = table.with_columns(pl.Series(item_of_part).gather(table["part_ix"]).alias("item"),
                                   pl.Series(benchmark_of_part).gather(table["part_ix"]).alias("benchmark"))
        item_df = (table.group_by("h", "benchmark").agg(pl.col("item").n_unique().alias("df"), pl.col("whole").any())
                   .group_by("h").agg(pl.col("df").max(), pl.col("whole").any()))
        common = item_df.filter((pl.col("df") >= params.boilerplate_min_items) | (pl.col("whole") & (pl.col("df") >= 2))).select("h")
        table = table.join(common, on="h", how="anti").select("h", "part_ix").sort("h", "part_ix")
        part_ngrams = np.bincount(table["part_ix"].to_numpy(), minlength=len(parts)).astype(np.int32)
        prefixes = np.zeros(0, dtype=np.uint64)
        if short_lengths:
            first = ngram_hashes(parts, short_lengths[0])
            prefixes = np.unique(first.hashes[(first.start == 0) & (lengths[first.text_ix] < n)])
        return cls(params, table["h"].to_numpy(), table["part_ix"].to_numpy().astype(np.int32), part_ngrams, short_lengths,
                   prefixes)

    # -- disk -------------------------------------------------------------------------------------

    def save(self, folder: Path) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "hashes.npy", self.hashes)
        np.save(folder / "part_ix.npy", self.part_ix)
        np.save(folder / "part_ngrams.npy", self.part_ngrams)
        files = [f"{NAME}/hashes.npy", f"{NAME}/part_ix.npy", f"{NAME}/part_ngrams.npy"]
        if self.short_prefixes is not None:
            np.save(folder / "short_prefixes.npy", self.short_prefixes)
            files.append(f"{NAME}/short_prefixes.npy")
        return files

    def manifest_entry(self) -> dict:
        return {**asdict(self.params), "short_lengths": self.short_lengths, "n_hashes": int(len(self.hashes)),
                "parts_without_distinctive_ngrams": int((self.part_ngrams == 0).sum())}

    @classmethod
    def load(cls, folder: Path, entry: dict) -> NgramLayer:
        params = NgramParams(entry["ngram_size"], entry["boilerplate_min_items"], entry["min_score"])
        return cls(
            params,
            np.load(folder / "hashes.npy", allow_pickle=False),
            np.load(folder / "part_ix.npy", allow_pickle=False),
            np.load(folder / "part_ngrams.npy", allow_pickle=False),
            list(entry["short_lengths"]),
            np.load(folder / "short_prefixes.npy", allow_pickle=False) if (folder / "short_prefixes.npy").exists() else None,
        )

    # -- scan -------------------------------------------------------------------------------------

    def match(self, batch: TokenBatch, min_score: float) -> pl.DataFrame:
        """Matches of a batch: columns text_ix, part_ix, score, tok_start, tok_end (token positions)."""
        frames = []
        for length, (hashes, text_ix, start, known) in self._candidates(batch):
            # A bitmap of the index's hashes rejects almost every corpus n-gram with a few numpy
            # operations; only the survivors (true hits and ~1.5% false ones) go to the exact lookup.
            keep = known & in_bitmap(self._bitmap, hashes)
            if length < TINY_PART_TOKENS:
                # "Are toads frogs?" is a TruthfulQA item only when it is (nearly) all the text says;
                # inside a longer text three words are no evidence.
                keep &= batch.lengths[text_ix] <= 2 * length + 1
            if not keep.any():
                continue
            at = np.flatnonzero(keep)
            # the exact lookup: every index entry with this hash (one per part that has the n-gram)
            found, entry = equal_entries(self.hashes, hashes[at])
            if len(entry) == 0:
                continue
            hit = at[found]
            frames.append(pl.DataFrame({
                "h": hashes[hit],
                "text_ix": text_ix[hit],
                "tok_start": start[hit],
                "tok_end": start[hit] + length,
                "part_ix": self.part_ix[entry],
            }))
        if not frames:
            return _empty_matches()
        hits = pl.concat(frames)
        matches = hits.group_by("text_ix", "part_ix").agg(
            pl.col("h").n_unique().alias("n"), pl.col("tok_start").min(), pl.col("tok_end").max()
        )
        den = self.part_ngrams[matches["part_ix"].to_numpy()]
        score = np.minimum(matches["n"].to_numpy() / np.maximum(den, 1), 1.0)
        matches = matches.with_columns(pl.Series("score", score)).filter(pl.col("score") >= min_score)
        return matches.select("text_ix", "part_ix", "score", "tok_start", "tok_end")

    def _candidates(self, batch: TokenBatch):
        """(length, (hashes, text_ix, start, known)) for the n-grams and each short length. The short
        lengths are hashed only where a short part's first tokens are (a few % of the positions)."""
        n, short = self.params.ngram_size, self.short_lengths
        if not short or self.short_prefixes is None:
            for length, grams in batch.ngrams([n, *short]).items():
                yield length, (grams.hashes, grams.text_ix, grams.start, grams.known)
            return
        grams = batch.ngrams([n, short[0]])
        yield n, (grams[n].hashes, grams[n].text_ix, grams[n].start, grams[n].known)
        first = grams[short[0]]
        at = np.flatnonzero(first.known & in_bitmap(self._prefix_bitmap, first.hashes))
        text_ix, start = first.text_ix[at], first.start[at]
        for length in short:
            hashes, known = ngram_hashes_at(batch, text_ix, start, length)
            yield length, (hashes, text_ix, start, known)


def equal_entries(sorted_values: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (query, entry) pair with ``queries[query] == sorted_values[entry]``, found by binary
    search: two arrays, query positions and entry positions, grouped by query in order."""
    first = np.searchsorted(sorted_values, queries, side="left")
    count = np.searchsorted(sorted_values, queries, side="right") - first
    query = np.flatnonzero(count)
    first, count = first[query], count[query]
    entry = np.repeat(first - np.cumsum(count) + count, count) + np.arange(count.sum())
    return np.repeat(query, count), entry


def hash_bitmap(hashes: np.ndarray) -> np.ndarray:
    """A bitmap with bit (h >> shift) set for every hash h: 64 bits per hash (about 1.5% false
    positives), 2^16 to 2^27 bits; small sets get small bitmaps, which stay in the CPU cache."""
    bits = int(np.clip(1 << (64 * max(len(hashes), 1) - 1).bit_length(), 1 << 16, 1 << 27))
    bitmap = np.zeros(bits // 8, dtype=np.uint8)
    compiled = kernels()
    if compiled is not None:  # np.bitwise_or.at took 0.1 s of each worker's start on the default index
        compiled.fill_bitmap(bitmap, hashes, int(_shift(bits)))
        return bitmap
    slots = hashes >> _shift(bits)
    np.bitwise_or.at(bitmap, (slots >> np.uint64(3)).astype(np.int64), (np.uint8(1) << (slots & np.uint64(7)).astype(np.uint8)))
    return bitmap


def in_bitmap(bitmap: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Whether each hash's bit is set in a ``hash_bitmap`` (false positives possible, never false negatives)."""
    shift = _shift(len(bitmap) * 8)
    compiled = kernels()
    if compiled is not None:
        return compiled.in_bitmap(bitmap, hashes, int(shift))
    slots = hashes >> shift  # < 2^27: the byte number and the bit fit in int64 / uint8 views
    byte = bitmap[(slots >> np.uint64(3)).view(np.int64)]
    byte >>= (slots & np.uint64(7)).astype(np.uint8)
    byte &= np.uint8(1)
    return byte.view(bool)


def _shift(bits: int) -> np.uint64:
    return np.uint64(64 - (bits.bit_length() - 1))


def _empty_matches() -> pl.DataFrame:
    return pl.DataFrame(schema={"text_ix": pl.Int64, "part_ix": pl.Int32, "score": pl.Float64,
                                "tok_start": pl.Int64, "tok_end": pl.Int64})


def check_scan_params(layer: NgramLayer, ngram_size: int | None) -> None:
    if ngram_size is not None and ngram_size != layer.params.ngram_size:
        raise ParameterError(
            f"the scan asks for ngram_size={ngram_size} but the index was built with ngram_size={layer.params.ngram_size}",
            f"drop --ngram-size, or rebuild the index with --ngram-size {ngram_size}",
        )
