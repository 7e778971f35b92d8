"""Shards: immutable directories of two zstd Arrow IPC files and a manifest; reading them.

Shards are written and committed by :mod:`gamestore.shardwrite` (a rename on
a local filesystem, the manifest written last on object storage) and
described by their manifest (:mod:`gamestore.manifest`).  All I/O goes
through a :class:`gamestore.storage.Storage`: local files are memory-mapped,
objects read whole once per reader.
"""
from __future__ import annotations

import hashlib
import os
import threading
from bisect import bisect_right
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Hashable, Iterator, Sequence

import pyarrow as pa
import pyarrow.ipc as ipc

from .checksum import FileVerifier
from .errors import FormatError, ShardCorruptError
from .fsutil import sha256_file
from .ipc_batch import Damaged, FastBatchReader, Unsupported, fast_reader
from .manifest import GAMES_FILE, MANIFEST, MOVES_FILE, parse_manifest, read_manifest
from .schema import GAMES_SCHEMA, READABLE_FORMAT_VERSIONS, VectorSpec, vectors_from_schema
from .storage import Storage

if TYPE_CHECKING:  # pragma: no cover
    from .shardwrite import ShardInfo, new_shard_id, write_shard  # noqa: F401

__all__ = [
    "MANIFEST", "MOVES_FILE", "GAMES_FILE", "ShardInfo", "new_shard_id", "write_shard", "ShardReader", "open_ipc",
    "LRUCache", "BATCH_CACHE", "ROW_CACHE", "verify_shard", "parse_manifest", "read_manifest",
]

_READABLE_META = {str(v).encode() for v in READABLE_FORMAT_VERSIONS}


def __getattr__(name: str) -> Any:
    """The write side's names this module also exports (``ShardInfo``, ``new_shard_id``, ``write_shard``), imported
    from :mod:`gamestore.shardwrite` on first use: opening and reading a store never loads the write side (~1.5 ms
    of every process's first statement)."""
    if name in ("ShardInfo", "new_shard_id", "write_shard"):
        from . import shardwrite

        return getattr(shardwrite, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_ipc(
    path: Path,
    *,
    source: pa.NativeFile | None = None,
    fields: list[int] | None = None,
    threads: bool = True,
) -> ipc.RecordBatchFileReader:
    """Open one shard file (``<shard>/<name>.arrow``) and check its format version.

    ``source``: an already open file to read through (default: the file
    memory-mapped); ``fields``: read only these columns' buffers.  A missing
    or unreadable file is a :class:`ShardCorruptError`, another format
    version a :class:`FormatError`.
    """
    path = Path(path)
    shard_id = path.parent.name
    try:
        src = source if source is not None else pa.memory_map(str(path), "r")
        reader = ipc.open_file(src, options=ipc.IpcReadOptions(included_fields=fields, use_threads=threads))
    except FileNotFoundError:
        raise ShardCorruptError(f"{path.name} is gone (shard removed by compaction?)", shard_id=shard_id) from None
    except (OSError, pa.ArrowInvalid) as exc:
        raise ShardCorruptError(f"{path.name} unreadable: {exc}", shard_id=shard_id) from exc
    _check_format_version(reader.schema, shard_id, path.name)
    return reader


def _check_format_version(schema: pa.Schema, shard_id: str, name: str) -> None:
    """FormatError unless file ``name`` of shard ``shard_id`` (its ``schema``) has a format version this reads."""
    if (schema.metadata or {}).get(b"gamestore.format_version") not in _READABLE_META:
        raise FormatError(f"shard {shard_id}: {name} has an unsupported format version")



class LRUCache:
    """A thread-safe least-recently-used cache bounded by the total ``size`` of its entries."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.size = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        """The value cached under ``key`` (now the most recent), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: Any, size: int = 1) -> None:
        """Cache ``value``, evicting the least recently used entries beyond ``max_size``."""
        if size > self.max_size:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.size -= old[1]
            self._entries[key] = (value, size)
            self.size += size
            while self.size > self.max_size:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.size -= dropped

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.size = 0

    def __len__(self) -> int:
        return len(self._entries)


#: Decompressed moves batches of point reads (``get_game``), with their decoders, by (moves file, batch);
#: bounded in bytes, shared by every reader of the process.  Scans do not go through it.
BATCH_CACHE = LRUCache(64 << 20)
#: Raw ``games.arrow`` rows (Python values, never handed out) of point reads, by (games file, row); bounded in rows.
ROW_CACHE = LRUCache(8192)


class _CachedBatch:
    """A decompressed moves batch and its decoders (one per backend name), built lazily."""

    __slots__ = ("batch", "decoders")

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.batch = batch
        self.decoders: dict[str, Any] = {}


