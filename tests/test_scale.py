"""Shards, worker processes, resuming after kill -9, remote paths, bounded memory, and Ray."""

import contextlib
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import decontam
from decontam.engines import Shard, iter_chunks, plan_shards
from decontam.errors import InputError
from decontam.findings import SORT_KEYS

from .conftest import DATA, t0_prompts, write_jsonl

KEY = SORT_KEYS + ["score", "span_start", "span_end"]


def _corpus_rows(gsm8k, n, every=25, seed_offset=0):
    background = [json.loads(line) for line in gzip.open(DATA / "corpora/hh_rlhf/harmless-base_test.jsonl.gz", "rt")]
    rows = []
    for i in range(n):
        if i % every == 0:
            rows.append({"id": f"r{i}", "prompt": gsm8k[(i // every + seed_offset) % len(gsm8k)]["question"], "chosen": "ok"})
        else:
            rows.append(background[(i + seed_offset) % len(background)])
    return rows


@pytest.fixture(scope="module")
def many_files(tmp_path_factory, gsm8k):
    folder = tmp_path_factory.mktemp("many")
    for f in range(6):
        write_jsonl(folder / f"part-{f:02d}.jsonl", _corpus_rows(gsm8k, 300, seed_offset=f * 7))
    return folder


def _normalize(findings):
    return findings.select(KEY).sort(KEY)


def test_big_file_byte_range_shards_keep_row_numbers(tmp_path, index, gsm8k):
    corpus = write_jsonl(tmp_path / "big.jsonl", _corpus_rows(gsm8k, 2000))
    shards = plan_shards([str(corpus)], shard_bytes=200_000)
    assert len(shards) > 5
    assert shards[0].first_row == 0 and all(a.byte_range[1] == b.byte_range[0] for a, b in zip(shards, shards[1:]))
    whole = decontam.scan(str(corpus), index=index, shard_bytes=1 << 40).findings
    sharded = decontam.scan(str(corpus), index=index, shard_bytes=200_000).findings
    assert whole.height > 0 and _normalize(whole).equals(_normalize(sharded))
    assert set(whole.filter(pl.col("method") == "ngram")["row"]) == set(range(0, 2000, 25))


def test_json_array_is_one_shard_with_array_rows(tmp_path, index, gsm8k):
    rows = _corpus_rows(gsm8k, 300)
    (tmp_path / "c.json").write_text(json.dumps(rows, indent=1))
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert len(plan_shards([str(tmp_path / "c.json")], shard_bytes=1_000)) == 1  # a byte range of an array is no corpus
    array = decontam.scan(str(tmp_path / "c.json"), index=index, shard_bytes=1_000).findings
    lines = decontam.scan(str(tmp_path / "c.jsonl"), index=index).findings
    assert array.height > 0 and _normalize(array).drop("source").equals(_normalize(lines).drop("source"))


def test_a_big_csv_is_scanned_in_pieces_of_whole_records_by_all_workers(tmp_path, index, index_dir, gsm8k):
    import csv

    rows = _corpus_rows(gsm8k, 300)
    keys = sorted({key for row in rows for key in row})
    with open(tmp_path / "c.csv", "w", newline="") as handle:  # hh-rlhf transcripts: quoted fields with line breaks
        writer = csv.writer(handle)
        writer.writerow(keys)
        for i, row in enumerate(rows):
            writer.writerow([row.get(k, "") for k in keys] + (["one field too many"] if i == 250 else []))
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({k: r.get(k, "") for k in keys}) + "\n" for r in rows))
    pieces = list(iter_chunks(plan_shards([str(tmp_path / "c.csv")], shard_bytes=20_000)[0]))
    assert len(pieces) > 5 and [p.first_row for p, _ in pieces] == sorted({p.first_row for p, _ in pieces})
    assert all(payload.startswith(",".join(keys).encode() + b"\r\n") for _, payload in pieces)  # each behind the header
    whole = decontam.scan(str(tmp_path / "c.csv"), index=index)  # one process: the file read whole
    split = decontam.scan(str(tmp_path / "c.csv"), index=str(index_dir), shard_bytes=20_000, workers=2)
    lines = decontam.scan(str(tmp_path / "c.jsonl"), index=index).findings
    assert whole.findings.height > 0 and _normalize(split.findings).equals(_normalize(whole.findings))
    assert _normalize(whole.findings).filter(pl.col("row") != 250).drop("source").equals(
        _normalize(lines).filter(pl.col("row") != 250).drop("source"))
    line_of_250 = 1 + sum(1 + sum(str(r.get(k, "")).count("\n") for k in keys) for r in rows[:250]) + 1
    assert split.counts.malformed_examples == whole.counts.malformed_examples == [
        {"location": f"{tmp_path / 'c.csv'}:251", "problem": f"{len(keys) + 1} fields, the header has {len(keys)} (line {line_of_250} of the file)"}]


def test_workers_start_only_where_the_input_pays_for_them(tmp_path, monkeypatch):
    from decontam.engines.local import workers_worth_starting

    monkeypatch.delenv("DECONTAM_MB_PER_WORKER")
    mb = 1 << 20
    small = [Shard(str(tmp_path / "c.jsonl"), byte_range=(i * 4 * mb, (i + 1) * 4 * mb)) for i in range(7)]  # 28 MB
    assert workers_worth_starting(small, ("ngram", "minhash")) == 1  # under 32 MB: no pool
    assert workers_worth_starting(small * 2, ("ngram", "minhash")) == 7  # a pool, 8 MB a worker
    assert workers_worth_starting(small * 8, ("ngram", "minhash")) == 28
    assert workers_worth_starting(small, ("ngram", "embedding")) == 14
    assert workers_worth_starting(small[:1], ("ngram", "embedding")) == 2
    assert workers_worth_starting([Shard("s3://bucket/c.jsonl")], ("ngram",)) == 1  # unknown size: as many as shards
    assert workers_worth_starting([Shard("s3://bucket/a.jsonl"), Shard("s3://bucket/b.jsonl")], ("ngram",)) == 2
    assert workers_worth_starting([Shard("-", chunk_bytes=mb)], ("ngram",)) > 1000  # a stream of unknown length: any number
    monkeypatch.setenv("DECONTAM_MB_PER_WORKER", "0")
    assert workers_worth_starting(small, ("ngram",)) == 7
    monkeypatch.setenv("DECONTAM_MB_PER_WORKER", "12")
    assert workers_worth_starting(small[:5], ("ngram",)) == 1  # 20 MB: under two workers' worth
    assert workers_worth_starting(small, ("ngram",)) == 2


def test_default_shard_size_follows_the_input(tmp_path):
    from decontam.engines import default_shard_bytes

    assert default_shard_bytes([str(write_jsonl(tmp_path / "c.jsonl", [{"text": "x"}]))]) == 4 << 20
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as handle:
        handle.truncate(1 << 30)  # sparse: 1 GB -> 16 MB shards, 64 of them
    assert default_shard_bytes([str(big)]) == 16 << 20


def test_default_workers_are_the_cores_this_process_may_use(tmp_path, index_dir, monkeypatch):
    """A container limited to 3 CPUs on a bigger host: the CLI asks for 3 workers, not os.cpu_count()."""
    from decontam import cli
    from decontam.engines.local import available_cores

    assert 1 <= available_cores() <= (os.cpu_count() or 1)
    monkeypatch.setattr(cli, "available_cores", lambda: 3)
    asked = []
    monkeypatch.setattr(cli, "_scan_with_progress", lambda sources, index, options, **engine: (
        asked.append(engine["workers"]), decontam.scan(sources, index=index, options=options))[1])
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "nothing to see here, just a row of text"}])
    for extra in ([], ["--workers", "2"]):
        result = CliRunner().invoke(cli.app, ["scan", str(corpus), "--index", str(index_dir), *extra])
        assert result.exit_code == 0, result.stderr
    assert asked == [3, 2]


