import json
import shutil

import numpy as np
import polars as pl
import pytest
from datasketch import MinHash
from hypothesis import example, given, settings
from hypothesis import strategies as st

import decontam
from decontam.errors import IndexFormatError, InputError, ParameterError
from decontam.index import IndexParams, load_index
from decontam.layers import MinHashParams, NgramParams
from decontam.layers.minhash import signatures
from decontam.scan import ScanOptions
from decontam.testsets import load_test_set, parse_source

from .conftest import INDEX_SOURCES, t0_prompts, write_jsonl


def test_manifest_records_sources_revisions_counts_and_checksums(index):
    m = index.manifest
    assert m["format_version"] == 1 and m["normalization"]
    assert set(m["layers"]) == {"ngram", "minhash", "artifact"}
    assert m["layers"]["ngram"]["ngram_size"] == 8
    gsm = next(b for b in m["benchmarks"] if b["name"] == "gsm8k")
    assert gsm["items"] == 1319 and gsm["revision"].startswith("sha256:") and gsm["source"].endswith("test.jsonl.gz")
    assert set(m["files"]) >= {"parts.parquet", "vocabulary.parquet", "ngram/hashes.npy", "minhash/signatures.npy"}


def test_layers_are_plain_arrays_not_pickles(index_dir):
    for file in index_dir.rglob("*.npy"):
        array = np.load(file, allow_pickle=False)  # raises on an object (pickled) array
        assert array.dtype != object


