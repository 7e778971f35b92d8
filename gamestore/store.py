"""GameStore: the synchronous store API over shards and the catalog."""
from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import contextlib
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Literal, Mapping, Sequence, overload

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from . import codec, sqlguard
from .catalog import Catalog
from .checkpoint import CHECKPOINT_DIR
from .errors import (
    DuplicateGameError,
    FormatError,
    GameNotFoundError,
    QueryError,
    RecordError,
    ShardCorruptError,
    StoreClosedError,
    StoreExistsError,
    StoreNotFoundError,
)
from .records import undeclared_vectors
from .schema import FORMAT_VERSION, READABLE_FORMAT_VERSIONS, RINGRIFT_BOARD_TYPES, VectorSpec, conform, moves_schema
from .fsutil import TMP_NAME, utc_now
from .shard import ShardReader, write_shard
from .storage import Storage

if TYPE_CHECKING:  # pragma: no cover
    from .game_writer import GameWriter
    from .ops.tiering import AutoCompactor, TierPolicy

__all__ = ["GameStore", "open", "read_config", "require_store", "CONFIG_FILE"]

CONFIG_FILE = "gamestore.json"
_ENCODE_CHUNK = 256
_STALE_SECONDS = 3600.0
_SCAN_DOWNLOADS = 4  # object storage: shard files a scan downloads ahead
_META_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LAYOUT = ("shards", "catalog", "tmp", "trash", "meta")

OnDuplicate = Literal["error", "skip"]


def _atomic_write_json(storage: Storage, rel: str, obj: Any, *, fsync: bool = True) -> None:
    storage.write_bytes(rel, json.dumps(obj, indent=1, sort_keys=True).encode(), fsync=fsync)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _quote_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise QueryError(f"not a column name: {name!r}")
    return f'"{name}"'