def test_each_worker_gets_its_share_of_the_cores_this_process_may_use(index_dir, many_files, monkeypatch):
    """6 cores for 2 workers: 3 threads each (polars, torch), whatever os.cpu_count() says."""
    from decontam.engines import local

    class Started(Exception):
        pass

    def pool(*args, **kwargs):
        raise Started(os.environ["OMP_NUM_THREADS"], os.environ["POLARS_MAX_THREADS"])

    monkeypatch.setattr(local, "available_cores", lambda: 6)
    monkeypatch.setattr(local, "ProcessPoolExecutor", pool)
    monkeypatch.setenv("DECONTAM_MB_PER_WORKER", "0")
    before = os.environ.get("OMP_NUM_THREADS")
    with pytest.raises(Started) as started:
        decontam.scan(str(many_files), index=str(index_dir), workers=2)
    assert started.value.args == ("3", "3")
    assert os.environ.get("OMP_NUM_THREADS") == before  # put back as it was


def test_no_more_workers_start_than_the_memory_holds(index_dir, many_files, monkeypatch):
    """8 workers asked for with memory for about 3 of them: 3 start, the user is told why, and the
    findings are those of one worker."""
    from decontam.engines import local

    one = decontam.scan(str(many_files), index=str(index_dir), workers=1)
    each = local.worker_memory_mb(decontam.load_index(index_dir), ("ngram", "minhash", "artifact"))
    monkeypatch.setattr(local, "available_memory_mb", lambda: 3.5 * each)
    monkeypatch.setenv("DECONTAM_MB_PER_WORKER", "0")
    started, notes = [], []
    real_pool = local.ProcessPoolExecutor
    monkeypatch.setattr(local, "ProcessPoolExecutor", lambda n, **kw: started.append(n) or real_pool(n, **kw))
    capped = decontam.scan(str(many_files), index=str(index_dir), workers=8, note=notes.append)
    assert started == [3]
    assert notes == [(f"Starting 3 worker(s), not 6: each takes ~{each / 1024:.1f} GB and {3.5 * each / 1024:.1f} GB "
                      "of memory is available (--workers to choose)")]
    assert _normalize(capped.findings).equals(_normalize(one.findings))
    monkeypatch.undo()
    assert local.available_memory_mb() > 0  # this machine's: MemAvailable, or its container's limit


