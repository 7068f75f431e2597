"""MinHash layer: near-duplicates with small edits or reordering, found by LSH and verified exactly.

Shingles are word ``shingle_size``-grams (the same token ids and hashes as the n-gram layer).
Signatures follow datasketch's ``affine32`` scheme bit for bit (``MinHash(num_perm, seed,
scheme="affine32")`` fed the 32-bit shingle hashes gives the same hash values; a test checks it),
computed for a whole batch with numpy instead of one ``MinHash`` object per segment. The band count
``b`` and rows per band ``r`` are datasketch's own optimum for the threshold (``MinHashLSH``). Both
the permutations and the bands are kept in the index, so datasketch is imported to build one only.

Before any signature is computed, a segment must have min_shingles shingles, at least a share
min_jaccard of them present in the index (Jaccard(A, B) <= |A ∩ U| / |A| where U is the union of all
indexed shingles), so ordinary text costs a few numpy operations. Every LSH candidate is then
verified by exact Jaccard over the full, distinct shingle sets; only verified pairs become findings.

A long text is matched whole and by its dense regions (``_dense_regions``): an edited copy of an
item inside a document is a small share of the document's shingles, but most of one region's.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import ParameterError
from ..ngrams import TokenBatch, ngram_hashes, splitmix64
from .ngram import equal_entries, hash_bitmap, in_bitmap

NAME = "minhash"
_MASK32 = np.uint64(0xFFFFFFFF)


@dataclass(frozen=True)
class MinHashParams:
    num_perm: int = 128
    seed: int = 1
    shingle_size: int = 3
    min_jaccard: float = 0.5  # LSH is tuned for this threshold; a scan may ask for more, not less
    # Jaccard over a handful of shingles is noise ("What is the best medicine?" vs "Laughter is the
    # best medicine."): shorter parts and segments are left to the exact n-gram layer.
    min_shingles: int = 10
    # A shingle in this many different items of one benchmark is boilerplate (a benchmark's instruction template, "which
    # of the following"): dropped from both sides, so a template alone is no near-duplicate of an item.
    boilerplate_min_items: int = 3

    def validate(self) -> None:
        if self.num_perm < 16:
            raise ParameterError(f"num_perm={self.num_perm} is too small for a useful estimate", "128 is the default")
        if not 1 <= self.shingle_size <= 16:
            raise ParameterError(f"shingle_size={self.shingle_size} is outside 1..16", "3 is the default")
        if self.min_shingles < 1:
            raise ParameterError(f"min_shingles={self.min_shingles} must be at least 1", "10 is the default")
        if not 0.0 < self.min_jaccard < 1.0:
            raise ParameterError(f"min_jaccard={self.min_jaccard} must be in (0, 1)", "0.5 is the default")

    def bands(self) -> tuple[int, int]:
        from datasketch import MinHashLSH

        lsh = MinHashLSH(threshold=self.min_jaccard, num_perm=self.num_perm)
        return lsh.b, lsh.r

    def permutations(self) -> np.ndarray:
        """[2, num_perm] uint32: datasketch's affine32 permutations (a, b) for this seed. An index keeps
        them (``minhash/permutations.npy``), so a scan does not import datasketch (a quarter second:
        it imports scipy) and does not depend on a datasketch version deriving them the same way."""
        from datasketch import MinHash

        return np.asarray(MinHash(num_perm=self.num_perm, seed=self.seed, scheme="affine32").permutations, dtype=np.uint32)


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, as datasketch applies it before the affine32 permutations."""
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint32(16))
        h = h * np.uint32(0x85EBCA6B)
        h = h ^ (h >> np.uint32(13))
        h = h * np.uint32(0xC2B2AE35)
        return h ^ (h >> np.uint32(16))


def shingle32(hashes: np.ndarray) -> np.ndarray:
    """64-bit shingle hashes folded to the 32-bit values MinHash consumes."""
    return ((hashes >> np.uint64(32)) ^ (hashes & _MASK32)).astype(np.uint32)


