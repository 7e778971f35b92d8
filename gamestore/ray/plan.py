"""Planning reads on the driver: which shards hold the selected games, grouped into read tasks."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa

from ..schema import GAMES_SCHEMA, moves_schema
from ..shard import ShardReader

__all__ = ["ShardWork", "select_shards", "split_work", "open_shard", "GAME_COLUMNS"]

#: The game-level columns a games dataset offers: those of ``games.arrow`` but the row's place in the moves file.
GAME_COLUMNS = [n for n in GAMES_SCHEMA.names if n != "move_offset"]


@dataclass
class ShardWork:
    """The selected games of one shard: their ids and where their moves are."""

    shard_id: str
    game_ids: list[str]
    move_offsets: np.ndarray
    move_counts: np.ndarray

    @property
    def num_moves(self) -> int:
        return int(self.move_counts.sum())

    def move_mask(self, total_rows: int) -> np.ndarray:
        """A boolean mask over the shard's move rows, true on the selected games' moves."""
        mask = np.zeros(total_rows, dtype=bool)
        for off, cnt in zip(self.move_offsets.tolist(), self.move_counts.tolist()):
            mask[off : off + cnt] = True
        return mask


def select_shards(store: str, *, where: str | None, kind: str) -> tuple[list[ShardWork], pa.Schema]:
    """The shards holding the games matching ``where``, and the output schema of ``kind`` (games or moves)."""
    from ..store import open as open_store

    with open_store(store, create=False) as st:
        locs = st.game_locations(where)
        if kind == "games":
            schema = pa.schema([GAMES_SCHEMA.field(n) for n in GAME_COLUMNS])
        else:
            schema = moves_schema({**st.catalog.vectors(), **st.vectors})
    work: dict[str, ShardWork] = {}
    sids = locs.column("shard_id").to_numpy(zero_copy_only=False)
    gids = locs.column("game_id").to_pylist()
    offs = locs.column("move_offset").to_numpy(zero_copy_only=False)
    cnts = locs.column("num_moves").to_numpy(zero_copy_only=False)
    order = np.argsort(sids, kind="stable")
    bounds: np.ndarray = (
        np.flatnonzero(np.r_[True, sids[order][1:] != sids[order][:-1], True]) if len(order) else np.zeros(0, np.int64)
    )
    for a, b in zip(bounds[:-1], bounds[1:]):
        idx = order[a:b]
        sid = str(sids[idx[0]])
        work[sid] = ShardWork(sid, [gids[i] for i in idx], offs[idx].astype(np.int64), cnts[idx].astype(np.int64))
    return [work[s] for s in sorted(work)], schema


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
    """A reader of one committed shard of the store at ``store`` (a path or a URI)."""
    from ..storage import Storage

    return ShardReader(Storage.from_location(store), shard_id)
