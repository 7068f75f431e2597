"""The findings table: its schema, writing it, and the summary numbers a scan reports."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

from .atomic import replaced, write_text
from .errors import InputError, ParameterError

FINDINGS_SCHEMA = {
    "source": pl.String,
    "row": pl.Int64,
    "record_id": pl.String,
    "field": pl.String,
    "role": pl.String,
    "benchmark": pl.String,
    "subset": pl.String,
    "item_id": pl.String,
    "item_part": pl.String,
    "method": pl.String,
    "kind": pl.String,
    "score": pl.Float64,
    "span_start": pl.Int64,
    "span_end": pl.Int64,
    "evidence": pl.String,
}
SORT_KEYS = ["source", "row", "field", "benchmark", "item_id", "item_part", "method"]
KINDS = ("item", "answer", "artifact")
METHODS = ("ngram", "minhash", "embedding", "artifact")


def check_names(option: str, names: Iterable[str] | None, known: Sequence[str]) -> None:
    """An option that selects findings by kind or method must name real ones: a typo would select
    nothing, and a clean would remove nothing, a split find every item clean."""
    unknown = [name for name in names or () if name not in known]
    if unknown:
        raise ParameterError(f"{option}: unknown {', '.join(map(repr, unknown))}", f"choose from {', '.join(known)}")


def check_index_matches(findings: pl.DataFrame, index) -> None:
    """The index must be the one the findings were made with (or one that holds it): every test item
    they name (kinds ``item``, ``answer``) and every template (``artifact``) must be in it. With
    another index a split would find every item clean, a compare no contamination, and a report
    could show no test text."""
    named = findings.filter(pl.col("kind") != "artifact").select("benchmark", "item_id").unique()
    missing = named.join(index.items.select("benchmark", "item_id"), on=["benchmark", "item_id"], how="anti").sort("benchmark", "item_id")
    templates = findings.filter(pl.col("kind") == "artifact")["item_id"].unique().sort()
    known = index.layers["artifact"].templates["template_id"] if "artifact" in index.layers else pl.Series([], dtype=pl.String)
    missing_templates = templates.filter(~templates.is_in(known.implode()))
    if missing.height or len(missing_templates):
        example = (f"{missing['benchmark'][0]} item {missing['item_id'][0]!r}" if missing.height
                   else f"template {missing_templates[0]!r}")
        raise InputError(f"the findings name {missing.height + len(missing_templates)} test item(s) or template(s) that index "
                         f"{index.path} does not have (e.g. {example}): the scan used another index",
                         "pass --index with the index the scan used")


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDINGS_SCHEMA)


METADATA_KEY = b"decontam.scan"


FINDINGS_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".csv": "csv"}


def findings_format(path: str | Path) -> str:
    """parquet, jsonl or csv, by the file's name; anything else is a ``ParameterError`` (the CLI asks
    before it scans, so that a long scan never ends without a place to write its findings)."""
    fmt = FINDINGS_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ParameterError(f"cannot tell the format of findings file {path}", "name it *.parquet, *.jsonl or *.csv")
    return fmt


def write_findings(findings: pl.DataFrame, path: str | Path, *, metadata: dict | None = None) -> None:
    """Parquet (``metadata`` — scan counts, index — goes into the file's key-value metadata), or JSON
    Lines or CSV (for a spreadsheet) by the file's name; their metadata then goes to PATH.meta.json."""
    path = Path(path)
    fmt = findings_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = findings.to_arrow()
        if metadata is not None:
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: json.dumps(metadata).encode()})
        with replaced(path) as tmp:
            pq.write_table(table, tmp)
        return
    with replaced(path) as tmp:
        if fmt == "jsonl":
            findings.write_ndjson(tmp)
        else:
            findings.with_columns(_as_text_cells(findings)).write_csv(tmp)
    if metadata is not None:
        write_text(str(path) + ".meta.json", json.dumps(metadata, ensure_ascii=False))


