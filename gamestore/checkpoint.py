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
from typing import Callable, Iterator, Sequence

import pyarrow as pa

from . import faults
from .fsutil import utc_now, utc_stamp
from .lazy import lazy_module
from .storage import Storage

# imported when a checkpoint is written: ``pyarrow.parquet`` imports pyarrow.fs (S3, GCS, Azure and HDFS
# bindings and ssl, ~10 ms), which opening a local store otherwise never needs (read_parquet_bytes)
pq = lazy_module("pyarrow.parquet")

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
_CATALOG = "catalog"
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
    games: pa.Table  #: catalog.SEGMENT_SCHEMA, all copies of every game of the covered shards (see ``all_games``)
    shards: pa.Table  #: SHARDS_SCHEMA
    #: read with ``columns``: ``games`` holds only those, and this reads all of them (the same rows, in order) from
    #: the file's bytes kept in memory (already checked against the pointer's digest); None: ``games`` is whole
    all_games: Callable[[], pa.Table] | None = None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_parquet_bytes(data: bytes, *, page_checksums: bool = False) -> pa.Table:
    """The table of the Parquet file ``data`` (``pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)``).

    No Arrow worker threads: Python owns the bytes (Storage.read_bytes).
    Through the reader class ``pq.ParquetFile`` wraps, from ``pyarrow._parquet``,
    which does not import ``pyarrow.fs`` (see ``pq`` above).
    """
    try:
        from pyarrow._parquet import ParquetReader
    except ImportError:  # pragma: no cover - another pyarrow layout
        with pq.ParquetFile(pa.BufferReader(data), page_checksum_verification=page_checksums) as f:
            return f.read(use_threads=False)
    reader = ParquetReader()
    reader.open(pa.BufferReader(data), page_checksum_verification=page_checksums)
    return reader.read_all(use_threads=False)


def _read_games(data: bytes, schema: pa.Schema, rows: int, columns: Sequence[str] | None) -> pa.Table | None:
    """The checkpoint games file ``data`` (only ``columns`` when given) when its schema is ``schema`` and it holds
    ``rows`` rows, else None (the file's metadata is checked before any column is read)."""
    try:
        from pyarrow._parquet import ParquetReader
    except ImportError:  # pragma: no cover - another pyarrow layout
        table = read_parquet_bytes(data)
        ok = table.schema.equals(schema) and table.num_rows == rows
        return None if not ok else table if columns is None else table.select(list(columns))
    # the few key columns from the system allocator's pool: a process's first Parquet read through the default pool
    # (mimalloc) took 5-67 ms for them (fresh huge pages, bimodal), through this one 7-9 ms
    reader = ParquetReader() if columns is None else ParquetReader(memory_pool=pa.system_memory_pool())
    reader.open(pa.BufferReader(data))
    if not reader.schema_arrow.equals(schema) or reader.metadata.num_rows != rows:
        return None
    if columns is None:
        table = reader.read_all(use_threads=False)
    else:
        # Parquet's leaf columns (a nested column has several): only flat columns can be asked for by name here
        table = reader.read_all(column_indices=[reader.column_name_idx(c) for c in columns], use_threads=False)
        if table.schema.names != list(columns):
            return None
    return table if table.num_rows == rows else None


def read_checkpoint(storage: Storage, games_schema: pa.Schema, *,
                    columns: Sequence[str] | None = None) -> Checkpoint | None:
    """The checkpoint ``catalog/_last_checkpoint`` names, or None when there is none or it is damaged.

    Every file is checked against the sizes and sha256 digests recorded in
    ``_last_checkpoint``; any mismatch, a schema other than the expected
    one, or a row count that disagrees makes the checkpoint count as absent
    (the caller rebuilds it from the segments).  Network failures on object
    storage propagate (OSError): they are not damage.

    ``columns`` (of ``games_schema``): the games table holds only these, and the checkpoint's ``all_games`` reads
    the others when first called.  Decoding every column of a 20,000-game checkpoint took 12-18 ms of a store's
    open warm (5-67 ms in a fresh process, where the allocator took fresh huge pages for it), five of them
    ~2 ms, and a first statement over ``moves`` needs no other (catalog_snapshot.Snapshot's ``load``).
    """
    for _ in range(3):  # the named files may be superseded and deleted between reading the pointer and them
        try:
            pointer = json.loads(storage.read_bytes(f"{_CATALOG}/{LAST_CHECKPOINT}"))
        except FileNotFoundError:
            return None
        except ValueError:
            return None
        except OSError:
            if storage.local:
                return None
            raise
        if not isinstance(pointer, dict) or pointer.get("checkpoint_version") != CHECKPOINT_VERSION:
            return None
        try:
            name = str(pointer["name"])
            tables: dict[str, pa.Table] = {}
            all_games: Callable[[], pa.Table] | None = None
            for part, schema in (("games", games_schema), ("shards", SHARDS_SCHEMA)):
                expect = pointer["files"][part]
                data = storage.read_bytes(f"{_CATALOG}/{CHECKPOINT_DIR}/{name}.{part}.parquet", large=True)
                if len(data) != expect["bytes"] or _sha256(data) != expect["sha256"]:
                    return None
                if part == "games":
                    rows = pointer[part]
                    if not isinstance(rows, int):
                        return None
                    got = _read_games(data, schema, rows, columns)
                    if got is None:
                        return None
                    tables[part] = got
                    if columns is not None:
                        all_games = _all_games(data, schema, rows)
                    continue
                table = read_parquet_bytes(data)
                if not table.schema.equals(schema) or table.num_rows != pointer[part]:
                    return None
                tables[part] = table
        except FileNotFoundError:
            continue
        except (KeyError, TypeError, ValueError, pa.ArrowException):
            return None
        except OSError:
            if storage.local:
                return None
            raise
        return Checkpoint(name, tables["games"], tables["shards"], all_games)
    return None


