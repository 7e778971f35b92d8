"""Async lifecycle (issue 9, must-have 6): close() from any loop or thread seals buffered games or raises
without losing them; a cancelled write runs to its end before the CancelledError arrives; closing while other
threads or tasks work gives StoreClosedError (docs/concurrency.md, "Cancellation" and "Closing")."""
from __future__ import annotations

import asyncio
import errno
import threading
import time

import pytest

import gamestore
from gamestore import store as store_mod
from gamestore.errors import DuplicateGameError, RecordError, StoreClosedError, StoreFullError
from gamestore.testing import synth


def test_close_from_another_loop_flushes_buffered_games(tmp_path):
    games = synth.games(3, seed=31)
    holder = {}

    async def opener():
        store = await gamestore.open_async(tmp_path / "s", flush_interval=3600.0)
        await store.write_games(games)  # buffered: the flusher would seal them in an hour
        holder["store"] = store

    loop_a = asyncio.new_event_loop()
    loop_a.run_until_complete(opener())
    # a different loop, in another thread, closes the store while loop A is idle (not running)
    errors = []

    def closer():
        try:
            asyncio.run(holder["store"].close())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=closer)
    t.start()
    t.join()
    loop_a.run_until_complete(asyncio.sleep(0))  # let loop A process the cancellation
    loop_a.close()
    assert errors == []
    with gamestore.open(tmp_path / "s", create=False) as s:
        assert sorted(s.query_games(columns=["game_id"]).column("game_id").to_pylist()) == sorted(
            g["game_id"] for g in games
        )


def test_close_from_the_opening_loop_still_flushes(tmp_path):
    games = synth.games(2, seed=32)

    async def run():
        store = await gamestore.open_async(tmp_path / "s", flush_interval=3600.0)
        await store.write_games(games)
        await store.close()

    asyncio.run(run())
    with gamestore.open(tmp_path / "s", create=False) as s:
        assert s.count_games() == 2


def stored(path) -> int:
    """How many games a new handle finds at ``path``."""
    with gamestore.open(path, create=False) as s:
        return s.count_games()


# -- cancellation: a cancelled write runs to its end; the CancelledError comes once it has -------------------------
def _pool_started(games: list[dict], started: threading.Event):
    """A generator of ``games`` (consumed in the pool) that tells when the write has begun."""
    def gen():
        started.set()
        time.sleep(0.05)  # the cancellation arrives while the write runs
        yield from games
    return gen()


def test_cancelled_write_games_is_written_entirely(tmp_path):
    games = synth.games(6, seed=33)

    async def run():
        store = await gamestore.open_async(tmp_path / "s")
        started = threading.Event()
        task = asyncio.ensure_future(store.write_games(_pool_started(games, started)))
        while not started.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # when the CancelledError arrives the write has ended: every game is in the buffer, none is missing
        with pytest.raises(DuplicateGameError):
            await store.write_games(games[:1])
        assert await store.write_games(games, on_duplicate="skip") == 0
        await store.close()

    asyncio.run(run())
    assert stored(tmp_path / "s") == 6


def test_write_cancelled_before_it_started_is_written_too(tmp_path):
    games = synth.games(3, seed=34)

    async def run():
        store = await gamestore.open_async(tmp_path / "s", workers=1)
        gate = threading.Event()
        busy = asyncio.ensure_future(store.run_sync(lambda s: gate.wait(10)))  # the only pool thread is taken
        task = asyncio.ensure_future(store.write_games(games))
        await asyncio.sleep(0.01)
        task.cancel()  # the write is still queued
        asyncio.get_running_loop().call_later(0.05, gate.set)
        with pytest.raises(asyncio.CancelledError):
            await task
        await busy
        assert await store.write_games(games, on_duplicate="skip") == 0  # all three were accepted
        await store.close()

    asyncio.run(run())
    assert stored(tmp_path / "s") == 3


def test_cancelled_write_with_a_bad_record_says_why(tmp_path):
    games = synth.games(3, seed=35)
    bad = dict(games[2], num_players="two")

    async def run():
        store = await gamestore.open_async(tmp_path / "s")
        started = threading.Event()
        task = asyncio.ensure_future(store.write_games(_pool_started(games[:2] + [bad], started)))
        while not started.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        assert isinstance(info.value.__cause__, RecordError) and info.value.__cause__.game_index == 2
        await store.close()

    asyncio.run(run())
    assert stored(tmp_path / "s") == 2  # the games before the bad record, as without the cancellation


def test_timed_out_flush_has_committed(tmp_path):
    games = synth.games(4, seed=36)

    async def run():
        store = await gamestore.open_async(tmp_path / "s")
        await store.write_games(games)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.001):
                await store.flush()
        # the timeout raised only once the seal had ended: another process sees the games now
        with gamestore.open(tmp_path / "s", create=False) as other:
            assert other.count_games() == 4
        await store.close()

    asyncio.run(run())


