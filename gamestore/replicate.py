"""Copying committed shards between stores: ``gamestore sync SRC DST`` and :func:`sync`.

A shard is copied byte for byte under its own id with the destination's
commit protocol (docs/format.md): on a local filesystem into ``tmp/`` and
renamed into ``shards/``; on object storage data objects first and the
manifest last.  Every file is checked against the source manifest's sha256
before the shard is committed, so the destination never shows a partial or
altered shard.  A sync killed at any moment leaves only uncommitted staging
(``tmp/`` entries of a dead process, or objects without a manifest), which
readers ignore and the next run overwrites; running it again finishes the
job, and running it when nothing is new copies nothing.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

from . import faults
from .errors import FormatError, GamestoreError
from .shard import GAMES_FILE, MANIFEST, MOVES_FILE, ShardReader, new_shard_id, parse_manifest
from .fsutil import fsync_dir
from .profiles import LEGACY_PROFILE
from .storage import Storage
from .store import CONFIG_FILE, GameStore, require_store
from .store import open as open_store

__all__ = ["SyncResult", "sync", "copy_shard", "committed_shards"]

_DATA_FILES = (MOVES_FILE, GAMES_FILE)
_log = logging.getLogger("gamestore.sync")


@dataclass
class SyncResult:
    """What one :func:`sync` pass did."""

    shards_copied: int = 0
    games_copied: int = 0
    bytes_copied: int = 0
    shards_present: int = 0  # already in DST (by shard id, or every game of it by game id)
    damaged_shards: dict[str, list[str]] = field(default_factory=dict)
    errors: int = 0  # --watch: passes that failed (e.g. the server was unreachable) and were retried
    seconds: float = 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes_copied / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "mb_per_s": round(self.mb_per_s, 2)}

    def summary(self) -> str:
        text = (
            f"{self.shards_copied} shards, {self.games_copied} games, {self.bytes_copied / 1e6:.1f} MB copied"
            f" in {self.seconds:.1f} s ({self.mb_per_s:.1f} MB/s); {self.shards_present} shards already present"
        )
        if self.damaged_shards:
            text += f"; {len(self.damaged_shards)} damaged source shards skipped"
        return text


def committed_shards(storage: Storage) -> set[str]:
    """Ids of the committed shards of a store.

    Local: the entries of ``shards/`` (committed by rename).  Object
    storage: the shard prefixes holding a manifest (one recursive listing).
    """
    if storage.local:
        return {n for n in storage.list_dir("shards") if not n.startswith(".")}
    out = set()
    for entry in storage.list_files("shards"):
        parts = entry.path.split("/")
        if len(parts) == 3 and parts[2] == MANIFEST:
            out.add(parts[1])
    return out


def copy_shard(reader: ShardReader, dst: Storage, *, fsync: bool = True, with_segment: bool = True) -> int | None:
    """Copy the committed shard of ``reader`` into the store at ``dst`` under its own id.

    Returns the bytes copied, or None when ``dst`` already holds a shard of
    that id.  Each file is checked against the manifest's sha256 before the
    shard is committed (:class:`FormatError` on a mismatch: nothing is
    committed).  The catalog segment follows the commit when the source has
    one (derived data: the destination rebuilds it when missing).
    """
    sid = reader.shard_id
    src = reader.storage
    manifest_bytes = src.read_bytes(f"{reader.rel}/{MANIFEST}")
    expect = parse_manifest(manifest_bytes, sid).get("files", {})
    data = {}
    for name in _DATA_FILES:
        blob = src.read_bytes(f"{reader.rel}/{name}", large=True, size=expect.get(name, {}).get("bytes"))
        want = expect.get(name, {})
        if len(blob) != want.get("bytes") or hashlib.sha256(blob).hexdigest() != want.get("sha256"):
            raise FormatError(f"shard {sid}: {name} does not match its manifest checksum; not copied")
        data[name] = blob
    if dst.local:
        copied = _commit_local(dst, sid, data, manifest_bytes, fsync=fsync)
    else:
        copied = _commit_object(dst, sid, data, manifest_bytes)
    if copied is None:
        return None
    if with_segment:
        try:
            dst.write_bytes(f"catalog/{sid}.parquet", src.read_bytes(f"catalog/{sid}.parquet"), fsync=False)
        except OSError:
            pass  # no segment at the source, or none writable here: readers rebuild it from the shard
    return copied


def _commit_local(dst: Storage, sid: str, data: dict[str, bytes], manifest: bytes, *, fsync: bool) -> int | None:
    root = dst.local_path()
    final = root / "shards" / sid
    if final.exists():
        return None
    staging = root / "tmp" / new_shard_id()  # our pid: a dead sync's staging is removed by the next open
    staging.mkdir(parents=True)
    try:
        for name, blob in (*data.items(), (MANIFEST, manifest)):
            with open(staging / name, "wb") as f:
                f.write(blob)
                f.flush()
                if fsync:
                    os.fsync(f.fileno())
        if fsync:
            fsync_dir(staging)
        faults.point("shard.copy_staged")
        try:
            os.rename(staging, final)
        except OSError:
            if final.exists():  # another sync committed it first
                shutil.rmtree(staging, ignore_errors=True)
                return None
            raise
        faults.point("shard.copied")
        if fsync:
            fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sum(len(b) for b in data.values()) + len(manifest)


def _commit_object(dst: Storage, sid: str, data: dict[str, bytes], manifest: bytes) -> int | None:
    prefix = f"shards/{sid}"
    if dst.exists(f"{prefix}/{MANIFEST}"):
        return None
    # data first, under the shard's own prefix (a rerun overwrites what a killed run left), the manifest last
    for name, blob in data.items():
        dst.put_new(f"{prefix}/{name}", blob)
    dst.put_new(f"{prefix}/{MANIFEST}", manifest)
    return sum(len(b) for b in data.values()) + len(manifest)


def _prepare_dst(src: Storage, dst: Storage, *, fsync: bool) -> GameStore:
    """Open DST (created with SRC's board types and profile when missing) and declare SRC's vectors there."""
    config = json.loads(src.read_bytes(CONFIG_FILE))
    board_types = config.get("board_types")
    profile = config.get("profile", LEGACY_PROFILE)  # a store without the key has the RingRift views
    d = open_store(dst, create=True, board_types=board_types, profile=profile if isinstance(profile, str) else None,
                   fsync=fsync)
    try:
        if config.get("vectors"):
            d.declare_vectors(config["vectors"])
    except BaseException:
        d.close()
        raise
    return d


Progress = Callable[[Iterable, int], Iterable]


def sync(
    src: str | os.PathLike | Storage | GameStore,
    dst: str | os.PathLike | Storage | GameStore,
    *,
    workers: int = 8,
    fsync: bool = True,
    progress: Progress | None = None,
    watch: float | None = None,
    stop: threading.Event | None = None,
    on_pass: Callable[[SyncResult], None] | None = None,
) -> SyncResult:
    """Copy every committed shard of ``src`` that ``dst`` lacks; returns what was done.

    ``src``/``dst``: local paths, URIs (``s3://...``), Storage objects or
    open stores; ``dst`` is created (with ``src``'s config) when missing.
    A shard is skipped when ``dst`` holds one of the same id, or already
    holds every game of it (e.g. after compacting the synced shards).
    ``workers`` shards are copied at once.  ``progress(iterable, total)``
    wraps the stream of finished shards (a progress bar).

    ``watch=seconds`` keeps pulling: a pass every ``seconds`` until ``stop``
    is set (or KeyboardInterrupt); ``on_pass`` gets each pass's result and
    the returned result is the total.  New shards are indexed by DST's
    readers on their next call; their catalog segments are copied along.
    """
    start = time.perf_counter()
    src_storage = src.storage if isinstance(src, GameStore) else require_store(src)
    owned = None
    if isinstance(dst, GameStore):
        d = dst
    else:
        dst_storage = Storage.from_location(dst)
        if dst_storage.same_place(src_storage):
            raise GamestoreError(f"{src_storage.uri} is both the source and the destination")
        while True:
            try:
                d = owned = _prepare_dst(src_storage, dst_storage, fsync=fsync)
                break
            except OSError as exc:
                if watch is None or (stop is not None and stop.is_set()):
                    raise
                _log.warning("gamestore sync: cannot open %s, retrying in %s s: %s", dst_storage.uri, watch, exc)
                time.sleep(watch)
    total = SyncResult()
    known: set[str] = set()  # DST's committed shards: listed by the first pass, then kept by this process
    listed = False
    try:
        while True:
            t0 = time.perf_counter()
            try:
                result = _sync_pass(src_storage, d, known, listed, workers=workers, fsync=fsync, progress=progress)
                listed = True
            except OSError as exc:
                if watch is None:
                    raise
                # a watcher outlives outages (network, server restarts): nothing partial was committed; retry
                _log.warning("gamestore sync: pass failed, retrying in %s s: %s", watch, exc)
                result = SyncResult(errors=1)
                listed = False
            result.seconds = time.perf_counter() - t0
            _accumulate(total, result)
            if on_pass is not None:
                on_pass(result)
            if watch is None:
                break
            if stop is not None:
                if stop.wait(watch):
                    break
            else:
                time.sleep(watch)
    finally:
        if owned is not None:
            owned.close()
    total.seconds = time.perf_counter() - start
    return total


def _accumulate(total: SyncResult, one: SyncResult) -> None:
    total.shards_copied += one.shards_copied
    total.games_copied += one.games_copied
    total.bytes_copied += one.bytes_copied
    total.shards_present = one.shards_present
    total.damaged_shards.update(one.damaged_shards)
    total.errors += one.errors


def _sync_pass(src: Storage, d: GameStore, known: set[str], listed: bool, *, workers: int, fsync: bool,
               progress: Progress | None) -> SyncResult:
    """One pass: copy the shards of ``src`` not in ``known`` (DST's shards, listed unless ``listed``).

    A steady ``--watch`` pass lists only SRC: DST is listed (and its catalog
    refreshed, for the game-id check) by the first pass and after a failed
    one; every shard this process copies or finds present joins ``known``.
    """
    result = SyncResult()
    offered = committed_shards(src)
    if not listed:
        known.update(committed_shards(d.storage))
        d.refresh()
    candidates = sorted(offered - known)
    result.shards_present = len(offered) - len(candidates)
    if not candidates:
        return result
    lock = threading.Lock()

    def one(sid: str) -> tuple[str, int | None, int, list[str]]:
        try:
            reader = ShardReader(src, sid)
        except GamestoreError as exc:
            return sid, None, 0, [str(exc)]
        ids = reader.manifest.get("game_ids", [])
        if ids and all(g in d.catalog for g in ids):
            return sid, None, 0, []  # every game is already there (the shard was compacted into others)
        try:
            copied = copy_shard(reader, d.storage, fsync=fsync)
        except FormatError as exc:
            return sid, None, 0, [str(exc)]
        return sid, copied, len(ids), []

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="gamestore-sync") as pool:
        done = pool.map(one, candidates)
        for sid, copied, games, problems in (progress(done, len(candidates)) if progress else done):
            with lock:
                if problems:
                    result.damaged_shards[sid] = problems
                    continue
                known.add(sid)
                if copied is None:
                    result.shards_present += 1
                else:
                    result.shards_copied += 1
                    result.games_copied += games
                    result.bytes_copied += copied
    return result