def signatures(values32: np.ndarray, group: np.ndarray, n_groups: int, permutations: np.ndarray) -> np.ndarray:
    """MinHash signatures of many sets at once.

    values32: [m] uint32 shingle values; group: [m] int set number, sorted ascending;
    permutations: [2, num_perm] uint32 (``MinHashParams.permutations``).
    Returns [n_groups, num_perm] uint32 (all-ones for an empty set, as datasketch).
    """
    perm_a, perm_b = permutations
    out = np.full((n_groups, len(perm_a)), np.iinfo(np.uint32).max, dtype=np.uint32)
    mixed = _fmix32(values32.astype(np.uint32))
    chunk = 1 << 14  # keeps the [chunk, num_perm] temporary near 8 MB
    with np.errstate(over="ignore"):
        for lo in range(0, len(mixed), chunk):
            hv = mixed[lo : lo + chunk, None]
            phv = hv * perm_a[None, :] + perm_b[None, :]  # [chunk, num_perm] uint32, wraps mod 2^32
            g = group[lo : lo + chunk]
            starts = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1])))
            mins = np.minimum.reduceat(phv, starts, axis=0)
            np.minimum.at(out, g[starts], mins)
    return out


def band_keys(sigs: np.ndarray, b: int, r: int) -> np.ndarray:
    """[n, b] uint64 keys: band j of two signatures is equal iff their keys are (up to 2^-64)."""
    n = len(sigs)
    keys = np.empty((n, b), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(b):
            h = np.full(n, band + 1, dtype=np.uint64)
            for j in range(r):
                h = splitmix64(h * np.uint64(0x100000001B3) + sigs[:, band * r + j].astype(np.uint64))
            keys[:, band] = h
    return keys


class MinHashLayer:
    name = NAME

    def __init__(self, params: MinHashParams, part_ix: np.ndarray, sigs: np.ndarray, shingles: np.ndarray,
                 shingle_offsets: np.ndarray, boilerplate: np.ndarray, permutations: np.ndarray,
                 bands: tuple[int, int] | None = None):
        self.params = params
        self.permutations = permutations  # [2, num_perm] uint32
        self.part_ix = part_ix  # [k] int32; parts that have at least one shingle
        self.sigs = sigs  # [k, num_perm] uint32
        self.shingles = shingles  # [s] uint64; each part's distinct shingles, part after part
        self.shingle_offsets = shingle_offsets  # [k + 1] int64
        self.boilerplate = boilerplate  # [q] uint64, sorted; shingles ignored on both sides
        self.b, self.r = bands or params.bands()

    # Lookup structures are made on first use, as the n-gram layer's bitmaps are (a parent process
    # that only hands shards to workers never needs them).
    @functools.cached_property
    def _boilerplate_bitmap(self) -> np.ndarray:
        return hash_bitmap(self.boilerplate)

    @functools.cached_property
    def _boilerplate_set(self) -> pl.Series:
        return pl.Series(self.boilerplate, dtype=pl.UInt64).implode()  # for is_in

    @functools.cached_property
    def _bitmap(self) -> np.ndarray:
        return hash_bitmap(self.shingles)

    @functools.cached_property
    def _band_lookup(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (band, key) of the index sorted by key, for lookups by binary search: the keys,
        each key's band and part."""
        keys = band_keys(self.sigs, self.b, self.r).reshape(-1)
        order = np.argsort(keys, kind="stable")
        return keys[order], (order % self.b).astype(np.int32), self.part_ix[order // self.b]

    # -- build ------------------------------------------------------------------------------------

    @classmethod
    def build(cls, params: MinHashParams, parts: TokenBatch, item_of_part: np.ndarray, benchmark_of_part: np.ndarray) -> MinHashLayer:
        params.validate()
        grams = ngram_hashes(parts, params.shingle_size)
        table = pl.DataFrame({"part_ix": grams.text_ix.astype(np.int32), "h": grams.hashes}).unique()
        item_df = (table.with_columns(pl.Series(item_of_part).gather(table["part_ix"]).alias("item"),
                                      pl.Series(benchmark_of_part).gather(table["part_ix"]).alias("benchmark"))
                   .group_by("h", "benchmark").agg(pl.col("item").n_unique().alias("df"))
                   .group_by("h").agg(pl.col("df").max()))
        boilerplate = item_df.filter(pl.col("df") >= params.boilerplate_min_items)["h"].sort().to_numpy()
        table = table.filter(~pl.col("h").is_in(pl.Series(boilerplate).implode()))
        table = table.filter(pl.len().over("part_ix") >= params.min_shingles).sort("part_ix", "h")
        part_ix, counts = np.unique(table["part_ix"].to_numpy(), return_counts=True)
        offsets = np.zeros(len(part_ix) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        shingles = table["h"].to_numpy()
        group = np.repeat(np.arange(len(part_ix)), counts)
        permutations = params.permutations()
        sigs = signatures(shingle32(shingles), group, len(part_ix), permutations)
        return cls(params, part_ix.astype(np.int32), sigs, shingles, offsets, boilerplate, permutations)

    # -- disk -------------------------------------------------------------------------------------

    def save(self, folder: Path) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        files = {"part_ix": self.part_ix, "signatures": self.sigs, "shingles": self.shingles,
                 "shingle_offsets": self.shingle_offsets, "boilerplate": self.boilerplate, "permutations": self.permutations}
        for name, array in files.items():
            np.save(folder / f"{name}.npy", array)
        return [f"{NAME}/{name}.npy" for name in files]

    def manifest_entry(self) -> dict:
        return {**asdict(self.params), "bands": self.b, "rows_per_band": self.r, "scheme": "datasketch-affine32",
                "n_parts": int(len(self.part_ix))}

    @classmethod
    def load(cls, folder: Path, entry: dict) -> MinHashLayer:
        params = MinHashParams(entry["num_perm"], entry["seed"], entry["shingle_size"], entry["min_jaccard"], entry["min_shingles"],
                               entry["boilerplate_min_items"])
        arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False)
                  for name in ("part_ix", "signatures", "shingles", "shingle_offsets", "boilerplate")}
        # indexes written before the permutations were kept derive them again (through datasketch)
        stored = folder / "permutations.npy"
        permutations = np.load(stored, allow_pickle=False) if stored.exists() else params.permutations()
        bands = (entry["bands"], entry["rows_per_band"]) if "bands" in entry and "rows_per_band" in entry else None
        return cls(params, arrays["part_ix"], arrays["signatures"], arrays["shingles"], arrays["shingle_offsets"],
                   arrays["boilerplate"], permutations, bands)

    # -- scan -------------------------------------------------------------------------------------

    def match(self, batch: TokenBatch, min_jaccard: float) -> pl.DataFrame:
        """Verified near-duplicates: columns text_ix, part_ix, score (exact Jaccard), and tok_start /
        tok_end where the match is a region of a long text (null where it is the whole text)."""
        if min_jaccard < self.params.min_jaccard:
            raise ParameterError(
                f"the scan asks for min_jaccard={min_jaccard} but the index's LSH was built for {self.params.min_jaccard}",
                f"scan with --min-jaccard >= {self.params.min_jaccard}, or rebuild the index with --min-jaccard {min_jaccard}",
            )
        grams = batch.ngrams([self.params.shingle_size])[self.params.shingle_size]
        if len(grams.hashes) == 0 or len(self.part_ix) == 0:
            return _empty_matches()
        # Prefilter on shingle occurrences (numpy, no sorting): a near-duplicate of an indexed part
        # has at least min_shingles shingles and at least a share min_jaccard of them in the index
        # (checked against a bitmap of the index's shingles, which can only say yes too often).
        # Repeats are counted here, so a copy padded with one phrase repeated many times can slip
        # past this layer; the n-gram layer still sees it.
        maybe_boilerplate = in_bitmap(self._boilerplate_bitmap, grams.hashes)
        ordinary = np.ones(len(grams.hashes), dtype=bool)
        ordinary[maybe_boilerplate] = ~pl.Series(grams.hashes[maybe_boilerplate]).is_in(self._boilerplate_set).to_numpy()
        hit = grams.known & ordinary & in_bitmap(self._bitmap, grams.hashes)
        n_texts = len(batch)
        known_count = np.bincount(grams.text_ix, weights=hit, minlength=n_texts)
        all_count = np.bincount(grams.text_ix, weights=ordinary, minlength=n_texts)
        hopeful = (all_count >= self.params.min_shingles) & (known_count >= min_jaccard * all_count)
        # Units: hopeful texts whole, then the dense regions of long texts (an item inside a long text
        # is too small a share of it for its Jaccard to count), each unit a set of shingle positions.
        whole_texts = np.flatnonzero(hopeful)
        members = np.flatnonzero(hopeful[grams.text_ix] & ordinary)
        unit = np.searchsorted(whole_texts, grams.text_ix[members])
        first, last = _dense_regions(grams.text_ix, hit, all_count >= REGION_MIN_TEXT)
        if len(first):
            lengths = last - first + 1
            inside = np.repeat(first - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(lengths.sum())
            region = np.repeat(np.arange(len(first)), lengths)
            inside, region = inside[ordinary[inside]], region[ordinary[inside]]
            size = np.bincount(region, minlength=len(first))
            known = np.bincount(region, weights=hit[inside], minlength=len(first))
            good = (size >= self.params.min_shingles) & (known >= min_jaccard * size)
            renumber = np.cumsum(good) - 1
            take = good[region]
            members = np.concatenate((members, inside[take]))
            unit = np.concatenate((unit, len(whole_texts) + renumber[region[take]]))
            first, last = first[good], last[good]
        if len(members) == 0:
            return _empty_matches()
        values = grams.hashes[members]
        unit_ids, group = _runs(unit)  # every unit has members: min_shingles of them at least
        sigs = signatures(shingle32(values), group, len(unit_ids), self.permutations)  # repeats do not change a minimum
        candidates = self._candidates(unit_ids, band_keys(sigs, self.b, self.r))
        if candidates.is_empty():
            return _empty_matches()
        found = self._verify(candidates, unit, values, min_jaccard)
        whole = len(whole_texts)
        units_text = np.concatenate((whole_texts, grams.text_ix[first])).astype(np.int64)
        tok_start = np.concatenate((np.full(whole, -1), grams.start[first]))
        tok_end = np.concatenate((np.full(whole, -1), grams.start[last] + self.params.shingle_size))
        u = found["text_ix"].to_numpy()
        return (
            pl.DataFrame({"text_ix": units_text[u], "part_ix": found["part_ix"], "score": found["score"],
                          "tok_start": tok_start[u], "tok_end": tok_end[u], "whole": u < whole})
            .sort("score", "whole", descending=True)
            .unique(["text_ix", "part_ix"], keep="first", maintain_order=True)
            .sort("text_ix", "part_ix")
            .select("text_ix", "part_ix", "score",
                    *(pl.when(~pl.col("whole")).then(pl.col(c)).cast(pl.Int64).alias(c) for c in ("tok_start", "tok_end")))
        )

    def _candidates(self, text_ids: np.ndarray, keys: np.ndarray) -> pl.DataFrame:
        """(text_ix, part_ix) pairs that share a band: ``keys`` [len(text_ids), b] from ``band_keys``."""
        index_keys, band_of_key, part_of_key = self._band_lookup
        query, entry = equal_entries(index_keys, keys.reshape(-1))
        same_band = band_of_key[entry] == query % self.b
        pairs = pl.DataFrame({"text_ix": text_ids[query // self.b][same_band], "part_ix": part_of_key[entry][same_band]})
        return pairs.unique()

    def _verify(self, candidates: pl.DataFrame, text_ix: np.ndarray, values: np.ndarray, min_jaccard: float) -> pl.DataFrame:
        """Exact Jaccard of every LSH candidate pair over the full (distinct) shingle sets."""
        wanted_texts = np.isin(text_ix, candidates["text_ix"].unique().to_numpy())
        seg = pl.DataFrame({"text_ix": text_ix[wanted_texts], "h": values[wanted_texts]}).unique()
        size_a = seg.group_by("text_ix").agg(pl.len().alias("size_a"))
        layer_rows = np.searchsorted(self.part_ix, candidates["part_ix"].unique().to_numpy())
        starts, ends = self.shingle_offsets[layer_rows], self.shingle_offsets[layer_rows + 1]
        lengths = ends - starts
        gather = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(lengths.sum())
        part_shingles = pl.DataFrame({"part_ix": np.repeat(self.part_ix[layer_rows], lengths), "h": self.shingles[gather]})
        size_b = pl.DataFrame({"part_ix": self.part_ix[layer_rows], "size_b": lengths})
        inter = (
            candidates.join(seg, on="text_ix")
            .join(part_shingles, on=["part_ix", "h"], how="inner")
            .group_by("text_ix", "part_ix").agg(pl.len().alias("inter"))
        )
        scored = (
            candidates.join(inter, on=["text_ix", "part_ix"], how="left").fill_null(0)
            .join(size_a, on="text_ix")
            .join(size_b, on="part_ix")
            .with_columns((pl.col("inter") / (pl.col("size_a") + pl.col("size_b") - pl.col("inter"))).alias("score"))
            .filter(pl.col("score") >= min_jaccard)
        )
        return scored.select(pl.col("text_ix").cast(pl.Int64), pl.col("part_ix").cast(pl.Int32), pl.col("score").cast(pl.Float64))


# Dense regions: runs of REGION_MIN_HITS shingles found in the index within REGION_WINDOW consecutive
# shingles, merged where they overlap, from the first such shingle to the last; looked for in texts of
# REGION_MIN_TEXT shingles or more. Ordinary text has few, so they cost little beyond finding them,
# which looks at the shingles found in the index only.
REGION_WINDOW = 16
REGION_MIN_HITS = 8
REGION_MIN_TEXT = 48


def _dense_regions(text_ix: np.ndarray, hit: np.ndarray, long_text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last shingle position (into the batch's shingle arrays, texts one after another)
    of each dense region of the texts marked ``long_text``."""
    hits = np.flatnonzero(hit)
    hits = hits[long_text[text_ix[hits]]]
    k = REGION_MIN_HITS
    if len(hits) < k:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    lo, hi = hits[: len(hits) - k + 1], hits[k - 1 :]  # k consecutive hits
    dense = np.flatnonzero((hi - lo < REGION_WINDOW) & (text_ix[lo] == text_ix[hi]))
    if len(dense) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    lo, hi = lo[dense], hi[dense]  # both increasing: a run overlaps the one before it or none before
    new = np.concatenate(([True], (lo[1:] > hi[:-1]) | (text_ix[lo[1:]] != text_ix[lo[:-1]])))
    return lo[new].astype(np.int64), hi[np.concatenate((new[1:], [True]))].astype(np.int64)


def _runs(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(sorted_values, return_inverse=True)`` for sorted input, without sorting again."""
    if len(sorted_values) == 0:
        return sorted_values, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.diff(sorted_values)) + 1
    group = np.zeros(len(sorted_values), dtype=np.int64)
    group[starts] = 1
    np.cumsum(group, out=group)
    return sorted_values[np.concatenate(([0], starts))], group


def _empty_matches() -> pl.DataFrame:
    return pl.DataFrame(schema={"text_ix": pl.Int64, "part_ix": pl.Int32, "score": pl.Float64, "tok_start": pl.Int64, "tok_end": pl.Int64})
