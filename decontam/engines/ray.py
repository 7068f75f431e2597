"""Shards as Ray tasks (``pip install "decontam[ray]"``; this module is imported only for
``--engine ray``).

The index travels by path when a worker can read it, and through the object store when it cannot
(the index files are put there once; a worker that lacks the path writes them to a temporary folder).
Tasks are plain tasks of one CPU each (an actor pool that takes every CPU starves the readers) and
are retried when they fail. The driver writes each shard's findings as Parquet in the work folder,
exactly as the local engine does, and merges them.

Traps seen: ``ray start`` turns on token authentication in recent Ray, so a driver connecting to
such a cluster needs ``RAY_AUTH_MODE=token``; a head node waits ~30 s on SIGTERM.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl

from ..errors import InputError
from . import Shard, WorkDir, resume

_CACHE: dict[str, object] = {}


def _index_bundle(path: Path) -> dict[str, bytes]:
    return {f.relative_to(path).as_posix(): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


def _load_on_worker(path: str, digest: str, bundle_ref, salt: bytes | None):
    from ..index import load_index

    if digest in _CACHE:
        return _CACHE[digest]
    if Path(path, "manifest.json").exists():
        index = load_index(path, salt=salt)
    else:  # this node cannot see the driver's path: take the files from the object store
        import ray

        folder = Path(tempfile.mkdtemp(prefix="decontam-index-"))
        for name, data in ray.get(bundle_ref).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        index = load_index(folder, salt=salt)
    _CACHE[digest] = index
    return index


def _scan_shard_task(shard: Shard, options, path: str, digest: str, bundle_ref, salt: bytes | None):
    from ..scan import run_shard

    fault_dir = os.environ.get("DECONTAM_FAULT_RAY_ONCE")  # tests: the first attempt of every shard fails
    if fault_dir:
        marker = Path(fault_dir, shard.shard_id)
        if not marker.exists():
            marker.touch()
            raise RuntimeError(f"injected failure for shard {shard.shard_id}")
    index = _load_on_worker(path, digest, bundle_ref, salt)
    findings, counts = run_shard(shard, index, options)
    return shard, findings.to_arrow(), counts


def run_ray(shards: list[Shard], index, options, *, address: str | None, work_dir: WorkDir | None,
            num_cpus: int | None = None, max_retries: int = 3,
            on_shard: Callable[[Shard, dict], None] | None = None) -> list[tuple[Shard, pl.DataFrame, dict]]:
    try:
        import ray
    except ImportError as exc:
        raise InputError("--engine ray needs Ray", 'pip install "decontam[ray]"') from exc
    if index.path is None:
        raise InputError("the Ray engine ships the index by path or object store, so it must be saved on disk",
                         "save the index (build_index(path, ...)) first")
    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 num_cpus=num_cpus if address is None else None, configure_logging=False)
        started = True
    try:
        results, todo = resume(shards, work_dir)
        if todo:
            digest = index.manifest.get("files", {}).get("parts.parquet", str(index.path))
            bundle_ref = ray.put(_index_bundle(Path(index.path)))
            salt = getattr(index.vocabulary, "salt", None)
            task = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=True)(_scan_shard_task)
            pending = [task.remote(shard, options, str(Path(index.path).resolve()), digest, bundle_ref, salt) for shard in todo]
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                shard, table, counts = ray.get(ready[0])
                findings = pl.from_arrow(table)
                if work_dir is not None:
                    work_dir.save(shard, findings, counts)
                results[shard.shard_id] = (findings, counts)
                if on_shard:
                    on_shard(shard, counts)
        return [(shard, *results[shard.shard_id]) for shard in shards]
    finally:
        if started:
            ray.shutdown()
