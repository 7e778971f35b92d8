"""Damaged shards: how they are found, named and kept out of the way (docs/operations.md, "Damaged shards").

A shard is *damaged* when a file is missing, has another size than its
manifest gives, fails a checksum, or does not decode.  The catalog finds it
while indexing (manifest, sizes), on a read (any :class:`ShardCorruptError`
of the shard; gamestore/readpath.py reports it) or in :func:`screen` (a stat
per file, run by ``info`` and the maintenance jobs), and *quarantines* it in
that process: its games leave every view, the other games stay readable and
writable, a :class:`DamagedShardWarning` names it.  Nothing on disk changes
until ``gamestore verify --repair`` (:func:`gamestore.ops.repair_store`)
moves it into ``STORE/quarantine/<shard_id>/`` with a ``REASON.json``.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from .catalog_snapshot import Snapshot, view_dataset
from .errors import DamagedShardWarning, ShardCorruptError
from .schema import GAMES_SCHEMA
from .shard import GAMES_FILE, MOVES_FILE
from .lazy import lazy_module

pc = lazy_module("pyarrow.compute")  # imported on first use (gamestore/lazy.py)

if TYPE_CHECKING:  # pragma: no cover
    from .catalog import Catalog
    from .storage import Storage

__all__ = ["QUARANTINE_DIR", "REASON_FILE", "reason_of", "check_sizes", "screen", "warn_damaged", "quarantined_shards",
           "take_out", "record_damage", "damage_of", "lost_in", "raise_if_lost", "damage_info", "games_dataset"]

#: Where ``verify --repair`` moves damaged shards (one directory per shard, with its reason file).
QUARANTINE_DIR = "quarantine"
REASON_FILE = "REASON.json"
_DATA_FILES = (MOVES_FILE, GAMES_FILE)


def reason_of(exc: Exception) -> str:
    """The message of a shard's error without its ``shard <id>:`` prefix."""
    text = str(exc)
    sid = getattr(exc, "shard_id", None)
    prefix = f"shard {sid}: "
    return text[len(prefix):] if sid and text.startswith(prefix) else text


def _size(storage: "Storage", rel: str) -> int | None:
    """The size of the file ``rel`` (None when it is missing)."""
    return storage.size(rel)


def check_sizes(storage: "Storage", shard_id: str, manifest: dict, *, lost: dict[str, str]) -> None:
    """:class:`ShardCorruptError` for a missing data file or one of another size than the manifest gives; the
    shard's game ids are noted in ``lost`` first (game id -> shard id)."""
    files = manifest["files"]
    for name in _DATA_FILES:
        size = _size(storage, f"shards/{shard_id}/{name}")
        if size is None:
            problem = f"{name} missing"
        elif size == files[name]["bytes"]:
            continue
        else:
            problem = f"{name}: size {size} != {files[name]['bytes']}"
        lost.update((g, shard_id) for g in manifest["game_ids"])
        raise ShardCorruptError(problem, shard_id=shard_id)


def screen(catalog: "Catalog") -> dict[str, str]:
    """Quarantine every indexed shard whose data files are missing or not the size its manifest gives (a stat
    per file: truncated, deleted or swapped files); returns the shards quarantined now, with the reason."""
    found = {}
    shards = catalog.shard_table()
    for sid, size in zip(shards.column("shard_id").to_pylist(), shards.column("bytes").to_pylist()):
        sizes = [_size(catalog.storage, f"shards/{sid}/{name}") for name in _DATA_FILES]
        if None in sizes:
            reason = "moves.arrow or games.arrow missing"
        else:
            actual = sum(s for s in sizes if s is not None)
            if actual == size:
                continue
            reason = f"data files are {actual} bytes, the manifest says {size}"
        if catalog.quarantine(sid, reason):
            found[sid] = reason
    return found


def _without_shard(snap: Snapshot, shard_id: str) -> tuple[Snapshot, list[str]]:
    """The next catalog snapshot with ``shard_id`` quarantined (its rows out, the id among the damaged), and the
    game ids its rows held."""
    in_shard = pc.equal(snap.rows.column("shard_id"), shard_id)
    ids = snap.rows.filter(in_shard).column("game_id").to_pylist()
    shards = snap.shards.filter(pc.not_equal(snap.shards.column("shard_id"), shard_id))
    new = Snapshot(snap.rows.filter(pc.invert(in_shard)), shards, snap.damaged | {shard_id}, snap.generation + 1,
                   snap.covered)
    return new, ids


