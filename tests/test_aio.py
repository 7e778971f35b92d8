"""The async facade: every call awaitable, none of them run on the event loop thread."""
from __future__ import annotations

import asyncio
import sys
import threading

import numpy as np
import pyarrow as pa
import pytest

import gamestore
from gamestore import codec
from gamestore.aio import AsyncGameStore
from gamestore.catalog import Catalog
from gamestore.errors import GameNotFoundError, GameWriterError, QueryError, RecordError
from gamestore.records import games_equal, normalize_game

from helpers.mp_workers import make_games


@pytest.fixture(scope="module")
def games():
    return make_games("aio", 6, seed=11, max_moves=25)


def run(coro):
    return asyncio.run(coro)


def test_open_async_is_exported():
    assert gamestore.open_async is gamestore.aio.open_async
    assert gamestore.AsyncGameStore is AsyncGameStore


def test_whole_api_round_trip(tmp_path, games):
    async def main():
        async with gamestore.open_async(tmp_path / "s") as store:
            assert isinstance(store, AsyncGameStore)
            assert await store.write_games(games[:4]) == 4
            assert await store.count_games() == 0  # buffered
            await store.flush()
            assert await store.count_games() == 4
            assert await store.count_games("board_type = 'square8'") == sum(g["board_type"] == "square8" for g in games[:4])
            assert await store.count_moves() == sum(len(g["moves"]) for g in games[:4])
            assert await store.contains(games[0]["game_id"]) and not await store.contains("nope")
            vectors = store.sync.vectors
            for g in games[:4]:
                assert games_equal(await store.get_game(g["game_id"]), normalize_game(g, vectors=vectors))
            t = await store.query_games(columns=["game_id", "num_moves"], order_by="game_id", limit=3)
            assert t.column("game_id").to_pylist() == sorted(g["game_id"] for g in games[:4])[:3]
            locs = await store.game_locations()
            assert locs.num_rows == 4
            rows = 0
            async for batch in store.scan_moves(columns=["game_id", "move_number"], batch_size=7):
                assert isinstance(batch, pa.RecordBatch) and batch.num_rows <= 7
                rows += batch.num_rows
            assert rows == await store.count_moves()
            table = await store.sql("SELECT board_type, count(*) AS n FROM games GROUP BY 1 ORDER BY 1")
            assert isinstance(table, pa.Table) and sum(table.column("n").to_pylist()) == 4
            assert await store.sql("SELECT count(*) FROM moves").fetchval() == rows
            assert await store.sql("SELECT 1, 2").fetchone() == (1, 2)
            assert await store.sql("SELECT 1 WHERE false").fetchone() is None
            assert len(await store.sql("SELECT game_id FROM games").fetchall()) == 4
            assert (await store.sql_fetch("SELECT count(*) AS n FROM players")).num_rows == 1
            sizes = [b.num_rows async for b in store.sql("SELECT game_id FROM games").batches(3)]
            assert sum(sizes) == 4
            info = await store.info()
            assert info["games"] == 4
            await store.put_meta("run", {"iteration": 3})
            assert await store.get_meta("run") == {"iteration": 3}
            assert await store.meta_names() == ["run"]
            assert await store.run_sync(lambda s: len(s)) == 4
            await store.declare_vectors({"value_head": 2})
            assert "value_head" in store.sync.vectors
            await store.refresh()
            await store.write_games(games[4:])  # sealed by close()
        assert store.closed
        with gamestore.open(tmp_path / "s", create=False) as s:
            assert s.count_games() == 6

    run(main())


