"""Writing and committing shards (docs/format.md, "Commit protocol").

On a local filesystem a shard is written into ``tmp/<shard_id>/``, every
file fsynced, and then committed by renaming the directory into ``shards/``.
On object storage (no rename) the data files are written under
``shards/<shard_id>/`` and the manifest last: its appearance is the commit.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import pyarrow as pa

from . import faults
from .checksum import file_checksums
from .errors import StoreFullError
from .fsutil import fsync_dir, fsync_file, utc_stamp
from .ipc_write import ipc_file_bytes, write_buffer
from .manifest import GAMES_FILE, MANIFEST, MOVES_FILE, build_manifest
from .schema import FORMAT_VERSION, GAMES_SCHEMA, VectorSpec, moves_schema
from .storage import Storage

__all__ = ["ShardInfo", "new_shard_id", "write_shard"]

def new_shard_id() -> str:
    """A unique, time-sortable shard id: ``YYYYmmddTHHMMSSffffff-<pid>-<8 hex>``."""
    return f"{utc_stamp()}-{os.getpid()}-{secrets.token_hex(4)}"


def _file_metadata(kind: str, shard_id: str) -> dict[bytes, bytes]:
    return {
        b"gamestore.format_version": str(FORMAT_VERSION).encode(),
        b"gamestore.kind": kind.encode(),
        b"gamestore.shard_id": shard_id.encode(),
    }


def _move_batches(games: pa.Table, moves: pa.Table, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Cut ``moves`` into batches of whole games, about ``batch_rows`` rows each.

    ``moves`` holds a chunk per encoded part: the IPC file format allows one dictionary per field and no
    replacement, so the chunks' dictionaries are unified (their indices remapped), and only a batch that
    spans two chunks is copied into one.  The batches are those of ``moves.combine_chunks()``, which
    copied every buffer of the shard into fresh memory (benchmarks/README.md, write path).
    """
    if any(c.num_chunks > 1 for c in moves.columns):
        moves = moves.unify_dictionaries()
    offsets = games.column("move_offset").to_pylist()
    counts = games.column("move_count").to_pylist()
    start = 0
    end = 0
    for off, cnt in zip(offsets, counts):
        if end - start >= batch_rows or (end > start and end - start + cnt > batch_rows):
            yield _one_batch(moves.slice(start, end - start))
            start = end
        end = off + cnt
    if end > start:
        yield _one_batch(moves.slice(start, end - start))


def _one_batch(rows: pa.Table) -> pa.RecordBatch:
    """``rows`` as one record batch: a view of its chunk, or a copy when it spans several."""
    if any(c.num_chunks != 1 for c in rows.columns):
        rows = rows.combine_chunks()
    return rows.to_batches()[0]


def _write_ipc(path: Path, data: pa.Buffer, *, fsync: bool) -> None:
    # one native write of the whole file, without the GIL (a Python file object would take it for every
    # write and stall an event loop, or the encoder, in another thread)
    write_buffer(path, data)
    if fsync:
        fsync_file(path)


def _file_bytes(games: pa.Table, batches: list[pa.RecordBatch], mschema: pa.Schema,
                gschema: pa.Schema) -> dict[str, pa.Buffer]:
    """The shard's two Arrow IPC files, compressed, in memory (ipc_write)."""
    return {
        MOVES_FILE: ipc_file_bytes(mschema, batches),
        GAMES_FILE: ipc_file_bytes(gschema, games.combine_chunks().to_batches()),
    }


def _file_records(data: dict[str, pa.Buffer]) -> dict[str, dict[str, Any]]:
    """The manifest's record of each file: size, SHA-256 and checksums, hashed from the bytes in memory."""
    return {
        name: {"bytes": buf.size, "sha256": hashlib.sha256(memoryview(buf)).hexdigest(), "checksums": file_checksums(buf)}
        for name, buf in data.items()
    }


@dataclass(frozen=True)
class ShardInfo:
    shard_id: str
    path: str
    num_games: int
    num_moves: int
    bytes: int


