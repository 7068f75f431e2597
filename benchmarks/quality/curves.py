"""Threshold curves: recall and false-positive rate of one layer as its threshold moves, and an SVG plot.

A layer's score for a (row, item part) pair does not depend on the threshold, so one scan at the
lowest threshold gives every point of the curve: a row counts at threshold t when one of its
findings scores at least t, or for the embedding layer at least what its own rule (``floors``) asks
at min_cosine t: more against reference answers and for short texts, less for multiple-choice
knowledge questions.
"""

from __future__ import annotations

import html
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

import decontam
from decontam.scan import ScanOptions


@dataclass
class Curve:
    label: str  # e.g. "embedding: min_cosine"
    thresholds: list[float]
    recall: list[float]  # pooled over the positive classes named in `classes`
    false_positive_rate: list[float]  # pooled over every negative set
    chosen: float  # the default
    classes: list[str]


def threshold_curve(index: decontam.Index, examples, method: str, option: str, thresholds: list[float], chosen: float,
                    classes: list[str]) -> Curve:
    """Scan once with ``option`` (a ScanOptions field) at min(thresholds) and read the curve off the scores."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        path.write_text("".join(json.dumps(e.record, ensure_ascii=False) + "\n" for e in examples))
        options = ScanOptions(methods=(method,), **{option: min(thresholds)})
        findings = decontam.scan(str(path), index=index, options=options).findings
    floors = _embedding_floors(index, examples, findings) if method == "embedding" else None
    found_rows = findings["row"].to_numpy()
    found_benchmarks = findings["benchmark"].to_list()
    scores = findings["score"].to_numpy()
    positives = [(i, e) for i, e in enumerate(examples) if e.positive and e.cls in classes]
    negatives = [i for i, e in enumerate(examples) if not e.positive]
    recall, fpr = [], []
    for t in thresholds:
        passed = scores >= (floors(t) if floors else t)
        hits = {(int(r), b) for r, b, ok in zip(found_rows, found_benchmarks, passed) if ok}
        flagged = {row for row, _ in hits}
        recall.append(sum((i, e.benchmark) in hits for i, e in positives) / max(len(positives), 1))
        fpr.append(sum(i in flagged for i in negatives) / max(len(negatives), 1))
    return Curve(f"{method}: {option}", thresholds, recall, fpr, chosen, classes)


def _embedding_floors(index: decontam.Index, examples, findings: pl.DataFrame):
    """t -> the cosine each finding needs at min_cosine t, by the layer's own rule (``floors``)."""
    from decontam.normalize import tokenize_batch
    from decontam.readers import segments_of

    layer = index.layers["embedding"]
    part_of = {key: i for i, key in enumerate(index.parts.select("benchmark", "item_id", "part").iter_rows())}
    choice_parts = set(layer.part_ix[layer.is_choice_item].tolist())
    texts = {(row, seg.field): seg.text for row in set(findings["row"].to_list()) for seg in segments_of(examples[row].record)}
    # the window the finding's cosine is of (its evidence span): a whole segment, or a part of a long one
    windows = [texts[(r, f)][start:end] for r, f, start, end in findings.select("row", "field", "span_start", "span_end").rows()]
    keys = findings.select("benchmark", "item_id", "item_part").rows()
    is_answer = (findings["kind"] == "answer").to_numpy()
    choice_item = np.array([part_of[k] in choice_parts for k in keys]) & (findings["role"].fill_null("") != "assistant").to_numpy()
    short = np.array([len(tokens) < layer.params.short_text_words for tokens in tokenize_batch(windows)], dtype=bool)
    return lambda t: layer.floors(t, is_answer=is_answer, choice_item=choice_item, short=short)


def write_svg(path: Path, curves: list[Curve]) -> None:
    """One panel per curve: recall (solid) and false-positive rate x 10 (dashed) against the threshold."""
    width, height, pad = 420, 300, 48
    panels = []
    for k, curve in enumerate(curves):
        x0 = k * width
        lo, hi = min(curve.thresholds), max(curve.thresholds)

        def x(t, x0=x0, lo=lo, hi=hi):
            return x0 + pad + (t - lo) / (hi - lo) * (width - 2 * pad)

        def y(v):
            return height - pad - v * (height - 2 * pad)

        def line(values, style, curve=curve):
            points = " ".join(f"{x(t):.1f},{y(min(v, 1.0)):.1f}" for t, v in zip(curve.thresholds, values))
            return f'<polyline fill="none" stroke-width="2" {style} points="{points}"/>'

        ticks = "".join(
            f'<line x1="{x0 + pad}" x2="{x0 + width - pad}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
            f'<text x="{x0 + pad - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="10">{v:.1f}</text>'
            for v in (0, 0.2, 0.4, 0.6, 0.8, 1.0))
        xticks = "".join(f'<text x="{x(t):.1f}" y="{height - pad + 14}" text-anchor="middle" font-size="10">{t:g}</text>'
                         for t in curve.thresholds[:: max(1, len(curve.thresholds) // 6)])
        named = ", ".join(curve.classes)
        classes = html.escape(named if len(named) <= 70 else f"{len(curve.classes)} classes: {curve.classes[0]} … {curve.classes[-1]}")
        panels.append(
            f'<g><text x="{x0 + width / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{html.escape(curve.label)}</text>'
            f'<text x="{x0 + width / 2}" y="32" text-anchor="middle" font-size="9">recall: {classes}</text>{ticks}{xticks}'
            f'<line x1="{x(curve.chosen):.1f}" x2="{x(curve.chosen):.1f}" y1="{pad}" y2="{height - pad}" stroke="#888" stroke-dasharray="2,3"/>'
            f'<text x="{x(curve.chosen) + 3:.1f}" y="{pad + 10}" font-size="10">default {curve.chosen:g}</text>'
            + line(curve.recall, 'stroke="#1f77b4"')
            + line([10 * v for v in curve.false_positive_rate], 'stroke="#d62728" stroke-dasharray="6,3"')
            + f'<text x="{x0 + width / 2}" y="{height - 8}" text-anchor="middle" font-size="10">threshold</text></g>')
    legend = (f'<text x="10" y="{height + 14}" font-size="11" fill="#1f77b4">— recall of the named classes</text>'
              f'<text x="230" y="{height + 14}" font-size="11" fill="#d62728">- - false-positive rate on all negatives, x 10</text>')
    path.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * len(curves)}" height="{height + 24}" '
                    f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>{"".join(panels)}{legend}</svg>\n')
