"""Reports, clean, baseline, the gate, --since, SARIF / JUnit, the audit manifest, split and compare."""

import gzip
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import decontam
from decontam.clean import CleanPolicy, clean_corpus
from decontam.cli import app
from decontam.findings import FINDINGS_SCHEMA, read_findings_with_metadata
from decontam.index import IndexParams
from decontam.report import MARKDOWN_LIMIT, build_report, render_html, render_markdown

from .conftest import BENCH, DATA, INDEX_SOURCES, read_jsonl, write_jsonl

runner = CliRunner()
KKKKK = ("If you cannot determine the correct multiple-choice answer, take your best guess. Once you have your answer, "
         "please duplicate that letter five times in a single string. For example, if the answer is K, then write KKKKK.")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def autoj(tmp_path_factory, index_dir):
    """The real Auto-J pairwise file, scanned once against the test index."""
    folder = tmp_path_factory.mktemp("autoj")
    corpus = folder / "autoj.jsonl"
    corpus.write_bytes(gzip.open(DATA / "corpora/auto_j/testdata_pairwise.jsonl.gz").read())
    findings = folder / "findings.parquet"
    result = run("scan", corpus, "--index", index_dir, "--out", findings)
    assert result.exit_code == 1, result.stderr
    return corpus, findings


# -- reports -------------------------------------------------------------------------------------


def test_markdown_report(autoj, index_dir):
    _, findings = autoj
    result = run("report", findings, "--index", index_dir, "--format", "md")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert text.startswith("## decontam: benchmark contamination report\n")
    assert "Scanned **1,392** rows" in text
    assert "| mt_bench | 47 / 80 | 58.8% |" in text
    assert "<details><summary>Top findings</summary>" in text and len(text) < MARKDOWN_LIMIT


def test_markdown_stays_under_the_limit_however_large(index):
    rows = 30_000
    findings = pl.DataFrame({
        "source": ["big.jsonl"] * rows, "row": list(range(rows)), "record_id": [None] * rows, "field": ["prompt"] * rows,
        "role": ["user"] * rows, "benchmark": ["gsm8k"] * rows, "subset": [None] * rows,
        "item_id": [f"gsm8k_test_{i % 1319}" for i in range(rows)], "item_part": ["question"] * rows, "method": ["ngram"] * rows,
        "kind": ["item"] * rows, "score": [1.0] * rows, "span_start": [0] * rows, "span_end": [10] * rows, "evidence": ["x" * 300] * rows,
    }, schema=FINDINGS_SCHEMA)
    report = build_report(findings, counts=None, index=index, top=5000)
    text = render_markdown(report)
    assert len(text) <= MARKDOWN_LIMIT and "more not shown" in text


def test_markdown_report_shows_corpus_text_as_code_never_as_markup(index):
    """A pull-request comment: the corpus's text, field names and ids are anyone's, so none of them
    may become a link, an image, HTML or an @mention, nor break out of the table."""
    row = {"source": "c.jsonl", "row": 0, "record_id": None, "field": "[x](http://e.example)", "role": "user", "benchmark": "gsm8k",
           "subset": None, "item_id": "gsm8k_test_1", "item_part": "question", "method": "ngram", "kind": "item", "score": 1.0,
           "span_start": 0, "span_end": 10, "evidence": "@someone ![i](http://e.example/p.png) <img src=x> a|b `tick`"}
    text = render_markdown(build_report(pl.DataFrame([row], schema=FINDINGS_SCHEMA), counts=None, index=index, top=5))
    assert ("| `c.jsonl:1` `[x](http://e.example)` | gsm8k `gsm8k_test_1` question | ngram | 1.00 | "
            "`` @someone ![i](http://e.example/p.png) <img src=x> a\\|b `tick` `` |") in text
    assert "By field: `[x](http://e.example)` 1." in text
    row["evidence"] = "abc \u202edef\x1b[8m"  # bidi override, terminal escape: shown as escapes in both reports
    report = build_report(pl.DataFrame([row], schema=FINDINGS_SCHEMA), counts=None, index=index, top=5)
    assert "`abc \\u202edef\\x1b[8m`" in render_markdown(report)
    page = render_html(report)
    assert "\u202e" not in page and "\x1b" not in page and "abc \\u202edef\\x1b[8m" in page


def test_json_report_has_rates_and_top_findings(autoj, index_dir):
    _, findings = autoj
    data = json.loads(run("report", findings, "--index", index_dir, "--format", "json").stdout)
    mt = data["benchmarks"]["mt_bench"]
    assert (mt["items_found"], mt["items_in_index"], mt["share_of_items_found"]) == (47, 80, 0.5875)
    assert mt["subsets"]["writing"]["items_in_subset"] == 10
    assert data["rows_read"] == 1392 and 0 < mt["share_of_rows"] < 1
    top = data["top_findings"][0]
    assert top["item_text"] and top["corpus_marks"] and top["item_marks"]
    assert set(data["score_histograms"]) == {"ngram", "minhash"} and sum(data["score_histograms"]["ngram"]) > 0


def test_html_report_is_self_contained(autoj, index_dir, tmp_path):
    _, findings = autoj
    out = tmp_path / "r.html"
    assert run("report", findings, "--index", index_dir, "--format", "html", "--out", out).exit_code == 0
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "<mark>" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page  # opens offline


