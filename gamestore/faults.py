"""Named fault points for crash tests of the maintenance jobs (compact, merge, prune, tiered compaction).

Every step after which a crash leaves a different state on disk calls
:func:`point` with its name.  With the environment variable
``GAMESTORE_FAULT=<name>`` (or ``<name>@<n>``) the process ends at once,
``os._exit(FAULT_EXIT_CODE)``, the first (``n``-th) time it reaches that
point: no ``finally`` block, no atexit handler, no buffered write runs, as
after a SIGKILL.  ``GAMESTORE_FAULT_TRACE=<file>`` appends the name of every
point reached to ``<file>`` instead, so a test learns which kill points a job
has (``tests/test_kill_maintenance.py``).  Unset, a point costs one
environment lookup.
"""
from __future__ import annotations

import os
import threading

__all__ = ["point", "FAULT_ENV", "TRACE_ENV", "FAULT_EXIT_CODE", "POINTS"]

FAULT_ENV = "GAMESTORE_FAULT"
TRACE_ENV = "GAMESTORE_FAULT_TRACE"
#: The exit status of a process ended by a fault point.
FAULT_EXIT_CODE = 77

#: Every point, with the state a crash there leaves.
POINTS = {
    "shard.staged": "a new shard's files complete in tmp/, not committed",
    "shard.committed": "compact, prune, merge, tiering: a new shard committed, not yet indexed by the job",
    "shard.copy_staged": "merge: a byte-for-byte copy complete in tmp/, not committed",
    "shard.copied": "merge: a copied shard committed, not yet indexed by the job",
    "trash.moved": "an old shard renamed from shards/ into trash/, its files and segment still there",
    "trash.deleted": "an old shard and its segment deleted",
    "checkpoint.files": "a catalog checkpoint's data files written, the pointer not yet replaced",
    "compact.planned": "compact: leftovers of an earlier run removed, groups planned, nothing written",
    "compact.group_done": "compact: one group's output committed and its old shards removed",
    "prune.planned": "prune: victims chosen, nothing written",
    "prune.rewritten": "prune: every rewritten shard committed, no old shard removed",
    "merge.planned": "merge: source shards listed, nothing written",
    "merge.flushed": "merge: one shard of collected games committed",
    "tier.planned": "tiered compaction: a round planned, nothing written",
    "tier.merged": "tiered compaction: one merged shard committed, the shards it replaces still present",
}

_lock = threading.Lock()
_hits: dict[str, int] = {}


def point(name: str) -> None:
    """Reach the fault point ``name`` (see the module docstring)."""
    spec = os.environ.get(FAULT_ENV)
    trace = os.environ.get(TRACE_ENV)
    if not spec and not trace:
        return
    with _lock:
        n = _hits[name] = _hits.get(name, 0) + 1
        if trace:
            with open(trace, "a", encoding="utf-8") as f:
                f.write(f"{name}@{n}\n")
    if spec:
        want, _, nth = spec.partition("@")
        if want == name and n == (int(nth) if nth else 1):
            os._exit(FAULT_EXIT_CODE)