def test_available_memory_counts_the_limits_of_the_cgroups_above(tmp_path):
    """A Slurm job limited to 4 GiB (cgroup v2, the limit two levels above the process's own cgroup)
    on a host with 20 GiB free: 3 GiB left once it uses 1; a Docker container (cgroup v1) likewise."""
    from decontam.engines.local import available_memory_mb

    gib = 1 << 30
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal: {64 * gib // 1024} kB\nMemAvailable: {20 * gib // 1024} kB\n")
    root = tmp_path / "cgroup"
    job = root / "system.slice" / "slurmstepd.scope" / "job_42"
    (job / "step_0").mkdir(parents=True)
    (job / "memory.max").write_text(f"{4 * gib}\n")
    (job / "memory.current").write_text(f"{gib}\n")
    (job / "step_0" / "memory.max").write_text("max\n")
    (job / "step_0" / "memory.current").write_text(f"{gib}\n")
    v2 = tmp_path / "v2"
    v2.write_text("0::/system.slice/slurmstepd.scope/job_42/step_0\n")
    assert available_memory_mb(str(meminfo), str(v2), str(root)) == 3 * 1024
    container = root / "memory" / "docker" / "abc"
    container.mkdir(parents=True)
    (container / "memory.limit_in_bytes").write_text(f"{2 * gib}\n")
    (container / "memory.usage_in_bytes").write_text(f"{gib // 2}\n")
    v1 = tmp_path / "v1"
    v1.write_text("5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n")
    assert available_memory_mb(str(meminfo), str(v1), str(root)) == 1.5 * 1024
    assert available_memory_mb(str(meminfo), str(tmp_path / "none"), str(root)) == 20 * 1024  # no cgroup file
    assert available_memory_mb(str(tmp_path / "none"), str(tmp_path / "none"), str(root)) is None


def test_two_workers_equal_one(index_dir, many_files):
    one = decontam.scan(str(many_files), index=index_dir, workers=1)
    two = decontam.scan(str(many_files), index=index_dir, workers=2)
    assert one.findings.height > 0
    assert _normalize(one.findings).equals(_normalize(two.findings))
    assert one.counts.rows_read == two.counts.rows_read == 1800


def test_a_scan_collects_garbage_less_often_and_gives_the_setting_back(tmp_path, index, gsm8k, monkeypatch):
    import gc
    import importlib

    from decontam.engines import GC_THRESHOLD

    scan_module = importlib.import_module("decontam.scan")  # the package's ``scan`` is the function
    seen = []
    run_shard = scan_module.run_shard

    def watched(*args, **kwargs):
        seen.append(gc.get_threshold()[0])
        return run_shard(*args, **kwargs)

    monkeypatch.setattr(scan_module, "run_shard", watched)
    write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[0]["question"]}])
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        assert decontam.scan(str(tmp_path / "c.jsonl"), index=index).findings.height > 0
        assert seen == [GC_THRESHOLD] and gc.get_threshold() == (700, 10, 10)
        gc.set_threshold(0)  # the caller's "never" stays "never"
        decontam.scan(str(tmp_path / "c.jsonl"), index=index)
        assert seen[-1] == 0 and gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)