def test_report_format_follows_the_name_of_out(autoj, index_dir, tmp_path):
    """`report F --out r.html` wrote Markdown into r.html (the format was md unless --format said)."""
    _, findings = autoj
    for name, start in (("r.html", "<!doctype html>"), ("r.HTM", "<!doctype html>"), ("r.json", "{"), ("r.md", "## decontam"),
                        ("r.txt", "## decontam")):
        result = run("report", findings, "--index", index_dir, "--out", tmp_path / name)
        assert result.exit_code == 0, result.stderr
        assert (tmp_path / name).read_text().startswith(start), name
    clash = run("report", findings, "--index", index_dir, "--format", "md", "--out", tmp_path / "x.html")
    assert clash.exit_code == 2 and not (tmp_path / "x.html").exists()
    assert f"Error: --format md but --out {tmp_path / 'x.html'} is named as html" in clash.stderr
    assert run("report", findings, "--index", index_dir, "--format", "json", "--out", tmp_path / "x.txt").exit_code == 0


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not _chromium() and not os.environ.get("DECONTAM_REQUIRE_CHROMIUM"), reason="chromium is not installed")
def test_html_report_renders_in_headless_chromium(autoj, index_dir, tmp_path):
    _, findings = autoj
    page = tmp_path / "r.html"
    run("report", findings, "--index", index_dir, "--format", "html", "--out", page)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars"]
    shot = tmp_path / "shot.png"
    subprocess.run([_chromium(), *flags, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=False)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a blank page compresses to a few KB
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "Contamination per benchmark" in dom and "mt_bench" in dom


# -- clean ---------------------------------------------------------------------------------------------


def test_clean_loses_nothing_on_real_data(autoj, tmp_path):
    corpus, findings = autoj
    kept, removed = tmp_path / "kept.jsonl", tmp_path / "removed.jsonl"
    result = run("clean", corpus, "--findings", findings, "--out", kept, "--removed", removed)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"1,392 rows in {corpus}: 1,301 kept in {kept}, 91 removed to {removed}\n"
    original = corpus.read_bytes().splitlines(keepends=True)
    kept_lines, removed_lines = kept.read_bytes().splitlines(keepends=True), removed.read_bytes().splitlines(keepends=True)
    assert sorted(kept_lines + removed_lines) == sorted(original)
    assert kept_lines == [line for line in original if line in set(kept_lines)]  # order kept
    manifest = json.loads((tmp_path / "removed.jsonl.manifest.json").read_text())
    assert manifest["removed"]["rows"] == 91 and len(manifest["removed_rows"]) == 91
    assert manifest["removed_rows"][0]["findings"][0]["benchmark"]


def test_clean_policy_and_parquet(tmp_path, index, gsm8k):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": str(i), "prompt": gsm8k[i]["question"] if i % 2 else "plain words only here", "n": i} for i in range(10)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet")
    findings = decontam.scan(str(tmp_path / "c.parquet"), index=index).findings
    result = clean_corpus(tmp_path / "c.parquet", findings, tmp_path / "k.parquet", tmp_path / "r.parquet")
    assert (result.input_rows, result.kept_rows, result.removed_rows) == (10, 5, 5)
    assert pq.read_schema(tmp_path / "k.parquet").equals(pq.read_schema(tmp_path / "c.parquet"))
    assert pq.read_table(tmp_path / "r.parquet").column("n").to_pylist() == [1, 3, 5, 7, 9]
    none = clean_corpus(tmp_path / "c.parquet", findings, tmp_path / "k2.parquet", tmp_path / "r2.parquet",
                        policy=CleanPolicy(kinds=("artifact",)))
    assert none.removed_rows == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(st.text(max_size=30).map(lambda t: json.dumps({"text": t})), st.just("{broken"), st.just("")), max_size=40),
       flagged=st.sets(st.integers(0, 60)), gz=st.booleans())
def test_property_clean_loses_nothing(tmp_path, lines, flagged, gz):
    name = "c.jsonl.gz" if gz else "c.jsonl"
    corpus = tmp_path / name
    data = "".join(line + "\n" for line in lines).encode()
    corpus.write_bytes(gzip.compress(data) if gz else data)
    rows = sorted(r for r in flagged if r < len(lines))
    findings = pl.DataFrame({
        "source": [str(corpus)] * len(rows), "row": rows, "record_id": [None] * len(rows), "field": ["text"] * len(rows),
        "role": [None] * len(rows), "benchmark": ["b"] * len(rows), "subset": [None] * len(rows), "item_id": ["1"] * len(rows),
        "item_part": ["question"] * len(rows), "method": ["ngram"] * len(rows), "kind": ["item"] * len(rows),
        "score": [1.0] * len(rows), "span_start": [0] * len(rows), "span_end": [1] * len(rows), "evidence": ["e"] * len(rows),
    }, schema=FINDINGS_SCHEMA)
    suffix = ".gz" if gz else ""
    result = clean_corpus(corpus, findings, tmp_path / f"k.jsonl{suffix}", tmp_path / f"r.jsonl{suffix}")
    read = (lambda p: gzip.open(p).read()) if gz else (lambda p: p.read_bytes())
    original = data.splitlines(keepends=True)
    kept, removed = read(tmp_path / f"k.jsonl{suffix}").splitlines(keepends=True), read(tmp_path / f"r.jsonl{suffix}").splitlines(keepends=True)
    assert kept == [line for i, line in enumerate(original) if i not in set(rows)]
    assert removed == [original[i] for i in rows]
    assert result.input_rows == len(original) == result.kept_rows + result.removed_rows


def test_clean_zstd_corpus(tmp_path, index, gsm8k):
    from decontam.readers import open_compressed

    lines = [json.dumps({"prompt": gsm8k[i]["question"] if i % 2 else f"plain row number {i}"}).encode() + b"\n" for i in range(6)]
    corpus = tmp_path / "c.jsonl.zst"
    with open_compressed(corpus, "wb") as handle:
        handle.write(b"".join(lines))
    findings = decontam.scan(str(corpus), index=index, options=decontam.ScanOptions(methods=("ngram",))).findings
    result = clean_corpus(corpus, findings, tmp_path / "k.jsonl.zst", tmp_path / "r.jsonl")
    assert (result.kept_rows, result.removed_rows) == (3, 3)
    with open_compressed(tmp_path / "k.jsonl.zst") as kept:
        assert kept.read() == b"".join(lines[0::2])
    assert (tmp_path / "r.jsonl").read_bytes() == b"".join(lines[1::2])


def test_clean_json_array_writes_arrays_or_lines(tmp_path, index, gsm8k):
    rows = [{"id": i, "prompt": gsm8k[i]["question"] if i % 3 == 0 else f"plain row number {i}", "score": i / 2} for i in range(9)]
    corpus = tmp_path / "data.json"
    corpus.write_text(json.dumps(rows, indent=2, ensure_ascii=False))
    findings = decontam.scan(str(corpus), index=index, options=decontam.ScanOptions(methods=("ngram",))).findings
    assert sorted(set(findings["row"])) == [0, 3, 6]
    result = clean_corpus(corpus, findings, tmp_path / "kept.json", tmp_path / "removed.jsonl")
    assert (result.input_rows, result.kept_rows, result.removed_rows) == (9, 6, 3)
    assert json.loads((tmp_path / "kept.json").read_text()) == [r for r in rows if r["id"] % 3]
    assert [json.loads(line) for line in (tmp_path / "removed.jsonl").read_text().splitlines()] == rows[::3]
    empty = clean_corpus(corpus, findings.clear(), tmp_path / "k2.json", tmp_path / "r2.json")
    assert empty.removed_rows == 0 and json.loads((tmp_path / "r2.json").read_text()) == []