def write_shard(
    storage: Storage,
    games: pa.Table,
    moves: pa.Table,
    *,
    vectors: dict[str, VectorSpec],
    batch_rows: int = 1024,
    fsync: bool = True,
    shard_id: str | None = None,
    replaces: Sequence[str] = (),
) -> ShardInfo:
    """Write and commit one shard of the store at ``storage``; returns once it is durable and visible.

    ``replaces`` names the shards whose games this one carries over (compaction, prune): from this
    commit on readers ignore them (docs/format.md, "replaces").

    On any failure (including ENOSPC) nothing becomes visible: the local
    staging directory is removed; on object storage no manifest was written
    (the data objects written so far are removed, or cleaned up later as
    orphans, docs/format.md).
    """
    shard_id = shard_id or new_shard_id()
    mschema = moves_schema(vectors).with_metadata(_file_metadata("moves", shard_id))
    gschema = GAMES_SCHEMA.with_metadata(_file_metadata("games", shard_id))
    moves = moves.cast(mschema) if moves.schema != mschema.remove_metadata() else moves
    batches = list(_move_batches(games, moves, batch_rows))
    data = _file_bytes(games, batches, mschema, gschema)
    files = _file_records(data)
    if not storage.local:
        return _write_shard_object(storage, shard_id, games, moves, batches, data, files, vectors, replaces)
    root = storage.local_path()
    staging = root / "tmp" / new_shard_id()  # this process's pid in the name, whatever id is given (layout.py)
    final = root / "shards" / shard_id
    try:
        staging.mkdir(parents=True)
        for name, buf in data.items():
            _write_ipc(staging / name, buf, fsync=fsync)
        manifest = build_manifest(shard_id, games, moves, batches, vectors, files, replaces)
        with open(staging / MANIFEST, "w", encoding="utf-8") as f:
            # json.dumps: json.dump runs the pure-Python encoder, 8% of the seal's GIL-held samples; the same text
            f.write(json.dumps(manifest, separators=(",", ":")))
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        if fsync:
            fsync_dir(staging)
        faults.point("shard.staged")
        os.rename(staging, final)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StoreFullError(exc.errno, f"disk full while writing shard {shard_id}: {exc.strerror}") from exc
        raise
    if fsync:
        # committed (visible) from here on: never undo or report failure, or a retry would store the games twice;
        # a failed directory fsync is made good by the next commit's (docs/concurrency.md)
        try:
            fsync_dir(final.parent)
        except OSError as exc:
            warnings.warn(f"shard {shard_id} committed, but fsync of shards/ failed: {exc}", RuntimeWarning, stacklevel=2)
    size = sum(v["bytes"] for v in files.values()) + (final / MANIFEST).stat().st_size
    return ShardInfo(shard_id, str(final), games.num_rows, moves.num_rows, size)


def _write_shard_object(storage: Storage, shard_id, games, moves, batches, data, files, vectors,
                        replaces: Sequence[str]) -> ShardInfo:
    """Object-storage commit: data objects under the shard's unique prefix, the manifest last."""
    prefix = f"shards/{shard_id}"
    body = json.dumps(build_manifest(shard_id, games, moves, batches, vectors, files, replaces), separators=(",", ":")).encode()
    try:
        for name, buf in data.items():
            storage.put_new(f"{prefix}/{name}", buf)
        storage.put_new(f"{prefix}/{MANIFEST}", body)  # the commit point
    except BaseException:
        # nothing is visible without the manifest; remove what was uploaded (or leave it to the orphan cleanup)
        try:
            if not storage.exists(f"{prefix}/{MANIFEST}"):
                storage.delete_dir(prefix)
        except Exception:  # noqa: BLE001 - the original failure is the one to report
            pass
        raise
    size = sum(v["bytes"] for v in files.values()) + len(body)
    return ShardInfo(shard_id, storage.path(prefix), games.num_rows, moves.num_rows, size)
