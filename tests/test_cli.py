import json
import shutil
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from decontam.cli import app
from decontam.findings import FINDINGS_SCHEMA, read_findings

from .conftest import INDEX_SOURCES, write_jsonl

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_clean_corpus_exits_0(tmp_path, index_dir):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": "A note about watering tomato plants in summer."}])
    result = run("scan", corpus, "--index", index_dir)
    assert result.exit_code == 0
    assert result.stdout == "Scanned 1 row (1 text segment).\nNo contamination found.\n"


def test_contaminated_corpus_exits_1_with_summary(tmp_path, index_dir, gsm8k):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "prompt": gsm8k[0]["question"]}, {"text": "plain row of text"}])
    result = run("scan", corpus, "--index", index_dir, "--methods", "ngram")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[:2] == ["Scanned 2 rows (2 text segments).", "Flagged 1 row (50.00%) with 1 finding."]
    assert "  gsm8k                     1 / 1319          1" in lines
    assert f"  {corpus}:1 prompt (user) <- gsm8k gsm8k_test_0 [question] ngram 1.00" in lines


def test_json_summary_on_stdout_and_findings_file(tmp_path, index_dir, gsm8k):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[5]["question"]}])
    out = tmp_path / "f.parquet"
    result = run("scan", corpus, "--index", index_dir, "--json", "--out", out)
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["rows_flagged"] == 1 and summary["benchmarks"]["gsm8k"]["items_found"] == 1
    findings = pl.read_parquet(out)
    assert dict(findings.schema) == FINDINGS_SCHEMA and set(findings["item_id"]) == {"gsm8k_test_5"}
    assert "Wrote" in result.stderr and "findings to" in result.stderr


def test_findings_as_csv_and_output_names_checked_before_the_scan(tmp_path, index_dir, gsm8k):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": "r1", "prompt": gsm8k[5]["question"] + "\nSecond line, with a comma."}])
    out = tmp_path / "f.csv"
    assert run("scan", corpus, "--index", index_dir, "--out", out).exit_code == 1
    parquet = tmp_path / "f.parquet"
    run("scan", corpus, "--index", index_dir, "--out", parquet)
    assert read_findings(out).equals(read_findings(parquet)) and read_findings(out).height > 0
    report = run("report", out, "--format", "json")  # counts and index come from the CSV's sidecar metadata
    assert report.exit_code == 0 and [json.loads(report.stdout)[k] for k in ("rows_read", "rows_flagged")] == [1, 1]
    for option, name, message in (("--out", "f.txt", "Error: cannot tell the format of findings file"),
                                  ("--report", "r.txt", "Error: cannot tell the report format of")):
        result = run("scan", corpus, "--index", index_dir, option, tmp_path / name)
        assert result.exit_code == 2 and result.stderr.startswith(message)  # before the index is even loaded
        assert not (tmp_path / name).exists()


def test_gate_threshold(tmp_path, index_dir, gsm8k):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[5]["question"]}])
    assert run("scan", corpus, "--index", index_dir, "--fail-min-score", "1.01").exit_code == 0


def test_missing_corpus_exits_2_with_error_and_hint(tmp_path, index_dir):
    result = run("scan", tmp_path / "missing.jsonl", "--index", index_dir)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (f"Error: corpus file {tmp_path / 'missing.jsonl'} does not exist\n"
                             "Hint: check the path; hub datasets are written hf:owner/name?split=train\n")