# A spreadsheet runs a cell that starts with = + - @ (or a tab or carriage return) as a formula, and
# the evidence, the field names and the record ids come from the corpus: whoever wrote a row could put
# "=HYPERLINK(...)" in front of a reviewer. The CSV findings table writes such a cell after a ' (which
# spreadsheets show as text and hide), and one that starts with ' before them too, so that reading it
# back takes exactly one ' off and gives the text that was written (OWASP's CSV injection advice).
_FORMULA_CELL = r"^'*[=+\-@\t\r]"
_QUOTED_FORMULA_CELL = r"^'+[=+\-@\t\r]"


def _as_text_cells(findings: pl.DataFrame) -> list[pl.Expr]:
    return [pl.when(pl.col(name).str.contains(_FORMULA_CELL)).then(pl.lit("'") + pl.col(name)).otherwise(pl.col(name)).alias(name)
            for name, dtype in findings.schema.items() if dtype == pl.String]


def _from_text_cells(findings: pl.DataFrame) -> list[pl.Expr]:
    return [pl.when(pl.col(name).str.contains(_QUOTED_FORMULA_CELL)).then(pl.col(name).str.slice(1)).otherwise(pl.col(name)).alias(name)
            for name, dtype in findings.schema.items() if dtype == pl.String]


def read_findings(path: str | Path) -> pl.DataFrame:
    return read_findings_with_metadata(path)[0]


def read_findings_with_metadata(path: str | Path) -> tuple[pl.DataFrame, dict]:
    """The findings table and what the scan stored with it ({} when nothing was stored)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"findings file {path} does not exist", "write one with `decontam scan CORPUS --out FINDINGS.parquet`")
    metadata: dict = {}
    fmt = FINDINGS_FORMATS.get(path.suffix.lower(), "parquet")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            raw = (table.schema.metadata or {}).get(METADATA_KEY)
            metadata = json.loads(raw) if raw else {}
            frame = pl.from_arrow(table)
        else:
            if not path.stat().st_size:
                frame = empty_findings()
            elif fmt == "jsonl":
                # (read with the table's schema, a corpus given for its findings had every column, all null)
                with open(path, "rb") as handle:
                    first = json.loads(next((line for line in handle if line.strip()), b"{}"))
                if missing := [name for name in FINDINGS_SCHEMA if not isinstance(first, dict) or name not in first]:
                    raise InputError(f"{path} is not a findings table: its first row has no {', '.join(missing[:3])}"
                                     + ("..." if len(missing) > 3 else ""), "pass a file written by `decontam scan --out`")
                frame = pl.read_ndjson(path, schema=FINDINGS_SCHEMA)
            else:
                frame = pl.read_csv(path, schema_overrides=FINDINGS_SCHEMA, infer_schema=False)
                frame = frame.with_columns(_from_text_cells(frame))
            meta_path = Path(str(path) + ".meta.json")
            if meta_path.exists():
                metadata = json.loads(meta_path.read_text())
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"cannot read findings file {path}: {exc}", "pass a file written by `decontam scan --out`") from exc
    missing = set(FINDINGS_SCHEMA) - set(frame.columns)
    if missing:
        raise InputError(f"{path} is not a findings table: columns {sorted(missing)} are missing",
                         "pass a file written by `decontam scan --out`")
    return frame.select(list(FINDINGS_SCHEMA)).cast(FINDINGS_SCHEMA), metadata


def _by_source(findings: pl.DataFrame, rows_read: dict[str, int]) -> dict[str, dict]:
    """Per corpus file: rows read (None where the counts do not say), rows flagged, findings."""
    table = findings.group_by("source").agg(pl.struct("row").n_unique().alias("rows"), pl.len().alias("findings"))
    flagged = {source: (rows, n) for source, rows, n in table.iter_rows()}
    return {source: {"rows_read": rows_read.get(source), "rows_flagged": flagged.get(source, (0, 0))[0],
                     "findings": flagged.get(source, (0, 0))[1]}
            for source in sorted(set(rows_read) | set(flagged))}


def files_with_findings(sources: dict[str, dict]) -> tuple[list[tuple[str, dict]], int]:
    """A summary's ``sources``: the files with findings, most rows flagged first, and how many had none."""
    flagged = sorted((item for item in sources.items() if item[1]["rows_flagged"]), key=lambda kv: -kv[1]["rows_flagged"])
    return flagged, len(sources) - len(flagged)


