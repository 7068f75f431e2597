import json
import random

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import decontam
from decontam.errors import InputError
from decontam.findings import FINDINGS_SCHEMA
from decontam.index import IndexParams
from decontam.scan import ScanOptions
from decontam.testsets import load_test_set, parse_source

from .conftest import DATA, read_jsonl, write_jsonl

RECORD_FORMATS = {
    "prompt": lambda q: {"prompt": q, "chosen": "Sure, here you go.", "rejected": "No."},
    "chosen": lambda q: {"prompt": "Tell me something.", "chosen": q, "rejected": "No."},
    "messages": lambda q: {"messages": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": q}]},
    "conversations": lambda q: {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": "OK"}]},
    "alpaca": lambda q: {"instruction": "Solve this.", "input": q, "output": "Done."},
    "hh-rlhf": lambda q: {"chosen": f"\n\nHuman: {q}\n\nAssistant: Let me help.", "rejected": "\n\nHuman: hi\n\nAssistant: hey"},
    "text": lambda q: {"text": q},
    "nested": lambda q: {"data": {"turns": [{"body": q}]}},
    "chatml-text": lambda q: {"text": f"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\nOK<|im_end|>"},
    "llama2-text": lambda q: {"text": f"<s>[INST] {q} [/INST] Here it is.</s>"},
}
EXPECTED_FIELD = {
    "prompt": ("prompt", "user"), "chosen": ("chosen", "assistant"), "messages": ("messages[1].content", "user"),
    "conversations": ("conversations[0].value", "user"), "alpaca": ("input", "user"), "hh-rlhf": ("chosen.turn[0]", "user"),
    "text": ("text", None), "nested": ("data.turns[0].body", None), "chatml-text": ("text.turn[1]", "user"),
    "llama2-text": ("text.turn[0]", "user"),
}


def scan_rows(tmp_path, index, rows, **options):
    path = write_jsonl(tmp_path / f"corpus-{random.random()}.jsonl", rows)
    return decontam.scan(str(path), index=index, options=ScanOptions(**options))


def test_findings_table_has_the_contract_schema(tmp_path, index, gsm8k):
    result = scan_rows(tmp_path, index, [{"id": "r1", "prompt": gsm8k[17]["question"]}])
    assert dict(result.findings.schema) == FINDINGS_SCHEMA
    row = result.findings.filter(pl.col("method") == "ngram").row(0, named=True)
    assert row["row"] == 0 and row["record_id"] == "r1" and row["field"] == "prompt" and row["role"] == "user"
    assert (row["benchmark"], row["item_id"], row["item_part"], row["kind"], row["score"]) == ("gsm8k", "gsm8k_test_17", "question", "item", 1.0)
    text = gsm8k[17]["question"]
    assert text.endswith("?") and row["span_start"] == 0 and row["span_end"] == len(text)  # its closing mark too
    assert row["evidence"].startswith(text[:40]) and row["evidence"].endswith("?")


def test_ngram_evidence_ends_past_the_marks_that_close_its_last_word(tmp_path, index, gsm8k):
    """Tokens are letters and digits, so a span ended inside "f(2)?" at "f(2"; it takes up to
    three closing marks now, and nothing else (not "*2" after a number, not the next word)."""
    from decontam.scan import _with_closing_marks

    assert [_with_closing_marks(t, 3) for t in ("f(2)?!.. more", "x 3*2", "abc", "end.\" next", "a b)")] == [6, 3, 3, 5, 4]
    question = gsm8k[17]["question"]
    found = scan_rows(tmp_path, index, [{"prompt": question + "\" (from the test set) and more words"}], methods=("ngram",)).findings
    assert found["evidence"][0].endswith(question[-12:] + "\"")


@pytest.mark.parametrize("fmt", sorted(RECORD_FORMATS))
@pytest.mark.parametrize("bench_name,item_no", [("gsm8k", 3), ("mmlu", 1200), ("truthfulqa", 40), ("arena_hard", 7), ("humaneval", 12)])
def test_verbatim_item_in_any_record_format_is_found(tmp_path, index, fmt, bench_name, item_no):
    parts = index.parts.filter((pl.col("benchmark") == bench_name) & (pl.col("kind") == "item"))
    item_id = parts["item_id"].unique(maintain_order=True)[item_no]
    text = "\n".join(parts.filter(pl.col("item_id") == item_id)["text"].to_list())
    result = scan_rows(tmp_path, index, [{"id": "x", "text": "unrelated row about gardening"}, RECORD_FORMATS[fmt](text)])
    hits = result.findings.filter((pl.col("benchmark") == bench_name) & (pl.col("item_id") == item_id))
    assert hits.height > 0
    assert set(hits["row"].to_list()) == {1}
    assert (hits["field"][0], hits["role"][0]) == EXPECTED_FIELD[fmt]


def _wrap8(text):
    words = text.split()
    return "\n".join(" ".join(words[i : i + 8]) for i in range(0, len(words), 8))


DISGUISES = {
    "wrapped at 8 words": _wrap8,
    "curly quotes": lambda t: t.replace("'", "\u2019").replace('"', "\u201c"),
    "NBSP": lambda t: t.replace(" ", "\u00a0"),
    "zero-width spaces": lambda t: "\u200b".join(t[i : i + 4] for i in range(0, len(t), 4)),
    "upper case": str.upper,
    "chat template": lambda t: f"<|im_start|>user\n{t}<|im_end|>\n<|im_start|>assistant\n",
    "inside a longer prompt": lambda t: f"My teacher gave us this today. {t} Can you walk me through it slowly?",
}


@pytest.mark.parametrize("disguise", sorted(DISGUISES))
def test_disguised_items_are_found(tmp_path, index, gsm8k, disguise):
    items = [gsm8k[i] for i in (0, 101, 555, 1000, 1318)]
    rows = [{"id": it["id"], "prompt": DISGUISES[disguise](it["question"])} for it in items]
    result = scan_rows(tmp_path, index, rows)
    found = set(result.findings.filter(pl.col("method") == "ngram").select("row", "item_id").iter_rows())
    assert found == {(i, it["id"]) for i, it in enumerate(items)}


def test_leaked_answer_is_reported_as_answer(tmp_path, index, gsm8k):
    item = gsm8k[42]
    result = scan_rows(tmp_path, index, [{"prompt": "Solve the problem about the shop.", "chosen": item["answer"], "rejected": "I think 7."}])
    hits = result.findings.filter(pl.col("method") == "ngram")
    assert hits.select("field", "role", "item_id", "item_part", "kind").rows() == [("chosen", "assistant", item["id"], "answer", "answer")]


def test_mt_bench_turns_split_over_a_conversation(tmp_path, index):
    mt = read_jsonl(DATA / "benchmarks/mt_bench/question.jsonl.gz")[5]
    convo = {"messages": [{"role": "user", "content": mt["turns"][0]}, {"role": "assistant", "content": "Here is my first answer."},
                          {"role": "user", "content": mt["turns"][1]}]}
    found = scan_rows(tmp_path, index, [convo]).findings.filter(pl.col("method") == "ngram")
    assert set(found.select("field", "item_part").iter_rows()) == {("messages[0].content", "turn1"), ("messages[2].content", "turn2")}


def test_gsm8k_train_and_hard_negatives_are_not_flagged_as_gsm8k_test(index):
    for corpus in ("corpora/skywork/pt_train.jsonl.gz", "contamination/skywork_mock_gsm8k/mock_gsm8k_test_public.jsonl.gz"):
        result = decontam.scan(str(DATA / corpus), index=index)
        flagged = result.findings.filter(pl.col("benchmark") == "gsm8k").select("row").unique().height
        assert flagged / result.counts.rows_read <= 0.005, corpus
        assert flagged == 0, corpus  # measured: 0 at the default thresholds (benchmarks/README.md)


def test_hh_rlhf_background_stays_clean(index):
    result = decontam.scan(str(DATA / "corpora/hh_rlhf/harmless-base_test.jsonl.gz"), index=index)
    assert result.counts.rows_read == 2312 and result.counts.rows_malformed == 0
    assert result.findings.height == 0


def test_malformed_rows_are_counted_and_located(tmp_path, index, gsm8k):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"prompt": gsm8k[0]["question"]}) + "\n{broken\n" + json.dumps({"score": 3}) + "\n")
    result = decontam.scan(str(path), index=index)
    summary = result.summary()
    assert (summary["rows_read"], summary["rows_malformed"], summary["rows_without_text"], summary["rows_flagged"]) == (3, 1, 1, 1)
    assert summary["malformed"][0]["location"] == f"{path}:2"
    assert summary["without_text"] == [{"location": f"{path}:3", "keys": ["score"]}]
    with pytest.raises(InputError, match=rf"{path}:2: not valid JSON"):
        decontam.scan(str(path), index=index, options=ScanOptions(strict=True))


