"""AsyncGameReplayDB: every method awaitable with the sync reader's results, and the event loop never blocked."""
from __future__ import annotations

import asyncio
import inspect
import time

import pytest

from gamestore.compat import AsyncGameReplayDB, GameReplayDB
from gamestore.ringrift.transfer import import_sqlite

pytestmark = pytest.mark.single_backend

_ITERATORS = {"iterate_games", "iterate_games_with_probs", "get_nnue_features_for_training"}


@pytest.fixture(scope="module")
def store(tmp_path_factory, ringrift_dbs):
    base = tmp_path_factory.mktemp("compat_async")
    path = ringrift_dbs["ringrift_v18_history"]
    import_sqlite(path, base / "store", progress=False, workers=0)
    return base / "store"


def _public(cls) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}


def test_every_method_awaitable_with_the_same_results(store):
    sync_methods = _public(GameReplayDB) - {"close"}
    assert sync_methods <= _public(AsyncGameReplayDB)
    for name in sync_methods - _ITERATORS:
        assert inspect.iscoroutinefunction(getattr(AsyncGameReplayDB, name)), name
        ours = [p.name for p in inspect.signature(getattr(AsyncGameReplayDB, name)).parameters.values()]
        assert ours == [p.name for p in inspect.signature(getattr(GameReplayDB, name)).parameters.values()], name

    async def main():
        sync = GameReplayDB(store, models=False)
        async with AsyncGameReplayDB(store, models=False) as db:
            gid = (await db.query_games(limit=1))[0]["game_id"]
            assert await db.get_game_metadata(gid) == sync.get_game_metadata(gid)
            assert await db.get_moves(gid, 2, 9) == sync.get_moves(gid, 2, 9)
            assert await db.get_move_records(gid) == sync.get_move_records(gid)
            assert await db.get_stats() == sync.get_stats()
            assert await db.get_game_count(num_players=2) == sync.get_game_count(num_players=2)
            assert await db.get_all_history_entries(gid, False) == sync.get_all_history_entries(gid, False)
            assert await db.get_state_at_move(gid, 20) == sync.get_state_at_move(gid, 20)
            games = [g async for g in db.iterate_games_with_probs()]
            assert games == list(sync.iterate_games_with_probs())
            rows = await db.execute("SELECT game_id, total_moves FROM games WHERE game_id = ?", (gid,))
            assert rows[0]["total_moves"] == sync.get_game_metadata(gid)["total_moves"]
            assert await db.checkpoint_wal() == (0, 0)
        sync.close()

    asyncio.run(main())


def test_loop_is_not_blocked(store, monkeypatch):
    """A ticker on the loop keeps ticking while slow reads run: they run in the reader's threads.

    A read run on the loop would stop the ticker for at least ``delay``; the
    bound leaves half of it for scheduling noise on a loaded machine.
    """
    delay = 1.0
    real = GameReplayDB.get_moves

    def slow_get_moves(self, *args, **kwargs):  # stands for a slow disk: sleeps without the GIL
        time.sleep(delay)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GameReplayDB, "get_moves", slow_get_moves)

    async def main() -> float:
        db = AsyncGameReplayDB(store, models=False)
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker():
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        gid = (await db.query_games(limit=1))[0]["game_id"]  # the store opens in a thread too
        results = await asyncio.gather(*(db.get_moves(gid) for _ in range(4)))
        assert all(r == results[0] and r for r in results)
        stop.set()
        await tick
        await db.close()
        return max(gaps)

    assert asyncio.run(main()) < delay / 2
