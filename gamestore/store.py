"""GameStore: the synchronous store API over shards and the catalog."""
from __future__ import annotations

import os
import re
import threading
import warnings
import weakref
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Literal, Mapping, Sequence, overload

import duckdb
import pyarrow as pa

from . import meta, quarantine, readpath, sqlguard, storequery
from .catalog import Catalog
from .errors import (
    DuplicateGameError, GameNotFoundError, ProfileError, QueryError, RecordError,
    ShardCorruptError, StoreClosedError,
)
from .profiles import LEGACY_PROFILE, get_profile
from .schema import VectorSpec, moves_schema
from .fsutil import utc_now
from .layout import CONFIG_FILE, clean_orphans, prepare_store, read_config, require_store, write_json
from .lifecycle import closed_error, guard_iter, while_open
from .sealing import SealJob, concat_parts
from .storage import Storage

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow.fs as pafs
    from . import codec
    from .game_writer import GameWriter
    from .ops.tiering import AutoCompactor, TierPolicy

__all__ = ["GameStore", "open", "read_config", "require_store", "CONFIG_FILE"]


if TYPE_CHECKING:  # pragma: no cover
    from .shardwrite import write_shard
else:
    def write_shard(*args: Any, **kwargs: Any) -> Any:
        """:func:`gamestore.shardwrite.write_shard`: the write side (shardwrite, ipc_write) is imported by a
        handle's first commit, not by every open (~1.5 ms of a process's first statement)."""
        from .shardwrite import write_shard as write

        return write(*args, **kwargs)


_ENCODE_CHUNK = 256
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

