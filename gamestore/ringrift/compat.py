"""``GameReplayDB``: a read-only stand-in for RingRift's class of that name, over a gamestore.

The methods the pipeline calls most, with the original signatures and
return shapes, except that moves and states are plain dicts (the stored
JSON) rather than pydantic ``Move``/``GameState`` objects: pass them to
``Move.model_validate`` / ``GameState.model_validate`` where the models
are needed.  docs/ringrift.md lists each method's shape.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from ..errors import GameNotFoundError
from .mapping import move_json_value, record_to_rows
from .tables import COLUMNS

__all__ = ["GameReplayDB"]

_GAME_COLS = COLUMNS["games"]
_MOVE_COLS = COLUMNS["game_moves"]
_RR_ONLY = {"schema_version", "parity_status", "parity_checked_at", "parity_divergence_move"}
_BASE_GAME_COLS = [c for c in _GAME_COLS if c not in _RR_ONLY and c != "metadata_json"]


def _enum_value(v: Any) -> Any:
    return getattr(v, "value", v)


class GameReplayDB:
    """Read-only access to a gamestore with RingRift's ``GameReplayDB`` read API.

    ``path`` is a gamestore directory (for example one filled by
    ``gamestore import-sqlite``).  Write methods are not provided.
    """

    def __init__(self, db_path: str | os.PathLike, snapshot_interval: int = 20) -> None:
        from .. import store as store_mod

        self._db_path = Path(db_path)
        self._snapshot_interval = snapshot_interval
        self._store = store_mod.open(self._db_path, create=False)

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> "GameReplayDB":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def store(self):
        """The underlying :class:`gamestore.store.GameStore`."""
        return self._store

    # -- helpers ---------------------------------------------------------------------------
    def _record(self, game_id: str) -> dict | None:
        try:
            return self._store.get_game(game_id)
        except GameNotFoundError:
            return None

    @staticmethod
    def _game_dict(rec: dict) -> dict:
        """A ``games`` row as a dict (``SELECT * FROM games`` column names and values)."""
        row = record_to_rows({**rec, "moves": [], "snapshots": []})["games"][0]
        return dict(zip(_GAME_COLS, row))

    def _filters(
        self,
        board_type: Any = None,
        num_players: int | None = None,
        winner: int | None = None,
        termination_reason: str | None = None,
        source: str | None = None,
        min_moves: int | None = None,
        max_moves: int | None = None,
        require_moves: bool = False,
        **extra: Any,
    ) -> tuple[str | None, list]:
        clauses: list[str] = []
        params: list[Any] = []
        for col, val in (
            ("board_type", _enum_value(board_type)),
            ("num_players", num_players),
            ("winner", winner),
            ("termination_reason", termination_reason),
            ("source", source),
        ):
            if val is not None:
                clauses.append(f"{col} = ?")
                params.append(val)
        if min_moves is not None:
            clauses.append("total_moves >= ?")
            params.append(min_moves)
        if max_moves is not None:
            clauses.append("total_moves <= ?")
            params.append(max_moves)
        if require_moves:
            clauses.append("num_moves > 0")
        for col, val in extra.items():  # other games columns, by equality (e.g. engine_mode, game_status)
            if val is None:
                continue
            if col not in _BASE_GAME_COLS:
                raise TypeError(f"unknown filter {col!r}")
            clauses.append(f"{col} = ?")
            params.append(_enum_value(val))
        return (" AND ".join(clauses) or None), params

    def _game_ids(self, where: str | None, params: list, *, limit: int | None = None, offset: int = 0) -> list[str]:
        q = "SELECT game_id FROM games"
        if where:
            q += f" WHERE {where}"
        q += " ORDER BY created_at DESC, game_id"
        if limit is not None:
            q += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        self._store.refresh()
        con = self._store.catalog.cursor()
        return [r[0] for r in con.execute(q, params).fetchall()]

    # -- queries -------------------------------------------------------------------------
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
        **filters: Any,
    ) -> list[dict]:
        """Games matching the filters, newest first: ``games`` rows as dicts (all v18 columns)."""
        where, params = self._filters(
            board_type, num_players, winner, termination_reason, source, min_moves, max_moves, **filters
        )
        out = []
        for gid in self._game_ids(where, params, limit=limit, offset=offset):
            rec = self._record(gid)
            if rec is not None:
                out.append(self._game_dict(rec))
        return out

    def get_game_count(self, **filters: Any) -> int:
        """Number of games (matching the same filters as :meth:`query_games`)."""
        where, params = self._filters(**filters)
        self._store.refresh()
        con = self._store.catalog.cursor()
        q = "SELECT COUNT(*) FROM games" + (f" WHERE {where}" if where else "")
        return int(con.execute(q, params).fetchone()[0])

    def get_game_metadata(self, game_id: str) -> dict | None:
        """The ``games`` row of one game as a dict, or None."""
        rec = self._record(game_id)
        return None if rec is None else self._game_dict(rec)

    def get_initial_state(self, game_id: str) -> dict | None:
        """The initial state as the stored JSON object (None when the game or its initial state is missing)."""
        rec = self._record(game_id)
        if rec is None:
            return None
        rows = record_to_rows(rec)["game_initial_state"]
        if not rows:
            return None
        return _state_from_cell(rows[0][1], rows[0][2])

    def get_moves(self, game_id: str, start: int = 0, end: int | None = None) -> list[dict]:
        """Moves ``start <= move_number < end`` as the stored ``move_json`` objects."""
        rec = self._record(game_id)
        if rec is None:
            return []
        return [move_json_value(m) for m in rec["moves"] if _in_range(m["move_number"], start, end)]

    def get_move_records(self, game_id: str, start: int = 0, end: int | None = None) -> list[dict]:
        """Moves with their columns, in RingRift's camelCase record shape (``move`` is the move JSON)."""
        rec = self._record(game_id)
        if rec is None:
            return []
        rows = record_to_rows({**rec, "snapshots": []})["game_moves"]
        out = []
        for row in rows:
            r = dict(zip(_MOVE_COLS, row))
            if not _in_range(r["move_number"], start, end):
                continue
            out.append(
                {
                    "moveNumber": r["move_number"],
                    "turnNumber": r["turn_number"],
                    "player": r["player"],
                    "phase": r["phase"],
                    "moveType": r["move_type"],
                    "move": json.loads(r["move_json"]),
                    "timestamp": r["timestamp"],
                    "thinkTimeMs": r["think_time_ms"],
                    "timeRemainingMs": r["time_remaining_ms"],
                    "engineEval": r["engine_eval"],
                    "engineEvalType": r["engine_eval_type"],
                    "engineDepth": r["engine_depth"],
                    "engineNodes": r["engine_nodes"],
                    "enginePV": json.loads(r["engine_pv"]) if r["engine_pv"] else None,
                    "engineTimeMs": r["engine_time_ms"],
                }
            )
        return out

    def get_state_at_move(self, game_id: str, move_number: int) -> dict | None:
        """The state after ``move_number`` when a snapshot (or history entry) holds it, else None.

        RingRift replays moves through its rules engine to reach other moves;
        gamestore has no rules engine, so only stored states are returned
        (``move_number < 0`` returns the initial state).
        """
        rec = self._record(game_id)
        if rec is None:
            return None
        if move_number < 0:
            return self.get_initial_state(game_id)
        rows = record_to_rows(rec)
        for _, mn, cell, compressed, _ in rows["game_state_snapshots"]:
            if mn == move_number:
                return _state_from_cell(cell, compressed)
        cols = COLUMNS["game_history_entries"]
        ia, ic = cols.index("state_after_json"), cols.index("compressed_states")
        for row in rows["game_history_entries"]:
            if row[1] == move_number and row[ia] is not None:
                return _state_from_cell(row[ia], row[ic], b64=True)
        return None

    def iterate_games(self, **filters: Any) -> Iterator[tuple[dict, dict | None, list[dict]]]:
        """``(games row dict, initial state, moves)`` for each matching game."""
        for meta, initial, moves, _ in self._iterate(filters):
            yield meta, initial, moves

    def iterate_games_with_probs(
        self, **filters: Any
    ) -> Iterator[tuple[dict, dict | None, list[dict], list[dict | None]]]:
        """As :meth:`iterate_games`, plus each move's ``move_probs`` (dict key -> probability, or None)."""
        yield from self._iterate(filters)

    def _iterate(self, filters: dict) -> Iterator[tuple[dict, dict | None, list[dict], list[dict | None]]]:
        limit = filters.pop("limit", None)
        offset = filters.pop("offset", 0)
        where, params = self._filters(**filters)
        for gid in self._game_ids(where, params, limit=limit, offset=offset):
            rec = self._record(gid)
            if rec is None:
                continue
            rows = record_to_rows(rec)
            init = rows["game_initial_state"]
            initial = _state_from_cell(init[0][1], init[0][2]) if init else None
            im, ip = _MOVE_COLS.index("move_json"), _MOVE_COLS.index("move_probs")
            moves = [json.loads(r[im]) for r in rows["game_moves"]]
            probs = [json.loads(r[ip]) if r[ip] else None for r in rows["game_moves"]]
            yield dict(zip(_GAME_COLS, rows["games"][0])), initial, moves, probs

    def get_stats(self) -> dict:
        """Database statistics, keyed as RingRift's ``get_stats``."""
        self._store.refresh()
        con = self._store.catalog.cursor()
        total_games = int(con.execute("SELECT COUNT(*) FROM games").fetchone()[0])
        total_moves = int(con.execute("SELECT coalesce(SUM(num_moves), 0) FROM games").fetchone()[0])
        by_board = dict(con.execute("SELECT board_type, COUNT(*) FROM games GROUP BY 1 ORDER BY 1").fetchall())
        by_status = dict(con.execute("SELECT game_status, COUNT(*) FROM games GROUP BY 1 ORDER BY 1").fetchall())
        by_term = dict(
            con.execute(
                "SELECT termination_reason, COUNT(*) FROM games WHERE termination_reason IS NOT NULL"
                " GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
        meta = {r[0]: r[1] for r in (self._store.get_meta("ringrift.schema_metadata") or [])}
        return {
            "total_games": total_games,
            "games_by_board_type": by_board,
            "games_by_status": by_status,
            "games_by_termination": by_term,
            "total_moves": total_moves,
            "schema_version": int(meta.get("schema_version", 18)),
        }


def _in_range(n: int, start: int, end: int | None) -> bool:
    return n >= start and (end is None or n < end)


def _state_from_cell(cell: Any, compressed: Any, *, b64: bool = False) -> dict | None:
    if cell is None:
        return None
    if compressed:
        import base64
        import gzip

        blob = base64.b64decode(cell) if (b64 or isinstance(cell, str)) else cell
        cell = gzip.decompress(blob).decode("utf-8")
    if isinstance(cell, bytes):
        cell = cell.decode("utf-8")
    return json.loads(cell)
