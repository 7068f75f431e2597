"""The ``decontam`` command: parses options, calls the Python API, prints, maps errors to exit codes.

Exit codes (a contract with users' CI scripts): 0 no finding at or above the gate, 1 contamination
found, 2 usage or input error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .atomic import replaced, write_text
from .audit import build_audit, write_audit
from .clean import CleanPolicy, clean_corpus, clean_folder, write_manifest
from .engines.local import available_cores
from .errors import DecontamError, InputError, ParameterError, UnreadableInputError
from .findings import (check_index_matches, files_with_findings, findings_format, read_findings, read_findings_with_metadata,
                       write_findings)
from .gate import check_policy, evaluate, parse_policy, read_baseline, to_junit, to_sarif, without_baseline, write_baseline
from .incremental import changed_rows
from .report import RENDERERS, build_report, count_of, flagged_of_read, printable
from .splits import (NOT_IN_INDEX, compare_scores, contaminated_items, item_ids, read_results, render_comparison,
                     split_benchmarks)
from .index import (CURATED_TEMPLATES, DEFAULT_METHODS, IndexParams, build_index, build_index_cached, default_index_path, load_index,
                    verify_files)
from .layers import ArtifactParams, EmbeddingParams, MinHashParams, NgramParams
from .private import PRIVATE_INDEX_REVEALS, export_private
from .readers import MIN_SEGMENT_CHARS, expand_inputs
from .registry import RECIPES_DIR, load_recipes, pin, recipe_sources
from .scan import ScanOptions, ScanResult, resolve_index, scan, shorten
from .testsets import MAP_ROLES, parse_source

EXIT_CLEAN, EXIT_FOUND, EXIT_ERROR = 0, 1, 2

app = typer.Typer(
    name="decontam",
    help="Find benchmark test sets inside training corpora.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
index_app = typer.Typer(help="Build and inspect indexes of benchmark test sets.", no_args_is_help=True)
app.add_typer(index_app, name="index")
artifacts_app = typer.Typer(help="Review the benchmark instruction templates an index holds.", no_args_is_help=True)
app.add_typer(artifacts_app, name="artifacts")
benchmarks_app = typer.Typer(help="The registry of benchmark recipes (indexes/recipes/*.toml).", no_args_is_help=True)
app.add_typer(benchmarks_app, name="benchmarks")


def _err(text: str) -> None:
    print(printable(text), file=sys.stderr)


def _fail(exc: DecontamError) -> typer.Exit:
    _err(f"Error: {exc.message}")
    if exc.hint:
        _err(f"Hint: {exc.hint}")
    return typer.Exit(code=EXIT_ERROR)


def _split_csv(value: Optional[str]) -> Optional[tuple[str, ...]]:
    if value is None:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    return items or None


def _parse_maps(maps: list[str]) -> dict[str, dict[str, str]]:
    """``NAME:ROLE=FIELD`` options -> {NAME: {ROLE: FIELD}}."""
    out: dict[str, dict[str, str]] = {}
    for text in maps:
        name, sep, rest = text.partition(":")
        role, sep2, field = rest.partition("=")
        if not sep or not sep2 or not name or not field or role not in MAP_ROLES:
            raise ParameterError(f"--map {text!r} is not NAME:ROLE=FIELD with ROLE one of {', '.join(MAP_ROLES)}",
                                 "e.g. --map wizardlm:question=Instruction --map arc:question=question.stem")
        out.setdefault(name, {})[role] = field
    return out


@app.callback(invoke_without_command=True)
def _version(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False) -> None:
    if version:
        print(f"decontam {__version__}")
        raise typer.Exit()


@index_app.command("build")
def index_build(
    index_dir: Annotated[Path, typer.Argument(help="Folder to write the index to (replaced if it holds an index).")],
    source: Annotated[list[str], typer.Option("--source", help="NAME=PATH_OR_HF_ID; repeat for each benchmark. Hub: hf:ID?config=C&split=S&revision=R.")] = [],  # noqa: B006
    benchmark: Annotated[list[str], typer.Option("--benchmark", help="A benchmark from the registry (`decontam benchmarks list`); a --source of the same name gives a local copy.")] = [],  # noqa: B006
    map_: Annotated[list[str], typer.Option("--map", help="NAME:ROLE=FIELD, ROLE one of question/choices/answer/id/subset; nested fields as a.b or a[0].b.")] = [],  # noqa: B006
    methods: Annotated[str, typer.Option(help="Layers to build, comma-separated.")] = ",".join(DEFAULT_METHODS),
    ngram_size: Annotated[int, typer.Option(help="Words per n-gram in the exact layer.")] = NgramParams.ngram_size,
    min_score: Annotated[float, typer.Option(help="Default n-gram score threshold stored for scans.")] = NgramParams.min_score,
    boilerplate_min_items: Annotated[int, typer.Option(help="An n-gram or shingle in this many items of one benchmark is boilerplate and ignored.")] = NgramParams.boilerplate_min_items,
    min_part_tokens: Annotated[int, typer.Option(help="Item parts with fewer words are not indexed (under 5 words they match only segments they make up most of).")] = IndexParams.min_part_tokens,
    num_perm: Annotated[int, typer.Option(help="MinHash permutations.")] = MinHashParams.num_perm,
    shingle_size: Annotated[int, typer.Option(help="Words per MinHash shingle.")] = MinHashParams.shingle_size,
    min_jaccard: Annotated[float, typer.Option(help="Jaccard threshold the LSH is tuned for.")] = MinHashParams.min_jaccard,
    min_shingles: Annotated[int, typer.Option(help="Texts with fewer distinct shingles are left to the n-gram layer.")] = MinHashParams.min_shingles,
    background: Annotated[list[Path], typer.Option("--background", help="Corpus of ordinary text (repeatable): its frequent phrases are not templates.")] = [],  # noqa: B006
    templates: Annotated[Optional[Path], typer.Option(help="Curated templates (JSON Lines) for the artifact layer; default: indexes/curated_templates.jsonl.")] = None,
    no_curated: Annotated[bool, typer.Option("--no-curated", help="Mine templates only; add no curated ones.")] = False,
    min_share: Annotated[float, typer.Option(help="Default artifact threshold: share of a template's n-grams.")] = ArtifactParams.min_share,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Reuse an index built before from the same benchmark revisions and parameters.")] = None,
    embedding_model: Annotated[str, typer.Option(help="Embedding layer model (with --methods ...,embedding): a sentence-transformers name or local folder.")] = EmbeddingParams.model,
    min_cosine: Annotated[float, typer.Option(help="Default embedding threshold (cosine).")] = EmbeddingParams.min_cosine,
    min_lexical: Annotated[float, typer.Option(help="Default first-stage threshold of the embedding layer (TF-IDF cosine).")] = EmbeddingParams.min_lexical,
) -> None:
    """Build an index over benchmark test sets."""
    try:
        maps = _parse_maps(map_)
        specs = [parse_source(s) for s in source]
        if benchmark:
            overrides = {s.name: s for s in specs}
            specs = recipe_sources(benchmark, overrides) + [s for s in specs if s.name not in benchmark]
        if not specs:
            raise ParameterError("no test set given", "add --source NAME=PATH_OR_HF_ID or --benchmark NAME")
        unknown = set(maps) - {s.name for s in specs}
        if unknown:
            raise ParameterError(f"--map names benchmark(s) {sorted(unknown)} that no --source defines", "use the NAME given in --source")
        specs = [type(s)(**{**s.__dict__, "field_map": maps[s.name]}) if s.name in maps else s for s in specs]
        params = IndexParams(
            ngram=NgramParams(ngram_size, boilerplate_min_items, min_score),
            minhash=MinHashParams(num_perm=num_perm, shingle_size=shingle_size, min_jaccard=min_jaccard, min_shingles=min_shingles,
                                  boilerplate_min_items=boilerplate_min_items),
            artifact=ArtifactParams(min_share=min_share),
            embedding=EmbeddingParams(model=embedding_model, min_cosine=min_cosine, min_lexical=min_lexical),
            min_part_tokens=min_part_tokens,
            methods=_split_csv(methods) or (),
        )
        _check_layer_options(params.methods, {
            "--ngram-size": (ngram_size != NgramParams.ngram_size, "ngram"), "--min-score": (min_score != NgramParams.min_score, "ngram"),
            "--num-perm": (num_perm != MinHashParams.num_perm, "minhash"), "--shingle-size": (shingle_size != MinHashParams.shingle_size, "minhash"),
            "--min-jaccard": (min_jaccard != MinHashParams.min_jaccard, "minhash"),
            "--min-shingles": (min_shingles != MinHashParams.min_shingles, "minhash"),
            "--background": (bool(background), "artifact"), "--templates": (templates is not None, "artifact"),
            "--no-curated": (no_curated, "artifact"), "--min-share": (min_share != ArtifactParams.min_share, "artifact"),
            "--embedding-model": (embedding_model != EmbeddingParams.model, "embedding"),
            "--min-cosine": (min_cosine != EmbeddingParams.min_cosine, "embedding"),
            "--min-lexical": (min_lexical != EmbeddingParams.min_lexical, "embedding")})
        for file in background:
            if not file.exists():
                raise ParameterError(f"--background file {file} does not exist", "give a JSONL / Parquet corpus of ordinary text")
        curated = None if no_curated else (templates or CURATED_TEMPLATES)
        if templates is not None and not templates.exists():
            raise ParameterError(f"--templates file {templates} does not exist", "give a JSON Lines file of curated templates")
        if cache_dir is not None:
            index, cached = build_index_cached(index_dir, specs, cache_dir=cache_dir, params=params, background=background,
                                               curated_templates=curated)
            if cached:
                _err(f"Index taken from the cache in {cache_dir}")
        else:
            index = build_index(index_dir, specs, params=params, background=background, curated_templates=curated)
    except DecontamError as exc:
        raise _fail(exc) from None
    for bench in index.manifest["benchmarks"]:
        _err(f"{bench['name']}: {bench['items']} items, {bench['parts']} parts indexed"
             + (f", {bench['parts_too_short']} parts too short" if bench["parts_too_short"] else ""))
        if unindexed := _items_not_indexed(bench):
            _err(f"Warning: {bench['name']}: {unindexed} item(s) have no part long enough to index and cannot be found "
                 f"(e.g. {', '.join(bench['items_not_indexed']['examples'])})")
        if shared := bench.get("duplicate_item_ids", {}).get("count"):
            _err(f"Warning: {bench['name']}: {shared} id(s) belong to more than one item; their findings will look alike "
                 f"(e.g. {', '.join(bench['duplicate_item_ids']['examples'])})")
        if empty := bench.get("rows_without_text", {}).get("count"):
            _err(f"Warning: {bench['name']}: {empty} row(s) have nothing in their item fields (empty or null) and are not items "
                 f"(e.g. {', '.join(bench['rows_without_text']['examples'])})")
    print(f"Wrote index {index_dir} ({', '.join(index.methods)}; {len(index.benchmarks)} benchmarks)")


def _check_layer_options(methods: tuple[str, ...], given: dict[str, tuple[bool, str]]) -> None:
    """An option of a layer the build leaves out (``--min-cosine 0.85`` without ``--methods
    ...,embedding``) would be dropped without a word: a usage error."""
    for option, (changed, layer) in given.items():
        if changed and layer not in methods:
            raise ParameterError(f"{option} is an option of the {layer} layer, which --methods {','.join(methods)} does not build",
                                 f"add {layer} to --methods, or drop {option}")


def _items_not_indexed(bench: dict) -> int:
    """How many of a benchmark's items have no indexed part (0 for indexes built before it was counted)."""
    return bench.get("items_not_indexed", {}).get("count", 0)


