"""Shards on this machine: in this process, or in a pool of worker processes (spawned, not forked:
a process forked after polars was imported can hang), each loading the index once.

The pool is a ``ProcessPoolExecutor``: a worker that dies (killed, out of memory) or cannot start
breaks it, and the scan stops with an error. (``multiprocessing.Pool`` replaces such a worker and
waits forever for the shard it held; one whose start fails is replaced again and again.)"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

import polars as pl

from ..readers import COMPRESSED
from . import COMPRESSION_RATIO, Shard, ShardRuns, WorkDir, run_group, small_files_together

_WORKER_INDEX = None
_WORKER_START_ERROR: BaseException | None = None
_WORKER_ORDINAL = 0  # this worker's number in its pool: 0, 1, ...
_THREAD_VARIABLES = ("POLARS_MAX_THREADS", "OMP_NUM_THREADS")


def available_cores() -> int:
    """The cores this process may use: its CPU affinity and a container's CPU quota (cgroups v1 and
    v2) taken into account, as joblib counts them. ``os.cpu_count()`` counts the host's: a pod limited
    to 2 CPUs on a 64-core node would start 64 workers of ~420 MB each, with 32 threads apiece."""
    from joblib import cpu_count

    return max(1, cpu_count())


# A worker's peak memory (benchmarks/README.md, twelfth session): ~420 MB on the n-gram path with the
# shipped 60 MB index (imports 87 MB, the index's arrays 94, compiled kernels and lookup tables ~190,
# a batch of 2,000 records ~20; ~440 MB since batches hold 4,000), 1.6-2.3 GB with the embedding
# model. Counted as a base, twice the index's files, and the model; shared pages make it err safe.
WORKER_BASE_MB = 300
EMBEDDING_MODEL_MB = 1300


def worker_memory_mb(index, methods) -> float:
    index_mb = sum(size for size, _ in index.file_stats.values()) / (1 << 20)
    return WORKER_BASE_MB + 2 * index_mb + (EMBEDDING_MODEL_MB if "embedding" in methods else 0)


def available_memory_mb(meminfo: str = "/proc/meminfo", proc_cgroup: str = "/proc/self/cgroup",
                        cgroup_root: str = "/sys/fs/cgroup") -> float | None:
    """Memory this process may still take: the system's MemAvailable, or less where a cgroup it is in
    (a container, a Kubernetes pod, a Slurm job, a systemd slice) or one above it has a memory limit:
    that limit less the cgroup's use (cgroups v2 and v1). None where nothing can be read."""
    found = []
    with contextlib.suppress(OSError, ValueError, IndexError), open(meminfo) as handle:  # not Linux: no such file
        found += [int(line.split()[1]) / 1024 for line in handle if line.startswith("MemAvailable:")]
    try:
        with open(proc_cgroup) as handle:
            memberships = [line.rstrip("\n").split(":", 2) for line in handle if line.count(":") >= 2]
    except OSError:
        memberships = []
    for hierarchy, controllers, path in memberships:
        if hierarchy == "0" and not controllers:
            base, limit_name, usage_name = Path(cgroup_root), "memory.max", "memory.current"
        elif "memory" in controllers.split(","):
            base, limit_name, usage_name = Path(cgroup_root) / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        folder = base / path.lstrip("/")
        for cgroup in [folder, *(p for p in folder.parents if p == base or base in p.parents)]:  # up to the root
            left = _cgroup_memory_left_mb(cgroup / limit_name, cgroup / usage_name)
            if left is not None:
                found.append(left)
    return max(0.0, min(found)) if found else None


def _cgroup_memory_left_mb(limit_file: Path, usage_file: Path) -> float | None:
    """A cgroup's memory limit less its use; None where it has no limit or the files cannot be read."""
    try:
        limit = limit_file.read_text().strip()
        return None if limit == "max" else (int(limit) - int(usage_file.read_text().strip())) / (1 << 20)
    except (OSError, ValueError):
        return None


