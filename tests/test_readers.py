import gzip
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import decontam
from decontam.errors import InputError
from decontam.readers import expand_inputs, iter_records, records_as_jsonl, segments_of
from decontam.scan import ScanOptions
from decontam.types import MalformedRow, Record

from .conftest import DATA, t0_prompts, write_jsonl


def seg(data):
    return [(s.field, s.role, s.text) for s in segments_of(data)]


def test_preference_record():
    assert seg({"id": 1, "prompt": "What is two plus two?", "chosen": "It is four.", "rejected": "It is five!"}) == [
        ("prompt", "user", "What is two plus two?"),
        ("chosen", "assistant", "It is four."),
        ("rejected", "assistant", "It is five!"),
    ]


def test_openai_messages_and_sharegpt():
    messages = {"messages": [{"role": "system", "content": "Be helpful always."}, {"role": "user", "content": "Tell me a joke please"}]}
    assert seg(messages) == [("messages[0].content", "system", "Be helpful always."),
                             ("messages[1].content", "user", "Tell me a joke please")]
    share = {"conversations": [{"from": "human", "value": "Hello there friend"}, {"from": "gpt", "value": "Hi! How can I help?"}]}
    assert seg(share) == [("conversations[0].value", "user", "Hello there friend"),
                          ("conversations[1].value", "assistant", "Hi! How can I help?")]
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What does this picture show?"},
                                                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}
    assert seg(parts) == [("messages[0].content[0].text", "user", "What does this picture show?")]  # not "image_url"


def test_a_conversation_exported_as_json_text_is_split_into_its_messages(tmp_path, index, gsm8k):
    """A CSV or Parquet export holds a messages column as JSON text: read as one string, its roles were
    lost and its escapes (\\n, \\u2019) cut the words apart."""
    import csv

    import decontam

    chat = [{"role": "user", "content": gsm8k[7]["question"]}, {"role": "assistant", "content": gsm8k[7]["answer"]}]
    assert seg({"messages": json.dumps(chat)}) == [("messages[0].content", "user", gsm8k[7]["question"]),
                                                    ("messages[1].content", "assistant", gsm8k[7]["answer"])]
    assert seg({"messages": repr(chat)}) == seg({"messages": json.dumps(chat)})  # pandas' to_csv writes repr()
    document = json.dumps([{"name": "a JSON answer"}, {"name": "is the text itself"}])  # not a chat: one segment
    assert seg({"output": document}) == [("output", "assistant", document)]
    with open(tmp_path / "chats.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["id", "messages"], ["c1", json.dumps(chat)]])
    found = decontam.scan(str(tmp_path / "chats.csv"), index=index, options=decontam.ScanOptions(methods=("ngram",))).findings
    assert sorted(found.select("field", "role", "kind").rows()) == [("messages[0].content", "user", "item"),
                                                                    ("messages[1].content", "assistant", "answer")]


def test_preference_pairs_of_message_lists():
    data = {"chosen": [{"role": "user", "content": "Question text here"}, {"role": "assistant", "content": "Answer text here"}]}
    assert seg(data) == [("chosen[0].content", "user", "Question text here"), ("chosen[1].content", "assistant", "Answer text here")]


def test_alpaca():
    data = {"instruction": "Translate to French", "input": "Good morning everyone", "output": "Bonjour à tous"}
    assert [(f, r) for f, r, _ in seg(data)] == [("instruction", "user"), ("input", "user"), ("output", "assistant")]


def test_hh_rlhf_transcript_is_split_into_turns():
    text = "\n\nHuman: what are some pranks with a pen?\n\nAssistant: Are you looking for practical jokes?\n\nHuman: yes exactly"
    assert seg({"chosen": text}) == [
        ("chosen.turn[0]", "user", "what are some pranks with a pen?"),
        ("chosen.turn[1]", "assistant", "Are you looking for practical jokes?"),
        ("chosen.turn[2]", "user", "yes exactly"),
    ]


@pytest.mark.parametrize("text, turns", [
    ("<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
     "<|im_start|>assistant\nParis is.<|im_end|>\n<|im_start|>assistant\n",
     [("system", "You are helpful."), ("user", "What is the capital of France?"), ("assistant", "Paris is.")]),
    ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHow many legs does a spider have?<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\nEight.<|eot_id|>",
     [("user", "How many legs does a spider have?"), ("assistant", "Eight.")]),
    ("<s>[INST] <<SYS>>\nYou are a helper.\n<</SYS>>\n\nTell me a joke about cats. [/INST] Cats nap. </s><s>[INST] Another [/INST] No.</s>",
     [("system", "You are a helper."), ("user", "Tell me a joke about cats."), ("assistant", "Cats nap."), ("user", "Another"), ("assistant", "No.")]),
    ("<start_of_turn>user\nWrite a poem about rain.<end_of_turn>\n<start_of_turn>model\nRain falls.<end_of_turn>",
     [("user", "Write a poem about rain."), ("assistant", "Rain falls.")]),
    ("Below is an instruction that describes a task.\n\n### Instruction:\nGive three health tips.\n\n### Input:\nFor adults\n\n### Response:\nSleep.",
     [(None, "Below is an instruction that describes a task."), ("user", "Give three health tips."), ("user", "For adults"), ("assistant", "Sleep.")]),
])
def test_chat_templates_written_as_text_are_split_into_turns(text, turns):
    assert seg({"text": text}) == [(f"text.turn[{i}]", role, body) for i, (role, body) in enumerate(turns)]


