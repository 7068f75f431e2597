"""The ``decontam`` command: parses options, calls the Python API, prints, maps errors to exit codes.

Exit codes (a contract with users' CI scripts): 0 no finding at or above the gate, 1 contamination
found, 2 usage or input error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .errors import DecontamError, ParameterError
from .findings import write_findings
from .index import CURATED_TEMPLATES, DEFAULT_METHODS, IndexParams, build_index, load_index, verify_files
from .layers import ArtifactParams, MinHashParams, NgramParams
from .readers import expand_inputs
from .scan import ScanOptions, ScanResult, resolve_index, scan
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


def _err(text: str) -> None:
    print(text, file=sys.stderr)


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
    source: Annotated[list[str], typer.Option("--source", help="NAME=PATH_OR_HF_ID; repeat for each benchmark. Hub: hf:ID?config=C&split=S&revision=R.")],
    map_: Annotated[list[str], typer.Option("--map", help="NAME:ROLE=FIELD, ROLE one of question/choices/answer/id/subset; nested fields as a.b or a[0].b.")] = [],  # noqa: B006
    methods: Annotated[str, typer.Option(help="Layers to build, comma-separated.")] = ",".join(DEFAULT_METHODS),
    ngram_size: Annotated[int, typer.Option(help="Words per n-gram in the exact layer.")] = NgramParams.ngram_size,
    min_score: Annotated[float, typer.Option(help="Default n-gram score threshold stored for scans.")] = NgramParams.min_score,
    boilerplate_min_items: Annotated[int, typer.Option(help="An n-gram or shingle in this many items or more is boilerplate and ignored.")] = NgramParams.boilerplate_min_items,
    min_part_tokens: Annotated[int, typer.Option(help="Item parts with fewer words are not indexed.")] = IndexParams.min_part_tokens,
    num_perm: Annotated[int, typer.Option(help="MinHash permutations.")] = MinHashParams.num_perm,
    shingle_size: Annotated[int, typer.Option(help="Words per MinHash shingle.")] = MinHashParams.shingle_size,
    min_jaccard: Annotated[float, typer.Option(help="Jaccard threshold the LSH is tuned for.")] = MinHashParams.min_jaccard,
    min_shingles: Annotated[int, typer.Option(help="Texts with fewer distinct shingles are left to the n-gram layer.")] = MinHashParams.min_shingles,
    background: Annotated[list[Path], typer.Option("--background", help="Corpus of ordinary text (repeatable): its frequent phrases are not templates.")] = [],  # noqa: B006
    templates: Annotated[Optional[Path], typer.Option(help="Curated templates (JSON Lines) for the artifact layer; default: indexes/curated_templates.jsonl.")] = None,
    no_curated: Annotated[bool, typer.Option("--no-curated", help="Mine templates only; add no curated ones.")] = False,
    min_share: Annotated[float, typer.Option(help="Default artifact threshold: share of a template's n-grams.")] = ArtifactParams.min_share,
) -> None:
    """Build an index over benchmark test sets."""
    try:
        maps = _parse_maps(map_)
        specs = [parse_source(s) for s in source]
        unknown = set(maps) - {s.name for s in specs}
        if unknown:
            raise ParameterError(f"--map names benchmark(s) {sorted(unknown)} that no --source defines", "use the NAME given in --source")
        specs = [type(s)(**{**s.__dict__, "field_map": maps.get(s.name, {})}) for s in specs]
        params = IndexParams(
            ngram=NgramParams(ngram_size, boilerplate_min_items, min_score),
            minhash=MinHashParams(num_perm=num_perm, shingle_size=shingle_size, min_jaccard=min_jaccard, min_shingles=min_shingles,
                                  boilerplate_min_items=boilerplate_min_items),
            artifact=ArtifactParams(min_share=min_share),
            min_part_tokens=min_part_tokens,
            methods=_split_csv(methods) or (),
        )
        for file in background:
            if not file.exists():
                raise ParameterError(f"--background file {file} does not exist", "give a JSONL / Parquet corpus of ordinary text")
        curated = None if no_curated else (templates or CURATED_TEMPLATES)
        if templates is not None and not templates.exists():
            raise ParameterError(f"--templates file {templates} does not exist", "give a JSON Lines file of curated templates")
        index = build_index(index_dir, specs, params=params, background=background, curated_templates=curated)
    except DecontamError as exc:
        raise _fail(exc) from None
    for bench in index.manifest["benchmarks"]:
        _err(f"{bench['name']}: {bench['items']} items, {bench['parts']} parts indexed"
             + (f", {bench['parts_too_short']} parts too short" if bench["parts_too_short"] else ""))
    print(f"Wrote index {index_dir} ({', '.join(index.methods)}; {len(index.benchmarks)} benchmarks)")


@index_app.command("info")
def index_info(
    index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Show what an index holds: benchmarks, sources, revisions, layer parameters."""
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
        print(f"  {bench['name']:<16} {bench['items']:>6} items  {bench['parts']:>6} parts  {bench['source']}  {bench['revision']}")


