"""``import_sqlite(workers=N)``: helper processes forked after the imports (or spawned), and what a failed one leaves."""
from __future__ import annotations

import os
import signal
import sqlite3
import threading

import pytest

import gamestore.store as store_mod
from gamestore.errors import GamestoreError, ImportWorkerError
from gamestore.ringrift import workers
from gamestore.ringrift.forked import ForkedHelper, exit_reason
from gamestore.ringrift.mapping import compare_rows
from gamestore.ringrift.tables import COLUMNS
from gamestore.ringrift.transfer import export_sqlite, import_sqlite
from helpers.replaydb import replay_tables


def _starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the start method of every ImportProcesses made."""
    seen: list[str] = []
    real = workers.ImportProcesses._start

    def spy(self, *args, **kwargs):
        seen.append(self.start)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(workers.ImportProcesses, "_start", spy)
    return seen


def test_helpers_are_forked_when_no_other_thread_runs_else_spawned(ringrift_dbs, tmp_path, monkeypatch):
    """The same games either way: forked helpers when this is the only Python thread, interpreters otherwise."""
    src = ringrift_dbs["ringrift_v18_history"]
    expected = replay_tables(src)
    starts = _starts(monkeypatch)
    alone = threading.active_count() == 1  # (a thread left by another test would make both spawn)
    for name, other_thread in (("forked", False), ("spawned", True)):
        stop = threading.Event()
        runner = threading.Thread(target=stop.wait) if other_thread else None
        if runner is not None:
            runner.start()
        try:
            report = import_sqlite(src, tmp_path / name, progress=False, workers=2, verify=True)
        finally:
            stop.set()
            if runner is not None:
                runner.join()
        assert report.failed == [] and report.games_written == 2 and report.moves_written == 248
        out = replay_tables(export_sqlite(tmp_path / name, tmp_path / f"{name}.db", progress=False).destination)
        for table in COLUMNS:
            assert compare_rows(table, expected[table], out[table]) == [], (name, table)
    assert starts == (["fork", "spawn"] if alone else ["spawn", "spawn"])


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_a_failing_import_process_is_an_error_naming_it(tmp_path, start):
    class Bar:
        def update(self, n: int = 1) -> None:
            pass

    helpers = workers.ImportProcesses(tmp_path / "missing.db", tmp_path / "store", 1, verify=False, pause_gc=False,
                                      start=start)
    try:
        helpers.serve(workers.TaskPool(["a", "b"], 2))
        helpers.relay(Bar())
        with pytest.raises(ImportWorkerError, match=r"import process 1 of 2 exited with code 1: .*FileNotFoundError: "
                                                    r"no SQLite file") as info:
            helpers.finish()
        assert isinstance(info.value, GamestoreError) and isinstance(info.value, RuntimeError)
    finally:
        helpers.close()


def test_a_killed_helper_is_a_typed_error_and_loses_nothing_committed(ringrift_dbs, tmp_path, monkeypatch):
    """SIGKILL of a forked helper mid-import: ImportWorkerError naming the signal; the games committed before
    (another import's, and this one's own) are all intact, and running the import again completes it."""
    store = tmp_path / "store"
    first = import_sqlite(ringrift_dbs["ringrift_v18_history"], store, progress=False, workers=0)
    assert first.games_written == 2
    src = ringrift_dbs["ringrift_v18_sample"]
    helpers: list[ForkedHelper] = []
    real_init = ForkedHelper.__init__

    def record(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        helpers.append(self)

    monkeypatch.setattr(ForkedHelper, "__init__", record)
    monkeypatch.setattr(workers, "fork_is_safe", lambda: True)
    real_take = workers.TaskPool.take
    asked = {"n": 0}

    def take(self):
        task = real_take(self)
        if threading.current_thread() is not threading.main_thread():  # a helper asks (its follower thread)
            asked["n"] += 1
            if asked["n"] == 2:  # it holds a task and asks for the next: mid-import
                os.kill(helpers[0].pid, signal.SIGKILL)
        return task

    monkeypatch.setattr(workers.TaskPool, "take", take)
    with pytest.raises(ImportWorkerError, match=r"import process 1 of 2 was killed by signal SIGKILL"):
        import_sqlite(src, store, progress=False, workers=2)
    assert len(helpers) == 1 and helpers[0].returncode == -signal.SIGKILL
    monkeypatch.undo()

    expected = {name: replay_tables(ringrift_dbs[name]) for name in ("ringrift_v18_history", "ringrift_v18_sample")}
    with store_mod.open(store, create=False) as st:
        kept = set(st.query_games(None, columns=["game_id"]).column("game_id").to_pylist())
    sample_ids = {r[0] for r in expected["ringrift_v18_sample"]["games"]}
    history_ids = {r[0] for r in expected["ringrift_v18_history"]["games"]}
    assert history_ids <= kept and kept - history_ids < sample_ids  # the earlier import whole; this one in part
    out = replay_tables(export_sqlite(store, tmp_path / "partial.db", progress=False).destination)
    for table in COLUMNS:  # what is stored is stored exactly
        if table in ("schema_metadata", "orphaned_games"):
            continue
        want = [r for name in expected for r in expected[name][table] if r[0] in kept]
        assert compare_rows(table, sorted(want, key=repr), sorted(out[table], key=repr)) == [], table

    again = import_sqlite(src, store, progress=False, workers=2)
    assert again.failed == [] and again.games_already_stored == len(kept - history_ids)
    assert again.games_written == 10 - again.games_already_stored
    out = replay_tables(export_sqlite(store, tmp_path / "whole.db", progress=False).destination)
    for table in COLUMNS:
        if table in ("schema_metadata", "orphaned_games"):
            continue
        want = expected["ringrift_v18_history"][table] + expected["ringrift_v18_sample"][table]
        assert compare_rows(table, sorted(want, key=repr), sorted(out[table], key=repr)) == [], table


def test_a_forked_helper_reports_its_exit(tmp_path):
    """ForkedHelper: the target's lines arrive, stderr carries a failure's traceback, exit codes as Popen's."""

    def ok(lines, tasks):
        lines.write("hello " + tasks.readline().decode())

    def fails(lines, tasks):
        raise sqlite3.OperationalError("boom")

    helper = ForkedHelper(ok, close_in_child=[])
    helper.stdin.write(b"world\n")
    helper.stdin.close()
    assert helper.stdout.read() == b"hello world\n" and helper.wait() == 0 and helper.stderr.read() == b""
    bad = ForkedHelper(fails, close_in_child=[])
    assert bad.wait() == 1 and b"sqlite3.OperationalError: boom" in bad.stderr.read()
    assert exit_reason(1) == "exited with code 1" and exit_reason(-9) == "was killed by signal SIGKILL"
    for h in (helper, bad):
        for f in (h.stdin, h.stdout, h.stderr):
            f.close()