def test_clean_csv_keeps_the_bytes(tmp_path, index, gsm8k):
    header = b"\xef\xbb\xbfid,prompt,note\r\n"  # Excel's byte-order mark and line ends
    records = [f'{i},"{gsm8k[i]["question"]}",x\r\n'.encode() if i % 2 else f'{i},"plain row\r\nnumber {i}",\xe9\r\n'.encode()
               for i in range(6)]
    records[2] = records[2].replace("é".encode(), b"\xff")  # a byte that is not UTF-8 comes back as it was
    corpus = tmp_path / "c.csv"
    corpus.write_bytes(header + b"".join(records))
    findings = decontam.scan(str(corpus), index=index, options=decontam.ScanOptions(methods=("ngram",))).findings
    assert sorted(set(findings["row"])) == [1, 3, 5]
    result = clean_corpus(corpus, findings, tmp_path / "k.csv", tmp_path / "r.csv.gz")
    assert (result.input_rows, result.kept_rows, result.removed_rows) == (6, 3, 3)
    assert (tmp_path / "k.csv").read_bytes() == header + b"".join(records[0::2])
    assert gzip.open(tmp_path / "r.csv.gz").read() == header + b"".join(records[1::2])
    with pytest.raises(decontam.DecontamError, match=r"cannot write rows of .*c.csv to .*k.jsonl: the output would not be a CSV file"):
        clean_corpus(corpus, findings, tmp_path / "k.jsonl", tmp_path / "r.csv")
    parquet = tmp_path / "c.parquet"
    pl.DataFrame({"prompt": [f"row {i}" for i in range(6)]}).write_parquet(parquet)
    with pytest.raises(decontam.DecontamError, match=r"would not be a PARQUET file \(hint: name the outputs .parquet\)"):
        clean_corpus(parquet, findings.with_columns(pl.lit(str(parquet)).alias("source")), tmp_path / "k.parquet", tmp_path / "r.jsonl")


@pytest.mark.parametrize("outputs, message", [
    (["--out", "same.jsonl", "--removed", "same.jsonl"], "--removed same.jsonl is --out\n"),
    (["--out", "k.jsonl", "--removed", "r.jsonl", "--manifest", "k.jsonl"], "--manifest k.jsonl is --out\n"),
    (["--out", "k.jsonl", "--removed", "r.jsonl", "--manifest", "./r.jsonl"], "--manifest r.jsonl is --removed\n"),
    (["--out", "k.jsonl", "--removed", "r.jsonl", "--manifest", "c.jsonl"], "--manifest c.jsonl is the corpus\n"),
])
def test_clean_refuses_outputs_that_would_overwrite_each_other(tmp_path, index_dir, gsm8k, monkeypatch, outputs, message):
    """Before, the manifest could overwrite the kept rows or the corpus itself, and --out and
    --removed could be one file: rows lost, exit 0."""
    monkeypatch.chdir(tmp_path)
    rows = [{"prompt": gsm8k[1]["question"]}, {"prompt": "a plain row about the weather"}]
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    assert run("scan", "c.jsonl", "--index", index_dir, "--out", "f.parquet").exit_code == 1
    before = corpus.read_bytes()
    out = run("clean", "c.jsonl", "--findings", "f.parquet", *outputs)
    assert out.exit_code == 2 and out.stderr.startswith(f"Error: {message}"), out.stderr
    assert corpus.read_bytes() == before and not (tmp_path / "k.jsonl").exists() and not (tmp_path / "same.jsonl").exists()


def test_clean_refuses_one_folder_for_kept_and_removed_rows(tmp_path, index_dir, gsm8k, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    write_jsonl(tmp_path / "folder/c.jsonl", [{"prompt": gsm8k[1]["question"]}, {"prompt": "a plain row about the weather"}])
    assert run("scan", "folder", "--index", index_dir, "--out", "g.parquet").exit_code == 1
    out = run("clean", "folder", "--findings", "g.parquet", "--out", "o", "--removed", "./o")
    assert out.exit_code == 2 and out.stderr == "Error: --removed o is --out\nHint: name each output a new file of its own\n"


def test_no_output_overwrites_an_input_or_another_output(tmp_path, index_dir, gsm8k, monkeypatch):
    """`scan c.jsonl --out c.jsonl` wrote the findings over the corpus, `--audit` too; `baseline F
    --out F` wrote the baseline over the findings: exit 0 every time."""
    monkeypatch.chdir(tmp_path)
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[1]["question"]}])
    before = corpus.read_bytes()
    for outputs, message in ((["--out", "c.jsonl"], "--out c.jsonl is the input c.jsonl"),
                             (["--out", "f.parquet", "--audit", "./c.jsonl"], "--audit c.jsonl is the input c.jsonl"),
                             (["--out", "f.parquet", "--sarif", "f.parquet"], "--sarif f.parquet is --out"),
                             (["--report", str(index_dir / "r.md")], f"--report {index_dir / 'r.md'} is inside the index {index_dir}")):
        out = run("scan", "c.jsonl", "--index", index_dir, *outputs)
        assert out.exit_code == 2 and out.stderr.splitlines()[-2] == f"Error: {message}", (outputs, out.stderr)
    assert corpus.read_bytes() == before and not (tmp_path / "f.parquet").exists() and not (index_dir / "r.md").exists()
    assert run("scan", "c.jsonl", "--index", index_dir, "--out", "f.parquet").exit_code == 1
    findings = (tmp_path / "f.parquet").read_bytes()
    for command in (["baseline", "f.parquet", "--out", "./f.parquet"], ["report", "f.parquet", "--out", "f.parquet"]):
        out = run(*command)
        assert out.exit_code == 2 and out.stderr.startswith("Error: --out f.parquet is FINDINGS\n"), out.stderr
    assert (tmp_path / "f.parquet").read_bytes() == findings


