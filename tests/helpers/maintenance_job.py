"""Run one maintenance job in this process: ``python maintenance_job.py JOB JSON_ARGS``.

Started by tests/test_kill_maintenance.py with ``GAMESTORE_FAULT`` (end the
process at a named point, gamestore/faults.py) or ``GAMESTORE_FAULT_TRACE``
(list the points reached) in its environment.  Jobs: ``compact``,
``prune``, ``merge`` and ``tier`` (one round of tiered compaction).
"""
from __future__ import annotations

import json
import sys

import gamestore
from gamestore.ops import compact, merge, prune
from gamestore.ops.tiering import TierPolicy, compact_round


def run(job: str, args: dict) -> None:
    if job == "compact":
        compact(args["store"], target_moves=args["target_moves"], fsync=False)
    elif job == "prune":
        prune(args["store"], where=args["where"], fsync=False)
    elif job == "merge":
        merge(args["sources"], args["store"], target_moves=args["target_moves"], fsync=False)
    elif job == "tier":
        with gamestore.open(args["store"], create=False, fsync=False) as s:
            compact_round(s, TierPolicy(**args["policy"]), fsync=False)
    else:
        raise ValueError(f"unknown job {job!r}")


if __name__ == "__main__":
    run(sys.argv[1], json.loads(sys.argv[2]))