def test_await_open_and_errors(tmp_path, games):
    async def main():
        store = await gamestore.open_async(tmp_path / "s", shard_games=2)
        try:
            with pytest.raises(GameNotFoundError):
                await store.get_game("missing")
            with pytest.raises(KeyError):
                await store.get_game("missing")
            with pytest.raises(QueryError):
                await store.sql("SELECT nope FROM games")
            with pytest.raises(QueryError):
                await store.count_games("no_such_column = 1")
            bad = dict(games[0], num_players="two")
            with pytest.raises(RecordError):
                await store.write_games([bad])
            # shard_games=2: a full buffer is sealed without flush(), by a helper thread (gamestore/sealing.py)
            await store.write_games(games[:1])
            assert await store.count_games() == 0
            await store.write_games(games[1:3])
            for _ in range(6000):  # visible to this handle once committed, without a flush
                if await store.count_games() == 3:
                    break
                await asyncio.sleep(0.01)
            assert await store.count_games() == 3
        finally:
            await store.close()
        await store.close()  # idempotent
        with pytest.raises(gamestore.StoreClosedError):
            await store.count_games()
        with pytest.raises(gamestore.StoreNotFoundError):
            await gamestore.open_async(tmp_path / "absent", create=False)

    run(main())


def test_no_call_runs_on_the_loop_thread(tmp_path, games, monkeypatch):
    """Encoding and every catalog refresh (file I/O, DuckDB) happen in the pool, never on the loop."""
    threads: list[int] = []
    orig_encode, orig_refresh = codec.encode_games, Catalog.refresh

    def encode_games(*a, **k):
        threads.append(threading.get_ident())
        return orig_encode(*a, **k)

    def refresh(self, *a, **k):
        threads.append(threading.get_ident())
        return orig_refresh(self, *a, **k)

    monkeypatch.setattr(codec, "encode_games", encode_games)
    monkeypatch.setattr(Catalog, "refresh", refresh)

    async def main():
        loop_thread = threading.get_ident()
        async with gamestore.open_async(tmp_path / "s") as store:
            await store.write_games(games[:2])
            await store.flush()
            await store.count_games()
            await store.get_game(games[0]["game_id"])
            await store.query_games()
            await store.sql("SELECT count(*) FROM games").fetchall()
            async for _ in store.scan_moves():
                pass
            async with store.game_writer("gw-1", board_type="hex8", num_players=2) as w:
                await w.add_move(move_type="x")
                await w.finalize()
        return loop_thread

    loop_thread = run(main())
    assert len(threads) >= 8
    assert loop_thread not in threads


def test_loop_runs_while_a_write_is_in_progress(tmp_path):
    many = make_games("busy", 12, seed=5, max_moves=200)

    async def main():
        async with gamestore.open_async(tmp_path / "s") as store:
            ticks = 0
            done = False

            async def ticker():
                nonlocal ticks
                while not done:
                    ticks += 1
                    await asyncio.sleep(0)

            task = asyncio.ensure_future(ticker())
            await asyncio.sleep(0)
            before = ticks
            await store.write_games(many)
            await store.flush()
            during = ticks - before
            done = True
            await task
            return during

    # a blocking call would have let the ticker run at most once
    assert run(main()) > 2


def test_async_game_writer(tmp_path, games):
    g = games[0]
    header = {k: v for k, v in g.items() if k not in ("moves", "game_id", "winner")}

    async def main():
        async with gamestore.open_async(tmp_path / "s") as store:
            async with store.game_writer(g["game_id"], **header) as w:
                assert w.game_id == g["game_id"] and w.state == "open"
                for m in g["moves"]:
                    await w.add_move(m)
                assert w.num_moves == len(g["moves"])
                assert await w.finalize(winner=g.get("winner")) == g["game_id"]
            with pytest.raises(GameWriterError):
                await w.add_move(move_type="x")
            with pytest.raises(RuntimeError):
                async with store.game_writer("boom", board_type="hex8", num_players=2) as w2:
                    await w2.add_move(move_type="x")
                    raise RuntimeError("worker died")
            assert w2.state == "aborted"
            w3 = await store.game_writer("explicit", board_type="hex8", num_players=2)
            # a vector seen for the first time is declared (a config write, done in the pool)
            await w3.add_move(move_type="x", vectors={"value_target": np.array([0.5, -0.5], np.float32)})
            await w3.abort()
            assert "value_target" in store.sync.vectors
            await store.flush()
            assert await store.count_games() == 1
            assert games_equal(await store.get_game(g["game_id"]), normalize_game(g, vectors=store.sync.vectors))
            assert not await store.contains("boom") and not await store.contains("explicit")

    run(main())