def test_small_files_share_batches_and_keep_their_own_counts(tmp_path, index, gsm8k, monkeypatch):
    import decontam.engines as engines

    folder = tmp_path / "small"
    folder.mkdir()
    for f in range(12):
        rows = [{"prompt": gsm8k[f]["question"]} if i == f % 3 else {"text": f"plain row {i} of file {f}"} for i in range(3)]
        write_jsonl(folder / f"part-{f:02d}.jsonl", rows)
    (folder / "part-05.jsonl").write_text((folder / "part-05.jsonl").read_text() + "{not json\n\n")
    shared = decontam.scan(str(folder), index=index)
    monkeypatch.setattr(engines, "WORKER_GROUP_BYTES", 300)  # a few files per task: the groups spread over the workers
    pooled = decontam.scan(str(folder), index=index, workers=2)
    monkeypatch.setattr(engines, "SMALL_FILE_BYTES", 0)  # each file alone, in batches of its own
    alone = decontam.scan(str(folder), index=index)
    assert shared.findings.select("source", "row").unique().height == 12
    assert _normalize(shared.findings).equals(_normalize(alone.findings)) and _normalize(pooled.findings).equals(_normalize(alone.findings))
    assert shared.counts == alone.counts == pooled.counts and shared.counts.rows_malformed == 2
    (folder / "part-07.jsonl").write_text("{not json\n")  # a file none of whose rows can be read is still named
    with pytest.raises(InputError, match=r"the only row of .*part-07.jsonl could not be read") as refused:
        decontam.scan(str(folder), index=index)
    rest = shared.findings.filter(~pl.col("source").str.ends_with("part-07.jsonl"))
    assert _normalize(refused.value.result.findings).equals(_normalize(rest))  # the scan of the other files, kept


def test_parquet_row_group_shards(tmp_path, index, gsm8k):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": str(i), "prompt": gsm8k[i]["question"] if i % 10 == 0 else f"ordinary row {i} of text"} for i in range(500)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet", row_group_size=50)
    shards = plan_shards([str(tmp_path / "c.parquet")], shard_bytes=1)
    assert len(shards) == 10 and shards[3].first_row == 150
    whole = decontam.scan(str(tmp_path / "c.parquet"), index=index).findings
    sharded = decontam.scan(str(tmp_path / "c.parquet"), index=index, shard_bytes=1).findings
    assert _normalize(whole).equals(_normalize(sharded)) and set(whole["row"]) == set(range(0, 500, 10))


def test_resume_after_kill_9(tmp_path, index_dir, many_files):
    work = tmp_path / "work"
    out = tmp_path / "resumed.parquet"
    command = [shutil.which("decontam") or "decontam", "scan", str(many_files), "--index", str(index_dir),
               "--workers", "1", "--work-dir", str(work), "--out", str(out)]
    crashed = subprocess.run(command, env={**os.environ, "DECONTAM_FAULT_AFTER_SHARDS": "2"}, capture_output=True, text=True)
    assert crashed.returncode == -signal.SIGKILL
    assert len(list(work.glob("*.json"))) == 1 + 2  # scan.json + two finished shards
    assert not out.exists()
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 1, resumed.stderr
    assert len(list(work.glob("*.json"))) == 1 + 6
    reference = decontam.scan(str(many_files), index=index_dir).findings
    assert _normalize(pl.read_parquet(out)).equals(_normalize(reference))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=50), last_newline=st.booleans(),
       size=st.integers(1, 120))
def test_streamed_gz_pieces_cut_every_line_once(tmp_path, lines, last_newline, size):
    data = b"\n".join(lines) + (b"\n" if last_newline and lines else b"")
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(data))
    pieces = list(iter_chunks(Shard(str(tmp_path / "c.jsonl.gz"), chunk_bytes=size)))
    assert b"".join(payload for _, payload in pieces) == data
    for n, (piece, payload) in enumerate(pieces):
        assert data[piece.byte_range[0] : piece.byte_range[1]] == payload
        assert piece.first_row == data[: piece.byte_range[0]].count(b"\n")  # the whole file's row numbers
        assert len(payload) >= size or n == len(pieces) - 1
        assert payload.endswith(b"\n") or n == len(pieces) - 1


@pytest.mark.parametrize("suffix", [".zst", ".xz"])
def test_other_compressions_are_streamed_in_pieces_too(tmp_path, index, gsm8k, suffix):
    from decontam.readers import open_compressed

    corpus = tmp_path / f"c.jsonl{suffix}"
    with open_compressed(corpus, "wb") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in _corpus_rows(gsm8k, 600)).encode())
    assert plan_shards([str(corpus)], shard_bytes=50_000)[0].chunk_bytes == 50_000
    whole = decontam.scan(str(corpus), index=index, shard_bytes=1 << 40).findings
    pieces = decontam.scan(str(corpus), index=index, shard_bytes=50_000).findings
    assert whole.height > 0 and _normalize(whole).equals(_normalize(pieces))
    assert set(whole.filter(pl.col("method") == "ngram")["row"]) == set(range(0, 600, 25))


