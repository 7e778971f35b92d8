"""Planning reads on the driver: which shards hold the selected games, grouped into read tasks."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa

from ..readpath import ShardPick
from ..schema import GAMES_SCHEMA, moves_schema
from ..shard import ShardReader

__all__ = ["ShardWork", "select_shards", "split_work", "open_shard", "GAME_COLUMNS"]

#: The game-level columns a games dataset offers: those of ``games.arrow`` but the row's place in the moves file.
GAME_COLUMNS = [n for n in GAMES_SCHEMA.names if n != "move_offset"]


@dataclass
class ShardWork:
    """The selected games of one shard: their ids, ``games.arrow`` rows and where their moves are."""

    shard_id: str
    game_ids: list[str]
    move_offsets: np.ndarray
    move_counts: np.ndarray
    rows: np.ndarray | None = None

    @property
    def num_moves(self) -> int:
        return int(self.move_counts.sum())

    def pick(self) -> ShardPick:
        """These games as a pick of the one read path (gamestore/readpath.py)."""
        rows = self.rows if self.rows is not None else np.zeros(len(self.game_ids), dtype=np.int64)
        return ShardPick(self.shard_id, rows, self.move_offsets, self.move_counts)

    def move_mask(self, total_rows: int) -> np.ndarray:
        """A boolean mask over the shard's move rows, true on the selected games' moves."""
        return self.pick().move_mask(total_rows)


def select_shards(store: str, *, where: str | None, kind: str) -> tuple[list[ShardWork], pa.Schema]:
    """The shards holding the games matching ``where``, and the output schema of ``kind`` (games or moves)."""
    from ..store import open as open_store

    with open_store(store, create=False) as st:
        selection = st.select_games(where, columns=["game_id"])
        if kind == "games":
            schema = pa.schema([GAMES_SCHEMA.field(n) for n in GAME_COLUMNS])
        else:
            schema = moves_schema({**st.catalog.vectors(), **st.vectors})
    work = [
        ShardWork(p.shard_id, [str(g) for g in p.columns["game_id"].tolist()], p.offsets, p.counts, p.rows)
        for p in selection.picks()
    ]
    return work, schema


def split_work(work: Sequence[ShardWork], parts: int, *, weight: Callable[[ShardWork], int]) -> list[list[ShardWork]]:
    """``work`` in at most ``parts`` groups of about equal weight (largest first, each to the lightest group)."""
    parts = max(1, min(parts, len(work)))
    groups: list[list[ShardWork]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for w in sorted(work, key=lambda w: (-weight(w), w.shard_id)):
        i = loads.index(min(loads))
        groups[i].append(w)
        loads[i] += max(1, weight(w))
    return [sorted(g, key=lambda w: w.shard_id) for g in groups if g]


def open_shard(store: str, shard_id: str) -> ShardReader:
    """A reader of one committed shard of the store at ``store``."""
    return ShardReader(Path(store) / "shards" / shard_id)
