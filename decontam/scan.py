"""Scanning: corpus records are cut into segments, batched, and run through the index's layers.

``scan`` cuts the inputs into shards and hands them to an engine; ``run_shard`` is the shard function
every engine runs; ``scan_records`` streams one shard's records in batches, so only one batch of
records is in memory at a time; ``scan_batch`` runs the layers over one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .engines import MAX_SHARD_BYTES, Shard, WorkDir, merge_counts, merge_findings, plan_shards, run_key
from .engines.local import run_local, workers_worth_starting
from .errors import InputError, ParameterError, UnreadableInputError
from .findings import FINDINGS_SCHEMA, SORT_KEYS, empty_findings, summarize
from .index import Index, default_index_path, load_index
from .layers.embedding import missing_packages
from .layers.ngram import check_scan_params
from .ngrams import ascii_first, encode_batch
from .normalize import token_offsets_batch, tokenize_batch
from .readers import describe_keys, expand_inputs, iter_records, segments_of
from .types import Finding, MalformedRow, Record, Segment

MAX_EXAMPLES = 20  # malformed / text-less rows listed in the summary (all of them are counted)


@dataclass(frozen=True)
class ScanOptions:
    methods: tuple[str, ...] | None = None  # default: every layer in the index
    min_score: float | None = None  # n-gram share threshold; default: the index's
    min_jaccard: float | None = None  # MinHash threshold; default: the index's
    min_share: float | None = None  # artifact: share of a template's n-grams; default: the index's
    min_cosine: float | None = None  # embedding: cosine threshold; default: the index's
    min_lexical: float | None = None  # embedding: first-stage TF-IDF cosine; default: the index's
    embedding_model: str | None = None  # only checked against the index
    device: str | None = None  # embedding model device (default: cuda when there is one)
    embedding_cache: str | None = None  # folder of cached segment vectors
    ngram_size: int | None = None  # only checked against the index
    fields: tuple[str, ...] | None = None  # scan only these top-level fields
    batch_size: int = 4000  # records per batch (2,000: 7-9% slower, each batch has fixed costs)...
    batch_bytes: int = 8 << 20  # ...or fewer, once they hold this much text (long documents, text files)
    strict: bool = False  # a malformed row is an error instead of a count
    evidence_chars: int = 200
    only_rows: Mapping[str, frozenset[int]] | None = None  # per source, the only rows to scan (--since)

    def validate(self, index: Index) -> None:
        methods = self.methods or tuple(index.methods)
        missing = [m for m in methods if m not in index.layers]
        if missing:
            raise ParameterError(f"method(s) {missing} are not in index {index.path}; it has {index.methods}",
                                 f"choose from {', '.join(index.methods)} or rebuild the index with them")
        if self.batch_size < 1:
            raise ParameterError(f"batch_size={self.batch_size} must be at least 1", "4000 is the default")
        if self.batch_bytes < 1:
            raise ParameterError(f"batch_bytes={self.batch_bytes} must be at least 1", f"{8 << 20} (8 MB) is the default")
        # (a threshold past 1 would let nothing through, and the gate pass; one at 0 or below, everything)
        for name, value, layer in (("min_score", self.min_score, "ngram"), ("min_jaccard", self.min_jaccard, "minhash"),
                                   ("min_share", self.min_share, "artifact"), ("min_cosine", self.min_cosine, "embedding"),
                                   ("min_lexical", self.min_lexical, "embedding")):
            low_open = name != "min_lexical"  # (a first stage at 0 embeds every segment)
            if value is not None and not (0 < value <= 1 if low_open else 0 <= value <= 1):
                params = getattr(index.layers.get(layer), "params", None)
                raise ParameterError(f"{name}={value} must be in {'(0' if low_open else '[0'}, 1]",
                                     f"leave it out to use the index's {getattr(params, name)}" if params is not None else "thresholds are in [0, 1]")
        if "ngram" in methods:
            check_scan_params(index.layers["ngram"], self.ngram_size)
        if "embedding" in methods and self.embedding_model and self.embedding_model != index.layers["embedding"].meta["model"]:
            raise ParameterError(
                f"the scan asks for embedding model {self.embedding_model!r} but the index was built with {index.layers['embedding'].meta['model']!r}",
                "drop --embedding-model, or rebuild the index with --embedding-model " + self.embedding_model)


@dataclass
class ScanCounts:
    rows_read: int = 0
    rows_malformed: int = 0
    rows_without_text: int = 0
    rows_unchanged: int = 0  # rows left out by options.only_rows
    segments: int = 0
    malformed_examples: list[dict] = field(default_factory=list)
    without_text_examples: list[dict] = field(default_factory=list)
    rows_read_by_source: dict[str, int] = field(default_factory=dict)  # of the whole scan (``scan`` sets it)
    rows_by_source: dict[str, int] = field(default_factory=dict)  # every row of each file, read or left out (``clean`` checks it)
    fields_seen: list[str] = field(default_factory=list)  # of ScanOptions.fields, those some row has

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ScanResult:
    findings: pl.DataFrame
    counts: ScanCounts
    index: Index
    methods: tuple[str, ...] = ()  # the layers that ran
    skipped: dict[str, str] = field(default_factory=dict)  # layer -> why it did not run

    def iter_findings(self) -> Iterator[Finding]:
        """The findings table as ``Finding`` objects, one per row."""
        for row in self.findings.iter_rows(named=True):
            yield Finding(**row)

    def summary(self, *, fail_min_score: float = 0.0) -> dict:
        items = {b["name"]: b["items"] for b in self.index.manifest["benchmarks"]}
        templates = self.index.layers["artifact"].templates if "artifact" in self.index.layers else None
        summary = summarize(self.findings, self.counts.as_dict(), items, fail_min_score=fail_min_score, templates=templates)
        return {**summary, "layers_run": list(self.methods), "layers_skipped": dict(self.skipped)}


def resolve_index(index: Index | str | Path | None, *, salt: bytes | None = None) -> Index:
    if isinstance(index, Index):
        return index
    return load_index(default_index_path() if index is None else index, salt=salt)


def scan(
    inputs: str | Sequence[str],
    *,
    index: Index | str | Path | None = None,
    options: ScanOptions | None = None,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
    work_dir: str | Path | None = None,
    shard_bytes: int | None = None,
    engine: str = "local",
    address: str | None = None,
    embedding_actors: int | None = None,
    note: Callable[[str], None] | None = None,
) -> ScanResult:
    """Scan corpus files (or ``-``, globs, folders, URLs, ``hf:`` datasets) against an index.

    The inputs are cut into shards (files, byte ranges of big JSONL files, Parquet row groups) that
    ``workers`` processes scan (``engine="ray"``: Ray tasks on the cluster at ``address``, or a local
    one); with ``work_dir`` every finished shard is kept there and a rerun after a crash scans only
    the rest. ``progress`` is called with the number of records done. On Ray, ``embedding_actors``
    model actors serve the embedding layer (default: one per cluster GPU; 0: each task loads the
    model); ``note`` receives a line saying how the engine was set up.
    """
    index = resolve_index(index)
    options, skipped = _default_methods(index, options or ScanOptions())
    for method, why in skipped.items():
        if note:
            note(f"The {method} layer was skipped: {why}")
    options.validate(index)
    if workers < 1:
        raise ParameterError(f"workers={workers} must be at least 1", "1 scans in this process; leave it out for one worker per core")
    sources = expand_inputs([inputs] if isinstance(inputs, str) else list(inputs))
    if engine == "local" and work_dir is None and shard_bytes is None:
        shards = _local_plan(sources, workers, options.methods or tuple(index.methods))
    else:
        shards = plan_shards(sources, shard_bytes)
    folder = None
    if work_dir is not None:
        if "-" in sources:
            raise ParameterError("a scan of stdin cannot be resumed: a rerun reads another stream",
                                 "drop --work-dir, or write the stream to a file and scan that")
        folder = WorkDir(work_dir, run_key(sources, index.manifest.get("files", {}), _options_key(options), shards))
    done_rows = [0]

    def on_shard(shard, counts):
        done_rows[0] += counts["rows_read"]
        if progress:
            progress(done_rows[0])

    if engine == "local" and embedding_actors is not None:
        raise ParameterError("embedding_actors is for the Ray engine", "drop --embedding-actors, or scan with --engine ray")
    if engine == "local":
        results = run_local(shards, index, options, workers=workers, work_dir=folder, on_shard=on_shard, note=note)
    elif engine == "ray":
        from .engines.ray import run_ray

        results = run_ray(shards, index, options, address=address, work_dir=folder, on_shard=on_shard,
                          num_cpus=workers if address is None else None, embedding_actors=embedding_actors, on_note=note)
    else:
        raise ParameterError(f"engine {engine!r} is not local or ray", "use --engine local (default) or --engine ray")
    by_source: dict[str, int] = {}
    in_source: dict[str, int] = {}
    for shard, _, shard_counts in results:
        name = "<stdin>" if shard.source == "-" else shard.source  # as the findings name it
        by_source[name] = by_source.get(name, 0) + shard_counts["rows_read"]
        in_source[name] = in_source.get(name, 0) + shard_counts["rows_read"] + shard_counts["rows_unchanged"]
    counts = ScanCounts(**merge_counts([c for _, _, c in results]), rows_read_by_source=by_source, rows_by_source=in_source)
    missing = [name for name in options.fields or () if name not in counts.fields_seen]
    if missing and counts.rows_read > counts.rows_malformed:  # a misspelt field would leave its text unscanned, and the gate open
        raise ParameterError(f"--fields {','.join(options.fields)}: no row has the field(s) {missing}",
                             "fields are the rows' top-level keys, spelled exactly; drop --fields to scan every field")
    result = ScanResult(merge_findings([f for _, f, _ in results]), counts, index, options.methods or tuple(index.methods), skipped)
    _refuse_unreadable_sources(results, result)
    return result


def _local_plan(sources: list[str], workers: int, methods: tuple[str, ...]) -> list[Shard]:
    """Shards for a local scan that keeps no work folder: the default plan where several workers will
    start; where it all runs in this process, 64 MB shards (cheaper: a 50 MB file in 4 MB shards took
    1.9 s, in one 1.8 s) and streams read line by line, not in pieces (a 100 MB .gz: 604 -> 470 MB peak)."""
    shards = plan_shards(sources, MAX_SHARD_BYTES)
    if min(workers, workers_worth_starting(shards, methods)) > 1:
        return plan_shards(sources)
    return [Shard(s.source) if s.chunk_bytes else s for s in shards]


def _refuse_unreadable_sources(results: list[tuple[Shard, pl.DataFrame, dict]], result: ScanResult) -> None:
    """A file none of whose rows could be read is in a format decontam does not read (a pretty-printed
    JSON object, CSV named .jsonl, ...): an input error, not a clean scan that exits 0. The error
    carries the ``result`` of the scan, whose findings on the other files are not to be lost."""
    per_source: dict[str, list[int]] = {}
    for shard, _, counts in results:
        totals = per_source.setdefault(shard.source, [0, 0])
        totals[0] += counts["rows_read"]
        totals[1] += counts["rows_malformed"]
    for source, (rows, malformed) in per_source.items():
        if rows and malformed == rows:
            name = "<stdin>" if source == "-" else source
            first = next((m for _, _, c in results for m in c.get("malformed_examples", []) if m["location"].startswith(f"{name}:")), None)
            if first and first["problem"].startswith("not UTF-8"):
                hint = f"the file is not UTF-8 text; convert it, e.g. iconv -f LATIN1 -t UTF-8 {name} > converted (with its real encoding)"
            else:
                hint = ("decontam reads JSONL (one JSON object per line), .json files holding one array of objects, CSV and TSV "
                        "with a header row, Parquet and datasets; a file holding one object around a list converts with "
                        "`jq -c '.data[]' FILE > FILE.jsonl`")
            what = f"none of the {rows:,} rows of {name} could be read" if rows > 1 else f"the only row of {name} could not be read"
            raise UnreadableInputError(what + (f" ({first['location']}: {first['problem']})" if first else ""), hint, result)


def _default_methods(index: Index, options: ScanOptions) -> tuple[ScanOptions, dict[str, str]]:
    """By default every layer of the index runs, except the embedding layer where its packages are
    missing: the scan goes on without it and says so. Asked for by name (``methods``), it must run."""
    if options.methods is not None or "embedding" not in index.layers:
        return options, {}
    missing = missing_packages(index.layers["embedding"].meta["model"])
    if not missing:
        return options, {}
    why = (f"{', '.join(missing)} not installed (pip install torch==2.13.0 on a CPU-only machine, then "
           'pip install "decontam[embed]"); --methods ...,embedding makes this an error')
    return replace(options, methods=tuple(m for m in index.methods if m != "embedding")), {"embedding": why}


def _options_key(options: ScanOptions) -> dict:
    out = {k: v for k, v in asdict(options).items() if k != "only_rows"}
    out["only_rows"] = {k: sorted(v) for k, v in (options.only_rows or {}).items()}
    return out


def run_shard(shard: Shard, index: Index, options: ScanOptions, payload: bytes | None = None) -> tuple[pl.DataFrame, dict]:
    """The shard function every engine runs: findings and counts of one shard (``payload``: its
    bytes, where the engine read them already)."""
    counts = ScanCounts()
    frames = list(scan_records(_shard_records(shard, payload, options, counts), index, options, lambda _record: counts))
    findings = pl.concat(frames) if frames else empty_findings()
    return findings.sort(SORT_KEYS), counts.as_dict()


def run_small_files(shards: Sequence[Shard], index: Index, options: ScanOptions) -> list[tuple[pl.DataFrame, dict]]:
    """``run_shard`` of each of several whole-file shards, their records in shared batches: a batch
    has a fixed cost (~2 ms), which a folder of many small files paid once per file."""
    counts = {shard.source: ScanCounts() for shard in shards}
    records = (record for shard in shards for record in _shard_records(shard, None, options, counts[shard.source]))
    frames = list(scan_records(records, index, options, lambda record: counts[record.source]))
    findings = (pl.concat(frames) if frames else empty_findings()).sort(SORT_KEYS)
    by_source = {source: frame for (source,), frame in findings.partition_by("source", as_dict=True).items()} if findings.height else {}
    return [(by_source.get(shard.source, empty_findings()), counts[shard.source].as_dict()) for shard in shards]


def _shard_records(shard: Shard, payload: bytes | None, options: ScanOptions, counts: ScanCounts) -> Iterator[Record]:
    """The shard's records to scan; rows left out (``only_rows``) and malformed rows are counted here."""
    only = options.only_rows.get(shard.source) if options.only_rows else None
    for record in iter_records(shard.source, byte_range=shard.byte_range, row_groups=shard.row_groups,
                               first_row=shard.first_row, payload=payload, first_line=shard.first_line):
        if only is not None and (record.row if isinstance(record, Record) else record.line - 1) not in only:
            counts.rows_unchanged += 1
            continue
        if isinstance(record, MalformedRow):
            counts.rows_read += 1
            counts.rows_malformed += 1
            if options.strict:
                raise InputError(f"{record.location()}: {record.problem}", "fix the row, or drop --strict to count and skip malformed rows")
            if len(counts.malformed_examples) < MAX_EXAMPLES:
                counts.malformed_examples.append({"location": record.location(), "problem": record.problem})
            continue
        yield record


