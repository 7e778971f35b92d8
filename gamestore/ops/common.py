"""Plumbing shared by the operator jobs: opening, the maintenance lock, shard removal, vector unions."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .. import faults
from ..errors import FormatError, StoreBusyError
from ..fsutil import fsync_dir
from ..quarantine import screen
from ..readpath import ShardPick
from ..schema import VectorSpec
from ..shard import MANIFEST, ShardReader
from ..storage import Storage
from ..store import GameStore
from ..store import open as open_store

__all__ = [
    "DEFAULT_TARGET_MOVES",
    "Progress",
    "opened",
    "maintenance_lock",
    "with_progress",
    "known_damage",
    "indexed_picks",
    "indexed_readers",
    "pick_of",
    "union_vectors",
    "trash_shards",
    "finish_interrupted",
    "clean_orphan_segments",
]

#: Moves per shard that compaction and merge aim for (the store's default seal size).
DEFAULT_TARGET_MOVES = 65536
_LOCK_FILE = ".maintenance.lock"

Progress = Callable[[Iterable], Iterable]


@contextmanager
def opened(store: GameStore | str | os.PathLike, *, create: bool = False) -> Iterator[GameStore]:
    """Yield ``store`` as an open GameStore, closing it afterwards only if it was opened here."""
    if isinstance(store, GameStore):
        yield store
        return
    s = open_store(store, create=create)
    try:
        yield s
    finally:
        s.close()


@contextmanager
def maintenance_lock(store: GameStore | Storage | str | os.PathLike) -> Iterator[None]:
    """Exclusive lock held by one shard-rewriting job per store; writers and readers are not blocked.

    Object storage has no locks: concurrent jobs there are safe (every game
    stays visible exactly once) but may rewrite the same games twice.
    """
    storage = store.storage if isinstance(store, GameStore) else Storage.from_location(store)
    with storage.lock(_LOCK_FILE, blocking=False) as taken:
        if not taken:
            raise StoreBusyError(f"another compact/prune/merge is running on {storage.uri}")
        yield


def known_damage(store: GameStore) -> dict[str, list[str]]:
    """Every damaged shard of ``store`` with what is wrong, after a stat of each data file (quarantine.screen)."""
    screen(store.catalog)
    return {sid: [why] for sid, why in store.catalog.damage().items()}


def with_progress(items: Sequence, progress: Progress | None) -> Iterable:
    return items if progress is None else progress(items)


def indexed_picks(store: GameStore, *, columns: Sequence[str] = ()) -> dict[str, ShardPick]:
    """The games the catalog indexes (the first copy of each game id), per shard id; shards with none are absent."""
    return {p.shard_id: p for p in store.select_games(columns=columns).picks()}


def indexed_readers(store: GameStore, *, columns: Sequence[str] = ()) -> list[tuple[ShardReader, ShardPick]]:
    """Each shard the catalog indexes, with its pick (the games of it readers see: empty when every one has an
    earlier copy elsewhere).

    The shards are listed before the picks are taken: a shard the catalog picks up in between (a writer's commit,
    indexed by the background refresher) is left out, never mistaken for a shard whose games are all shadowed
    copies, which a rewrite would drop.
    """
    known = set(store.catalog.shard_ids())
    picks = indexed_picks(store, columns=columns)
    return [(r, pick_of(picks, r)) for r in store.catalog.readers() if r.shard_id in known]


def pick_of(picks: dict[str, ShardPick], reader: ShardReader) -> ShardPick:
    """``reader``'s pick in ``picks`` (an empty one when none of its games is indexed)."""
    empty = np.zeros(0, dtype=np.int64)
    return picks.get(reader.shard_id) or ShardPick(reader.shard_id, empty, empty, empty, {})


def union_vectors(specs: Iterable[dict[str, VectorSpec]], *, what: str = "shards") -> dict[str, VectorSpec]:
    """Union of vector declarations; the same name declared two ways is an error."""
    out: dict[str, VectorSpec] = {}
    for vectors in specs:
        for name, spec in vectors.items():
            if name in out and out[name] != spec:
                raise FormatError(
                    f"vector {name!r} is declared as {out[name].to_json()} and as {spec.to_json()} in these {what}"
                )
            out.setdefault(name, spec)
    return out


def trash_shards(storage: Storage, shard_ids: Iterable[str], *, fsync: bool = True) -> None:
    """Remove committed shards: each is renamed into ``trash/`` (its games vanish at once), then deleted.

    On object storage the manifest is deleted first (the shard is no longer
    committed: its games vanish at once), then the data and the segment.
    Shards go in descending id order, so a game stored in several of them
    stays visible until its first-indexed copy goes.
    """
    if not storage.local:
        for sid in sorted(shard_ids, reverse=True):
            storage.delete_file(f"shards/{sid}/{MANIFEST}")
            storage.delete_dir(f"shards/{sid}")
            storage.delete_file(f"catalog/{sid}.parquet")
        return
    root = storage.local_path()
    for sid in sorted(shard_ids, reverse=True):
        src = root / "shards" / sid
        dst = root / "trash" / sid
        try:
            os.rename(src, dst)
        except FileNotFoundError:
            continue  # already removed by someone else
        if fsync:
            fsync_dir(root / "shards")
        faults.point("trash.moved")
        (root / "catalog" / f"{sid}.parquet").unlink(missing_ok=True)
        shutil.rmtree(dst, ignore_errors=True)
        faults.point("trash.deleted")


def finish_interrupted(store: GameStore, *, fsync: bool = True) -> None:
    """Finish the cleanup of a killed compaction or prune: remove the shards a committed output replaces
    (readers already ignore them: their games are in the output) and catalog segments without a shard."""
    clean_orphan_segments(store.storage)
    hidden = store.catalog.hidden_shards()
    if hidden:
        trash_shards(store.storage, hidden, fsync=fsync)
        store.refresh()


def clean_orphan_segments(storage: Storage) -> int:
    """Delete catalog segments whose shard is gone (a crash between trash and unlink leaves them)."""
    # segments first: a writer commits its shard before its segment, so every segment
    # listed here whose shard is missing from the later listing really has no shard
    segments = [n[: -len(".parquet")] for n in storage.list_dir("catalog") if n.endswith(".parquet") and not n.startswith(".")]
    shards = set(storage.list_dir("shards"))
    removed = 0
    for sid in segments:
        if sid not in shards:
            storage.delete_file(f"catalog/{sid}.parquet")
            removed += 1
    return removed
