"""Where a multi-worker scan's time goes: per worker, its start-up (process start to first shard),
its busy time and its own MB/s while busy, and the scan's time outside the workers' shards.

    python -m benchmarks.shard_timeline [--mb 150] [--workers 1,2,8,16] [--code DIR,...] [--all-workers]

n-gram + MinHash path, default sources, benchmarks.throughput's corpus; each scan a fresh process
whose workers record each shard they run (``sitecustomize.py`` beside this file). If per-worker MB/s
while busy falls as workers are added, the workers contend (memory, caches); if it holds, the lost
time is start-up, the parent, or the last shards' tail.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..common import default_source_args
from ..throughput import make_corpus

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

RUN = """
import os, sys, time
import decontam
from decontam.scan import ScanOptions
corpus, index, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
shard_bytes = min(32 << 20, max(1 << 20, os.path.getsize(corpus) // (4 * workers)))
r = decontam.scan(corpus, index=index, workers=workers, options=ScanOptions(methods=("ngram", "minhash")), shard_bytes=shard_bytes)
print(time.time(), r.findings.select("row").unique().height)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=150)
    parser.add_argument("--workers", default="1,2,8,16")
    parser.add_argument("--code", default=str(REPO),
                        help="comma-separated folders to import decontam from, one table block each (A/B against another checkout)")
    parser.add_argument("--all-workers", action="store_true",
                        help="also run each worker count > 1 with DECONTAM_MB_PER_WORKER=0 (every worker asked for starts)")
    args = parser.parse_args()
    import decontam

    with tempfile.TemporaryDirectory() as tmp:
        index, corpus = Path(tmp) / "index", Path(tmp) / "corpus.jsonl"
        decontam.build_index(index, default_source_args())
        make_corpus(corpus, args.mb)
        mb = corpus.stat().st_size / 1e6
        print(f"{mb:.0f} MB, {os.cpu_count()} cores\n")
        print("| code | workers asked / started | seconds | MB/s | rows flagged | before first shard s | worker start-up s (median / max) | "
              "busy MB/s per worker (median) | workers' busy share | last shard end to the scan's return s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        worker_counts = [int(w) for w in args.workers.split(",")]
        runs = [(code, w, False) for code in args.code.split(",") for w in worker_counts]
        runs += [(code, w, True) for code in args.code.split(",") for w in worker_counts if args.all_workers and w > 1]
        for run, (code, workers, every_worker) in enumerate(runs):
            trace = Path(tmp) / f"timeline-{run}.jsonl"
            env = dict(os.environ, DECONTAM_TIMELINE=str(trace), PYTHONPATH=os.pathsep.join(
                [str(HERE), code, *filter(None, [os.environ.get("PYTHONPATH")])]))
            if every_worker:
                env["DECONTAM_MB_PER_WORKER"] = "0"
            start = time.time()
            out = subprocess.run([sys.executable, "-c", RUN, str(corpus), str(index), str(workers)],
                                 capture_output=True, text=True, env=env, check=False)
            if out.returncode != 0:
                print(f"| {Path(code).name} | {workers} | failed: {out.stderr.strip().splitlines()[-1]} |")
                continue
            end, flagged = out.stdout.split()
            shards = [json.loads(line) for line in trace.read_text().splitlines()]
            by_pid: dict[int, list[dict]] = {}
            for s in shards:
                by_pid.setdefault(s["pid"], []).append(s)
            startup = sorted(min(s["start"] for s in ss) - ss[0]["process_start"] for ss in by_pid.values())
            busy = {pid: sum(s["end"] - s["start"] for s in ss) for pid, ss in by_pid.items()}
            rates = sorted(sum(s["bytes"] for s in ss) / 1e6 / busy[pid] for pid, ss in by_pid.items())
            first, last = min(s["start"] for s in shards), max(s["end"] for s in shards)
            wall = float(end) - start
            share = sum(busy.values()) / (workers * wall)
            started = len(by_pid) if len(by_pid) > 1 or workers > 1 else 1
            print(f"| {Path(code).name} | {workers} / {started}{' (all)' if every_worker else ''} | {wall:.1f} | {mb / wall:.1f} | {flagged} | {first - start:.2f} | "
                  f"{startup[len(startup) // 2]:.2f} / {startup[-1]:.2f} | {rates[len(rates) // 2]:.1f} | {share:.2f} | "
                  f"{float(end) - last:.2f} |", flush=True)


if __name__ == "__main__":
    main()