def test_template_look_alikes_stay_one_segment():
    for text in ("A readme.\n\n### Instruction:\nRun make to build it.",  # no Response: a markdown heading
                 "An article about chat formats. " * 20 + "<|im_start|>user\nhi<|im_end|>",  # quoted past the head
                 "Note: the reply was short and to the point."):  # a colon is not a transcript
        assert seg({"text": text}) == [("text", None, text)]


def test_plain_text_and_nested_fields_and_metadata_skipped():
    data = {"id": "abc-123-def", "model": "gpt-4-turbo", "text": "Some plain document text", "meta": {"notes": "nested notes here"}}
    assert seg(data) == [("text", None, "Some plain document text"), ("meta.notes", None, "nested notes here")]
    # a metadata name holding a sentence is text: translation and summarization sets keep their input in "source"
    pair = {"source": "The committee will meet again next Tuesday.", "target": "Le comité se réunira mardi prochain.",
            "meta": {"source": "europarl-v7", "url": "https://example.org/a b"}}
    assert [f for f, _, _ in seg(pair)] == ["source", "target"]


def test_jsonl_gz_rows_and_malformed_lines(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(json.dumps({"id": "r0", "text": "first row"}) + "\n{not json\n12\n\n" + json.dumps({"text": "last"}) + "\n")
    out = list(iter_records(str(path)))
    assert isinstance(out[0], Record) and out[0].record_id == "r0" and out[0].row == 0
    assert [(o.line, o.problem.split(" (")[0]) for o in out[1:4]] == [(2, "not valid JSON"), (3, "a JSON number, not an object"), (4, "empty line")]
    assert all(isinstance(o, MalformedRow) for o in out[1:4])
    assert isinstance(out[4], Record) and out[4].row == 4


def test_json_arrays_are_records_of_their_messages_or_texts(tmp_path, index, gsm8k):
    """A chat saved as a bare list of turns, one per line or per element of a JSON array, is a record
    of ``messages``; a list of texts, of ``text`` (both were malformed rows: not scanned)."""
    chat = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": gsm8k[3]["question"]},
            {"role": "assistant", "content": "Let me work it out."}]
    texts = ["a prompt of no consequence", gsm8k[4]["question"]]
    lines = write_jsonl(tmp_path / "chats.jsonl", [chat, texts, [], [1, 2]])
    array = tmp_path / "chats.json"
    array.write_text(json.dumps([chat, texts, [], [1, 2]]))
    for path in (lines, array):
        assert [r.data for r in iter_records(str(path))] == [{"messages": chat}, {"text": texts}, {"text": []}, {"text": [1, 2]}]
        result = decontam.scan(str(path), index=index, options=ScanOptions(methods=("ngram",)))
        assert sorted(result.findings.select("row", "field", "role", "item_id").rows()) == [
            (0, "messages[1].content", "user", "gsm8k_test_3"), (1, "text[1]", None, "gsm8k_test_4")]
        assert result.counts.rows_without_text == 2


def test_json_strings_are_records_of_their_text(tmp_path, index, gsm8k):
    """A list of prompts or documents, one JSON string per line or per array element: each string is
    a record whose ``text`` it is (it used to be malformed, and a file of them an input error)."""
    from decontam.clean import clean_corpus

    question = gsm8k[12]["question"]
    lines = tmp_path / "prompts.jsonl"
    lines.write_text(json.dumps("a prompt of no consequence") + "\n" + json.dumps(question) + "\n")
    array = tmp_path / "prompts.json"
    array.write_text(json.dumps(["a prompt of no consequence", question]))
    for path in (lines, array):
        assert [(r.row, r.data, r.record_id) for r in iter_records(str(path))] == [
            (0, {"text": "a prompt of no consequence"}, None), (1, {"text": question}, None)]
        result = decontam.scan(str(path), index=index, options=ScanOptions(methods=("ngram",)))
        assert result.findings.select("row", "field", "item_id").rows() == [(1, "text", "gsm8k_test_12")]
    result = decontam.scan(str(lines), index=index, options=ScanOptions(methods=("ngram",)))
    clean_corpus(lines, result.findings, tmp_path / "kept.jsonl", tmp_path / "removed.jsonl")
    assert (tmp_path / "removed.jsonl").read_text() == json.dumps(question) + "\n"  # written back as it was


