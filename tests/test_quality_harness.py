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
