"""Readable reports of a scan: JSON, Markdown (short enough for a PR comment or
``$GITHUB_STEP_SUMMARY``) and one self-contained HTML file with charts and side-by-side evidence.

``build_report`` turns findings (plus, when given, the scan's counts and the index) into plain data;
the ``render_*`` functions only format it.
"""

from __future__ import annotations

import html
import json
import re

import polars as pl

from .findings import check_index_matches, files_with_findings, summarize
from .index import Index
from .scan import shorten

MARKDOWN_LIMIT = 65_000  # GitHub's limit for a comment / step summary is 65,536 characters
_WORD = re.compile(r"[^\W_]+")


def plural(n: int) -> str:
    """The ending of a noun counted ``n`` times: ``row{plural(n)}``."""
    return "" if n == 1 else "s"


def count_of(n: int, noun: str) -> str:
    """``1 row``, ``2 rows``, ``1,392 rows``."""
    return f"{n:,} {noun}{plural(n)}"


# Text from a corpus (evidence, field names, keys) reaches terminals and pages: its control characters
# would be commands to a terminal (colours, the window title, the clipboard through OSC 52, a carriage
# return that overwrites the line) and bidi controls would reorder what a reviewer reads, on a terminal,
# a page or a pull-request comment. They are shown as their escapes.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control and bidi characters (but newlines and tabs) written as their escapes."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _html(text: str) -> str:
    return html.escape(printable(text))


def flagged_of_read(counts: dict) -> str:
    """A file's rows flagged, and of how many read where the counts say: ``2 / 3``."""
    return f"{counts['rows_flagged']:,}" + (f" / {counts['rows_read']:,}" if counts["rows_read"] is not None else "")


def build_report(findings: pl.DataFrame, *, counts: dict | None = None, index: Index | None = None, top: int = 20) -> dict:
    """Everything a report shows, as plain data. ``index`` must be the one the findings were made with
    (``findings.check_index_matches``)."""
    if index is not None:
        check_index_matches(findings, index)
    counts = counts or {
        "rows_read": None, "rows_malformed": None, "rows_without_text": None, "segments": None,
        "malformed_examples": [], "without_text_examples": [],
    }
    items_in_index = {b["name"]: b["items"] for b in index.manifest["benchmarks"]} if index else {
        name: None for name in findings.filter(pl.col("kind") != "artifact")["benchmark"].unique().sort().to_list()}
    templates = index.layers["artifact"].templates if index is not None and "artifact" in index.layers else None
    summary = summarize(findings, {**counts, "rows_read": counts["rows_read"] or 0}, items_in_index,
                        fail_min_score=0.0, templates=templates)
    if counts["rows_read"] is None:
        summary["rows_read"] = summary["share_of_rows_flagged"] = None
    if index is not None:
        per_subset = index.parts.drop_nulls("subset").group_by("benchmark", "subset").agg(pl.col("item_id").n_unique().alias("n"))
        for bench, subset, n in per_subset.iter_rows():
            entry = summary["benchmarks"].get(bench, {}).get("subsets", {}).get(subset)
            if entry is not None:
                entry["items_in_subset"] = n
    for bench in summary["benchmarks"].values():
        bench["share_of_items_found"] = round(bench["items_found"] / bench["items_in_index"], 6) if bench.get("items_in_index") else None
        if summary["rows_read"]:
            bench["share_of_rows"] = round(bench["rows"] / summary["rows_read"], 6)
    summary["score_histograms"] = {
        method: _histogram(group["score"].to_list()) for (method,), group in findings.group_by(["method"], maintain_order=True)
    }
    summary["top_findings"] = [_evidence(row, index) for row in _top(findings, top).iter_rows(named=True)]
    return summary


def _top(findings: pl.DataFrame, top: int) -> pl.DataFrame:
    """Highest scores first, items and answers before templates, one row per (row, item) pair."""
    return (
        findings.with_columns((pl.col("kind") == "artifact").alias("_artifact"))
        # n-gram findings first among equals: they carry the exact matched span as evidence
        .sort(["_artifact", "score", "source", "row", "method"], descending=[False, True, False, False, True])
        .unique(["source", "row", "benchmark", "item_id"], keep="first", maintain_order=True)
        .head(top).drop("_artifact")
    )


def _histogram(scores: list[float], bins: int = 10) -> list[int]:
    counts = [0] * bins
    for score in scores:
        counts[min(int(score * bins), bins - 1)] += 1
    return counts