def test_flush_interval_makes_writes_visible_to_other_processes(tmp_path, games):
    async def main():
        async with gamestore.open_async(tmp_path / "s", flush_interval=0.05) as store:
            await store.write_games(games[:2])
            with gamestore.open(tmp_path / "s", create=False) as other:
                for _ in range(2000):  # liveness bound, not a timing assertion
                    if other.count_games() == 2:
                        break
                    await asyncio.sleep(0.01)
                assert other.count_games() == 2
            assert store.flush_errors == []

    run(main())
    with pytest.raises(ValueError):
        run(_open_bad_interval(tmp_path))


async def _open_bad_interval(tmp_path):
    await gamestore.open_async(tmp_path / "bad", flush_interval=0)


def test_scan_stopped_early_and_concurrent_calls(tmp_path, games):
    async def main():
        async with gamestore.open_async(tmp_path / "s", workers=3) as store:
            await store.write_games(games)
            await store.flush()
            async for batch in store.scan_moves(batch_size=5):
                assert batch.num_rows == 5
                break
            agen = store.scan_moves(batch_size=5)
            await agen.__anext__()
            await agen.aclose()
            results = await asyncio.gather(
                *[store.get_game(g["game_id"]) for g in games],
                *[store.count_games(f"game_id = '{g['game_id']}'") for g in games],
                store.sql("SELECT count(*) FROM moves").fetchval(),
            )
            assert [r["game_id"] for r in results[: len(games)]] == [g["game_id"] for g in games]
            assert results[len(games) : 2 * len(games)] == [1] * len(games)
            assert results[-1] == sum(len(g["moves"]) for g in games)

    run(main())


def test_shared_executor_is_not_shut_down(tmp_path, games):
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(2)

    async def main():
        async with gamestore.open_async(tmp_path / "s", executor=pool) as store:
            await store.write_games(games[:1])

    try:
        run(main())
        assert pool.submit(lambda: 42).result() == 42
    finally:
        pool.shutdown()


def test_switch_interval_only_when_asked_and_restored(tmp_path):
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)

        async def main(**kw):
            async with gamestore.open_async(tmp_path / "s", **kw):
                return sys.getswitchinterval()

        assert run(main()) == pytest.approx(0.005)  # the default: the process setting is left alone
        assert sys.getswitchinterval() == pytest.approx(0.005)
        assert run(main(switch_interval=0.002)) == pytest.approx(0.002)
        assert sys.getswitchinterval() == pytest.approx(0.005)  # restored on close
        sys.setswitchinterval(0.001)
        assert run(main(switch_interval=0.004)) == pytest.approx(0.001)  # never raised
        assert sys.getswitchinterval() == pytest.approx(0.001)
        sys.setswitchinterval(0.005)
        with pytest.raises(ValueError):
            run(main(switch_interval=0))
        assert sys.getswitchinterval() == pytest.approx(0.005)

        async def two():  # two stores: the lowest applies while both are open; the first setting comes back
            a = await gamestore.open_async(tmp_path / "a", switch_interval=0.003)
            b = await gamestore.open_async(tmp_path / "b", switch_interval=0.002)
            seen = [sys.getswitchinterval()]
            await b.close()
            seen.append(sys.getswitchinterval())
            await a.close()
            return seen + [sys.getswitchinterval()]

        assert run(two()) == pytest.approx([0.002, 0.003, 0.005])
    finally:
        sys.setswitchinterval(before)


def test_unfinished_scan_after_close(tmp_path, games):
    async def main():
        store = await gamestore.open_async(tmp_path / "s")
        await store.write_games(games[:3])
        await store.flush()
        agen = store.scan_moves(batch_size=4)
        assert (await agen.__anext__()).num_rows == 4
        await store.close()
        await agen.aclose()  # the pool is gone: the scan is closed on the loop, without an error

    run(main())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is a Linux feature")
def test_worker_niceness_lowers_pool_thread_priority(tmp_path):
    import os

    async def main(n):
        async with gamestore.open_async(tmp_path / "s", worker_niceness=n) as store:
            return await store.run_sync(lambda s: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert run(main(0)) == base
    assert run(main(3)) == min(19, base + 3)
