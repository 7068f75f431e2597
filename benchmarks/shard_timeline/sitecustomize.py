"""Loaded by every Python process the timeline benchmark starts (its folder is first on PYTHONPATH),
the scan's spawned workers included: wraps the local engine's shard function to append one line per
shard group to $DECONTAM_TIMELINE (pid, process start, group start and end, bytes, and the seconds
this process has spent so far in each stage of the embedding cascade). Benchmark only."""

import os
import time

_STARTED = time.time()
_FILE = os.environ.get("DECONTAM_TIMELINE")

if _FILE:
    import json
    from collections import defaultdict

    import decontam.engines.local as _local
    from decontam.layers import embedding as _embedding

    _stages: dict[str, float] = defaultdict(float)

    def _timed(owner, name: str, stage: str) -> None:
        function = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                _stages[stage] += time.perf_counter() - start

        setattr(owner, name, wrapper)

    # the cascade's stages; "match" holds them all (and the FAISS search and the floors, which are
    # the rest), "embed" the model's loading and encoding
    for owner, name, stage in ((_embedding.EmbeddingLayer, "match", "match"), (_embedding.EmbeddingLayer, "lexical", "lexical"),
                               (_embedding.EmbeddingLayer, "_candidate_windows", "windows"),
                               (_embedding.EmbeddingCache, "embed", "embed"),
                               (_embedding.SentenceTransformerEmbedder, "__init__", "model load"),
                               (_embedding.SentenceTransformerEmbedder, "encode", "model encode")):
        _timed(owner, name, stage)

    _run_group = _local.run_group

    def _timed_run_group(group, index, options):
        start = time.time()
        results = _run_group(group, index, options)
        end = time.time()
        size = sum((s.byte_range[1] - s.byte_range[0]) if s.byte_range else 0 for s, _ in group)
        with open(_FILE, "a") as handle:
            handle.write(json.dumps({"pid": os.getpid(), "process_start": _STARTED, "start": start, "end": end, "bytes": size,
                                     "stages": dict(_stages)}) + "\n")
        return results

    _local.run_group = _timed_run_group
