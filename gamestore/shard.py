"""Shards: immutable directories of two zstd Arrow IPC files and a manifest.

A shard is written into ``tmp/<shard_id>/``, every file fsynced, and then
committed by renaming the directory into ``shards/`` (see docs/format.md).
"""
from __future__ import annotations

import errno
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
import pyarrow.ipc as ipc

from .checksum import FileVerifier, file_checksums
from .errors import FormatError, ShardCorruptError, StoreFullError
from .fsutil import fsync_dir, fsync_file, sha256_file, utc_now, utc_stamp
from .ipc_batch import Damaged, FastBatchReader, Unsupported, fast_reader
from .ipc_write import write_ipc_file
from .schema import FORMAT_VERSION, GAMES_SCHEMA, READABLE_FORMAT_VERSIONS, VectorSpec, moves_schema, vectors_from_schema

__all__ = [
    "MANIFEST", "MOVES_FILE", "GAMES_FILE", "new_shard_id", "write_shard", "ShardReader", "open_ipc",
    "LRUCache", "BATCH_CACHE", "ROW_CACHE", "verify_shard", "check_files",
]

MOVES_FILE = "moves.arrow"
GAMES_FILE = "games.arrow"
MANIFEST = "MANIFEST.json"
_READABLE_META = {str(v).encode() for v in READABLE_FORMAT_VERSIONS}


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


def _write_ipc(path: Path, schema: pa.Schema, batches, *, fsync: bool) -> None:
    # compressed with one reused zstd context (ipc_write); written through a native sink, without the
    # GIL (a Python file object would take the GIL for every write and stall an event loop in another thread)
    write_ipc_file(path, schema, batches)
    if fsync:
        fsync_file(path)


@dataclass(frozen=True)
class ShardInfo:
    shard_id: str
    path: Path
    num_games: int
    num_moves: int
    bytes: int


