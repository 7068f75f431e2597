"""The audit manifest of a scan: what was checked, with what, and what came out, so that a release can
state it exactly and anyone can verify it later."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import polars as pl

from . import __version__
from .atomic import write_text
from .checksums import sha256_file
from .findings import SORT_KEYS


def findings_digest(findings: pl.DataFrame) -> str:
    """sha256 over the findings in a canonical order and encoding (independent of batch order)."""
    canonical = findings.sort(SORT_KEYS + ["score"]).write_ndjson()
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def file_digest(path: str) -> str | None:
    if path == "-" or path.startswith("hf:") or not Path(path).is_file():
        return None
    return "sha256:" + sha256_file(path)


def build_audit(result, sources: list[str], options, summary: dict, gate: dict) -> dict:
    index = result.index
    return {
        "decontam_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "index": {
            "path": str(index.path),
            "format_version": index.manifest["format_version"],
            "files": index.manifest.get("files", {}),
            "benchmarks": [{k: b[k] for k in ("name", "source", "revision", "items")} for b in index.manifest["benchmarks"]],
            "layers": index.manifest["layers"],
        },
        "parameters": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items() if k != "only_rows"},
        "inputs": [{"path": s, "sha256": file_digest(s)} for s in sources],
        "counts": {k: summary[k] for k in ("rows_read", "rows_malformed", "rows_without_text", "segments", "rows_flagged", "findings")},
        "findings_sha256": findings_digest(result.findings),
        "gate": gate,
    }


def write_audit(audit: dict, path: str | Path) -> None:
    write_text(path, json.dumps(audit, indent=2, ensure_ascii=False) + "\n")