def take_out(catalog: "Catalog", shard_id: str, reason: str) -> bool:
    """``Catalog.quarantine``: stop serving a damaged shard in this process (True if done now; False if it is gone
    from ``shards/``, which is not damage, or not indexed)."""
    if not catalog.storage.exists(f"shards/{shard_id}"):
        return False
    with catalog._refresh_lock:
        snap = catalog._snap
        if shard_id not in snap.shard_ids or catalog._closed:
            return False
        new, ids = _without_shard(snap, shard_id)
        catalog._damage[shard_id] = reason
        catalog._swap(new)
        with catalog._readers_lock:
            catalog._readers.pop(shard_id, None)
        catalog.lost.update((g, shard_id) for g in ids if g not in catalog._snap.locations)
    warn_damaged(shard_id, reason)
    return True


def record_damage(catalog: "Catalog", shard_id: str, exc: Exception) -> None:
    """A shard found damaged while indexing (it never enters a snapshot's games): remembered and warned about."""
    catalog._damage[shard_id] = reason_of(exc)
    warn_damaged(shard_id, catalog._damage[shard_id])


def damage_of(catalog: "Catalog") -> dict[str, str]:
    """``Catalog.damage``: every damaged (quarantined) shard of the catalog, with what is wrong with it."""
    return {sid: catalog._damage.get(sid, "unreadable") for sid in sorted(catalog._snap.damaged)}


def lost_in(catalog: "Catalog", game_id: str) -> str | None:
    """``Catalog.lost_in``: the quarantined shard that held ``game_id`` (None when it did not, or another copy is
    indexed)."""
    sid = catalog.lost.get(game_id)
    snap = catalog._snap
    return sid if sid is not None and sid in snap.damaged and game_id not in snap.locations else None


def games_dataset(catalog: "Catalog", snap: Snapshot, sids: list[str]) -> Any:
    """The ``games.arrow`` files of shards ``sids`` as an Arrow dataset (the ``games_full`` view reads it; copies
    of games indexed in another shard filtered out).  A missing file quarantines its shard, and the dataset is
    made of the others."""
    storage = catalog.storage
    sids = list(sids)
    while True:
        try:
            return view_dataset({s: storage.path(f"shards/{s}/{GAMES_FILE}") for s in sids}, GAMES_SCHEMA,
                                snap.shadowed, filesystem=storage.fs)
        except FileNotFoundError as exc:
            missing = str(exc.args[0] if exc.args else exc.filename)
            sid = next((s for s in sids if f"/{s}/{GAMES_FILE}" in missing), None)
            if sid is None:
                raise
            catalog.quarantine(sid, f"{GAMES_FILE} missing")
            sids.remove(sid)


def warn_damaged(shard_id: str, reason: str | None) -> None:
    warnings.warn(f"shard {shard_id} is damaged ({reason or 'unreadable'}) and quarantined: its games are"
                  " unreadable, every other game is served (`gamestore verify --repair` moves it aside)",
                  DamagedShardWarning, stacklevel=4)


def quarantined_shards(storage: "Storage") -> list[str]:
    """The shards ``verify --repair`` has moved aside into ``quarantine/``."""
    return sorted(n for n in storage.list_dir(QUARANTINE_DIR) if not n.startswith("."))


def raise_if_lost(catalog: "Catalog", game_id: str) -> None:
    """:class:`ShardCorruptError` naming the quarantined shard that held ``game_id``, if one did."""
    sid = catalog.lost_in(game_id)
    if sid is not None:
        raise ShardCorruptError(f"game {game_id!r} is in this damaged shard (quarantined): "
                                f"{catalog.damage().get(sid)}", shard_id=sid)


def damage_info(catalog: "Catalog") -> dict:
    """The damage figures of ``GameStore.info()``: damaged (quarantined in this process) shards with their reasons,
    the games known lost with them, and the shards ``verify --repair`` has moved aside."""
    damage = catalog.damage()
    return {
        "damaged_shards": sorted(damage),
        "damage": damage,
        "games_in_damaged_shards": sum(1 for g in list(catalog.lost) if catalog.lost_in(g) is not None),
        "quarantined_shards": quarantined_shards(catalog.storage),
    }
