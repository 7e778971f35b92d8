"""Planning reads on the driver: the catalog's selection (gamestore/readpath.py), grouped into read tasks."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import pyarrow as pa

from ..readpath import ShardPick, select
from ..schema import GAMES_SCHEMA, moves_schema
from ..shard import ShardReader
from ..sqlguard import check_predicate
from ..storage import Storage, portable_location

__all__ = ["select_shards", "split_work", "open_shard", "store_location", "shard_name", "GAME_COLUMNS"]

#: The game-level columns a games dataset offers: those of ``games.arrow`` but the row's place in the moves file.
GAME_COLUMNS = [n for n in GAMES_SCHEMA.names if n != "move_offset"]


def store_location(store: Any) -> str:
    """What read and write tasks open: the location of ``store`` (a store handle, a path or a URI) as a path
    or a URI that works on any node (endpoint included, credentials never: tasks take theirs from their
    node's environment).  See :func:`gamestore.storage.portable_location`."""
    storage = getattr(store, "storage", None)
    if not isinstance(storage, Storage):
        storage = Storage.from_location(store)
    return portable_location(storage)


def shard_name(location: str, shard_id: str) -> str:
    """How a shard is named in Ray's metadata (``input_files``): the store location without its query."""
    return f"{location.split('?', 1)[0]}/shards/{shard_id}"


def select_shards(store: str, *, where: str | None, kind: str) -> tuple[list[ShardPick], pa.Schema]:
    """One pick per shard holding games matching ``where``, and the output schema of ``kind`` (games or moves)."""
    from ..store import open as open_store

    with open_store(store, create=False) as st:
        if where is not None and where.strip():
            check_predicate(where, allowed=st.catalog.view_names)
        picks = select(st.catalog, where or None, columns=["game_id"]).picks()
        if kind == "games":
            schema = pa.schema([GAMES_SCHEMA.field(n) for n in GAME_COLUMNS])
        else:
            schema = moves_schema({**st.catalog.vectors(), **st.vectors})
    return picks, schema


def split_work(work: Sequence[ShardPick], parts: int, *, weight: Callable[[ShardPick], int]) -> list[list[ShardPick]]:
    """``work`` in at most ``parts`` groups of about equal weight (largest first, each to the lightest group)."""
    parts = max(1, min(parts, len(work)))
    groups: list[list[ShardPick]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for w in sorted(work, key=lambda w: (-weight(w), w.shard_id)):
        i = loads.index(min(loads))
        groups[i].append(w)
        loads[i] += max(1, weight(w))
    return [sorted(g, key=lambda w: w.shard_id) for g in groups if g]


def open_shard(store: str, shard_id: str) -> ShardReader:
    """A reader of one committed shard of the store at ``store`` (a path or a URI)."""
    return ShardReader(Storage.from_location(store), shard_id)