def test_a_work_folder_inside_the_scanned_folder_is_refused(tmp_path, index_dir, gsm8k, monkeypatch):
    """Its shard files (Parquet) were read as corpus by the rerun, which then refused the work folder
    as another scan's: resuming never worked. Findings written there get a warning."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data/c.jsonl", [{"prompt": gsm8k[1]["question"]}])
    out = run("scan", "data", "--index", index_dir, "--work-dir", "data/.work")
    assert out.exit_code == 2 and out.stderr.splitlines()[-2:] == [
        "Error: --work-dir data/.work is inside the scanned folder data: a rerun would read its shard files as corpus",
        "Hint: keep the work folder outside the folders you scan"]
    assert not (tmp_path / "data/.work").exists()
    out = run("scan", "data", "--index", index_dir, "--out", "data/f.parquet")
    assert out.exit_code == 1 and "Warning: --out data/f.parquet is inside the scanned folder data: a later scan" in out.stderr


def test_clean_refuses_mismatched_findings(tmp_path, autoj):
    _, findings = autoj
    other = write_jsonl(tmp_path / "other.jsonl", [{"text": "x"}])
    result = run("clean", other, "--findings", findings, "--out", tmp_path / "k.jsonl", "--removed", tmp_path / "r.jsonl")
    assert result.exit_code == 2 and f"Error: the findings do not mention {other}" in result.stderr


def _corpus_in(fmt: str, folder, rows: list[str]):
    """The texts as a corpus file of one format, one row each (a malformed row too, where one can be)."""
    import gzip as gz

    path = folder / f"corpus.{fmt}"
    if fmt in ("jsonl", "jsonl.gz"):
        data = "".join(json.dumps({"prompt": r}) + "\n" for r in rows) + "{not json\n"
        path.write_bytes(gz.compress(data.encode()) if fmt.endswith(".gz") else data.encode())
    elif fmt == "json":
        path.write_text(json.dumps([{"prompt": r} for r in rows]))
    elif fmt in ("csv", "tsv"):
        pl.DataFrame({"id": [str(i) for i in range(len(rows))], "prompt": rows}).write_csv(path, separator="," if fmt == "csv" else "\t")
    elif fmt == "txt":
        path.write_text("".join(r + "\n\n" for r in rows))
    else:
        pl.DataFrame({"prompt": rows}).write_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "json", "csv", "tsv", "txt", "parquet"])
def test_clean_refuses_a_corpus_with_other_rows_than_the_scan_read(tmp_path, index_dir, gsm8k, fmt):
    """A row added at the top after the scan shifts every row number: cleaning with the old findings
    would remove the row above each contaminated one and keep the contaminated one. The scan records
    how many rows it saw of each file (with --since, those it left out too); clean checks it, and
    writes nothing when it differs."""
    from decontam.readers import TEXT_RECORD_BYTES

    # (a text file's records are runs of paragraphs of TEXT_RECORD_BYTES: each row here is one)
    background = [f"A plain line of text number {i} about gardening and the weather. " * (TEXT_RECORD_BYTES // 60) for i in range(5)]
    rows = [*background[:2], gsm8k[3]["question"] + " " + background[2], *background[3:]]
    corpus = _corpus_in(fmt, tmp_path, rows)
    findings = tmp_path / "f.parquet"
    assert run("scan", corpus, "--index", index_dir, "--out", findings).exit_code == 1
    kept, removed = tmp_path / f"k.{fmt}", tmp_path / f"r.{fmt}"
    ok = run("clean", corpus, "--findings", findings, "--out", kept, "--removed", removed)
    expected = len(rows) + (fmt.startswith("jsonl"))  # (the malformed line is a row)
    assert ok.exit_code == 0, ok.stderr
    assert ok.stdout.startswith(f"{expected} rows in {corpus}:") and ", 1 removed to " in ok.stdout
    kept.unlink(), removed.unlink()
    corpus = _corpus_in(fmt, tmp_path, [background[0], *rows])
    refused = run("clean", corpus, "--findings", findings, "--out", kept, "--removed", removed)
    assert refused.exit_code == 2
    assert (f"Error: {corpus} has {expected + 1} rows, but the scan read {expected}: the corpus changed since the scan, "
            "and the findings' row numbers may point at other rows (nothing written)\nHint: scan it again") in refused.stderr
    assert not kept.exists() and not removed.exists()


def test_outputs_appear_whole_or_not_at_all(tmp_path, index, gsm8k, monkeypatch):
    """A findings file or a cleaned corpus cut short by an error (a full disk, a kill) read as fewer
    findings or fewer rows. Each is now written under a temporary name and renamed once complete: an
    error leaves the earlier file as it was, and no temporary file behind."""
    from decontam.atomic import replaced
    from decontam.findings import write_findings

    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[i]["question"]} for i in range(3)])
    result = decontam.scan(str(corpus), index=index)
    out = tmp_path / "f.jsonl"
    write_findings(result.findings, out, metadata={"counts": {}})
    before = out.read_bytes()

    def full_disk(self, path, *args, **kwargs):
        Path(path).write_bytes(b'{"source": "c.jsonl", "row": 0')  # a first piece, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_ndjson", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_findings(result.findings.head(1), out)
    assert out.read_bytes() == before
    monkeypatch.undo()
    kept, removed = tmp_path / "k.jsonl.gz", tmp_path / "r.jsonl.gz"
    kept.write_text("earlier")
    out = run("clean", corpus, "--findings", tmp_path / "f.jsonl", "--out", kept, "--removed", removed)
    assert out.exit_code == 0, out.stderr
    assert gzip.decompress(removed.read_bytes()).count(b"\n") == 3 and gzip.decompress(kept.read_bytes()) == b""
    assert not removed.read_bytes()[3] & 0x08  # no file name in the header: it was the temporary one (gunzip -N)
    with replaced(tmp_path / "x.jsonl.gz") as tmp:
        assert tmp.name == f"x.{os.getpid()}.tmp.jsonl.gz"  # (the suffixes pick the format and the compression)
        tmp.write_bytes(b"")
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name) == []


def test_clean_after_a_scan_with_since_counts_the_rows_left_out(tmp_path, index_dir, gsm8k):
    """--since scans only the rows a commit changed; the others still count as the file's rows."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    corpus = write_jsonl(repo / "c.jsonl", [{"prompt": f"an old row about the weather number {i}"} for i in range(4)])
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "c.jsonl"], check=True)
    subprocess.run([*git, "commit", "-qm", "old"], check=True)
    with open(corpus, "a") as handle:
        handle.write(json.dumps({"prompt": gsm8k[5]["question"]}) + "\n")
    findings = tmp_path / "f.parquet"
    scanned = run("scan", corpus, "--index", index_dir, "--out", findings, "--since", "HEAD", "--json")
    assert scanned.exit_code == 1 and json.loads(scanned.stdout)["rows_read"] == 1
    out = run("clean", corpus, "--findings", findings, "--out", tmp_path / "k.jsonl", "--removed", tmp_path / "r.jsonl")
    assert out.exit_code == 0, out.stderr
    assert out.stdout.startswith(f"5 rows in {corpus}: 4 kept")


# -- gate: baseline, fail-on, since, SARIF, JUnit, audit -------------------------------------------


def test_baseline_accepts_known_findings(tmp_path, index_dir, gsm8k):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[0]["question"]}])
    findings, base = tmp_path / "f.parquet", tmp_path / "baseline.json"
    assert run("scan", corpus, "--index", index_dir, "--out", findings).exit_code == 1
    named_as_parquet = run("baseline", findings, "--out", tmp_path / "baseline.parquet")
    assert named_as_parquet.exit_code == 2 and "the file is JSON, and its name says another format" in named_as_parquet.stderr
    assert not (tmp_path / "baseline.parquet").exists()
    findings_for_baseline = run("scan", corpus, "--index", index_dir, "--baseline", findings)  # (was a UnicodeDecodeError traceback)
    assert findings_for_baseline.exit_code == 2
    assert f"Error: {findings} is not a decontam baseline (not JSON text: a Parquet file)" in findings_for_baseline.stderr
    junit_as_json = run("scan", corpus, "--index", index_dir, "--junit", tmp_path / "junit.json")
    assert junit_as_json.exit_code == 2 and "--junit" in junit_as_json.stderr and not (tmp_path / "junit.json").exists()
    assert run("baseline", findings, "--out", base).stdout.startswith("Wrote ")
    accepted = run("scan", corpus, "--index", index_dir, "--baseline", base, "--json")
    assert accepted.exit_code == 0
    assert json.loads(accepted.stdout)["gate"]["accepted_by_baseline"] >= 1
    # a new row above it moves its row number but not its fingerprint; a new item still fails
    write_jsonl(corpus, [{"prompt": "an unrelated first row"}, {"prompt": gsm8k[0]["question"]}, {"prompt": gsm8k[1]["question"]}])
    again = run("scan", corpus, "--index", index_dir, "--baseline", base, "--json")
    assert again.exit_code == 1 and json.loads(again.stdout)["benchmarks"]["gsm8k"]["items_found"] == 1


