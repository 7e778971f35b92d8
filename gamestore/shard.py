"""Shards: immutable directories of two zstd Arrow IPC files and a manifest.

On a local filesystem a shard is written into ``tmp/<shard_id>/``, every
file fsynced, and then committed by renaming the directory into ``shards/``.
On object storage (no rename) the data files are written under
``shards/<shard_id>/`` and the manifest last: its appearance is the commit
(docs/format.md).  All I/O goes through a :class:`gamestore.storage.Storage`.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import shutil
import threading
import warnings
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Iterator, Sequence

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.ipc as ipc

from .checksum import FileVerifier, file_checksums
from .errors import FormatError, ShardCorruptError, StoreFullError
from .fsutil import fsync_dir, fsync_file, sha256_file, utc_now, utc_stamp
from .ipc_batch import FastBatchReader, fast_reader
from .schema import FORMAT_VERSION, GAMES_SCHEMA, READABLE_FORMAT_VERSIONS, VectorSpec, moves_schema, vectors_from_schema
from .storage import Storage

__all__ = [
    "MANIFEST",
    "MOVES_FILE",
    "GAMES_FILE",
    "new_shard_id",
    "write_shard",
    "ShardReader",
    "LRUCache",
    "BATCH_CACHE",
    "ROW_CACHE",
    "verify_shard",
]

MOVES_FILE = "moves.arrow"
GAMES_FILE = "games.arrow"
MANIFEST = "MANIFEST.json"
_READABLE_META = {str(v).encode() for v in READABLE_FORMAT_VERSIONS}
_IPC_OPTIONS = ipc.IpcWriteOptions(compression="zstd")


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
    """Cut ``moves`` into batches of whole games, about ``batch_rows`` rows each."""
    moves = moves.combine_chunks()  # one dictionary per field: the IPC file format allows no replacement
    offsets = games.column("move_offset").to_pylist()
    counts = games.column("move_count").to_pylist()
    start = 0
    end = 0
    for off, cnt in zip(offsets, counts):
        if end - start >= batch_rows or (end > start and end - start + cnt > batch_rows):
            yield from moves.slice(start, end - start).to_batches()
            start = end
        end = off + cnt
    if end > start:
        yield from moves.slice(start, end - start).to_batches()


def _ipc_bytes(schema: pa.Schema, batches) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, schema, options=_IPC_OPTIONS) as writer:
        for batch in batches:
            writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
    return sink.getvalue()


def _write_ipc(path: Path, schema: pa.Schema, batches, *, fsync: bool) -> None:
    # a native sink: compression and writes run without the GIL (a Python file object would take the
    # GIL for every write and stall an event loop in another thread for tens of milliseconds)
    with pa.OSFile(str(path), "wb") as f:
        with ipc.new_file(f, schema, options=_IPC_OPTIONS) as writer:
            for batch in batches:
                writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
    if fsync:
        fsync_file(path)


@dataclass(frozen=True)
class ShardInfo:
    shard_id: str
    path: str
    num_games: int
    num_moves: int
    bytes: int


def _manifest(shard_id: str, games: pa.Table, moves: pa.Table, batches: list, vectors: dict, files: dict,
              replaces: Sequence[str] = ()) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "shard_id": shard_id,
        "created_at": utc_now(),
        "num_games": games.num_rows,
        "num_moves": moves.num_rows,
        "game_ids": games.column("game_id").to_pylist(),
        "batch_rows": [b.num_rows for b in batches],
        "vectors": {name: spec.to_json() for name, spec in sorted(vectors.items())},
        "files": files,
        **({"replaces": sorted(replaces)} if replaces else {}),
    }


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
    if not storage.local:
        return _write_shard_object(storage, shard_id, games, moves, batches, mschema, gschema, vectors, replaces)
    root = storage.local_path()
    staging = root / "tmp" / shard_id
    final = root / "shards" / shard_id
    try:
        staging.mkdir(parents=True)
        _write_ipc(staging / MOVES_FILE, mschema, batches, fsync=fsync)
        _write_ipc(staging / GAMES_FILE, gschema, games.combine_chunks().to_batches(), fsync=fsync)
        files: dict[str, dict[str, Any]] = {
            name: {
                "bytes": (staging / name).stat().st_size,
                "sha256": sha256_file(staging / name),
                "checksums": file_checksums(staging / name),
            }
            for name in (MOVES_FILE, GAMES_FILE)
        }
        manifest = _manifest(shard_id, games, moves, batches, vectors, files, replaces)
        with open(staging / MANIFEST, "w", encoding="utf-8") as f:
            json.dump(manifest, f, separators=(",", ":"))
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        if fsync:
            fsync_dir(staging)
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


def _write_shard_object(storage: Storage, shard_id, games, moves, batches, mschema, gschema, vectors,
                        replaces: Sequence[str]) -> ShardInfo:
    """Object-storage commit: data objects under the shard's unique prefix, the manifest last."""
    prefix = f"shards/{shard_id}"
    data = {
        MOVES_FILE: _ipc_bytes(mschema, batches),
        GAMES_FILE: _ipc_bytes(gschema, games.combine_chunks().to_batches()),
    }
    files = {name: {"bytes": buf.size, "sha256": hashlib.sha256(memoryview(buf)).hexdigest()} for name, buf in data.items()}
    body = json.dumps(_manifest(shard_id, games, moves, batches, vectors, files, replaces), separators=(",", ":")).encode()
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