def test_summary_counts(tmp_path, index, gsm8k):
    rows = [{"prompt": gsm8k[i]["question"]} for i in range(3)] + [{"prompt": "nothing to see here at all"}]
    summary = scan_rows(tmp_path, index, rows).summary()
    assert summary["rows_flagged"] == 3 and summary["share_of_rows_flagged"] == 0.75
    assert summary["benchmarks"]["gsm8k"]["items_found"] == 3 and summary["benchmarks"]["mmlu"]["items_found"] == 0
    assert summary["fields"]["prompt"]["rows"] == 3 and summary["gate"]["failed"] is True
    assert scan_rows(tmp_path, index, rows).summary(fail_min_score=1.01)["gate"]["failed"] is False


def test_a_file_named_by_several_inputs_is_scanned_once(tmp_path, index, gsm8k, monkeypatch):
    """`scan a.jsonl a.jsonl`, or a folder and a file in it: the file used to be scanned as many times
    as it was named, squared (4x the rows and findings for two names)."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [{"prompt": gsm8k[2]["question"]}, {"prompt": "nothing to see here at all"}])
    (folder / "link.jsonl").symlink_to(folder / "a.jsonl")  # a file of its own to a reader of the folder
    once = decontam.scan(str(folder / "a.jsonl"), index=index)
    monkeypatch.chdir(tmp_path)
    named = decontam.scan(["corpus/a.jsonl", "corpus/a.jsonl", str(folder / "a.jsonl"), "./corpus/../corpus/a.jsonl", "corpus"], index=index)
    assert named.counts.rows_read == 4 and named.counts.rows_read_by_source == {"corpus/a.jsonl": 2, "corpus/link.jsonl": 2}
    assert named.findings.filter(pl.col("source") == "corpus/a.jsonl").drop("source").equals(once.findings.drop("source"))


def test_methods_option_limits_layers(tmp_path, index, gsm8k):
    result = scan_rows(tmp_path, index, [{"prompt": gsm8k[9]["question"]}], methods=("minhash",))
    assert set(result.findings["method"]) == {"minhash"}


def test_a_text_repeated_across_fields_and_rows_is_flagged_everywhere(tmp_path, index, gsm8k):
    """A batch scans each distinct text once: every segment holding it still gets its findings."""
    question = gsm8k[5]["question"]
    transcript = f"\n\nHuman: {question}\n\nAssistant: Let me think."
    rows = [{"chosen": transcript + " Done.", "rejected": transcript + " No idea."}, {"prompt": question, "response": question},
            {"prompt": "nothing to see"}]
    found = scan_rows(tmp_path, index, rows, methods=("ngram",)).findings
    assert sorted(found.select("row", "field", "role").rows()) == [
        (0, "chosen.turn[0]", "user"), (0, "rejected.turn[0]", "user"), (1, "prompt", "user"), (1, "response", "assistant")]
    assert found["score"].to_list() == [1.0] * 4 and found["evidence"].n_unique() == 1


def test_sharded_scan_equals_unsharded(tmp_path, index, gsm8k):
    rows = [{"prompt": gsm8k[i]["question"]} if i % 3 == 0 else {"prompt": f"filler text number {i} about cats"} for i in range(60)]
    whole = scan_rows(tmp_path, index, rows, batch_size=1000).findings
    small = scan_rows(tmp_path, index, rows, batch_size=7).findings
    assert whole.drop("source").equals(small.drop("source"))


# -- properties -------------------------------------------------------------------------------------

WORDS = st.lists(st.sampled_from("the a cat dog ran over under blue green seven quickly river stone".split()), max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(item_no=st.integers(0, 1318), before=WORDS, after=WORDS, field=st.sampled_from(["prompt", "chosen", "text", "output"]))
def test_property_pasted_item_is_always_found(tmp_path, index, gsm8k, item_no, before, after, field):
    text = " ".join(before) + " " + gsm8k[item_no]["question"] + " " + " ".join(after)
    result = scan_rows(tmp_path, index, [{field: text}], methods=("ngram",))
    assert gsm8k[item_no]["id"] in set(result.findings["item_id"])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000))
def test_property_scores_stay_in_unit_interval(tmp_path, index, gsm8k, seed):
    rng = random.Random(seed)
    words = " ".join(gsm8k[rng.randrange(1319)]["question"] for _ in range(3)).split()
    rng.shuffle(words)
    text = " ".join(words[: rng.randrange(5, len(words))])
    scores = scan_rows(tmp_path, index, [{"text": text}, {"text": gsm8k[seed % 1319]["question"]}]).findings["score"]
    assert ((scores >= 0) & (scores <= 1)).all()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch_size=st.integers(1, 40), split=st.integers(1, 39))
def test_property_sharding_does_not_change_findings(tmp_path, index, gsm8k, batch_size, split):
    rows = [{"prompt": gsm8k[i * 7]["question"]} if i % 2 else {"prompt": f"plain words {i} here"} for i in range(40)]
    whole = scan_rows(tmp_path, index, rows).findings.drop("source")
    first = scan_rows(tmp_path, index, rows[:split], batch_size=batch_size).findings.drop("source")
    second = scan_rows(tmp_path, index, rows[split:], batch_size=batch_size).findings.drop("source")
    merged = pl.concat([first, second.with_columns(pl.col("row") + split)]).sort(["row", "field", "benchmark", "item_id", "item_part", "method"])
    assert whole.sort(["row", "field", "benchmark", "item_id", "item_part", "method"]).equals(merged)


def test_batches_end_at_a_record_count_or_at_a_text_size(tmp_path, index, gsm8k, monkeypatch):
    """2,000 records of 64 KB each made one 128 MB batch (3 GB of RSS): a batch also ends once its
    records hold ``batch_bytes``, by their size as read or, where the reader does not know it, by
    the characters of their strings. The findings do not depend on where batches end."""
    import sys

    from decontam.types import Record

    scan_module = sys.modules["decontam.scan"]  # (the package's `scan` is the function)

    sizes = []
    real = scan_module.scan_batch
    monkeypatch.setattr(scan_module, "scan_batch", lambda batch, *a: sizes.append(len(batch)) or real(batch, *a))
    records = [Record("mem", i, {"prompt": gsm8k[i]["question"]}, size=1_000 * (i % 2)) for i in range(10)]
    counts = scan_module.ScanCounts()
    frames = list(scan_module.scan_records(records, index, ScanOptions(methods=("ngram",), batch_bytes=2_500), lambda _: counts))
    chars = [len(gsm8k[i]["question"]) for i in range(10)]  # the even rows' size: their text
    assert all(c < 1_000 for c in chars)
    expected, held, run = [], 0, 0
    for i in range(10):
        held, run = held + (1_000 if i % 2 else chars[i]), run + 1
        if held >= 2_500:
            expected, held, run = expected + [run], 0, 0
    assert sizes == expected + ([run] if run else []) and len(sizes) > 2
    assert pl.concat(frames)["row"].to_list() == list(range(10))
    with pytest.raises(decontam.errors.ParameterError, match="batch_bytes=0 must be at least 1"):
        ScanOptions(batch_bytes=0).validate(index)


def test_iter_findings_gives_finding_objects(tmp_path, index, gsm8k):
    result = scan_rows(tmp_path, index, [{"prompt": gsm8k[21]["question"]}], methods=("ngram",))
    (finding,) = list(result.iter_findings())
    assert isinstance(finding, decontam.Finding) and finding.item_id == gsm8k[21]["id"] and finding.score == 1.0


@given(st.lists(st.text(alphabet="abcdefghij ", min_size=1, max_size=14), min_size=1, max_size=40),
       st.integers(min_value=20, max_value=120))
def test_evidence_is_shortened_between_words(words, limit):
    from decontam.scan import shorten

    text = " ".join(" ".join(words).split())
    short = shorten(text, limit)
    assert len(short) <= limit
    if len(text) <= limit:
        assert short == text
        return
    head, tail = short.split(" ... ", 1)
    assert text.startswith(head) and text.endswith(tail)
    # each side is cut between words, or at the full half where no word ends near it
    half = (limit - 5) // 2
    assert text[len(head)] == " " or len(head) == half
    assert text[-len(tail) - 1] == " " or len(tail) == half
    assert len(head) >= half * 4 // 5 - 1 and len(tail) >= half - half // 5 - 1


def test_evidence_shortened_keeps_whole_words():
    from decontam.scan import shorten

    text = "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends"
    assert shorten(text, 60) == "Janet's ducks lay 16 eggs ... muffins for her friends"
    assert shorten("字" * 100, 25) == "字" * 10 + " ... " + "字" * 10  # no spaces: cut by characters


def test_test_items_on_web_pages_are_found_through_html_entities_and_tags(tmp_path):
    """Bing snippets of real pages that hold ARC-Challenge items (Contamination_Detector's web
    matches): "The ocean&#39;s surface...", "<b>Water</b> <b>in the solid</b> <b>phase</b>...". Before
    entities and tags were folded, 17 of these 120 were found; now 95."""
    rows = [r for r in read_jsonl(DATA / "contamination/contamination_detector/web_matches.jsonl.gz") if r["benchmark"] == "ARC"][:120]
    index = decontam.build_index(tmp_path / "arc", [f"arc={DATA / 'benchmarks/arc/ARC-Challenge-Test.jsonl.gz'}"],
                                 params=IndexParams(methods=("ngram", "minhash")))
    corpus = write_jsonl(tmp_path / "snippets.jsonl", [{"text": r["snippet"]} for r in rows])
    found = decontam.scan(str(corpus), index=index).findings["row"].n_unique()
    assert found >= 90, found


def test_alpaca_eval_holds_all_of_vicuna_bench_and_self_instruct_and_nothing_else_is_flagged():
    """AlpacaEval's 805 instructions include, by construction, all 80 Vicuna-Bench questions and all 252
    Self-Instruct user-oriented ones (its `dataset` field says which). A Self-Instruct item is an
    instruction and the input it applies to ("Answer the following question." + "How do you say 'good
    evening' in French."): the input is a part too. One stays out of reach: "Solve this equation." with
    an input of numbers only, which no part can hold."""
    index = decontam.build_index(None, [f"vicuna={DATA / 'benchmarks/vicuna_bench/question.jsonl.gz'}",
                                        f"selfinstruct={DATA / 'benchmarks/self_instruct_user_oriented/user_oriented_instructions.jsonl.gz'}"],
                                 params=IndexParams(methods=("ngram", "minhash")))
    corpus = DATA / "benchmarks/alpaca_eval/alpaca_eval_gpt4_1106_preview.jsonl.gz"
    rows = read_jsonl(corpus)
    found = set(decontam.scan(str(corpus), index=index).findings.select("row", "benchmark").iter_rows())
    by_set = {name: sum((i, name) in found for i, r in enumerate(rows) if r["dataset"] == name) for name in ("vicuna", "selfinstruct")}
    assert by_set == {"vicuna": 80, "selfinstruct": 251}
    assert not {row for row, _ in found} - {i for i, r in enumerate(rows) if r["dataset"] in ("vicuna", "selfinstruct")}


def test_short_inputs_of_instructions_flag_nothing_in_a_code_corpus():
    """Self-Instruct's inputs "+ how are you?" and 'print("Hello World!")' are in any chat or code
    corpus; they are data an instruction applies to, not the test item. Code Alpaca (2k rows) holds
    none of Self-Instruct's items: 6 of its rows were flagged when every input was a part."""
    loaded = load_test_set(parse_source(f"selfinstruct={DATA / 'benchmarks/self_instruct_user_oriented/user_oriented_instructions.jsonl.gz'}"))
    parts = {p.text for item in loaded.items for p in item.parts if p.name.startswith("input")}
    assert 'print("Hello World!")' not in parts and "+ how are you?" not in parts
    assert any(p.startswith('How do you say "good evening" in French') for p in parts)
    index = decontam.build_index(None, [loaded], params=IndexParams(methods=("ngram", "minhash")))
    findings = decontam.scan(str(DATA / "corpora/code_alpaca/code_alpaca_2k.jsonl.gz"), index=index).findings
    assert findings.height == 0, findings.select("record_id", "item_id", "evidence").rows()


def test_every_natural_overlap_between_the_shared_files_is_found():
    """../shared/data/contamination/natural_overlaps: 1,440 (corpus row, benchmark item) pairs in 8
    corpus files where 80%+ of the item's word 8-grams occur in the row (AlpacaEval and PandaLM holding
    Self-Instruct, Auto-J holding MT-Bench, JudgeBench's MMLU-Pro questions that are MMLU's, ...).
    The scan must name each row with its benchmark and item (benchmarks/natural_overlaps.py)."""
    from benchmarks.natural_overlaps import build_overlap_index, listed_pairs

    index = build_overlap_index()
    listed = listed_pairs()
    assert sum(map(len, listed.values())) == 1440
    for corpus, expected in listed.items():
        hits = set(decontam.scan(str(DATA / corpus), index=index).findings.select("record_id", "benchmark", "item_id").iter_rows())
        assert not expected - hits, (corpus, sorted(expected - hits)[:5])