def test_fail_on_policies(tmp_path, index_dir, gsm8k):
    rows = [{"prompt": f"Which gas do plants take in?\n(A) oxygen\n(B) carbon dioxide\n{KKKKK}"}] + [{"text": f"filler {i}"} for i in range(99)]
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    base = ["scan", corpus, "--json"]  # the default index carries the curated KKKKK template
    assert run(*base).exit_code == 1
    assert run(*base, "--fail-on", "kind:item").exit_code == 0
    assert run(*base, "--fail-on", "kind:artifact").exit_code == 1
    assert run(*base, "--fail-on", "kind:artifact&rate>0.05").exit_code == 0  # 1 row of 100
    assert run(*base, "--fail-on", "rows>=1").exit_code == 1
    assert run(*base, "--fail-on", "none").exit_code == 0
    bad = run(*base, "--fail-on", "kind:everything")
    assert bad.exit_code == 2 and "unknown kind 'everything'" in bad.stderr
    # conditions on a typo'd benchmark or method could never hold and would leave the gate open: an
    # error; a number like 0.9.1 was a ValueError traceback
    for args, message in ((["--fail-on", "benchmark:gsm9k"], "Error: --fail-on 'benchmark:gsm9k': the index has no benchmark 'gsm9k'"),
                          (["--fail-on", "method:ngrams"], "Error: --fail-on 'method:ngrams': the index has no method 'ngrams'"),
                          (["--fail-on", "score>=0.9.1"], "Error: --fail-on 'score>=0.9.1': cannot read 'score>=0.9.1'")):
        refused = run(*base, *args)
        assert refused.exit_code == 2 and message in refused.stderr, (args, refused.stderr)
    # past 1 on scores or rates can never hold either, which may be meant: a warning, and the gate open
    for args, message in ((["--fail-on", "kind:item&rate>2"], "Warning: --fail-on 'kind:item&rate>2' can never hold"),
                          (["--fail-min-score", "2"], "Warning: --fail-min-score 2.0 is past every score")):
        opened = run(*base, *args)
        assert opened.exit_code == 0 and message in opened.stderr, (args, opened.stderr)
    assert run(*base, "--fail-on", "benchmark:judgebench&score>=.9").exit_code == 1  # the KKKKK template's benchmark


def _git_repo(folder):
    """A new git repository in ``folder``, and a function that runs git there."""
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    folder.mkdir()
    git = lambda *a: subprocess.run(["git", *a], cwd=folder, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    return git


def test_since_scans_only_changed_rows(tmp_path, index_dir, gsm8k):
    repo = tmp_path / "repo"
    git = _git_repo(repo)
    data = repo / "data.jsonl"
    write_jsonl(data, [{"prompt": gsm8k[0]["question"]}, {"prompt": "plain row"}])
    git("add", "data.jsonl")
    git("commit", "-qm", "base")
    write_jsonl(data, [{"prompt": gsm8k[0]["question"]}, {"prompt": "plain row"}, {"prompt": gsm8k[5]["question"]}])
    result = run("scan", data, "--index", index_dir, "--since", "HEAD", "--json")
    summary = json.loads(result.stdout)
    assert result.exit_code == 1 and summary["rows_read"] == 1 and summary["rows_unchanged"] == 2
    assert summary["benchmarks"]["gsm8k"]["items_found"] == 1
    assert "1 row changed since HEAD" in result.stderr
    missing = run("scan", data, "--index", index_dir, "--since", "no-such-rev")
    assert missing.exit_code == 2 and "no such revision" in missing.stderr
    # a CSV record may span lines: a change on any of them is a change of that row
    table = repo / "data.csv"
    table.write_text(f'prompt,note\n"{gsm8k[0]["question"]}",x\n"plain row\nsecond line",y\n')
    git("add", "data.csv")
    git("commit", "-qm", "csv")
    table.write_text(f'prompt,note\n"{gsm8k[0]["question"]}",x\n"plain row\nsecond line, edited",y\n"{gsm8k[5]["question"]}",z\n')
    summary = json.loads(run("scan", table, "--index", index_dir, "--since", "HEAD", "--json", "--methods", "ngram").stdout)
    assert (summary["rows_read"], summary["rows_unchanged"], summary["benchmarks"]["gsm8k"]["items_found"]) == (2, 1, 1)
    table.write_text(table.read_text().replace("prompt,note", "prompt,comment"))
    result = run("scan", table, "--index", index_dir, "--since", "HEAD", "--json", "--methods", "ngram")
    assert json.loads(result.stdout)["rows_read"] == 3 and "every row (the file is new, or its header changed" in result.stderr


def test_since_on_a_text_file_scans_the_records_that_changed(tmp_path, index_dir, gsm8k, monkeypatch):
    """A text file's record is changed when one of its lines is, or when it lost lines."""
    from decontam import readers
    from decontam.incremental import changed_rows

    monkeypatch.setattr(readers, "TEXT_RECORD_BYTES", 60)  # every paragraph here its own record
    repo = tmp_path / "repo"
    git = _git_repo(repo)
    paragraphs = [gsm8k[0]["question"]] + [f"Paragraph {k} of an ordinary document, long enough to be a record\nof its own, on two lines."
                                          for k in range(1, 5)]
    book = repo / "book.txt"
    book.write_text("\n\n".join(paragraphs) + "\n")
    git("add", "book.txt")
    git("commit", "-qm", "base")
    starts = [r.row for r in readers.iter_records(str(book))]
    assert len(starts) == 5
    paragraphs[1] = paragraphs[1].replace("ordinary", "edited")  # a line changed
    paragraphs[3] = paragraphs[3].split("\n")[0]  # a line removed
    book.write_text("\n\n".join(paragraphs + [gsm8k[5]["question"]]) + "\n")  # a paragraph added
    now = [r.row for r in readers.iter_records(str(book))]
    # (the blank line added before the new paragraph ends the last old record: it changed too)
    assert changed_rows(book, "HEAD") == {now[1], now[3], now[4], now[5]}
    summary = json.loads(run("scan", book, "--index", index_dir, "--since", "HEAD", "--json", "--methods", "ngram").stdout)
    assert (summary["rows_read"], summary["rows_unchanged"]) == (4, 2)
    assert summary["benchmarks"]["gsm8k"]["items_found"] == 1  # gsm8k[5]; gsm8k[0] was there before


def test_sarif_junit_and_audit(tmp_path, index_dir, gsm8k):
    # a field name with a control character, which XML cannot hold even escaped (JUnit readers failed on it)
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[3]["question"]}, {"prompt": "plain", "x\x01y": gsm8k[3]["question"]}])
    sarif, junit, audit = tmp_path / "r.sarif", tmp_path / "j.xml", tmp_path / "audit.json"
    result = run("scan", corpus, "--index", index_dir, "--sarif", sarif, "--junit", junit, "--audit", audit, "--methods", "ngram")
    assert result.exit_code == 1
    log = json.loads(sarif.read_text())
    assert log["version"] == "2.1.0"
    res = log["runs"][0]["results"][0]
    assert res["ruleId"] == "item/gsm8k" and res["locations"][0]["physicalLocation"]["region"]["startLine"] == 1
    xml = junit.read_text()
    assert '<testsuite name="decontam"' in xml and 'failures="1"' in xml and '<testcase classname="decontam" name="mmlu"/>' in xml
    from xml.dom.minidom import parseString

    failure = parseString(xml).getElementsByTagName("failure")[0]
    assert failure.getAttribute("message") == "2 rows hold gsm8k" and f"{corpus}:2 x\\x01y gsm8k_test_3" in failure.firstChild.data
    first = json.loads(audit.read_text())
    assert first["inputs"][0]["sha256"].startswith("sha256:") and first["counts"]["rows_read"] == 2
    assert first["index"]["files"] and first["gate"]["failed"] is True and first["parameters"]["methods"] == ["ngram"]
    run("scan", corpus, "--index", index_dir, "--audit", audit, "--methods", "ngram")
    assert json.loads(audit.read_text())["findings_sha256"] == first["findings_sha256"]


