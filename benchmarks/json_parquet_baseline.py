"""Baseline: GameReplayDB's JSON text columns kept in Parquet files with zstd.

The second comparison target of ``benchmarks/compare.py``: the rows of
:func:`sqlite_baseline.encode_game` (``move_json``, ``move_probs``,
``search_stats_json`` as JSON text, features as float32 bytes, snapshots
with their move history) written with ``pyarrow.parquet`` and zstd, one
``moves-NNNNNN.parquet`` / ``games-NNNNNN.parquet`` pair per
``write_games`` chunk.  The games file records where each game's moves
start, so ``get_game`` reads the row groups that hold them and parses JSON.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from .sqlite_baseline import GAME_COLUMNS, MOVE_COLUMNS, PLAYER_COLUMNS, decode_game, encode_game

__all__ = ["JsonParquetBaseline"]

_MOVES_SCHEMA = pa.schema(
    [
        ("game_id", pa.string()), ("move_number", pa.int32()), ("turn_number", pa.int32()), ("player", pa.int8()),
        ("phase", pa.string()), ("move_type", pa.string()), ("move_json", pa.string()), ("timestamp", pa.string()),
        ("think_time_ms", pa.int32()), ("time_remaining_ms", pa.int64()), ("engine_eval", pa.float64()),
        ("engine_eval_type", pa.string()), ("engine_depth", pa.int32()), ("engine_nodes", pa.int64()),
        ("engine_pv", pa.string()), ("engine_time_ms", pa.int64()), ("move_probs", pa.string()),
        ("search_stats_json", pa.string()), ("heuristic_features", pa.binary()),
    ]
)  # fmt: skip
assert tuple(_MOVES_SCHEMA.names) == MOVE_COLUMNS

_GAME_TYPES = {
    "num_players": pa.int8(), "rng_seed": pa.int64(), "winner": pa.int8(), "total_moves": pa.int32(),
    "total_turns": pa.int32(), "duration_ms": pa.int64(), "schema_version": pa.int32(),
    "initial_time_ms": pa.int64(), "time_increment_ms": pa.int64(), "quality_score": pa.float64(),
    "parity_divergence_move": pa.int32(),
}  # fmt: skip
_GAMES_SCHEMA = pa.schema(
    [(c, _GAME_TYPES.get(c, pa.string())) for c in GAME_COLUMNS]
    + [
        ("players_json", pa.string()),
        ("initial_state_json", pa.string()),
        ("snapshots_json", pa.string()),
        ("move_offset", pa.int64()),
        ("move_count", pa.int32()),
    ]
)


class JsonParquetBaseline:
    """A directory of Parquet files holding GameReplayDB's JSON text, zstd-compressed."""

    def __init__(self, path: str | os.PathLike, *, row_group_rows: int = 8192, compression_level: int | None = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._rg_rows = row_group_rows
        self._level = compression_level
        self._index: dict[str, tuple[int, int]] = {}  # game_id -> (file number, row in games file)
        self._files: dict[int, tuple[pq.ParquetFile, pa.Table, list[int]]] = {}
        for f in sorted(self.path.glob("games-*.parquet")):
            num = int(f.stem.split("-")[1])
            ids = pq.read_table(f, columns=["game_id"]).column(0).to_pylist()
            for row, gid in enumerate(ids):
                self._index[gid] = (num, row)
        self._next = 1 + max((n for n, _ in self._index.values()), default=-1)

    def write_games(self, records: Iterable[Mapping]) -> int:
        """Write the games as one Parquet pair; returns the number written."""
        move_rows: list[tuple] = []
        game_rows: list[tuple] = []
        for rec in records:
            rows = encode_game(rec)
            players = [dict(zip(PLAYER_COLUMNS, p)) for p in rows["players"]]
            snaps = [list(s) for s in rows["snapshots"]]
            game_rows.append(
                rows["games"]
                + (
                    json.dumps(players),
                    rows["initial"],
                    json.dumps(snaps) if snaps else None,
                    len(move_rows),
                    len(rows["moves"]),
                )
            )
            move_rows.extend(rows["moves"])
        if not game_rows:
            return 0
        num = self._next
        self._next += 1
        moves = pa.Table.from_arrays(
            [pa.array(col, type=f.type) for col, f in zip(zip(*move_rows), _MOVES_SCHEMA)] if move_rows
            else [pa.array([], type=f.type) for f in _MOVES_SCHEMA],
            schema=_MOVES_SCHEMA,
        )
        games = pa.Table.from_arrays(
            [pa.array(col, type=f.type) for col, f in zip(zip(*game_rows), _GAMES_SCHEMA)], schema=_GAMES_SCHEMA
        )
        kw = {"compression": "zstd", "compression_level": self._level}
        pq.write_table(moves, self.path / f"moves-{num:06d}.parquet", row_group_size=self._rg_rows, **kw)
        pq.write_table(games, self.path / f"games-{num:06d}.parquet", **kw)
        for row, gid in enumerate(games.column("game_id").to_pylist()):
            self._index[gid] = (num, row)
        return len(game_rows)

    def _file(self, num: int) -> tuple[pq.ParquetFile, pa.Table, list[int]]:
        f = self._files.get(num)
        if f is None:
            pf = pq.ParquetFile(self.path / f"moves-{num:06d}.parquet")
            starts = [0]
            for i in range(pf.metadata.num_row_groups):
                starts.append(starts[-1] + pf.metadata.row_group(i).num_rows)
            f = (pf, pq.read_table(self.path / f"games-{num:06d}.parquet"), starts)
            self._files[num] = f
        return f

    def get_game(self, game_id: str) -> dict:
        """The record of one game; ``KeyError`` when absent."""
        loc = self._index.get(game_id)
        if loc is None:
            raise KeyError(game_id)
        pf, games, starts = self._file(loc[0])
        g = games.slice(loc[1], 1).to_pylist()[0]
        off, cnt = g["move_offset"], g["move_count"]
        groups = [i for i in range(len(starts) - 1) if starts[i] < off + cnt and starts[i + 1] > off]
        moves = pf.read_row_groups(groups).slice(off - starts[groups[0]], cnt) if groups else None
        move_rows = list(zip(*(moves.column(c).to_pylist() for c in MOVE_COLUMNS))) if moves is not None else []
        game_row = tuple(g[c] for c in GAME_COLUMNS)
        players = [tuple(p[c] for c in PLAYER_COLUMNS) for p in json.loads(g["players_json"])]
        snaps = json.loads(g["snapshots_json"]) if g["snapshots_json"] is not None else []
        return decode_game(game_row, players, g["initial_state_json"], move_rows, snaps)

    def scan_moves(self) -> Iterator[tuple[str, int, dict | None]]:
        """Every move as ``(game_id, move_number, policy)`` with the policy JSON decoded."""
        loads = json.loads
        for f in sorted(self.path.glob("moves-*.parquet")):
            for batch in pq.ParquetFile(f).iter_batches(columns=["game_id", "move_number", "move_probs"]):
                ids, nums, probs = (batch.column(i).to_pylist() for i in range(3))
                for gid, num, p in zip(ids, nums, probs):
                    yield gid, num, None if p is None else loads(p)

    def game_ids(self) -> list[str]:
        return list(self._index)

    def count_games(self) -> int:
        return len(self._index)

    def bytes_on_disk(self) -> int:
        return sum(f.stat().st_size for f in self.path.glob("*.parquet"))

    def close(self) -> None:
        self._files.clear()

    def __enter__(self) -> "JsonParquetBaseline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
