"""Instruction-artifact layer: benchmark prompt templates reused in training data.

A reward model can learn a benchmark's format without seeing one of its items: JudgeBench's
knowledge items all end "If you cannot determine the correct multiple-choice answer, take your best
guess. Once you have your answer, please duplicate that letter five times in a single string. For
example, if the answer is K, then write KKKKK." This layer finds such templates and reports them.

Mining, per benchmark, at index build:

1. Tokens of every question-side part, with **slots**: a double-quoted span becomes ``<q>``, a
   single letter ``<l>``, a run of one repeated letter (``KKKKK``) ``<ll>``, a number ``<n>``; so
   "the answer is F, then write FFFFF" and "the answer is K, then write KKKKK" are one template.
2. Generic prompt boilerplate (``decontam/data/generic_phrases.txt``: "let's think step by step",
   "answer the following question", ...) is masked: no template may contain or cross it.
3. Word ``ngram_size``-grams in at least ``min_items`` items and ``min_coverage`` of the benchmark are
   candidates; each gets a distinctiveness ``p_in / (p_in + p_out)`` where ``p_in`` is its share of
   the benchmark's items and ``p_out`` its share of ordinary text (background corpora given at build)
   plus the other benchmarks' items. Candidates below ``min_distinctiveness`` are dropped.
4. In every item, the token positions covered by surviving n-grams are merged into maximal spans;
   spans repeated in ``min_items`` items become templates; a template that contains a shorter one is
   dropped in favour of it; coverage is then counted by matching each template against every item.

Curated templates (``indexes/curated_templates.jsonl``) join the mined ones. At scan, a segment
holding ``min_share`` of a template's n-grams (slotted the same way) is an artifact finding; its
score is that share.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import InputError, ParameterError
from ..ngrams import UNKNOWN_BIT, TokenBatch, ngram_hashes_multi, tokenize_frame
from ..normalize import token_offsets_batch
from ..readers import json_objects
from .ngram import equal_entries

NAME = "artifact"
GENERIC_PHRASES = Path(__file__).resolve().parents[1] / "data" / "generic_phrases.txt"
_MASK = "<mask>"


@dataclass(frozen=True)
class ArtifactParams:
    ngram_size: int = 6
    min_items: int = 5
    min_coverage: float = 0.02
    min_distinctiveness: float = 0.9
    min_template_tokens: int = 8
    min_share: float = 0.8  # default scan threshold

    def validate(self) -> None:
        if not 3 <= self.ngram_size <= self.min_template_tokens:
            raise ParameterError(f"artifact ngram_size={self.ngram_size} must be in 3..min_template_tokens ({self.min_template_tokens})",
                                 "6 and 8 are the defaults")
        if self.min_items < 2:
            raise ParameterError(f"artifact min_items={self.min_items} must be at least 2", "a template repeats across items; 5 is the default")
        if not 0 < self.min_share <= 1 or not 0 <= self.min_distinctiveness <= 1 or not 0 <= self.min_coverage <= 1:
            raise ParameterError("artifact min_share, min_distinctiveness and min_coverage are shares in [0, 1]",
                                 "defaults: 0.8, 0.9, 0.02")


# A quoted span of up to 60 characters becomes one slot token before tokenization:
# 'Finish your response with this exact phrase "Is there anything else I can help with?"'. Single
# quotes count only after a space, colon or bracket and before a space or punctuation, so that the
# apostrophes of "don't ... it's" never pair up.
_QUOTED = (r'"[^"\n]{1,60}"|\x{201C}[^\x{201D}\n]{1,60}\x{201D}'
           r"|(?:^|[\s:(])'[^'\n]{1,60}'(?:[\s.,;:!?)]|$)")
_QUOTE_TOKEN = "qqslotqq"


def slotted_expr(tok: pl.Expr) -> pl.Expr:
    """Tokens with slots: quoted spans, single letters, runs of one repeated letter, and numbers."""
    return (
        pl.when(tok == _QUOTE_TOKEN).then(pl.lit("<q>"))
        .when(tok.str.contains(r"^\p{N}+$")).then(pl.lit("<n>"))
        .when((tok.str.len_chars() == 1) & tok.str.contains(r"^\p{L}$")).then(pl.lit("<l>"))
        .when((tok.str.len_chars() >= 3) & tok.str.contains(r"^\p{L}+$") & (tok.str.strip_chars(tok.str.slice(0, 1)) == ""))
        .then(pl.lit("<ll>"))
        .otherwise(tok)
    )


def load_generic_phrases(path: Path = GENERIC_PHRASES) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]


@dataclass
class _Slotted:
    """Slotted token strings of many texts, flat, with offsets."""

    tokens: list[str]
    offsets: np.ndarray  # [n_texts + 1]

    def text(self, i: int) -> list[str]:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]


def _quote_slotted_frame(texts: Sequence[str]) -> pl.DataFrame:
    """Exploded tokens of texts whose quoted spans became one slot: text_ix, raw (unslotted), tok (slotted)."""
    replaced = pl.Series(list(texts), dtype=pl.String).str.replace_all(_QUOTED, f" {_QUOTE_TOKEN} ").to_list()
    return tokenize_frame(replaced).with_columns(pl.col("tok").alias("raw"), slotted_expr(pl.col("tok")).alias("tok"))


def _slotted(texts: Sequence[str]) -> _Slotted:
    frame = _quote_slotted_frame(texts)
    return _Slotted(frame["tok"].to_list(), _offsets(frame["text_ix"].to_numpy(), len(texts)))


def _offsets(text_ix: np.ndarray, n_texts: int) -> np.ndarray:
    counts = np.bincount(text_ix, minlength=n_texts)
    offsets = np.zeros(n_texts + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def _mask_generic(slotted: _Slotted, generic: list[list[str]]) -> list[str]:
    """Replace every occurrence of a generic phrase by mask tokens (Python: used at build only)."""
    tokens = list(slotted.tokens)
    by_first: dict[str, list[list[str]]] = {}
    for phrase in generic:
        if phrase:
            by_first.setdefault(phrase[0], []).append(phrase)
    for i, tok in enumerate(slotted.tokens):
        for phrase in by_first.get(tok, ()):
            if slotted.tokens[i : i + len(phrase)] == phrase:
                tokens[i : i + len(phrase)] = [_MASK] * len(phrase)
    return tokens


class ArtifactLayer:
    name = NAME

    def __init__(self, params: ArtifactParams, templates: pl.DataFrame):
        self.params = params
        self.templates = templates  # template_id, benchmark, origin, text, tokens, n_tokens, items, coverage, distinctiveness
        vocab = sorted({t for toks in templates["tokens"].to_list() for t in toks})
        self.vocabulary = pl.Series("token", vocab, dtype=pl.String)

    @functools.cached_property
    def _lookup(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The templates' n-gram hashes sorted (for lookups by binary search), each one's template,
        and n-grams per template. Made on first use: hashing loads the compiled kernels, ~0.6 s that
        a scan's parent process, which only hands shards to workers, would spend before any started."""
        encoded = self._encode_tokens([list(t) for t in self.templates["tokens"].to_list()])
        grams = ngram_hashes_multi(encoded, [self.params.ngram_size])[self.params.ngram_size]
        table = pl.DataFrame({"h": grams.hashes, "template_ix": grams.text_ix.astype(np.int32)}).unique().sort("h", "template_ix")
        template_of_hash = table["template_ix"].to_numpy()
        return (table["h"].to_numpy(), template_of_hash,
                np.bincount(template_of_hash, minlength=self.templates.height).astype(np.int32))

    @functools.cached_property
    def descriptors(self) -> pl.DataFrame:
        """template_ix and the finding columns that describe a template (kind artifact)."""
        return self.templates.select(
            pl.col("benchmark"), pl.lit(None, pl.String).alias("subset"), pl.col("template_id").alias("item_id"),
            pl.lit("template").alias("item_part"), pl.lit("artifact").alias("kind"),
        ).with_row_index("template_ix").with_columns(pl.col("template_ix").cast(pl.Int32))

    def _encode_tokens(self, token_lists: list[list[str]]) -> TokenBatch:
        flat = pl.Series("tok", [t for toks in token_lists for t in toks], dtype=pl.String)
        offsets = np.zeros(len(token_lists) + 1, dtype=np.int64)
        np.cumsum([len(t) for t in token_lists], out=offsets[1:])
        return TokenBatch(ids=self._ids(flat), offsets=offsets)

    def _ids(self, slotted_tokens: pl.Series) -> np.ndarray:
        known = pl.Series(np.arange(1, len(self.vocabulary) + 1, dtype=np.uint64))
        return (
            slotted_tokens.replace_strict(self.vocabulary, known, default=None, return_dtype=pl.UInt64)
            .fill_null(int(UNKNOWN_BIT)).to_numpy().astype(np.uint64)
        )

    # -- build ------------------------------------------------------------------------------------

    @classmethod
    def build(cls, params: ArtifactParams, parts: pl.DataFrame, *, background: Sequence[str] = (),
              curated: Sequence[dict] = ()) -> ArtifactLayer:
        """``parts``: benchmark, item_no, text (and item_id) of the question-side parts of every item."""
        params.validate()
        n = params.ngram_size
        texts = parts["text"].to_list()
        generic_lists = [_slotted([p]).tokens for p in load_generic_phrases()]
        item_slotted = _slotted(texts)
        masked = _mask_generic(item_slotted, generic_lists)
        bg_slotted = _slotted(list(background)) if background else _Slotted([], np.zeros(1, dtype=np.int64))
        bg_masked = _mask_generic(bg_slotted, generic_lists)

        vocab = sorted((set(masked) | set(bg_masked)) - {_MASK})
        vocab_series = pl.Series(vocab, dtype=pl.String)
        ids_of = pl.Series(np.arange(1, len(vocab) + 1, dtype=np.uint64))

        def encode(tokens: list[str], offsets: np.ndarray) -> TokenBatch:
            ids = (pl.Series(tokens, dtype=pl.String).replace_strict(vocab_series, ids_of, default=None, return_dtype=pl.UInt64)
                   .fill_null(int(UNKNOWN_BIT)).to_numpy().astype(np.uint64))  # masked tokens end n-grams
            return TokenBatch(ids=ids, offsets=offsets)

        grams = ngram_hashes_multi(encode(masked, item_slotted.offsets), [n])[n]
        benchmark_of_part = parts["benchmark"].to_numpy()
        item_of_part = parts["item_no"].to_numpy()
        occ = pl.DataFrame({
            "h": grams.hashes[grams.known],
            "part": grams.text_ix[grams.known],
            "start": grams.start[grams.known],
        })
        occ = occ.with_columns(
            pl.Series(benchmark_of_part).gather(occ["part"]).alias("benchmark"),
            pl.Series(item_of_part).gather(occ["part"]).alias("item"),
        )
        items_per_bench = parts.group_by("benchmark").agg(pl.col("item_no").n_unique().alias("n_items"))
        df = occ.group_by("benchmark", "h").agg(pl.col("item").n_unique().alias("df"))
        total_items = int(items_per_bench["n_items"].sum())
        if len(bg_masked):
            bg_grams = ngram_hashes_multi(encode(bg_masked, bg_slotted.offsets), [n])[n]
            bg = (pl.DataFrame({"h": bg_grams.hashes[bg_grams.known], "doc": bg_grams.text_ix[bg_grams.known]})
                  .group_by("h").agg(pl.col("doc").n_unique().alias("df_bg")))
        else:
            bg = pl.DataFrame(schema={"h": pl.UInt64, "df_bg": pl.UInt32})
        n_bg = len(background)
        all_df = df.group_by("h").agg(pl.col("df").sum().alias("df_all"))
        scored = (
            df.join(items_per_bench, on="benchmark")
            .join(all_df, on="h")
            .join(bg, on="h", how="left").with_columns(pl.col("df_bg").fill_null(0))
            .with_columns(
                (pl.col("df") / pl.col("n_items")).alias("p_in"),
                ((pl.col("df_all") - pl.col("df") + pl.col("df_bg"))
                 / (total_items - pl.col("n_items") + n_bg + 1)).alias("p_out"),
            )
            .with_columns((pl.col("p_in") / (pl.col("p_in") + pl.col("p_out"))).alias("distinctiveness"))
            .filter((pl.col("df") >= params.min_items) & (pl.col("p_in") >= params.min_coverage)
                    & (pl.col("distinctiveness") >= params.min_distinctiveness))
        )
        # spans covered by candidate n-grams, per part, merged
        hits = occ.join(scored.select("benchmark", "h", "distinctiveness"), on=["benchmark", "h"], how="inner")
        span_items: dict[tuple, set] = {}
        for (part,), group in hits.group_by(["part"]):
            starts = np.sort(group["start"].to_numpy())
            tokens = item_slotted.text(int(part))
            run_start, run_end = int(starts[0]), int(starts[0]) + n
            for s in starts[1:].tolist() + [None]:
                if s is not None and s <= run_end:
                    run_end = max(run_end, s + n)
                    continue
                key = (benchmark_of_part[part], tuple(tokens[run_start:run_end]))
                if len(key[1]) >= params.min_template_tokens:
                    span_items.setdefault(key, set()).add(int(item_of_part[part]))
                if s is not None:
                    run_start, run_end = s, s + n
        mined = [(bench, toks) for (bench, toks), items in span_items.items()
                 if len(items) >= params.min_items and _mostly_words(toks)]
        mined = _drop_containing(mined)
        rows = []
        dist = {(b, h): d for b, h, d in scored.select("benchmark", "h", "distinctiveness").iter_rows()}
        for bench, toks in mined:
            rows.append({"benchmark": bench, "origin": "mined", "text": " ".join(toks), "tokens": list(toks)})
        for entry in curated:
            toks = _slotted([entry["text"]]).tokens
            if len(toks) < n:
                raise InputError(f"curated template {entry.get('id')!r} has {len(toks)} words; templates need at least {n}",
                                 "lengthen it or drop it from the curated list")
            rows.append({"benchmark": entry["benchmark"], "origin": "curated", "text": " ".join(toks), "tokens": toks,
                         "note": entry.get("note")})
        if not rows:
            return cls(params, _empty_templates())
        templates = pl.DataFrame(rows, schema={"benchmark": pl.String, "origin": pl.String, "text": pl.String,
                                               "tokens": pl.List(pl.String), "note": pl.String})
        templates = templates.unique(["benchmark", "text"], keep="first", maintain_order=True)
        templates = templates.with_columns(
            pl.Series("template_id", [f"{b}:{hashlib.sha1(t.encode()).hexdigest()[:8]}" for b, t in templates.select("benchmark", "text").iter_rows()]),
            pl.col("tokens").list.len().alias("n_tokens"),
        )
        layer = cls(params, templates.with_columns(pl.lit(None, pl.Int64).alias("items"), pl.lit(None, pl.Float64).alias("coverage"),
                                                   pl.lit(None, pl.Float64).alias("distinctiveness")))
        # coverage: match every template against the items of its own benchmark
        item_batch = TokenBatch(ids=layer._ids(pl.Series(item_slotted.tokens, dtype=pl.String)), offsets=item_slotted.offsets)
        # coverage counts every item carrying the template, however little of it the mining run saw
        matches = layer.match_batch(item_batch, params.min_share)
        item_id_of_part = parts["item_id"].cast(pl.String) if "item_id" in parts.columns else parts["item_no"].cast(pl.String)
        covered = (
            matches.with_columns(pl.Series(benchmark_of_part).gather(matches["text_ix"]).alias("part_bench"),
                                 item_id_of_part.gather(matches["text_ix"]).alias("item"))
            .join(layer.templates.with_row_index("template_ix").select(pl.col("template_ix").cast(pl.Int32), "benchmark"), on="template_ix")
            .filter(pl.col("part_bench") == pl.col("benchmark"))
            .group_by("template_ix").agg(pl.col("item").unique().sort().alias("item_ids"))
        )
        covered_ids = {ix: ids for ix, ids in covered.iter_rows()}
        counts = {ix: len(ids) for ix, ids in covered_ids.items()}
        sizes = dict(items_per_bench.iter_rows())
        template_dist = []
        for bench, toks in templates.select("benchmark", "tokens").iter_rows():
            enc = [h for h in _template_hashes(toks, vocab_series, ids_of, n)]
            values = [dist.get((bench, h)) for h in enc]
            values = [v for v in values if v is not None]
            template_dist.append(float(np.mean(values)) if values else None)
        items_col = [counts.get(i) if templates["benchmark"][i] in sizes else None for i in range(templates.height)]
        items_col = [c if c is not None or templates["benchmark"][i] not in sizes else 0 for i, c in enumerate(items_col)]
        coverage = [c / sizes[b] if c is not None else None for c, b in zip(items_col, templates["benchmark"].to_list())]
        final = templates.with_columns(
            pl.Series("item_ids", [covered_ids.get(i, []) for i in range(templates.height)], dtype=pl.List(pl.String)),
            pl.Series("items", items_col, dtype=pl.Int64),
            pl.Series("coverage", coverage, dtype=pl.Float64),
            pl.Series("distinctiveness", template_dist, dtype=pl.Float64),
        ).sort("benchmark", "items", descending=[False, True], nulls_last=True)
        return cls(params, final)

    # -- disk -------------------------------------------------------------------------------------

    def save(self, folder: Path) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        self.templates.write_parquet(folder / "templates.parquet", statistics=False)
        return [f"{NAME}/templates.parquet"]

    def manifest_entry(self) -> dict:
        return {**asdict(self.params), "templates": self.templates.height,
                "mined": int((self.templates["origin"] == "mined").sum()) if self.templates.height else 0}

    @classmethod
    def load(cls, folder: Path, entry: dict) -> ArtifactLayer:
        names = ArtifactParams.__dataclass_fields__
        params = ArtifactParams(**{k: v for k, v in entry.items() if k in names})
        return cls(params, pl.read_parquet(folder / "templates.parquet"))

    # -- scan -------------------------------------------------------------------------------------

    def _first_pass_ids(self, batch: TokenBatch, vocabulary: pl.Series | None) -> np.ndarray:
        """Template-vocabulary ids of the batch's tokens. Tokens the index vocabulary knows are mapped
        through a table computed once per vocabulary (numpy take); only the rest are slotted as strings."""
        if not isinstance(vocabulary, pl.Series):  # no vocabulary, or a keyed (word-free) one
            slotted = batch.token_strings().to_frame("tok").select(slotted_expr(pl.col("tok"))).to_series()
            return self._ids(slotted)
        key = (id(vocabulary), len(vocabulary))
        if getattr(self, "_vocab_key", None) != key:
            slotted_vocab = vocabulary.to_frame("tok").select(slotted_expr(pl.col("tok"))).to_series()
            self._vocab_map = np.concatenate(([UNKNOWN_BIT], self._ids(slotted_vocab))).astype(np.uint64)
            self._vocab_key = key
        ids = batch.ids
        unknown = ids >= UNKNOWN_BIT
        out = np.empty(len(ids), dtype=np.uint64)
        out[~unknown] = self._vocab_map[ids[~unknown].astype(np.int64)]
        if unknown.any():
            strings = batch.token_strings(unknown)
            out[unknown] = self._ids(strings.to_frame("tok").select(slotted_expr(pl.col("tok"))).to_series())
        return out

    def match(self, batch: TokenBatch, texts: Sequence[str], min_share: float, vocabulary: pl.Series | None = None) -> pl.DataFrame:
        """Template hits: columns text_ix, template_ix, score, char_start, char_end.

        First pass on the batch's own tokens (no quote slots): any template n-gram marks a candidate.
        Second pass, candidates only: re-tokenized with quoted spans as slots, scored exactly.
        """
        if not batch.has_strings:
            raise ParameterError("the artifact layer needs the batch's token strings", "encode the batch with keep_tokens=True")
        first = self.match_batch(TokenBatch(ids=self._first_pass_ids(batch, vocabulary), offsets=batch.offsets), min_share=1e-9)
        if first.is_empty():
            return _empty_matches()
        candidates = np.unique(first["text_ix"].to_numpy())
        frame = _quote_slotted_frame([texts[i] for i in candidates])
        offsets = _offsets(frame["text_ix"].to_numpy(), len(candidates))
        second = self.match_batch(TokenBatch(ids=self._ids(frame["tok"]), offsets=offsets), min_share)
        if second.is_empty():
            return _empty_matches()
        raw = frame["raw"].to_list()
        hits = list(second.select("text_ix", "tok_start", "tok_end").iter_rows())
        spans_of = token_offsets_batch([texts[candidates[local]] for local, _, _ in hits],
                                       [raw[offsets[local] : offsets[local + 1]] for local, _, _ in hits])
        starts = [spans[tok_start][0] for spans, (_, tok_start, _) in zip(spans_of, hits)]
        ends = [spans[max(tok_end - 1, tok_start)][1] for spans, (_, tok_start, tok_end) in zip(spans_of, hits)]
        return second.with_columns(
            pl.Series("text_ix", candidates[second["text_ix"].to_numpy()]),
            pl.Series("char_start", starts, dtype=pl.Int64),
            pl.Series("char_end", ends, dtype=pl.Int64),
        ).select("text_ix", "template_ix", "score", "char_start", "char_end")

    def match_batch(self, slotted_batch: TokenBatch, min_share: float) -> pl.DataFrame:
        n = self.params.ngram_size
        if self.templates.height == 0:
            return _empty_matches()
        grams = ngram_hashes_multi(slotted_batch, [n])[n]
        known = np.flatnonzero(grams.known)
        hashes, template_of_hash, template_ngrams = self._lookup
        found, entry = equal_entries(hashes, grams.hashes[known])
        if len(entry) == 0:
            return _empty_matches()
        at = known[found]
        hits = pl.DataFrame({"h": grams.hashes[at], "text_ix": grams.text_ix[at], "tok_start": grams.start[at],
                             "template_ix": template_of_hash[entry]})
        found = hits.group_by("text_ix", "template_ix").agg(
            pl.col("h").n_unique().alias("n"), pl.col("tok_start").min(), (pl.col("tok_start").max() + n).alias("tok_end"))
        share = found["n"].to_numpy() / np.maximum(template_ngrams[found["template_ix"].to_numpy()], 1)
        return (found.with_columns(pl.Series("score", np.minimum(share, 1.0)))
                .filter(pl.col("score") >= min_share)
                .select(pl.col("text_ix").cast(pl.Int64), pl.col("template_ix").cast(pl.Int32), "score",
                        pl.col("tok_start").cast(pl.Int64), pl.col("tok_end").cast(pl.Int64)))


