"""``gamestore import-sqlite --ray``: GameReplayDB files imported by the tasks of a Ray cluster.

Each source file is cut into parts (contiguous runs of its games, in
proportion to its size so that tasks are about equal); every task imports
its part straight into the store and commits its own shards, as any writer
process does, so nothing funnels through the driver.  Sources must be
readable where the tasks run (a shared filesystem, or the same path on
every node); for files that live on one node only, import on
that node into a local store (docs/cluster.md).  The
store-level tables of each source are read by a task and merged into the
store's meta documents once, by the driver.  Re-running adds nothing twice
(games already stored are skipped), so a failed run is finished by running
it again.
"""
from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .plan import store_location

__all__ = ["DistributedImportReport", "import_sqlite"]


@dataclass
class DistributedImportReport:
    """What one distributed import did, summed over its tasks."""

    sources: list[str]
    tasks: int = 0
    games_written: int = 0
    games_already_stored: int = 0
    moves_written: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (game_id, reason)
    missing: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def moves_per_second(self) -> float:
        return self.moves_written / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"imported {self.games_written} games ({self.moves_written} moves) from {len(self.sources)} file(s)"
            f" in {self.tasks} Ray tasks in {self.seconds:.1f} s ({self.moves_per_second:,.0f} moves/s);"
            f" {self.games_already_stored} already stored, {len(self.failed)} failed"
        )


def _source_games(src: str) -> int:
    from ..ringrift.sqlite_io import connect_readonly, count_games, schema_report

    con = connect_readonly(src)
    try:
        return int(count_games(con, schema_report(con)))
    finally:
        con.close()


def plan_parts(sizes: Sequence[int], tasks: int) -> list[int]:
    """How many parts each source is cut into: ``tasks`` in all, in proportion to the sizes, at least one each."""
    total = sum(sizes) or 1
    parts = [max(1, round(tasks * s / total)) for s in sizes]
    return [min(p, max(1, s)) for p, s in zip(parts, sizes)]


def _import_part(src: str, store: str, part: tuple[int, int], verify: bool) -> dict[str, Any]:
    from ..ringrift.transfer import import_sqlite as import_local
    from ..ringrift.transfer import read_store_tables

    report = import_local(src, store, progress=False, verify=verify, workers=0, part=part, store_tables=False)
    return {
        "source": src,
        "games_written": report.games_written,
        "games_already_stored": report.games_already_stored,
        "moves_written": report.moves_written,
        "failed": report.failed,
        "missing": report.missing,
        "tables": read_store_tables(src) if part[0] == 0 else None,
    }


def import_sqlite(
    sources: Sequence[str | os.PathLike],
    store: str | os.PathLike,
    *,
    address: str | None = None,
    tasks: int | None = None,
    verify: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> DistributedImportReport:
    """Import GameReplayDB files into ``store`` with the tasks of a Ray cluster (``address``: as ``ray.init``).

    ``tasks``: how many import tasks in all (default: twice the cluster's CPUs, so that a slow node
    does not hold up the end).  ``progress(done, total)`` is called as tasks finish.
    """
    import ray

    from ..ringrift.mapping import RINGRIFT_VECTORS
    from ..ringrift.transfer import merge_store_tables
    from ..store import open as open_store

    t0 = time.perf_counter()
    srcs = [os.fspath(s) for s in sources]
    missing = [s for s in srcs if not os.path.exists(s)]
    if missing:
        raise FileNotFoundError(f"no such GameReplayDB: {missing[0]}")
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    store_uri = store_location(store)
    with open_store(store_uri, create=True, vectors=RINGRIFT_VECTORS) as st:
        st.declare_vectors(RINGRIFT_VECTORS)
    try:
        sizes = [_source_games(s) for s in srcs]
    except sqlite3.Error as exc:
        raise sqlite3.DatabaseError(f"cannot read a source: {exc}") from exc
    want = tasks if tasks is not None else max(1, 2 * int(ray.cluster_resources().get("CPU", 1)))
    remote = ray.remote(num_cpus=1, max_retries=3)(_import_part)
    refs = []
    for src, n in zip(srcs, plan_parts(sizes, want)):
        refs += [remote.remote(src, store_uri, (i, n), verify) for i in range(n)]
    report = DistributedImportReport(sources=srcs, tasks=len(refs))
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        part = ray.get(done[0])
        report.games_written += part["games_written"]
        report.games_already_stored += part["games_already_stored"]
        report.moves_written += part["moves_written"]
        report.failed += [tuple(f) for f in part["failed"]]
        report.missing += [m for m in part["missing"] if m not in report.missing]
        if part["tables"]:
            with open_store(store_uri, create=False) as st:
                merge_store_tables(st, part["tables"])
        if progress is not None:
            progress(report.tasks - len(pending), report.tasks)
    report.seconds = time.perf_counter() - t0
    return report
