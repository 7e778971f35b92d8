"""Baseline: a SQLite store laid out and used like RingRift's GameReplayDB (schema v18).

The comparison target of ``benchmarks/compare.py``.  Tables, indexes and
triggers are the exact v18 DDL (``gamestore.ringrift.tables``); rows are
what GameReplayDB writes:

- ``game_moves.move_json``: the pydantic ``Move`` dumped with aliases (30
  camelCase keys, most of them null, positions ``{"x", "y", "z"}``);
- ``move_probs`` and ``search_stats_json``: ``json.dumps`` of the policy and
  the search statistics; ``heuristic_features``: float32 bytes;
- ``game_state_snapshots.state_json``: the state *with* its ``moveHistory``
  (the redundancy that makes production databases grow with the square of
  the game length); ``game_initial_state`` holds the initial state.

Writing is one transaction per game in WAL mode with ``executemany`` for the
moves; reading a game is SELECTs plus ``json.loads``.  :func:`encode_game`
and :func:`decode_game` (record <-> row tuples) are shared with the
JSON-in-Parquet baseline.  Records round-trip when their overflow keys are
``move_json`` fields (as ``gamestore.testing.synth`` records are).
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from gamestore.ringrift.mapping import MOVE_JSON_KEYS
from gamestore.ringrift.tables import COLUMNS, SCHEMA_VERSION, V18_DDL

__all__ = ["SqliteBaseline", "encode_game", "decode_game", "GAME_COLUMNS", "MOVE_COLUMNS", "PLAYER_COLUMNS"]

GAME_COLUMNS = COLUMNS["games"]
PLAYER_COLUMNS = COLUMNS["game_players"]
MOVE_COLUMNS = COLUMNS["game_moves"]
SNAPSHOT_COLUMNS = COLUMNS["game_state_snapshots"]

_FEATURES = "heuristic_features"
# move_json keys that the typed record fields (or the row's columns) carry
_JSON_TYPED = {
    "id", "type", "player", "from", "to", "captureTarget", "placementCount",
    "timestamp", "thinkTime", "moveNumber", "phase",
}  # fmt: skip
_JSON_EXTRA = tuple(k for k in MOVE_JSON_KEYS if k not in _JSON_TYPED)
_MOVE_TYPED_COLS = (
    "timestamp", "think_time_ms", "time_remaining_ms", "engine_eval", "engine_eval_type",
    "engine_depth", "engine_nodes", "engine_pv", "engine_time_ms",
)  # fmt: skip
_MOVE_TYPED_IDX = tuple((MOVE_COLUMNS.index(c), c) for c in _MOVE_TYPED_COLS)
_GAME_RR_ONLY = {"schema_version", "parity_status", "parity_checked_at", "parity_divergence_move"}
_GAME_RECORD_COLS = tuple(
    (i, c) for i, c in enumerate(GAME_COLUMNS) if c not in _GAME_RR_ONLY and c != "metadata_json"
)


# ---------------------------------------------------------------------------
# record <-> rows
# ---------------------------------------------------------------------------
def _move_json(m: Mapping) -> str:
    d = dict.fromkeys(MOVE_JSON_KEYS)
    d["id"] = m.get("move_id")
    d["type"] = m.get("move_type")
    d["player"] = m.get("player")
    d["from"] = m.get("from")
    d["to"] = m.get("to")
    d["captureTarget"] = m.get("capture_target")
    d["placementCount"] = m.get("placement_count")
    for k in _JSON_EXTRA:
        if k in m:
            d[k] = m[k]
    d["timestamp"] = m.get("timestamp")
    d["thinkTime"] = m.get("think_time_ms")
    d["moveNumber"] = m["move_number"] + 1
    d["phase"] = m.get("phase")
    return json.dumps(d, separators=(",", ":"))


def _move_row(game_id: str, m: Mapping, move_json: str) -> tuple:
    policy, search, vectors = m.get("policy"), m.get("search"), m.get("vectors")
    feats = vectors.get(_FEATURES) if vectors else None
    return (
        game_id, m["move_number"], m.get("turn_number", 0), m.get("player", 0), m.get("phase", ""),
        m.get("move_type", ""), move_json, m.get("timestamp"), m.get("think_time_ms"),
        m.get("time_remaining_ms"), m.get("engine_eval"), m.get("engine_eval_type"), m.get("engine_depth"),
        m.get("engine_nodes"), m.get("engine_pv"), m.get("engine_time_ms"),
        None if policy is None else json.dumps(policy),
        None if search is None else json.dumps(search),
        None if feats is None else np.ascontiguousarray(feats, dtype=np.float32).tobytes(),
    )  # fmt: skip


def _state_with_history(state: Any, move_texts: Sequence[str], upto: int) -> str:
    """State JSON with ``moveHistory`` (the first ``upto`` moves) spliced in, as GameReplayDB stores it."""
    text = json.dumps(state, separators=(",", ":"))
    if not isinstance(state, dict):
        return text
    history = '"moveHistory":[' + ",".join(move_texts[:upto]) + "]"
    return text[:-1] + ("," if state else "") + history + "}"


def encode_game(rec: Mapping) -> dict[str, Any]:
    """Rows of one game: ``games`` (tuple), ``players``, ``moves``, ``snapshots`` (lists of tuples), ``initial`` (text)."""
    gid = rec["game_id"]
    moves = rec.get("moves") or []
    move_texts = [_move_json(m) for m in moves]
    metadata = rec.get("metadata")
    game = (
        gid, rec["board_type"], rec["num_players"], rec.get("rng_seed"), rec.get("created_at", ""),
        rec.get("completed_at"), rec.get("game_status", "completed"), rec.get("winner"),
        rec.get("termination_reason"), rec.get("total_moves", len(moves)), rec.get("total_turns", 0),
        rec.get("duration_ms"), rec.get("source"), SCHEMA_VERSION, rec.get("time_control_type", "none"),
        rec.get("initial_time_ms"), rec.get("time_increment_ms"),
        None if metadata is None else json.dumps(metadata, sort_keys=True),
        rec.get("quality_score"), rec.get("quality_category"), rec.get("engine_mode"), "pending", None, None,
        rec.get("opponent_type"), rec.get("opponent_model_id"),
    )  # fmt: skip
    players = [tuple(p.get(c) if c != "game_id" else gid for c in PLAYER_COLUMNS) for p in rec.get("players") or []]
    init = rec.get("initial_state")
    snapshots = [
        (gid, s["move_number"], _state_with_history(s["state"], move_texts, s["move_number"]), 0, s.get("state_hash"))
        for s in rec.get("snapshots") or []
    ]
    return {
        "games": game,
        "players": players,
        "initial": None if init is None else json.dumps(init, separators=(",", ":")),
        "moves": [_move_row(gid, m, t) for m, t in zip(moves, move_texts)],
        "snapshots": snapshots,
    }


def _decode_move(row: Sequence) -> dict:
    m: dict[str, Any] = {"move_number": row[1], "turn_number": row[2], "player": row[3], "phase": row[4], "move_type": row[5]}
    d = json.loads(row[6])
    if d.get("id") is not None:
        m["move_id"] = d["id"]
    for jk, rk in (("from", "from"), ("to", "to"), ("captureTarget", "capture_target"), ("placementCount", "placement_count")):
        if d.get(jk) is not None:
            m[rk] = d[jk]
    for k in _JSON_EXTRA:
        v = d.get(k)
        if v is not None:
            m[k] = v
    for i, c in _MOVE_TYPED_IDX:
        if row[i] is not None:
            m[c] = row[i]
    if row[16] is not None:
        m["policy"] = json.loads(row[16])
    if row[17] is not None:
        m["search"] = json.loads(row[17])
    if row[18] is not None:
        m["vectors"] = {_FEATURES: np.frombuffer(row[18], dtype=np.float32).copy()}
    return m


def _strip_history(text: str) -> Any:
    state = json.loads(text)
    if isinstance(state, dict):
        state.pop("moveHistory", None)
    return state


def decode_game(game: Sequence, players: Iterable[Sequence], initial: str | None,
                moves: Iterable[Sequence], snapshots: Iterable[Sequence]) -> dict:
    """The game record of rows in the layout of :func:`encode_game` (tuples in v18 column order)."""
    rec: dict[str, Any] = {}
    for i, c in _GAME_RECORD_COLS:
        if game[i] is not None:
            rec[c] = game[i]
    meta = game[GAME_COLUMNS.index("metadata_json")]
    if meta is not None:
        rec["metadata"] = json.loads(meta)
        mv = rec["metadata"].get("model_version") if isinstance(rec["metadata"], dict) else None
        if isinstance(mv, str):
            rec["model_version"] = mv  # v18 has no column for it: it lives in metadata_json
    plist = [{c: v for c, v in zip(PLAYER_COLUMNS[1:], p[1:]) if v is not None} for p in players]
    if plist:
        rec["players"] = sorted(plist, key=lambda p: p["player_number"])
    if initial is not None:
        rec["initial_state"] = json.loads(initial)
    snaps = []
    for s in snapshots:
        snap = {"move_number": s[1], "state": _strip_history(s[2])}
        if s[4] is not None:
            snap["state_hash"] = s[4]
        snaps.append(snap)
    if snaps:
        rec["snapshots"] = snaps
    rec["moves"] = [_decode_move(r) for r in moves]
    return rec


# ---------------------------------------------------------------------------
# the store
# ---------------------------------------------------------------------------
def _insert_sql(table: str) -> str:
    cols = COLUMNS[table]
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


_INS_GAME = _insert_sql("games")
_INS_PLAYER = _insert_sql("game_players")
_INS_MOVE = _insert_sql("game_moves")
_INS_SNAPSHOT = _insert_sql("game_state_snapshots")
_INS_INITIAL = "INSERT INTO game_initial_state (game_id, initial_state_json, compressed) VALUES (?, ?, 0)"


class SqliteBaseline:
    """A GameReplayDB-shaped SQLite file: WAL mode, one transaction per game."""

    def __init__(self, path: str | os.PathLike, *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self._con = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._con.execute("PRAGMA journal_mode = WAL")
        self._con.execute(f"PRAGMA synchronous = {synchronous}")
        if self._con.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'games'").fetchone()[0] == 0:
            self._con.execute("BEGIN")
            for _kind, _name, sql in V18_DDL:
                self._con.execute(sql)
            self._con.execute("INSERT INTO schema_metadata (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._con.execute("COMMIT")

    def write_games(self, records: Iterable[Mapping]) -> int:
        """Write each game in its own transaction; returns the number written."""
        con = self._con
        n = 0
        for rec in records:
            rows = encode_game(rec)
            con.execute("BEGIN")
            try:
                # moves before the game row: the v18 insert trigger checks a completed game has moves
                con.executemany(_INS_MOVE, rows["moves"])
                con.execute(_INS_GAME, rows["games"])
                if rows["players"]:
                    con.executemany(_INS_PLAYER, rows["players"])
                if rows["initial"] is not None:
                    con.execute(_INS_INITIAL, (rec["game_id"], rows["initial"]))
                if rows["snapshots"]:
                    con.executemany(_INS_SNAPSHOT, rows["snapshots"])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            n += 1
        return n

    def get_game(self, game_id: str) -> dict:
        """The record of one game; ``KeyError`` when absent."""
        con = self._con
        game = con.execute("SELECT * FROM games WHERE game_id = ?", (game_id,)).fetchone()
        if game is None:
            raise KeyError(game_id)
        players = con.execute("SELECT * FROM game_players WHERE game_id = ? ORDER BY player_number", (game_id,)).fetchall()
        init = con.execute("SELECT initial_state_json FROM game_initial_state WHERE game_id = ?", (game_id,)).fetchone()
        moves = con.execute("SELECT * FROM game_moves WHERE game_id = ? ORDER BY move_number", (game_id,)).fetchall()
        snaps = con.execute(
            "SELECT * FROM game_state_snapshots WHERE game_id = ? ORDER BY move_number", (game_id,)
        ).fetchall()
        return decode_game(game, players, None if init is None else init[0], moves, snaps)

    def scan_moves(self) -> Iterator[tuple[str, int, dict | None]]:
        """Every move as ``(game_id, move_number, policy)`` with the policy JSON decoded."""
        loads = json.loads
        for gid, num, probs in self._con.execute("SELECT game_id, move_number, move_probs FROM game_moves"):
            yield gid, num, None if probs is None else loads(probs)

    def game_ids(self) -> list[str]:
        return [r[0] for r in self._con.execute("SELECT game_id FROM games")]

    def count_games(self) -> int:
        return self._con.execute("SELECT COUNT(*) FROM games").fetchone()[0]

    def count_moves(self) -> int:
        return self._con.execute("SELECT COUNT(*) FROM game_moves").fetchone()[0]

    def checkpoint(self) -> None:
        """Fold the WAL into the database file."""
        self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def bytes_on_disk(self) -> int:
        """Database plus WAL and shared-memory files."""
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")) if p.exists())

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> "SqliteBaseline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