def test_index_cache(tmp_path):
    sources = ["--source", f"gsm8k={INDEX_SOURCES['gsm8k']}"]
    first = run("index", "build", tmp_path / "a", *sources, "--cache-dir", tmp_path / "cache")
    assert first.exit_code == 0 and "taken from the cache" not in first.stderr
    second = run("index", "build", tmp_path / "b", *sources, "--cache-dir", tmp_path / "cache")
    assert second.exit_code == 0 and "Index taken from the cache" in second.stderr
    assert run("index", "verify", tmp_path / "b").exit_code == 0
    other = run("index", "build", tmp_path / "c", *sources, "--ngram-size", "9", "--cache-dir", tmp_path / "cache")
    assert "taken from the cache" not in other.stderr


# -- test-set side: split and compare -------------------------------------------------------------


@pytest.fixture(scope="module")
def judgebench_scan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jb")
    index = decontam.build_index(folder / "idx", [f"judgebench={BENCH / 'judgebench/judgebench_gpt4o.jsonl.gz'}"], curated_templates=None)
    items = read_jsonl(BENCH / "judgebench/judgebench_gpt4o.jsonl.gz")
    with_templates = {i for ids in index.layers["artifact"].templates["item_ids"].to_list() for i in ids}
    copied = next(it for it in items if it["id"] not in with_templates)  # an item that carries no template
    rows = [{"prompt": f"Pick the best option for question {i}.\n{KKKKK}", "chosen": "AAAAA"} for i in range(20)]
    rows.append({"prompt": copied["question"]})  # one item copied verbatim
    corpus = write_jsonl(folder / "train.jsonl", rows)
    findings = folder / "findings.parquet"
    assert run("scan", corpus, "--index", folder / "idx", "--out", findings).exit_code == 1
    return folder, index, items, findings, copied


def test_split_judgebench_by_template(judgebench_scan, tmp_path):
    folder, index, items, findings, copied = judgebench_scan
    result = run("split", findings, "--out-dir", tmp_path / "s")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1].split() == ["judgebench", "350", str(350 - 190), "190"]
    dirty = (tmp_path / "s/judgebench/contaminated_ids.txt").read_text().split()
    kkkkk = {it["id"] for it in items if "KKKKK" in it["question"] or "FFFFF" in it["question"]}
    assert set(dirty) == kkkkk | {copied["id"]}
    rows = [json.loads(line) for line in (tmp_path / "s/judgebench/contaminated.jsonl").read_text().splitlines()]
    assert any(r["reasons"][0].startswith("template judgebench:") for r in rows)
    (tmp_path / "a-file").write_text("")
    refused = run("split", findings, "--out-dir", tmp_path / "a-file")
    assert refused.exit_code == 2 and refused.stderr.startswith(f"Error: --out-dir {tmp_path / 'a-file'} is a file\nHint: name a folder")


def test_compare_scores_by_contamination(judgebench_scan, tmp_path):
    folder, index, items, findings, copied = judgebench_scan
    rng = random.Random(0)
    results = []
    for it in items:  # a judge that is much better on items carrying the template
        carries = "KKKKK" in it["question"] or "FFFFF" in it["question"]
        results.append({"pair_id": it["id"], "correct": rng.random() < (0.9 if carries else 0.6)})
    path = write_jsonl(tmp_path / "results.jsonl", results)
    out = run("compare", path, "--findings", findings, "--benchmark", "judgebench", "--json")
    assert out.exit_code == 0, out.stderr
    table = {row["group"].strip(): row for row in json.loads(out.stdout)}
    n_clean = 350 - 190
    assert table["all"]["items"] == 350 and table["clean"]["items"] == n_clean and table["contaminated"]["items"] == 190
    clean_mean = sum(r["correct"] for r in results if r["pair_id"] in {
        it["id"] for it in items if not ("KKKKK" in it["question"] or "FFFFF" in it["question"]) and it["id"] != copied["id"]}) / n_clean
    assert table["clean"]["mean"] == pytest.approx(clean_mean)
    assert table["contaminated"]["minus_clean"] > 0.2
    template_rows = [g for g in table if g.startswith("template judgebench:")]
    assert len(template_rows) == 1 and table[template_rows[0]]["items"] == 189
    text = run("compare", path, "--findings", findings, "--benchmark", "judgebench").stdout
    assert text.startswith("judgebench: score by contamination\n") and "all - clean" in text