def parse_manifest(data: bytes, shard_id: str) -> dict:
    """A manifest's JSON, checked for a supported format version."""
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ShardCorruptError(f"manifest unreadable: {exc}", shard_id=shard_id) from None
    if not isinstance(manifest, dict):
        raise ShardCorruptError(f"manifest is a JSON {type(manifest).__name__}, not an object", shard_id=shard_id)
    version = manifest.get("format_version")
    if version not in READABLE_FORMAT_VERSIONS:
        raise FormatError(f"shard {shard_id}: format version {version!r} is not supported (this reader: {FORMAT_VERSION})")
    problem = _manifest_problem(manifest)
    if problem:
        raise ShardCorruptError(f"{MANIFEST}: {problem}", shard_id=shard_id)
    return manifest


def read_manifest(storage: Storage | str | os.PathLike, rel: str | None = None) -> dict:
    """The manifest of the shard directory ``rel`` of ``storage``, or of a local shard directory
    ``read_manifest(path)`` (ShardCorruptError when missing or unreadable)."""
    if not isinstance(storage, Storage):
        path = Path(storage).absolute()
        storage, rel = Storage(pafs.LocalFileSystem(), str(path.parent)), path.name
    assert rel is not None, "read_manifest(storage, rel)"
    shard_id = rel.rsplit("/", 1)[-1]
    try:
        data = storage.read_bytes(f"{rel}/{MANIFEST}")
    except FileNotFoundError:
        raise ShardCorruptError("manifest missing", shard_id=shard_id) from None
    except OSError as exc:
        raise ShardCorruptError(f"manifest unreadable: {exc}", shard_id=shard_id) from None
    return parse_manifest(data, shard_id)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _manifest_problem(m: dict) -> str | None:
    """What is wrong with the shape of a manifest (None when it is well formed)."""
    ids, rows, files = m.get("game_ids"), m.get("batch_rows"), m.get("files")
    if not _is_count(m.get("num_games")) or not _is_count(m.get("num_moves")):
        return "num_games/num_moves missing or not counts"
    if not isinstance(ids, list) or not all(isinstance(g, str) for g in ids) or len(ids) != m["num_games"]:
        return "game_ids missing, not a list of str, or not num_games long"
    if len(set(ids)) != len(ids):
        return "game_ids repeat"
    if not isinstance(rows, list) or not all(_is_count(n) for n in rows) or sum(rows) != m["num_moves"]:
        return "batch_rows missing, not counts, or not adding up to num_moves"
    # file names are confined to the shard directory: exactly the shard's two files, nothing else
    if not isinstance(files, dict) or set(files) != {MOVES_FILE, GAMES_FILE}:
        return f"files must name exactly {MOVES_FILE} and {GAMES_FILE}"
    for entry in files.values():
        if not isinstance(entry, dict) or not _is_count(entry.get("bytes")) or not isinstance(entry.get("sha256"), str):
            return "files entries need bytes and sha256"
    if not isinstance(m.get("created_at", ""), str) or not isinstance(m.get("vectors", {}), dict):
        return "created_at/vectors malformed"
    return None


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
        self._batch_starts: list[int] | None = None
        self._projected: dict[tuple[str, ...], ipc.RecordBatchFileReader] = {}
        self._vectors: dict[str, VectorSpec] | None = None
        self._strings: dict = {}  # decoded dictionary strings of moves.arrow, shared by its batches' decoders
        self._key = f"{storage.uri}|{self.rel}"
        self._games_key: tuple = ()
        self._moves_key: tuple = ()
        self._fast: FastBatchReader | None = None  # None after a try: Arrow's reader only
        self._fast_tried = False
        self._games_columns: list[tuple[str, pa.Array]] | None = None
        self._verifiers: dict[str, FileVerifier] = {}
        self._buffers: dict[str, pa.Buffer] = {}  # object storage: files read whole, by name

    @classmethod
    def at(cls, path: str | os.PathLike) -> "ShardReader":
        """A reader of the shard directory at local ``path``."""
        p = Path(path).absolute()
        return cls(Storage(pafs.LocalFileSystem(), str(p.parent)), p.name, prefix="")

    def file_path(self, name: str) -> str:
        """The full path of one of the shard's files on its filesystem."""
        return self.storage.path(f"{self.rel}/{name}")

    # -- files ---------------------------------------------------------------
    def _buffer(self, name: str) -> pa.Buffer:
        buf = self._buffers.get(name)
        if buf is None:
            buf = self._buffers[name] = pa.py_buffer(self.storage.read_bytes(f"{self.rel}/{name}"))
        return buf

    def _open(self, name: str, *, fields: list[int] | None = None, threads: bool = True) -> ipc.RecordBatchFileReader:
        if not self.storage.local:
            # a network failure stays an OSError (transient: retry), not a damaged shard
            try:
                buf = self._buffer(name)
            except FileNotFoundError:
                raise ShardCorruptError(f"{name} missing", shard_id=self.shard_id) from None
        self.verifier(name)
        try:
            source: pa.NativeFile = pa.memory_map(self.file_path(name), "r") if self.storage.local else pa.BufferReader(buf)
            reader = ipc.open_file(source, options=ipc.IpcReadOptions(included_fields=fields, use_threads=threads))
        except (OSError, pa.ArrowInvalid) as exc:
            raise ShardCorruptError(f"{name} unreadable: {exc}", shard_id=self.shard_id) from None
        meta = reader.schema.metadata or {}
        if meta.get(b"gamestore.format_version") not in _READABLE_META:
            raise FormatError(f"shard {self.shard_id}: {name} has an unsupported format version")
        return reader

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
                if v is None:
                    games.validate(full=True)
            except (pa.ArrowException, OSError, ValueError) as exc:
                if isinstance(exc, ShardCorruptError):
                    raise
                raise self._corrupt(GAMES_FILE, exc) from None
            if games.num_rows != self.manifest["num_games"] or games.schema.names != GAMES_SCHEMA.names:
                raise ShardCorruptError("games.arrow does not match its manifest", shard_id=self.shard_id)
            self._games = games
        return self._games

    @property
    def moves_reader(self) -> ipc.RecordBatchFileReader:
        if self._moves is None:
            # point reads decode one small batch: a thread pool costs more than it saves
            self._moves_key = self._file_key(MOVES_FILE)
            self.verifier(MOVES_FILE)  # head (schema, dictionaries) and footer checked before Arrow parses them
            reader = self._open(MOVES_FILE, threads=False)
            rows = self.manifest.get("batch_rows")
            if rows is None or len(rows) != reader.num_record_batches:
                raise ShardCorruptError("manifest batch_rows do not match moves.arrow", shard_id=self.shard_id)
            starts, total = [], 0
            for n in rows:
                starts.append(total)
                total += n
            self._batch_starts = starts
            self._moves = reader
        return self._moves

    @property
    def moves_schema(self) -> pa.Schema:
        return self.moves_reader.schema

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

    def cached_batch(self, index: int) -> _CachedBatch:
        """Moves batch ``index`` through :data:`BATCH_CACHE` (for point reads)."""
        self.moves_reader
        key = (self._moves_key, index)
        entry = BATCH_CACHE.get(key)
        if entry is None:
            batch, size = self._point_read(index)
            entry = _CachedBatch(batch)
            BATCH_CACHE.put(key, entry, size)
        return entry

    def _point_read(self, index: int) -> tuple[pa.RecordBatch, int]:
        """Moves batch ``index`` and its size, through the one-zstd-context reader where it applies (ipc_batch.py)."""
        if not self._fast_tried:
            source = self.file_path(MOVES_FILE) if self.storage.local else self._buffer(MOVES_FILE)
            self._fast = fast_reader(source, self.moves_reader)
            self._fast_tried = True
        fast = self._fast
        if fast is not None and self.verifier(MOVES_FILE) is not None:  # format 1: Arrow's validated read
            self._checked(MOVES_FILE, index)
            try:
                batch, size = fast.read_sized(index)
                if batch.num_rows == self.manifest["batch_rows"][index]:
                    return batch, size
            except Exception:  # noqa: BLE001 - Arrow's reader gives the authoritative result or error
                pass
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
            cols = self._games_columns
            if cols is None:  # one array per column: a scalar per column is 4x faster than a one-row to_pylist
                cols = self._games_columns = [(f.name, c.combine_chunks()) for f, c in zip(games.schema, games.columns)]
            if not 0 <= row < games.num_rows:
                raise IndexError(f"games.arrow has no row {row}")
            value = {name: col[row].as_py() for name, col in cols}
            ROW_CACHE.put(key, value)
        return value

    def read_game(self, row: int, move_offset: int, move_count: int) -> dict:
        """The canonical record of the game in ``games.arrow`` row ``row`` (new objects on every call)."""
        from . import codec  # imported here so that shard.py stays import-light

        game_row = self.game_row(row)
        if game_row["move_count"] != move_count or game_row["move_offset"] != move_offset:
            raise ShardCorruptError(f"games.arrow row {row} does not match the catalog", shard_id=self.shard_id)
        game = codec._header_from_row(game_row)
        game["moves"] = self.decode_moves(move_offset, move_count)
        return game

    def decode_moves(self, move_offset: int, move_count: int, *, backend: Any = None) -> list[dict]:
        """The move dicts of rows ``[move_offset, +move_count)``, through the batch cache.

        ``backend``: a :class:`gamestore.backend.Backend` (default: the selected one).
        """
        if backend is None:
            from .backend import selected

            backend = selected()
        if move_count == 0:
            return []
        i = self.batch_index(move_offset)
        start = move_offset - self.batch_starts[i]
        entry = self.cached_batch(i)
        if start < 0 or start + move_count > entry.batch.num_rows:
            # a game over several batches (never written so, but readable): the generic path
            return backend.decode_moves(self.game_moves(move_offset, move_count), self.vectors)
        decoder = entry.decoders.get(backend.name)
        if decoder is None:
            decoder = entry.decoders[backend.name] = backend.batch_decoder(entry.batch, self.vectors, self._strings)
        return decoder.decode(start, start + move_count)

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

    def iter_batches(self, columns: Sequence[str] | None = None) -> Iterator[tuple[int, pa.RecordBatch]]:
        """(first row, batch) for every moves batch; a projection reads only those columns' buffers."""
        reader = self.moves_reader
        if columns is not None:
            key = tuple(columns)
            if key not in self._projected:
                names = self.moves_schema.names
                self._projected[key] = self._open(MOVES_FILE, fields=sorted(names.index(c) for c in columns))
            reader = self._projected[key]
        v = self.verifier(MOVES_FILE)
        for i, start in enumerate(self.batch_starts):
            if v is not None:
                v.check(i)
            try:
                batch = reader.get_record_batch(i)
                if v is None:
                    batch.validate(full=True)
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise self._corrupt(MOVES_FILE, exc) from None
            if batch.num_rows != self.manifest["batch_rows"][i]:
                raise ShardCorruptError(f"moves batch {i} row count differs from the manifest", shard_id=self.shard_id)
            if columns is not None:
                batch = batch.select(list(columns))
            yield start, batch

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
        self._moves = None
        self._projected.clear()
        self._strings = {}
        self._buffers = {}
        if self._fast is not None:
            self._fast.close()
        self._fast = None
        self._fast_tried = False
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