def test_folder_that_is_not_an_index_exits_2(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": "x y z"}])
    result = run("scan", corpus, "--index", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {tmp_path} is not a decontam index (no manifest.json)\n")


def test_strict_makes_malformed_rows_exit_2(tmp_path, index_dir):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "fine row here"}\n{oops\n')
    relaxed = run("scan", corpus, "--index", index_dir)
    assert relaxed.exit_code == 0
    assert "1 malformed row was skipped:" in relaxed.stdout and f"  {corpus}:2: not valid JSON" in relaxed.stdout
    strict = run("scan", corpus, "--index", index_dir, "--strict")
    assert strict.exit_code == 2 and f"\nError: {corpus}:2: not valid JSON" in strict.stderr


def test_file_with_no_readable_row_exits_2(tmp_path, index_dir):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("prompt,chosen\nwhat is 2+2,four\n")  # CSV under a JSONL name: every row malformed
    result = run("scan", corpus, "--index", index_dir)
    assert result.exit_code == 2 and result.stdout.startswith("Scanned 2 rows (0 text segments).\n2 malformed rows were skipped:\n")
    assert result.stderr.splitlines()[-2:] == [
        f"Error: none of the 2 rows of {corpus} could be read ({corpus}:1: not valid JSON (unexpected character, "
        "expected a JSON value: line 1 column 1 (char 0)))",
        "Hint: decontam reads JSONL (one JSON object per line), .json files holding one array of objects, CSV and TSV "
        "with a header row, Parquet and datasets; a file holding one object around a list converts with "
        "`jq -c '.data[]' FILE > FILE.jsonl`"]
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes('{"text": "café au lait"}\n'.encode("latin-1"))
    result = run("scan", latin, "--index", index_dir)
    assert result.exit_code == 2 and result.stderr.splitlines()[-1] == (
        f"Hint: the file is not UTF-8 text; convert it, e.g. iconv -f LATIN1 -t UTF-8 {latin} > converted (with its real encoding)")


def test_an_unreadable_file_among_others_loses_none_of_their_findings(tmp_path, index_dir, gsm8k):
    """A folder scan with one file decontam cannot read: the other files' findings are written and
    shown, then the error, exit 2 (the scan of a big folder is not lost for one bad file)."""
    write_jsonl(tmp_path / "good.jsonl", [{"prompt": gsm8k[2]["question"]}])
    (tmp_path / "bad.jsonl").write_text("prompt,chosen\nwhat is 2+2,four\n")
    out = tmp_path / "out" / "f.parquet"
    result = run("scan", tmp_path, "--index", index_dir, "--out", out, "--methods", "ngram")
    assert result.exit_code == 2 and "Flagged 1 row (33.33%) with 1 finding." in result.stdout
    assert pl.read_parquet(out)["item_id"].to_list() == ["gsm8k_test_2"]
    assert f"Error: none of the 2 rows of {tmp_path / 'bad.jsonl'} could be read" in result.stderr


def test_unknown_method_exits_2(tmp_path, index_dir):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": "x y z"}])
    result = run("scan", corpus, "--index", index_dir, "--methods", "magic")
    assert result.exit_code == 2 and "Error: method(s) ['magic'] are not in index" in result.stderr


def test_zero_workers_is_an_error_not_every_core(tmp_path, index_dir):
    """``--workers 0`` read as "one per core" (in PyTorch and datasets 0 means this process only);
    the Python API already refused it."""
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": "x y z"}])
    result = run("scan", corpus, "--index", index_dir, "--methods", "ngram", "--workers", "0")
    assert result.exit_code == 2 and result.stderr.splitlines()[-2:] == [
        "Error: workers=0 must be at least 1", "Hint: 1 scans in this process; leave it out for one worker per core"]


@pytest.mark.parametrize("option, value, message, hint", [
    ("--min-score", "1.2", "min_score=1.2 must be in (0, 1]", "leave it out to use the index's 0.7"),
    ("--min-jaccard", "1.5", "min_jaccard=1.5 must be in (0, 1]", "leave it out to use the index's 0.5"),
    ("--min-share", "0", "min_share=0.0 must be in (0, 1]", "leave it out to use the index's 0.8"),
    ("--min-cosine", "2", "min_cosine=2.0 must be in (0, 1]", "thresholds are in [0, 1]"),  # (the index has no embedding layer)
    ("--min-lexical", "-1", "min_lexical=-1.0 must be in [0, 1]", "thresholds are in [0, 1]"),
])
def test_a_threshold_outside_its_range_is_an_error(tmp_path, index_dir, option, value, message, hint):
    """Past 1 a threshold lets nothing through, and the gate passed; at 0 or below, everything."""
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": "x y z"}])
    result = run("scan", corpus, "--index", index_dir, option, value)
    assert result.exit_code == 2 and result.stderr.splitlines()[-2:] == [f"Error: {message}", f"Hint: {hint}"]


def test_corpus_text_cannot_command_the_terminal(tmp_path, index_dir, gsm8k):
    """Evidence and field names come from the corpus: an escape sequence (colours, the title, OSC 52
    writing the clipboard), a carriage return or a bidi override in them is printed as its escape."""
    words = gsm8k[4]["question"].split(" ")
    text = " ".join(words[:4]) + " \x1b]52;c;ZXZpbA==\x07\r " + " ".join(words[4:])  # inside the evidence shown
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt\u202e": text}])
    result = run("scan", corpus, "--index", index_dir, "--methods", "minhash")
    assert result.exit_code == 1
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout and "\r" not in result.stdout
    assert "prompt\\u202e" in result.stdout and "\\x1b]52;c;ZXZpbA==\\x07 each" in result.stdout


def test_summary_says_which_files_hold_findings(tmp_path, index_dir, gsm8k):
    """A folder or a dataset PR of several files: rows read and flagged per file, in the JSON summary,
    the terminal and the Markdown report (files with findings first, then how many had none)."""
    (tmp_path / "in").mkdir()
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"prompt": gsm8k[1]["question"]}, {"prompt": "plain words here"}])
    write_jsonl(tmp_path / "in" / "b.jsonl", [{"prompt": gsm8k[2]["question"]}, {"prompt": gsm8k[3]["question"]}, {"prompt": "x y z w"}])
    write_jsonl(tmp_path / "in" / "c.jsonl", [{"prompt": "nothing to see in this one"}])
    a, b, c = (str(tmp_path / "in" / f"{n}.jsonl") for n in "abc")
    summary = json.loads(run("scan", tmp_path / "in", "--index", index_dir, "--methods", "ngram", "--json").stdout)
    assert summary["sources"] == {a: {"rows_read": 2, "rows_flagged": 1, "findings": 1},
                                  b: {"rows_read": 3, "rows_flagged": 2, "findings": 2},
                                  c: {"rows_read": 1, "rows_flagged": 0, "findings": 0}}
    result = run("scan", tmp_path / "in", "--index", index_dir, "--methods", "ngram", "--out", tmp_path / "f.parquet")
    assert f"  by file:   {b} 2 / 3 rows, {a} 1 / 2 rows; 1 file without findings\n" in result.stdout
    report = run("report", tmp_path / "f.parquet", "--format", "md").stdout
    assert f"By file (rows flagged): `{b}` 2 / 3, `{a}` 1 / 2; 1 file without findings." in report
    page = run("report", tmp_path / "f.parquet", "--format", "html").stdout
    assert (f"<tr><td><code>{b}</code></td><td class=num>2</td><td class=num>3</td><td class=num>2</td></tr>" in page
            and "1 file without findings." in page)


