"""``AsyncGameReplayDB``: the compat reader for asyncio programs; every method awaitable, nothing on the loop.

Each call runs in a small thread pool owned by the reader (opening the store
included), so the event loop only awaits; iterators are driven one item
ahead in the pool.

    async with AsyncGameReplayDB("data/games/store") as db:
        games = await db.query_games(board_type="hex8", limit=10)
        async for meta, initial, moves, probs in db.iterate_games_with_probs(num_players=2):
            ...
        rows = await db.execute("SELECT COUNT(*) AS n FROM games")
"""
from __future__ import annotations

import asyncio
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, Iterator, Sequence

from ..aio import _aiter_sync
from .compat import DEFAULT_SNAPSHOT_INTERVAL, GameReplayDB
from .compat_types import Replay

__all__ = ["AsyncGameReplayDB"]


class AsyncGameReplayDB:
    """Awaitable twin of :class:`~.compat.GameReplayDB` (same methods, same arguments, same results)."""

    def __init__(
        self,
        db_path: str | os.PathLike,
        snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL,
        enforce_canonical_history: bool = True,
        journal_mode: str = "WAL",
        *,
        models: Any = None,
        replay: Replay | None = None,
        max_workers: int = 4,
    ) -> None:
        self._args = (db_path, snapshot_interval, enforce_canonical_history, journal_mode)
        self._kwargs = {"models": models, "replay": replay}
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="gamestore-compat")
        self._db: GameReplayDB | None = None
        self._opening: asyncio.Future | None = None

    async def _sync(self) -> GameReplayDB:
        if self._db is None:
            if self._opening is None:
                loop = asyncio.get_running_loop()
                self._opening = loop.run_in_executor(
                    self._executor, functools.partial(GameReplayDB, *self._args, **self._kwargs)
                )
            self._db = await self._opening
        return self._db

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    async def _call(self, name: str, *args: Any) -> Any:
        db = await self._sync()
        return await self._run(getattr(db, name), *args)

    @property
    def sync(self) -> GameReplayDB | None:
        """The synchronous reader (None before the first call has opened it)."""
        return self._db

    async def open(self) -> "AsyncGameReplayDB":
        await self._sync()
        return self

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> "AsyncGameReplayDB":
        return await self.open()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- raw SQL ------------------------------------------------------------------------------
    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """All rows of one statement on the compatible views (``sqlite3.Row``-like rows)."""
        db = await self._sync()

        def run() -> list[Any]:
            with db._get_conn() as conn:
                return conn.execute(sql, parameters).fetchall()

        return await self._run(run)

    # -- iterators -------------------------------------------------------------------------------
    def _aiter(self, name: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async def gen() -> AsyncIterator[Any]:
            db = await self._sync()

            def make() -> Iterator[Any]:
                return iter(getattr(db, name)(*args, **kwargs))

            async for item in _aiter_sync(self._run, make):
                yield item

        return gen()

    def iterate_games(self, batch_size: int = 100, **filters: Any) -> AsyncIterator[tuple]:
        return self._aiter("iterate_games", batch_size, **filters)

    def iterate_games_with_probs(self, batch_size: int = 100, **filters: Any) -> AsyncIterator[tuple]:
        return self._aiter("iterate_games_with_probs", batch_size, **filters)

    def get_nnue_features_for_training(
        self, board_type: str, num_players: int, limit: int | None = None, offset: int = 0
    ) -> AsyncIterator[tuple]:
        return self._aiter("get_nnue_features_for_training", board_type, num_players, limit, offset)

    async def checkpoint_wal(self) -> tuple[int, int]:
        return (0, 0)

    # -- the reads ---------------------------------------------------------------------------------
    async def count_nnue_features(self, board_type: str | None = None, num_players: int | None = None) -> Any:
        return await self._call("count_nnue_features", board_type, num_players)

    async def get_all_history_entries(
        self,
        game_id: 'str',
        include_full_states: 'bool' = True,
        include_available_moves: 'bool' = False,
    ) -> Any:
        return await self._call("get_all_history_entries", game_id, include_full_states, include_available_moves)

    async def get_choices_at_move(self, game_id: str, move_number: int) -> Any:
        return await self._call("get_choices_at_move", game_id, move_number)

    async def get_game_count(
        self,
        board_type: 'Any' = None,
        num_players: 'int | None' = None,
        winner: 'int | None' = None,
        termination_reason: 'str | None' = None,
        source: 'str | None' = None,
        min_moves: 'int | None' = None,
        max_moves: 'int | None' = None,
        exclude_training_excluded: 'bool' = True,
    ) -> Any:
        return await self._call(
            "get_game_count", board_type, num_players, winner, termination_reason, source, min_moves, max_moves, exclude_training_excluded
        )

    async def get_game_heuristics_batch(self, game_id: str) -> Any:
        return await self._call("get_game_heuristics_batch", game_id)

    async def get_game_metadata(self, game_id: str) -> Any:
        return await self._call("get_game_metadata", game_id)

    async def get_game_with_players(self, game_id: str) -> Any:
        return await self._call("get_game_with_players", game_id)

    async def get_history_entry(self, game_id: str, move_number: int) -> Any:
        return await self._call("get_history_entry", game_id, move_number)

    async def get_initial_state(self, game_id: str) -> Any:
        return await self._call("get_initial_state", game_id)

    async def get_initial_states_batch(self, game_ids: list[str]) -> Any:
        return await self._call("get_initial_states_batch", game_ids)

    async def get_move_heuristics(self, game_id: str, move_number: int) -> Any:
        return await self._call("get_move_heuristics", game_id, move_number)

    async def get_move_probs_batch(self, game_ids: list[str]) -> Any:
        return await self._call("get_move_probs_batch", game_ids)

    async def get_move_records(self, game_id: str, start: int = 0, end: int | None = None) -> Any:
        return await self._call("get_move_records", game_id, start, end)

    async def get_moves(self, game_id: str, start: int = 0, end: int | None = None) -> Any:
        return await self._call("get_moves", game_id, start, end)

    async def get_moves_batch(self, game_ids: list[str]) -> Any:
        return await self._call("get_moves_batch", game_ids)

    async def get_nnue_features(
        self,
        game_id: 'str',
        move_number: 'int | None' = None,
        player_perspective: 'int | None' = None,
    ) -> Any:
        return await self._call("get_nnue_features", game_id, move_number, player_perspective)

    async def get_state_at_move(self, game_id: str, move_number: int, auto_inject: bool | None = None) -> Any:
        return await self._call("get_state_at_move", game_id, move_number, auto_inject)

    async def get_state_at_move_legacy(self, game_id: str, move_number: int) -> Any:
        return await self._call("get_state_at_move_legacy", game_id, move_number)

    async def get_stats(self, ) -> Any:
        return await self._call("get_stats", )

    async def has_heuristics(self, game_id: str) -> Any:
        return await self._call("has_heuristics", game_id)

    async def has_nnue_features(self, game_id: str) -> Any:
        return await self._call("has_nnue_features", game_id)

    async def query_games(
        self,
        board_type: 'Any' = None,
        num_players: 'int | None' = None,
        winner: 'int | None' = None,
        termination_reason: 'str | None' = None,
        source: 'str | None' = None,
        min_moves: 'int | None' = None,
        max_moves: 'int | None' = None,
        limit: 'int' = 100,
        offset: 'int' = 0,
        exclude_training_excluded: 'bool' = True,
        require_moves: 'bool' = False,
        exclude_non_canonical: 'bool' = True,
    ) -> Any:
        return await self._call(
            "query_games", board_type, num_players, winner, termination_reason, source, min_moves, max_moves, limit, offset, exclude_training_excluded, require_moves, exclude_non_canonical
        )
