"""Catalog checkpoints: the whole catalog of a store in two Parquet files, so opening costs O(games), not O(shards).

A checkpoint (docs/format.md, section 5) is written atomically, Delta-Lake
style: its files get unique names in ``catalog/_checkpoint/``, then the
small pointer ``catalog/_last_checkpoint`` is replaced with one rename.  It
lists the shards it covers; shards committed after it (the *tail*) are read
from their segments, shards removed after it are dropped by the reader.  A
damaged or missing checkpoint is rebuilt from the segments and shards.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from .fsutil import atomic_path, file_lock, utc_now, utc_stamp

__all__ = [
    "CHECKPOINT_DIR",
    "LAST_CHECKPOINT",
    "CHECKPOINT_VERSION",
    "SHARDS_SCHEMA",
    "Checkpoint",
    "read_checkpoint",
    "write_checkpoint",
    "checkpoint_lock",
]

CHECKPOINT_DIR = "_checkpoint"
LAST_CHECKPOINT = "_last_checkpoint"
CHECKPOINT_VERSION = 1
#: Checkpoints kept besides the newest (a process may be reading one that was just superseded).
_KEEP = 2
#: A superseded checkpoint younger than this is never deleted (a slow reader may be opening it).
_GRACE_SECONDS = 60.0

#: One row per shard of the catalog (a checkpoint's ``.shards.parquet``; the ``shards`` view).
SHARDS_SCHEMA = pa.schema(
    [
        pa.field("shard_id", pa.string()),
        pa.field("num_games", pa.int32()),
        pa.field("num_moves", pa.int64()),
        pa.field("bytes", pa.int64()),
        pa.field("created_at", pa.string()),
        pa.field("vectors_json", pa.string()),
        pa.field("replaces", pa.list_(pa.string())),
    ]
)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as read: every game row of the covered shards, and one row per covered shard."""

    name: str
    games: pa.Table  #: catalog.SEGMENT_SCHEMA, all copies of every game of the covered shards
    shards: pa.Table  #: SHARDS_SCHEMA


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_checkpoint(catalog_dir: Path, games_schema: pa.Schema) -> Checkpoint | None:
    """The checkpoint ``_last_checkpoint`` names, or None when there is none or it is damaged.

    Every file is checked against the sizes and sha256 digests recorded in
    ``_last_checkpoint``; any mismatch, a schema other than the expected
    one, or a row count that disagrees makes the checkpoint count as absent
    (the caller rebuilds it from the segments).
    """
    for _ in range(3):  # the named files may be superseded and deleted between reading the pointer and them
        try:
            pointer = json.loads((catalog_dir / LAST_CHECKPOINT).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        if not isinstance(pointer, dict) or pointer.get("checkpoint_version") != CHECKPOINT_VERSION:
            return None
        try:
            name = str(pointer["name"])
            tables = {}
            for part, schema in (("games", games_schema), ("shards", SHARDS_SCHEMA)):
                expect = pointer["files"][part]
                data = (catalog_dir / CHECKPOINT_DIR / f"{name}.{part}.parquet").read_bytes()
                if len(data) != expect["bytes"] or _sha256(data) != expect["sha256"]:
                    return None
                table = pq.read_table(pa.BufferReader(data))
                if not table.schema.equals(schema) or table.num_rows != pointer[part]:
                    return None
                tables[part] = table
        except FileNotFoundError:
            continue
        except (OSError, KeyError, TypeError, ValueError, pa.ArrowException):
            return None
        return Checkpoint(name, tables["games"], tables["shards"])
    return None


def _write_bytes(path: Path, data: bytes, *, fsync: bool) -> None:
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=1 << 20)
    return sink.getvalue().to_pybytes()


def write_checkpoint(catalog_dir: Path, games: pa.Table, shards: pa.Table, *, fsync: bool = False) -> str:
    """Write a checkpoint of ``games`` and ``shards`` and make it the current one; returns its name.

    The two data files are complete under their final names before the
    pointer is replaced, so a reader sees the old checkpoint or the new one,
    never a mix; a crash leaves at most unreferenced files (removed by a
    later checkpoint) or ``.tmp`` files (removed by the next open).
    """
    cdir = catalog_dir / CHECKPOINT_DIR
    cdir.mkdir(parents=True, exist_ok=True)
    name = f"{utc_stamp()}-{os.getpid()}-{secrets.token_hex(4)}"
    files = {}
    for part, table in (("games", games), ("shards", shards)):
        data = _parquet_bytes(table)
        _write_bytes(cdir / f"{name}.{part}.parquet", data, fsync=fsync)
        files[part] = {"bytes": len(data), "sha256": _sha256(data)}
    pointer = {
        "checkpoint_version": CHECKPOINT_VERSION,
        "name": name,
        "created_at": utc_now(),
        "games": games.num_rows,
        "shards": shards.num_rows,
        "files": files,
    }
    _write_bytes(catalog_dir / LAST_CHECKPOINT, json.dumps(pointer, indent=1).encode(), fsync=fsync)
    _remove_superseded(cdir, name)
    return name


def _remove_superseded(cdir: Path, current: str) -> None:
    names = sorted({p.name.split(".", 1)[0] for p in cdir.glob("*.parquet")})
    old = [n for n in names if n < current][:-_KEEP] if _KEEP else [n for n in names if n < current]
    now = time.time()
    for n in old:
        for part in ("games", "shards"):
            p = cdir / f"{n}.{part}.parquet"
            try:
                if now - p.stat().st_mtime > _GRACE_SECONDS:
                    p.unlink()
            except FileNotFoundError:
                pass


@contextmanager
def checkpoint_lock(catalog_dir: Path) -> Iterator[bool]:
    """Non-blocking per-store lock so that one process at a time writes a checkpoint (released on crash).

    Yields False (and holds nothing) when another process holds it.
    """
    path = catalog_dir / CHECKPOINT_DIR / ".lock"
    lock = file_lock(path, blocking=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.__enter__()
    except OSError:  # held elsewhere (BlockingIOError), or read-only media
        yield False
        return
    try:
        yield True
    finally:
        lock.__exit__(None, None, None)


def checkpoint_files(catalog_dir: Path) -> Iterator[Path]:
    """Every checkpoint data file (for verify and cleanup)."""
    cdir = catalog_dir / CHECKPOINT_DIR
    if cdir.exists():
        yield from sorted(cdir.glob("*.parquet"))
