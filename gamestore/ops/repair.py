"""``gamestore verify --repair``: damaged shards moved aside, the catalog rebuilt, a store ``verify`` calls OK.

Every shard ``verify`` finds damaged (a file missing, truncated, swapped or
failing a checksum, a manifest that does not parse or describe the files) is
moved from ``shards/<id>`` into ``quarantine/<id>`` with a ``REASON.json``
(what was wrong, when, and the game ids its manifest lists, when it could be
read), so nothing is deleted and an operator can still salvage it by hand.
Then the catalog is rebuilt from the remaining shards (a damaged checkpoint
or segment with it) and the store verified again.  A shard of a newer
format version is not damaged: it is left where it is.  Runs under the
maintenance lock (one shard-rewriting job per store), next to writers and
readers: a reader that had the shard open sees it removed, like a
compacted one.

On a local filesystem the move is one rename.  On object storage (no
rename) it is copy-then-delete: the manifest, the shard's commit point, is
deleted first so every reader stops seeing the shard at once, then each
object is copied under ``quarantine/<id>/`` (the manifest's bytes too) and
the originals deleted.  An interrupted repair leaves a manifest-less shard
(never indexed; ``verify`` reports it) and a partial copy: run it again.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.fs as pafs

from ..catalog_snapshot import read_segment
from ..errors import FormatError, ShardCorruptError
from ..fsutil import fsync_dir, utc_now
from ..quarantine import QUARANTINE_DIR, REASON_FILE
from ..shard import MANIFEST, read_manifest, verify_shard
from ..storage import Storage
from ..store import require_store
from .common import Progress, maintenance_lock
from .integrity import VerifyReport, reindex_store, verify_store

__all__ = ["RepairResult", "repair_store"]


@dataclass
class RepairResult:
    """What ``repair_store`` did; ``after`` is the verification of the repaired store."""

    moved: dict[str, list[str]] = field(default_factory=dict)  #: shard id -> what was wrong (now in quarantine/)
    games_lost: list[str] = field(default_factory=list)  #: game ids of moved shards that no remaining shard holds
    catalog_rebuilt: bool = False
    after: VerifyReport = field(default_factory=VerifyReport)

    @property
    def ok(self) -> bool:
        return self.after.ok

    def to_dict(self) -> dict:
        return {"ok": self.ok, **asdict(self)}

    def lines(self) -> list[str]:
        out = [f"moved damaged shard {sid} to {QUARANTINE_DIR}/{sid}: {'; '.join(p)}" for sid, p in sorted(self.moved.items())]
        if self.moved:
            out.append(f"{len(self.games_lost)} games were only in the moved shards (listed in their {REASON_FILE})")
        if self.catalog_rebuilt:
            out.append("catalog rebuilt")
        return out + ["after repair: " + line for line in self.after.lines()]


def repair_store(path: str | os.PathLike | Storage, *, progress: Progress | None = None,
                 filesystem: pafs.FileSystem | None = None) -> RepairResult:
    """Move every damaged shard of the store at ``path`` into ``quarantine/`` and rebuild the catalog."""
    storage = require_store(path, filesystem=filesystem)
    result = RepairResult()
    with maintenance_lock(storage):
        before = verify_store(storage, progress=progress)
        lost: set[str] = set()
        for sid, problems in sorted(before.damaged_shards.items()):
            if _newer_format(storage, sid):
                continue
            if verify_shard(storage, sid):  # still damaged now (not replaced or removed meanwhile)
                problems = [p.removeprefix(f"shard {sid}: ") for p in problems]
                lost.update(_move_aside(storage, sid, problems))
                result.moved[sid] = problems
        if result.moved or before.catalog_problems:
            reindex_store(storage)
            result.catalog_rebuilt = True
        result.after = verify_store(storage)
    present = {g for d in storage.list_dir("shards") if not d.startswith(".") for g in _game_ids(storage, d)}
    result.games_lost = sorted(lost - present)
    return result


def _newer_format(storage: Storage, shard_id: str) -> bool:
    try:
        read_manifest(storage, f"shards/{shard_id}")
    except ShardCorruptError:
        return False
    except FormatError:
        return True  # a version this reader does not know: not damage
    return False


def _game_ids(storage: Storage, shard_id: str) -> list[str]:
    """The game ids of a shard: from its manifest, else from its catalog segment (empty when neither reads)."""
    try:
        return list(read_manifest(storage, f"shards/{shard_id}")["game_ids"])
    except (ShardCorruptError, FormatError):
        pass
    try:
        return read_segment(storage, f"catalog/{shard_id}.parquet").column("game_id").to_pylist()
    except (OSError, pa.ArrowException):
        return []


def _move_aside(storage: Storage, shard_id: str, problems: list[str]) -> list[str]:
    """Move ``shards/<id>`` into ``quarantine/`` with its reason file; returns the game ids it listed."""
    storage.makedirs(QUARANTINE_DIR)
    target = f"{QUARANTINE_DIR}/{shard_id}"
    n = 1
    while storage.exists(target):  # the same id moved aside before (a copy merged in again): keep both
        target = f"{QUARANTINE_DIR}/{shard_id}.{n}"
        n += 1
    ids = _game_ids(storage, shard_id)
    src = f"shards/{shard_id}"
    if storage.local:
        os.rename(storage.path(src), storage.path(target))
        fsync_dir(storage.path("shards"))
    else:
        _copy_then_delete(storage, src, target)
    reason = {"shard_id": shard_id, "moved_at": utc_now(), "problems": problems, "game_ids": ids}
    storage.write_bytes(f"{target}/{REASON_FILE}", json.dumps(reason, indent=1).encode())
    if storage.local:
        fsync_dir(storage.path(QUARANTINE_DIR))
    storage.delete_file(f"catalog/{shard_id}.parquet")
    return ids


def _copy_then_delete(storage: Storage, src: str, target: str) -> None:
    """Object storage: the manifest (commit point) deleted first, so readers stop seeing the shard, then every
    object copied under ``target`` and the originals deleted."""
    try:
        manifest: bytes | None = storage.read_bytes(f"{src}/{MANIFEST}")
    except FileNotFoundError:
        manifest = None
    storage.delete_file(f"{src}/{MANIFEST}")
    if manifest is not None:
        storage.write_bytes(f"{target}/{MANIFEST}", manifest)
    entries = [e for e in storage.list_files(src) if not e.path.endswith(f"/{MANIFEST}")]
    for e in entries:
        storage.write_bytes(target + e.path[len(src):], storage.read_bytes(e.path, large=True, size=e.size))
    for e in entries:
        storage.delete_file(e.path)
    storage.delete_dir(src)