def test_compare_sets_apart_ids_that_are_not_items_and_averages_repeated_rows(judgebench_scan, tmp_path):
    """Results for ids the benchmark does not have are left out of all / clean / contaminated and
    counted apart; results that name no item at all are an error; an item with several rows counts
    once, at their mean."""
    _, _, items, findings, copied = judgebench_scan
    results = [{"pair_id": it["id"], "correct": 1} for it in items]
    results += [{"pair_id": copied["id"], "correct": 0}, {"pair_id": "not-an-item", "correct": 0}, {"pair_id": "other", "correct": 0}]
    path = write_jsonl(tmp_path / "results.jsonl", results)
    out = run("compare", path, "--findings", findings, "--benchmark", "judgebench", "--json")
    assert out.exit_code == 0, out.stderr
    table = {row["group"].strip(): row for row in json.loads(out.stdout)}
    assert table["all"] == {"group": "all", "items": 350, "mean": pytest.approx(349.5 / 350), "minus_clean": pytest.approx(349.5 / 350 - 1)}
    assert table["contaminated"]["mean"] == pytest.approx(189.5 / 190)
    assert table["not in the index"] == {"group": "not in the index", "items": 2, "mean": 0.0, "minus_clean": None}
    assert "Warning: 2 of 352 item ids" in out.stderr and "Note: 1 item(s) have several rows" in out.stderr
    wrong = write_jsonl(tmp_path / "wrong.jsonl", [{"id": f"gsm8k_test_{i}", "correct": True} for i in range(5)])
    refused = run("compare", wrong, "--findings", findings, "--benchmark", "judgebench")
    assert refused.exit_code == 2
    assert "none of the 5 item ids of the results is an item of judgebench in the index: results have 'gsm8k_test_0'" in refused.stderr


@pytest.mark.parametrize("content, message", [
    ('{"pair_id": "a", "correct": 1}\n{"pair_id": "b"}\n', "results.jsonl:2: no 'correct'"),
    ('{"pair_id": "a", "correct": 1}\n{"pair_id": "b", "correct": null}\n', "results.jsonl:2: no 'correct'"),
    ('{"pair_id": "a", "correct": 1}\n["b", 1]\n', "results.jsonl:2: a JSON list, not an object"),
    ('{"pair_id": "a", "correct": NaN}\n', "results.jsonl:1: correct=nan is not a finite number"),
    ('{"pair_id": "a", "correct": "yes"}\n', "results.jsonl:1: correct='yes' is not a number or true/false"),
    (b'{"pair_id": "\xe9", "correct": 1}\n', "not UTF-8 text (byte 13)"),
])
def test_compare_names_the_line_of_a_bad_result(judgebench_scan, tmp_path, content, message):
    findings = judgebench_scan[3]
    path = tmp_path / "results.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = run("compare", path, "--findings", findings, "--benchmark", "judgebench")
    assert out.exit_code == 2 and message in out.stderr, out.stderr


def test_a_corpus_given_for_the_findings_is_refused(tmp_path, gsm8k):
    """Read with the findings' schema, a JSON Lines corpus was a table of all-null findings: split
    wrote every item as clean, report and clean failed with tracebacks."""
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[0]["question"]}, {"prompt": "another row"}])
    for command in (["report", corpus], ["split", corpus, "--out-dir", tmp_path / "s"],
                    ["clean", corpus, "--findings", corpus, "--out", tmp_path / "k.jsonl", "--removed", tmp_path / "r.jsonl"]):
        result = run(*command)
        assert result.exit_code == 2, (command, result.stderr)
        assert f"Error: {corpus} is not a findings table: its first row has no source, row, record_id..." in result.stderr
    assert not (tmp_path / "s").exists() and not (tmp_path / "k.jsonl").exists()