class ShardReader:
    """Read access to one committed shard (files memory-mapped, opened lazily)."""

    def __init__(self, storage: Storage, shard_id: str, *, prefix: str = "shards", manifest: dict | None = None) -> None:
        self.storage = storage
        self.shard_id = shard_id
        self.rel = f"{prefix}/{shard_id}" if prefix else shard_id
        #: the shard directory on its filesystem (a local Path only on local storage)
        self.path = Path(storage.path(self.rel))
        self.manifest = manifest if manifest is not None else read_manifest(storage, self.rel)
        self._games: pa.Table | None = None
        self._moves: ipc.RecordBatchFileReader | None = None
        self._moves_schema: pa.Schema | None = None  # from the checked head, without Arrow's reader (moves_schema)
        self._batch_starts: list[int] | None = None
        self._projected: dict[tuple[str, ...], ipc.RecordBatchFileReader] = {}
        self._vectors: dict[str, VectorSpec] | None = None
        self.strings: dict = {}  #: decoded dictionary strings of moves.arrow, shared by its batches' decoders
        self._key = f"{storage.uri}|{self.rel}"
        self._games_key: tuple = ()
        self._moves_key: tuple = ()
        self._fast: FastBatchReader | None = None  # None after a try: Arrow's reader only
        self._fast_tried = False
        self._games_columns: list[tuple[str, pa.Array]] | None = None
        #: the compiled reader of games.arrow's rows game_row uses when set (readpath.py sets it; None: ``as_py()``)
        self.row_reader: Any = None
        self._verifiers: dict[str, FileVerifier] = {}
        self._buffers: dict[str, pa.Buffer] = {}  # object storage: files read whole, by name
        #: Arrow's file readers are not thread-safe (a first read loads the dictionaries: two threads at once
        #: fail with "Unsupported dictionary replacement"): their reads of one shard take turns
        self._arrow_lock = threading.Lock()
        #: called with the error when a read finds this shard damaged (the catalog quarantines it; readpath.py)
        self.on_damage: Callable[[ShardCorruptError], object] | None = None

    @classmethod
    def at(cls, path: str | os.PathLike) -> "ShardReader":
        """A reader of the shard directory at local ``path``."""
        p = Path(path).absolute()
        return cls(Storage(None, str(p.parent)), p.name, prefix="")

    def file_path(self, name: str) -> str:
        """The full path of one of the shard's files on its filesystem."""
        return self.storage.path(f"{self.rel}/{name}")

    # -- files ---------------------------------------------------------------
    def _buffer(self, name: str) -> pa.Buffer:
        buf = self._buffers.get(name)
        if buf is None:
            size = self.manifest.get("files", {}).get(name, {}).get("bytes")
            data = self.storage.read_bytes(f"{self.rel}/{name}", large=True, size=size)
            buf = self._buffers[name] = pa.py_buffer(data)
        return buf

    def _open(self, name: str, *, fields: list[int] | None = None, threads: bool = True) -> ipc.RecordBatchFileReader:
        source: pa.NativeFile | None = None
        if not self.storage.local:
            # a network failure stays an OSError (transient: retry), not a damaged shard
            try:
                source = pa.BufferReader(self._buffer(name))
            except FileNotFoundError:
                raise ShardCorruptError(f"{name} missing", shard_id=self.shard_id) from None
        self.verifier(name)
        return open_ipc(Path(self.file_path(name)), source=source, fields=fields, threads=threads)

    def verifier(self, name: str) -> FileVerifier | None:
        """The checksum verifier of one file (None for format-1 shards, which carry no per-batch checksums)."""
        v = self._verifiers.get(name)
        if v is None:
            entry = self.manifest["files"][name]
            if "checksums" not in entry:
                return None
            source = self.path / name if self.storage.local else self._buffer(name)  # object storage: the bytes
            v = self._verifiers[name] = FileVerifier(
                source, entry["checksums"], shard_id=self.shard_id, name=name, size=entry["bytes"]
            )
        return v

    def _checked(self, name: str, index: int) -> None:
        v = self.verifier(name)
        if v is not None:
            v.check(index)

    def _corrupt(self, name: str, exc: BaseException) -> ShardCorruptError:
        return ShardCorruptError(f"{name} unreadable: {type(exc).__name__}: {exc}", shard_id=self.shard_id)

    def _file_key(self, name: str) -> tuple:
        """Cache key of one file's content: a file rewritten in place (damage, repair) gets a new key."""
        if not self.storage.local:  # objects are never rewritten in place: the manifest's checksum names the content
            return (self._key, name, self.manifest.get("files", {}).get(name, {}).get("sha256"))
        try:
            st = os.stat(self.file_path(name))
        except OSError as exc:
            raise ShardCorruptError(f"{name} unreadable: {exc}", shard_id=self.shard_id) from None
        return (self._key, name, st.st_ino, st.st_mtime_ns, st.st_size)

    @property
    def games(self) -> pa.Table:
        if self._games is None:
            self._games_key = self._file_key(GAMES_FILE)
            v = self.verifier(GAMES_FILE)
            reader = self._open(GAMES_FILE)
            try:
                if v is not None:
                    v.check_all()
                    if v.num_batches != reader.num_record_batches:
                        raise ShardCorruptError("games.arrow batches differ from its checksums", shard_id=self.shard_id)
                games = reader.read_all()
                games.validate(full=True)  # also with checksums: a crafted file may carry valid ones (one row a game)
            except (pa.ArrowException, OSError, ValueError) as exc:
                if isinstance(exc, ShardCorruptError):
                    raise
                raise self._corrupt(GAMES_FILE, exc) from None
            if games.num_rows != self.manifest["num_games"] or games.schema.names != GAMES_SCHEMA.names:
                raise ShardCorruptError("games.arrow does not match its manifest", shard_id=self.shard_id)
            self._games = games
        return self._games

    def _batch_rows(self, batches: int) -> list[int]:
        """The manifest's rows per moves batch, checked against the file's ``batches``."""
        rows = self.manifest.get("batch_rows")
        if rows is None or len(rows) != batches:
            raise ShardCorruptError("manifest batch_rows do not match moves.arrow", shard_id=self.shard_id)
        return rows

    @property
    def moves_reader(self) -> ipc.RecordBatchFileReader:
        if self._moves is None:
            # point reads decode one small batch: a thread pool costs more than it saves
            self._moves_key = self._file_key(MOVES_FILE)
            self.verifier(MOVES_FILE)  # head (schema, dictionaries) and footer checked before Arrow parses them
            reader = self._open(MOVES_FILE, threads=False)
            rows = self._batch_rows(reader.num_record_batches)
            starts, total = [], 0
            for n in rows:
                starts.append(total)
                total += n
            self._batch_starts = starts
            self._moves = reader
        return self._moves

    @property
    def moves_schema(self) -> pa.Schema:
        """``moves.arrow``'s schema.  A file with checksums: from the schema message of its head (checked when its
        verifier was made), without opening Arrow's file reader, which a scan never reads through (opening it
        took ~0.2-0.4 ms of a first statement per shard); else Arrow's reader's."""
        if self._moves is not None:
            return self._moves.schema
        schema = self._moves_schema
        if schema is None:
            if not self._moves_key:
                self._moves_key = self._file_key(MOVES_FILE)
            v = self.verifier(MOVES_FILE)
            if v is None:
                return self.moves_reader.schema
            try:
                schema = v.head_schema()
            except (pa.ArrowException, ValueError) as exc:
                raise self._corrupt(MOVES_FILE, exc) from None
            _check_format_version(schema, self.shard_id, MOVES_FILE)
            self._moves_schema = schema
        return schema

    @property
    def moves_key(self) -> tuple:
        """The cache key of ``moves.arrow``'s content (see :meth:`_file_key`), taken when the file is first read."""
        if not self._moves_key:
            self.moves_schema
        return self._moves_key

    @property
    def vectors(self) -> dict[str, VectorSpec]:
        if self._vectors is None:
            self._vectors = vectors_from_schema(self.moves_schema)
        return dict(self._vectors)

    @property
    def num_batches(self) -> int:
        return self.moves_reader.num_record_batches

    @property
    def batch_starts(self) -> list[int]:
        self.moves_reader
        assert self._batch_starts is not None
        return self._batch_starts

    def batch(self, index: int) -> pa.RecordBatch:
        """Moves batch ``index``, read (and decompressed) now, after its checksum (format 1: full validation)."""
        reader = self.moves_reader
        self._checked(MOVES_FILE, index)
        try:
            with self._arrow_lock:
                batch = reader.get_record_batch(index)
            if self._verifiers.get(MOVES_FILE) is None:
                batch.validate(full=True)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise self._corrupt(MOVES_FILE, exc) from None
        if batch.num_rows != self.manifest["batch_rows"][index]:
            raise ShardCorruptError(f"moves batch {index} has {batch.num_rows} rows, the manifest says otherwise",
                                    shard_id=self.shard_id)
        return batch

    def batch_index(self, move_offset: int) -> int:
        """The index of the moves batch holding row ``move_offset``."""
        return bisect_right(self.batch_starts, move_offset) - 1

    def batch_key(self, index: int) -> tuple:
        """The :data:`BATCH_CACHE` key of moves batch ``index`` (a file rewritten in place gets new keys)."""
        return (self.moves_key, index)

    def cached_batch(self, index: int) -> _CachedBatch:
        """Moves batch ``index`` through :data:`BATCH_CACHE` (for point reads)."""
        key = self.batch_key(index)
        entry = BATCH_CACHE.get(key)
        if not isinstance(entry, _CachedBatch):  # None, or the compiled point reader's buffers (pointread.py)
            batch, size = self.point_read(index)
            entry = _CachedBatch(batch)
            BATCH_CACHE.put(key, entry, size)
        return entry

    def fast_reader(self) -> FastBatchReader | None:
        """The one-zstd-context reader of ``moves.arrow`` (ipc_batch.py); None where Arrow's reader must do it."""
        if not self._fast_tried:
            source: str | pa.Buffer
            if self.storage.local:
                # the checksum verifier's mapping: pages its checks faulted in are read without faulting again
                v = self.verifier(MOVES_FILE)
                source = self.file_path(MOVES_FILE) if v is None else v.buffer()
            else:
                source = self._buffer(MOVES_FILE)
            # Arrow's reader is opened only if a point read needs its dictionaries (see moves_schema)
            fast = fast_reader(source, lambda: self.moves_reader, reader_lock=self._arrow_lock,
                               schema=self.moves_schema)
            if fast is not None:
                try:
                    self._batch_rows(fast.num_batches)
                except ShardCorruptError:
                    fast.close()
                    raise
            self._fast = fast
            self._fast_tried = True
        return self._fast

    def point_read(self, index: int) -> tuple[pa.RecordBatch, int]:
        """Moves batch ``index`` and its size, through the one-zstd-context reader where it applies (ipc_batch.py).

        Only :class:`~gamestore.ipc_batch.Unsupported` (a layout that reader
        does not handle) falls back to Arrow's reader; damage it detects is a
        :class:`ShardCorruptError`.
        """
        fast = self.fast_reader()
        if fast is not None and self.verifier(MOVES_FILE) is not None:  # format 1: Arrow's validated read
            self._checked(MOVES_FILE, index)
            try:
                batch, size = fast.read_sized(index)
                if batch.num_rows == self.manifest["batch_rows"][index]:
                    return batch, size
            except Unsupported:
                pass
            except Damaged as exc:
                raise ShardCorruptError(f"{MOVES_FILE} batch {index}: {exc}", shard_id=self.shard_id) from exc
        batch = self.batch(index)
        return batch, batch.nbytes

    def game_row(self, row: int) -> dict:
        """Row ``row`` of ``games.arrow`` as Python values, through :data:`ROW_CACHE`.

        Shared with the cache: read it, never change it.
        """
        games = self.games
        key = (self._games_key, row)
        value = ROW_CACHE.get(key)
        if value is None:
            if not 0 <= row < games.num_rows:
                raise IndexError(f"games.arrow has no row {row}")
            if self.row_reader is not None:
                value = self.row_reader.row(row)  # the same values, read in place (compiled backend)
            else:
                cols = self._games_columns
                if cols is None:  # one array per column: a scalar per column is 4x faster than a one-row to_pylist
                    cols = self._games_columns = [(f.name, c.combine_chunks()) for f, c in zip(games.schema, games.columns)]
                value = {name: col[row].as_py() for name, col in cols}
            ROW_CACHE.put(key, value)
        return value

    def game_moves(self, move_offset: int, move_count: int) -> pa.Table:
        """The rows of one game (whole games never straddle batches, but slices are handled generally)."""
        if move_count == 0:  # a game without moves (a shard of such games has no batches at all)
            return self.moves_schema.empty_table()
        starts = self.batch_starts
        i = self.batch_index(move_offset)
        pieces: list[pa.RecordBatch] = []
        row, remaining = move_offset, move_count
        while remaining > 0 or not pieces:
            batch = self.batch(i)
            local = row - starts[i]
            take = min(remaining, batch.num_rows - local)
            pieces.append(batch.slice(local, take))
            row += take
            remaining -= take
            i += 1
            if remaining <= 0:
                break
        return pa.Table.from_batches(pieces, schema=self.moves_schema)

    def iter_batches(
        self, columns: Sequence[str] | None = None, *, only: Sequence[int] | None = None
    ) -> Iterator[tuple[int, pa.RecordBatch]]:
        """(first row, batch) for every moves batch (or the batches ``only``, in order); a projection reads only
        those columns' buffers.  A damaged batch is a :class:`ShardCorruptError`."""
        reader = self.moves_reader
        if columns is not None:
            key = tuple(columns)
            if key not in self._projected:
                names = self.moves_schema.names
                self._projected[key] = self._open(MOVES_FILE, fields=sorted(names.index(c) for c in columns))
            reader = self._projected[key]
        v = self.verifier(MOVES_FILE)
        starts = self.batch_starts
        for i in range(len(starts)) if only is None else only:
            if v is not None:
                v.check(i)
            try:
                with self._arrow_lock:
                    batch = reader.get_record_batch(i)
                if v is None:
                    batch.validate(full=True)
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise self._corrupt(MOVES_FILE, exc) from None
            if batch.num_rows != self.manifest["batch_rows"][i]:
                raise ShardCorruptError(f"moves batch {i} row count differs from the manifest", shard_id=self.shard_id)
            if columns is not None:
                batch = batch.select(list(columns))
            yield starts[i], batch

    def preload(self) -> None:
        """Object storage: download ``moves.arrow`` now (a scan's read-ahead); nothing locally."""
        if not self.storage.local:
            self._buffer(MOVES_FILE)

    def check_files(self) -> list[str]:
        """Size and sha256 problems of the shard's files against its manifest (empty when intact).

        On object storage each file is read whole once; the reader keeps the
        content for the reads that follow.
        """
        problems = []
        for name, expect in self.manifest.get("files", {}).items():
            try:
                if self.storage.local:
                    fp = Path(self.file_path(name))
                    size = fp.stat().st_size
                    digest = sha256_file(fp) if size == expect.get("bytes") else ""
                else:
                    self._buffers.pop(name, None)  # verify what is stored now, not what was read before
                    buf = self._buffer(name)
                    size = buf.size
                    digest = hashlib.sha256(memoryview(buf)).hexdigest()
            except FileNotFoundError:
                problems.append(f"{name} missing")
                continue
            except OSError as exc:
                problems.append(f"{name}: {exc.strerror or exc}")
                continue
            if size != expect.get("bytes"):
                problems.append(f"{name}: size {size} != {expect.get('bytes')}")
            elif digest != expect.get("sha256"):
                problems.append(f"{name}: checksum mismatch")
        return problems

    def close(self) -> None:
        self._games = None
        self._games_columns = None
        self.row_reader = None
        self._moves = None
        self._moves_schema = None
        self._moves_key = ()
        self._projected.clear()
        self.strings = {}
        self._buffers = {}
        if self._fast is not None:
            self._fast.close()
        self._fast, self._fast_tried = None, False
        for v in self._verifiers.values():
            v.close()
        self._verifiers = {}


