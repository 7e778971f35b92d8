"""Reading a GameReplayDB and splitting its games into records, here or in import processes.

:func:`map_games` turns the rows of some games into records.
:func:`import_parts` imports one file with several processes (``python -m
gamestore.ringrift.workers SRC STORE I N``: each opens the file read-only
and the store itself and imports its contiguous share of the games, writing
its own shards), so an import uses every core and no record crosses a
process boundary (pickling records back to one writer cost about as much as
making them).  Plain subprocesses rather than ``multiprocessing``: nothing is
forked from a process holding DuckDB or SQLite handles, and the caller's
``__main__`` is never re-imported.
"""
from __future__ import annotations

import dataclasses
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..errors import GamestoreError, RecordError
from .mapping import compare_rows, record_to_rows, rows_to_record
from .sqlite_io import connect_readonly, read_games, schema_report
from .tables import GAME_TABLES

__all__ = ["map_games", "map_serial", "import_parts", "TASK_GAMES"]

#: Games per task (a few thousand moves: small enough to balance, large enough to amortise pickling).
TASK_GAMES = 8

Batch = tuple[list[dict], list[tuple[str, str]]]  # records, (game_id, reason) of games that failed


def verify_record(rows: dict, record: dict) -> None:
    """Raise RecordError unless ``record`` gives back ``rows`` exactly."""
    back = record_to_rows(record)
    for table in GAME_TABLES:
        diffs = compare_rows(table, rows.get(table, ()), back[table], limit=1)
        if diffs:
            raise RecordError(f"would not round-trip: {diffs[0]}", game_id=record.get("game_id"))


def map_games(con, report_schema, ids: Sequence, verify: bool) -> Batch:
    """The records of games ``ids`` (in that order) and ``(game_id, reason)`` of those that cannot be imported."""
    records, failed = [], []
    for rows in read_games(con, report_schema, ids=ids):
        gid = rows["games"][0][0]
        try:
            record = rows_to_record(rows)
            if verify:
                verify_record(rows, record)
        except (RecordError, GamestoreError, ValueError) as exc:
            failed.append((str(gid), str(exc)))
            continue
        records.append(record)
    return records, failed


def map_serial(con, report_schema, ids: Sequence, verify: bool) -> Iterator[Batch]:
    """:func:`map_games` over ``ids`` in tasks of :data:`TASK_GAMES`."""
    for k in range(0, len(ids), TASK_GAMES):
        yield map_games(con, report_schema, ids[k : k + TASK_GAMES], verify)


def import_parts(
    src: str | os.PathLike,
    store_path: str | os.PathLike,
    processes: int,
    *,
    verify: bool,
    pause_gc: bool,
    bar: Any,
    first_part: Callable[[Any], None] | None = None,
) -> list[dict]:
    """Import ``src`` into the (existing) store with ``processes`` processes, each its own contiguous share.

    Every process reads, splits, encodes and writes its games itself (``import_sqlite(part=(i, n))``,
    shards committed as any writer's), so nothing crosses a process boundary but progress lines
    and the reports, which are returned (``ImportReport`` fields as JSON).  ``bar.update`` is
    called from this thread as the processes advance.
    ``first_part(bar)``: this process imports part 0 itself (in this thread, while the others run;
    ``bar`` also relays their progress), so only ``processes - 1`` are started: one interpreter and
    store open fewer (~0.5-0.7 s of CPU each).
    """
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    base = [sys.executable, "-m", "gamestore.ringrift.workers", str(Path(src).resolve()), str(Path(store_path).resolve())]
    flags = (["--verify"] if verify else []) + (["--pause-gc"] if pause_gc else [])
    parts = list(range(1 if first_part is not None else 0, processes))
    procs = [
        subprocess.Popen(base + [str(i), str(processes)] + flags, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for i in parts
    ]
    events: queue.Queue = queue.Queue()
    threads = [threading.Thread(target=_follow, args=(i, p, events), daemon=True) for i, p in enumerate(procs)]
    for t in threads:
        t.start()
    reports: list[dict | None] = [None] * len(procs)
    running = len(procs)

    def handle(event: tuple[int, str, Any]) -> None:
        nonlocal running
        i, kind, value = event
        if kind == "progress":
            bar.update(value)
        elif kind == "report":
            reports[i] = value
        else:  # the process ended
            running -= 1
            if procs[i].wait() != 0 or reports[i] is None:
                tail = value.decode(errors="replace").strip().splitlines()[-5:]
                raise GamestoreError(f"import process {parts[i]} of {processes} exited with code {procs[i].returncode}: "
                                     + " | ".join(tail))

    try:
        if first_part is not None:
            first_part(_RelayBar(bar, events, handle))
        while running:
            handle(events.get())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for t in threads:
            t.join(timeout=10)
    return [r for r in reports if r is not None]


class _RelayBar:
    """The bar of this process's own part: its updates, and the other processes' events handled in between."""

    def __init__(self, bar: Any, events: queue.Queue, handle: Callable[[tuple[int, str, Any]], None]) -> None:
        self.bar, self.events, self.handle = bar, events, handle

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            self.handle(event)  # a failed process raises here: the import stops at once


def _follow(index: int, proc: subprocess.Popen, events: queue.Queue) -> None:
    """Turn a part process's stdout lines into events; ``("end", stderr)`` when it closes."""
    assert proc.stdout is not None and proc.stderr is not None  # Popen(stdout=PIPE, stderr=PIPE)
    err: list[bytes] = []
    drain = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    drain.start()
    for line in proc.stdout:
        kind, _, value = line.decode().partition(" ")
        if kind == "progress":
            events.put((index, "progress", int(value)))
        elif kind == "report":
            events.put((index, "report", json.loads(value)))
    drain.join()
    events.put((index, "end", b"".join(err)))


class _LineBar:
    """A progress bar for ``import_sqlite(progress=...)`` that prints ``progress N`` lines for the parent."""

    def __init__(self, total: int | None = None, desc: str = "") -> None:
        self.out = sys.stdout

    def update(self, n: int = 1) -> None:
        if n:
            self.out.write(f"progress {n}\n")
            self.out.flush()

    def close(self) -> None:
        pass


def _import_part(args: list[str]) -> int:
    """``python -m gamestore.ringrift.workers SRC STORE I N [--verify] [--pause-gc]``: import part I of N."""
    from .transfer import import_sqlite

    src, store, index, count = args[0], args[1], int(args[2]), int(args[3])
    report = import_sqlite(src, store, progress=_LineBar, verify="--verify" in args, workers=0,
                           part=(index, count), store_tables=False, pause_gc="--pause-gc" in args)
    sys.stdout.write("report " + json.dumps(dataclasses.asdict(report)) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_import_part(sys.argv[1:]))
