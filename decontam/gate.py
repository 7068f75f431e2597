"""The CI gate: fail-on policies, a baseline of accepted findings, and SARIF / JUnit output.

A policy is one or more conditions; the gate fails when any condition holds. A condition is one or
more clauses joined by ``&`` (all must hold):

    any                      any finding
    none                     never fail (report only)
    kind:item | kind:answer | kind:artifact      a finding of that kind
    method:ngram | benchmark:gsm8k               a finding of that method / benchmark
    score>=0.9               a finding scoring at least 0.9
    rows>10                  more than 10 rows flagged        (by findings matching the other clauses)
    rate>0.001               more than 0.1% of the rows read flagged

e.g. ``--fail-on kind:item&score>=0.9 --fail-on rate>0.01``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import polars as pl

from . import __version__
from .atomic import write_text
from .errors import InputError, ParameterError
from .findings import KINDS

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_CLAUSE = re.compile(rf"^(?:(any|none)|(kind|method|benchmark):([\w.\-]+)|(score)(>=|>){_NUMBER}|(rows|rate)(>=|>){_NUMBER})$")


@dataclass(frozen=True)
class Condition:
    text: str
    filters: tuple[tuple[str, str], ...]  # (column, value)
    min_score: tuple[str, float] | None
    amount: tuple[str, str, float] | None  # (rows|rate, op, value)
    never: bool = False

    def holds(self, findings: pl.DataFrame, rows_read: int) -> bool:
        if self.never:
            return False
        selected = findings
        for column, value in self.filters:
            selected = selected.filter(pl.col(column) == value)
        if self.min_score is not None:
            op, value = self.min_score
            selected = selected.filter(pl.col("score") >= value if op == ">=" else pl.col("score") > value)
        rows = selected.select("source", "row").unique().height
        if self.amount is None:
            return rows > 0
        what, op, value = self.amount
        amount = rows if what == "rows" else (rows / rows_read if rows_read else 0.0)
        return amount >= value if op == ">=" else amount > value


def parse_policy(conditions: list[str] | None) -> list[Condition]:
    """``--fail-on`` values -> conditions. No value means ``any``."""
    out = []
    for text in conditions or ["any"]:
        filters, min_score, amount, never = [], None, None, False
        for clause in text.split("&"):
            m = _CLAUSE.match(clause.strip())
            if not m:
                raise ParameterError(f"--fail-on {text!r}: cannot read {clause!r}",
                                     "use any, none, kind:item, method:ngram, benchmark:NAME, score>=0.9, rows>10 or rate>0.01, joined by &")
            if m.group(1) == "none":
                never = True
            elif m.group(2):
                if m.group(2) == "kind" and m.group(3) not in KINDS:
                    raise ParameterError(f"--fail-on {text!r}: unknown kind {m.group(3)!r}", f"kinds are {', '.join(KINDS)}")
                filters.append((m.group(2), m.group(3)))
            elif m.group(4):
                min_score = (m.group(5), float(m.group(6)))
            elif m.group(7):
                amount = (m.group(7), m.group(8), float(m.group(9)))
        out.append(Condition(text, tuple(filters), min_score, amount, never))
    return out


def check_policy(conditions: list[Condition], benchmarks: list[str], methods: list[str]) -> list[str]:
    """A condition on a benchmark or method the index does not have could never hold, and a typo would
    leave the gate open: an error. One past 1 on scores or rates can never hold either, which may be
    meant (``none`` says it): a warning, returned."""
    known = {"benchmark": benchmarks, "method": methods}
    warnings = []
    for condition in conditions:
        for column, value in condition.filters:
            if column in known and value not in known[column]:
                raise ParameterError(f"--fail-on {condition.text!r}: the index has no {column} {value!r}",
                                     f"its {column}s are {', '.join(known[column])}")
        share = condition.min_score[1] if condition.min_score else None
        if condition.amount and condition.amount[0] == "rate":
            share = max(share or 0.0, condition.amount[2])
        if share is not None and share > 1:
            warnings.append(f"Warning: --fail-on {condition.text!r} can never hold (scores and rates are in [0, 1]); "
                            "--fail-on none says that the gate never fails")
    return warnings


def evaluate(conditions: list[Condition], findings: pl.DataFrame, rows_read: int) -> list[str]:
    """The conditions that hold (the gate failed when this is not empty)."""
    return [c.text for c in conditions if c.holds(findings, rows_read)]


# -- baseline -----------------------------------------------------------------------------------------


def fingerprints(findings: pl.DataFrame) -> list[str]:
    """Stable identity of a finding across re-scans: its file name, field, test item, method and the
    text it matched, not its row number (rows move when lines are added above)."""
    out = []
    for source, field, bench, item_id, part, method, evidence in findings.select(
            "source", "field", "benchmark", "item_id", "item_part", "method", "evidence").iter_rows():
        key = "|".join([Path(source).name, field, bench, item_id, part, method, " ".join(evidence.split())])
        out.append(hashlib.sha256(key.encode()).hexdigest()[:20])
    return out


def write_baseline(findings: pl.DataFrame, path: str | Path) -> int:
    entries = [
        {"fingerprint": fp, "source": Path(row["source"]).name, "field": row["field"], "benchmark": row["benchmark"],
         "item_id": row["item_id"], "method": row["method"], "evidence": row["evidence"][:120]}
        for fp, row in zip(fingerprints(findings), findings.iter_rows(named=True))
    ]
    unique = {e["fingerprint"]: e for e in entries}
    write_text(path, json.dumps({"decontam_baseline": 1, "findings": list(unique.values())}, indent=2, ensure_ascii=False) + "\n")
    return len(unique)


def read_baseline(path: str | Path) -> set[str]:
    path = Path(path)
    hint = "write one with `decontam baseline FINDINGS --out FILE`"
    if not path.exists():
        raise InputError(f"baseline file {path} does not exist", hint)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {entry["fingerprint"] for entry in data["findings"]}
    except UnicodeDecodeError as exc:  # (a findings table given for its baseline was a traceback)
        raise InputError(f"{path} is not a decontam baseline (not JSON text{': a Parquet file' if path.suffix == '.parquet' else ''})",
                         hint) from exc
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a decontam baseline ({exc})", hint) from exc


def without_baseline(findings: pl.DataFrame, accepted: set[str]) -> tuple[pl.DataFrame, int]:
    """Findings not in the baseline, and how many were accepted."""
    if not accepted or findings.is_empty():
        return findings, 0
    keep = pl.Series([fp not in accepted for fp in fingerprints(findings)])
    return findings.filter(keep), int((~keep).sum())


# -- SARIF and JUnit ----------------------------------------------------------------------------------


def to_sarif(findings: pl.DataFrame) -> dict:
    """SARIF 2.1.0: one rule per benchmark and kind, one result per finding."""
    rules, results = {}, []
    for row in findings.iter_rows(named=True):
        rule_id = f"{row['kind']}/{row['benchmark']}"
        rules.setdefault(rule_id, {
            "id": rule_id,
            "shortDescription": {"text": f"{row['benchmark']} {'template reused' if row['kind'] == 'artifact' else 'test ' + row['kind'] + ' found'}"},
        })
        results.append({
            "ruleId": rule_id,
            "level": "error",
            "message": {"text": f"{row['field']} holds {row['benchmark']} {row['item_id']} [{row['item_part']}] "
                                f"({row['method']}, score {row['score']:.2f}): {row['evidence'][:200]}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": row["source"]},
                                                "region": {"startLine": row["row"] + 1}}}],
            "properties": {k: row[k] for k in ("record_id", "benchmark", "subset", "item_id", "item_part", "method", "kind", "score")},
        })
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "decontam", "version": __version__, "rules": list(rules.values())}},
                  "results": results}],
    }


def to_junit(findings: pl.DataFrame, benchmarks: list[str]) -> str:
    """JUnit XML: one test case per benchmark, failing with the rows that hold its items or templates."""
    cases = []
    for bench in benchmarks:
        mine = findings.filter(pl.col("benchmark") == bench)
        if mine.is_empty():
            cases.append(f'<testcase classname="decontam" name={_xml_attr(bench)}/>')
            continue
        rows = mine.select("source", "row").unique().height
        details = "\n".join(f"{r['source']}:{r['row'] + 1} {r['field']} {r['item_id']} {r['method']} {r['score']:.2f}"
                            for r in mine.head(200).iter_rows(named=True))
        cases.append(f'<testcase classname="decontam" name={_xml_attr(bench)}><failure message={_xml_attr(f"{rows} rows hold {bench}")}>'
                     f"{escape(_xml_chars(details))}</failure></testcase>")
    failures = sum(1 for c in cases if "<failure" in c)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="decontam" tests="{len(cases)}" failures="{failures}">\n'
            + "\n".join(cases) + "\n</testsuite>\n")


# Characters XML 1.0 cannot hold, escaped or not (control characters: a corpus's field names may have
# them); a JUnit file with one is no XML, and the CI that reads it fails on it.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_chars(text: str) -> str:
    """``text`` with each character XML cannot hold written out as its escape (``\\x1b``)."""
    return _NOT_XML.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _xml_attr(text: str) -> str:
    return quoteattr(_xml_chars(text))