def test_fields_narrow_the_scan_and_a_misspelt_one_is_an_error(tmp_path, index_dir, gsm8k):
    """``--fields`` scans only the named top-level fields; a name no row has is exit 2 after the scan
    (a typo left that field's text unscanned and the gate passed, exit 0)."""
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[1]["question"], "chosen": gsm8k[2]["question"]},
                                                 {"prompt": "plain words here", "chosen": "more plain words"}])
    only = json.loads(run("scan", corpus, "--index", index_dir, "--methods", "ngram", "--fields", "chosen", "--json").stdout)
    assert (only["segments"], only["fields"]) == (2, {"chosen": {"rows": 1, "findings": 1}})
    typo = run("scan", corpus, "--index", index_dir, "--methods", "ngram", "--fields", "prompt,chosn")
    assert typo.exit_code == 2 and typo.stderr.splitlines()[-2:] == [
        "Error: --fields prompt,chosn: no row has the field(s) ['chosn']",
        "Hint: fields are the rows' top-level keys, spelled exactly; drop --fields to scan every field"]


def test_index_build_info_verify(tmp_path):
    idx = tmp_path / "idx"
    result = run("index", "build", idx, "--source", f"gsm8k={INDEX_SOURCES['gsm8k']}", "--source", f"tqa={INDEX_SOURCES['truthfulqa']}")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"Wrote index {idx} (ngram, minhash, artifact; 2 benchmarks)\n"
    assert "gsm8k: 1319 items" in result.stderr
    info = run("index", "info", idx)
    assert info.exit_code == 0 and "gsm8k" in info.stdout and "1319 items" in info.stdout
    assert json.loads(run("index", "info", idx, "--json").stdout)["format_version"] == 1
    ok = run("index", "verify", idx)
    assert ok.exit_code == 0 and ok.stdout.startswith("OK ")
    hashes = np.load(idx / "ngram/hashes.npy")
    np.save(idx / "ngram/hashes.npy", hashes[::-1].copy())
    bad = run("index", "verify", idx)
    assert bad.exit_code == 1 and bad.stdout == "FAILED ngram/hashes.npy changed (sha256 differs from the manifest)\n"