def test_jsonl_lines_orjson_refuses_but_json_allows_are_scanned(tmp_path, index, gsm8k):
    """What Python's json.dumps writes (NaN, integers past 64 bits), an escaped lone surrogate (an
    emoji cut in half) and a byte-order mark inside the file are read, the surrogate as U+FFFD, so
    the row is scanned; they were malformed rows, skipped, and a test item in one went unseen. A
    line that is not UTF-8 says so, and where."""
    question = gsm8k[3]["question"]
    path = tmp_path / "c.jsonl"
    path.write_bytes(json.dumps({"prompt": question, "score": float("nan")}).encode() + b"\n"
                     + json.dumps({"prompt": question, "n": 2**70}).encode() + b"\n"
                     + b'{"prompt": "\\ud83d ' + question.encode() + b' \\ud83d\\ude00"}\n'
                     + b'\xef\xbb\xbf' + json.dumps({"prompt": question}).encode() + b"\n"  # files joined with cat
                     + b'{"prompt": "caf\xe9 ' + question.encode() + b'"}\n')
    out = list(iter_records(str(path)))
    assert [r.data["prompt"] for r in out[:4]] == [question, question, f"\ufffd {question} \U0001f600", question]
    assert out[4].problem == ("not UTF-8: byte 0xe9 at byte 16 of the line "
                              "(convert the file: iconv -f LATIN1 -t UTF-8, or from the encoding it is in)")
    result = decontam.scan(str(path), index=index, options=ScanOptions(methods=("ngram",)))
    assert result.findings.select("row", "item_id").rows() == [(r, "gsm8k_test_3") for r in range(4)]
    assert result.counts.rows_malformed == 1


def test_a_row_nested_a_thousand_levels_deep_is_scanned(tmp_path, index, gsm8k):
    """orjson reads 1,000 levels of nesting; walking them took Python's recursion and the whole scan
    died of a RecursionError on that one row."""
    question = gsm8k[5]["question"]
    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": ' + "[" * 1000 + json.dumps(question) + "]" * 1000 + "}\n")
    result = decontam.scan(str(path), index=index, options=ScanOptions(methods=("ngram",)))
    assert result.findings.select("field", "item_id").rows() == [("text" + "[0]" * 1000, "gsm8k_test_5")]


@pytest.mark.parametrize("compress", ["none", "gzip", "zstd", "bz2", "xz"])
def test_stdin_is_decompressed_by_its_magic_number(monkeypatch, compress):
    """`zstdcat`-free pipelines: `decontam scan - < corpus.jsonl.zst` (only gzip was recognized; a
    zstd stream was one malformed row "not UTF-8", with a hint to convert from Latin-1)."""
    import bz2
    import lzma
    import types

    import zstandard

    lines = (json.dumps({"text": "first row"}) + "\n" + json.dumps({"text": "second row"}) + "\n").encode()
    data = {"none": lambda b: b, "gzip": gzip.compress, "zstd": zstandard.ZstdCompressor().compress,
            "bz2": bz2.compress, "xz": lzma.compress}[compress](lines)
    monkeypatch.setattr("sys.stdin", types.SimpleNamespace(buffer=io.BufferedReader(io.BytesIO(data))))
    assert [r.data["text"] for r in iter_records("-")] == ["first row", "second row"]


def test_jsonl_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "first row"}\n{"text": "second row"}\n')
    assert [r.data["text"] for r in iter_records(str(path))] == ["first row", "second row"]


def test_json_array_file(tmp_path):
    rows = [{"id": "a", "prompt": "first record text"}, 12, {"text": "third record", "n": 1234567890123, "x": 0.5}, None]
    path = tmp_path / "alpaca_data.json"
    path.write_text(json.dumps(rows, indent=2))
    gz = tmp_path / "c.json.gz"
    gz.write_bytes(gzip.compress(b"\xef\xbb\xbf  " + json.dumps(rows).encode()))
    for source in (path, gz):
        out = list(iter_records(str(source)))
        assert [type(o).__name__ for o in out] == ["Record", "MalformedRow", "Record", "MalformedRow"]
        assert (out[0].row, out[0].record_id, out[2].row, out[2].data["n"]) == (0, "a", 2, 1234567890123)
        assert [(o.line, o.problem) for o in (out[1], out[3])] == [(2, "a JSON number, not an object"), (4, "a JSON null, not an object")]
    assert expand_inputs([str(path)]) == [str(path)]


def test_json_files_that_are_not_arrays(tmp_path):
    lines = tmp_path / "lines.json"  # JSONL under a .json name stays JSONL
    lines.write_text(json.dumps({"text": "one"}) + "\n" + json.dumps({"text": "two"}) + "\n")
    assert [r.data["text"] for r in iter_records(str(lines))] == ["one", "two"]
    document = tmp_path / "squad.json"
    document.write_text(json.dumps({"version": 1, "data": [{"text": "inside"}]}, indent=2))
    with pytest.raises(InputError, match="holds one JSON document spread over many lines"):
        list(iter_records(str(document)))
    broken = tmp_path / "broken.json"
    broken.write_text('[{"text": "kept"}, {"text": "also kept"}, {"text": ')
    out = []
    with pytest.raises(InputError, match=r"broken.json is not valid JSON after its first 2 elements"):
        out.extend(iter_records(str(broken)))
    assert [r.data["text"] for r in out] == ["kept", "also kept"]