def _evidence(row: dict, index: Index | None) -> dict:
    item_text = None
    if index is not None:
        if row["kind"] == "artifact" and "artifact" in index.layers:
            match = index.layers["artifact"].templates.filter(pl.col("template_id") == row["item_id"])
            item_text = match["text"][0] if match.height else None
        else:
            match = index.parts.filter((pl.col("benchmark") == row["benchmark"]) & (pl.col("item_id") == row["item_id"])
                                       & (pl.col("part") == row["item_part"]))
            item_text = match["text"][0] if match.height else None
    corpus_marks, item_marks = _overlap_marks(row["evidence"], item_text or "")
    return {**{k: row[k] for k in ("source", "row", "record_id", "field", "role", "benchmark", "subset", "item_id",
                                  "item_part", "method", "kind", "score")},
            "corpus_text": row["evidence"], "item_text": item_text, "corpus_marks": corpus_marks, "item_marks": item_marks}


def _overlap_marks(a: str, b: str, n: int = 3) -> tuple[list[list[int]], list[list[int]]]:
    """Character spans of the words of ``a`` and ``b`` that lie in a word ``n``-gram both share."""
    words_a = [(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(a)]
    words_b = [(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(b)]
    grams_a = {tuple(w[2] for w in words_a[i : i + n]) for i in range(len(words_a) - n + 1)}
    grams_b = {tuple(w[2] for w in words_b[i : i + n]) for i in range(len(words_b) - n + 1)}
    shared = grams_a & grams_b

    def marks(words):
        hit = [False] * len(words)
        for i in range(len(words) - n + 1):
            if tuple(w[2] for w in words[i : i + n]) in shared:
                hit[i : i + n] = [True] * n
        spans: list[list[int]] = []
        for (start, end, _), on in zip(words, hit):
            if not on:
                continue
            if spans and start - spans[-1][1] <= 3:
                spans[-1][1] = end
            else:
                spans.append([start, end])
        return spans

    return marks(words_a), marks(words_b)


# -- JSON ---------------------------------------------------------------------------------------------


def render_json(report: dict) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2)


# -- Markdown -----------------------------------------------------------------------------------------


def render_markdown(report: dict, limit: int = MARKDOWN_LIMIT) -> str:
    lines = ["## decontam: benchmark contamination report", ""]
    if report["rows_read"] is not None:
        lines.append(f"Scanned **{report['rows_read']:,}** row{plural(report['rows_read'])}; **{report['rows_flagged']:,}** flagged "
                     f"({report['share_of_rows_flagged']:.2%}): {report['rows_with_items']:,} with test items, "
                     f"{report['rows_with_artifacts']:,} with benchmark templates.")
    else:
        lines.append(f"**{report['rows_flagged']:,}** row{plural(report['rows_flagged'])} flagged: {report['rows_with_items']:,} with test items, "
                     f"{report['rows_with_artifacts']:,} with benchmark templates.")
    lines.append("")
    found = {k: v for k, v in report["benchmarks"].items() if v["rows"]}
    if found:
        lines += ["| benchmark | items found | share of items | rows |", "|---|---:|---:|---:|"]
        for name, bench in found.items():
            share = "" if bench.get("share_of_items_found") is None else f"{bench['share_of_items_found']:.1%}"
            total = bench.get("items_in_index") or "?"
            lines.append(f"| {name} | {bench['items_found']} / {total} | {share} | {bench['rows']} |")
        lines.append("")
    if report["artifacts"]:
        lines += ["| benchmark template | rows | share of rows |", "|---|---:|---:|"]
        for template_id, art in report["artifacts"].items():
            text = _md_code(shorten(art["template"] or template_id, 90))
            lines.append(f"| {_md_code(template_id)} {text} | {art['rows']} | {art['share_of_rows']:.2%} |")
        lines.append("")
    if report["methods"]:
        lines.append("By method: " + ", ".join(f"{k} {count_of(v['rows'], 'row')}" for k, v in report["methods"].items())
                     + ". By field: " + ", ".join(f"{_md_code(k)} {v['rows']}" for k, v in report["fields"].items()) + ".")
        if len(report["sources"]) > 1:
            flagged, clean = files_with_findings(report["sources"])
            shown = ", ".join(f"{_md_code(k)} {flagged_of_read(v)}" for k, v in flagged[:20])
            more = f", {len(flagged) - 20:,} more" if len(flagged) > 20 else ""
            lines.append("")
            lines.append(f"By file (rows flagged): {shown}{more}" + (f"; {count_of(clean, 'file')} without findings." if clean else "."))
        lines.append("")
    if report["top_findings"]:
        lines += ["<details><summary>Top findings</summary>", "", "| where | item | method | score | corpus text |",
                  "|---|---|---|---:|---|"]
        body_limit = limit - 2000
        shown = 0
        for f in report["top_findings"]:
            where = f"{f['source']}:{f['row'] + 1}"
            line = (f"| {_md_code(where)} {_md_code(f['field'])} | {f['benchmark']} "
                    f"{_md_code(f['item_id'])} {f['item_part']} | {f['method']} | {f['score']:.2f} | {_md_code(shorten(f['corpus_text'], 160))} |")
            if sum(len(x) + 1 for x in lines) + len(line) > body_limit:
                break
            lines.append(line)
            shown += 1
        if shown < len(report["top_findings"]):
            lines.append(f"| … {len(report['top_findings']) - shown} more not shown | | | | |")
        lines += ["", "</details>"]
    text = "\n".join(lines) + "\n"
    return text if len(text) <= limit else text[: limit - 20] + "\n… (truncated)\n"


def _md_code(text: str) -> str:
    """Text on one line as a code span for a table cell: the corpus's text, field names and ids are
    anyone's, and in a pull-request comment nothing of them may become a link, an image, HTML or an
    @mention. The fence is one backtick longer than any run inside; ``|`` is escaped for the table."""
    text = printable(" ".join(str(text).split()))
    if not text:
        return ""
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text[0] == "`" or text[-1] == "`" else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


# -- HTML ---------------------------------------------------------------------------------------------


def render_html(report: dict) -> str:
    esc = _html
    bench_rows = {k: v for k, v in report["benchmarks"].items() if v["rows"]}
    head = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>decontam report</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2328;padding:0 1rem}