def test_index_build_with_mapping_and_errors(tmp_path):
    src = write_jsonl(tmp_path / "w.jsonl", [{"idx": 1, "Instruction": "Write a haiku about the autumn moon rising"}])
    ok = run("index", "build", tmp_path / "i", "--source", f"w={src}", "--map", "w:question=Instruction", "--map", "w:id=idx")
    assert ok.exit_code == 0, ok.stderr
    bad_map = run("index", "build", tmp_path / "j", "--source", f"w={src}", "--map", "w:prompt=Instruction")
    assert bad_map.exit_code == 2 and bad_map.stderr.startswith("Error: --map 'w:prompt=Instruction' is not NAME:ROLE=FIELD")
    unknown = write_jsonl(tmp_path / "u.jsonl", [{"foo": "bar"}])
    res = run("index", "build", tmp_path / "k", "--source", f"u={unknown}")
    assert res.exit_code == 2
    assert "cannot tell which fields of row 0 hold the test item; keys seen: ['foo']" in res.stderr
    assert "Hint: map them explicitly, e.g. --map u:question=<field>" in res.stderr


def test_console_script_reads_stdin_plain_or_gzipped(tmp_path, index_dir, gsm8k):
    import gzip

    decontam_bin = shutil.which("decontam") or f"{sys.executable} -m decontam.cli"
    lines = (json.dumps({"prompt": gsm8k[1]["question"]}) + "\n" + json.dumps({"text": "plain words here"}) + "\n").encode()
    for data in (lines, gzip.compress(lines)):
        proc = subprocess.run([*decontam_bin.split(), "scan", "-", "--index", str(index_dir), "--json"],
                              input=data, capture_output=True, timeout=120)
        assert proc.returncode == 1, proc.stderr
        summary = json.loads(proc.stdout)
        assert (summary["rows_read"], summary["rows_malformed"], summary["rows_flagged"]) == (2, 0, 1)


def test_output_folders_are_made_and_checked_before_the_scan(tmp_path, index_dir, gsm8k):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[1]["question"]}])
    sarif = tmp_path / "reports" / "ci" / "decontam.sarif"
    assert run("scan", corpus, "--index", index_dir, "--sarif", sarif).exit_code == 1 and sarif.exists()
    result = run("scan", corpus, "--index", index_dir, "--audit", tmp_path / "reports")
    assert result.exit_code == 2 and result.stderr.startswith(f"Error: {tmp_path / 'reports'} is a folder\n")


