"""The compat reader's game-level index: the catalog's filter columns as Python tuples.

``query_games``, ``get_game_count`` and ``get_stats`` filter these rows in
Python instead of running one DuckDB statement per call (whose fixed cost
is a millisecond, ten times SQLite's).  The index is rebuilt, with one
statement, when the catalog has changed (other writers' commits included).
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Callable, NamedTuple

__all__ = ["GameIndex", "IndexRow"]


class IndexRow(NamedTuple):
    game_id: str
    board_type: str | None
    num_players: int | None
    winner: int | None
    termination_reason: str | None
    source: str | None
    total_moves: int | None
    parity_status: str | None
    game_status: str | None
    num_moves: int


_SQL = (
    f"SELECT {', '.join(IndexRow._fields)} FROM games"
    # newest first; ties in the order the games were stored, newest first (SQLite's rowid order)
    " ORDER BY created_at DESC, shard_id DESC, move_offset DESC"
)


def _equals(i: int, value: Any) -> Callable[[IndexRow], bool]:
    return lambda r: r[i] is not None and r[i] == value


class GameIndex:
    def __init__(self, store: Any) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._rows: list[IndexRow] = []

    def rows(self) -> list[IndexRow]:
        store = self._store
        store._check_open()
        catalog = store.catalog
        catalog.refresh()
        gen = catalog.snapshot_generation
        if gen != self._generation:
            with self._lock:
                if gen != self._generation:
                    rows = catalog.cursor().execute(_SQL).fetchall()
                    self._rows = [IndexRow(*r) for r in rows]
                    self._generation = gen
        return self._rows

    def select(
        self,
        *,
        board_type: Any = None,
        num_players: int | None = None,
        winner: int | None = None,
        termination_reason: str | None = None,
        source: str | None = None,
        min_moves: int | None = None,
        max_moves: int | None = None,
        require_moves: bool = False,
        exclude_non_canonical: bool = False,
    ) -> list[IndexRow]:
        """The rows matching RingRift's filters (SQL semantics: a NULL never matches a comparison)."""
        tests: list[Callable[[IndexRow], bool]] = []
        for field, value in (("board_type", board_type), ("num_players", num_players), ("winner", winner),
                             ("termination_reason", termination_reason), ("source", source)):  # fmt: skip
            if value is not None:
                i = IndexRow._fields.index(field)
                tests.append(_equals(i, value))
        if min_moves is not None:
            tests.append(lambda r: r.total_moves is not None and r.total_moves >= min_moves)
        if max_moves is not None:
            tests.append(lambda r: r.total_moves is not None and r.total_moves <= max_moves)
        if require_moves:
            tests.append(lambda r: r.num_moves > 0)
        if exclude_non_canonical:
            tests.append(lambda r: (r.parity_status or "pending") != "non_canonical_history")
        rows = self.rows()
        if not tests:
            return list(rows)
        return [r for r in rows if all(t(r) for t in tests)]

    def stats(self) -> dict[str, Any]:
        rows = self.rows()
        return {
            "total_games": len(rows),
            "games_by_board_type": dict(Counter(r.board_type for r in rows)),
            "games_by_status": dict(Counter(r.game_status for r in rows)),
            "games_by_termination": {k: v for k, v in Counter(r.termination_reason for r in rows).items() if k},
            "total_moves": sum(r.num_moves for r in rows),
        }