def _all_games(data: bytes, schema: pa.Schema, rows: int) -> Callable[[], pa.Table]:
    def read() -> pa.Table:
        table = _read_games(data, schema, rows, None)
        if table is None:  # the bytes passed these checks when the checkpoint was read: they are in memory
            raise ValueError("checkpoint games file changed in memory")
        return table
    return read


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=1 << 20)
    return sink.getvalue().to_pybytes()


def write_checkpoint(storage: Storage, games: pa.Table, shards: pa.Table, *, fsync: bool = False) -> str:
    """Write a checkpoint of ``games`` and ``shards`` and make it the current one; returns its name.

    The two data files are complete under their final names before the
    pointer is replaced (an atomic rename locally, one PUT on object
    storage), so a reader sees the old checkpoint or the new one, never a
    mix; a crash leaves at most unreferenced files (removed by a later
    checkpoint) or ``.tmp`` files (removed by the next open).
    """
    cdir = f"{_CATALOG}/{CHECKPOINT_DIR}"
    storage.makedirs(cdir)
    name = f"{utc_stamp()}-{os.getpid()}-{secrets.token_hex(4)}"
    files = {}
    for part, table in (("games", games), ("shards", shards)):
        data = _parquet_bytes(table)
        storage.write_bytes(f"{cdir}/{name}.{part}.parquet", data, fsync=fsync)
        files[part] = {"bytes": len(data), "sha256": _sha256(data)}
    faults.point("checkpoint.files")
    pointer = {
        "checkpoint_version": CHECKPOINT_VERSION,
        "name": name,
        "created_at": utc_now(),
        "games": games.num_rows,
        "shards": shards.num_rows,
        "files": files,
    }
    storage.write_bytes(f"{_CATALOG}/{LAST_CHECKPOINT}", json.dumps(pointer, indent=1).encode(), fsync=fsync)
    _remove_superseded(storage, name)
    return name


def _remove_superseded(storage: Storage, current: str) -> None:
    cdir = f"{_CATALOG}/{CHECKPOINT_DIR}"
    entries = {e.path.rsplit("/", 1)[-1]: e for e in storage.list_files(cdir) if e.path.endswith(".parquet")}
    names = sorted({n.split(".", 1)[0] for n in entries})
    old = [n for n in names if n < current][:-_KEEP] if _KEEP else [n for n in names if n < current]
    now = time.time()
    for n in old:
        for part in ("games", "shards"):
            e = entries.get(f"{n}.{part}.parquet")
            if e is not None and now - (e.mtime or now) > _GRACE_SECONDS:
                storage.delete_file(e.path)


@contextmanager
def checkpoint_lock(storage: Storage) -> Iterator[bool]:
    """Non-blocking per-store lock so that one process at a time writes a checkpoint (released on crash).

    Yields False (and holds nothing) when another process holds it.  Object
    storage has no locks: two processes may both write one; the pointer's
    last PUT wins and both checkpoints are complete.
    """
    rel = f"{_CATALOG}/{CHECKPOINT_DIR}/.lock"
    lock = storage.lock(rel, blocking=False)
    try:
        storage.makedirs(f"{_CATALOG}/{CHECKPOINT_DIR}")
        got = lock.__enter__()
    except OSError:  # read-only media
        yield False
        return
    try:
        yield got
    finally:
        lock.__exit__(None, None, None)


def checkpoint_files(storage: Storage) -> list[str]:
    """Every checkpoint data file, relative to the store root (for verify and cleanup)."""
    return sorted(e.path for e in storage.list_files(f"{_CATALOG}/{CHECKPOINT_DIR}") if e.path.endswith(".parquet"))