# -- close while other threads and tasks work -------------------------------------------------------------------------
def _readers(store: gamestore.GameStore, gid: str) -> dict:
    return {
        "sql": lambda: store.sql("SELECT count(*) FROM moves").fetchall(),
        "scan": lambda: sum(b.num_rows for b in store.scan_moves(batch_size=64)),
        "get_game": lambda: store.get_game(gid),
        "count": lambda: store.count_games("num_players = 2"),
    }


def test_close_while_threads_read_gives_store_closed_error(tmp_path):
    games = synth.games(8, seed=37)
    with gamestore.open(tmp_path / "s") as s:
        s.write_games(games)
    store = gamestore.open(tmp_path / "s", create=False)
    outcomes: dict[str, list] = {}
    ready = threading.Barrier(5)

    def loop(name, fn):
        ready.wait()
        try:
            while True:
                fn()
        except BaseException as exc:  # noqa: BLE001 - every outcome is recorded and checked
            outcomes.setdefault(name, []).append(exc)

    threads = [threading.Thread(target=loop, args=item) for item in _readers(store, games[0]["game_id"]).items()]
    for t in threads:
        t.start()
    ready.wait()
    time.sleep(0.3)
    store.close()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["count", "get_game", "scan", "sql"]
    for name, excs in outcomes.items():
        assert [type(e) for e in excs] == [StoreClosedError], (name, excs)


def test_close_while_tasks_read_gives_store_closed_error(tmp_path):
    games = synth.games(8, seed=38)

    async def reader(store, name):
        try:
            while True:
                if name == "scan":
                    async for _ in store.scan_moves(batch_size=64):
                        pass
                elif name == "sql":
                    await store.sql("SELECT count(*) FROM moves").fetchall()
                else:
                    await store.get_game(games[0]["game_id"])
        except StoreClosedError:
            return "closed"

    async def run():
        store = await gamestore.open_async(tmp_path / "s")
        await store.write_games(games)
        await store.flush()
        tasks = [asyncio.ensure_future(reader(store, n)) for n in ("scan", "sql", "get_game")]
        await asyncio.sleep(0.3)
        await store.close()
        return await asyncio.wait_for(asyncio.gather(*tasks), 30)

    assert asyncio.run(run()) == ["closed"] * 3


def test_relation_consumed_after_close(tmp_path):
    with gamestore.open(tmp_path / "s") as s:
        s.write_games(synth.games(2, seed=39))
    s = gamestore.open(tmp_path / "s", create=False)
    rel = s.sql("SELECT game_id FROM games")
    scan = s.scan_moves()
    s.close()
    with pytest.raises(StoreClosedError):
        rel.fetchall()
    with pytest.raises(StoreClosedError):
        next(iter(scan))


# -- a close that cannot seal keeps the store open and the games buffered ---------------------------------------------
def _full_once(monkeypatch):
    real = store_mod.write_shard
    calls = []

    def write_shard(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise StoreFullError(errno.ENOSPC, "disk full (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(store_mod, "write_shard", write_shard)


def test_close_that_cannot_seal_raises_and_loses_nothing(tmp_path, monkeypatch):
    games = synth.games(3, seed=40)
    store = gamestore.open(tmp_path / "s")
    store.write_games(games)
    _full_once(monkeypatch)
    with pytest.raises(StoreFullError):
        store.close()
    assert not store.closed and store.count_games() == 0  # still open; the games are still buffered
    store.close()
    assert stored(tmp_path / "s") == 3


def test_async_close_that_cannot_seal_raises_and_loses_nothing(tmp_path, monkeypatch):
    games = synth.games(3, seed=41)

    async def run():
        store = await gamestore.open_async(tmp_path / "s", flush_interval=3600.0)
        await store.write_games(games)
        _full_once(monkeypatch)
        with pytest.raises(StoreFullError):
            await store.close()
        assert not store.closed
        await store.close()
        assert store.closed

    asyncio.run(run())
    assert stored(tmp_path / "s") == 3


@pytest.mark.parametrize("step", ["refresh", "parser"])
def test_sql_while_the_store_closes_gives_store_closed_error(tmp_path, step):
    """A close in another thread between sql()'s open check and its statement: the catalog's connections are
    gone, and the caller gets StoreClosedError, not DuckDB's "Connection already closed" (seen under load in
    test_close_while_tasks_read_gives_store_closed_error)."""
    s = gamestore.open(tmp_path / "s")
    s.write_games(synth.games(2, seed=40))
    real = getattr(s._catalog, step)

    def closing_first(*args, **kwargs):
        s.close()
        return real(*args, **kwargs)

    setattr(s._catalog, step, closing_first)
    with pytest.raises(StoreClosedError, match="closed during sql"):
        s.sql("SELECT count(*) FROM moves")