def test_tampered_file_is_refused(index_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(index_dir, copy)
    hashes = np.load(copy / "ngram/hashes.npy")
    hashes[0] ^= np.uint64(1)
    np.save(copy / "ngram/hashes.npy", hashes)
    with pytest.raises(IndexFormatError, match="ngram/hashes.npy changed"):
        load_index(copy)


def test_extra_file_is_refused(index_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(index_dir, copy)
    (copy / "ngram" / "evil.npy").write_bytes(b"x")
    with pytest.raises(IndexFormatError, match="ngram/evil.npy is not listed"):
        load_index(copy)


def test_other_format_version_is_refused(index_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(index_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="format version 99") as info:
        load_index(copy)
    assert "rebuild" in info.value.hint


def test_folder_that_is_not_an_index(tmp_path):
    with pytest.raises(IndexFormatError, match="is not a decontam index"):
        load_index(tmp_path)
    with pytest.raises(IndexFormatError, match="does not exist"):
        load_index(tmp_path / "nope")


def test_build_refuses_to_overwrite_a_folder_that_is_not_an_index(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(IndexFormatError, match="refusing to overwrite"):
        decontam.build_index(tmp_path, [f"gsm8k={INDEX_SOURCES['gsm8k']}"])
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_scan_with_other_parameters_than_the_index_is_an_error(index, tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": "hello there general kenobi"}])
    with pytest.raises(ParameterError, match="ngram_size=13 but the index was built with ngram_size=8"):
        decontam.scan(str(corpus), index=index, options=ScanOptions(ngram_size=13))
    with pytest.raises(ParameterError, match="min_jaccard=0.3"):
        decontam.scan(str(corpus), index=index, options=ScanOptions(min_jaccard=0.3))
    with pytest.raises(ParameterError, match="not in index"):
        decontam.scan(str(corpus), index=index, options=ScanOptions(methods=("embedding",)))


def test_duplicate_benchmark_names_are_refused():
    with pytest.raises(ParameterError, match="given twice"):
        decontam.build_index(None, [f"g={INDEX_SOURCES['gsm8k']}", f"g={INDEX_SOURCES['mmlu']}"])


def test_bad_parameters_are_refused():
    with pytest.raises(ParameterError, match="ngram_size=1"):
        decontam.build_index(None, [f"g={INDEX_SOURCES['gsm8k']}"], params=IndexParams(ngram=NgramParams(ngram_size=1)))


def test_minhash_signatures_equal_datasketch():
    params = MinHashParams()
    rng = np.random.default_rng(0)
    sets = [rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32) for n in (1, 7, 300)]
    values = np.concatenate(sets)
    group = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    ours = signatures(values, group, len(sets), params.permutations())
    for row, values_of_set in zip(ours, sets):
        reference = MinHash(num_perm=params.num_perm, seed=params.seed, scheme="affine32", hashfunc=lambda v: v)
        reference.update_batch([int(v) for v in values_of_set])
        assert np.array_equal(row, reference.hashvalues)


def _shingles_with_hits_at(text: int, positions: list[int]) -> list[tuple[int, bool]]:
    return [(text, p in positions) for p in range(max(positions) + 1)]


@settings(max_examples=300, deadline=None)
@example(_shingles_with_hits_at(0, [0, 2, 4, 6, 8, 10, 12, 15]) + _shingles_with_hits_at(1, [0, 2, 4, 6, 8, 10, 12, 16]),
         [True, True, False, False])  # 8 hits over 16 shingles make a run, over 17 not
@example(_shingles_with_hits_at(2, [0, 1, 2, 3, 4, 5, 6, 15, 17, 18, 19, 20, 21, 22, 30]),
         [False, False, True, False])  # two runs that share their one hit, none between them: one region
@given(st.sampled_from([[True, True, True, False], [True, False], [True, False, False]]).flatmap(  # hits 3/4, 1/2, 1/3 of shingles
           lambda pool: st.lists(st.tuples(st.integers(0, 3), st.sampled_from(pool)), min_size=8, max_size=120)),
       st.lists(st.booleans(), min_size=4, max_size=4))
def test_property_dense_regions_are_the_merged_runs_of_close_hits(shingles, long_text):
    """``_dense_regions`` against its definition: every REGION_MIN_HITS consecutive hits of one long
    text within REGION_WINDOW shingles make a run; overlapping runs of a text merge into one region."""
    from decontam.layers.minhash import REGION_MIN_HITS, REGION_WINDOW, _dense_regions

    text_ix = np.sort(np.array([t for t, _ in shingles], dtype=np.int64))
    hit = np.array([h for _, h in shingles], dtype=bool)
    hits = [p for p in range(len(hit)) if hit[p] and long_text[text_ix[p]]]
    runs = [(hits[j], hits[j + REGION_MIN_HITS - 1]) for j in range(len(hits) - REGION_MIN_HITS + 1)
            if hits[j + REGION_MIN_HITS - 1] - hits[j] < REGION_WINDOW and text_ix[hits[j]] == text_ix[hits[j + REGION_MIN_HITS - 1]]]
    merged: list[list[int]] = []
    for lo, hi in runs:
        if merged and lo <= merged[-1][1] and text_ix[lo] == text_ix[merged[-1][0]]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    first, last = _dense_regions(text_ix, hit, np.array(long_text))
    assert list(zip(first.tolist(), last.tolist())) == [tuple(m) for m in merged]


def test_a_near_duplicate_inside_a_long_text_is_found_in_its_region(tmp_path, index):
    """A test question with one word in ten replaced is a near-duplicate MinHash finds as a segment of
    its own; set between long passages it was a tiny share of the text's shingles and went unfound.
    Its dense region is matched now, and the evidence is that region."""
    from decontam.readers import TEXT_RECORD_BYTES

    question = index.parts.filter((pl.col("benchmark") == "gsm8k") & (pl.col("item_id") == "gsm8k_test_40"))["text"][0]
    words = question.split()
    edited = " ".join("the" if i % 10 == 5 else word for i, word in enumerate(words))
    passages = list(t0_prompts()[:80])
    long_text = "\n\n".join(passages[:20] + [edited] + passages[20:40])
    assert len(long_text) < TEXT_RECORD_BYTES
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": edited}, {"text": long_text}, {"text": "\n\n".join(passages[40:80])}])
    options = ScanOptions(methods=("ngram", "minhash"))
    found = decontam.scan(str(corpus), index=index, options=options).findings
    assert found.filter(pl.col("method") == "ngram").is_empty()  # too edited for 8-grams
    near = found.filter(pl.col("method") == "minhash").select("row", "item_id", "span_start", "span_end", "evidence")
    assert near["row"].to_list() == [0, 1] and set(near["item_id"]) == {"gsm8k_test_40"}
    alone, inside = near.row(0, named=True), near.row(1, named=True)
    assert alone["span_start"] == 0 and alone["span_end"] == len(edited)  # the whole segment
    start, end = long_text.index(edited), long_text.index(edited) + len(edited)  # the region: the item, give or take a few words
    assert abs(inside["span_start"] - start) < 40 and abs(inside["span_end"] - end) < 40, (start, end, inside)


def test_a_scan_does_not_import_datasketch(index_dir, tmp_path):
    """The index keeps its MinHash permutations: a scan needs neither datasketch nor the scipy it imports."""
    import subprocess
    import sys

    stored = np.load(index_dir / "minhash" / "permutations.npy")
    assert np.array_equal(stored, MinHashParams().permutations())
    corpus = tmp_path / "c.jsonl"
    question = load_index(index_dir).parts.filter(pl.col("benchmark") == "gsm8k")["text"][0]
    corpus.write_text(json.dumps({"prompt": question}) + "\n")
    code = ("import sys, decontam; from decontam.scan import ScanOptions; "
            f"r = decontam.scan({str(corpus)!r}, index={str(index_dir)!r}, options=ScanOptions(methods=('minhash',))); "
            "print(r.findings.height, 'datasketch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "False"]


def test_an_index_from_before_the_stored_permutations_scans_the_same(index_dir, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(index_dir, old)
    (old / "minhash" / "permutations.npy").unlink()
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["files"]["minhash/permutations.npy"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"prompt": t + " (edited)"}) + "\n" for t in load_index(index_dir).parts["text"][:50]))
    found = [decontam.scan(str(corpus), index=path, options=ScanOptions(methods=("minhash",))).findings for path in (index_dir, old)]
    assert found[0].height > 0 and found[0].equals(found[1])


def test_generic_short_questions_are_not_indexed(index):
    # "Which of the following statements is true?" is the whole question of several MMLU items.
    grams = index.layers["ngram"]
    parts = index.parts
    generic = parts.filter(parts["text"].str.strip_chars() == "Which of the following statements is true?")
    assert generic.height >= 2
    part_ix = [i for i, t in enumerate(parts["text"].to_list()) if t.strip() == "Which of the following statements is true?"]
    assert all(grams.part_ngrams[i] == 0 for i in part_ix)


def test_every_humaneval_item_is_found_verbatim(index, tmp_path):
    """Items mostly made of example lists ("[5, 3, 5, 2, 3, 3, 9, 0, 123]") are indexed by their words."""
    from .conftest import read_jsonl

    problems = read_jsonl(INDEX_SOURCES["humaneval"])
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "Complete this.", "chosen": p["prompt"] + p["canonical_solution"]}
                                               for p in problems])
    found = decontam.scan(str(corpus), index=index).findings
    hits = set(found.select("row", "item_id").iter_rows())
    assert [p["task_id"] for row, p in enumerate(problems) if (row, p["task_id"]) not in hits] == []
    humaneval = next(b for b in index.manifest["benchmarks"] if b["name"] == "humaneval")
    assert humaneval["items_not_indexed"] == {"count": 0, "examples": []}


