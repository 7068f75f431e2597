import csv
import gzip
import json

import pytest

from decontam.errors import InputError
from decontam.testsets import item_from_row, load_test_set, parse_source

from .conftest import BENCH, read_jsonl

# Every benchmark file in ../shared/data/benchmarks indexes with no options: (file, parts every item
# has, a part some items have, how the id is found).
EXPECTED = {
    "gsm8k/test.jsonl.gz": ({"question", "answer"}, None),
    "mmlu/test.jsonl.gz": ({"question", "choices", "answer"}, None),
    "arc/ARC-Challenge-Test.jsonl.gz": ({"question", "choices"}, None),
    "openbookqa/test.jsonl.gz": ({"question", "choices"}, None),
    "mt_bench/question.jsonl.gz": ({"turn1", "turn2"}, "reference1"),
    "vicuna_bench/question.jsonl.gz": ({"turn1"}, None),
    "arena_hard/question.jsonl.gz": ({"turn1"}, None),
    "humaneval/HumanEval.jsonl.gz": ({"question", "canonical_solution"}, None),
    "judgebench/judgebench_gpt4o.jsonl.gz": ({"question", "response_a", "response_b"}, None),
    "judgebench/judgebench_claude35sonnet.jsonl.gz": ({"question", "response_a", "response_b"}, None),
    "truthfulqa/TruthfulQA.jsonl.gz": ({"question", "best_answer"}, None),
    "math/math500_test.jsonl.gz": ({"question", "solution", "answer"}, None),
    "math/benbench_math_test.jsonl.gz": ({"question", "solution"}, None),
    "ifeval/input_data.jsonl.gz": ({"question"}, None),
    "mbpp/mbpp.jsonl.gz": ({"question", "code"}, None),
    "alpaca_eval/alpaca_eval_gpt4_1106_preview.jsonl.gz": ({"question", "output"}, None),
    "competition_math/aime24.jsonl.gz": ({"question", "solution", "answer"}, None),
    "competition_math/amc23.jsonl.gz": ({"question"}, None),
    "wizardlm_testset/WizardLM_testset.jsonl.gz": ({"question"}, None),
    "self_instruct_user_oriented/user_oriented_instructions.jsonl.gz": ({"question"}, "input"),
    "mt_bench/judge_prompts.jsonl.gz": ({"question"}, None),
    "mt_bench/reference_answer_gpt-4.jsonl.gz": ({"answer_turn1"}, None),
    "promptsource_templates/templates.jsonl.gz": ({"question"}, None),
}


def test_every_shared_benchmark_file_is_covered():
    files = {p.relative_to(BENCH).as_posix() for p in BENCH.rglob("*.jsonl.gz")}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_shared_benchmark_indexes_with_no_options(relative):
    required, optional = EXPECTED[relative]
    loaded = load_test_set(parse_source(f"b={BENCH / relative}"))
    rows = read_jsonl(BENCH / relative)
    assert len(loaded.items) == len(rows)
    for item, row in zip(loaded.items, rows):
        names = {p.name for p in item.parts}
        assert required <= names, (item.item_id, names)
        assert all(p.text.strip() for p in item.parts)
        assert item.item_id == str(row["id"])
    if optional:
        assert any(optional in {p.name for p in i.parts} for i in loaded.items)
    assert loaded.revision.startswith("sha256:")


def test_nested_fields_are_found():
    arc = load_test_set(parse_source(f"arc={BENCH / 'arc/ARC-Challenge-Test.jsonl.gz'}")).items[0]
    row = read_jsonl(BENCH / "arc/ARC-Challenge-Test.jsonl.gz")[0]
    parts = {p.name: p.text for p in arc.parts}
    assert parts["question"] == row["question"]["stem"]
    assert parts["choices"] == "\n".join(c["text"] for c in row["question"]["choices"])
    arena = load_test_set(parse_source(f"a={BENCH / 'arena_hard/question.jsonl.gz'}")).items[0]
    assert arena.parts[0].text == read_jsonl(BENCH / "arena_hard/question.jsonl.gz")[0]["turns"][0]["content"]


def test_answers_are_marked_as_answers():
    item = load_test_set(parse_source(f"g={BENCH / 'gsm8k/test.jsonl.gz'}")).items[0]
    kinds = {p.name: p.kind for p in item.parts}
    assert kinds == {"question": "item", "answer": "answer"}
    assert item.subset is None