def test_json_array_with_nan_is_read_and_cleaned(tmp_path, index, gsm8k):
    """A .json array written by Python's json.dump with a missing float (NaN, Infinity): ijson stops
    at it, the standard library reads the rest; every element is scanned once, and clean writes each to
    one of its outputs."""
    from decontam.clean import clean_corpus

    question = gsm8k[7]["question"]
    rows = [{"text": "a first row of no interest"}, {"text": "a second row", "score": float("nan")},
            {"text": question, "score": float("inf")}, {"text": "the last row of no interest"}]
    path = tmp_path / "scored.json"
    path.write_text(json.dumps(rows))
    assert [(r.row, r.data["text"]) for r in iter_records(str(path))] == [(i, row["text"]) for i, row in enumerate(rows)]
    result = decontam.scan(str(path), index=index, options=ScanOptions(methods=("ngram",)))
    assert result.findings.select("row", "item_id").rows() == [(2, "gsm8k_test_7")]
    clean_corpus(path, result.findings, tmp_path / "kept.json", tmp_path / "removed.json")
    assert [r["text"] for r in json.loads((tmp_path / "kept.json").read_text())] == [rows[0]["text"], rows[1]["text"], rows[3]["text"]]
    assert [r["text"] for r in json.loads((tmp_path / "removed.json").read_text())] == [question]


@pytest.mark.parametrize("suffix", [".gz", ".zst", ".bz2", ".xz"])
def test_compressed_jsonl(tmp_path, suffix):
    from decontam.readers import open_compressed

    for name, data in (("array.json", b'\xef\xbb\xbf[{"text": "in an array"}]'), ("lines.json", b'{"text": "in lines"}\n')):
        with open_compressed(tmp_path / f"{name}{suffix}", "wb") as handle:  # a zstd stream cannot seek back: opened twice
            handle.write(data)
        assert [r.data["text"] for r in iter_records(str(tmp_path / f"{name}{suffix}"))] == [data.split(b'"')[3].decode()]

    path = tmp_path / f"c.jsonl{suffix}"
    with open_compressed(path, "wb") as handle:
        handle.write(b'{"id": "a", "text": "first row"}\n{oops\n{"text": "third row"}\n')
    assert expand_inputs([str(tmp_path)]) == [str(path)]  # a folder holds it
    out = list(iter_records(str(path)))
    assert [type(o).__name__ for o in out] == ["Record", "MalformedRow", "Record"] and out[2].row == 2
    (tmp_path / f"bad.jsonl{suffix}").write_bytes(b"this is not compressed data at all" * 10)
    with pytest.raises(InputError, match=f"cannot read {tmp_path / f'bad.jsonl{suffix}'}"):
        list(iter_records(str(tmp_path / f"bad.jsonl{suffix}")))


def test_zstd_long_window_and_many_frames(tmp_path):
    """`zstd --long=31` (big corpora) writes frames with a 2 GB window, which the decoder's default limit
    refused as "too much memory" (reported as a damaged file); pzstd writes many frames."""
    zstandard = pytest.importorskip("zstandard")
    fsspec = pytest.importorskip("fsspec")
    lines = [json.dumps({"text": f"row number {i} of the corpus"}).encode() + b"\n" for i in range(300)]
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=31, enable_ldm=True, write_content_size=False)
    with open(tmp_path / "long.jsonl.zst", "wb") as handle, \
            zstandard.ZstdCompressor(compression_params=params).stream_writer(handle, closefd=False) as writer:
        writer.write(b"".join(lines))
    (tmp_path / "frames.jsonl.zst").write_bytes(b"".join(zstandard.ZstdCompressor().compress(line) for line in lines))
    fsspec.filesystem("memory").pipe("/zst/long.jsonl.zst", (tmp_path / "long.jsonl.zst").read_bytes())
    for source in (str(tmp_path / "long.jsonl.zst"), str(tmp_path / "frames.jsonl.zst"), "memory://zst/long.jsonl.zst"):
        assert [r.row for r in iter_records(source)] == list(range(300)), source


def _write_csv(path, rows, delimiter=","):
    import csv

    from decontam.readers import open_compressed

    with open_compressed(path, "wb") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)


