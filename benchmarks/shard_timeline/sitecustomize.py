"""Loaded by every Python process the timeline benchmark starts (its folder is first on PYTHONPATH),
the scan's spawned workers included: wraps the local engine's shard function to append one line per
shard group to $DECONTAM_TIMELINE (pid, process start, group start and end, bytes). Benchmark only."""

import os
import time

_STARTED = time.time()
_FILE = os.environ.get("DECONTAM_TIMELINE")

if _FILE:
    import json

    import decontam.engines.local as _local

    _run_group = _local.run_group

    def _timed_run_group(group, index, options):
        start = time.time()
        results = _run_group(group, index, options)
        end = time.time()
        size = sum((s.byte_range[1] - s.byte_range[0]) if s.byte_range else 0 for s, _ in group)
        with open(_FILE, "a") as handle:
            handle.write(json.dumps({"pid": os.getpid(), "process_start": _STARTED, "start": start, "end": end, "bytes": size}) + "\n")
        return results

    _local.run_group = _timed_run_group
