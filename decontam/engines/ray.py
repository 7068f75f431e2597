"""Shards as Ray tasks (``pip install "decontam[ray]"``; this module is imported only for
``--engine ray``).

The index travels by path when a worker can read it, and through the object store when it cannot
(the index files are put there once; a worker that lacks the path writes them to a temporary folder).
Tasks are plain tasks of one CPU each (an actor pool that takes every CPU starves the readers), a
shard each or several small files together (as the local engine's workers take them), and
are retried when they fail. When the scan uses the embedding layer, the model is served by actors
(``embedding_actors``; by default one per GPU of the cluster, each holding one GPU and no CPU): the
shard tasks send them the texts that pass the lexical first stage, so the CPUs read and match while
the GPUs embed. Without GPUs each task loads the model itself. The driver writes each shard's
findings as Parquet in the work folder, exactly as the local engine does, and merges them. A big
compressed file is read by the driver, and its pieces go to the tasks through the object store.

Traps seen: ``ray start`` turns on token authentication in recent Ray, so a driver connecting to
such a cluster needs ``RAY_AUTH_MODE=token``; a head node waits ~30 s on SIGTERM.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl

from ..errors import InputError, ParameterError
from . import Shard, ShardRuns, WorkDir, run_group, small_files_together

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


class _EmbedderActor:
    """Holds the embedding model on its device (a GPU, when the actor was given one)."""

    def __init__(self, model: str, device: str | None):
        from ..layers.embedding import load_embedder

        self.embedder = load_embedder(model, device)

    def info(self) -> dict:
        return {"name": self.embedder.name, "dim": self.embedder.dim, "revision": self.embedder.revision,
                "device": getattr(self.embedder, "device", "cpu")}

    def encode(self, texts: list[str]):
        return self.embedder.encode(texts)


class ActorEmbedder:
    """The embedding layer's embedder inside a shard task: texts go to the model actors, in turn."""

    def __init__(self, actors: list, info: dict):
        self.actors, self.name, self.dim, self.revision = actors, info["name"], info["dim"], info["revision"]

    def encode(self, texts):
        import ray

        # every task holds its own copy of this object: a shared turn order would send all their
        # first batches to the same actor
        actor = random.choice(self.actors)
        return ray.get(actor.encode.remote(list(texts)))


def _start_embedding_actors(ray, index, options, count: int | None) -> tuple[ActorEmbedder | None, str | None]:
    """Model actors for a scan that uses the embedding layer: ``count`` of them (None: one per GPU)."""
    if "embedding" not in (options.methods or tuple(index.methods)):
        return None, None
    gpus = float(ray.cluster_resources().get("GPU", 0))
    count = int(gpus) if count is None else count
    if count <= 0:
        return None, None
    gpus_each = min(1.0, gpus / count) if gpus else 0.0
    actor_class = ray.remote(num_cpus=0, num_gpus=gpus_each)(_EmbedderActor)
    layer = index.layers["embedding"]
    actors = [actor_class.remote(layer.meta["model"], "cuda" if gpus_each else options.device) for _ in range(count)]
    infos = ray.get([actor.info.remote() for actor in actors])
    for info in infos:
        if info["revision"] != layer.meta["model_revision"] or info["dim"] != layer.meta["dim"]:
            raise ParameterError(
                f"the embedding model {layer.meta['model']!r} on the Ray cluster differs from the one the index was built with "
                f"(weights {info['revision'][:19]} vs {layer.meta['model_revision'][:19]})",
                "install the same model version on the cluster, or rebuild the index's embedding layer")
    devices = sorted({info["device"] for info in infos})
    note = f"embedding model served by {count} Ray actor(s) on {', '.join(devices)} ({gpus_each:g} GPU each)"
    return ActorEmbedder(actors, infos[0]), note


def _scan_group_task(shards: list[Shard], options, path: str, digest: str, bundle_ref, salt: bytes | None, embedder=None,
                     payload: bytes | None = None):
    """One shard (``payload``: the bytes of a piece of a stream), or several small whole files that
    share batches, as the local engine's workers run them."""
    fault_dir = os.environ.get("DECONTAM_FAULT_RAY_ONCE")  # tests: the first attempt of every task fails
    if fault_dir:
        marker = Path(fault_dir, shards[0].shard_id)
        if not marker.exists():
            marker.touch()
            raise RuntimeError(f"injected failure for the task of shard {shards[0].shard_id}")
    index = _load_on_worker(path, digest, bundle_ref, salt)
    if embedder is not None:
        index.layers["embedding"]._embedder = embedder
    group = [(shards[0], payload)] if payload is not None else [(shard, None) for shard in shards]
    return [(shard, findings.to_arrow(), counts) for shard, findings, counts in run_group(group, index, options)]


def run_ray(shards: list[Shard], index, options, *, address: str | None, work_dir: WorkDir | None,
            num_cpus: int | None = None, max_retries: int = 3, embedding_actors: int | None = None,
            on_shard: Callable[[Shard, dict], None] | None = None,
            on_note: Callable[[str], None] | None = None) -> list[tuple[Shard, pl.DataFrame, dict]]:
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
        runs = ShardRuns(shards, work_dir, on_shard)
        if runs.todo:
            digest = index.manifest.get("files", {}).get("parts.parquet", str(index.path))
            bundle_ref = ray.put(_index_bundle(Path(index.path)))
            salt = getattr(index.vocabulary, "salt", None)
            embedder, note = _start_embedding_actors(ray, index, options, embedding_actors)
            if note and on_note:
                on_note(note)
            task = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=True)(_scan_group_task)
            in_flight = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))  # bounds the streamed pieces held
            pending: list = []

            def collect(count: int) -> None:
                nonlocal pending
                ready, pending = ray.wait(pending, num_returns=count)
                for ref in ready:
                    for shard, table, counts in ray.get(ref):
                        runs.finish(shard, pl.from_arrow(table), counts)

            for group in small_files_together(runs.work(), for_workers=True):
                if len(pending) >= in_flight:
                    collect(1)
                payload, shards = group[0][1], [shard for shard, _ in group]
                pending.append(task.remote(shards, options, str(Path(index.path).resolve()), digest, bundle_ref, salt, embedder,
                                           None if payload is None else ray.put(payload)))
            while pending:
                collect(1)
        return runs.outcome()
    finally:
        if started:
            ray.shutdown()