@pytest.mark.parametrize("name", ["c.csv", "c.csv.gz", "c.tsv", "c.tsv.zst"])
def test_csv_and_tsv_corpora(tmp_path, name):
    path = tmp_path / name
    long_text = "word " * 40_000  # 200 KB: past the csv module's default field limit
    _write_csv(path, [["id", "prompt", "prompt", ""], ["a", "first, with a comma", "x", "y"],
                      ["b", 'a "quoted" field\nover two lines', long_text],
                      [], ["c", "1", "2", "3", "4"], ["d", "last row"]], delimiter="\t" if ".tsv" in name else ",")
    out = list(iter_records(str(path)))
    assert [type(o).__name__ for o in out] == ["Record", "Record", "MalformedRow", "MalformedRow", "Record"]
    first, second, empty, wide, last = out
    assert first.data == {"id": "a", "prompt": "first, with a comma", "prompt.1": "x", "column_4": "y"} and first.record_id == "a"
    assert second.data["prompt"] == 'a "quoted" field\nover two lines' and second.data["prompt.1"] == long_text
    assert second.data["column_4"] is None  # a short row: the missing fields are null, not an error
    # rows count after the header, as findings do; the problem names the line of the file
    assert [(o.line, o.problem) for o in (empty, wide)] == [(3, "empty line (line 5 of the file)"),
                                                           (4, "5 fields, the header has 4 (line 6 of the file)")]
    assert (last.row, last.data["prompt"]) == (4, "last row")
    assert expand_inputs([str(tmp_path)]) == [str(path)]  # found in a folder


_CSV_FIELD = st.text(alphabet=st.sampled_from(list('ab ,"\n\r\t;é')), max_size=12)


