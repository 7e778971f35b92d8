"""The compat reader's side-table reads: history entries, choices, NNUE features.

These tables are rare and small next to the moves, so each read renders the
game's rows exactly as the SQLite file holds them (:func:`compat_rows.table_rows`)
and applies RingRift's own row logic to them.
"""
from __future__ import annotations

import gzip
import json
from typing import Any, Iterator

import numpy as np

from . import compat_rows as R

__all__ = ["SideTables"]


class SideTables:
    """Mixin of :class:`~.compat.GameReplayDB`: the methods over game_history_entries, game_choices, game_nnue_features."""

    _types: Any

    def _header(self, game_id: str) -> dict | None:  # provided by GameReplayDB
        raise NotImplementedError

    def _moves(self, game_id: str, *, policy: bool = False, vectors: bool = False) -> list[dict] | None:
        raise NotImplementedError

    def _catalog_rows(self, sql: str, params: list[Any]) -> list[tuple]:  # provided by GameReplayDB
        raise NotImplementedError

    def _side_rows(self, game_id: str, table: str) -> list[dict]:
        """The rows of a side table (kept among the game's snapshots, so the game row alone says if any exist)."""
        header = self._header(game_id)
        if header is None or not any(s.get("rr_table") == table for s in header.get("snapshots") or ()):
            return []
        # history states embed the moves so far (rebuilt from the move texts); the other tables need no moves
        moves = self._moves(game_id) if table == "game_history_entries" else []
        return R.table_rows({**header, "moves": moves or []}, table)

    # -- choices ----------------------------------------------------------------------------------
    def get_choices_at_move(self, game_id: str, move_number: int) -> list[dict]:
        """Player choices made at a specific move."""
        return [
            {
                "choice_type": r["choice_type"],
                "player": r["player"],
                "options": json.loads(r["options_json"]),
                "selected": json.loads(r["selected_option_json"]),
                "reasoning": r["ai_reasoning"],
            }
            for r in self._side_rows(game_id, "game_choices")
            if r["move_number"] == move_number
        ]

    # -- history entries ------------------------------------------------------------------------
    def _history_state(self, text: Any, compressed: Any) -> Any:
        return self._types.state(R.state_from_cell(text, compressed, b64=True))

    def _history_entry(self, r: dict, *, full_states: bool, available_moves: bool) -> dict:
        entry: dict[str, Any] = {
            "move_number": r["move_number"],
            "player": r["player"],
            "phase_before": r["phase_before"],
            "phase_after": r["phase_after"],
            "status_before": r["status_before"],
            "status_after": r["status_after"],
            "progress_before": json.loads(r["progress_before_json"]),
            "progress_after": json.loads(r["progress_after_json"]),
            "state_hash_before": r["state_hash_before"],
            "state_hash_after": r["state_hash_after"],
            "state_before": None,
            "state_after": None,
            "available_moves": None,
            "available_moves_count": r["available_moves_count"],
            "engine_eval": r["engine_eval"],
            "engine_depth": r["engine_depth"],
        }
        if full_states:
            if r["state_before_json"]:
                entry["state_before"] = self._history_state(r["state_before_json"], r["compressed_states"])
            if r["state_after_json"]:
                entry["state_after"] = self._history_state(r["state_after_json"], r["compressed_states"])
        if available_moves and r["available_moves_json"]:
            data = json.loads(r["available_moves_json"])
            entry["available_moves"] = self._types.moves([json.loads(m) if isinstance(m, str) else m for m in data])
        return entry

    def get_history_entry(self, game_id: str, move_number: int) -> dict | None:
        """The history entry (before/after states) of one move, or None."""
        for r in self._side_rows(game_id, "game_history_entries"):
            if r["move_number"] == move_number:
                return self._history_entry(r, full_states=True, available_moves=True)
        return None

    def get_all_history_entries(
        self,
        game_id: str,
        include_full_states: bool = True,
        include_available_moves: bool = False,
    ) -> list[dict]:
        """All history entries of a game, by move number."""
        return [
            self._history_entry(r, full_states=include_full_states, available_moves=include_available_moves)
            for r in self._side_rows(game_id, "game_history_entries")
        ]

    # -- NNUE features ----------------------------------------------------------------------------
    @staticmethod
    def _features(blob: bytes, dim: Any = None) -> np.ndarray:
        features = np.frombuffer(gzip.decompress(blob), dtype=np.float32).copy()
        if dim is not None and len(features) != dim:
            raise ValueError(f"Feature dimension mismatch: expected {dim}, got {len(features)}")
        return features

    def get_nnue_features(
        self,
        game_id: str,
        move_number: int | None = None,
        player_perspective: int | None = None,
    ) -> list[tuple[int, int, np.ndarray, float]]:
        """Pre-computed NNUE features: ``(move_number, player_perspective, features, value)``."""
        rows = self._side_rows(game_id, "game_nnue_features")
        if move_number is not None:
            rows = [r for r in rows if r["move_number"] == move_number]
            if player_perspective is not None:
                rows = [r for r in rows if r["player_perspective"] == player_perspective]
        rows.sort(key=lambda r: (r["move_number"], r["player_perspective"]))
        return [
            (r["move_number"], r["player_perspective"], self._features(r["features"], r["feature_dim"]), r["value"])
            for r in rows
        ]

    def _nnue_games(self, board_type: str | None, num_players: int | None) -> list[str]:
        conds, params = ["num_snapshots > 0"], []
        if num_players is not None:
            conds.append("num_players = ?")
            params.append(num_players)
        sql = f"SELECT game_id FROM games WHERE {' AND '.join(conds)} ORDER BY game_id"
        return [r[0] for r in self._catalog_rows(sql, params)]

    def get_nnue_features_for_training(
        self,
        board_type: str,
        num_players: int,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[tuple[str, int, int, np.ndarray, float]]:
        """``(game_id, move_number, player_perspective, features, value)`` of the matching cached features."""
        rows = []
        for gid in self._nnue_games(board_type, num_players):
            for r in self._side_rows(gid, "game_nnue_features"):
                if r["board_type"] == board_type:
                    rows.append(r)
        rows.sort(key=lambda r: (r["game_id"], r["move_number"], r["player_perspective"]))
        if limit is not None:
            rows = rows[offset : offset + limit] if limit >= 0 else rows[offset:]
        for r in rows:
            yield r["game_id"], r["move_number"], r["player_perspective"], self._features(r["features"]), r["value"]

    def count_nnue_features(self, board_type: str | None = None, num_players: int | None = None) -> int:
        """Number of cached NNUE feature rows (``num_players`` counts only together with ``board_type``, as in RingRift)."""
        n = 0
        for gid in self._nnue_games(None, num_players if board_type is not None else None):
            for r in self._side_rows(gid, "game_nnue_features"):
                if board_type is None or r["board_type"] == board_type:
                    n += 1
        return n

    def has_nnue_features(self, game_id: str) -> bool:
        return bool(self._side_rows(game_id, "game_nnue_features"))
