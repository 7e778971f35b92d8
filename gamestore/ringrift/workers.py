"""Reading a GameReplayDB and splitting its games into records, here or in worker processes.

:func:`map_games` turns the rows of some games into records.
:func:`map_parallel` runs it in worker processes (``python -m
gamestore.ringrift.workers SRC``: each opens the file read-only itself and
answers pickled task lists on stdin with pickled results on stdout), so an
import parses games on every core while the calling process writes.  Plain
subprocesses rather than ``multiprocessing``: nothing is forked from a
process holding DuckDB or SQLite handles, and the caller's ``__main__`` is
never re-imported.
"""
from __future__ import annotations

import os
import gc
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import GamestoreError, RecordError
from .mapping import compare_rows, record_to_rows, rows_to_record
from .sqlite_io import connect_readonly, read_games, schema_report
from .tables import GAME_TABLES

__all__ = ["map_games", "map_serial", "map_parallel", "TASK_GAMES"]

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


def map_parallel(
    src: str | os.PathLike, ids: Sequence, workers: int, verify: bool, *, pause_gc: bool = False
) -> Iterator[Batch]:
    """:func:`map_serial` in ``workers`` processes; batches come back in order, at most 2 per worker in flight.

    ``pause_gc``: the worker processes run with the garbage collector disabled.

    A thread per worker drains its pipe as results arrive (so no worker waits
    for the parent to reach its turn); the calling thread unpickles in order.
    """
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "gamestore.ringrift.workers", str(Path(src).resolve())] + (["--pause-gc"] if pause_gc else [])
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env) for _ in range(workers)]
    inboxes: list[queue.Queue] = [queue.Queue() for _ in procs]
    readers = [threading.Thread(target=_drain, args=(p.stdout, q), daemon=True) for p, q in zip(procs, inboxes)]
    for t in readers:
        t.start()
    pending: deque = deque()  # worker index of each task sent, in order
    try:
        tasks = iter(range(0, len(ids), TASK_GAMES))
        turn = 0

        def send() -> None:
            nonlocal turn
            k = next(tasks, None)
            if k is not None:
                w = turn % workers
                stdin = procs[w].stdin
                assert stdin is not None  # Popen(stdin=PIPE)
                pickle.dump((list(ids[k : k + TASK_GAMES]), verify), stdin, protocol=pickle.HIGHEST_PROTOCOL)
                stdin.flush()
                pending.append(w)
                turn += 1

        for _ in range(2 * workers):
            send()
        while pending:
            w = pending.popleft()
            payload = inboxes[w].get()
            if payload is None:
                raise GamestoreError(f"import worker exited with code {procs[w].wait()}")
            result = pickle.loads(payload)
            if isinstance(result, BaseException):
                raise result
            send()
            yield result
    finally:
        for proc in procs:
            if pending:  # stopped early: nobody will read what the workers are writing
                proc.kill()
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
            except OSError:
                pass
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for t in readers:
            t.join(timeout=10)
        for proc in procs:
            if proc.stdout is not None:
                proc.stdout.close()


_HEADER = struct.Struct("<Q")


def _drain(stream, inbox: queue.Queue) -> None:
    """Move length-prefixed payloads from a worker's stdout to ``inbox``; None at the end."""
    try:
        while True:
            head = stream.read(_HEADER.size)
            if len(head) < _HEADER.size:
                break
            (size,) = _HEADER.unpack(head)
            payload = stream.read(size)
            if len(payload) < size:
                break
            inbox.put(payload)
    except (OSError, ValueError):
        pass
    inbox.put(None)


def _serve(src: str) -> int:
    """Worker loop: read ``(ids, verify)`` tasks from stdin until EOF, write each batch to stdout."""
    con = connect_readonly(src)
    report_schema = schema_report(con)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the result stream
    while True:
        try:
            ids, verify = pickle.load(inp)
        except EOFError:
            return 0
        result: Any
        try:
            result = map_games(con, report_schema, ids, verify)
        except Exception as exc:  # reported in the parent
            result = GamestoreError(f"import worker failed: {type(exc).__name__}: {exc}")
        payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_HEADER.pack(len(payload)))
        out.write(payload)
        out.flush()


if __name__ == "__main__":
    if "--pause-gc" in sys.argv[2:]:  # asked by map_parallel(pause_gc=True): this process is ours alone
        gc.disable()
    sys.exit(_serve(sys.argv[1]))