def test_one_big_gz_file_is_scanned_in_pieces_by_all_workers(tmp_path, index_dir, gsm8k):
    corpus = tmp_path / "big.jsonl.gz"
    with gzip.open(corpus, "wt") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in _corpus_rows(gsm8k, 1500)) + "{broken\n")
    shards = plan_shards([str(corpus)], shard_bytes=100_000)
    assert len(shards) == 1 and shards[0].chunk_bytes == 100_000
    whole = decontam.scan(str(corpus), index=index_dir, shard_bytes=1 << 40)
    pieces = decontam.scan(str(corpus), index=index_dir, shard_bytes=100_000, workers=2)
    assert whole.findings.height > 0 and _normalize(whole.findings).equals(_normalize(pieces.findings))
    assert set(whole.findings.filter(pl.col("method") == "ngram")["row"]) == set(range(0, 1500, 25))
    assert whole.counts == pieces.counts and pieces.counts.malformed_examples[0]["location"] == f"{corpus}:1501"
    big = tmp_path / "bigger.jsonl.gz"  # a crash midway: the rerun reads the file again and scans only the pieces left
    with gzip.open(big, "wt") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in _corpus_rows(gsm8k, 6000)))
    work = tmp_path / "work"
    command = [shutil.which("decontam") or "decontam", "scan", str(big), "--index", str(index_dir), "--workers", "2",
               "--shard-mb", "1", "--work-dir", str(work), "--out", str(tmp_path / "f.parquet")]
    crashed = subprocess.run(command, env={**os.environ, "DECONTAM_FAULT_AFTER_SHARDS": "2"}, capture_output=True, text=True)
    assert crashed.returncode == -signal.SIGKILL
    assert len(list(work.glob("*.json"))) == 1 + 2
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 1, resumed.stderr[-2000:]
    pieces_done = len(list(work.glob("*.json"))) - 1
    assert pieces_done == len(list(iter_chunks(Shard(str(big), chunk_bytes=1 << 20)))) > 2
    reference = decontam.scan(str(big), index=index_dir).findings
    assert _normalize(pl.read_parquet(tmp_path / "f.parquet")).equals(_normalize(reference))


def test_a_big_text_file_is_scanned_in_pieces_of_whole_records_by_all_workers(tmp_path, index_dir, gsm8k):
    """Plain text is cut into records of whole paragraphs; pieces of whole records go to the workers,
    and the findings, rows and counts equal those of one process reading the file whole."""
    from decontam.readers import TEXT_RECORD_BYTES

    prompts = t0_prompts()
    paragraphs = [prompts[i % len(prompts)] for i in range(3_000)]
    for k in range(12):
        paragraphs.insert(k * 250, gsm8k[k]["question"])
    corpus = tmp_path / "crawl.txt"
    corpus.write_text("\n\n".join(paragraphs) + "\n")
    assert corpus.stat().st_size > 10 * TEXT_RECORD_BYTES
    shards = plan_shards([str(corpus)], shard_bytes=200_000)
    assert len(shards) == 1 and shards[0].chunk_bytes == 200_000 and len(list(iter_chunks(shards[0]))) > 3
    whole = decontam.scan(str(corpus), index=index_dir, shard_bytes=1 << 40)
    pieces = decontam.scan(str(corpus), index=index_dir, shard_bytes=200_000, workers=2)
    assert _normalize(whole.findings).equals(_normalize(pieces.findings)) and whole.counts == pieces.counts
    items = whole.findings.filter(pl.col("method") == "ngram")
    assert sorted(items["item_id"].unique()) == sorted(f"gsm8k_test_{k}" for k in range(12))


def test_a_worker_that_dies_stops_the_scan_with_an_error(tmp_path, index_dir, many_files):
    """multiprocessing.Pool would replace the dead worker and wait forever for its shard."""
    work = tmp_path / "work"
    command = [shutil.which("decontam") or "decontam", "scan", str(many_files), "--index", str(index_dir),
               "--workers", "2", "--work-dir", str(work)]
    died = subprocess.run(command, env={**os.environ, "DECONTAM_FAULT_KILL_WORKER": "1"}, capture_output=True, text=True,
                          timeout=300, check=False)
    assert died.returncode == 2, died.stderr[-2000:]
    assert "Error: a worker process of the scan died (killed, out of memory) or could not start" in died.stderr
    assert "run the same command again to scan the rest" in died.stderr
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 1, resumed.stderr[-2000:]