def verify_shard(storage: Storage | str | os.PathLike, shard_id: str | None = None, *, prefix: str = "shards") -> list[str]:
    """Every problem found in one shard (empty when intact).

    ``verify_shard(storage, shard_id)`` checks ``shards/<shard_id>`` of a
    store; ``verify_shard(path)`` a local shard directory.
    """
    try:
        if isinstance(storage, Storage):
            assert shard_id is not None, "verify_shard(storage, shard_id)"
            reader = ShardReader(storage, shard_id, prefix=prefix)
        else:
            reader = ShardReader.at(storage)
    except (ShardCorruptError, FormatError) as exc:
        return [str(exc)]
    manifest = reader.manifest
    problems = reader.check_files()
    if problems:
        return problems
    try:
        for name in (MOVES_FILE, GAMES_FILE):  # format 3: the per-column hashes scans check, too
            v = reader.verifier(name)
            if v is not None:
                v.check_all_columns()
        games = reader.games
        ids = games.column("game_id").to_pylist()
        if ids != manifest["game_ids"]:
            problems.append("games.arrow game ids differ from the manifest")
        total = 0
        for i, (start, n) in enumerate(zip(reader.batch_starts, manifest["batch_rows"])):
            batch = reader.batch(i)
            batch.validate(full=True)
            if batch.num_rows != n:
                problems.append(f"moves batch {i} has {batch.num_rows} rows, manifest says {n}")
            total += batch.num_rows
        if total != manifest["num_moves"]:
            problems.append(f"moves.arrow has {total} rows, manifest says {manifest['num_moves']}")
        counts = games.column("move_count").to_pylist()
        if sum(counts) != total:
            problems.append("games.arrow move counts do not add up to the moves file")
    except (ShardCorruptError, FormatError, pa.ArrowException, OSError) as exc:
        problems.append(f"unreadable: {exc}")
    return problems
