"""``merge``: bring several stores into one, once per game id (shards copied byte for byte where possible)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from .. import faults
from ..errors import FormatError, GamestoreError
from ..readpath import ShardPick, intact_reader
from ..replicate import copy_shard
from ..shard import ShardReader
from ..storage import Storage
from ..store import GameStore
from ..store import open as open_store
from .common import (
    DEFAULT_TARGET_MOVES,
    Progress,
    clean_orphan_segments,
    indexed_readers,
    known_damage,
    maintenance_lock,
    union_vectors,
    with_progress,
)
from .shardbuild import Part, write_parts

__all__ = ["MergeResult", "merge"]


@dataclass
class MergeResult:
    """What :func:`merge` brought into the destination store."""

    games_added: int = 0
    moves_added: int = 0
    games_skipped: int = 0
    shards_copied: int = 0
    shards_written: int = 0
    damaged_shards: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _board_types(s: GameStore) -> set[str]:
    return {r[0] for r in s.sql("SELECT DISTINCT board_type FROM games").fetchall()}


def merge(
    sources: Sequence[GameStore | str | os.PathLike],
    dest: str | os.PathLike,
    *,
    target_moves: int = DEFAULT_TARGET_MOVES,
    fsync: bool = True,
    progress: Progress | None = None,
) -> MergeResult:
    """Bring the games of ``sources`` into the store at ``dest`` (created if needed), once per game id.

    A source shard whose games are all new is copied as is (same bytes, same
    shard id); from the others only new games are taken and written into new
    shards of about ``target_moves`` moves.  Every shard is committed
    atomically and games already in ``dest`` are skipped, so an interrupted
    merge is finished by running it again.  The first source wins when
    several hold the same game id.
    """
    dest_storage = Storage.from_location(dest)
    result = MergeResult()
    srcs: list[GameStore] = []
    owned: list[GameStore] = []
    try:
        for src in sources:
            if isinstance(src, GameStore):
                srcs.append(src)
            else:
                st = open_store(src, create=False)
                owned.append(st)
                srcs.append(st)
        for st in srcs:
            if st.storage.same_place(dest_storage):
                raise GamestoreError(f"{st.storage.uri} is both a source and the destination")
        vectors = union_vectors([st.vectors for st in srcs] + [st.catalog.vectors() for st in srcs], what="sources")
        allowed = [st.board_types for st in srcs]
        board_types = None if any(b is None for b in allowed) else sorted({t for b in allowed if b for t in b})
        used = set().union(*(_board_types(st) for st in srcs)) if srcs else set()
        profiles = {st.profile for st in srcs}
        profile = profiles.pop() if len(profiles) == 1 else None  # a destination of mixed sources gets none
        with open_store(dest_storage, create=True, profile=profile, board_types=board_types, fsync=fsync) as d, \
                maintenance_lock(d):
            if d.board_types is not None and not used <= d.board_types:
                raise FormatError(
                    f"{d.path} accepts board types {sorted(d.board_types)}; the sources hold {sorted(used - d.board_types)}"
                )
            if vectors:
                union_vectors([d.vectors, vectors], what="stores")
                d.declare_vectors(vectors)
            clean_orphan_segments(d.storage)
            d.refresh()
            _merge_into(d, srcs, result, target_moves=target_moves, fsync=fsync, progress=progress)
            d.refresh()
    finally:
        for st in owned:
            st.close()
    return result


def _merge_into(d: GameStore, srcs: list[GameStore], result: MergeResult, *, target_moves: int, fsync: bool,
                progress: Progress | None) -> None:
    dcat = d.catalog
    taken: set[str] = set()
    pending: list[Part] = []
    pending_moves = 0

    def flush() -> None:
        nonlocal pending, pending_moves
        if pending:
            write_parts(d, pending, fsync=fsync)
            faults.point("merge.flushed")
            result.shards_written += 1
        pending, pending_moves = [], 0

    work: list[tuple[GameStore, ShardReader, ShardPick]] = []
    for st in srcs:
        st.refresh()
        known_damage(st)  # before anything reads: a missing file would fail the SQL over the shards
        work.extend((st, r, pick) for r, pick in indexed_readers(st, columns=["game_id"]))
        result.damaged_shards.update({f"{st.path}:{sid}": why for sid, why in known_damage(st).items()})
    faults.point("merge.planned")
    for st, reader, indexed in with_progress(work, progress):
        ids = indexed.columns.get("game_id", [])
        new = indexed.subset(np.array([g not in dcat and g not in taken for g in ids], dtype=bool))
        result.games_skipped += indexed.num_games - new.num_games
        if not new.num_games:
            continue
        if intact_reader(st.catalog, reader.shard_id) is None:  # quarantined now: skipped, named
            result.damaged_shards[f"{st.path}:{reader.shard_id}"] = [st.catalog.damage().get(reader.shard_id, "unreadable")]
            continue
        moves = new.num_moves
        if new.num_games == reader.manifest["num_games"] and copy_shard(reader, d.storage, fsync=fsync) is not None:
            dcat.add_committed(reader.shard_id)
            result.shards_copied += 1
        else:
            if pending and pending_moves + moves > target_moves:
                flush()
            pending.append(Part(reader, new))
            pending_moves += moves
        taken.update(new.columns["game_id"].tolist())
        result.games_added += new.num_games
        result.moves_added += moves
    flush()