def scan_records(records: Iterable[Record], index: Index, options: ScanOptions,
                 counts_of: Callable[[Record], ScanCounts]) -> Iterator[pl.DataFrame]:
    """Findings for each batch of ``options.batch_size`` records, or fewer holding ``options.batch_bytes``
    (one batch in memory at a time: 2,000 records of 64 KB took 3 GB); ``counts_of(record)``: where the
    record is counted (records of several files may share a batch)."""
    batch: list[Record] = []
    held = 0
    for record in records:
        batch.append(record)
        held += record.size or text_size(record.data)
        if len(batch) >= options.batch_size or held >= options.batch_bytes:
            yield scan_batch(batch, index, options, counts_of)
            batch, held = [], 0
    if batch:
        yield scan_batch(batch, index, options, counts_of)


def text_size(value: Any) -> int:
    """Characters of the strings inside a value: the size of a record whose reader did not say it
    (on a stack of its own, as ``readers.segments_of`` walks a record: a row may be nested deeply)."""
    size, stack = 0, [value]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            size += len(value)
        elif isinstance(value, dict):
            stack += value.values()
        elif isinstance(value, (list, tuple)):
            stack += value
    return size


def scan_batch(records: Sequence[Record], index: Index, options: ScanOptions, counts_of: Callable[[Record], ScanCounts]) -> pl.DataFrame:
    """Findings for one batch of records, each counted in ``counts_of(record)``."""
    seg_record: list[int] = []
    segments: list[Segment] = []
    for position, record in enumerate(records):
        tally = counts_of(record)
        tally.rows_read += 1
        found = segments_of(record.data, options.fields)
        if options.fields:
            tally.fields_seen += [name for name in options.fields if name not in tally.fields_seen and name in record.data]
        if not found:
            tally.rows_without_text += 1
            if len(tally.without_text_examples) < MAX_EXAMPLES:
                tally.without_text_examples.append({"location": f"{record.source}:{record.row + 1}", "keys": describe_keys(record.data)})
        tally.segments += len(found)
        segments += found
        seg_record += [position] * len(found)
    if not segments:
        return empty_findings()
    texts, assistant, text_of_segment = _distinct_texts(segments)

    methods = options.methods or tuple(index.methods)
    encoded = encode_batch(texts, index.vocabulary, keep_tokens="artifact" in methods)
    matches = []
    items = index.part_descriptors
    if "ngram" in methods:
        layer = index.layers["ngram"]
        found = layer.match(encoded, options.min_score if options.min_score is not None else layer.params.min_score)
        matches.append(_complete(found.join(items, on="part_ix"), "ngram"))
    if "minhash" in methods:
        layer = index.layers["minhash"]
        found = layer.match(encoded, options.min_jaccard if options.min_jaccard is not None else layer.params.min_jaccard)
        matches.append(_complete(found.join(items, on="part_ix"), "minhash"))
    if "artifact" in methods:
        layer = index.layers["artifact"]
        found = layer.match(encoded, texts,
                            options.min_share if options.min_share is not None else layer.params.min_share,
                            vocabulary=index.vocabulary)
        matches.append(_complete(found.join(layer.descriptors, on="template_ix"), "artifact"))
    if "embedding" in methods:
        layer = index.layers["embedding"]
        layer.device, layer.cache_dir = options.device, options.embedding_cache
        found = layer.match(encoded, texts,
                            options.min_cosine if options.min_cosine is not None else layer.params.min_cosine,
                            options.min_lexical if options.min_lexical is not None else layer.params.min_lexical,
                            assistant=assistant, vocabulary=index.vocabulary)
        matches.append(_complete(found.join(items, on="part_ix"), "embedding"))
    matched = pl.concat(matches)
    if matched.is_empty():
        return empty_findings()
    every_segment = pl.DataFrame({"text_ix": text_of_segment, "segment_ix": np.arange(len(segments), dtype=np.int64)})
    matched = matched.join(every_segment, on="text_ix").drop("text_ix").rename({"segment_ix": "text_ix"})
    return _to_findings(matched, records, segments, seg_record, options)