def test_compare_reads_model_outputs_with_line_separators(judgebench_scan, tmp_path):
    """A model's output may hold U+2028 or a form feed raw (JSON allows it, ensure_ascii=False writes
    it): str.splitlines cut the line there, and the results were "not valid JSON"."""
    findings, copied = judgebench_scan[3], judgebench_scan[4]
    path = tmp_path / "results.jsonl"
    row = {"pair_id": copied["id"], "correct": 1, "response": "first part\u2028second part\x0cthird\u0085fourth"}
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    out = run("compare", path, "--findings", findings, "--benchmark", "judgebench", "--json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)[2] == {"group": "contaminated", "items": 1, "mean": 1.0, "minus_clean": None}


def test_compare_reads_a_spreadsheet_csv_with_a_byte_order_mark(judgebench_scan, tmp_path):
    findings, copied = judgebench_scan[3], judgebench_scan[4]
    path = tmp_path / "results.csv"
    path.write_bytes("\ufeffpair_id,correct\n".encode() + f"{copied['id']},TRUE\n".encode())
    out = run("compare", path, "--findings", findings, "--benchmark", "judgebench", "--json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)[2] == {"group": "contaminated", "items": 1, "mean": 1.0, "minus_clean": None}


def test_split_compare_and_report_refuse_an_index_the_scan_did_not_use(judgebench_scan, index_dir, tmp_path):
    """Findings read against another index found every item clean (split), no contamination
    (compare) and no test text (report), exit 0; the index the scan used is recorded as an absolute
    path, and when it is gone the error says that it is the recorded one."""
    folder, _, _, findings, _ = judgebench_scan
    for command in (["split", findings, "--out-dir", tmp_path / "s"], ["report", findings],
                    ["compare", write_jsonl(tmp_path / "r.jsonl", [{"id": "gsm8k_test_0", "correct": 1}]), "--findings", findings,
                     "--benchmark", "gsm8k"]):
        out = run(*command, "--index", index_dir)
        assert out.exit_code == 2, (command, out.stderr)
        assert "Error: the findings name 1 test item(s) or template(s) that index" in out.stderr  # the copied item (the index has the curated KKKKK template)
        assert "the scan used another index\nHint: pass --index with the index the scan used" in out.stderr
    _, metadata = read_findings_with_metadata(findings)
    assert metadata["index"] == str((folder / "idx").resolve())
    moved = tmp_path / "findings.parquet"
    shutil.copy(findings, moved)
    import pyarrow.parquet as pq

    table = pq.read_table(moved)
    meta = json.loads(table.schema.metadata[b"decontam.scan"])
    pq.write_table(table.replace_schema_metadata({b"decontam.scan": json.dumps({**meta, "index": str(tmp_path / "gone")}).encode()}), moved)
    out = run("split", moved, "--out-dir", tmp_path / "s2")
    assert out.exit_code == 2
    assert f"Error: the index the scan used, {tmp_path / 'gone'} (recorded in {moved}), cannot be loaded: index folder" in out.stderr


def test_compare_reads_lm_evaluation_harness_samples(tmp_path, gsm8k):
    """lm-eval's --log_samples file: doc_id is the item's position in the test split (the item's id
    here when the test set has none), exact_match its score, one row per item and filter."""
    test_set = write_jsonl(tmp_path / "gsm8k.jsonl", [{"question": it["question"], "answer": it["answer"]} for it in gsm8k[:50]])
    decontam.build_index(tmp_path / "idx", [f"gsm8k={test_set}"], params=IndexParams(methods=("ngram",)), curated_templates=None)
    corpus = write_jsonl(tmp_path / "train.jsonl", [{"prompt": gsm8k[i]["question"]} for i in (3, 7)])
    findings = tmp_path / "f.parquet"
    assert run("scan", corpus, "--index", tmp_path / "idx", "--out", findings).exit_code == 1
    samples = [{"doc_id": i, "doc": {"question": gsm8k[i]["question"]}, "filter": f, "metrics": ["exact_match"],
                "exact_match": float(i in (3, 7) or i % 2 if f == "strict-match" else 1)}
               for i in range(50) for f in ("strict-match", "flexible-extract")]
    both = write_jsonl(tmp_path / "samples_gsm8k_2026.jsonl", samples)
    refused = run("compare", both, "--findings", findings, "--benchmark", "gsm8k")
    assert refused.exit_code == 2
    assert "holds lm-evaluation-harness samples under 2 filters (flexible-extract, strict-match)" in refused.stderr
    strict = write_jsonl(tmp_path / "strict.jsonl", [s for s in samples if s["filter"] == "strict-match"])
    out = run("compare", strict, "--findings", findings, "--benchmark", "gsm8k", "--json")
    assert out.exit_code == 0, out.stderr
    table = {row["group"].strip(): row for row in json.loads(out.stdout)}
    assert table["contaminated"]["items"] == 2 and table["contaminated"]["mean"] == 1.0
    assert table["clean"]["items"] == 48 and table["clean"]["mean"] == pytest.approx(23 / 48)


def test_report_without_a_recorded_index_falls_back_to_no_index_when_the_shipped_one_is_not_the_scans(judgebench_scan, tmp_path):
    """A CSV findings table without its .meta.json names no index; the shipped one lacks JudgeBench,
    so the report is rendered without an index (as it was before the index check), and says so."""
    from decontam.findings import read_findings, write_findings

    bare = tmp_path / "f.csv"
    write_findings(read_findings(judgebench_scan[3]), bare)
    out = run("report", bare)
    assert out.exit_code == 0, out.stderr
    assert out.stderr.startswith(f"Note: {bare} does not say which index the scan used, and the shipped one is not it")
    assert "judgebench" in out.stdout and "(test text not in the index)" not in out.stdout


def test_findings_metadata_round_trip(judgebench_scan):
    folder, _, _, findings, _ = judgebench_scan
    frame, meta = read_findings_with_metadata(findings)
    assert meta["counts"]["rows_read"] == 21 and meta["index"].endswith("idx") and frame.height > 0


def test_csv_findings_cannot_run_as_spreadsheet_formulas_and_read_back_unchanged(tmp_path):
    """Cells starting with = + - @ (tab, CR) are written after a ' (OWASP's CSV injection advice);
    reading the CSV back takes exactly one ' off, so every value round-trips, ' -led ones included."""
    from decontam.findings import FINDINGS_SCHEMA, read_findings, write_findings

    texts = ['=HYPERLINK("http://x","y")', "+1", "-a list item", "@SUM(A1)", "\tx", "\rx", "'=quoted", "''+two", "'plain", "a=b", "", None]
    rows = [{name: (text if dtype == pl.String else 0.5 if dtype == pl.Float64 else 3) for name, dtype in FINDINGS_SCHEMA.items()}
            for text in texts]
    findings = pl.DataFrame(rows, schema=FINDINGS_SCHEMA)
    write_findings(findings, tmp_path / "f.csv")
    written = pl.read_csv(tmp_path / "f.csv", infer_schema=False)
    assert written["evidence"].to_list() == ["'" + t if i < 8 else t for i, t in enumerate(texts)]
    assert written["field"].to_list() == written["evidence"].to_list()
    assert read_findings(tmp_path / "f.csv").equals(findings)


def test_clean_a_folder_file_by_file(tmp_path, index_dir, gsm8k):
    """`decontam clean FOLDER`: every file the scan read gets its kept and removed rows under its own
    relative path (a file without findings is kept whole), and a manifest beside each removed file."""
    corpus = tmp_path / "corpus"
    (corpus / "part2").mkdir(parents=True)
    a = write_jsonl(corpus / "a.jsonl", [{"prompt": gsm8k[1]["question"]}, {"prompt": "plain words here"}])
    (corpus / "part2" / "b.csv").write_text(f'prompt,n\n"{gsm8k[2]["question"]}",1\nnothing here at all,2\n')
    c = write_jsonl(corpus / "part2" / "c.jsonl", [{"prompt": "nothing to see in this one"}])
    findings = tmp_path / "f.parquet"
    assert run("scan", corpus, "--index", index_dir, "--methods", "ngram", "--out", findings).exit_code == 1
    result = run("clean", corpus, "--findings", findings, "--out", tmp_path / "kept", "--removed", tmp_path / "removed")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (f"5 rows in 3 files of {corpus}: 3 kept in {tmp_path / 'kept'}, 2 removed to {tmp_path / 'removed'} "
                             "(from 2 files)\n")
    lines = a.read_bytes().splitlines(keepends=True)
    assert (tmp_path / "kept" / "a.jsonl").read_bytes() == lines[1] and (tmp_path / "removed" / "a.jsonl").read_bytes() == lines[0]
    assert (tmp_path / "kept" / "part2" / "b.csv").read_text() == "prompt,n\nnothing here at all,2\n"
    assert (tmp_path / "removed" / "part2" / "b.csv").read_text() == f'prompt,n\n"{gsm8k[2]["question"]}",1\n'
    assert (tmp_path / "kept" / "part2" / "c.jsonl").read_bytes() == c.read_bytes()
    assert (tmp_path / "removed" / "part2" / "c.jsonl").read_bytes() == b""
    manifest = json.loads((tmp_path / "removed" / "part2" / "b.csv.manifest.json").read_text())
    assert [r["row"] for r in manifest["removed_rows"]] == [0]
    inside = run("clean", corpus, "--findings", findings, "--out", corpus / "kept", "--removed", tmp_path / "r2")
    assert inside.exit_code == 2 and f"Error: refusing to write into the input folder {corpus}" in inside.stderr
    one = run("clean", corpus, "--findings", findings, "--out", tmp_path / "k3", "--removed", tmp_path / "r3", "--manifest", tmp_path / "m.json")
    assert one.exit_code == 2 and "Error: --manifest names one file" in one.stderr


def test_selecting_findings_by_an_unknown_kind_or_method_is_an_error(tmp_path, index):
    """clean --methods ngrams (or --kinds items, or a score past 1) selected no finding and removed
    nothing, exit 0; split and compare's --kinds found every item clean."""
    from decontam.errors import ParameterError
    from decontam.splits import contaminated_items

    for policy, message in (({"methods": ("ngrams",)}, "--methods: unknown 'ngrams'"), ({"kinds": ("item", "items")}, "--kinds: unknown 'items'"),
                            ({"min_score": 3.0}, r"--min-score 3.0 must be in \[0, 1\]")):
        with pytest.raises(ParameterError, match=message):
            CleanPolicy(**policy)
    with pytest.raises(ParameterError, match="--kinds: unknown 'itm'"):
        contaminated_items(pl.DataFrame(schema=FINDINGS_SCHEMA), index, ("itm",))