def test_the_right_choice_is_known_in_every_layout():
    mmlu = load_test_set(parse_source(f"m={BENCH / 'mmlu/test.jsonl.gz'}")).items[1]
    assert mmlu.answer_choice == "24"  # answer "2": a 0-based index into choice0..choice3 ("2" is also choice1)
    arc_row = read_jsonl(BENCH / "arc/ARC-Challenge-Test.jsonl.gz")[0]
    arc = load_test_set(parse_source(f"arc={BENCH / 'arc/ARC-Challenge-Test.jsonl.gz'}")).items[0]
    assert arc_row["answerKey"] == "C" and arc.answer_choice == "Planetary days will become shorter."
    numbered = {"question": {"stem": "Which is a gas?", "choices": [{"text": "ice", "label": "1"}, {"text": "steam", "label": "2"}]},
                "answerKey": "2"}  # ARC labels some items 1-4: the label, not an index
    assert item_from_row(numbered, benchmark="arc", position=0).answer_choice == "steam"
    choices = {"question": "Which is a gas?", "choices": ["ice", "steam", "snow"]}
    for answer, expected in [(1, "steam"), ("B", "steam"), ("b", "steam"), ("snow", "snow"), (7, None), ("Z", None), (True, None)]:
        assert item_from_row({**choices, "answer": answer}, benchmark="x", position=0).answer_choice == expected, answer
    letters = {"question": "Which is a gas?", "A": "ice", "B": "steam", "answer": "B"}  # a CSV with columns A, B and answer
    assert item_from_row(letters, benchmark="x", position=0).answer_choice == "steam"
    mapped = item_from_row({"q": "Which is a gas?", "opts": ["ice", "steam"], "gold": 0}, benchmark="x", position=0,
                           field_map={"question": "q", "choices": "opts", "answer": "gold"})
    assert mapped.answer_choice == "ice"
    pro = {"question": "Adverts must not encourage which of the following?", "options": ["Safe practices", "Unsafe practices"],
           "answer": "B", "cot_content": "Adverts must not encourage unsafe practices, so the answer is (B)."}
    recipe_map = {"question": "question", "choices": "options", "answer": "cot_content"}  # MMLU-Pro's recipe
    assert item_from_row(pro, benchmark="x", position=0, field_map=recipe_map).answer_choice == "Unsafe practices"
    swag = {"ctx": "A man is on a roof. He", "endings": ["skis.", "pulls up roofing."], "label": "1"}  # HellaSwag
    assert item_from_row(swag, benchmark="x", position=0, field_map={"question": "ctx", "choices": "endings"}).answer_choice == "pulls up roofing."
    judged = {"question": "Which is better?", "choices": ["x", "y"], "label": "A>B"}  # a verdict, not a choice
    assert item_from_row(judged, benchmark="x", position=0).answer_choice is None
    open_question = load_test_set(parse_source(f"g={BENCH / 'gsm8k/test.jsonl.gz'}")).items[0]
    assert open_question.answer_choice is None  # no choices: its answer is a part of its own


def test_options_are_choices_when_they_are_texts():
    pro = item_from_row({"question": "Which is a gas?", "options": ["ice", "steam", "snow"], "answer": "B", "answer_index": 1},
                        benchmark="mmlu-pro", position=0)  # MMLU-Pro's own layout, no recipe
    assert {p.name: p.text for p in pro.parts}["choices"] == "ice\nsteam\nsnow" and pro.answer_choice == "steam"
    medqa = item_from_row({"question": "Which is a gas?", "options": {"A": "ice", "B": "steam"}, "answer_idx": "B"},
                          benchmark="medqa", position=0)  # MedQA, AGIEval: options keyed by letter
    assert {p.name: p.text for p in medqa.parts}["choices"] == "ice\nsteam" and medqa.answer_choice == "steam"
    settings = item_from_row({"question": "Which is a gas?", "options": {"temperature": 0.7}}, benchmark="x", position=0)
    assert [p.name for p in settings.parts] == ["question"] and settings.answer_choice is None


def test_explicit_mapping():
    row = {"idx": 7, "Prompt Text": {"body": "What is the boiling point of water at sea level?"}, "gold": "100 C", "grp": "physics"}
    item = item_from_row(row, benchmark="x", position=0,
                         field_map={"question": "Prompt Text.body", "answer": "gold", "id": "idx", "subset": "grp"})
    assert item.item_id == "7" and item.subset == "physics"
    assert [(p.name, p.kind) for p in item.parts] == [("question", "item"), ("answer", "answer")]