h1{font-size:1.5rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;width:100%;font-size:.9rem} td,th{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa} .num{text-align:right} .kpi{display:inline-block;margin-right:2rem} .kpi b{font-size:1.6rem;display:block}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:.75rem;margin:.4rem 0 1.2rem} .pair div{background:#f6f8fa;border:1px solid #d0d7de;padding:.5rem;white-space:pre-wrap;font-size:.85rem}
mark{background:#ffd8b5} .meta{color:#57606a;font-size:.85rem} svg text{font-size:11px;fill:#1f2328}
</style></head><body>"""
    parts = [head, "<h1>decontam: benchmark contamination report</h1>", "<p>"]
    kpis = [("rows scanned", report["rows_read"]), ("rows flagged", report["rows_flagged"]),
            ("with test items", report["rows_with_items"]), ("with templates", report["rows_with_artifacts"])]
    parts += [f'<span class="kpi"><b>{"—" if v is None else f"{v:,}"}</b>{esc(k)}</span>' for k, v in kpis]
    parts.append("</p>")
    parts.append("<h2>Contamination per benchmark</h2>")
    if bench_rows:
        parts.append(_bar_chart([(k, v["items_found"]) for k, v in bench_rows.items()], "items found"))
        parts.append("<table><tr><th>benchmark</th><th>subset</th><th class=num>items found</th><th class=num>share of items</th><th class=num>rows</th></tr>")
        for name, bench in bench_rows.items():
            share = "" if bench.get("share_of_items_found") is None else f"{bench['share_of_items_found']:.1%}"
            parts.append(f"<tr><td>{esc(name)}</td><td></td><td class=num>{bench['items_found']} / {bench.get('items_in_index') or '?'}</td>"
                         f"<td class=num>{share}</td><td class=num>{bench['rows']}</td></tr>")
            for subset, sub in bench["subsets"].items():
                total = sub.get("items_in_subset")
                share = f"{sub['items_found'] / total:.1%}" if total else ""
                parts.append(f"<tr><td></td><td>{esc(subset)}</td><td class=num>{sub['items_found']} / {total or '?'}</td>"
                             f"<td class=num>{share}</td><td class=num>{sub['rows']}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>No test item found.</p>")
    if report["artifacts"]:
        parts.append("<h2>Benchmark templates reused</h2><table><tr><th>template</th><th>benchmark</th><th class=num>rows</th><th class=num>share of rows</th><th>examples</th></tr>")
        for template_id, art in report["artifacts"].items():
            parts.append(f"<tr><td><code>{esc(template_id)}</code><br>{esc(art['template'] or '')}</td><td>{esc(art['benchmark'])}</td>"
                         f"<td class=num>{art['rows']}</td><td class=num>{art['share_of_rows']:.2%}</td><td>{esc(', '.join(art['examples']))}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Score distributions per method</h2>")
    for method, counts in report["score_histograms"].items():
        parts.append(f"<p class=meta>{esc(method)}</p>" + _histogram_chart(counts))
    parts.append("<h2>By method and field</h2><table><tr><th>method</th><th class=num>rows</th><th class=num>findings</th></tr>")
    parts += [f"<tr><td>{esc(k)}</td><td class=num>{v['rows']}</td><td class=num>{v['findings']}</td></tr>" for k, v in report["methods"].items()]
    parts.append("</table><br><table><tr><th>field</th><th class=num>rows</th><th class=num>findings</th></tr>")
    parts += [f"<tr><td><code>{esc(k)}</code></td><td class=num>{v['rows']}</td><td class=num>{v['findings']}</td></tr>" for k, v in report["fields"].items()]
    parts.append("</table>")
    if len(report["sources"]) > 1:
        flagged, clean = files_with_findings(report["sources"])
        parts.append("<h2>By file</h2><table><tr><th>file</th><th class=num>rows flagged</th><th class=num>rows read</th><th class=num>findings</th></tr>")
        for name, v in flagged:
            read = "" if v["rows_read"] is None else f"{v['rows_read']:,}"
            parts.append(f"<tr><td><code>{esc(name)}</code></td><td class=num>{v['rows_flagged']:,}</td><td class=num>{read}</td>"
                         f"<td class=num>{v['findings']:,}</td></tr>")
        parts.append("</table>" + (f"<p class=meta>{count_of(clean, 'file')} without findings.</p>" if clean else ""))
    parts.append("<h2>Top findings</h2>")
    for f in report["top_findings"]:
        role = f" ({esc(f['role'])})" if f["role"] else ""
        parts.append(f"<p class=meta><b>{esc(f['source'])}:{f['row'] + 1}</b> <code>{esc(f['field'])}</code>{role} &larr; "
                     f"{esc(f['benchmark'])} <code>{esc(f['item_id'])}</code> [{esc(f['item_part'])}] · {esc(f['method'])} · "
                     f"{esc(f['kind'])} · score {f['score']:.2f}</p>")
        parts.append(f"<div class=pair><div>{_highlight(f['corpus_text'], f['corpus_marks'])}</div>"
                     f"<div>{_highlight(f['item_text'] or '(test text not in the index)', f['item_marks'])}</div></div>")
    parts.append("<p class=meta>Left: the corpus text; right: the test item (or template). Shared word sequences are highlighted.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _highlight(text: str, marks: list[list[int]]) -> str:
    out, last = [], 0
    for start, end in marks:
        out.append(_html(text[last:start]))
        out.append(f"<mark>{_html(text[start:end])}</mark>")
        last = end
    out.append(_html(text[last:]))
    return "".join(out)


def _bar_chart(values: list[tuple[str, int]], label: str) -> str:
    width, bar_h, gap, left = 700, 18, 6, 150
    top = max((v for _, v in values), default=1) or 1
    height = len(values) * (bar_h + gap) + 10
    rows = []
    for i, (name, value) in enumerate(values):
        y = i * (bar_h + gap) + 5
        w = int((width - left - 60) * value / top)
        rows.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{html.escape(name)}</text>'
                    f'<rect x="{left}" y="{y}" width="{max(w, 1)}" height="{bar_h}" fill="#cf222e"><title>{value} {label}</title></rect>'
                    f'<text x="{left + w + 5}" y="{y + 13}">{value}</text>')
    return f'<svg role="img" aria-label="{label} per benchmark" width="{width}" height="{height}">{"".join(rows)}</svg>'


def _histogram_chart(counts: list[int]) -> str:
    width, height, bottom = 420, 120, 20
    top = max(counts) or 1
    bar_w = width / len(counts)
    bars = []
    for i, count in enumerate(counts):
        h = int((height - bottom - 10) * count / top)
        x = i * bar_w
        bars.append(f'<rect x="{x + 2:.0f}" y="{height - bottom - h}" width="{bar_w - 4:.0f}" height="{h}" fill="#0969da">'
                    f'<title>{i / len(counts):.1f}–{(i + 1) / len(counts):.1f}: {count}</title></rect>'
                    f'<text x="{x + bar_w / 2:.0f}" y="{height - 5}" text-anchor="middle">{i / len(counts):.1f}</text>')
    return f'<svg role="img" aria-label="score histogram" width="{width}" height="{height}">{"".join(bars)}</svg>'


RENDERERS = {"json": render_json, "md": render_markdown, "html": render_html}
