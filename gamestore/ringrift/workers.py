"""Reading a GameReplayDB and splitting its games into records, here or in import processes.

:func:`map_games` turns the rows of some games into records.
:class:`TaskPool` hands the games of one import out a few at a time;
:class:`ImportProcesses` starts the helper processes of ``import_sqlite(workers=N)``: each opens the
file read-only and the store itself, asks this process for tasks on one pipe, gets them on another,
and writes its own shards, so an import uses every core and no record crosses a process boundary
(pickling records back to one writer cost about as much as making them).  Tasks rather than fixed
shares: a helper on a busier core just takes fewer, and all processes finish within one small task of
each other.  Helpers are forked (:mod:`gamestore.ringrift.forked`) once this process has imported
everything they need and before it opens the store, so they start at once; when forking is not safe
(another Python thread runs in this process) they are interpreters started with ``python -m
gamestore.ringrift.workers SRC STORE`` (about 0.45 s of CPU each before their first game), never
``multiprocessing`` (the caller's ``__main__`` is never re-imported).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Literal, Sequence

from ..errors import GamestoreError, ImportWorkerError, RecordError
from .forked import ForkedHelper, exit_reason, fork_is_safe
from .jsontext import tag, untag
from .mapping import compare_rows, record_to_rows, rows_to_record
from .sqlite_io import read_games
from .tables import GAME_TABLES

__all__ = ["map_games", "map_tasks", "fixed_tasks", "TaskPool", "ImportProcesses", "TASK_GAMES"]

#: Games per task when one process imports alone (a few thousand moves: one batch of SQLite reads).
TASK_GAMES = 8
#: Bounds of a shared task: large while much is left (fewer requests), small near the end (an even finish).
POOL_TASK_MIN, POOL_TASK_MAX = 2, 16

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


def fixed_tasks(ids: Sequence, size: int = TASK_GAMES) -> Iterator[list]:
    """``ids`` in tasks of ``size`` games."""
    for k in range(0, len(ids), size):
        yield list(ids[k : k + size])


def map_tasks(con, report_schema, tasks: Iterable[Sequence], verify: bool) -> Iterator[Batch]:
    """:func:`map_games` of each task."""
    for ids in tasks:
        yield map_games(con, report_schema, ids, verify)


class TaskPool:
    """The games of one import, handed out in rowid order to the processes importing them (thread-safe).

    Guided self-scheduling: a task is a share of what is left (``1 / (2 * processes)``), within
    :data:`POOL_TASK_MIN` and :data:`POOL_TASK_MAX` games.
    """

    def __init__(self, ids: Sequence, processes: int) -> None:
        self._ids, self._next, self._processes = list(ids), 0, max(1, processes)
        self._lock = threading.Lock()

    def take(self) -> list:
        """The next task (an empty list once every game is handed out)."""
        with self._lock:
            left = len(self._ids) - self._next
            size = max(POOL_TASK_MIN, min(POOL_TASK_MAX, left // (2 * self._processes)))
            task = self._ids[self._next : self._next + size]
            self._next += len(task)
            return task

    def __iter__(self) -> Iterator[list]:
        while True:
            task = self.take()
            if not task:
                return
            yield task


class ImportProcesses:
    """Helper processes of one import (started at once: they are ready while the caller opens the store).

    :meth:`serve` hands them tasks from a :class:`TaskPool` as they ask; :meth:`relay` wraps the
    caller's progress bar so that their progress (and a failure) is handled while the caller imports
    its own tasks; :meth:`finish` waits for their reports (``ImportReport`` fields as JSON; after
    :meth:`relay`).  A helper that fails or is killed raises
    :class:`~gamestore.errors.ImportWorkerError` in the caller (what it committed stays in the
    store; re-running the import adds the rest).
    ``start``: ``"fork"`` (the default when :func:`~gamestore.ringrift.forked.fork_is_safe`) or
    ``"spawn"`` (``python -m gamestore.ringrift.workers``).
    """

    def __init__(self, src: str | os.PathLike, store_path: str | os.PathLike, count: int, *, verify: bool,
                 pause_gc: bool, start: Literal["fork", "spawn"] | None = None) -> None:
        src, store_path = str(Path(src).resolve()), str(Path(store_path).resolve())
        self.start = start or ("fork" if fork_is_safe() else "spawn")
        self.total = count + 1  # the caller imports too
        self.procs: list[Any] = []  # ForkedHelper or subprocess.Popen: the same interface here
        try:
            for _ in range(count):
                self.procs.append(self._start(src, store_path, verify, pause_gc))
        except BaseException:
            self.close()
            raise
        self.events: queue.Queue = queue.Queue()
        self.reports: list[dict | None] = [None] * count
        self.threads: list[threading.Thread] = []
        self.running = count
        self.bar: Any = None

    def _start(self, src: str, store_path: str, verify: bool, pause_gc: bool) -> Any:
        if self.start == "fork":
            target = functools.partial(_serve_tasks, src, store_path, verify=verify, pause_gc=pause_gc)
            return ForkedHelper(target, close_in_child=[fd for p in self.procs for fd in p.fds()])
        if self.start != "spawn":
            raise ValueError(f"start must be 'fork' or 'spawn', not {self.start!r}")
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        cmd = [sys.executable, "-m", "gamestore.ringrift.workers", src, store_path]
        cmd += (["--verify"] if verify else []) + (["--pause-gc"] if pause_gc else [])
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def serve(self, pool: TaskPool) -> None:
        """Start answering the processes' task requests from ``pool`` (their progress is handled from :meth:`relay`)."""
        self.threads = [threading.Thread(target=_follow, args=(i, p, pool, self.events), daemon=True)
                        for i, p in enumerate(self.procs)]
        for t in self.threads:
            t.start()

    def _handle(self, event: tuple[int, str, Any]) -> None:
        i, kind, value = event
        if kind == "progress":
            self.bar.update(value)
        elif kind == "report":
            self.reports[i] = value
        else:  # the process ended
            self.running -= 1
            if self.procs[i].wait() != 0 or self.reports[i] is None:
                tail = value.decode(errors="replace").strip().splitlines()[-5:]
                raise ImportWorkerError(f"import process {i + 1} of {self.total} "
                                        f"{exit_reason(self.procs[i].returncode)}: " + (" | ".join(tail) or "no output"))

    def relay(self, bar: Any) -> "_RelayBar":
        """A bar for the caller's own tasks that also handles the processes' events in between (their progress
        goes to ``bar`` too)."""
        self.bar = bar
        return _RelayBar(self)

    def finish(self) -> list[dict]:
        """Wait for every process; their reports."""
        while self.running:
            self._handle(self.events.get())
        return [r for r in self.reports if r is not None]

    def close(self) -> None:
        """Kill what still runs (after a failure) and reap everything."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for t in getattr(self, "threads", ()):
            t.join(timeout=10)


class _RelayBar:
    """The bar of the caller's own tasks: its updates, and the processes' events handled in between."""

    def __init__(self, owner: ImportProcesses) -> None:
        self.owner = owner

    def update(self, n: int = 1) -> None:
        self.owner.bar.update(n)
        while True:
            try:
                event = self.owner.events.get_nowait()
            except queue.Empty:
                return
            self.owner._handle(event)  # a failed process raises here: the import stops at once


def _send(stream: IO[bytes], task: list) -> None:
    stream.write(json.dumps([tag(g) for g in task]).encode() + b"\n")
    stream.flush()


def _follow(index: int, proc: Any, pool: TaskPool, events: queue.Queue) -> None:
    """Answer a process's task requests and turn its other stdout lines into events; ``("end", stderr)`` when it closes."""
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None  # all PIPE
    err: list[bytes] = []
    drain = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    drain.start()
    for line in proc.stdout:
        kind, _, value = line.decode().partition(" ")
        kind = kind.strip()
        if kind == "next":
            try:
                _send(proc.stdin, pool.take())
            except (BrokenPipeError, ValueError):  # the process is gone: its end event follows
                pass
        elif kind == "progress":
            events.put((index, "progress", int(value)))
        elif kind == "report":
            events.put((index, "report", json.loads(value)))
    drain.join()
    events.put((index, "end", b"".join(err)))


