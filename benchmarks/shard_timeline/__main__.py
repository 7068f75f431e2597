"""Where a multi-worker scan's time goes: per worker, its start-up (process start to first shard),
its busy time and its own MB/s while busy, and the scan's time outside the workers' shards.

    python -m benchmarks.shard_timeline [--mb 150] [--workers 1,2,8,16] [--code DIR,...] [--all-workers]
                                        [--methods ngram,minhash[,artifact,embedding]] [--device cuda]

Default sources, benchmarks.throughput's corpus, the n-gram + MinHash path unless --methods says
otherwise (with the embedding layer the index is built with it: minutes on a CPU); each scan a fresh
process whose workers record each shard they run (``sitecustomize.py`` beside this file). If
per-worker MB/s while busy falls as workers are added, the workers contend (memory, caches, a shared
GPU); if it holds, the lost time is start-up, the parent, or the last shards' tail. With the
embedding layer a second table gives each stage's seconds, summed over the workers.
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
STAGES = ("match", "lexical", "windows", "embed", "model load", "model encode")
REPO = HERE.parents[1]

RUN = """
import os, sys, time
import decontam
from decontam.scan import ScanOptions
corpus, index, workers, methods = sys.argv[1], sys.argv[2], int(sys.argv[3]), tuple(sys.argv[4].split(","))
device = sys.argv[5] or None
shard_bytes = min(32 << 20, max(1 << 20, os.path.getsize(corpus) // (4 * workers)))
r = decontam.scan(corpus, index=index, workers=workers, options=ScanOptions(methods=methods, device=device), shard_bytes=shard_bytes)
print(time.time(), r.findings.select("row").unique().height)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=150)
    parser.add_argument("--workers", default="1,2,8,16")
    parser.add_argument("--code", default=str(REPO),
                        help="comma-separated folders to import decontam from, one table block each (A/B against another checkout)")
    parser.add_argument("--methods", default="ngram,minhash", help="the layers scanned (default ngram,minhash)")
    parser.add_argument("--device", default="", help="the embedding model's device (default: cuda when there is one)")
    parser.add_argument("--all-workers", action="store_true",
                        help="also run each worker count > 1 with DECONTAM_MB_PER_WORKER=0 (every worker asked for starts)")
    args = parser.parse_args()
    import decontam

    with tempfile.TemporaryDirectory() as tmp:
        index, corpus = Path(tmp) / "index", Path(tmp) / "corpus.jsonl"
        from decontam.index import IndexParams

        methods = tuple(args.methods.split(","))
        built = ("ngram", "minhash", "artifact", "embedding") if "embedding" in methods else ("ngram", "minhash", "artifact")
        decontam.build_index(index, default_source_args(), params=IndexParams(methods=built))
        make_corpus(corpus, args.mb)
        mb = corpus.stat().st_size / 1e6
        print(f"{mb:.0f} MB, {os.cpu_count()} cores, {args.methods}\n")
        print("| code | workers asked / started | seconds | MB/s | rows flagged | before first shard s | worker start-up s (median / max) | "
              "busy MB/s per worker (median) | workers' busy share | last shard end to the scan's return s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        worker_counts = [int(w) for w in args.workers.split(",")]
        stage_rows = []
        runs = [(code, w, False) for code in args.code.split(",") for w in worker_counts]
        runs += [(code, w, True) for code in args.code.split(",") for w in worker_counts if args.all_workers and w > 1]
        for run, (code, workers, every_worker) in enumerate(runs):
            trace = Path(tmp) / f"timeline-{run}.jsonl"
            env = dict(os.environ, DECONTAM_TIMELINE=str(trace), PYTHONPATH=os.pathsep.join(
                [str(HERE), code, *filter(None, [os.environ.get("PYTHONPATH")])]))
            if every_worker:
                env["DECONTAM_MB_PER_WORKER"] = "0"
            start = time.time()
            out = subprocess.run([sys.executable, "-c", RUN, str(corpus), str(index), str(workers), args.methods, args.device],
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
            print(f"| {Path(code).name} | {workers} / {len(by_pid)}{' (all)' if every_worker else ''} | {wall:.1f} | {mb / wall:.1f} | {flagged} | {first - start:.2f} | "
                  f"{startup[len(startup) // 2]:.2f} / {startup[-1]:.2f} | {rates[len(rates) // 2]:.1f} | {share:.2f} | "
                  f"{float(end) - last:.2f} |", flush=True)
            if "embedding" in methods:
                last_of = {pid: max(ss, key=lambda x: x["end"])["stages"] for pid, ss in by_pid.items()}
                stage_rows.append((Path(code).name, workers, len(by_pid), {k: sum(st.get(k, 0.0) for st in last_of.values())
                                                                          for k in STAGES}))
        if stage_rows:
            print("\n| code | workers | started | " + " | ".join(f"{k} s" for k in STAGES) + " | FAISS and the rest s |")
            print("|---|---|---|" + "---|" * (len(STAGES) + 1))
            for name, workers, started, stages in stage_rows:
                rest = stages["match"] - stages["lexical"] - stages["windows"] - stages["embed"]
                print(f"| {name} | {workers} | {started} | " + " | ".join(f"{stages[k]:.1f}" for k in STAGES) + f" | {rest:.1f} |")


if __name__ == "__main__":
    main()