@index_app.command("verify")
def index_verify(index_dir: Annotated[Path, typer.Argument(help="Index folder.")]) -> None:
    """Check every index file against the checksums in its manifest (exit 1 on any difference)."""
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
    corpus: Annotated[list[str], typer.Argument(help="JSONL[.gz] / Parquet files, folders, globs, hf:ID?split=S, or - for stdin.")],
    index: Annotated[Optional[Path], typer.Option(help="Index folder (default: the index that ships with decontam).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write the findings table here (.parquet, or .jsonl).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on stdout.")] = False,
    methods: Annotated[Optional[str], typer.Option(help="Layers to use, comma-separated (default: all in the index).")] = None,
    min_score: Annotated[Optional[float], typer.Option(help="n-gram score threshold (default: the index's).")] = None,
    min_jaccard: Annotated[Optional[float], typer.Option(help="MinHash Jaccard threshold (default: the index's).")] = None,
    min_share: Annotated[Optional[float], typer.Option(help="Artifact threshold: share of a template's n-grams (default: the index's).")] = None,
    ngram_size: Annotated[Optional[int], typer.Option(help="Require the index to use this n-gram size.")] = None,
    fields: Annotated[Optional[str], typer.Option(help="Scan only these top-level fields, comma-separated.")] = None,
    fail_min_score: Annotated[float, typer.Option(help="Gate: exit 1 when a finding scores at least this.")] = 0.0,
    strict: Annotated[bool, typer.Option(help="A malformed row is an error (exit 2) instead of a count.")] = False,
    batch_size: Annotated[int, typer.Option(help="Records per batch.")] = 2000,
    top: Annotated[int, typer.Option(help="Findings shown in the terminal summary.")] = 10,
) -> None:
    """Scan corpora for benchmark test items; exit 1 when contamination is found."""
    options = ScanOptions(methods=_split_csv(methods), min_score=min_score, min_jaccard=min_jaccard, min_share=min_share, ngram_size=ngram_size,
                          fields=_split_csv(fields), batch_size=batch_size, strict=strict)
    try:
        sources = expand_inputs(corpus)  # a typo in a path fails before the index is loaded
        loaded = resolve_index(index)
        _err(f"Index {loaded.path}: {', '.join(loaded.benchmarks)} ({', '.join(loaded.methods)})")
        result = _scan_with_progress(sources, loaded, options)
        if out is not None:
            write_findings(result.findings, out)
            _err(f"Wrote {result.findings.height} findings to {out}")
    except DecontamError as exc:
        raise _fail(exc) from None
    summary = result.summary(fail_min_score=fail_min_score)
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(render_terminal_summary(summary, result, fail_min_score=fail_min_score, top=top))
    raise typer.Exit(code=EXIT_FOUND if summary["gate"]["failed"] else EXIT_CLEAN)


def _scan_with_progress(corpus: list[str], index, options: ScanOptions) -> ScanResult:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("scanning", total=None)
        return scan(corpus, index=index, options=options,
                    progress=lambda rows: bar.update(task, description=f"scanning: {rows:,} rows"))


def render_terminal_summary(summary: dict, result: ScanResult, *, fail_min_score: float, top: int) -> str:
    lines = [f"Scanned {summary['rows_read']:,} rows ({summary['segments']:,} text segments)."]
    if summary["rows_malformed"]:
        lines.append(f"{summary['rows_malformed']:,} malformed rows were skipped:")
        lines += [f"  {m['location']}: {m['problem']}" for m in summary["malformed"]]
    if summary["rows_without_text"]:
        lines.append(f"{summary['rows_without_text']:,} rows have no text field:")
        lines += [f"  {m['location']}: keys {m['keys']}" for m in summary["without_text"]]
    if not summary["rows_flagged"]:
        lines.append("No contamination found.")
        return "\n".join(lines)
    lines.append(f"Flagged {summary['rows_flagged']:,} rows ({summary['share_of_rows_flagged']:.2%}) with {summary['findings']:,} findings.")
    if summary["rows_with_items"]:
        lines.append("")
        lines.append(f"  {'benchmark':<20} {'items found':>14} {'rows':>8}")
        for name, bench in summary["benchmarks"].items():
            if bench["rows"]:
                lines.append(f"  {name:<20} {bench['items_found']:>6} / {bench['items_in_index']:<6} {bench['rows']:>8}")
    if summary["artifacts"]:
        lines.append("")
        lines.append(f"Benchmark templates reused in {summary['rows_with_artifacts']:,} rows:")
        for template_id, art in summary["artifacts"].items():
            text = art["template"] or ""
            lines.append(f"  {template_id:<22} {art['rows']:>6} rows ({art['share_of_rows']:.2%})  \"{text[:70]}{'...' if len(text) > 70 else ''}\"")
    lines.append("")
    lines.append("  by method: " + ", ".join(f"{k} {v['rows']}" for k, v in summary["methods"].items()))
    lines.append("  by kind:   " + ", ".join(f"{k} {v['rows']}" for k, v in summary["kinds"].items()))
    lines.append("  by field:  " + ", ".join(f"{k} {v['rows']}" for k, v in summary["fields"].items()))
    shown = result.findings.filter(result.findings["score"] >= fail_min_score).sort("score", descending=True).head(top)
    lines.append("")
    lines.append(f"Top {shown.height} findings:")
    for f in shown.iter_rows(named=True):
        role = f" ({f['role']})" if f["role"] else ""
        lines.append(f"  {f['source']}:{f['row'] + 1} {f['field']}{role} <- {f['benchmark']} {f['item_id']} "
                     f"[{f['item_part']}] {f['method']} {f['score']:.2f}")
        lines.append(f"      {f['evidence'][:120]}")
    return "\n".join(lines)


@artifacts_app.command("show")
def artifacts_show(
    index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
    benchmark: Annotated[Optional[str], typer.Option(help="Only this benchmark's templates.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the templates as JSON Lines.")] = False,
) -> None:
    """List each benchmark's instruction templates with coverage and distinctiveness."""
    try:
        index = load_index(index_dir)
    except DecontamError as exc:
        raise _fail(exc) from None
    if "artifact" not in index.layers:
        raise _fail(ParameterError(f"index {index_dir} has no artifact layer", "rebuild it with --methods including artifact"))
    templates = index.layers["artifact"].templates
    if benchmark is not None:
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
        print(f"Error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"Hint: {exc.hint}", file=sys.stderr)
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