def _distinct_texts(segments: Sequence[Segment]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The texts to scan: each distinct (text, is an assistant turn) once, all-ASCII texts first (the
    cheaper tokenizer path takes them in one run); whether each is an assistant turn; and, for every
    segment, the place of its text in that list. A text that recurs in a batch (the prompt and shared
    turns of chosen and rejected, a system prompt on every row) is scanned once and its matches go to
    every segment that holds it; the embedding layer's bar depends on the role, hence the flag."""
    group_of: dict[tuple[str, bool], int] = {}
    group = np.array([group_of.setdefault((s.text, s.role == "assistant"), len(group_of)) for s in segments], dtype=np.int64)
    keys = list(group_of)
    order = ascii_first([text for text, _ in keys])
    place = np.empty(len(order), dtype=np.int64)
    place[order] = np.arange(len(order))
    return [keys[i][0] for i in order], np.array([keys[i][1] for i in order], dtype=bool), place[group]


# What a layer may leave out of its matches: token span (n-gram), character span (artifact,
# embedding), first-stage score and whether the vector was the question with its right choice
# (embedding). Absent means the whole segment / no such stage.
_OPTIONAL_COLUMNS = {"tok_start": pl.Int64, "tok_end": pl.Int64, "char_start": pl.Int64, "char_end": pl.Int64, "lexical": pl.Float64,
                     "with_answer": pl.Boolean}
_MATCH_COLUMNS = ["text_ix", "score", *_OPTIONAL_COLUMNS, "method", "benchmark", "subset", "item_id", "item_part", "kind"]


def _complete(frame: pl.DataFrame, method: str) -> pl.DataFrame:
    missing = [pl.lit(None, dtype).alias(name) for name, dtype in _OPTIONAL_COLUMNS.items() if name not in frame.columns]
    return frame.with_columns(*missing, pl.lit(method).alias("method")).select(_MATCH_COLUMNS)


def _to_findings(matched: pl.DataFrame, records: Sequence[Record], segments: Sequence[Segment], seg_record: list[int],
                 options: ScanOptions) -> pl.DataFrame:
    text_ix = matched["text_ix"].to_numpy()
    # character spans of the tokens of every segment whose evidence is a token span, in one pass
    located = matched.filter(pl.col("tok_start").is_not_null() & pl.col("char_start").is_null())
    needed = dict(located.group_by("text_ix").agg(pl.max_horizontal("tok_end", pl.col("tok_start") + 1).max()).iter_rows())
    flagged = sorted(needed)
    texts = [segments[i].text for i in flagged]
    tokens = [toks[:needed[i]] for i, toks in zip(flagged, tokenize_batch(texts))]  # up to the last token evidence needs
    offsets_of = dict(zip(flagged, token_offsets_batch(texts, tokens))) if flagged else {}
    spans_start, spans_end, evidence = [], [], []
    rows = zip(text_ix.tolist(), matched["tok_start"].to_list(), matched["tok_end"].to_list(),
               matched["char_start"].to_list(), matched["char_end"].to_list())
    for t, tok_start, tok_end, char_start, char_end in rows:
        text = segments[t].text
        if char_start is not None:  # the layer located the evidence itself
            start, end = char_start, char_end
        elif tok_start is None:  # whole-segment methods
            start, end = 0, len(text)
        else:
            offsets = offsets_of[t]
            start, end = offsets[tok_start][0], _with_closing_marks(text, offsets[max(tok_end - 1, tok_start)][1])
        spans_start.append(start)
        spans_end.append(end)
        evidence.append(shorten(text[start:end], options.evidence_chars))
    lexical = matched["lexical"].to_list()
    evidence = [e if lex is None else  # which stages fired, both scores, and against what
                f"[lexical {lex:.2f} -> cosine {score:.2f}{' with its right choice' if with_answer else ''}] {e}"
                for e, lex, score, with_answer in zip(evidence, lexical, matched["score"].to_list(), matched["with_answer"].to_list())]
    seg_rec = np.asarray(seg_record)[text_ix]
    return pl.DataFrame({
        "source": [records[r].source for r in seg_rec],
        "row": [records[r].row for r in seg_rec],
        "record_id": [records[r].record_id for r in seg_rec],
        "field": [segments[t].field for t in text_ix],
        "role": [segments[t].role for t in text_ix],
        "benchmark": matched["benchmark"],
        "subset": matched["subset"],
        "item_id": matched["item_id"],
        "item_part": matched["item_part"],
        "method": matched["method"],
        "kind": matched["kind"],
        "score": matched["score"].round(4),
        "span_start": spans_start,
        "span_end": spans_end,
        "evidence": evidence,
    }, schema=FINDINGS_SCHEMA)


_CLOSING_MARKS = frozenset(".,;:!?)]}%\"'’”»…")


def _with_closing_marks(text: str, end: int) -> int:
    """A token span's end moved past the punctuation that closes its last token (at most three
    characters: "f(2)?", not "f(2"): tokens are letters and digits only."""
    limit = min(len(text), end + 3)
    while end < limit and text[end] in _CLOSING_MARKS:
        end += 1
    return end


def shorten(text: str, limit: int) -> str:
    """``text`` on one line in at most ``limit`` characters: its start and end around " ... ", cut
    between words where a word boundary lies in the last fifth of each half (a word is not cut in
    two to show its first letters)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    head, tail = text[:half], text[-half:]
    if text[half] != " " and (cut := head.rfind(" ")) >= half * 4 // 5:
        head = head[:cut]  # (the text's spaces are single)
    if text[-half - 1] != " " and 0 <= (cut := tail.find(" ")) <= half // 5:
        tail = tail[cut + 1:]
    return f"{head} ... {tail}"
