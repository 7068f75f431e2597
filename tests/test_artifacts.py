import json
import random

import polars as pl
import pytest
from typer.testing import CliRunner

import decontam
from decontam.cli import app
from decontam.index import IndexParams
from decontam.layers import ArtifactLayer, ArtifactParams

from .conftest import BENCH, DATA, read_jsonl, write_jsonl

KKKKK = ("If you cannot determine the correct multiple-choice answer, take your best guess. Once you have your answer, "
         "please duplicate that letter five times in a single string. For example, if the answer is K, then write KKKKK.")
MINED_CORE = ("if you cannot determine the correct multiple choice answer take your best guess once you have your answer please "
              "duplicate that letter five times in <l> single string for example if the answer is <l> then write <ll>")


@pytest.fixture(scope="module")
def judge_index(tmp_path_factory):
    path = tmp_path_factory.mktemp("judge") / "idx"
    return decontam.build_index(path, [
        f"judgebench={BENCH / 'judgebench/judgebench_gpt4o.jsonl.gz'}",
        f"gsm8k={BENCH / 'gsm8k/test.jsonl.gz'}",
        f"ifeval={BENCH / 'ifeval/input_data.jsonl.gz'}",
    ], background=[DATA / "corpora/hh_rlhf/harmless-base_test.jsonl.gz"], curated_templates=None)


def test_kkkkk_template_is_mined_with_its_coverage(judge_index):
    templates = judge_index.layers["artifact"].templates
    assert set(templates["origin"]) == {"mined"}  # nothing curated in this index
    kkkkk = templates.filter(pl.col("text") == MINED_CORE)
    assert kkkkk.height == 1
    row = kkkkk.row(0, named=True)
    assert (row["benchmark"], row["items"], round(row["coverage"], 2)) == ("judgebench", 189, 0.54)
    assert row["distinctiveness"] >= 0.99
    assert templates.filter(pl.col("benchmark") == "gsm8k").height == 0  # GSM8K has no instruction template


def _mc_block(item):
    choices = "\n".join(f"({c['label']}) {c['text']}" for c in item["question"]["choices"])
    return f"{item['question']['stem']}\n{choices}"


def _variants(letter):
    text = KKKKK.replace("is K, then write KKKKK", f"is {letter}, then write {letter * 5}")
    words = text.split()
    return {
        "letter changed": text,
        "re-wrapped": "\n".join(" ".join(words[i : i + 7]) for i in range(0, len(words), 7)),
        "upper case": text.upper(),
    }


def test_template_under_unindexed_questions_is_a_judgebench_artifact(judge_index, tmp_path):
    openbook = read_jsonl(BENCH / "openbookqa/test.jsonl.gz")[:30]
    rng = random.Random(0)
    rows, plain = [], []
    for i, item in enumerate(openbook):
        variant = list(_variants(rng.choice("ABCDEFGHJ")).values())[i % 3]
        rows.append({"id": item["id"], "prompt": f"{_mc_block(item)}\n{variant}", "chosen": "BBBBB", "rejected": "CCCCC"})
        plain.append({"id": item["id"], "prompt": _mc_block(item), "chosen": "B", "rejected": "C"})
    found = decontam.scan(str(write_jsonl(tmp_path / "t.jsonl", rows)), index=judge_index).findings
    artifacts = found.filter(pl.col("kind") == "artifact")
    assert set(artifacts["row"]) == set(range(30))
    assert set(artifacts["benchmark"]) == {"judgebench"} and set(artifacts["method"]) == {"artifact"}
    assert set(found["kind"]) == {"artifact"}  # a row with a template but no test item is an artifact finding only
    assert all(e.lower().startswith("if you cannot determine the correct multiple-choice answer") for e in artifacts["evidence"])
    clean = decontam.scan(str(write_jsonl(tmp_path / "p.jsonl", plain)), index=judge_index)
    assert clean.findings.height == 0


def test_summary_reports_templates_apart(judge_index, tmp_path, gsm8k):
    rows = [{"prompt": f"What is 2+2?\n{KKKKK}"}, {"prompt": gsm8k[0]["question"]}, {"prompt": "hello there my friend"}]
    summary = decontam.scan(str(write_jsonl(tmp_path / "s.jsonl", rows)), index=judge_index).summary()
    assert summary["rows_with_items"] == 1 and summary["rows_with_artifacts"] == 1 and summary["rows_flagged"] == 2
    (template_id, art), = summary["artifacts"].items()
    assert art["benchmark"] == "judgebench" and art["rows"] == 1 and art["template"] == MINED_CORE
    assert art["examples"] == [f"{tmp_path / 's.jsonl'}:1"]
    assert summary["benchmarks"]["judgebench"]["items_found"] == 0


WORDS = ("river volcano glacier desert forest ocean island canyon meadow valley harbor bridge castle village market "
         "garden library museum station tower lantern compass anchor feather pebble thunder breeze meadowlark orchard "
         "quarry summit lagoon prairie tundra savanna delta estuary fjord plateau reef dune marsh grove").split()


def _synthetic_parts(prefix, suffix, n=40):
    rng = random.Random(7)
    rows = []
    for i in range(n):
        body = " ".join(rng.sample(WORDS, 9))
        rows.append(("synthetic", i, f"{prefix} Describe the {body}. {suffix}".strip()))
    return pl.DataFrame(rows, schema=["benchmark", "item_no", "text"], orient="row")