def _workers_of(pid: int) -> list[int]:
    """The spawned pool workers among a process's children (Linux /proc)."""
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            children += [int(c) for c in handle.read().split()]
    workers = []
    for child in children:
        with contextlib.suppress(OSError), open(f"/proc/{child}/cmdline", "rb") as handle:
            if b"spawn_main" in handle.read():
                workers.append(child)
    return workers


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return "\tZ" not in next(line for line in handle if line.startswith("State:"))
    except (OSError, StopIteration):
        return False


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"), reason="needs Linux /proc children")
def test_workers_end_when_the_scan_is_killed(index_dir, many_files):
    """Killed by a CI timeout (SIGTERM) or kill -9, the scan cannot tell its workers; they waited for
    work forever, each holding the index (and the model)."""
    command = [shutil.which("decontam") or "decontam", "scan", str(many_files), "--index", str(index_dir), "--workers", "2"]
    scan, workers = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), []
    try:
        deadline = time.monotonic() + 60
        while not (workers := _workers_of(scan.pid)) and scan.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert workers, "no worker started"  # (the pool starts a second one only while the first is busy)
        scan.send_signal(signal.SIGKILL)
        scan.wait()
        deadline = time.monotonic() + 10
        while any(_running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_running(w) for w in workers)
    finally:  # (a failed test leaves no process behind)
        scan.kill()
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGKILL)


def test_an_index_changed_under_the_workers_is_an_error_not_a_hang(tmp_path, index_dir, many_files):
    from decontam.errors import IndexFormatError

    copy = tmp_path / "index"
    shutil.copytree(index_dir, copy)
    loaded = decontam.load_index(copy)
    hashes = copy / "ngram" / "hashes.npy"
    hashes.write_bytes(hashes.read_bytes()[:-8] + bytes(8))
    with pytest.raises(IndexFormatError, match="ngram/hashes.npy changed") as raised:
        decontam.scan(str(many_files), index=loaded, workers=2)
    assert raised.value.hint == "the files were changed or damaged; rebuild the index or fetch it again"


def test_workers_take_the_gpus_in_turn(index_dir):
    import multiprocessing

    from decontam.engines import local

    assert [local.worker_device(None, k, 4) for k in range(5)] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0"]
    assert local.worker_device("cuda", 5, 2) == "cuda:1"
    assert local.worker_device("cuda:3", 0, 4) == "cuda:3"  # a device asked for is kept
    assert local.worker_device("cpu", 1, 4) == "cpu"
    assert local.worker_device(None, 1, 1) is None  # one GPU or none: the embedder's own choice
    ordinals = multiprocessing.get_context("spawn").Value("i", 0)
    seen = []
    for _ in range(3):  # what each pool worker's initializer does
        local._init_worker(str(index_dir), None, ordinals, {}, os.getppid())
        seen.append(local._WORKER_ORDINAL)
    assert seen == [0, 1, 2]


def test_work_dir_of_another_scan_is_refused(tmp_path, index_dir, many_files, gsm8k):
    decontam.scan(str(many_files), index=index_dir, work_dir=tmp_path / "w")
    other = write_jsonl(tmp_path / "other.jsonl", [{"text": "x y z"}])
    with pytest.raises(decontam.ParameterError, match="belongs to another scan"):
        decontam.scan(str(other), index=index_dir, work_dir=tmp_path / "w")


def test_remote_and_stdin_streams_are_scanned_in_pieces_by_all_workers(tmp_path, index_dir, gsm8k):
    """The workers cannot open a memory:// file (nor stdin): the scan reads it and sends pieces."""
    fsspec = pytest.importorskip("fsspec")
    rows = _corpus_rows(gsm8k, 1500, seed_offset=5)
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    url = f"memory:///decontam-test-{uuid.uuid4().hex[:8]}/big.jsonl.gz"
    fsspec.filesystem("memory").pipe(url.removeprefix("memory://"), gzip.compress(data))
    local = write_jsonl(tmp_path / "big.jsonl", rows)
    reference = _normalize(decontam.scan(str(local), index=index_dir).findings).drop("source")
    assert plan_shards([url], shard_bytes=200_000) == [Shard(url, chunk_bytes=200_000)]
    remote = decontam.scan(url, index=index_dir, workers=2, shard_bytes=200_000)
    assert _normalize(remote.findings).drop("source").equals(reference) and remote.counts.rows_read == 1500
    command = [shutil.which("decontam") or "decontam", "scan", "-", "--index", str(index_dir), "--workers", "2",
               "--shard-mb", "1", "--out", str(tmp_path / "stdin.parquet")]
    piped = subprocess.run(command, input=data, capture_output=True, timeout=300)
    assert piped.returncode == 1, piped.stderr[-2000:]
    assert _normalize(pl.read_parquet(tmp_path / "stdin.parquet")).drop("source").equals(reference)
    with pytest.raises(decontam.ParameterError, match="a scan of stdin cannot be resumed"):
        decontam.scan("-", index=index_dir, work_dir=tmp_path / "work")