def test_a_file_system_error_is_an_error_line_not_a_traceback(tmp_path, index_dir, gsm8k):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[1]["question"]}])
    run("scan", corpus, "--index", index_dir, "--out", tmp_path / "f.parquet")
    decontam_bin = shutil.which("decontam") or f"{sys.executable} -m decontam.cli"
    target = tmp_path / "gone" / "baseline.json"  # baseline writes where it is told, without making folders
    proc = subprocess.run([*decontam_bin.split(), "baseline", str(tmp_path / "f.parquet"), "--out", str(target)],
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (2, f"Error: {target}: No such file or directory\n")


def test_scan_without_index_uses_the_shipped_default(tmp_path, gsm8k):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[2]["question"]}])
    result = run("scan", corpus, "--json")
    assert result.exit_code == 1, result.stderr
    assert "indexes/default" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["benchmarks"]["gsm8k"]["items_found"] == 1
    assert set(summary["benchmarks"]) == {"gsm8k", "mmlu", "humaneval", "mt_bench", "arena_hard", "ifeval", "truthfulqa", "math500"}


def test_an_option_of_a_layer_the_build_leaves_out_is_a_usage_error(tmp_path):
    """--min-cosine without the embedding layer was dropped without a word."""
    source = f"gsm8k={INDEX_SOURCES['gsm8k']}"
    result = run("index", "build", tmp_path / "i", "--source", source, "--min-cosine", "0.85")
    assert result.exit_code == 2 and not (tmp_path / "i").exists()
    assert result.stderr.splitlines()[-2:] == [
        "Error: --min-cosine is an option of the embedding layer, which --methods ngram,minhash,artifact does not build",
        "Hint: add embedding to --methods, or drop --min-cosine"]
    result = run("index", "build", tmp_path / "i", "--source", source, "--methods", "ngram", "--num-perm", "64")
    assert result.exit_code == 2 and "--num-perm is an option of the minhash layer" in result.stderr
    assert run("index", "build", tmp_path / "i", "--source", source, "--methods", "ngram", "--ngram-size", "13").exit_code == 0
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "nothing of note in this row"}])
    scan = run("scan", corpus, "--index", tmp_path / "i", "--min-jaccard", "0.6", "--min-score", "0.8")  # (a scan warns: it may run
    assert scan.exit_code == 0                                                                         # another index with one config)
    assert "Warning: --min-jaccard has no effect: the minhash layer does not run in this scan (ngram)" in scan.stderr
    assert "--min-score has no effect" not in scan.stderr


def test_an_empty_file_is_named_in_a_warning(tmp_path, index_dir, gsm8k):
    """An export that failed leaves an empty file, which scans clean."""
    (tmp_path / "empty.jsonl").write_text("")
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[2]["question"]}])
    result = run("scan", tmp_path / "empty.jsonl", corpus, "--index", index_dir)
    assert result.exit_code == 1 and f"Warning: {tmp_path / 'empty.jsonl'} holds no rows\n" in result.stderr
    assert "holds no rows" not in run("scan", corpus, "--index", index_dir).stderr


def test_a_negative_top_is_a_usage_error(tmp_path, index_dir, gsm8k):
    """polars' head(-1) showed every finding but the last."""
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[2]["question"]}])
    scan = run("scan", corpus, "--index", index_dir, "--top", "-1", "--out", tmp_path / "f.parquet")
    assert (scan.exit_code, scan.stderr.splitlines()[-2:]) == (2, ["Error: --top -1 must be 0 or more", "Hint: 0 shows no findings, 10 the ten best"])
    assert not (tmp_path / "f.parquet").exists()
    run("scan", corpus, "--index", index_dir, "--out", tmp_path / "f.parquet")
    report = run("report", tmp_path / "f.parquet", "--top", "-3")
    assert report.exit_code == 2 and report.stderr.startswith("Error: --top -3 must be 0 or more\n")


def test_index_commands_without_an_index_show_the_shipped_one():
    from decontam.index import default_index_path

    info = run("index", "info")
    assert info.exit_code == 0 and info.stdout.startswith(f"Index {default_index_path()}: format ")
    assert run("index", "verify").stdout.startswith("OK ")
    templates = run("artifacts", "show", "--benchmark", "ifeval")
    assert templates.exit_code == 0 and "ifeval:" in templates.stdout