def workers_that_fit(workers: int, index, methods, note: Callable[[str], None] | None = None) -> int:
    """``workers``, or fewer where that many would not fit in the memory this process may take, each
    counted at ``worker_memory_mb``; ``note`` hears why. (Too many would die out of memory midway.)"""
    available = available_memory_mb()
    if workers <= 1 or available is None:
        return workers
    each = worker_memory_mb(index, methods)
    fit = max(1, int(available // each))
    if fit >= workers:
        return workers
    if note:
        note(f"Starting {fit} worker(s), not {workers}: each takes ~{each / 1024:.1f} GB and "
             f"{available / 1024:.1f} GB of memory is available (--workers to choose)")
    return fit


def worker_device(requested: str | None, ordinal: int, gpus: int) -> str | None:
    """The embedding model's device in worker ``ordinal`` of a pool: on a machine with several GPUs,
    workers that were given no device (or plain ``cuda``) take the GPUs in turn instead of all
    loading the model onto the first; otherwise the device asked for."""
    if gpus > 1 and requested in (None, "cuda"):
        return f"cuda:{ordinal % gpus}"
    return requested


def _cuda_devices() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _init_worker(index_path: str, salt: bytes | None, ordinals, stats: dict[str, list[int]], parent: int) -> None:
    global _WORKER_INDEX, _WORKER_START_ERROR, _WORKER_ORDINAL
    from ..index import check_unchanged, load_index

    # A worker has sent all it has when it exits; tearing down numba, scipy and the index took 0.2 s
    # that the scan waited for. (Handlers registered after this one, torch's included, still run.)
    atexit.register(os._exit, 0)
    # (the scan's pid comes with the work: a parent killed while this worker was still importing is
    # no longer os.getppid() here)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="decontam-parent-watch", daemon=True).start()
    with ordinals.get_lock():
        _WORKER_ORDINAL = ordinals.value
        ordinals.value += 1
    try:
        _WORKER_INDEX = load_index(index_path, salt=salt, verify=False)  # hashing it again took 0.3 s per worker
        check_unchanged(_WORKER_INDEX, stats)
    except Exception as exc:  # noqa: BLE001 -- raised with the first shard, so that it reaches the caller as it is
        _WORKER_START_ERROR = exc


def _exit_with_parent(parent: int, every_s: float = 0.5) -> None:
    """End this worker once the scan's process is gone. Killed (a CI job's timeout sends SIGTERM; kill -9,
    the OOM killer) it cannot tell its workers, and they waited for work forever, each holding its index
    and model (~0.4-2 GB): every worker also holds the write end of the pipe it reads its work from, so
    it never sees that pipe close."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)


def _run_in_worker(group: list[tuple[Shard, bytes | None]], options) -> list[tuple[Shard, pl.DataFrame, dict]]:
    """One shard (with its bytes, for a piece of a stream), or several small whole files together."""
    if _WORKER_START_ERROR is not None:
        raise _WORKER_START_ERROR
    if os.environ.get("DECONTAM_FAULT_KILL_WORKER"):  # tests: a worker dies as if out of memory
        os.kill(os.getpid(), signal.SIGKILL)
    if "embedding" in _WORKER_INDEX.layers and (options.methods is None or "embedding" in options.methods):
        options = replace(options, device=worker_device(options.device, _WORKER_ORDINAL, _cuda_devices()))
    return run_group(group, _WORKER_INDEX, options)


def run_local(shards: list[Shard], index, options, *, workers: int, work_dir: WorkDir | None,
              on_shard: Callable[[Shard, dict], None] | None = None,
              note: Callable[[str], None] | None = None) -> list[tuple[Shard, pl.DataFrame, dict]]:
    """Run every shard not already done; return (shard, findings, counts) for all of them, in order.

    A streamed (compressed) shard is read here, in this process, and its pieces go to the workers with their
    bytes; at most two shards per worker are in flight, which bounds the bytes held."""
    runs = ShardRuns(shards, work_dir, on_shard)
    fault_after = int(os.environ.get("DECONTAM_FAULT_AFTER_SHARDS", "0"))  # tests: kill -9 ourselves midway
    completed = 0

    def finish(shard: Shard, findings: pl.DataFrame, counts: dict) -> None:
        nonlocal completed
        runs.finish(shard, findings, counts)
        completed += 1
        if fault_after and completed >= fault_after:
            os.kill(os.getpid(), signal.SIGKILL)

    todo = runs.todo
    methods = options.methods or tuple(index.methods)
    workers = workers_that_fit(min(workers, workers_worth_starting(todo, methods)), index, methods, note)
    if workers <= 1 or len(todo) <= 1 and not any(s.chunk_bytes for s in todo):
        for group in small_files_together(runs.work()):
            for result in run_group(group, index, options):
                finish(*result)
        return runs.outcome()
    if index.path is None:
        from ..errors import ParameterError

        raise ParameterError("several workers need an index saved on disk", "save the index (build_index(path, ...)) or use workers=1")
    salt = getattr(index.vocabulary, "salt", None)
    # No oversubscription: each worker's polars and torch (the embedding model) get its share of
    # the cores. Spawned workers read these when they import polars and torch.
    threads = str(max(1, available_cores() // workers))
    previous = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: threads for name in _THREAD_VARIABLES})
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                 initargs=(str(index.path), salt, context.Value("i", 0), index.file_stats, os.getpid())) as pool:
            running: set = set()
            try:
                for group in small_files_together(runs.work(), for_workers=True):
                    if len(running) >= 2 * workers:
                        done, running = wait(running, return_when=FIRST_COMPLETED)
                        for future in done:
                            for result in future.result():
                                finish(*result)
                    running.add(pool.submit(_run_in_worker, group, options))
                for future in as_completed(running):
                    for result in future.result():
                        finish(*result)
            except BaseException as exc:
                pool.shutdown(wait=False, cancel_futures=True)
                if isinstance(exc, BrokenProcessPool):
                    raise _worker_died(work_dir) from exc
                raise
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return runs.outcome()


# A pool costs ~0.4 s here (~1.1 s on a 16-core machine's slower cores) before its first shard:
# spawning, imports, the index. On the n-gram path it pays from ~32 MB of input (20 MB: 1.6 s in this
# process, 1.7 s on two workers; 40 MB: 2.4 vs 2.1 s). Once a pool runs, a further worker pays from
# ~8 MB of its own (16 cores, 150 MB: 6.8 s on 4 workers, 5.0 s on 8 or 16; benchmarks/README.md,
# shard timeline). The embedding model takes seconds to load and then ~1 s a MB on a CPU.
# DECONTAM_MB_PER_WORKER overrides both (X: a pool from 2X MB, X MB a worker; 0: always start every
# worker asked for).
POOL_MIN_MB = {"embedding": 4, "other": 32}
MB_PER_WORKER = {"embedding": 2, "other": 8}


def workers_worth_starting(shards: list[Shard], methods) -> int:
    """How many workers the shards' input keeps busy enough to pay for starting them (remote inputs
    and Parquet row groups, whose size is not known here, count as enough for one worker each, and a
    stream read in pieces, stdin or a remote file, as enough for any number)."""
    override = os.environ.get("DECONTAM_MB_PER_WORKER")
    path = "embedding" if "embedding" in methods else "other"
    per_worker = float(override) if override else MB_PER_WORKER[path]
    pool_min = 2 * per_worker if override else POOL_MIN_MB[path]
    total = 0
    for shard in shards:
        if shard.byte_range is not None:
            total += shard.byte_range[1] - shard.byte_range[0]
        elif shard.row_groups is None and os.path.isfile(shard.source):
            total += os.path.getsize(shard.source) * (COMPRESSION_RATIO if shard.source.endswith(COMPRESSED) else 1)
        elif shard.chunk_bytes:
            return sys.maxsize
        else:
            return len(shards)
    if per_worker <= 0:
        return len(shards)
    if total < pool_min * (1 << 20):
        return 1
    return max(1, int(total / (per_worker * (1 << 20))))


def _worker_died(work_dir: WorkDir | None):
    from ..errors import WorkerError

    keep = ("the shards finished so far are kept in the work folder: run the same command again to scan the rest"
            if work_dir is not None else "with --work-dir DIR a rerun scans only the shards not finished")
    return WorkerError(
        "a worker process of the scan died (killed, out of memory) or could not start",
        f"{keep}; with fewer --workers if memory ran out; a Python script that scans with several workers "
        "must call it under `if __name__ == \"__main__\":`")