def test_a_dataset_is_scanned_in_pieces_by_all_workers(tmp_path, index_dir, gsm8k):
    import datetime

    datasets = pytest.importorskip("datasets")
    rows = _corpus_rows(gsm8k, 900, seed_offset=2)
    texts = [{"prompt": r.get("prompt", ""), "chosen": r["chosen"]} for r in rows]
    extra = [{**t, "n": i, "when": datetime.datetime(2024, 1, 1), "blob": b"\x00binary"} for i, t in enumerate(texts)]
    datasets.Dataset.from_list(extra).save_to_disk(tmp_path / "ds")
    assert plan_shards([str(tmp_path / "ds")], shard_bytes=100_000)[0].chunk_bytes == 100_000
    pieces = list(iter_chunks(Shard(str(tmp_path / "ds"), chunk_bytes=100_000)))
    assert len(pieces) > 2 and json.loads(pieces[0][1].split(b"\n")[0])["blob"] is None  # no text form: null
    found = decontam.scan(str(tmp_path / "ds"), index=index_dir, shard_bytes=100_000, workers=2)
    reference = decontam.scan(str(write_jsonl(tmp_path / "c.jsonl", texts)), index=index_dir)
    assert found.findings.height > 0 and found.counts.rows_read == 900
    assert _normalize(found.findings).drop("source").equals(_normalize(reference.findings).drop("source"))


def test_a_remote_file_that_changed_is_not_resumed(tmp_path, index_dir):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    path = f"/decontam-test-{uuid.uuid4().hex[:8]}/c.jsonl"
    fs.pipe(path, b'{"text": "first version of the row"}\n')
    decontam.scan(f"memory://{path}", index=index_dir, work_dir=tmp_path / "w")
    fs.pipe(path, b'{"text": "second version, longer than the first"}\n')
    with pytest.raises(decontam.ParameterError, match="belongs to another scan"):
        decontam.scan(f"memory://{path}", index=index_dir, work_dir=tmp_path / "w")


def test_remote_paths_through_fsspec(index, gsm8k):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    folder = f"/decontam-test-{uuid.uuid4().hex[:8]}"
    fs.pipe(f"{folder}/a.jsonl", (json.dumps({"prompt": gsm8k[9]["question"]}) + "\n").encode())
    fs.pipe(f"{folder}/b.jsonl.gz", gzip.compress((json.dumps({"prompt": "plain"}) + "\n").encode()))
    result = decontam.scan(f"memory://{folder}/*.jsonl*", index=index)
    assert result.counts.rows_read == 2
    assert set(result.findings["item_id"]) == {gsm8k[9]["id"]}
    assert set(result.findings["source"]) == {f"memory://{folder}/a.jsonl"}


PEAK_RSS = """
import sys, decontam
decontam.scan(sys.argv[1], index=sys.argv[2], workers=1)
# VmHWM is this process's own peak; ru_maxrss would carry pytest's peak over fork + exec
print(int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]) // 1024)
"""