def test_unknown_layout_lists_the_keys_it_saw():
    with pytest.raises(InputError) as info:
        item_from_row({"foo": "bar", "baz": 1}, benchmark="mystery", position=3, where="m.jsonl")
    assert "keys seen: ['baz', 'foo']" in info.value.message
    assert "--map mystery:question=" in info.value.hint


def test_mapping_to_a_missing_field_is_an_error():
    with pytest.raises(InputError, match="has no field 'nope'"):
        item_from_row({"q": "text"}, benchmark="x", position=0, field_map={"question": "nope"}, where="f")


def test_csv_and_parquet_files(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": "a1", "question": "Which planet is known as the red planet?", "answer": "Mars"}]
    with open(tmp_path / "t.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    (tmp_path / "t.tsv").write_text("id\tquestion\tanswer\na1\tWhich planet is known as the red planet?\tMars\n")
    for name in ("t.csv", "t.parquet", "t.tsv"):
        item = load_test_set(parse_source(f"x={tmp_path / name}")).items[0]
        assert item.item_id == "a1" and item.parts[0].text == rows[0]["question"]


def test_letter_columns_are_choices_and_a_headerless_csv_gets_a_hint(tmp_path):
    row = {"id": 7, "question": "Which gas do plants take in for photosynthesis?", "A": "Oxygen", "B": "Carbon dioxide",
           "C": "Nitrogen", "D": "Helium", "answer": "B"}
    item = item_from_row(row, benchmark="cmmlu", position=0)
    assert [(p.name, p.text) for p in item.parts][:2] == [("question", row["question"]), ("choices", "Oxygen\nCarbon dioxide\nNitrogen\nHelium")]
    lone = item_from_row({"question": "Name a colour of the rainbow.", "B": "not a choice list"}, benchmark="x", position=0)
    assert [p.name for p in lone.parts] == ["question"]  # no A: "B" alone is not a list of choices
    (tmp_path / "abstract_algebra_test.csv").write_text('"Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.",0,1,2,3,B\n'
                                                        '"Find the degree of Q(sqrt(2)) over Q.",0,4,2,6,C\n')
    with pytest.raises(InputError, match=r"If the file has no header row \(hendrycks' MMLU CSVs have none\), add one first"):
        load_test_set(parse_source(f"mmlu={tmp_path / 'abstract_algebra_test.csv'}"))


def test_csv_test_sets_with_long_fields_and_bad_rows(tmp_path):
    long_passage = "A passage word " * 20_000  # 300 KB: past the csv module's default field limit
    with open(tmp_path / "long.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["id", "question"], ["p1", long_passage], [], ["p2", "A second question?"]])
    items = load_test_set(parse_source(f"x={tmp_path / 'long.csv'}")).items
    assert [(i.item_id, len(i.parts[0].text)) for i in items] == [("p1", len(long_passage)), ("p2", 18)]
    (tmp_path / "wide.csv").write_text("id,question\nq1,one question,an unquoted comma\n")
    with pytest.raises(InputError, match=r"wide.csv, row 1: 3 fields, the header has 2 \(line 2 of the file\)"):
        load_test_set(parse_source(f"x={tmp_path / 'wide.csv'}"))


@pytest.mark.parametrize("name", ["t.csv.zst", "t.json.xz", "t.jsonl.bz2", "t.csv.gz"])
def test_compressed_test_sets_and_byte_order_marks(tmp_path, name):
    """Excel writes CSV with a byte-order mark: read plainly, the first column would be '\ufeffid'."""
    from decontam.readers import open_compressed

    row = {"id": "a1", "question": "Which planet is known as the red planet?", "answer": "Mars"}
    if ".csv" in name:
        data = "id,question,answer\r\na1,Which planet is known as the red planet?,Mars\r\n"
    elif ".jsonl" in name:
        data = json.dumps(row) + "\n"
    else:
        data = json.dumps([row])
    with open_compressed(tmp_path / name, "wb") as handle:
        handle.write(b"\xef\xbb\xbf" + data.encode())
    item = load_test_set(parse_source(f"x={tmp_path / name}")).items[0]
    assert item.item_id == "a1" and item.parts[0].text == row["question"]


def test_saved_hf_dataset_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [{"question": "Name the largest ocean on Earth.", "answer": "Pacific", "id": "o1"}]
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(tmp_path / "dd")
    loaded = load_test_set(parse_source(f"oc={tmp_path / 'dd'}?split=test"))
    assert loaded.items[0].item_id == "o1" and loaded.revision.startswith("fingerprint:")
    with pytest.raises(InputError, match="has no split 'validation'"):
        load_test_set(parse_source(f"oc={tmp_path / 'dd'}?split=validation"))


def test_hub_source_calls_load_dataset_with_config_split_revision(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(path, name=None, split=None, revision=None, **kwargs):
        calls.append((path, name, split, revision))
        return datasets.Dataset.from_list([{"question": "How many legs does a spider have?", "answer": "8"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    spec = parse_source("gsm8k=hf:openai/gsm8k?config=main&split=test&revision=abc123")
    assert spec.hub and spec.config == "main" and spec.split == "test" and spec.revision == "abc123"
    loaded = load_test_set(spec)
    assert calls == [("openai/gsm8k", "main", "test", "abc123")]
    assert loaded.revision == "abc123" and loaded.items[0].item_id == "0"


def test_hub_failure_is_a_clear_error(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(InputError, match="cannot load hub dataset openai/gsm8k") as info:
        load_test_set(parse_source("gsm8k=openai/gsm8k"))
    assert info.value.hint == ("check the id, config and split; offline, point --source at a local copy, or set HF_HUB_OFFLINE=1 "
                               "to read it from the datasets cache (without it, an unreachable hub costs ~24 s of retries)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # already offline: the cache did not have it
    with pytest.raises(InputError) as info:
        load_test_set(parse_source("gsm8k=openai/gsm8k"))
    assert info.value.hint == "check the id, config and split; it is not in the datasets cache: point --source at a local copy"


@pytest.mark.parametrize("bad", ["gsm8k", "=x.jsonl", "bad name=x.jsonl", "x=hf:a/b?splt=test"])
def test_bad_source_specs(bad):
    with pytest.raises(InputError):
        parse_source(bad)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_test_set(parse_source(f"x={tmp_path / 'missing.jsonl'}"))


def test_invalid_json_names_the_line(tmp_path):
    (tmp_path / "t.jsonl").write_text(json.dumps({"question": "ok question here"}) + "\n{oops\n")
    with pytest.raises(InputError, match=r"t.jsonl:2: not valid JSON"):
        load_test_set(parse_source(f"x={tmp_path / 't.jsonl'}"))
    (tmp_path / "latin1.jsonl").write_bytes(json.dumps({"question": "café au lait"}, ensure_ascii=False).encode("latin-1") + b"\n")
    with pytest.raises(InputError, match=r"latin1.jsonl:1: not UTF-8: byte 0xe9 at byte 18 of the line"):
        load_test_set(parse_source(f"x={tmp_path / 'latin1.jsonl'}"))  # was a UnicodeDecodeError traceback
    (tmp_path / "u16.jsonl").write_text(json.dumps({"question": "ok question here"}) + "\n", encoding="utf-16")
    with pytest.raises(InputError, match=r"u16.jsonl is UTF-16 text"):
        load_test_set(parse_source(f"x={tmp_path / 'u16.jsonl'}"))
    (tmp_path / "mixed.json").write_text(json.dumps([{"question": "ok question here"}, ["not", "an", "object"]]))
    with pytest.raises(InputError, match=r"mixed.json:2: a JSON array, not an object"):
        load_test_set(parse_source(f"x={tmp_path / 'mixed.json'}"))
    (tmp_path / "cut.parquet").write_bytes(b"PAR1" + bytes(40))  # a Parquet file cut short: was a pyarrow traceback
    with pytest.raises(InputError, match=r"cannot read Parquet file .*cut.parquet: "):
        load_test_set(parse_source(f"x={tmp_path / 'cut.parquet'}"))
    (tmp_path / "packed.jsonl").write_bytes(gzip.compress(b'{"question": "ok question here"}\n'))
    with pytest.raises(InputError, match=r"packed.jsonl is gzip-compressed, but its name says uncompressed text"):
        load_test_set(parse_source(f"x={tmp_path / 'packed.jsonl'}"))
