"""The quality harness is honest: detectors that flag everything or nothing get the scores they deserve."""

from benchmarks.quality import detectors
from benchmarks.quality.metrics import score
from benchmarks.quality.sets import Example, build_sets


def _examples():
    return ([Example("verbatim", True, {"prompt": f"q{i}"}, "gsm8k", str(i)) for i in range(8)]
            + [Example("paraphrase", True, {"prompt": f"p{i}"}, "mmlu", str(i)) for i in range(4)]
            + [Example("negative: chat", False, {"text": f"n{i}"}) for i in range(20)])


def test_flag_everything_has_full_recall_and_full_false_positive_rate():
    examples = _examples()
    result = score(examples, detectors.everything(examples))
    assert {c: r["recall"] for c, r in result["classes"].items()} == {"verbatim": 1.0, "paraphrase": 1.0}
    assert result["negatives"]["negative: chat"]["false_positive_rate"] == 1.0
    assert result["classes"]["verbatim"]["precision"] == 8 / 28


def test_flag_nothing_has_zero_recall_and_no_false_positive():
    examples = _examples()
    result = score(examples, detectors.nothing(examples))
    assert all(r["recall"] == 0.0 and r["f1"] == 0.0 for r in result["classes"].values())
    assert result["pooled_false_positive_rate"] == 0.0


def test_the_wrong_benchmark_is_not_a_hit():
    examples = _examples()
    wrong = [{"arc"} if e.positive else set() for e in examples]
    assert all(r["recall"] == 0.0 for r in score(examples, wrong)["classes"].values())


def test_sets_are_reproducible_and_labelled():
    first, second = build_sets(per_class=12), build_sets(per_class=12)
    assert first == second
    classes = {e.cls for e in first}
    assert {"verbatim", "paraphrase (LLM rewrites)", "translation", "numeric perturbation", "negative: GSM8K train"} <= classes
    assert all(e.benchmark and e.item_id for e in first if e.positive and e.cls != "paraphrase (LLM rewrites)")


def test_threshold_curve_is_read_off_one_scan(tmp_path):
    import xml.etree.ElementTree as ET

    import decontam
    from benchmarks.quality.curves import threshold_curve, write_svg

    from .conftest import INDEX_SOURCES, read_jsonl

    items = read_jsonl(INDEX_SOURCES["gsm8k"])[:30]
    index = decontam.build_index(tmp_path / "idx", [f"gsm8k={INDEX_SOURCES['gsm8k']}"])
    half = lambda q: " ".join(q.split()[: len(q.split()) * 6 // 10])  # noqa: E731 - ~60% of the item's words
    examples = ([Example("verbatim", True, {"prompt": x["question"]}, "gsm8k", x["id"]) for x in items[:10]]
                + [Example("verbatim", True, {"prompt": half(x["question"])}, "gsm8k", x["id"]) for x in items[10:20]]
                + [Example("negative: chat", False, {"text": "Tell me a story about a dragon who bakes bread."})] * 5)
    curve = threshold_curve(index, examples, "ngram", "min_score", [0.3, 0.5, 0.7, 0.9, 1.0], 0.7, ["verbatim"])
    assert curve.recall[0] == 1.0 and curve.recall[-1] == 0.5  # truncated copies fall out as the bar rises
    assert curve.recall == sorted(curve.recall, reverse=True)
    assert curve.false_positive_rate == [0.0] * 5
    write_svg(tmp_path / "c.svg", [curve])
    assert ET.parse(tmp_path / "c.svg").getroot().tag.endswith("svg")