def test_memory_is_bounded_by_batch_and_index_not_corpus(tmp_path, index_dir, gsm8k):
    small = write_jsonl(tmp_path / "small.jsonl", _corpus_rows(gsm8k, 2_000))
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as handle:  # ~60x the small corpus, written without holding it in memory
        block = small.read_bytes()
        for _ in range(60):
            handle.write(block)
    def peak(path):
        proc = subprocess.run([sys.executable, "-c", PEAK_RSS, str(path), str(index_dir)], capture_output=True, text=True, check=True)
        return int(proc.stdout.strip())
    packed = tmp_path / "big.jsonl.gz"  # read line by line in one process, not in pieces held in memory
    with open(big, "rb") as source, gzip.open(packed, "wb", compresslevel=1) as target:
        shutil.copyfileobj(source, target)
    small_mb, big_mb, packed_mb = peak(small), peak(big), peak(packed)
    corpus_mb = big.stat().st_size / 2**20
    assert corpus_mb > 150
    print(f"peak RSS: {small_mb} MB for {small.stat().st_size / 2**20:.1f} MB, {big_mb} MB for {corpus_mb:.0f} MB, {packed_mb} MB gzipped")
    assert big_mb - small_mb < 120, (small_mb, big_mb, corpus_mb)  # allowed growth is less than the corpus
    assert packed_mb - small_mb < 120, (small_mb, packed_mb, corpus_mb)
    # long documents: 38 MB of text in 64 KB records were one batch (+850 MB over the small corpus
    # here); a batch now ends at 8 MB of text (+225 MB)
    prompts = t0_prompts()
    book = tmp_path / "book.txt"
    with open(book, "w") as handle:
        handle.writelines(prompts[i * 7919 % len(prompts)] + "\n\n" for i in range(40_000_000 // (sum(map(len, prompts)) // len(prompts))))
    assert book.stat().st_size > 35 * 2**20
    book_mb = peak(book)
    print(f"peak RSS: {book_mb} MB for {book.stat().st_size / 2**20:.0f} MB of text")
    assert book_mb - small_mb < 400, (small_mb, book_mb)


RAY_SCAN = "from decontam.cli import main; import sys; sys.argv = ['decontam'] + sys.argv[1:]; main()"


@pytest.fixture(scope="module")
def loopback_namespace():
    """A network namespace that has only the loopback interface: a local Ray cluster started in it
    can bind nothing but 127.0.0.1 (Ray 2.x ignores --node-ip-address=127.0.0.1 on a host)."""
    pytest.importorskip("ray")
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 to make a loopback-only network namespace")
    name = f"decontam-{uuid.uuid4().hex[:6]}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def test_ray_engine_equals_local_and_retries(tmp_path, index_dir, many_files, gsm8k, loopback_namespace):
    streamed = tmp_path / "big.jsonl.gz"  # a .gz file bigger than a shard: its pieces go through the object store
    with gzip.open(streamed, "wt") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in _corpus_rows(gsm8k, 3000, seed_offset=3)))
    pieces = len(list(iter_chunks(Shard(str(streamed), chunk_bytes=1 << 20))))
    out = tmp_path / "ray.parquet"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "DECONTAM_FAULT_RAY_ONCE": str(tmp_path / "faults")}
    (tmp_path / "faults").mkdir()
    proc = subprocess.run(["ip", "netns", "exec", loopback_namespace, sys.executable, "-c", RAY_SCAN, "scan", str(many_files),
                           str(streamed), "--index", str(index_dir), "--engine", "ray", "--workers", "2", "--out", str(out),
                           "--shard-mb", "1", "--work-dir", str(tmp_path / "work")], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    # every task failed once and was retried: one for the six small files (they share batches), one per piece
    assert pieces > 1 and len(list((tmp_path / "faults").iterdir())) == 1 + pieces
    reference = decontam.scan([str(many_files), str(streamed)], index=index_dir).findings
    assert _normalize(pl.read_parquet(out)).equals(_normalize(reference))


def test_ray_embedding_model_served_by_actors(tmp_path, many_files, loopback_namespace):
    from decontam.index import IndexParams
    from decontam.layers.embedding import HashingEmbedder

    from .conftest import INDEX_SOURCES

    index_path = tmp_path / "emb"
    decontam.build_index(index_path, [f"gsm8k={INDEX_SOURCES['gsm8k']}"], params=IndexParams(methods=("ngram", "embedding")),
                         embedder=HashingEmbedder(256))
    out = tmp_path / "ray.parquet"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(["ip", "netns", "exec", loopback_namespace, sys.executable, "-c", RAY_SCAN, "scan", str(many_files),
                           "--index", str(index_path), "--engine", "ray", "--workers", "2", "--embedding-actors", "1",
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "embedding model served by 1 Ray actor(s) on cpu (0 GPU each)" in proc.stderr
    reference = decontam.scan(str(many_files), index=index_path).findings
    assert (reference["method"] == "embedding").sum() > 0
    assert _normalize(pl.read_parquet(out)).equals(_normalize(reference))


def test_embedding_actors_need_the_ray_engine(index, many_files):
    from decontam.errors import ParameterError

    with pytest.raises(ParameterError, match="embedding_actors is for the Ray engine"):
        decontam.scan(str(many_files), index=index, embedding_actors=1)
