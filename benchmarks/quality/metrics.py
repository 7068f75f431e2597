"""Scores of a detector's output on the labelled examples."""

from __future__ import annotations

from collections import defaultdict


def score(examples, flagged: list[set[str]]) -> dict:
    """``flagged[i]``: benchmarks the detector flagged on example i. A positive counts when its own
    benchmark is flagged; any flag on a negative is a false positive."""
    if len(examples) != len(flagged):
        raise ValueError("one flag set per example")
    tp: dict[str, int] = defaultdict(int)
    pos: dict[str, int] = defaultdict(int)
    fp: dict[str, int] = defaultdict(int)
    neg: dict[str, int] = defaultdict(int)
    for example, benches in zip(examples, flagged):
        if example.positive:
            pos[example.cls] += 1
            tp[example.cls] += int(example.benchmark in benches)
        else:
            neg[example.cls] += 1
            fp[example.cls] += int(bool(benches))
    pooled_fp, pooled_neg = sum(fp.values()), sum(neg.values())
    classes = {}
    for cls, n in pos.items():
        recall = tp[cls] / n
        # precision of this class against all negatives pooled, as if both were one corpus
        precision = tp[cls] / (tp[cls] + pooled_fp) if tp[cls] + pooled_fp else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        classes[cls] = {"n": n, "recall": recall, "precision": precision, "f1": f1}
    negatives = {cls: {"n": n, "false_positive_rate": fp[cls] / n} for cls, n in neg.items()}
    return {"classes": classes, "negatives": negatives,
            "pooled_false_positive_rate": pooled_fp / pooled_neg if pooled_neg else 0.0}
