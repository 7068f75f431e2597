"""Shards on this machine: in this process, or in a pool of worker processes (spawned, not forked:
a process forked after polars was imported can hang), each loading the index once."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable

import polars as pl

from . import Shard, WorkDir, resume

_WORKER_INDEX = None
_THREAD_VARIABLES = ("POLARS_MAX_THREADS", "OMP_NUM_THREADS")


def _init_worker(index_path: str, salt: bytes | None) -> None:
    global _WORKER_INDEX
    from ..index import load_index

    _WORKER_INDEX = load_index(index_path, salt=salt)


def _run_in_worker(shard: Shard, options) -> tuple[Shard, pl.DataFrame, dict]:
    from ..scan import run_shard

    findings, counts = run_shard(shard, _WORKER_INDEX, options)
    return shard, findings, counts


def run_local(shards: list[Shard], index, options, *, workers: int, work_dir: WorkDir | None,
              on_shard: Callable[[Shard, dict], None] | None = None) -> list[tuple[Shard, pl.DataFrame, dict]]:
    """Run every shard not already done; return (shard, findings, counts) for all of them, in order."""
    from ..scan import run_shard

    results, todo = resume(shards, work_dir)
    fault_after = int(os.environ.get("DECONTAM_FAULT_AFTER_SHARDS", "0"))  # tests: kill -9 ourselves midway
    completed = 0

    def finish(shard: Shard, findings: pl.DataFrame, counts: dict) -> None:
        nonlocal completed
        if work_dir is not None:
            work_dir.save(shard, findings, counts)
        results[shard.shard_id] = (findings, counts)
        completed += 1
        if on_shard:
            on_shard(shard, counts)
        if fault_after and completed >= fault_after:
            os.kill(os.getpid(), signal.SIGKILL)

    if workers <= 1 or len(todo) <= 1:
        for shard in todo:
            findings, counts = run_shard(shard, index, options)
            finish(shard, findings, counts)
    else:
        if index.path is None:
            from ..errors import ParameterError

            raise ParameterError("several workers need an index saved on disk", "save the index (build_index(path, ...)) or use workers=1")
        salt = getattr(index.vocabulary, "salt", None)
        # No oversubscription: each worker's polars and torch (the embedding model) get its share of
        # the cores. Spawned workers read these when they import polars and torch.
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        previous = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
        os.environ.update({name: threads for name in _THREAD_VARIABLES})
        try:
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, initializer=_init_worker, initargs=(str(index.path), salt)) as pool:
                for shard, findings, counts in pool.imap_unordered(_star, [(s, options) for s in todo]):
                    finish(shard, findings, counts)
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    return [(shard, *results[shard.shard_id]) for shard in shards]


def _star(args):
    return _run_in_worker(*args)