def _template_hashes(tokens: list[str], vocab: pl.Series, ids: pl.Series, n: int) -> list[int]:
    arr = (pl.Series(tokens, dtype=pl.String).replace_strict(vocab, ids, default=None, return_dtype=pl.UInt64)
           .fill_null(int(UNKNOWN_BIT)).to_numpy().astype(np.uint64))
    grams = ngram_hashes_multi(TokenBatch(ids=arr, offsets=np.array([0, len(arr)], dtype=np.int64)), [n])[n]
    return grams.hashes.tolist()


def _mostly_words(tokens: Sequence[str]) -> bool:
    """A template is words with a few slots; a run of slots ("<n> <n> <n> ...") is data, not a template."""
    words = sum(1 for t in tokens if not (t.startswith("<") and t.endswith(">")))
    return words >= 4 and words >= len(tokens) / 2


def _drop_containing(templates: list[tuple[str, tuple]]) -> list[tuple[str, tuple]]:
    """Drop a template that contains a shorter template of the same benchmark (keep the core)."""
    out = []
    for bench, toks in templates:
        text = " " + " ".join(toks) + " "
        inner = any(b == bench and len(t) < len(toks) and (" " + " ".join(t) + " ") in text for b, t in templates)
        if not inner:
            out.append((bench, toks))
    return sorted(out)