def test_items_that_cannot_be_found_are_named(tmp_path):
    from typer.testing import CliRunner

    from decontam.cli import app

    source = write_jsonl(tmp_path / "t.jsonl", [{"id": "q1", "question": "What is the capital city of the country France?"},
                                               {"id": "q2", "question": "2 + 2 = ?"}])
    result = CliRunner().invoke(app, ["index", "build", str(tmp_path / "idx"), "--source", f"tiny={source}", "--methods", "ngram"])
    assert result.exit_code == 0, result.stderr
    assert ("Warning: tiny: 1 item(s) have no part long enough to index and cannot be found (e.g. q2)" in result.stderr)
    entry = json.loads((tmp_path / "idx" / "manifest.json").read_text())["benchmarks"][0]
    assert entry["items_not_indexed"] == {"count": 1, "examples": ["q2"]}
    info = CliRunner().invoke(app, ["index", "info", str(tmp_path / "idx")])
    assert "(1 items not indexed: no part long enough)" in info.stdout


def test_rows_without_text_and_shared_ids_are_named_not_fatal(tmp_path):
    """A row whose item fields are empty or null (an image-only item) is no item: left out and named,
    where it used to stop the build ("cannot tell which fields hold the test item"), mapped or not; an
    id that two items share is named, since their findings look alike."""
    from typer.testing import CliRunner

    from decontam.cli import app

    rows = [{"id": "q1", "question": "What is the capital city of the country France?", "answer": "Paris"},
            {"id": "q1", "question": "Which river flows through the capital city of France?", "answer": "Seine"},
            {"id": "q3", "question": None, "answer": ""}, {"id": "q4", "question": "", "answer": None}]
    source = write_jsonl(tmp_path / "t.jsonl", rows)
    result = CliRunner().invoke(app, ["index", "build", str(tmp_path / "idx"), "--source", f"geo={source}", "--methods", "ngram"])
    assert result.exit_code == 0, result.stderr
    assert "geo: 2 items, 2 parts indexed" in result.stderr
    assert "Warning: geo: 1 id(s) belong to more than one item; their findings will look alike (e.g. q1)" in result.stderr
    assert "Warning: geo: 2 row(s) have nothing in their item fields (empty or null) and are not items (e.g. q3, q4)" in result.stderr
    entry = json.loads((tmp_path / "idx" / "manifest.json").read_text())["benchmarks"][0]
    assert entry["rows_without_text"] == {"count": 2, "examples": ["q3", "q4"]}
    info = CliRunner().invoke(app, ["index", "info", str(tmp_path / "idx")])
    assert "(2 rows without text left out; 1 ids shared by several items)" in info.stdout
    mapped = load_test_set(parse_source(f"geo={source}", {"question": "question", "answer": "answer"}))
    assert [i.item_id for i in mapped.items] == ["q1", "q1"] and mapped.rows_without_text == ["q3", "q4"]
    empty = write_jsonl(tmp_path / "e.jsonl", rows[2:])
    with pytest.raises(InputError, match=r"has no row with text in its item fields \(2 rows, all empty\)"):
        load_test_set(parse_source(f"geo={empty}"))


def test_a_test_set_with_nothing_to_index_is_an_error_not_a_traceback(tmp_path):
    """Every part too short (a set of one-word answers): each layer had nothing to build from, and the
    n-gram layer died in a polars gather. Odd values where choices are looked for (an ``options``
    number) are not choices."""
    source = write_jsonl(tmp_path / "t.jsonl", [{"question": "Paris"}, {"question": "Rome?", "options": 5}])
    with pytest.raises(InputError, match=r"nothing to index: no part of tiny \(2 in all\) has 3\+ words") as info:
        decontam.build_index(tmp_path / "idx", [f"tiny={source}"])
    assert "--min-part-tokens" in info.value.hint
    assert [i.parts[0].text for i in load_test_set(parse_source(f"tiny={source}")).items] == ["Paris", "Rome?"]