class GameStore:
    """An embedded store of game records at one location (a directory, or a prefix on object storage).

    Use :func:`gamestore.open` to get one.  Thread-safe; many processes may
    open the same path at once (docs/concurrency.md).
    """

    def __init__(
        self,
        location: "Storage | str | os.PathLike",
        *,
        shard_moves: int = 65536,
        shard_games: int = 4096,
        batch_rows: int = 1024,
        fsync: bool = True,
    ) -> None:
        self.storage = Storage.from_location(location)
        #: the store's directory (a Path) on a local filesystem, else its URI
        self.path: Path | str = self.storage.local_path() if self.storage.local else self.storage.uri
        self._config = self._read_config()
        self._shard_moves = shard_moves
        self._shard_games = shard_games
        self._batch_rows = batch_rows
        self._fsync = fsync
        self._write_lock = threading.RLock()
        self._buffer: list[codec.EncodedGames] = []
        self._buffered_ids: set[str] = set()
        self._buffered_moves = 0
        self._closed = False
        self._compactor: AutoCompactor | None = None
        self._catalog = Catalog(self.storage)
        self._catalog.load()

    # -- configuration --------------------------------------------------------------
    def _read_config(self) -> dict[str, Any]:
        return read_config(self.storage)

    @contextmanager
    def _store_lock(self) -> Iterator[None]:
        """Exclusive, short inter-process lock for store-wide metadata changes (none on object storage:
        there a concurrent declaration may be lost from gamestore.json, but every shard declares its own
        vectors in its manifest and schema, and readers take the union)."""
        with self.storage.lock(".lock"):
            yield

    @property
    def vectors(self) -> dict[str, VectorSpec]:
        """Declared per-move vectors (name -> spec)."""
        return {n: VectorSpec.from_json(n, s) for n, s in self._config.get("vectors", {}).items()}

    @property
    def board_types(self) -> frozenset[str] | None:
        bt = self._config.get("board_types")
        return None if bt is None else frozenset(bt)

    def declare_vectors(self, vectors: Mapping[str, object]) -> None:
        """Declare per-move vectors (``{"name": 49}`` or ``{"planes": (56, 8, 8)}``); idempotent."""
        specs = {n: VectorSpec.coerce(n, d) for n, d in vectors.items()}
        with self._store_lock():
            self._config = self._read_config()
            current = self.vectors
            for name, spec in specs.items():
                if name in current and current[name] != spec:
                    raise RecordError(
                        f"vector {name!r} is declared as {current[name].to_json()}, not {spec.to_json()}",
                        field=f"vectors.{name}",
                    )
            if all(n in current for n in specs):
                return
            self._config.setdefault("vectors", {}).update({n: s.to_json() for n, s in specs.items()})
            _atomic_write_json(self.storage, CONFIG_FILE, self._config, fsync=self._fsync)

    def _auto_declare(self, records: Sequence[Mapping[str, Any]]) -> RecordError | None:
        """Declare the vectors ``records`` use that are not declared yet.

        Returns the error of the first record with an unusable new vector (its
        ``game_index`` set); the vectors of the records before it are declared.
        """
        declared = set(self._config.get("vectors", {}))
        new: dict[str, VectorSpec] = {}
        failure: RecordError | None = None
        for index, rec in enumerate(records):
            moves = rec.get("moves") if isinstance(rec, Mapping) else None
            if not isinstance(moves, (list, tuple)):
                continue
            try:
                found = undeclared_vectors(moves, declared)
                mine: dict[str, VectorSpec] = {}
                for name, sample in found.items():
                    if name in new:
                        continue
                    field = f"vectors.{name!r}" if not isinstance(name, str) else f"vectors.{name}"
                    try:
                        if not isinstance(name, str):
                            raise TypeError(f"vector names are str, got {type(name).__name__}")
                        arr = np.asarray(sample)
                        if arr.dtype == object:
                            raise ValueError("not a rectangular numeric array")
                        dtype = arr.dtype.name if arr.dtype.name in ("float16", "float32", "float64") else "float32"
                        mine[name] = VectorSpec(name, tuple(arr.shape) or (1,), dtype)
                    except (TypeError, ValueError) as exc:
                        raise RecordError(f"cannot declare a vector from it: {exc}", game_id=rec.get("game_id"),
                                          field=field) from None
            except RecordError as exc:
                failure = exc.at_index(index)
                break
            new.update(mine)
        if new:
            self.declare_vectors(new)
        return failure

    # -- writing ------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store {self.path} is closed")

    def write_games(self, games: Iterable[Mapping[str, Any]], *, on_duplicate: OnDuplicate = "error") -> int:
        """Validate, encode and buffer games; returns how many were accepted.

        Full shards are sealed as the buffer fills; :meth:`flush` seals the
        rest.  A malformed record raises :class:`RecordError` (a duplicate id
        :class:`DuplicateGameError` unless ``on_duplicate="skip"``): nothing of
        that game is kept, every game before it is.
        """
        if on_duplicate not in ("error", "skip"):
            raise ValueError("on_duplicate must be 'error' or 'skip'")
        self._check_open()
        written = 0
        chunk: list[Mapping[str, Any]] = []
        with self._write_lock:
            # no catalog refresh here: a writer process indexing every other writer's new shards costs
            # O(writers x shards) and made aggregate throughput fall with more processes (docs/concurrency.md);
            # ids are checked against this handle's buffer and index, cross-process copies are resolved on read
            chunk_moves = 0
            move_limit = max(1, self._shard_moves // 4)
            for record in games:
                chunk.append(record)
                moves = record.get("moves") if isinstance(record, Mapping) else None
                chunk_moves += len(moves) if isinstance(moves, (list, tuple)) else 0
                if len(chunk) >= _ENCODE_CHUNK or chunk_moves >= move_limit:
                    written += self._write_chunk(chunk, on_duplicate)
                    chunk, chunk_moves = [], 0
            if chunk:
                written += self._write_chunk(chunk, on_duplicate)
        return written

    def _write_chunk(self, chunk: list[Mapping[str, Any]], on_duplicate: OnDuplicate) -> int:
        declare_failure = self._auto_declare(chunk)
        failure: Exception | None = declare_failure
        if declare_failure is not None:
            chunk = chunk[: declare_failure.game_index]
        accepted: list[Mapping[str, Any]] = []
        seen: set[str] = set()
        for record in chunk:
            gid = record.get("game_id") if isinstance(record, Mapping) else None
            if isinstance(gid, str) and (gid in self._buffered_ids or gid in self._catalog or gid in seen):
                if on_duplicate == "skip":
                    continue
                failure = DuplicateGameError("game id already stored", game_id=gid, field="game_id")
                break
            if isinstance(gid, str):
                seen.add(gid)
            accepted.append(record)
        vectors = self.vectors
        try:
            encoded = codec.encode_games(accepted, vectors=vectors, board_types=self.board_types, now=utc_now())
        except RecordError as exc:
            index = exc.game_index
            if index is None:
                raise
            failure = exc
            accepted = accepted[:index]
            encoded = codec.encode_games(accepted, vectors=vectors, board_types=self.board_types, now=utc_now())
        if accepted:
            self._buffer.append(encoded)
            self._buffered_ids.update(encoded.game_ids)
            self._buffered_moves += encoded.moves.num_rows
            if self._buffered_moves >= self._shard_moves or len(self._buffered_ids) >= self._shard_games:
                self._seal()
        if failure is not None:
            raise failure
        return len(accepted)

    def flush(self) -> None:
        """Seal everything buffered into a shard: durable (fsynced) and visible to every reader on return."""
        self._check_open()
        with self._write_lock:
            self._seal()

    def _seal(self) -> None:
        if not self._buffer:
            return
        parts = self._buffer
        games_parts, base = [], 0
        for part in parts:
            offsets = pc.add(part.games.column("move_offset"), pa.scalar(base, pa.int64()))
            games_parts.append(part.games.set_column(part.games.schema.get_field_index("move_offset"), "move_offset", offsets))
            base += part.moves.num_rows
        games = pa.concat_tables(games_parts)
        vectors = self.vectors
        mschema = moves_schema(vectors)
        moves = pa.concat_tables([conform(p.moves, mschema) for p in parts])
        info = write_shard(self.storage, games, moves, vectors=vectors, batch_rows=self._batch_rows, fsync=self._fsync)
        self._buffer = []
        self._buffered_ids = set()
        self._buffered_moves = 0
        self._catalog.add_committed(info.shard_id)

    # -- reading ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """See shards committed by other processes now (reads do this on their own)."""
        self._check_open()
        self._catalog.refresh(force=True)

    def __contains__(self, game_id: object) -> bool:
        self._check_open()
        self._catalog.refresh()
        return isinstance(game_id, str) and game_id in self._catalog

    def __len__(self) -> int:
        self._check_open()
        self._catalog.refresh()
        return len(self._catalog)

    def get_game(self, game_id: str) -> dict[str, Any]:
        """The whole game (canonical record form, moves and per-move data included)."""
        self._check_open()
        self._catalog.refresh()
        failure: Exception | None = None
        for _ in range(3):
            loc = self._catalog.locate(game_id)
            if loc is None:
                self._catalog.refresh(force=True)
                loc = self._catalog.locate(game_id)
                if loc is None:
                    raise GameNotFoundError(f"no game {game_id!r} in {self.path}")
            reader = self._catalog.find_reader(loc.shard_id)
            if reader is not None:
                try:
                    # through the reader's caches of decompressed batches and game rows (shard.BATCH_CACHE, ROW_CACHE)
                    return reader.read_game(loc.row, loc.move_offset, loc.num_moves)
                except (ShardCorruptError, FileNotFoundError) as exc:
                    failure = exc
            # the shard was removed (compact, prune) after the lookup: the game lives elsewhere now
            self._catalog.refresh(force=True)
        raise failure or GameNotFoundError(f"game {game_id!r} moved while being read; try again")

    def _where(self, where: str | None) -> str:
        if where is None or (isinstance(where, str) and not where.strip()):
            return ""
        sqlguard.check_predicate(where, allowed=self._catalog.view_names)
        return f" WHERE ({where}\n)"

    def _order_by(self, order_by: str | None) -> str:
        if not order_by:
            return ""
        sqlguard.check_order_by(order_by, allowed=self._catalog.view_names)
        return f" ORDER BY {order_by}\n"

    def _run(self, query: str) -> duckdb.DuckDBPyRelation:
        """A relation on this thread's catalog connection (callers consume it fully)."""
        try:
            try:
                return self._catalog.cursor(datasets=False).sql(query)
            except duckdb.CatalogException as exc:
                if "_moves_ds" not in str(exc) and "_games_ds" not in str(exc):
                    raise
                # the predicate reads a move-level view: register the shard datasets (skipped when not needed)
                return self._catalog.cursor(datasets=True).sql(query)
        except duckdb.Error as exc:
            raise QueryError(f"{exc} (in: {query})") from exc

    def _scalar(self, query: str) -> Any:
        try:
            return self._run(query).fetchall()[0][0]
        except duckdb.Error as exc:
            raise QueryError(f"{exc} (in: {query})") from exc

    def _table(self, query: str) -> pa.Table:
        try:
            return self._run(query).to_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(f"{exc} (in: {query})") from exc

    def query_games(
        self,
        where: str | None = None,
        *,
        columns: Sequence[str] | None = None,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """Game-level columns of the games matching the SQL predicate ``where``."""
        self._check_open()
        self._catalog.refresh()
        cols = "*" if columns is None else ", ".join(_quote_ident(c) for c in columns)
        query = f"SELECT {cols} FROM games{self._where(where)}{self._order_by(order_by)}"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        return self._table(query)

    def count_games(self, where: str | None = None) -> int:
        self._check_open()
        self._catalog.refresh()
        return int(self._scalar(f"SELECT count(*) FROM games{self._where(where)}"))

    def count_moves(self, where: str | None = None) -> int:
        self._check_open()
        self._catalog.refresh()
        return int(self._scalar(f"SELECT coalesce(sum(num_moves), 0) FROM games{self._where(where)}"))

    def game_locations(self, where: str | None = None, *, order_by: str | None = None, limit: int | None = None) -> pa.Table:
        """``game_id, shard_id, move_offset, num_moves`` of the matching games (for scanners)."""
        self._check_open()
        self._catalog.refresh()
        query = f"SELECT game_id, shard_id, move_offset, num_moves FROM games{self._where(where)}"
        query += self._order_by(order_by) if order_by else " ORDER BY shard_id, move_offset"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        return self._table(query)

    def scan_moves(
        self,
        where: str | None = None,
        *,
        columns: Sequence[str] | None = None,
        batch_size: int = 65536,
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of moves (one row per move) of the games matching ``where``."""
        self._check_open()
        self._catalog.refresh()
        cols = list(columns) if columns is not None else None
        selected: dict[str, list[tuple[int, int]]] | None = None
        if where is None:
            shard_ids = self._catalog.shard_ids()
        else:
            locs = self.game_locations(where)
            selected = {}
            for sid, off, cnt in zip(
                locs.column("shard_id").to_pylist(), locs.column("move_offset").to_pylist(), locs.column("num_moves").to_pylist()
            ):
                selected.setdefault(sid, []).append((off, cnt))
            shard_ids = sorted(selected)
        return self._scan(shard_ids, selected, cols, batch_size)

    def _scan(
        self,
        shard_ids: list[str],
        selected: dict[str, list[tuple[int, int]]] | None,
        cols: list[str] | None,
        batch_size: int,
    ) -> Iterator[pa.RecordBatch]:
        target = moves_schema({**self._catalog.vectors(), **self.vectors})
        if cols is not None:
            unknown = [c for c in cols if c not in target.names]
            if unknown:
                raise QueryError(f"unknown move columns: {unknown} (known: {', '.join(target.names)})")
        for sid, reader in self._scan_readers(shard_ids):
            if reader is None:
                continue
            want = cols if cols is not None else target.names
            present = [c for c in want if c in reader.moves_schema.names]
            shard_cols = present if (cols is not None or len(present) != len(want)) else None
            ranges = selected.get(sid) if selected is not None else None
            mask_all = None
            if ranges is None:
                # games shadowed by an earlier copy are not indexed: keep only indexed rows
                indexed = self._indexed_rows(reader)
                if indexed is not None:
                    mask_all = indexed
            else:
                mask_all = np.zeros(sum(reader.manifest["batch_rows"]), dtype=bool)
                for off, cnt in ranges:
                    mask_all[off : off + cnt] = True
            for start, batch in reader.iter_batches(shard_cols):
                if mask_all is not None:
                    m = mask_all[start : start + batch.num_rows]
                    if not m.any():
                        continue
                    if not m.all():
                        batch = batch.filter(pa.array(m))
                if len(present) != len(want):  # columns (vectors) this older shard lacks
                    batch = pa.RecordBatch.from_arrays(
                        [batch.column(c) if c in present else pa.nulls(batch.num_rows, target.field(c).type) for c in want],
                        schema=pa.schema([target.field(c) for c in want]),
                    )
                for off in range(0, batch.num_rows, batch_size):
                    yield batch.slice(off, batch_size)

    def _scan_readers(self, shard_ids: Sequence[str]) -> Iterator[tuple[str, Any]]:
        """(shard id, reader) in order.  On object storage the next shards' moves files are downloaded
        ahead (the requests are latency-bound), into readers of this scan only: a scan never pins the
        whole store in memory."""
        if self.storage.local:
            for sid in shard_ids:
                yield sid, self._catalog.find_reader(sid)
            return

        def load(sid: str) -> Any:
            cached = self._catalog.find_reader(sid)
            if cached is None:
                return None
            reader = ShardReader(self.storage, sid, manifest=cached.manifest)
            reader.preload()
            return reader

        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(_SCAN_DOWNLOADS, thread_name_prefix="gamestore-scan") as pool:
            ahead: deque = deque()
            todo = iter(shard_ids)
            for sid in todo:
                ahead.append((sid, pool.submit(load, sid)))
                if len(ahead) >= _SCAN_DOWNLOADS:
                    break
            while ahead:
                sid, fut = ahead.popleft()
                nxt = next(todo, None)
                if nxt is not None:
                    ahead.append((nxt, pool.submit(load, nxt)))
                yield sid, fut.result()

    def _indexed_rows(self, reader: ShardReader) -> np.ndarray | None:
        locs = [self._catalog.locate(g) for g in reader.manifest["game_ids"]]
        mine = [loc for loc in locs if loc is not None and loc.shard_id == reader.shard_id]
        if len(mine) == len(locs):
            return None
        mask = np.zeros(sum(reader.manifest["batch_rows"]), dtype=bool)
        for loc in mine:
            mask[loc.move_offset : loc.move_offset + loc.num_moves] = True
        return mask

    @overload
    def sql(self, query: str, *, allow_writes: Literal[False] = False) -> sqlguard.Relation: ...

    @overload
    def sql(self, query: str, *, allow_writes: bool) -> sqlguard.Relation | None: ...

    def sql(self, query: str, *, allow_writes: bool = False) -> sqlguard.Relation | None:
        """A DuckDB relation for ``query`` over the views games, moves, players, policies, shards, ...

        Each call gets its own connection, so relations may be consumed
        lazily, from any thread, while the store keeps working.  Read-only:
        one ``SELECT``-like statement, no file access (gamestore/sqlguard.py);
        trusted code passes ``allow_writes=True`` to run any statement on a
        private full-access snapshot of the views (then the result is None for
        statements DuckDB gives no result for, e.g. ``SET``).  Errors, also those raised while the result
        is consumed, are :class:`QueryError`.
        """
        self._check_open()
        self._catalog.refresh()
        if allow_writes:
            con = self._catalog.trusted_connection()
        else:
            sqlguard.check_query(query)
            con = None
        try:
            rel = con.sql(query) if con is not None else self._catalog.sql_relation(query)
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from exc
        return rel if rel is None else sqlguard.Relation(rel)

    # -- store-level documents -------------------------------------------------------------
    def put_meta(self, name: str, value: Any) -> None:
        """Store a JSON document under ``name`` (atomic replace)."""
        self._check_open()
        if not _META_NAME.match(name):
            raise ValueError(f"bad meta name {name!r}")
        self.storage.makedirs("meta")
        _atomic_write_json(self.storage, f"meta/{name}.json", value, fsync=self._fsync)

    def get_meta(self, name: str, default: Any = None) -> Any:
        if not _META_NAME.match(name):
            raise ValueError(f"bad meta name {name!r}")
        try:
            return json.loads(self.storage.read_bytes(f"meta/{name}.json"))
        except FileNotFoundError:
            return default

    def meta_names(self) -> list[str]:
        return sorted(n[: -len(".json")] for n in self.storage.list_dir("meta") if n.endswith(".json") and not n.startswith("."))

    # -- housekeeping -----------------------------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def info(self) -> dict[str, Any]:
        """Summary figures: games, moves, shards, bytes on disk, per-config counts, newest game."""
        self._check_open()
        self._catalog.refresh()
        games = self.count_games()
        moves = self.count_moves()
        shard_bytes = int(self._scalar("SELECT coalesce(sum(bytes), 0) FROM shards"))
        disk = sum(e.size for e in self.storage.list_files(""))
        configs = self._table(
            "SELECT board_type, num_players, count(*) AS games, sum(num_moves) AS moves FROM games"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        ).to_pylist()
        newest = self._scalar("SELECT max(created_at) FROM games")
        return {
            "path": str(self.path),
            "games": games,
            "moves": moves,
            "shards": len(self._catalog.shard_ids()),
            "damaged_shards": self._catalog.damaged_shards(),
            "shard_bytes": shard_bytes,
            "bytes_on_disk": disk,
            "bytes_per_move": (shard_bytes / moves) if moves else None,
            "configs": [
                {"board_type": c["board_type"], "num_players": c["num_players"], "games": int(c["games"]), "moves": int(c["moves"] or 0)}
                for c in configs
            ],
            "newest_game": newest,
            "vectors": {n: s.to_json() for n, s in self.vectors.items()},
        }

    def close(self) -> None:
        """Seal what is buffered and release every resource."""
        if self._closed:
            return
        compactor, self._compactor = self._compactor, None
        if compactor is not None:
            compactor.stop()
        try:
            with self._write_lock:
                self._seal()
        finally:
            self._closed = True
            self._catalog.close()

    def game_writer(self, game_id: str, **game_fields: Any) -> "GameWriter":
        """Start a game written move by move (``add_move``, ``finalize``, ``abort``); see gamestore.game_writer."""
        from .game_writer import GameWriter

        self._check_open()
        return GameWriter(self, game_id, game_fields)

    def __enter__(self) -> "GameStore":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<GameStore {str(self.path)!r}{' closed' if self._closed else ''}>"


def _clean_stale(storage: Storage) -> None:
    """Remove staging and trash entries left by dead processes (local storage)."""
    root = storage.local_path()
    now = time.time()
    for sub in ("tmp", "trash"):
        d = root / sub
        if not d.exists():
            continue
        for entry in d.iterdir():
            parts = entry.name.split("-")
            pid = int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None
            try:
                age = now - entry.stat().st_mtime
            except FileNotFoundError:
                continue
            if sub == "trash" or (pid is not None and not _pid_alive(pid)) or age > _STALE_SECONDS:
                if sub == "tmp" and pid == os.getpid():
                    continue
                shutil.rmtree(entry, ignore_errors=True)
    # half-written ".<name>.<pid>.<thread>.tmp" files of atomic replaces (config, meta, catalog segments)
    for d in (root, root / "catalog", root / "catalog" / CHECKPOINT_DIR, root / "meta"):
        if not d.exists():
            continue
        for entry in d.glob(".*.tmp"):
            m = TMP_NAME.match(entry.name)
            if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
                try:
                    entry.unlink()
                except FileNotFoundError:
                    pass


def read_config(storage: Storage) -> dict[str, Any]:
    """The store's ``gamestore.json``; typed errors for a location that is no store or a damaged config."""
    where = storage.uri
    for attempt in range(5):
        try:
            config = json.loads(storage.read_bytes(CONFIG_FILE))
            break
        except (FileNotFoundError, NotADirectoryError):
            raise StoreNotFoundError(f"not a gamestore: {where} (no {CONFIG_FILE})") from None
        except (ValueError, RecursionError) as exc:
            # local replaces are atomic; an S3-compatible server may serve a GET racing a PUT torn: read again
            if storage.local or attempt == 4:
                raise FormatError(f"store {where}: {CONFIG_FILE} is damaged: {exc}") from None
            time.sleep(0.05 * (attempt + 1))
        except OSError as exc:
            if not storage.local:
                raise  # a network failure, not damage
            raise FormatError(f"store {where}: {CONFIG_FILE} is damaged: {exc}") from None
    if not isinstance(config, dict):
        raise FormatError(f"store {where}: {CONFIG_FILE} is a JSON {type(config).__name__}, not an object")
    if config.get("format_version") not in READABLE_FORMAT_VERSIONS:
        raise FormatError(f"store {where}: format version {config.get('format_version')!r} is not supported")
    vectors, board_types = config.get("vectors", {}), config.get("board_types")
    try:
        if not isinstance(vectors, dict):
            raise TypeError("vectors is not an object")
        for name, spec in vectors.items():
            VectorSpec.from_json(name, spec)
        if board_types is not None and not (isinstance(board_types, list) and all(isinstance(b, str) for b in board_types)):
            raise TypeError("board_types is not a list of str")
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise FormatError(f"store {where}: {CONFIG_FILE} is damaged: {exc}") from None
    return config


def require_store(path: "str | os.PathLike | Storage", *, filesystem: "pafs.FileSystem | None" = None) -> Storage:
    """The storage of ``path`` when it holds a readable gamestore (nothing is created); typed errors otherwise."""
    storage = Storage.from_location(path, filesystem=filesystem)
    if storage.local and os.path.exists(storage.root) and not os.path.isdir(storage.root):
        raise StoreNotFoundError(f"not a gamestore: {storage.uri} is not a directory")
    read_config(storage)
    if storage.local:
        check_layout(storage.local_path(), create=False)
    return storage


def check_layout(root: Path, *, create: bool) -> None:
    """The store's directories exist (made when ``create``); a file in place of one is :class:`FormatError`."""
    for sub in _LAYOUT:
        d = root / sub
        if d.is_dir():
            continue
        if d.exists() or d.is_symlink():
            raise FormatError(f"store {root}: {sub} is not a directory (the store is damaged)")
        if create:  # a missing directory is fine (git keeps no empty ones); made when the store is opened
            try:
                d.mkdir()
            except FileExistsError:
                if not d.is_dir():
                    raise FormatError(f"store {root}: {sub} is not a directory (the store is damaged)") from None


def clean_orphans(store: GameStore, *, grace_seconds: float = _STALE_SECONDS) -> list[str]:
    """Object storage: delete shard prefixes without a manifest whose newest object is older than ``grace_seconds``.

    A writer or sync that died mid-upload leaves data objects without the
    manifest (the commit point); readers never see them.  The age is that of
    the objects (an upload in progress keeps writing new ones), never the
    shard id's timestamp (a synced shard keeps its original id).  Returns
    the removed shard ids.
    """
    removed = []
    now = time.time()
    for sid in sorted(store.catalog.uncommitted):
        entries = store.storage.list_files(f"shards/{sid}")
        if any(e.path.endswith("/MANIFEST.json") for e in entries):
            continue  # committed meanwhile
        if entries and now - max(e.mtime or now for e in entries) <= grace_seconds:
            continue
        try:
            store.storage.delete_dir(f"shards/{sid}")
        except OSError:
            continue  # read-only credentials: leave it to a process that may write
        removed.append(sid)
    store.catalog.uncommitted.difference_update(removed)
    return removed


def _create(storage: Storage, board_types: Iterable[str] | None | Literal["ringrift"], *, fsync: bool) -> None:
    """Write the config of a new store at ``storage`` (StoreExistsError when the place holds something else)."""
    storage.makedirs("")
    with storage.lock(".lock") if storage.local else contextlib.nullcontext(True):
        if storage.exists(CONFIG_FILE):
            return
        foreign = [n for n in storage.list_dir("") if n not in _LAYOUT and n not in (".lock", CONFIG_FILE)]
        if foreign:
            raise StoreExistsError(f"{storage.uri} exists and is not a gamestore (holds {sorted(foreign)[:3]})")
        bt: list[str] | None
        if board_types == "ringrift":
            bt = sorted(RINGRIFT_BOARD_TYPES)
        else:
            bt = None if board_types is None else sorted(board_types)
        if storage.local:
            check_layout(storage.local_path(), create=True)
        config = {"format_version": FORMAT_VERSION, "created_at": utc_now(), "vectors": {}, "board_types": bt}
        _atomic_write_json(storage, CONFIG_FILE, config, fsync=fsync)


def open(
    path: "str | os.PathLike | Storage",
    *,
    create: bool = True,
    vectors: Mapping[str, object] | None = None,
    board_types: Iterable[str] | None | Literal["ringrift"] = "ringrift",
    shard_moves: int = 65536,
    shard_games: int = 4096,
    batch_rows: int = 1024,
    fsync: bool = True,
    auto_compact: "bool | TierPolicy" = False,
    filesystem: "pafs.FileSystem | None" = None,
) -> GameStore:
    """Open (and by default create) the store at ``path``.

    ``path`` is a local directory or a URI that ``pyarrow.fs.FileSystem.from_uri``
    accepts (``s3://bucket/prefix``, ``s3://bucket/prefix?endpoint_override=HOST:PORT&scheme=http``,
    ``gs://...``, ``file://...``); ``AWS_ENDPOINT_URL`` is honoured for ``s3://``.
    ``filesystem`` (a ``pyarrow.fs.FileSystem``) makes ``path`` a path on it.
    ``vectors`` declares per-move vectors; ``board_types`` (used when the
    store is created) restricts board types, ``None`` allows any.
    ``auto_compact=True`` (or a :class:`gamestore.ops.tiering.TierPolicy`)
    runs tiered compaction in a background thread of this process until
    :meth:`GameStore.close` (one compactor per store at a time, whichever
    process gets the lock; see docs/operations.md).
    """
    storage = Storage.from_location(path, filesystem=filesystem)
    if storage.local and os.path.exists(storage.root) and not os.path.isdir(storage.root):
        raise StoreNotFoundError(f"not a gamestore: {storage.uri} is not a directory")
    if not storage.exists(CONFIG_FILE):
        if not create:
            raise StoreNotFoundError(f"not a gamestore: {storage.uri} (no {CONFIG_FILE})")
        _create(storage, board_types, fsync=fsync)
    read_config(storage)
    if storage.local:
        check_layout(storage.local_path(), create=True)
        _clean_stale(storage)
    store = GameStore(storage, shard_moves=shard_moves, shard_games=shard_games, batch_rows=batch_rows, fsync=fsync)
    if not storage.local and store.catalog.uncommitted:
        clean_orphans(store)
    if vectors:
        store.declare_vectors(vectors)
    if auto_compact:
        from .ops.tiering import AutoCompactor, TierPolicy

        policy = auto_compact if isinstance(auto_compact, TierPolicy) else TierPolicy()
        store._compactor = AutoCompactor(store, policy, fsync=fsync).start()
    return store