def _empty_templates() -> pl.DataFrame:
    return pl.DataFrame(schema={"benchmark": pl.String, "origin": pl.String, "text": pl.String, "tokens": pl.List(pl.String),
                                "note": pl.String, "template_id": pl.String, "n_tokens": pl.UInt32,
                                "item_ids": pl.List(pl.String), "items": pl.Int64,
                                "coverage": pl.Float64, "distinctiveness": pl.Float64})


def _empty_matches() -> pl.DataFrame:
    return pl.DataFrame(schema={"text_ix": pl.Int64, "template_ix": pl.Int32, "score": pl.Float64,
                                "tok_start": pl.Int64, "tok_end": pl.Int64})


def load_curated(path: Path) -> list[dict]:
    """Curated templates: JSON Lines with benchmark, id, text and an optional note."""
    out = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:  # (a Parquet file given for it was a traceback)
        raise InputError(f"{path} is not UTF-8 text (byte {exc.start + 1})", "curated templates are JSON Lines, one template per line") from exc
    for line_no, entry in json_objects(text.split("\n"), path, "fix the curated template file"):
        if not {"benchmark", "text"} <= set(entry):
            raise InputError(f"{path}:{line_no}: a curated template needs benchmark and text", 'e.g. {"benchmark": "judgebench", "id": "kkkkk", "text": "..."}')
        out.append(entry)
    return out
