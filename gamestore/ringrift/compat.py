"""``GameReplayDB``: a read-only drop-in for RingRift's class of that name, over a gamestore.

Every public read method of RingRift's ``app.db.game_replay.GameReplayDB``
(schema v18) exists with the same parameters, defaults and results.  When
RingRift's ``app.models`` is importable, moves and states are its pydantic
objects, built as RingRift builds them; otherwise the stored JSON as plain
dicts (``models=`` overrides the detection, see :mod:`.compat_types`).
``get_state_at_move`` starts from the nearest stored snapshot and replays
the following moves through RingRift's rules engine (or ``replay=``).
``_get_conn()`` yields a read-only DB-API connection over the store's
RingRift-compatible views (:mod:`.compat_sql`).  docs/ringrift.md has the
migration guide.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Literal

from ..errors import GameNotFoundError
from . import compat_rows as R
from .compat_index import GameIndex
from .compat_side import SideTables
from .compat_sql import Connection
from .compat_types import Replay, Types

__all__ = ["GameReplayDB", "DEFAULT_SNAPSHOT_INTERVAL"]

DEFAULT_SNAPSHOT_INTERVAL = 20
_HEADER_CACHE = 4096


def _enum_value(v: Any) -> Any:
    return v.value if hasattr(v, "value") else v


class GameReplayDB(SideTables):
    """Read-only access to a gamestore with RingRift's ``GameReplayDB`` read API.

    ``db_path`` is a gamestore directory (for example one filled by
    ``gamestore import-sqlite``).  ``journal_mode`` is accepted and ignored
    (there is no journal).  ``models``/``replay``: see :mod:`.compat_types`.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL,
        enforce_canonical_history: bool = True,
        journal_mode: str = "WAL",
        *,
        models: Any = None,
        replay: Replay | None = None,
        store: Any = None,
    ) -> None:
        from .. import store as store_mod

        self._db_path = Path(db_path)
        self._snapshot_interval = snapshot_interval
        self._enforce_canonical_history = enforce_canonical_history
        self._journal_mode = journal_mode.upper()
        self._owns_store = store is None
        self._store = store if store is not None else store_mod.open(self._db_path, create=False)
        self._types = Types(models, replay)
        self._headers: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._index = GameIndex(self._store)
        self._game_rows: OrderedDict[int, dict[str, Any]] = OrderedDict()  # id(header) -> games row (checked by game_id)
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_store:
            self._store.close()

    def __enter__(self) -> "GameReplayDB":
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> Literal[False]:
        self.close()
        return False

    @property
    def store(self) -> Any:
        """The underlying :class:`gamestore.store.GameStore`."""
        return self._store

    @property
    def pydantic(self) -> bool:
        """True when results are RingRift's pydantic objects, False for plain dicts."""
        return bool(self._types.pydantic)

    def checkpoint_wal(self) -> tuple[int, int]:
        """No write-ahead log to checkpoint: ``(0, 0)``."""
        return (0, 0)

    @contextmanager
    def _get_conn(self) -> Iterator[Connection]:
        """A read-only DB-API connection over the store's RingRift-compatible views (``sqlite3.Row`` rows)."""
        if self._conn is None:
            with self._lock:
                if self._conn is None:
                    self._conn = Connection(self._store)
        conn = self._conn
        conn.row_factory = sqlite3.Row
        yield conn

    # -- point reads ---------------------------------------------------------------------
    def _header(self, game_id: str) -> dict[str, Any] | None:
        """The game record without moves, from the shard's game row (cached; shared: do not change it)."""
        catalog = self._store.catalog
        self._store._check_open()
        catalog.refresh()
        loc = catalog.locate(game_id)
        if loc is None:
            return None
        key = (loc.shard_id, loc.row)
        with self._lock:
            hit = self._headers.get(key)
            if hit is not None:
                self._headers.move_to_end(key)
                return hit
        reader = catalog.find_reader(loc.shard_id)
        if reader is None:
            rec = self._record(game_id)
            if rec is None:
                return None
            header = {k: v for k, v in rec.items() if k != "moves"}
        else:
            from ..codec import header_from_row

            header = header_from_row(reader.game_row(loc.row))
        with self._lock:
            self._headers[key] = header
            if len(self._headers) > _HEADER_CACHE:
                self._headers.popitem(last=False)
        return header

    def _record(self, game_id: str) -> dict[str, Any] | None:
        try:
            return self._store.get_game(game_id)
        except GameNotFoundError:
            return None

    def _moves(self, game_id: str, *, policy: bool = False, vectors: bool = False) -> list[dict[str, Any]] | None:
        """The game's move records, decoding only the columns asked for (None: no such game)."""
        self._store._check_open()
        self._store.catalog.refresh()
        found = R.game_moves_batch(self._store, game_id)
        if found is not None:
            return R.decode_partial(*found, policy=policy, vectors=vectors)
        rec = self._record(game_id)
        return None if rec is None else rec["moves"]

    def _heuristics(self, game_id: str) -> list[tuple[int, Any]]:
        """``(move_number, features or None)`` of every move."""
        self._store._check_open()
        self._store.catalog.refresh()
        found = R.game_moves_batch(self._store, game_id)
        if found is not None:
            feats = R.heuristics_of_rows(*found)
            if feats is not None:
                return list(zip(found[1].column("move_number").to_pylist(), feats))
        return [(m["move_number"], R.heuristics(m)) for m in self._moves(game_id, vectors=True) or ()]

    # -- game-level reads -------------------------------------------------------------------
    def get_game_metadata(self, game_id: str) -> dict[str, Any] | None:
        """Get game metadata without loading full state (the ``games`` row as a new dict)."""
        header = self._header(game_id)
        if header is None:
            return None
        key = id(header)
        with self._lock:
            row = self._game_rows.get(key)
        if row is None or row["game_id"] != game_id:
            row = R.game_row(header)
            with self._lock:
                self._game_rows[key] = row
                if len(self._game_rows) > _HEADER_CACHE:
                    self._game_rows.popitem(last=False)
        return dict(row)

    def get_game_with_players(self, game_id: str) -> dict[str, Any] | None:
        """Get game metadata including player details."""
        header = self._header(game_id)
        if header is None:
            return None
        game = R.game_row(header)
        game["players"] = [
            {
                "playerNumber": p["player_number"],
                "playerType": p["player_type"],
                "aiType": p["ai_type"],
                "aiDifficulty": p["ai_difficulty"],
                "finalEliminatedRings": p["final_eliminated_rings"],
                "finalTerritorySpaces": p["final_territory_spaces"],
                "finalRingsInHand": p["final_rings_in_hand"],
            }
            for p in R.player_rows(header)
        ]
        return game

    def get_initial_state(self, game_id: str) -> Any:
        """Get the initial game state (RingRift's default state when none is stored and its code is importable)."""
        header = self._header(game_id)
        if header is None:
            return None
        state = R.initial_state(header)
        if state is None:
            return self._types.default_initial_state(header.get("board_type"), header.get("num_players") or 2)
        return self._types.state(state)

    def get_initial_states_batch(self, game_ids: list[str]) -> dict[str, Any]:
        """Initial states of several games (None for unknown games)."""
        if not game_ids:
            return {}
        results: dict[str, Any] = dict.fromkeys(game_ids)
        for gid in dict.fromkeys(game_ids):
            results[gid] = self.get_initial_state(gid)
        return results

    # -- moves --------------------------------------------------------------------------------
    def get_moves(self, game_id: str, start: int = 0, end: int | None = None) -> list[Any]:
        """Get moves ``start <= move_number < end``."""
        moves = self._moves(game_id)
        if not moves:
            return []
        out: list[Any] = self._types.moves([R.move_json(m) for m in moves if R.in_range(m["move_number"], start, end)])
        return out

    def get_moves_batch(self, game_ids: list[str]) -> dict[str, list[Any]]:
        """Moves of several games (an empty list for unknown games)."""
        if not game_ids:
            return {}
        return {gid: self.get_moves(gid) for gid in game_ids}

    def get_move_probs_batch(self, game_ids: list[str]) -> dict[str, dict[int, dict[str, float]]]:
        """game_id -> {move_number -> {move_key: probability}} for the moves with soft targets."""
        if not game_ids:
            return {}
        results: dict[str, dict[int, dict[str, float]]] = {}
        for gid in dict.fromkeys(game_ids):
            for m in self._moves(gid, policy=True) or ():
                probs = R.move_probs(m)
                if probs:
                    results.setdefault(gid, {})[m["move_number"]] = probs
        return results

    def get_move_records(self, game_id: str, start: int = 0, end: int | None = None) -> list[dict[str, Any]]:
        """Move records with full metadata (RingRift's camelCase record shape; ``move`` is the move JSON)."""
        import json

        out = []
        for m in self._moves(game_id) or ():
            if not R.in_range(m["move_number"], start, end):
                continue
            c = R.move_cells(m)
            out.append(
                {
                    "moveNumber": c["move_number"],
                    "turnNumber": c["turn_number"],
                    "player": c["player"],
                    "phase": c["phase"],
                    "moveType": c["move_type"],
                    "move": R.move_json(m),
                    "timestamp": c["timestamp"],
                    "thinkTimeMs": c["think_time_ms"],
                    "timeRemainingMs": c["time_remaining_ms"],
                    "engineEval": c["engine_eval"],
                    "engineEvalType": c["engine_eval_type"],
                    "engineDepth": c["engine_depth"],
                    "engineNodes": c["engine_nodes"],
                    "enginePV": json.loads(c["engine_pv"]) if c["engine_pv"] else None,
                    "engineTimeMs": c["engine_time_ms"],
                }
            )
        return out

    def get_move_heuristics(self, game_id: str, move_number: int) -> Any:
        """The move's heuristic features (float32 array), or None."""
        for mn, h in self._heuristics(game_id):
            if mn == move_number:
                return h
        return None

    def get_game_heuristics_batch(self, game_id: str) -> dict[int, Any]:
        """move_number -> heuristic features for the moves that have them."""
        return {mn: h for mn, h in self._heuristics(game_id) if h is not None}

    def has_heuristics(self, game_id: str) -> bool:
        return any(h is not None for _, h in self._heuristics(game_id))

    # -- states ---------------------------------------------------------------------------------
    def get_state_at_move(self, game_id: str, move_number: int, auto_inject: bool | None = None) -> Any:
        """The state after ``move_number``: nearest stored snapshot, then the following moves replayed.

        Replays through RingRift's rules engine (``trace_mode=True``) or the ``replay=``
        callable; raises :class:`~.compat_types.CompatUnavailableError` when a replay is
        needed and neither is available.  ``auto_inject`` as RingRift's (legacy DBs):
        with injection the replay starts from the initial state, as RingRift's does.
        """
        if auto_inject is None:
            auto_inject = not self._enforce_canonical_history
        header = self._header(game_id)
        if header is None:
            return None
        initial = self.get_initial_state(game_id)
        if initial is None:
            return None
        if move_number < 0:
            return initial
        moves = self._moves(game_id) or []
        start_mn, state = -1, initial
        if not auto_inject:
            snaps = R.snapshot_states(header, moves)
            best = max((mn for mn in snaps if mn <= move_number), default=None)
            if best is not None:
                start_mn, state = best, self._types.state(snaps[best])
        todo = [R.move_json(m) for m in moves if start_mn < m["move_number"] <= move_number]
        return self._types.replay(state, self._types.moves(todo), auto_inject=auto_inject)

    def get_state_at_move_legacy(self, game_id: str, move_number: int) -> Any:
        """Legacy replay helper that always enables phase injection."""
        return self.get_state_at_move(game_id, move_number, auto_inject=True)

    # -- queries --------------------------------------------------------------------------------
    def _filters(self, board_type: Any, *rest: Any) -> dict[str, Any]:
        names = ("num_players", "winner", "termination_reason", "source", "min_moves", "max_moves")
        bt = None if board_type is None else (board_type.value if hasattr(board_type, "value") else str(board_type))
        return {"board_type": bt, **dict(zip(names, rest))}

    def _catalog_rows(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        self._store._check_open()
        self._store.catalog.refresh()
        return self._store.catalog.cursor().execute(sql, params).fetchall()

    def query_games(
        self,
        board_type: Any = None,
        num_players: int | None = None,
        winner: int | None = None,
        termination_reason: str | None = None,
        source: str | None = None,
        min_moves: int | None = None,
        max_moves: int | None = None,
        limit: int = 100,
        offset: int = 0,
        exclude_training_excluded: bool = True,
        require_moves: bool = False,
        exclude_non_canonical: bool = True,
    ) -> list[dict[str, Any]]:
        """Games matching the filters, newest first: ``games`` rows as dicts (all v18 columns).

        Answered from the catalog's game rows (no moves are read).  v18 files have no
        ``excluded_from_training`` column, so ``exclude_training_excluded`` changes
        nothing, as in RingRift.
        """
        rows = self._index.select(
            **self._filters(board_type, num_players, winner, termination_reason, source, min_moves, max_moves),
            require_moves=require_moves,
            exclude_non_canonical=exclude_non_canonical,
        )
        if limit is not None and limit >= 0:  # SQLite: a negative LIMIT means none
            rows = rows[offset : offset + limit] if offset > 0 else rows[:limit]
        elif offset > 0:
            rows = rows[offset:]
        out = []
        for r in rows:
            row = self.get_game_metadata(r.game_id)
            if row is not None:
                out.append(row)
        return out

    def get_game_count(
        self,
        board_type: Any = None,
        num_players: int | None = None,
        winner: int | None = None,
        termination_reason: str | None = None,
        source: str | None = None,
        min_moves: int | None = None,
        max_moves: int | None = None,
        exclude_training_excluded: bool = True,
    ) -> int:
        """Number of games matching the filters."""
        f = self._filters(board_type, num_players, winner, termination_reason, source, min_moves, max_moves)
        return len(self._index.select(**f))

    def iterate_games(self, batch_size: int = 100, **filters: Any) -> Iterator[tuple[dict[str, Any], Any, list[Any]]]:
        """``(metadata, initial_state, moves)`` for each matching game (``limit`` defaults to 10000)."""
        for meta, initial, moves, _ in self._iterate(batch_size, filters, probs=False):
            yield meta, initial, moves

    def iterate_games_with_probs(
        self, batch_size: int = 100, **filters: Any
    ) -> Iterator[tuple[dict[str, Any], Any, list[Any], dict[int, dict[str, float]]]]:
        """As :meth:`iterate_games`, plus ``{move_number: {move_key: probability}}`` for the moves with soft targets."""
        yield from self._iterate(batch_size, filters, probs=True)

    def _iterate(self, batch_size: int, filters: dict[str, Any], *, probs: bool) -> Iterator[tuple[dict[str, Any], Any, list[Any], dict[int, dict[str, float]]]]:
        filters = dict(filters)
        limit = filters.pop("limit", 10000)
        games = self.query_games(**filters, limit=limit)
        for meta in games:
            gid = meta["game_id"]
            initial = self.get_initial_state(gid)
            if initial is None:
                continue
            moves = self._moves(gid, policy=probs) or []
            move_objs = self._types.moves([R.move_json(m) for m in moves])
            mp: dict[int, dict[str, float]] = {}
            if probs:
                for m in moves:
                    p = R.move_probs(m)
                    if p:
                        mp[m["move_number"]] = p
            yield meta, initial, move_objs, mp

    def get_stats(self) -> dict[str, Any]:
        """Database statistics, keyed as RingRift's ``get_stats``."""
        stats = self._index.stats()
        stored = self._store.get_meta("ringrift.schema_metadata")
        meta = {r[0]: r[1] for r in stored or []}
        version = meta.get("schema_version", None if stored else 18)  # a store not imported from SQLite: v18
        stats["schema_version"] = int(version) if version is not None else 1
        return stats