@given(rows=st.lists(st.lists(_CSV_FIELD, min_size=3, max_size=3), max_size=8),
       flagged=st.sets(st.integers(0, 7)), tsv=st.booleans())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_property_csv_rows_round_trip_and_clean_loses_nothing(tmp_path_factory, rows, flagged, tsv):
    """Whatever csv.writer writes (quotes, delimiters, CR and LF inside fields), the reader gives back
    the same rows, in pieces as whole, and clean puts every record's bytes in exactly one output."""
    import csv

    import polars as pl

    from decontam.clean import clean_corpus
    from decontam.engines import Shard, iter_chunks
    from decontam.findings import FINDINGS_SCHEMA

    folder = tmp_path_factory.mktemp("csv")
    path = folder / ("c.tsv" if tsv else "c.csv")
    header = ["a", "b", "c"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t" if tsv else ",")
        writer.writerow(header)
        writer.writerows(rows)
    expected = [dict(zip(header, row)) for row in rows]
    whole = list(iter_records(str(path)))
    assert all(isinstance(r, Record) for r in whole)  # three empty fields are written ",,": a row, not an empty line
    assert [(r.row, r.data) for r in whole] == list(enumerate(expected))
    pieces = [r for piece, payload in iter_chunks(Shard(str(path), chunk_bytes=7))
              for r in iter_records(str(path), payload=payload, first_row=piece.first_row, first_line=piece.first_line)]
    assert pieces == whole
    remove = sorted(r for r in flagged if r < len(rows))
    findings = pl.DataFrame({"source": [str(path)] * len(remove), "row": remove, **{k: [None] * len(remove) for k in
                             ("record_id", "field", "role", "benchmark", "subset", "item_id", "item_part", "method", "kind",
                              "score", "span_start", "span_end", "evidence")}}, schema=FINDINGS_SCHEMA)
    findings = findings.with_columns(pl.lit(1.0).alias("score"))
    suffix = ".tsv" if tsv else ".csv"
    result = clean_corpus(path, findings, folder / f"k{suffix}", folder / f"r{suffix}")
    assert result.input_rows == len(rows) and result.removed_rows == len(remove)
    def read_back(name):
        return list(csv.reader(io.StringIO((folder / name).read_bytes().decode(), newline=""), delimiter="\t" if tsv else ","))

    kept, removed = read_back(f"k{suffix}"), read_back(f"r{suffix}")
    assert kept == [header] + [r for i, r in enumerate(rows) if i not in remove]
    assert removed == [header] + [rows[i] for i in remove]
    assert len((folder / f"k{suffix}").read_bytes()) + len((folder / f"r{suffix}").read_bytes()) == \
        path.stat().st_size + len(path.read_bytes().split(b"\r\n", 1)[0]) + 2


def test_csv_with_a_byte_order_mark_and_bad_quoting(tmp_path):
    bom = tmp_path / "excel.csv"
    bom.write_bytes(b'\xef\xbb\xbfid,text\r\n1,"first row"\r\n')
    assert [(r.data, r.record_id) for r in iter_records(str(bom))] == [({"id": "1", "text": "first row"}, "1")]
    unclosed = tmp_path / "unclosed.csv"
    unclosed.write_text('id,text\n1,fine\n2,"opened here\n3,never closed\n4,more\n')
    out = []
    with pytest.raises(InputError, match="the quoted field opened on line 3 is never closed"):
        out.extend(iter_records(str(unclosed)))
    assert [r.data["text"] for r in out] == ["fine"]
    empty_header = tmp_path / "headless.csv"
    empty_header.write_text("\n1,text\n")
    with pytest.raises(InputError, match="the first line of .* is empty"):
        list(iter_records(str(empty_header)))


@pytest.mark.parametrize("name", ["c.jsonl", "c.csv", "c.jsonl.gz"])
def test_utf16_files_are_refused_by_name(tmp_path, name):
    """Windows PowerShell's `>` writes UTF-16: read as UTF-8, a JSONL file's every line was malformed and
    a CSV file's rows were scanned as garbage, clean."""
    from decontam.readers import open_compressed

    text = "id,text\r\n1,some row of text\r\n" if ".csv" in name else json.dumps({"text": "some row of text"}) + "\r\n"
    for encoding in ("utf-16", "utf-16-le"):  # with its byte-order mark, and without
        with open_compressed(tmp_path / name, "wb") as handle:
            handle.write(text.encode(encoding))
        with pytest.raises(InputError, match=r"c\.(jsonl|csv)(\.gz)? is UTF-16 text; decontam reads UTF-8 \(hint: convert it: iconv"):
            list(iter_records(str(tmp_path / name)))


def test_a_file_whose_bytes_say_another_format_than_its_name_is_refused(tmp_path, index, index_dir, gsm8k):
    """A gzip file named .jsonl was refused as "not UTF-8 ... convert it from Latin-1", one named .csv
    as UTF-16; a .parquet file that was not one was a pyarrow traceback."""
    import zstandard
    from typer.testing import CliRunner

    from decontam.cli import app

    text = (json.dumps({"prompt": gsm8k[3]["question"]}) + "\n").encode()
    cases = {"g.jsonl": (gzip.compress(text), "g.jsonl is gzip-compressed, but its name says uncompressed text", f"rename it {tmp_path}/g.jsonl.gz"),
             "z.csv.gz": (zstandard.ZstdCompressor().compress(b"prompt\nsome text\n"),
                          "z.csv.gz is zstd-compressed, but its name says a .gz file", f"rename it {tmp_path}/z.csv.zst"),
             "p.jsonl": (b"PAR1" + bytes(20) + b"PAR1", "p.jsonl is a Parquet file, but its name says uncompressed text", f"rename it {tmp_path}/p.parquet"),
             "j.parquet": (text, "j.parquet is not a Parquet file (it does not start with PAR1)", "a JSON Lines file is named .jsonl"),
             "e.parquet": (b"", "e.parquet is not a Parquet file", "a JSON Lines file is named .jsonl"),
             "g.parquet": (gzip.compress(text), "g.parquet is gzip-compressed, not a Parquet file", "decompress it"),
             "a.jsonl": (b"PK\x03\x04" + bytes(30), "a.jsonl is a zip archive", "unzip it")}
    for name, (data, message, hint) in cases.items():
        (tmp_path / name).write_bytes(data)
        result = CliRunner().invoke(app, ["scan", str(tmp_path / name), "--index", str(index_dir)])
        assert result.exit_code == 2, (name, result.stderr)
        assert f"Error: {tmp_path}/{message}" in result.stderr, (name, result.stderr)
        assert f"Hint: {hint}" in result.stderr, (name, result.stderr)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(b"PAR1" + bytes(100))  # its start, without the footer
    result = CliRunner().invoke(app, ["scan", str(cut), "--index", str(index_dir)])
    assert result.exit_code == 2 and f"Error: cannot read Parquet file {cut}: " in result.stderr
    (tmp_path / "g.jsonl.gz").write_bytes(gzip.compress(text))  # as named: read
    assert decontam.scan(str(tmp_path / "g.jsonl.gz"), index=index, options=ScanOptions(methods=("ngram",))).findings.height == 1
    for start in ("BZh", "PAR1"):  # words at the start of a text: not a bzip2 stream, not a Parquet file
        (tmp_path / "words.txt").write_text(f"{start} is a word here, and the text goes on.\n")
        assert decontam.scan(str(tmp_path / "words.txt"), index=index, options=ScanOptions(methods=("ngram",))).counts.rows_read == 1


def test_damaged_gzip_is_an_input_error(tmp_path):
    from decontam.engines import Shard, iter_chunks

    whole = gzip.compress("".join(json.dumps({"text": f"row {i} " * 20}) + "\n" for i in range(2000)).encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "plain.jsonl.gz").write_bytes(b'{"text": "not compressed at all"}\n')
    for name, problem in (("cut.jsonl.gz", "it ends early"), ("plain.jsonl.gz", "Not a gzipped file")):
        source = str(tmp_path / name)
        with pytest.raises(InputError, match=f"cannot read {source}: {problem}"):
            list(iter_records(source))
        with pytest.raises(InputError, match=problem):  # the scan's own reading of a big .gz file
            list(iter_chunks(Shard(source, chunk_bytes=1000)))


def test_parquet_row_groups(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    import decontam.readers

    rows = [{"id": str(i), "text": f"row number {i}"} for i in range(25)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet", row_group_size=10)
    out = list(iter_records(str(tmp_path / "c.parquet")))
    assert [r.row for r in out] == list(range(25)) and out[24].data["text"] == "row number 24"
    monkeypatch.setattr(decontam.readers, "PARQUET_BATCH_ROWS", 4)  # rows become dicts a few at a time
    shard = list(iter_records(str(tmp_path / "c.parquet"), row_groups=(1, 3), first_row=10))
    assert [(r.row, r.data["text"]) for r in shard] == [(i, f"row number {i}") for i in range(10, 25)]


def test_parquet_text_stored_as_binary(tmp_path, index, gsm8k):
    """Spark and Impala write strings as BYTE_ARRAY without the UTF8 annotation; pyarrow reads bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import decontam

    table = pa.table({"prompt": pa.array([gsm8k[2]["question"].encode(), b"a plain row of text"], pa.binary()),
                      "image": pa.array([b"\x89PNG\r\n\x1a\n\x00\x00\xff", None], pa.binary())})
    pq.write_table(table, tmp_path / "spark.parquet")
    record = next(iter_records(str(tmp_path / "spark.parquet")))
    assert seg(record.data) == [("prompt", "user", gsm8k[2]["question"])]  # the image's bytes are not text
    # as a dataset's records reach the workers: the same text
    assert json.loads(next(records_as_jsonl([record]))) == {"prompt": gsm8k[2]["question"], "image": None}
    found = decontam.scan(str(tmp_path / "spark.parquet"), index=index, options=decontam.ScanOptions(methods=("ngram",))).findings
    assert found["item_id"].to_list() == ["gsm8k_test_2"]


def test_saved_dataset_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list([{"prompt": "hello world prompt", "id": "x"}]).save_to_disk(tmp_path / "ds")
    assert expand_inputs([str(tmp_path / "ds")]) == [str(tmp_path / "ds")]
    out = list(iter_records(str(tmp_path / "ds")))
    assert out[0].data["prompt"] == "hello world prompt" and out[0].record_id == "x"


def test_folders_and_globs(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"text": "a"}])
    (tmp_path / "sub").mkdir()
    write_jsonl(tmp_path / "sub" / "b.jsonl", [{"text": "b"}])
    (tmp_path / "notes.md").write_text("A README in a folder of shards is not corpus.\n")
    assert expand_inputs([str(tmp_path)]) == [str(tmp_path / "a.jsonl"), str(tmp_path / "sub" / "b.jsonl")]
    # named, by path or by a glob, a Markdown file is text
    assert expand_inputs([str(tmp_path / "notes.md")]) == expand_inputs([str(tmp_path / "*.md")]) == [str(tmp_path / "notes.md")]
    assert [r.data for r in iter_records(str(tmp_path / "notes.md"))] == [{"text": "A README in a folder of shards is not corpus.\n"}]
    assert expand_inputs([str(tmp_path / "**" / "*.jsonl")]) == [str(tmp_path / "a.jsonl"), str(tmp_path / "sub" / "b.jsonl")]
    (tmp_path / "meta.json").write_text("{}")  # .json in a folder is often metadata: read only when named
    assert expand_inputs([str(tmp_path)]) == [str(tmp_path / "a.jsonl"), str(tmp_path / "sub" / "b.jsonl")]
    assert expand_inputs([str(tmp_path / "*.json")]) == [str(tmp_path / "meta.json")]


def _t0_document(rng, min_bytes):
    """Real T0 prompts, one paragraph each, until the text holds ``min_bytes``."""
    prompts = t0_prompts()
    paragraphs = []
    while sum(len(p) + 2 for p in paragraphs) < min_bytes:
        paragraphs.append(rng.choice(prompts))
    return paragraphs


def test_a_test_item_in_a_long_text_file_is_found_on_its_record_and_line(tmp_path, index, gsm8k):
    """A book or a crawl dump is read in records of whole paragraphs (a new one after 64 KB): the item
    is found, the finding's row is the line its record starts on, and its span leads to the item's line."""
    import random

    from decontam.readers import TEXT_RECORD_BYTES

    paragraphs = _t0_document(random.Random(3), 3 * TEXT_RECORD_BYTES)
    at = len(paragraphs) * 2 // 3
    paragraphs.insert(at, gsm8k[7]["question"])
    text = "\n\n".join(paragraphs) + "\n"
    path = tmp_path / "book.txt"
    path.write_text(text, encoding="utf-8")
    records = list(iter_records(str(path)))
    assert len(records) >= 3 and "".join(r.data["text"] for r in records) == text
    lines = text.split("\n")
    assert all(lines[r.row].strip() and r.data["text"].startswith(lines[r.row]) for r in records)
    found = decontam.scan(str(path), index=index, options=ScanOptions(methods=("ngram",))).findings
    assert found.select("item_id", "field").rows() == [("gsm8k_test_7", "text")]
    holder = next(r for r in records if r.row == found["row"][0])
    item_line = found["row"][0] + holder.data["text"].count("\n", 0, found["span_start"][0])
    assert lines[item_line] == gsm8k[7]["question"]


def test_text_files_bad_bytes_byte_order_marks_and_folders(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"\xef\xbb\xbfFirst line of a text file.\nSecond line, caf\xe9 in Latin-1.\n")
    (bad,) = iter_records(str(path))
    assert isinstance(bad, MalformedRow) and bad.line == 1
    assert bad.problem.startswith("not UTF-8 text: byte 0xe9 on line 2; lines 1-2 not scanned (convert the file: iconv")
    path.write_bytes(b"\xef\xbb\xbfFirst line of a text file.\n")
    assert [r.data for r in iter_records(str(path))] == [{"text": "First line of a text file.\n"}]
    (tmp_path / "utf16.txt").write_bytes("Some text in UTF-16.\n".encode("utf-16"))
    with pytest.raises(InputError, match="is UTF-16 text"):
        list(iter_records(str(tmp_path / "utf16.txt")))
    with gzip.open(tmp_path / "c.txt.gz", "wt") as handle:
        handle.write("compressed text\n")
    assert [r.data for r in iter_records(str(tmp_path / "c.txt.gz"))] == [{"text": "compressed text\n"}]
    assert expand_inputs([str(tmp_path)]) == [str(tmp_path / n) for n in ("c.txt.gz", "mixed.txt", "utf16.txt")]


_TEXT_LINE = st.sampled_from(["", " ", "a", "a line of text", "é" * 5, "\r"]).map(lambda s: s + "\n")


@given(lines=st.lists(_TEXT_LINE, max_size=40), last=st.sampled_from(["", "no newline"]), record=st.integers(1, 40),
       chunk=st.integers(1, 60), flagged=st.sets(st.integers(0, 40)))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_property_text_records_cover_the_file_cut_alike_in_pieces_and_clean_loses_nothing(
        tmp_path_factory, monkeypatch, lines, last, record, chunk, flagged):
    import polars as pl

    from decontam import readers
    from decontam.clean import clean_corpus
    from decontam.engines import Shard, iter_chunks
    from decontam.findings import FINDINGS_SCHEMA

    monkeypatch.setattr(readers, "TEXT_RECORD_BYTES", record)
    monkeypatch.setattr(readers, "TEXT_RECORD_MAX_BYTES", record * 3)
    folder = tmp_path_factory.mktemp("text")
    data = "".join(lines + [last]).encode()
    path = folder / "t.txt"
    path.write_bytes(data)
    cuts = list(readers.text_records(io.BytesIO(data)))
    assert b"".join(c for _, c in cuts) == data
    assert [start for start, _ in cuts] == [data[:sum(len(c) for _, c in cuts[:i])].count(b"\n") for i in range(len(cuts))]

    def cut_before(held: list[bytes], line: bytes) -> bool:  # the rule, as the docstring states it
        size = sum(map(len, held))
        return size >= record * 3 or size >= record and not held[-1].strip() and bool(line.strip())

    for i, (_, chunk_data) in enumerate(cuts):  # each record ends at the first place the rule allows
        held = chunk_data.splitlines(keepends=True)
        assert not any(cut_before(held[:k], held[k]) for k in range(1, len(held)))
        if i + 1 < len(cuts):
            assert cut_before(held, cuts[i + 1][1].splitlines(keepends=True)[0])
    whole = list(iter_records(str(path)))
    pieces = [r for piece, payload in iter_chunks(Shard(str(path), chunk_bytes=chunk))
              for r in iter_records(str(path), payload=payload, first_row=piece.first_row, first_line=piece.first_line)]
    assert pieces == whole and [r.row for r in whole] == [start for start, _ in cuts]
    remove = sorted(r.row for i, r in enumerate(whole) if i in flagged)
    findings = pl.DataFrame({"source": [str(path)] * len(remove), "row": remove}).with_columns(
        *[pl.lit(None, dtype).alias(k) for k, dtype in FINDINGS_SCHEMA.items() if k not in ("source", "row")]
    ).with_columns(pl.lit(1.0).alias("score")).select(list(FINDINGS_SCHEMA))
    result = clean_corpus(path, findings, folder / "k.txt", folder / "r.txt")
    assert (result.input_rows, result.removed_rows) == (len(cuts), len(remove))
    assert (folder / "k.txt").read_bytes() == b"".join(c for s, c in cuts if s not in remove)
    assert (folder / "r.txt").read_bytes() == b"".join(c for s, c in cuts if s in remove)


def test_remote_folders_are_walked():
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    fs.pipe("/walk/a.jsonl", b"{}\n")
    fs.pipe("/walk/sub/b.parquet", b"x")
    fs.pipe("/walk/meta.json", b"{}")
    assert expand_inputs(["memory://walk"]) == ["memory:///walk/a.jsonl", "memory:///walk/sub/b.parquet"]
    assert expand_inputs(["memory://walk/meta.json"]) == ["memory:///walk/meta.json"]


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        expand_inputs([str(tmp_path / "missing.jsonl")])
    with pytest.raises(InputError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.parquet")])
    (tmp_path / "x.docx").write_text("hi")
    with pytest.raises(InputError, match="unknown format"):
        expand_inputs([str(tmp_path / "x.docx")])


def test_real_hh_rlhf_rows_have_turn_segments():
    record = next(iter_records(str(DATA / "corpora/hh_rlhf/harmless-base_test.jsonl.gz")))
    segments = segments_of(record.data)
    assert segments[0].field == "chosen.turn[0]" and segments[0].role == "user"
    assert {s.role for s in segments} == {"user", "assistant"}