def write_shard(
    root: Path,
    games: pa.Table,
    moves: pa.Table,
    *,
    vectors: dict[str, VectorSpec],
    batch_rows: int = 1024,
    fsync: bool = True,
    shard_id: str | None = None,
    replaces: Sequence[str] = (),
) -> ShardInfo:
    """Write and commit one shard under store ``root``; returns once it is durable and visible.

    ``replaces`` names the shards whose games this one carries over (compaction, prune): from this
    commit on readers ignore them (docs/format.md, "replaces").

    On any failure (including ENOSPC) the staging directory is removed and
    nothing becomes visible.
    """
    shard_id = shard_id or new_shard_id()
    staging = root / "tmp" / shard_id
    final = root / "shards" / shard_id
    mschema = moves_schema(vectors).with_metadata(_file_metadata("moves", shard_id))
    gschema = GAMES_SCHEMA.with_metadata(_file_metadata("games", shard_id))
    try:
        staging.mkdir(parents=True)
        moves = moves.cast(mschema) if moves.schema != mschema.remove_metadata() else moves
        batches = list(_move_batches(games, moves, batch_rows))
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
        manifest = {
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
    return ShardInfo(shard_id, final, games.num_rows, moves.num_rows, size)


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
    meta = reader.schema.metadata or {}
    if meta.get(b"gamestore.format_version") not in _READABLE_META:
        raise FormatError(f"shard {shard_id}: {path.name} has an unsupported format version")
    return reader


def read_manifest(path: Path) -> dict:
    """The shard's MANIFEST.json, checked for shape (a damaged one raises :class:`ShardCorruptError`)."""
    try:
        with open(path / MANIFEST, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise ShardCorruptError("manifest missing", shard_id=path.name) from None
    except (OSError, ValueError, RecursionError) as exc:
        raise ShardCorruptError(f"manifest unreadable: {exc}", shard_id=path.name) from None
    if not isinstance(manifest, dict):
        raise ShardCorruptError(f"manifest is a JSON {type(manifest).__name__}, not an object", shard_id=path.name)
    version = manifest.get("format_version")
    if version not in READABLE_FORMAT_VERSIONS:
        raise FormatError(f"shard {path.name}: format version {version!r} is not supported (this reader: {FORMAT_VERSION})")
    problem = _manifest_problem(manifest)
    if problem:
        raise ShardCorruptError(f"{MANIFEST}: {problem}", shard_id=path.name)
    return manifest


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

    def __init__(self, path: Path, *, manifest: dict | None = None) -> None:
        self.path = Path(path)
        self.shard_id = self.path.name
        self.manifest = read_manifest(self.path) if manifest is None else manifest
        self._games: pa.Table | None = None
        self._moves: ipc.RecordBatchFileReader | None = None
        self._batch_starts: list[int] | None = None
        self._projected: dict[tuple[str, ...], ipc.RecordBatchFileReader] = {}
        self._vectors: dict[str, VectorSpec] | None = None
        self.strings: dict = {}  #: decoded dictionary strings of moves.arrow, shared by its batches' decoders
        self._key = str(self.path)
        self._games_key: tuple = ()
        self._moves_key: tuple = ()
        self._fast: FastBatchReader | None = None  # None after a try: Arrow's reader only
        self._fast_tried = False
        self._games_columns: list[tuple[str, pa.Array]] | None = None
        self._verifiers: dict[str, FileVerifier] = {}

    # -- files ---------------------------------------------------------------
    def _open(self, name: str, *, fields: list[int] | None = None, threads: bool = True) -> ipc.RecordBatchFileReader:
        self.verifier(name)
        return open_ipc(self.path / name, fields=fields, threads=threads)

    def verifier(self, name: str) -> FileVerifier | None:
        """The checksum verifier of one file (None for format-1 shards, which carry no per-batch checksums)."""
        v = self._verifiers.get(name)
        if v is None:
            entry = self.manifest["files"][name]
            if "checksums" not in entry:
                return None
            v = self._verifiers[name] = FileVerifier(
                self.path / name, entry["checksums"], shard_id=self.shard_id, name=name, size=entry["bytes"]
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
        try:
            st = os.stat(self.path / name)
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
            batch, size = self.point_read(index)
            entry = _CachedBatch(batch)
            BATCH_CACHE.put(key, entry, size)
        return entry

    def fast_reader(self) -> FastBatchReader | None:
        """The one-zstd-context reader of ``moves.arrow`` (ipc_batch.py); None where Arrow's reader must do it."""
        if not self._fast_tried:
            self._fast = fast_reader(str(self.path / MOVES_FILE), self.moves_reader)
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
            cols = self._games_columns
            if cols is None:  # one array per column: a scalar per column is 4x faster than a one-row to_pylist
                cols = self._games_columns = [(f.name, c.combine_chunks()) for f, c in zip(games.schema, games.columns)]
            if not 0 <= row < games.num_rows:
                raise IndexError(f"games.arrow has no row {row}")
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

    def close(self) -> None:
        self._games = None
        self._games_columns = None
        self._moves = None
        self._projected.clear()
        self.strings = {}
        if self._fast is not None:
            self._fast.close()
        self._fast, self._fast_tried = None, False
        for v in self._verifiers.values():
            v.close()
        self._verifiers = {}


def check_files(path: Path, manifest: dict) -> list[str]:
    """Size and checksum problems of a shard's files against its manifest (empty when intact)."""
    problems = []
    for name, expect in manifest.get("files", {}).items():
        fp = Path(path) / name
        try:
            size = fp.stat().st_size
            if size != expect["bytes"]:
                problems.append(f"{name}: size {size} != {expect['bytes']}")
            elif sha256_file(fp) != expect["sha256"]:
                problems.append(f"{name}: checksum mismatch")
        except FileNotFoundError:
            problems.append(f"{name} missing")
        except OSError as exc:
            problems.append(f"{name}: {exc.strerror or exc}")
    return problems


def verify_shard(path: Path) -> list[str]:
    """Every problem found in one shard directory (empty when intact)."""
    path = Path(path)
    try:
        manifest = read_manifest(path)
    except (ShardCorruptError, FormatError) as exc:
        return [str(exc)]
    problems = check_files(path, manifest)
    if problems:
        return problems
    try:
        reader = ShardReader(path)
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
