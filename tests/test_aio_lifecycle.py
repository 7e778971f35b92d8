"""Async lifecycle: close() from another event loop or thread than the one that opened still seals buffered games."""
from __future__ import annotations

import asyncio
import threading

import gamestore
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