class _LineBar:
    """A progress bar for the import of a helper process that prints ``progress N`` lines for the parent."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def update(self, n: int = 1) -> None:
        if n:
            self.out.write(f"progress {n}\n")
            self.out.flush()

    def close(self) -> None:
        pass


def _parent_tasks(requests: IO[str], answers: IO[bytes]) -> Iterator[list]:
    """The tasks the parent hands out: one is always asked for ahead, so none waits for an answer."""
    requests.write("next\n")
    requests.flush()
    while True:
        line = answers.readline()
        task = [untag(g) for g in json.loads(line)] if line.strip() else []
        if not task:
            return
        requests.write("next\n")
        requests.flush()
        yield task


def _serve_tasks(src: str, store: str, lines: IO[str], tasks: IO[bytes], *, verify: bool, pause_gc: bool) -> None:
    """A helper's work: import the tasks read from ``tasks``, asking for them (and reporting) on ``lines``."""
    from .transfer import import_tasks

    report = import_tasks(src, store, _parent_tasks(lines, tasks), progress=lambda **_: _LineBar(lines),
                          verify=verify, pause_gc=pause_gc)
    lines.write("report " + json.dumps(dataclasses.asdict(report)) + "\n")
    lines.flush()


def _import_tasks_main(args: list[str]) -> int:
    """``python -m gamestore.ringrift.workers SRC STORE [--verify] [--pause-gc]``: import the tasks read from stdin."""
    _serve_tasks(args[0], args[1], sys.stdout, sys.stdin.buffer, verify="--verify" in args,
                 pause_gc="--pause-gc" in args)
    return 0


if __name__ == "__main__":
    sys.exit(_import_tasks_main(sys.argv[1:]))