def test_generic_boilerplate_is_not_a_template():
    parts = _synthetic_parts("Answer the following question:", "Let's think step by step.")
    layer = ArtifactLayer.build(ArtifactParams(), parts)
    texts = layer.templates["text"].to_list()
    assert not any("think step by step" in t or "answer the following question" in t for t in texts), texts


def test_phrase_common_in_background_is_not_distinctive():
    suffix = "Please make sure that your reply is polite and also very concise."
    parts = _synthetic_parts("", suffix)
    mined = ArtifactLayer.build(ArtifactParams(), parts)
    assert any("make sure that your reply is polite" in t for t in mined.templates["text"])
    background = [f"Some chat {i}. {suffix}" for i in range(200)] + [f"Other text {i}" for i in range(200)]
    filtered = ArtifactLayer.build(ArtifactParams(), parts, background=background)
    assert not any("make sure that your reply is polite" in t for t in filtered.templates["text"])


def test_default_index_reports_curated_kkkkk_without_judgebench_items(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": f"Which gas do plants absorb?\n(A) oxygen\n(B) carbon dioxide\n{KKKKK}"}])
    result = CliRunner().invoke(app, ["scan", str(corpus), "--json"])
    assert result.exit_code == 1, result.stderr
    summary = json.loads(result.stdout)
    assert [a["benchmark"] for a in summary["artifacts"].values()] == ["judgebench"]


def test_artifacts_show_cli(judge_index):
    result = CliRunner().invoke(app, ["artifacts", "show", str(judge_index.path), "--benchmark", "judgebench"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["template", "origin", "items", "coverage", "distinct", "text"]
    kkkkk = [line for line in lines if "duplicate that letter five times" in line]
    assert len(kkkkk) == 1 and " mined " in kkkkk[0] and " 189 " in kkkkk[0] and "54.0%" in kkkkk[0]
    as_json = [json.loads(line) for line in CliRunner().invoke(app, ["artifacts", "show", str(judge_index.path), "--json"]).stdout.splitlines()]
    assert {row["benchmark"] for row in as_json} >= {"judgebench", "ifeval"}
    typo = CliRunner().invoke(app, ["artifacts", "show", str(judge_index.path), "--benchmark", "judgebnch"])
    assert typo.exit_code == 2 and f"Error: index {judge_index.path} has no templates of benchmark 'judgebnch'" in typo.stderr


def test_artifact_layer_round_trips_through_disk(judge_index):
    loaded = decontam.load_index(judge_index.path)
    assert loaded.layers["artifact"].templates.equals(judge_index.layers["artifact"].templates)


def test_index_without_artifact_layer(tmp_path):
    index = decontam.build_index(tmp_path / "i", [f"gsm8k={BENCH / 'gsm8k/test.jsonl.gz'}"], params=IndexParams(methods=("ngram",)))
    result = CliRunner().invoke(app, ["artifacts", "show", str(index.path)])
    assert result.exit_code == 2 and "has no artifact layer" in result.stderr


def test_quoted_spans_are_slots():
    parts = _synthetic_parts("", 'Finish your answer with the exact words "PLACEHOLDER" and say nothing else after them.')
    texts = [t.replace("PLACEHOLDER", w) for t, w in zip(parts["text"], ["see you", "bye now", "the end", "all done"] * 10)]
    parts = parts.with_columns(pl.Series("text", texts))
    layer = ArtifactLayer.build(ArtifactParams(), parts)
    assert "finish your answer with the exact words <q> and say nothing else after them" in layer.templates["text"].to_list()
    from decontam.ngrams import encode_batch

    probe = ["Tell me a joke. Finish your answer with the exact words 'over and out' and say nothing else after them.",
             "I don't think it's fine. Say nothing else."]
    found = layer.match(encode_batch(probe, pl.Series(["x"]), keep_tokens=True), probe, 0.8)
    assert found["text_ix"].to_list() == [0]
    assert probe[0][found["char_start"][0]:].startswith("Finish your answer")


def test_a_curated_template_file_is_read_as_json_lines_or_refused_with_its_line(tmp_path):
    from decontam.errors import InputError
    from decontam.layers.artifact import load_curated

    good = tmp_path / "t.jsonl"  # (a raw U+2028 in a string is JSON: the line is not cut there)
    good.write_text(json.dumps({"benchmark": "x", "text": "first\u2028second part of the template"}, ensure_ascii=False) + "\n\n",
                    encoding="utf-8")
    assert [t["benchmark"] for t in load_curated(good)] == ["x"]
    for content, message in ((b'{"benchmark": "x"}\n', r"t2.jsonl:1: a curated template needs benchmark and text"),
                             (b'{"benchmark": "x", "text": "y"}\n[1]\n', r"t2.jsonl:2: a JSON list, not an object"),
                             (b"PAR1\xf4\x00\x00PAR1", r"t2.jsonl is not UTF-8 text \(byte 5\)")):  # (a Parquet file: was a traceback)
        (tmp_path / "t2.jsonl").write_bytes(content)
        with pytest.raises(InputError, match=message):
            load_curated(tmp_path / "t2.jsonl")