@index_app.command("info")
def index_info(
    index_dir: Annotated[Optional[Path], typer.Argument(help="Index folder (default: the shipped one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Show what an index holds: benchmarks, sources, revisions, layer parameters."""
    index_dir = index_dir or default_index_path()
    try:
        index = load_index(index_dir)
    except DecontamError as exc:
        raise _fail(exc) from None
    manifest = index.manifest
    if as_json:
        print(json.dumps(manifest, indent=2, ensure_ascii=False))
        return
    print(f"Index {index_dir}: format {manifest['format_version']}, built by decontam {manifest['decontam_version']} on {manifest['created']}")
    print(f"normalization {manifest['normalization']}; layers: " + "; ".join(
        f"{name} ({', '.join(f'{k}={v}' for k, v in entry.items() if not isinstance(v, list))})" for name, entry in manifest["layers"].items()))
    for bench in manifest["benchmarks"]:
        notes = [f"{n} {what}" for n, what in ((_items_not_indexed(bench), "items not indexed: no part long enough"),
                                               (bench.get("rows_without_text", {}).get("count"), "rows without text left out"),
                                               (bench.get("duplicate_item_ids", {}).get("count"), "ids shared by several items")) if n]
        print(f"  {bench['name']:<16} {bench['items']:>6} items  {bench['parts']:>6} parts  {bench['source']}  {bench['revision']}"
              + (f"  ({'; '.join(notes)})" if notes else ""))


@index_app.command("export")
def index_export(
    index_dir: Annotated[Path, typer.Argument(help="The full index (with test text).")],
    private: Annotated[Path, typer.Option("--private", help="Folder for the text-free copy.")],
    keep_salt: Annotated[Optional[Path], typer.Option(help="Keep the salt out of the index: write it to this file, to give only to those allowed to scan.")] = None,
) -> None:
    """Export a text-free (private) index: keyed hashes and signatures, no test text."""
    try:
        if keep_salt is not None and keep_salt.exists():
            raise ParameterError(f"{keep_salt} exists; refusing to overwrite a salt", "choose a new file name")
        exported, salt = export_private(load_index(index_dir), private, keep_salt=keep_salt is not None)
        if keep_salt is not None:
            with replaced(keep_salt) as tmp, os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
                handle.write(salt.hex() + "\n")  # (readable by its owner only from the start)
    except DecontamError as exc:
        raise _fail(exc) from None
    print(f"Wrote private index {private} ({', '.join(exported.methods)}; no test text)")
    if keep_salt is not None:
        _err(f"The salt is in {keep_salt}: scanners need it (--salt-file); without it the index cannot be used")
    for line in PRIVATE_INDEX_REVEALS:
        _err(f"  reveals: {line}")


@index_app.command("verify")
def index_verify(index_dir: Annotated[Optional[Path], typer.Argument(help="Index folder (default: the shipped one).")] = None) -> None:
    """Check every index file against the checksums in its manifest (exit 1 on any difference)."""
    index_dir = index_dir or default_index_path()
    try:
        index = load_index(index_dir, verify=False)
    except DecontamError as exc:
        raise _fail(exc) from None
    problems = verify_files(Path(index_dir), index.manifest)
    if problems:
        for problem in problems:
            print(f"FAILED {problem}")
        raise typer.Exit(code=EXIT_FOUND)
    print(f"OK {len(index.manifest['files'])} files match the manifest")


@app.command("scan")
def scan_command(
    corpus: Annotated[list[str], typer.Argument(help="JSONL (.gz/.zst/.bz2/.xz) / JSON array / CSV / TSV / text / Parquet files, folders, globs, hf:ID?split=S, or - for stdin.")],
    index: Annotated[Optional[Path], typer.Option(help="Index folder (default: the index that ships with decontam).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write the findings table here (.parquet, .jsonl, or .csv for a spreadsheet).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on stdout.")] = False,
    methods: Annotated[Optional[str], typer.Option(help="Layers to use, comma-separated (default: all in the index).")] = None,
    min_score: Annotated[Optional[float], typer.Option(help="n-gram score threshold (default: the index's).")] = None,
    min_jaccard: Annotated[Optional[float], typer.Option(help="MinHash Jaccard threshold (default: the index's).")] = None,
    min_share: Annotated[Optional[float], typer.Option(help="Artifact threshold: share of a template's n-grams (default: the index's).")] = None,
    min_cosine: Annotated[Optional[float], typer.Option(help="Embedding threshold: cosine (default: the index's; multiple-choice knowledge questions of 12+ words 0.05 lower, reference answers at least 0.92, a question with its right choice at least 0.85).")] = None,
    min_lexical: Annotated[Optional[float], typer.Option(help="Embedding first stage: TF-IDF cosine (default: the index's).")] = None,
    embedding_model: Annotated[Optional[str], typer.Option(help="Require the index's embedding layer to use this model.")] = None,
    device: Annotated[Optional[str], typer.Option(help="Device of the embedding model: cpu, cuda, cuda:1 (default: cuda when there is one).")] = None,
    embedding_cache: Annotated[Optional[Path], typer.Option(help="Cache segment vectors here by content hash; a re-scan embeds nothing new.")] = None,
    ngram_size: Annotated[Optional[int], typer.Option(help="Require the index to use this n-gram size.")] = None,
    fields: Annotated[Optional[str], typer.Option(help="Scan only these top-level fields, comma-separated.")] = None,
    fail_min_score: Annotated[float, typer.Option(help="Gate: findings scoring below this never fail it.")] = 0.0,
    fail_on: Annotated[list[str], typer.Option("--fail-on", help="Gate policy (repeatable, any holds = fail): any, none, kind:item, method:ngram, benchmark:NAME, score>=0.9, rows>10, rate>0.01, joined by &.")] = [],  # noqa: B006
    baseline: Annotated[Optional[Path], typer.Option(help="Accepted findings (from `decontam baseline`): left out of the summary and the gate.")] = None,
    since: Annotated[Optional[str], typer.Option(help="Scan only rows added or changed since this git revision (plain JSONL, CSV, TSV or text in a git clone).")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Also write a report: .md, .html or .json by the name.")] = None,
    sarif: Annotated[Optional[Path], typer.Option(help="Also write the findings as SARIF 2.1.0 for code-review UIs.")] = None,
    junit: Annotated[Optional[Path], typer.Option(help="Also write a JUnit XML file (one test case per benchmark).")] = None,
    audit: Annotated[Optional[Path], typer.Option(help="Also write an audit manifest: versions, index checksums, parameters, input hashes, counts, findings hash.")] = None,
    strict: Annotated[bool, typer.Option(help="A malformed row is an error (exit 2) instead of a count.")] = False,
    batch_size: Annotated[int, typer.Option(help="Records per batch.")] = 4000,
    top: Annotated[int, typer.Option(help="Findings shown in the terminal summary.")] = 10,
    salt_file: Annotated[Optional[Path], typer.Option(help="Salt of a private index whose owner kept it (a file with its hex).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes, at most (default: one per core this process may use, a container's CPU limit included; fewer when the input is too small to pay for starting them); shards are files, pieces of big or streamed JSONL and CSV, Parquet row groups.", show_default=False)] = None,
    work_dir: Annotated[Optional[Path], typer.Option(help="Keep per-shard findings and completion markers here; a rerun after a crash resumes.")] = None,
    shard_mb: Annotated[Optional[int], typer.Option(help="Size of a shard (a piece of a big JSONL or CSV file, compressed or not, row groups of a Parquet file), in MB (default: 1/64 of the input, 4 to 64).")] = None,
    engine: Annotated[str, typer.Option(help="local (processes on this machine) or ray (decontam\\[ray]).")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: start a local one).")] = None,
    embedding_actors: Annotated[Optional[int], typer.Option(help="Ray: actors that serve the embedding model (default: one per cluster GPU; 0: each task loads it).")] = None,
) -> None:
    """Scan corpora for benchmark test items and templates; exit 1 when the gate fails."""
    try:
        sources = expand_inputs(corpus)  # a typo in a path fails before the index is loaded
        conditions = parse_policy(fail_on)
        accepted = read_baseline(baseline) if baseline is not None else set()
        only_rows = _rows_since(sources, since) if since else None
        if out is not None:  # a file it cannot write is an error now, not after a long scan
            findings_format(out)
        if report is not None:
            _report_format(report)
        for path in (out, report, sarif, junit, audit):
            _writable(path)
        _check_outputs({"--out": out, "--report": report, "--sarif": sarif, "--junit": junit, "--audit": audit},
                       {"--baseline": baseline, "--salt-file": salt_file,
                        **{f"the input {source}": Path(source) for source in sources if Path(source).is_file()}},
                       {"the index": index if index is not None else default_index_path()})
        _check_named_as("--sarif", sarif, "SARIF (JSON)", (".sarif", ".json"))
        _check_named_as("--junit", junit, "JUnit XML", (".xml",))
        _check_named_as("--audit", audit, "JSON", (".json",))
        scanned = [Path(spec) for spec in corpus if Path(spec).is_dir()]
        if work_dir is not None and (inside := _folder_holding(work_dir, scanned)):
            raise ParameterError(f"--work-dir {work_dir} is inside the scanned folder {inside}: a rerun would read its shard files as corpus",
                                 "keep the work folder outside the folders you scan")
        if out is not None and (inside := _folder_holding(out, scanned)):
            _err(f"Warning: --out {out} is inside the scanned folder {inside}: a later scan of it will read the findings "
                 "(test items' text among them) as corpus")
        options = ScanOptions(methods=_split_csv(methods), min_score=min_score, min_jaccard=min_jaccard, min_share=min_share,
                              min_cosine=min_cosine, min_lexical=min_lexical, embedding_model=embedding_model, device=device,
                              embedding_cache=str(embedding_cache) if embedding_cache else None,
                              ngram_size=ngram_size, fields=_split_csv(fields), batch_size=batch_size, strict=strict,
                              only_rows=only_rows)
        loaded = resolve_index(index, salt=_read_salt(salt_file))
        _err(f"Index {loaded.path}: {', '.join(loaded.benchmarks)} ({', '.join(loaded.methods)})")
        templates = loaded.layers["artifact"].templates["benchmark"].to_list() if "artifact" in loaded.layers else []
        for warning in check_policy(conditions, list(dict.fromkeys(loaded.benchmarks + templates)), loaded.methods):  # (curated templates name theirs)
            _err(warning)
        if shard_mb is not None and shard_mb < 1:
            raise ParameterError(f"--shard-mb {shard_mb} must be at least 1", "leave it out for 1/64 of the input, 4 to 64 MB")
        _check_top(top)
        running = options.methods or loaded.methods
        for option, value, layer in (("--min-score", min_score, "ngram"), ("--min-jaccard", min_jaccard, "minhash"),
                                     ("--min-share", min_share, "artifact"), ("--min-cosine", min_cosine, "embedding"),
                                     ("--min-lexical", min_lexical, "embedding"), ("--device", device, "embedding"),
                                     ("--embedding-cache", embedding_cache, "embedding")):
            if value is not None and layer not in running:  # (a threshold of a layer that does not run changes nothing)
                _err(f"Warning: {option} has no effect: the {layer} layer does not run in this scan ({', '.join(running)})")
        if fail_min_score > 1:  # scores are in [0, 1]: a typo (9 for 0.9) would leave the gate open
            _err(f"Warning: --fail-min-score {fail_min_score} is past every score (they are in [0, 1]): the gate cannot fail; "
                 "--fail-on none says so")
        unreadable = None
        try:
            result = _scan_with_progress(sources, loaded, options, workers=available_cores() if workers is None else workers, work_dir=work_dir,
                                         shard_bytes=shard_mb << 20 if shard_mb else None, engine=engine, address=address,
                                         embedding_actors=embedding_actors, note=_err)
        except UnreadableInputError as exc:  # the other files' findings are written and shown, then exit 2
            result, unreadable = exc.result, exc
        for source, rows in result.counts.rows_by_source.items():
            if rows == 0:  # (an export that failed leaves an empty file, which scans clean)
                _err(f"Warning: {source} holds no rows")
        findings, n_accepted = without_baseline(result.findings, accepted)
        result.findings = findings
        summary = result.summary(fail_min_score=fail_min_score)
        gated = findings.filter(findings["score"] >= fail_min_score)
        failed_by = evaluate(conditions, gated, summary["rows_read"])
        summary["gate"] = {"fail_min_score": fail_min_score, "fail_on": [c.text for c in conditions],
                           "failed": bool(failed_by), "failed_by": failed_by, "accepted_by_baseline": n_accepted}
        metadata = {"counts": result.counts.as_dict(), "index": str(loaded.path.resolve()), "sources": sources}
        if out is not None:
            write_findings(findings, out, metadata=metadata)
            _err(f"Wrote {count_of(findings.height, 'finding')} to {out}")
        if report is not None:
            _write_report(findings, report, counts=result.counts.as_dict(), index=loaded, top=max(top, 20))
        if sarif is not None:
            write_text(sarif, json.dumps(to_sarif(gated), indent=2, ensure_ascii=False) + "\n")
        if junit is not None:
            write_text(junit, to_junit(gated, loaded.benchmarks))
        if audit is not None:
            write_audit(build_audit(result, sources, options, summary, summary["gate"]), audit)
    except DecontamError as exc:
        raise _fail(exc) from None
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(printable(render_terminal_summary(summary, result, fail_min_score=fail_min_score, top=top)))
    if unreadable is not None:
        raise _fail(unreadable)
    raise typer.Exit(code=EXIT_FOUND if summary["gate"]["failed"] else EXIT_CLEAN)


def _read_salt(path: Optional[Path]) -> bytes | None:
    if path is None:
        return None
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise ParameterError(f"cannot read a hex salt from {path}: {exc}", "the file written by `decontam index export --keep-salt FILE`") from exc


def _rows_since(sources: list[str], revision: str) -> dict[str, frozenset[int]]:
    out = {}
    for source in sources:
        rows = changed_rows(source, revision)
        if rows is not None:
            out[source] = frozenset(rows)
        changed = f"every row (the file is new, or its header changed, since {revision})" if rows is None else \
            f"{count_of(len(rows), 'row')} changed since {revision}"
        _err(f"{source}: {changed}")
    return out


def _findings_and_index(findings_file: Path, index: Optional[Path]):
    """A findings table, what the scan stored with it, and the index it names (or ``index``)."""
    findings, metadata = read_findings_with_metadata(findings_file)
    recorded = metadata.get("index")
    if index is None and recorded is not None:
        try:
            loaded = resolve_index(recorded)
        except DecontamError as exc:
            raise InputError(f"the index the scan used, {recorded} (recorded in {findings_file}), cannot be loaded: {exc.message}",
                             "pass --index with that index, or one built the same way") from None
    else:
        loaded = resolve_index(index)
    return findings, metadata, loaded


def _writable(path: Optional[Path]) -> None:
    """An output file's folder, made if missing (as --out always did), and writable; not a folder itself."""
    if path is None:
        return
    if path.is_dir():
        raise ParameterError(f"{path} is a folder", "name a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"cannot make the folder of {path}: {exc.strerror}", "choose a place you can write to") from None
    if not os.access(path.parent, os.W_OK):
        raise ParameterError(f"cannot write {path}: its folder is not writable", "choose a place you can write to")


def _check_outputs(outputs: dict[str, Path | None], inputs: dict[str, Path | None], folders: dict[str, Path] | None = None) -> None:
    """No output may be an input, another output, or inside a folder the command reads (the index):
    writing it would overwrite that file -- the corpus, the findings, the baseline -- and exit 0."""
    seen = {path.resolve(): name for name, path in inputs.items() if path is not None}
    for name, path in outputs.items():
        if path is None:
            continue
        where = path.resolve()
        clash = seen.get(where) or next((f"inside {folder_name} {folder}" for folder_name, folder in (folders or {}).items()
                                         if _folder_holding(path, [folder])), None)
        if clash:
            raise ParameterError(f"{name} {path} is {clash}", "name each output a new file of its own" + (", outside the index" if folders else ""))
        seen[where] = name


def _folder_holding(path: Path, folders: list[Path]) -> Path | None:
    """The first of ``folders`` that ``path`` lies inside, or None."""
    where = path.resolve()
    return next((folder for folder in folders if folder.resolve() in where.parents), None)


# suffixes that say a file's format: an output of one format is not to be named as another
_FORMAT_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv", ".tsv", ".md", ".html", ".htm", ".xml", ".sarif",
                    ".gz", ".zst", ".bz2", ".xz")


def _check_named_as(option: str, path: Path | None, fmt: str, suffixes: tuple[str, ...], usual: str | None = None) -> None:
    """An output written in one format (a baseline's JSON, JUnit XML) whose name says another
    (``baseline.parquet``, ``junit.json``) would be read as that by the next tool: a usage error."""
    if path is None or not path.name.lower().endswith(_FORMAT_SUFFIXES) or path.name.lower().endswith(suffixes):
        return
    names = " or ".join(f"*{suffix}" for suffix in suffixes)
    raise ParameterError(f"{option} {path}: the file is {fmt}, and its name says another format",
                         f"name it {names}" + (f" ({usual} is the usual name)" if usual else ""))


def _check_top(top: int) -> None:
    if top < 0:  # (polars' head(-1) is every finding but the last)
        raise ParameterError(f"--top {top} must be 0 or more", "0 shows no findings, 10 the ten best")


def _report_format(path: Path) -> str:
    fmt = _format_of_name(path)
    if fmt is None:
        raise ParameterError(f"cannot tell the report format of {path}", "name it *.md, *.html or *.json")
    return fmt


def _format_of_name(path: Path) -> str | None:
    """The report format a file's name says (GitHub's job summary file: Markdown), or None."""
    fmt = {".md": "md", ".html": "html", ".htm": "html", ".json": "json"}.get(path.suffix.lower())
    return "md" if fmt is None and str(path).endswith("GITHUB_STEP_SUMMARY") else fmt


def _write_report(findings, path: Path, *, counts: dict | None, index, top: int) -> None:
    fmt = _report_format(path)
    _write_report_text(path, fmt, RENDERERS[fmt](build_report(findings, counts=counts, index=index, top=top)))


def _write_report_text(path: Path, fmt: str, text: str) -> None:
    if fmt == "md" and "GITHUB_STEP_SUMMARY" in str(path):  # GitHub's job summary: appended to, as its steps do
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    else:
        write_text(path, text)


@app.command("report")
def report_command(
    findings_file: Annotated[Path, typer.Argument(metavar="FINDINGS", help="Findings table written by `decontam scan --out`.")],
    index: Annotated[Optional[Path], typer.Option(help="Index the scan used (default: the one recorded in the findings, else the shipped one); gives item texts and totals.")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="md, html or json (default: by the name of --out, .html, .htm or .json; else md).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write here instead of stdout.")] = None,
    top: Annotated[int, typer.Option(help="Top findings shown with evidence.")] = 20,
) -> None:
    """Render a findings table as Markdown, a self-contained HTML page, or JSON."""
    try:
        _check_top(top)
        if fmt is not None and fmt not in RENDERERS:
            raise ParameterError(f"--format {fmt!r} is not md, html or json", "choose one of md, html, json")
        named = _format_of_name(out) if out is not None else None
        if fmt is not None and named is not None and named != fmt:  # Markdown in report.html
            raise ParameterError(f"--format {fmt} but --out {out} is named as {named}",
                                 "drop --format (the name of --out picks it) or give --out a name that matches")
        fmt = fmt or named or "md"
        _check_outputs({"--out": out}, {"FINDINGS": findings_file})
        findings, metadata, loaded = _findings_and_index(findings_file, index)
        if index is None and metadata.get("index") is None:  # the shipped index, by default: of use only if the scan's
            try:
                check_index_matches(findings, loaded)
            except InputError:
                _err(f"Note: {findings_file} does not say which index the scan used, and the shipped one is not it: "
                     "the report has no test text and no item totals (pass --index with the scan's index for them)")
                loaded = None
        text = RENDERERS[fmt](build_report(findings, counts=metadata.get("counts"), index=loaded, top=top))
    except DecontamError as exc:
        raise _fail(exc) from None
    if out is None:
        text = text if fmt == "json" else printable(text)  # (JSON escapes them itself)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        _write_report_text(out, fmt, text)
        _err(f"Wrote {fmt} report to {out}")


@app.command("clean")
def clean_command(
    corpus: Annotated[Path, typer.Argument(help="The corpus file that was scanned (JSONL, JSON array, CSV, TSV or text, compressed or not; or Parquet), or the folder.")],
    findings_file: Annotated[Path, typer.Option("--findings", help="Findings table from `decontam scan --out`.")],
    out: Annotated[Path, typer.Option(help="Kept rows go here (in the corpus's format: .jsonl for JSONL, .csv for CSV...); for a folder, a folder.")],
    removed: Annotated[Path, typer.Option(help="Removed rows go here (for a folder, a folder: each file under its own name).")],
    kinds: Annotated[Optional[str], typer.Option(help="Only findings of these kinds remove a row (item,answer,artifact).")] = None,
    methods: Annotated[Optional[str], typer.Option(help="Only findings of these methods remove a row.")] = None,
    min_score: Annotated[float, typer.Option(help="Only findings scoring at least this remove a row.")] = 0.0,
    baseline: Annotated[Optional[Path], typer.Option(help="Accepted findings never remove a row.")] = None,
    manifest: Annotated[Optional[Path], typer.Option(help="Where to write what was removed and why (default: REMOVED.manifest.json).")] = None,
) -> None:
    """Write the corpus without flagged rows, and the removed rows beside it; nothing is lost."""
    try:
        findings, metadata = read_findings_with_metadata(findings_file)
        rows_at_scan = metadata.get("counts", {}).get("rows_by_source")
        if baseline is not None:
            findings, _ = without_baseline(findings, read_baseline(baseline))
        policy = CleanPolicy(kinds=_split_csv(kinds), methods=_split_csv(methods), min_score=min_score)
        folder = corpus.is_dir()
        if folder:
            if manifest is not None:
                raise ParameterError("--manifest names one file; cleaning a folder writes one manifest beside each removed file",
                                     "drop --manifest")
            _check_outputs({"--out": out, "--removed": removed}, {"FINDINGS": findings_file})
            results = clean_folder(corpus, findings, out, removed, policy=policy, rows_by_source=rows_at_scan)
            for _, result in results:
                write_manifest(result, Path(result.manifest["removed"]["path"] + ".manifest.json"))
        else:
            manifest_path = manifest or Path(str(removed) + ".manifest.json")
            _check_outputs({"--out": out, "--removed": removed, "--manifest": manifest_path}, {"the corpus": corpus, "FINDINGS": findings_file})
            result = clean_corpus(corpus, findings, out, removed, policy=policy, rows_by_source=rows_at_scan)
            write_manifest(result, manifest_path)
    except DecontamError as exc:
        raise _fail(exc) from None
    if folder:
        rows, kept = sum(r.input_rows for _, r in results), sum(r.kept_rows for _, r in results)
        touched = sum(1 for _, r in results if r.removed_rows)
        print(f"{count_of(rows, 'row')} in {count_of(len(results), 'file')} of {corpus}: {kept:,} kept in {out}, "
              f"{rows - kept:,} removed to {removed} (from {count_of(touched, 'file')})")
        _err(f"Wrote a removal manifest beside each removed file ({removed}/**/*.manifest.json)")
        return
    print(f"{count_of(result.input_rows, 'row')} in {corpus}: {result.kept_rows:,} kept in {out}, {result.removed_rows:,} removed to {removed}")
    _err(f"Wrote the removal manifest to {manifest_path}")


@app.command("baseline")
def baseline_command(
    findings_file: Annotated[Path, typer.Argument(metavar="FINDINGS", help="Findings to accept (from `decontam scan --out`).")],
    out: Annotated[Path, typer.Option(help="Baseline file to write (commit it; pass it to scan --baseline).")],
) -> None:
    """Accept the current findings: later scans with --baseline ignore them, as linters do."""
    try:
        _check_outputs({"--out": out}, {"FINDINGS": findings_file})
        _check_named_as("--out", out, "JSON", (".json",), usual=".decontam-baseline.json")
        n = write_baseline(read_findings(findings_file), out)
    except DecontamError as exc:
        raise _fail(exc) from None
    print(f"Wrote {n} accepted findings to {out}")


@app.command("split")
def split_command(
    findings_file: Annotated[Path, typer.Argument(metavar="FINDINGS", help="Findings table from `decontam scan --out`.")],
    out_dir: Annotated[Path, typer.Option(help="Folder for <benchmark>/{clean,contaminated}{_ids.txt,.jsonl}.")],
    index: Annotated[Optional[Path], typer.Option(help="Index the scan used (default: the one recorded in the findings).")] = None,
    kinds: Annotated[str, typer.Option(help="Which findings make an item contaminated.")] = "item,answer,artifact",
) -> None:
    """Split each benchmark's test set into clean and contaminated items with respect to a scanned corpus."""
    try:
        findings, metadata, loaded = _findings_and_index(findings_file, index)
        summary = split_benchmarks(findings, loaded, out_dir, kinds=_split_csv(kinds) or ())
    except DecontamError as exc:
        raise _fail(exc) from None
    print(f"  {'benchmark':<20} {'items':>7} {'clean':>7} {'contaminated':>13}")
    for bench, row in summary.items():
        print(f"  {bench:<20} {row['items']:>7} {row['clean']:>7} {row['contaminated']:>13}")
    _err(f"Wrote the splits to {out_dir}")


@app.command("compare")
def compare_command(
    results: Annotated[Path, typer.Argument(help="Per-item model results: JSONL or CSV with an item id and a correct/score column.")],
    findings_file: Annotated[Path, typer.Option("--findings", help="Findings table from `decontam scan --out`.")],
    benchmark: Annotated[str, typer.Option(help="Benchmark the results are for (its name in the index).")],
    index: Annotated[Optional[Path], typer.Option(help="Index the scan used (default: the one recorded in the findings).")] = None,
    kinds: Annotated[str, typer.Option(help="Which findings make an item contaminated.")] = "item,answer,artifact",
    by: Annotated[str, typer.Option(help="all, or reason: one row per template / kind of contamination.")] = "reason",
    id_column: Annotated[Optional[str], typer.Option(help="Item-id column of the results.")] = None,
    score_column: Annotated[Optional[str], typer.Option(help="Correct/score column of the results.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
) -> None:
    """Score on all items, clean items and contaminated items: does contamination explain a result?"""
    try:
        findings, metadata, loaded = _findings_and_index(findings_file, index)
        if benchmark not in loaded.benchmarks:
            raise ParameterError(f"benchmark {benchmark!r} is not in index {loaded.path}; it has {loaded.benchmarks}", "pass --benchmark with one of those")
        per_item = read_results(results, id_column=id_column, score_column=score_column)
        contaminated = contaminated_items(findings, loaded, _split_csv(kinds) or ()).get(benchmark, {})
        table = compare_scores(per_item, benchmark, contaminated, by=by, items=item_ids(loaded, benchmark))
    except DecontamError as exc:
        raise _fail(exc) from None
    repeated = sum(len(scores) > 1 for scores in per_item.values())
    if repeated:
        _err(f"Note: {repeated} item(s) have several rows in {results}; each counts once, at the mean of its rows")
    unknown = next((row for row in table if row["group"] == NOT_IN_INDEX), None)
    if unknown:
        _err(f"Warning: {unknown['items']} of {len(per_item)} item ids in {results} are not items of {benchmark} in the index "
             f"and are left out of every group but '{NOT_IN_INDEX}'; check --benchmark and --id-column")
    print(json.dumps(table) if as_json else render_comparison(table, benchmark))


def _scan_with_progress(corpus: list[str], index, options: ScanOptions, **engine) -> ScanResult:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("scanning", total=None)
        return scan(corpus, index=index, options=options, **engine,
                    progress=lambda rows: bar.update(task, description=f"scanning: {rows:,} rows"))


def render_terminal_summary(summary: dict, result: ScanResult, *, fail_min_score: float, top: int) -> str:
    lines = [f"Scanned {count_of(summary['rows_read'], 'row')} ({count_of(summary['segments'], 'text segment')})."]
    if summary["rows_malformed"]:
        lines.append(f"{count_of(summary['rows_malformed'], 'malformed row')} {'was' if summary['rows_malformed'] == 1 else 'were'} skipped:")
        lines += [f"  {m['location']}: {m['problem']}" for m in summary["malformed"]]
    if summary["rows_without_text"]:
        lines.append(f"{count_of(summary['rows_without_text'], 'row')} {'has' if summary['rows_without_text'] == 1 else 'have'} no text to scan (no string of {MIN_SEGMENT_CHARS}+ characters outside id and metadata fields):")
        lines += [f"  {m['location']}: keys {m['keys']}" for m in summary["without_text"]]
    if not summary["rows_flagged"]:
        lines.append("No contamination found.")
        return "\n".join(lines)
    lines.append(f"Flagged {count_of(summary['rows_flagged'], 'row')} ({summary['share_of_rows_flagged']:.2%}) with {count_of(summary['findings'], 'finding')}.")
    if summary["rows_with_items"]:
        lines.append("")
        lines.append(f"  {'benchmark':<20} {'items found':>14} {'rows':>8}")
        for name, bench in summary["benchmarks"].items():
            if bench["rows"]:
                lines.append(f"  {name:<20} {bench['items_found']:>6} / {bench['items_in_index']:<6} {bench['rows']:>8}")
    if summary["artifacts"]:
        lines.append("")
        lines.append(f"Benchmark templates reused in {count_of(summary['rows_with_artifacts'], 'row')}:")
        for template_id, art in summary["artifacts"].items():
            text = art["template"] or ""
            lines.append(f"  {template_id:<22} {art['rows']:>6} rows ({art['share_of_rows']:.2%})  \"{text[:70]}{'...' if len(text) > 70 else ''}\"")
    lines.append("")
    lines.append("  by method: " + ", ".join(f"{k} {v['rows']}" for k, v in summary["methods"].items()))
    lines.append("  by kind:   " + ", ".join(f"{k} {v['rows']}" for k, v in summary["kinds"].items()))
    lines.append("  by field:  " + ", ".join(f"{k} {v['rows']}" for k, v in summary["fields"].items()))
    if len(summary["sources"]) > 1:
        lines.append("  by file:   " + _by_file(summary["sources"]))
    if top <= 0:
        return "\n".join(lines)
    shown = result.findings.filter(result.findings["score"] >= fail_min_score).sort("score", descending=True).head(top)
    lines.append("")
    lines.append(f"Top {count_of(shown.height, 'finding')}:")
    for f in shown.iter_rows(named=True):
        role = f" ({f['role']})" if f["role"] else ""
        lines.append(f"  {f['source']}:{f['row'] + 1} {f['field']}{role} <- {f['benchmark']} {f['item_id']} "
                     f"[{f['item_part']}] {f['method']} {f['score']:.2f}")
        lines.append(f"      {shorten(f['evidence'], 120)}")
    return "\n".join(lines)


def _by_file(sources: dict[str, dict], shown: int = 10) -> str:
    """The files with findings, most rows flagged first (``shown`` of them), and how many had none."""
    flagged, clean = files_with_findings(sources)
    parts = [f"{name} {flagged_of_read(v)} rows" for name, v in flagged[:shown]]
    if len(flagged) > shown:
        parts.append(f"{len(flagged) - shown:,} more with findings")
    return ", ".join(parts) + (f"; {count_of(clean, 'file')} without findings" if clean else "")


@benchmarks_app.command("list")
def benchmarks_list(as_json: Annotated[bool, typer.Option("--json", help="Print the recipes as JSON Lines.")] = False) -> None:
    """The benchmarks decontam knows: hub id, config, split, pinned revision, licence."""
    try:
        recipes = load_recipes()
    except DecontamError as exc:
        raise _fail(exc) from None
    if as_json:
        for r in recipes.values():
            print(json.dumps({"name": r.name, "title": r.title, "hf_id": r.hf_id, "config": r.config, "split": r.split,
                              "revision": r.revision or None, "license": r.license, "fields": r.fields,
                              "templates": list(r.templates)}, ensure_ascii=False))
        return
    print(f"{'name':<15} {'hub dataset':<40} {'config/split':<32} {'revision':<10} licence")
    for r in recipes.values():
        where = f"{r.config + '/' if r.config else ''}{r.split}"
        revision = r.revision[:8] if r.pinned else "unpinned"
        print(f"{r.name:<15} {r.hf_id:<40} {where:<32} {revision:<10} {r.license}")
    print(f"{len(recipes)} recipes in {RECIPES_DIR}")


@benchmarks_app.command("pin")
def benchmarks_pin(
    names: Annotated[list[str], typer.Argument(help="Recipes to pin to the hub's current commit.")] = [],  # noqa: B006
    all_: Annotated[bool, typer.Option("--all", help="Pin every recipe.")] = False,
) -> None:
    """Write the hub's current commit into recipes (needs the network)."""
    try:
        recipes = load_recipes()
        chosen = list(recipes) if all_ else names
        if not chosen:
            raise ParameterError("no recipe named", "give recipe names or --all")
        for name in chosen:
            if name not in recipes:
                raise ParameterError(f"no recipe for benchmark {name!r}", "`decontam benchmarks list` shows the known ones")
            print(f"{name}: {pin(recipes[name])}")
    except DecontamError as exc:
        raise _fail(exc) from None


@artifacts_app.command("show")
def artifacts_show(
    index_dir: Annotated[Optional[Path], typer.Argument(help="Index folder (default: the shipped one).")] = None,
    benchmark: Annotated[Optional[str], typer.Option(help="Only this benchmark's templates.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the templates as JSON Lines.")] = False,
) -> None:
    """List each benchmark's instruction templates with coverage and distinctiveness."""
    index_dir = index_dir or default_index_path()
    try:
        index = load_index(index_dir)
    except DecontamError as exc:
        raise _fail(exc) from None
    if "artifact" not in index.layers:
        raise _fail(ParameterError(f"index {index_dir} has no artifact layer", "rebuild it with --methods including artifact"))
    templates = index.layers["artifact"].templates
    if benchmark is not None:
        known = templates["benchmark"].unique(maintain_order=True).to_list()
        if benchmark not in known:  # (an empty table said nothing of the typo)
            raise _fail(ParameterError(f"index {index_dir} has no templates of benchmark {benchmark!r}",
                                       f"its templates are of {', '.join(known)}"))
        templates = templates.filter(templates["benchmark"] == benchmark)
    columns = ["template_id", "benchmark", "origin", "items", "coverage", "distinctiveness", "text", "note"]
    if as_json:
        for row in templates.select(columns).iter_rows(named=True):
            print(json.dumps(row, ensure_ascii=False))
        return
    print(f"{'template':<22} {'origin':<8} {'items':>6} {'coverage':>9} {'distinct':>9}  text")
    for row in templates.select(columns).iter_rows(named=True):
        items = "-" if row["items"] is None else str(row["items"])
        coverage = "-" if row["coverage"] is None else f"{row['coverage']:.1%}"
        distinct = "-" if row["distinctiveness"] is None else f"{row['distinctiveness']:.3f}"
        print(f"{row['template_id']:<22} {row['origin']:<8} {items:>6} {coverage:>9} {distinct:>9}  {row['text']}")


def main() -> None:
    try:
        app()
    except DecontamError as exc:  # anything not caught in a command
        _err(f"Error: {exc.message}")
        if exc.hint:
            _err(f"Hint: {exc.hint}")
        sys.exit(EXIT_ERROR)
    except OSError as exc:
        if exc.errno is None or exc.filename is None:
            raise  # not a file the user named: a bug, with its traceback
        print(f"Error: {exc.filename}: {exc.strerror}", file=sys.stderr)  # a full disk, a folder removed midway...
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