OnDuplicate = Literal["error", "skip"]


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
        location: "Storage | str | os.PathLike[str]",
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
        self._sealing: SealJob | None = None  # a full buffer being sealed by a helper thread (gamestore/sealing.py)
        self._closed = False
        self._compactor: AutoCompactor | None = None
        name = self.profile
        self._catalog = Catalog(self.storage, profile=None if name is None else get_profile(name))
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
    def profile(self) -> str | None:
        """The game profile the store was created with (its views are installed on open); None: none."""
        name = self._config.get("profile", LEGACY_PROFILE)
        return None if name is None else str(name)

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
            write_json(self.storage, CONFIG_FILE, self._config, fsync=self._fsync)

    def _auto_declare(self, records: Sequence[Mapping[str, Any]]) -> RecordError | None:
        """Declare the vectors ``records`` use that are not declared yet (see :func:`records.new_vector_specs`)."""
        from .records import new_vector_specs  # the writing side's modules are imported by the first write

        new, failure = new_vector_specs(records, set(self._config.get("vectors", {})))
        if new:
            self.declare_vectors(new)
        return failure

    # -- writing ------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once :meth:`close` has sealed the buffer (calls then raise :class:`StoreClosedError`)."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise closed_error(self)

    def write_games(self, games: Iterable[Mapping[str, Any]], *, on_duplicate: OnDuplicate = "error") -> int:
        """Validate, encode and buffer games; returns how many were accepted.

        A full buffer is sealed into a shard by a helper thread while this
        call returns (durable once a later :meth:`flush` or :meth:`close`
        returns; a failure is raised by the next ``write_games``, ``flush``
        or ``close``); :meth:`flush` seals the rest.  A malformed record raises :class:`RecordError` (a duplicate id
        :class:`DuplicateGameError` unless ``on_duplicate="skip"``): nothing of
        that game is kept, every game before it is.
        """
        if on_duplicate not in ("error", "skip"):
            raise ValueError("on_duplicate must be 'error' or 'skip'")
        self._check_open()
        written = 0
        chunk: list[Mapping[str, Any]] = []
        with self._write_lock:
            self._check_open()  # again: a close() in another thread may have sealed the buffer meanwhile
            self._take_sealed(wait=False)  # a background seal that failed: its error, before accepting more games
            # no catalog refresh here: a writer process indexing every other writer's new shards costs
            # O(writers x shards) and made aggregate throughput fall with more processes (docs/concurrency.md);
            # ids are checked against this handle's buffer and index, cross-process copies are resolved on read
            chunk_moves = 0
            chunk_start = 0  # the index of chunk[0] in the caller's games: an error's game_index counts from there
            move_limit = max(1, self._shard_moves // 4)
            for record in games:
                chunk.append(record)
                moves = record.get("moves") if isinstance(record, Mapping) else None
                chunk_moves += len(moves) if isinstance(moves, (list, tuple)) else 0
                if len(chunk) >= _ENCODE_CHUNK or chunk_moves >= move_limit:
                    written += self._write_chunk(chunk, on_duplicate, chunk_start)
                    chunk_start += len(chunk)
                    chunk, chunk_moves = [], 0
            if chunk:
                written += self._write_chunk(chunk, on_duplicate, chunk_start)
        return written

    def _write_chunk(self, chunk: list[Mapping[str, Any]], on_duplicate: OnDuplicate, chunk_start: int) -> int:
        # Fast attempt: no new ids repeated and every record encodes. Then no record uses an undeclared
        # vector (the encoder refuses those), so the per-move scan of _auto_declare is skipped; anything
        # else takes the full path below, whose outcome (declared vectors, accepted games, error) it is.
        accepted, duplicate = self._accept(chunk, on_duplicate)
        encoded = None
        if duplicate is None:
            with suppress(RecordError):
                encoded = self._encode(accepted, self.vectors)
        if encoded is not None:
            return self._buffer_encoded(accepted, encoded)
        declare_failure = self._auto_declare(chunk)
        if declare_failure is not None:
            chunk = chunk[: declare_failure.game_index]
        accepted, duplicate = self._accept(chunk, on_duplicate)
        failure: RecordError | None = duplicate or declare_failure
        # where the failing record is in chunk: a duplicate stops _accept (nothing skipped before it, since
        # duplicates are skipped only when they are not errors), a declaration failure truncated chunk
        failed_at = len(accepted) if duplicate is not None else len(chunk)
        vectors = self.vectors
        try:
            encoded = self._encode(accepted, vectors)
        except RecordError as exc:
            if exc.game_index is None:
                raise
            bad = accepted[exc.game_index]  # accepted skips duplicates: find the record itself in chunk
            failure, failed_at = exc, next(i for i, record in enumerate(chunk) if record is bad)
            accepted = accepted[: exc.game_index]
            encoded = self._encode(accepted, vectors)
        self._buffer_encoded(accepted, encoded)
        if failure is not None:
            raise failure.at_index(chunk_start + failed_at)
        return len(accepted)

    def _accept(self, chunk: list[Any], on_duplicate: OnDuplicate) -> tuple[list[Any], DuplicateGameError | None]:
        """The records of ``chunk`` whose ids are new, up to the first repeated one (its error) unless skipped."""
        accepted: list[Mapping[str, Any]] = []
        seen: set[str] = set()
        for record in chunk:
            gid = record.get("game_id") if isinstance(record, Mapping) else None
            if isinstance(gid, str) and (gid in self._buffered_ids or gid in seen or self._sealing_game(gid)
                                         or gid in self._catalog):
                if on_duplicate == "skip":
                    continue
                return accepted, DuplicateGameError("game id already stored", game_id=gid, field="game_id")
            if isinstance(gid, str):
                seen.add(gid)
            accepted.append(record)
        return accepted, None

    def _encode(self, records: list[Any], vectors: dict[str, VectorSpec]) -> codec.EncodedGames:
        from . import codec

        return codec.encode_games(records, vectors=vectors, board_types=self.board_types, now=utc_now())

    def _buffer_encoded(self, accepted: list[Mapping[str, Any]], encoded: codec.EncodedGames) -> int:
        if accepted:
            self._buffer.append(encoded)
            self._buffered_ids.update(encoded.game_ids)
            self._buffered_moves += encoded.moves.num_rows
            if self._buffered_moves >= self._shard_moves or len(self._buffered_ids) >= self._shard_games:
                self._seal_in_background()
        return len(accepted)

    def flush(self) -> None:
        """Seal everything buffered into a shard: durable (fsynced) on return, and visible to this handle at once,
        to the other handles of this process from their next call, to other processes once their catalog
        refresher has indexed it (docs/concurrency.md)."""
        self._check_open()
        with self._write_lock:
            self._check_open()
            self._take_sealed(wait=True)
            self._seal()

    def _sealing_game(self, game_id: str) -> bool:
        job = self._sealing
        return job is not None and game_id in job.ids

    def _take_sealed(self, *, wait: bool) -> None:
        """Collect the background seal (once it ended, or waiting for it); a failed one's games rejoin the buffer
        in front and its error is raised (gamestore/sealing.py)."""
        job = self._sealing
        if job is None or not (wait or job.done()):
            return
        job.wait()
        self._sealing = None
        if job.error is not None:
            self._buffer[:0] = job.parts
            self._buffered_ids |= job.ids
            self._buffered_moves += job.moves
            raise job.failure() from job.error

    def _seal_in_background(self) -> None:
        self._take_sealed(wait=True)  # one shard in flight at a time
        from . import shardwrite  # imported by the first commit (see write_shard)

        parts, vectors, shard_id = self._buffer, self.vectors, shardwrite.new_shard_id()
        job = SealJob(shard_id, parts, self._buffered_ids, self._buffered_moves, lambda: self._commit(parts, vectors, shard_id))
        self._buffer, self._buffered_ids, self._buffered_moves = [], set(), 0
        self._sealing = job.start()

    def _seal(self) -> None:
        if not self._buffer:
            return
        from . import shardwrite  # imported by the first commit (see write_shard)

        self._commit(self._buffer, self.vectors, shardwrite.new_shard_id())
        self._buffer = []
        self._buffered_ids = set()
        self._buffered_moves = 0

    def _commit(self, parts: list[codec.EncodedGames], vectors: dict[str, VectorSpec], shard_id: str) -> None:
        """Write ``parts`` as shard ``shard_id``, durable and committed, and index it in this handle's catalog."""
        games, moves = concat_parts(parts, vectors)
        info = write_shard(self.storage, games, moves, vectors=vectors, batch_rows=self._batch_rows, fsync=self._fsync,
                           shard_id=shard_id)
        try:
            self._catalog.add_committed(info.shard_id, games=games)
        except Exception as exc:  # noqa: BLE001 - committed: a failure reported now would make a retry store the games twice
            warnings.warn(f"shard {info.shard_id} committed, but indexing it failed ({exc}): the next listing indexes it",
                          RuntimeWarning, stacklevel=2)

    # -- reading ---------------------------------------------------------------------------
    @while_open
    def refresh(self) -> None:
        """See shards committed by other processes now (reads do this on their own)."""
        self._catalog.refresh(force=True)

    @while_open
    def __contains__(self, game_id: object) -> bool:
        self._catalog.refresh()
        return isinstance(game_id, str) and game_id in self._catalog

    @while_open
    def __len__(self) -> int:
        self._catalog.refresh()
        return len(self._catalog)

    @while_open
    def get_game(self, game_id: str) -> dict[str, Any]:
        """The whole game (canonical record form, moves and per-move data included)."""
        self._catalog.refresh()
        failure: Exception | None = None
        for _ in range(3):
            loc = self._catalog.locate(game_id)
            if loc is None:
                self._catalog.refresh(force=True)
                loc = self._catalog.locate(game_id)
                if loc is None:
                    quarantine.raise_if_lost(self._catalog, game_id)
                    raise GameNotFoundError(f"no game {game_id!r} in {self.path}")
            reader = self._catalog.find_reader(loc.shard_id)
            if reader is not None:
                try:
                    # through the reader's caches of decompressed batches and game rows (shard.BATCH_CACHE, ROW_CACHE)
                    return readpath.read_game(reader, loc.row, loc.move_offset, loc.num_moves)
                except (ShardCorruptError, FileNotFoundError) as exc:
                    if isinstance(exc, ShardCorruptError) and exc.shard_id in self._catalog.damage():
                        raise  # damaged (now quarantined), not moved by a compaction
                    failure = exc
            # the shard was removed (compact, prune) after the lookup: the game lives elsewhere now
            self._catalog.refresh(force=True)
        raise failure or GameNotFoundError(f"game {game_id!r} moved while being read; try again")

    def _where(self, where: str | None) -> str:
        return storequery.where_clause(self._catalog, where)

    def _scalar(self, query: str) -> Any:
        return storequery.scalar(self._catalog, query)

    def _table(self, query: str) -> pa.Table:
        return storequery.table(self._catalog, query)

    @while_open
    def query_games(
        self,
        where: str | None = None,
        *,
        columns: Sequence[str] | None = None,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """Game-level columns of the games matching the SQL predicate ``where``."""
        self._catalog.refresh()
        cols = "*" if columns is None else ", ".join(_quote_ident(c) for c in columns)
        query = f"SELECT {cols} FROM games{self._where(where)}{storequery.order_by_clause(self._catalog, order_by)}"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        return self._table(query)

    @while_open
    def count_games(self, where: str | None = None) -> int:
        self._catalog.refresh()
        clause = self._where(where)
        if not clause:  # the catalog's own table answers: no statement (~2 ms of DuckDB's CPU)
            return len(self._catalog)
        return int(self._scalar(f"SELECT count(*) FROM games{clause}"))

    @while_open
    def count_moves(self, where: str | None = None) -> int:
        self._catalog.refresh()
        clause = self._where(where)
        if not clause:
            return self._catalog.total_moves()
        return int(self._scalar(f"SELECT coalesce(sum(num_moves), 0) FROM games{clause}"))

    @while_open
    def game_locations(self, where: str | None = None, *, order_by: str | None = None, limit: int | None = None) -> pa.Table:
        """``game_id, shard_id, move_offset, num_moves`` of the matching games (for scanners)."""
        self._catalog.refresh()
        query = f"SELECT game_id, shard_id, move_offset, num_moves FROM games{self._where(where)}"
        query += storequery.order_by_clause(self._catalog, order_by) if order_by else " ORDER BY shard_id, move_offset"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        return self._table(query)

    @while_open
    def select_games(self, where: str | None = None, *, columns: Sequence[str] = ()) -> readpath.Selection:
        """The indexed games matching the SQL predicate ``where``, per shard (see gamestore/readpath.py)."""
        self._catalog.refresh()
        if where is not None and not where.strip():
            where = None
        if where is not None:
            sqlguard.check_predicate(where, allowed=self._catalog.view_names)
        return readpath.select(self._catalog, where, columns=columns)

    def scan_moves(
        self,
        where: str | None = None,
        *,
        columns: Sequence[str] | None = None,
        batch_size: int = 65536,
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of moves (one row per move) of the games matching ``where``."""
        selection = self.select_games(where)
        target = moves_schema({**self._catalog.vectors(), **self.vectors})
        cols = list(columns) if columns is not None else None
        return guard_iter(self, readpath.scan(self._catalog, selection, columns=cols, schema=target, batch_size=batch_size),
                          "scan_moves")

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
        try:
            self._catalog.refresh()
            if allow_writes:
                con = self._catalog.trusted_connection()
            else:
                sqlguard.check_query(query, parser=self._catalog.parser())
                con = None
            if con is not None:
                rel = con.sql(query)
                return rel if rel is None else sqlguard.Relation(rel)
            rel, release = self._catalog.sql_relation(query)
        except Exception as exc:
            # a close() in another thread since the check above closed the catalog's connections
            if self._closed:
                raise closed_error(self, "sql") from exc
            if isinstance(exc, duckdb.Error):
                raise QueryError(str(exc)) from exc
            raise
        out = sqlguard.Relation(rel, store=self)
        weakref.finalize(out, release)  # the connection serves the next statement once this relation is gone
        return out

    # -- store-level documents -------------------------------------------------------------
    def put_meta(self, name: str, value: Any) -> None:
        """Store a JSON document under ``name`` (atomic replace)."""
        self._check_open()
        meta.put(self.storage, name, value, fsync=self._fsync)

    def get_meta(self, name: str, default: Any = None) -> Any:
        return meta.get(self.storage, name, default)

    def meta_names(self) -> list[str]:
        return meta.names(self.storage)

    # -- housekeeping -----------------------------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        return self._catalog

    @while_open
    def info(self) -> dict[str, Any]:
        """Summary figures: games, moves, shards, bytes on disk, per-config counts, newest game."""
        self._catalog.refresh()
        quarantine.screen(self._catalog)  # truncated, deleted or swapped data files: a stat per file
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
            **quarantine.damage_info(self._catalog),
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
        """Seal what is buffered, release every resource (any thread); a failed seal raises, the store stays open."""
        if self._closed:
            return
        compactor, self._compactor = self._compactor, None
        if compactor is not None:
            compactor.stop()
        with self._write_lock:
            if self._closed:
                return
            self._take_sealed(wait=True)
            self._seal()
            self._closed = True  # under the write lock: no write slips into the buffer after the seal
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


def open(
    path: "str | os.PathLike[str] | Storage",
    *,
    create: bool = True,
    profile: str | None = None,
    vectors: Mapping[str, object] | None = None,
    board_types: Iterable[str] | None = None,
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
    ``profile`` names a game profile (gamestore/profiles.py, e.g.
    ``"ringrift"``): a store created with one records it and installs its
    views on every open; by default a store knows no game.  Opening a store
    that has no profile with one records it; a different one than recorded
    is a :class:`ProfileError`.  ``vectors`` declares per-move vectors;
    ``board_types`` (used when the store is created) restricts board types,
    by default to the profile's (``None`` and no profile: any).
    ``auto_compact=True`` (or a :class:`gamestore.ops.tiering.TierPolicy`)
    runs tiered compaction in a background thread of this process until
    :meth:`GameStore.close` (one compactor per store at a time, whichever
    process gets the lock; see docs/operations.md).
    """
    storage = Storage.from_location(path, filesystem=filesystem)
    prepare_store(storage, create=create, profile=profile, board_types=board_types, fsync=fsync)
    store = GameStore(storage, shard_moves=shard_moves, shard_games=shard_games, batch_rows=batch_rows, fsync=fsync)
    if not storage.local and store.catalog.uncommitted:
        clean_orphans(store.storage, store.catalog.uncommitted)
    if vectors:
        store.declare_vectors(vectors)
    if auto_compact:
        from .ops.tiering import AutoCompactor, TierPolicy

        policy = auto_compact if isinstance(auto_compact, TierPolicy) else TierPolicy()
        store._compactor = AutoCompactor(store, policy, fsync=fsync).start()
    return store