def summarize(findings: pl.DataFrame, counts: dict, index_benchmarks: dict[str, int], *, fail_min_score: float,
              templates: pl.DataFrame | None = None) -> dict:
    """The scan summary as plain data (printed as JSON with --json, or as tables).

    Item contamination (kinds item / answer) is counted per benchmark; reused benchmark templates
    (kind artifact) are counted apart, per template.
    """
    flagged = findings.filter(pl.col("score") >= fail_min_score)
    rows_flagged = flagged.select("source", "row").unique().height
    item_findings = flagged.filter(pl.col("kind") != "artifact")
    benchmarks = {}
    for name, n_items in index_benchmarks.items():
        mine = item_findings.filter(pl.col("benchmark") == name)
        subsets = {}
        for (subset,), group in mine.drop_nulls("subset").group_by(["subset"], maintain_order=True):
            subsets[str(subset)] = {"items_found": group["item_id"].n_unique(),
                                    "rows": group.select("source", "row").unique().height}
        benchmarks[name] = {
            "items_in_index": n_items,
            "items_found": mine["item_id"].n_unique(),
            "rows": mine.select("source", "row").unique().height,
            "subsets": dict(sorted(subsets.items())),
        }

    def rows_by(column: str | pl.Expr, name: str) -> dict:
        grouped = flagged.with_columns(column.alias(name) if isinstance(column, pl.Expr) else pl.col(column))
        table = grouped.group_by(name).agg(pl.struct("source", "row").n_unique().alias("rows"), pl.len().alias("findings"))
        return {str(k): {"rows": r, "findings": f} for k, r, f in sorted(table.iter_rows())}

    rows_read = counts["rows_read"]
    artifacts = {}
    artifact_findings = flagged.filter(pl.col("kind") == "artifact")
    text_of = dict(templates.select("template_id", "text").iter_rows()) if templates is not None else {}
    for (template_id,), group in artifact_findings.group_by(["item_id"], maintain_order=True):
        rows = group.select("source", "row").unique(maintain_order=True)
        artifacts[template_id] = {
            "benchmark": group["benchmark"][0],
            "template": text_of.get(template_id),
            "rows": rows.height,
            "share_of_rows": round(rows.height / rows_read, 6) if rows_read else 0.0,
            "examples": [f"{src}:{row + 1}" for src, row in rows.head(3).iter_rows()],
        }
    return {
        "rows_read": rows_read,
        "rows_malformed": counts["rows_malformed"],
        "rows_without_text": counts["rows_without_text"],
        "rows_unchanged": counts.get("rows_unchanged", 0),
        "segments": counts["segments"],
        "rows_flagged": rows_flagged,
        "rows_with_items": item_findings.select("source", "row").unique().height,
        "rows_with_artifacts": artifact_findings.select("source", "row").unique().height,
        "share_of_rows_flagged": round(rows_flagged / rows_read, 6) if rows_read else 0.0,
        "findings": flagged.height,
        "benchmarks": benchmarks,
        "artifacts": dict(sorted(artifacts.items(), key=lambda kv: -kv[1]["rows"])),
        "methods": rows_by("method", "method"),
        "kinds": rows_by("kind", "kind"),
        # messages[3].content -> messages[*].content, so per-field counts group like fields
        "fields": rows_by(pl.col("field").str.replace_all(r"\[\d+\]", "[*]"), "field_pattern"),
        "sources": _by_source(flagged, counts.get("rows_read_by_source") or {}),
        "malformed": counts["malformed_examples"],
        "without_text": counts["without_text_examples"],
        "gate": {"fail_min_score": fail_min_score, "failed": rows_flagged > 0},
    }
