"""The catalog: an in-process index of every committed game and shard.

Each process keeps its own index: an immutable *snapshot* (Arrow tables of
the games and shards it knows, registered with an in-memory DuckDB), loaded
at open from the store's catalog checkpoint plus the segments of the shards
committed after it (``catalog/<shard_id>.parquet``, rebuilt from the shard
when missing), and advanced by a background refresher thread
(gamestore/catalog_refresh.py) when ``shards/`` changes.  Reads use the
published snapshot and never wait for indexing, a checkpoint or a lock
another thread holds; no process ever holds a lock on a shared database
file (docs/concurrency.md, docs/format.md section 5).
"""
from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import duckdb
import pyarrow as pa

from . import catalog_refresh as refresher
from . import checkpoint as ckpt
from . import gil
from . import sqlguard
from .errors import FormatError, QueryError, ShardCorruptError
from .catalog_snapshot import (KEY_COLUMNS, SEGMENT_SCHEMA, advance, create_views, segment_from_games, segment_of,
                               shard_row, view_dataset)
from . import quarantine as _quarantine
from .quarantine import check_sizes, games_dataset, reason_of
from .catalog_snapshot import Snapshot as _Snapshot
from .profiles import Profile
from .arrays import empty_table
from .schema import GAMES_SCHEMA, VectorSpec, moves_schema
from .shard import GAMES_FILE, MANIFEST, ShardReader, parse_manifest, read_manifest
from .sqlscan import MovesSource, built_on_use
from .storage import Storage
from .lazy import lazy_module

pc = lazy_module("pyarrow.compute")  # imported on first use (gamestore/lazy.py)

__all__ = ["Catalog", "GameLocation", "segment_from_games", "SEGMENT_SCHEMA", "REFRESH_STEP_SHARDS"]

_FULL_REFRESH_SECONDS = 1.0
#: object storage has no cheap change token: a listing (one LIST request per 1,000 shards) at most this often
_OBJECT_REFRESH_SECONDS = 5.0
#: object storage: manifests and segments fetched at once while indexing (the requests are latency-bound)
_OBJECT_FETCHERS = 16
_OBJECT_READER_CACHE = 32
_REFRESH_ATTEMPTS = 8
#: Most shards one refresh step indexes while a read waits; the rest is picked up in the background.
REFRESH_STEP_SHARDS = 64
#: A process that has indexed this many shards beyond the checkpoint writes a new one.
CHECKPOINT_TAIL = 256
_READER_CACHE = 4096
_WORD = re.compile(r"[a-z_][a-z0-9_]*")
#: Views over the in-memory game and shard tables only (no shard file is read).
_GAME_LEVEL_VIEWS = frozenset({"games", "players", "shards"})
#: Idle connections kept per snapshot for ``store.sql`` (sql_relation).
_POOL_SIZE = 4


@dataclass(frozen=True)
class GameLocation:
    shard_id: str
    row: int
    move_offset: int
    num_moves: int


#: ``Catalog._load`` of a listed shard prefix without a manifest on object storage (an upload in progress, or an orphan)
_UNCOMMITTED = object()


class Catalog:
    """Game and shard index of one store, for one process (thread-safe)."""

    def __init__(self, storage: Storage, *, write_checkpoints: bool = True, profile: Profile | None = None) -> None:
        """``profile``: the game profile whose views this catalog installs beside the core views."""
        self.storage = storage
        self.profile = profile
        #: object storage: listed shard prefixes without a manifest (uploads in progress, or orphans)
        self.uncommitted: set[str] = set()
        self._write_checkpoints = write_checkpoints
        self._db = duckdb.connect(":memory:")
        self._refresh_lock = threading.Lock()  # one refresh step at a time; reads never take it
        self._local = threading.local()
        self._snap = _Snapshot(empty_table(SEGMENT_SCHEMA), empty_table(ckpt.SHARDS_SCHEMA), frozenset(), 0, 0)
        self._pending: list[str] = []  # listed shards not indexed yet (oldest first)
        self._removed: set[str] = set()  # indexed shards gone from the listing, dropped once the tail is indexed
        self._readers: OrderedDict[str, ShardReader] = OrderedDict()
        self._readers_lock = threading.Lock()
        self._dir_state: tuple[int, int] | None = None
        self._last_full = 0.0
        self._listing_seconds = 0.0  # how long the last listing of shards/ took
        self._background: threading.Thread | None = None  # the refresher (catalog_refresh.py), started on demand
        self._wanted = threading.Event()  # set: the refresher should list shards/ again
        #: shards another handle of this process committed, with their segment and row (published by the next call)
        self._inbox: deque[tuple[str, tuple[pa.Table, dict]]] = deque()
        self._checkpointing = False
        self._checkpointer: threading.Thread | None = None
        self._closed = False
        self._pool: list[duckdb.DuckDBPyConnection] = []  # connections of snapshot _pool_generation (sql_relation)
        self._pool_generation = -1
        self._pool_lock = threading.Lock()
        self._damage: dict[str, str] = {}  # damaged shard id -> what is wrong
        self.lost: dict[str, str] = {}  #: game id -> the quarantined shard that held it (see lost_in)
        self._create_views()
        refresher.register(self)

    # -- setup ------------------------------------------------------------------
    def _create_views(self) -> None:
        db = self._db
        self._register(db, datasets=True)
        create_views(db, self.profile)
        # every query of the store runs here: no file, network or extension access (gamestore/sqlguard.py)
        sqlguard.lock_down(db)
        self._views: frozenset[str] | None = None  # listed on first use (view_names)

    @property
    def view_names(self) -> frozenset[str]:
        """The views a query may read (games, moves, players, policies, shards, the RingRift views, ...).

        Listed when first asked for: ``store.sql`` never needs the list, and listing took ~4 ms of every open (the
        database's first statement)."""
        views = self._views
        if views is None:
            with self._pool_lock:
                if self._views is None:
                    con = self._db.cursor()
                    try:
                        self._views = frozenset(r[0] for r in con.execute(
                            "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall())
                    finally:
                        con.close()
                views = self._views
        return views

    def _datasets(self, snap: _Snapshot) -> tuple[Any, Any]:
        """The moves and games files of the shards holding indexed games, as Arrow datasets (built lazily)."""
        if snap._datasets is None:
            if not snap.visible_keys.num_rows:
                return empty_table(moves_schema({})), empty_table(GAMES_SCHEMA)
            snap._datasets = (MovesSource(self, snap, moves_schema(self._vectors_of(snap))),  # reads only indexed copies
                              built_on_use(GAMES_SCHEMA, functools.partial(self._games_dataset, snap)))
        return snap._datasets

    def _games_dataset(self, snap: _Snapshot) -> Any:
        return games_dataset(self, snap, sorted(pc.unique(snap.visible_keys.column("shard_id")).to_pylist()))

    @staticmethod
    def _games_table(snap: _Snapshot) -> Any:
        """What ``_games`` is: the snapshot's visible game rows, or while their columns are deferred (read from a
        checkpoint: catalog_snapshot.Snapshot's ``load``) a source that reads them when a statement first scans
        ``_games`` (a statement over ``moves`` never does)."""
        if snap.loaded:
            return snap.visible
        got = snap.games_source
        if got is None:
            got = snap.games_source = built_on_use(SEGMENT_SCHEMA, lambda: snap.visible,
                                                   rows=snap.visible_keys.num_rows)
        return got

    def _register(self, con: duckdb.DuckDBPyConnection, *, datasets: bool, snap: _Snapshot | None = None) -> int:
        snap = snap or self._snap
        con.register("_games", self._games_table(snap))
        con.register("_shards", snap.shards)
        if datasets:
            moves, games = self._datasets(snap)
            con.register("_moves_ds", moves)
            con.register("_games_ds", games)
        return snap.generation

    # -- connections ------------------------------------------------------------
    def cursor(self, *, datasets: bool = True) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection for the calling thread with the views current.

        ``datasets=False`` skips the move-level views (``moves``, ``games_full``
        and what is built on them) when they were not registered yet: enough
        for statements over ``games``, ``players`` and ``shards``.
        """
        local = self._local
        con = getattr(local, "con", None)
        if con is None:
            con = self._db.cursor()
            local.con = con
            local.generation = -1
            local.datasets = False
        snap = self._snap
        if local.generation != snap.generation or (datasets and not local.datasets):
            if local.datasets and not datasets:
                # never leave an older snapshot's datasets behind next to this snapshot's games
                con.unregister("_moves_ds")
                con.unregister("_games_ds")
            local.generation = self._register(con, datasets=datasets, snap=snap)
            local.datasets = datasets
        return con

    def parser(self) -> duckdb.DuckDBPyConnection:
        """A connection of the calling thread to the catalog's database, to parse statements with (nothing
        registered: a new database would cost ~15 ms, a cursor of this one nothing)."""
        local = self._local
        con = getattr(local, "parser", None)
        if con is None:
            con = local.parser = self._db.cursor()
        return con

    def new_connection(self, query: str | None = None) -> duckdb.DuckDBPyConnection:
        """A fresh connection with the views current (for relations handed to callers).

        With ``query``, the shard datasets (two of the four registrations,
        the per-statement cost) are registered only when a word of it names
        a view other than ``games``, ``players`` and ``shards``; a statement
        that still needs them is bound again by :meth:`sql_relation`.
        """
        return self._connection(query, self._snap)

    def _connection(self, query: str | None, snap: _Snapshot) -> duckdb.DuckDBPyConnection:
        con = self._db.cursor()
        words = set(_WORD.findall(query.lower())) if query is not None else None
        self._register(con, datasets=words is None or bool(words & (self.view_names - _GAME_LEVEL_VIEWS)), snap=snap)
        return con

    def sql_relation(self, query: str) -> tuple[duckdb.DuckDBPyRelation, Callable[[], None]]:
        """``query`` bound on a connection of the current snapshot, and the call that hands the connection back.

        Connections come from a small pool per snapshot, with the views'
        tables already registered (registering costs about 1 ms per table);
        a connection serves one relation (and those made from it) at a time
        and never sees another snapshot.
        """
        snap = self._snap
        con = None
        with self._pool_lock:
            if self._pool_generation == snap.generation and self._pool:
                con = self._pool.pop()
        if con is None:
            con = self._db.cursor()
            self._register(con, datasets=True, snap=snap)
        release = functools.partial(self._release, con, snap.generation)
        try:
            return con.sql(query), release
        except BaseException:
            release()
            raise

    def _release(self, con: duckdb.DuckDBPyConnection, generation: int) -> None:
        with self._pool_lock:
            if generation != self._snap.generation:
                return
            if self._pool_generation != generation:
                self._pool, self._pool_generation = [], generation
            if len(self._pool) < _POOL_SIZE:
                self._pool.append(con)

    def trusted_connection(self) -> duckdb.DuckDBPyConnection:
        """A private full-access DuckDB database holding a snapshot of every view (``sql(allow_writes=True)``).

        Whatever runs there (COPY, ATTACH, DROP VIEW, SET) leaves this catalog untouched.
        """
        snap = self._snap
        con = duckdb.connect(":memory:")
        for name, table in (("_games", snap.visible), ("_shards", snap.shards)):
            con.register("_snapshot", table)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM _snapshot")
            con.unregister("_snapshot")
        moves, games = self._datasets(snap)
        con.register("_moves_ds", moves)
        con.register("_games_ds", games)
        create_views(con, self.profile)
        return con

    # -- listing ------------------------------------------------------------------
    def _dir_signature(self) -> tuple[int, int] | None:
        return self.storage.dir_signature("shards")

    def _list_shards(self, known: set[str] | frozenset[str]) -> set[str]:
        """The committed shard ids.  When a known shard is missing, list once more: a shard that replaced
        it was committed before it was removed, so the second listing (started after the removal was
        seen) holds the replacement even if the first one missed it."""
        listed = {n for n in self.storage.list_dir("shards") if not n.startswith(".")}
        for _ in range(3):
            if known <= listed:
                break
            again = {n for n in self.storage.list_dir("shards") if not n.startswith(".")}
            if again == listed:
                break
            listed = again
        return listed

    # -- refresh ------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> bool:
        """Pick up shards committed or removed since the last look; True if the snapshot changed now.

        Without ``force`` (what every read does) this waits only to publish
        the shards other handles of this process handed over (for the
        refresher's current step, when it holds the lock), and
        when ``shards/`` changed since the last listing (or the listing
        interval passed) it wakes the background refresher, which lists and
        indexes the new shards in steps of at most
        :data:`REFRESH_STEP_SHARDS`, publishing a snapshot after each; the
        call goes on with the current snapshot.  ``force`` lists now and
        indexes everything before returning.
        """
        if self._closed:
            return False
        if not force:
            taken = False
            if self._inbox:  # no file to read: what another handle of this process indexed
                # visible from this call on (docs/concurrency.md): a refresher step holding the lock is waited out
                with self._refresh_lock:
                    taken = not self._closed and refresher.take_inbox(self)
            sig = self._dir_signature()
            interval = _FULL_REFRESH_SECONDS if self.storage.local else _OBJECT_REFRESH_SECONDS
            if sig != self._dir_state or time.monotonic() - self._last_full >= interval or self._pending:
                refresher.wake(self)
            return taken
        with self._refresh_lock:
            for attempt in range(_REFRESH_ATTEMPTS):
                try:
                    return self._refresh_locked(limit=None)
                except (FileNotFoundError, ShardCorruptError):
                    # a shard was removed (compact, prune) between the listing and its loading: list again
                    if attempt == _REFRESH_ATTEMPTS - 1:
                        raise
            return False  # pragma: no cover

    def _refresh_locked(self, *, limit: int | None) -> bool:
        taken = refresher.take_inbox(self)
        snap = self._snap
        sig = self._dir_signature()
        t0 = time.monotonic()
        listed = self._list_shards(snap.shard_ids)
        self._last_full = time.monotonic()
        self._listing_seconds = self._last_full - t0
        self._dir_state = sig
        new = listed - snap.shard_ids - snap.damaged  # no copy of the known set: O(new) at 100,000 shards
        self._pending = sorted(new)
        if len(listed) - len(new) == len(snap.shard_ids) + len(snap.damaged):
            self._removed = set()  # every known shard is still listed (the common case)
        else:
            self._removed = {s for s in snap.shard_ids if s not in listed} | {s for s in snap.damaged if s not in listed}
        return self._step(limit) or taken

    def _step(self, limit: int | None) -> bool:
        """Index up to ``limit`` pending shards (oldest first); drop removed shards once nothing is pending."""
        todo = self._pending if limit is None else self._pending[:limit]
        segments, rows, damaged = [], [], set()
        for sid, loaded in zip(todo, self._load_all(todo)):
            if loaded is _UNCOMMITTED:
                self.uncommitted.add(sid)  # not a shard yet: listed again (and retried) by the next refresh
            elif loaded is None:
                damaged.add(sid)
            else:
                self.uncommitted.discard(sid)
                segments.append(loaded[0])
                rows.append(loaded[1])
        self._pending = self._pending[len(todo):]
        removed = self._removed if not self._pending else set()
        if not segments and not removed and not damaged:
            return False
        self._publish(segments, rows, removed, damaged)
        if removed:
            self._removed = set()
        return True

    def _publish(self, segments: list[pa.Table], shard_rows: list[dict], removed: set[str], damaged: set[str]) -> None:
        self._swap(advance(self._snap, segments, shard_rows, removed, damaged))

    def _swap(self, new: _Snapshot) -> None:
        self._snap = new
        if self._write_checkpoints and len(new.shard_ids) - new.covered >= CHECKPOINT_TAIL and not self._pending:
            self._start_checkpoint()

    def _load_all(self, shard_ids: list[str]) -> list[Any]:
        """``_load`` of every id; on object storage ``_OBJECT_FETCHERS`` at once (each is a few GETs)."""
        if self.storage.local or len(shard_ids) < 2:
            return [self._load(sid) for sid in shard_ids]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(_OBJECT_FETCHERS, len(shard_ids)), thread_name_prefix="gamestore-index") as pool:
            return list(pool.map(self._load, shard_ids))

    def _load(self, shard_id: str, games: pa.Table | None = None) -> Any:
        """The segment and shard row of one committed shard; None when it is damaged, ``_UNCOMMITTED``
        when it has no manifest yet on object storage. ``games``: the shard's games table as its writer
        just wrote it (the segment is derived from it instead of reading ``games.arrow`` back)."""
        rel = f"shards/{shard_id}"
        try:
            if self.storage.local:
                manifest = read_manifest(self.storage, rel)
            else:
                try:
                    data = self.storage.read_bytes(f"{rel}/{MANIFEST}")
                except FileNotFoundError:
                    return _UNCOMMITTED  # data uploaded, manifest (the commit point) not yet
                manifest = parse_manifest(data, shard_id)
            check_sizes(self.storage, shard_id, manifest, lost=self.lost)
            segment = segment_of(self.storage, shard_id, manifest, games=games)
        except (ShardCorruptError, FormatError) as exc:
            if not self.storage.exists(rel):
                raise FileNotFoundError(rel) from None  # removed meanwhile: the caller lists again
            _quarantine.record_damage(self, shard_id, exc)
            return None  # a damaged shard never makes the rest unreadable: quarantined, reported by info and verify
        except FileNotFoundError:
            if self.storage.exists(rel):
                return None
            raise  # removed meanwhile: the caller lists again
        return segment, shard_row(shard_id, manifest)

    # -- quarantine (gamestore/quarantine.py) ----------------------------------------------
    def quarantine(self, shard_id: str, reason: str) -> bool:
        """Stop serving a damaged shard here (True if done now; False if gone from ``shards/``: not damage)."""
        return _quarantine.take_out(self, shard_id, reason)

    def damage(self) -> dict[str, str]:
        """Every damaged (quarantined) shard of this catalog, with what is wrong with it."""
        return _quarantine.damage_of(self)

    def lost_in(self, game_id: str) -> str | None:
        """The quarantined shard that held ``game_id`` (None when it did not, or another copy is indexed)."""
        return _quarantine.lost_in(self, game_id)

    def add_committed(self, shard_id: str, *, games: pa.Table | None = None) -> None:
        """Index a shard this process has just committed (no directory listing needed); ``games``: its games
        table as just written (saves reading ``games.arrow`` back)."""
        with self._refresh_lock:
            snap = self._snap
            if shard_id in snap.shard_ids or shard_id in snap.damaged:
                return
            if shard_id in self._pending:
                self._pending.remove(shard_id)
            loaded = self._load(shard_id, games)
            if loaded is None:
                self._publish([], [], set(), {shard_id})
            else:
                self._publish([loaded[0]], [loaded[1]], set(), set())
        if loaded is not None and loaded is not _UNCOMMITTED:
            refresher.hand_over(self, shard_id, loaded)

    # -- background work ---------------------------------------------------------
    def _start_checkpoint(self) -> None:
        if self._checkpointing:
            return
        self._checkpointing = True
        t = threading.Thread(target=gil.inherit(self._checkpoint_now), name="gamestore-checkpoint", daemon=True)
        self._checkpointer = t
        t.start()

    def _checkpoint_now(self) -> None:
        try:
            self.write_checkpoint()
        except OSError:
            pass  # read-only media or disk full: the checkpoint is an optimisation
        finally:
            self._checkpointing = False

    def write_checkpoint(self) -> str | None:
        """Write a checkpoint of the current snapshot; None if another process is writing one now."""
        snap = self._snap
        with ckpt.checkpoint_lock(self.storage) as got:
            if not got:
                return None
            name = ckpt.write_checkpoint(self.storage, snap.rows.combine_chunks(), snap.shards.combine_chunks())
        self._snap.covered = max(self._snap.covered, len(snap.shard_ids))
        return name

    def load(self) -> None:
        """Open: read the checkpoint, then index the tail and drop what it lists but the store lost."""
        with self._refresh_lock:
            cp = ckpt.read_checkpoint(self.storage, SEGMENT_SCHEMA, columns=KEY_COLUMNS)
            if cp is not None:
                self._snap = _Snapshot(cp.games, cp.shards, frozenset(), 1, cp.shards.num_rows, load=cp.all_games)
            for attempt in range(_REFRESH_ATTEMPTS):
                try:
                    self._refresh_locked(limit=None)
                    break
                except (FileNotFoundError, ShardCorruptError):
                    if attempt == _REFRESH_ATTEMPTS - 1:
                        raise
        snap = self._snap
        due = (cp is None and bool(snap.shard_ids)) or len(snap.shard_ids) - snap.covered >= CHECKPOINT_TAIL
        if self._write_checkpoints and due and not self._checkpointing:  # (a background one may be under way)
            try:
                self.write_checkpoint()
            except OSError:
                pass

    # -- lookups --------------------------------------------------------------------
    @property
    def snapshot_generation(self) -> int:
        return self._snap.generation

    def select_games(self, where: str | None = None, *, columns: Sequence[str] = ()) -> pa.Table:
        """``shard_id, row, move_offset, num_moves`` (and ``columns``) of the indexed games matching ``where``.

        ``where`` is a SQL predicate over the ``games`` view's columns,
        already checked by the caller; rows come ordered by shard id and move
        offset.  (The selection step of gamestore/readpath.py.)
        """
        bad = [c for c in columns if not c.isidentifier()]
        if bad:
            raise QueryError(f"not a column name: {bad[0]!r}")
        extra = "".join(f', "{c}"' for c in columns)
        query = f"SELECT shard_id, \"row\", move_offset, num_moves{extra} FROM _game_rows"
        if where:
            query += f" WHERE ({where}\n)"
        query += " ORDER BY shard_id, move_offset, \"row\""
        try:
            return self.cursor().sql(query).to_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(f"{exc} (in: {query})") from exc

    def locate(self, game_id: str) -> GameLocation | None:
        loc = self._snap.locations.get(game_id)
        return None if loc is None else GameLocation(*loc)

    def reader(self, shard_id: str) -> ShardReader:
        reader = self.find_reader(shard_id)
        if reader is None:
            raise KeyError(shard_id)
        return reader

    def find_reader(self, shard_id: str) -> ShardReader | None:
        """The shard's reader, or None when it is gone, damaged or not indexed."""
        with self._readers_lock:
            reader = self._readers.get(shard_id)
            if reader is not None:
                self._readers.move_to_end(shard_id)
                return reader
        if shard_id not in self._snap.shard_ids:
            return None
        try:
            reader = ShardReader(self.storage, shard_id)
        except (ShardCorruptError, FormatError) as exc:
            if isinstance(exc, ShardCorruptError):
                self.quarantine(shard_id, reason_of(exc))
            return None
        reader.on_damage = lambda exc: self.quarantine(shard_id, reason_of(exc))
        with self._readers_lock:
            self._readers[shard_id] = reader
            # object storage: a reader holds its files in memory once read, so keep fewer
            while len(self._readers) > (_READER_CACHE if self.storage.local else _OBJECT_READER_CACHE):
                self._readers.popitem(last=False)
        return reader

    def shard_ids(self) -> list[str]:
        """Intact indexed shards holding the games readers see (replaced shards excluded)."""
        snap = self._snap
        return sorted(snap.shard_ids - snap.hidden)

    def hidden_shards(self) -> list[str]:
        """Shards whose games another present shard replaces (left by an interrupted compaction)."""
        return sorted(self._snap.hidden)

    def damaged_shards(self) -> list[str]:
        return sorted(self._snap.damaged)

    def readers(self) -> list[ShardReader]:
        out = []
        for s in self.shard_ids():
            r = self.find_reader(s)
            if r is not None:
                out.append(r)
        return out

    def shard_table(self) -> pa.Table:
        """One row per indexed shard (``SHARDS_SCHEMA``)."""
        return self._snap.shards

    def __contains__(self, game_id: str) -> bool:
        return game_id in self._snap.locations

    def __len__(self) -> int:
        return self._snap.visible_keys.num_rows

    def total_moves(self) -> int:
        """The moves of the indexed games (the ``games`` view's ``sum(num_moves)``), without a statement."""
        return int(pc.sum(self._snap.visible_keys.column("num_moves")).as_py() or 0)

    def _vectors_of(self, snap: _Snapshot) -> dict[str, VectorSpec]:
        out: dict[str, VectorSpec] = {}
        for text in dict.fromkeys(snap.shards.column("vectors_json").to_pylist()):  # one row per shard
            for name, spec in json.loads(text or "{}").items():
                out.setdefault(name, VectorSpec.from_json(name, spec))
        return out

    def vectors(self) -> dict[str, VectorSpec]:
        return self._vectors_of(self._snap)

    def close(self) -> None:
        self._closed = True
        self._wanted.set()
        refresher.unregister(self)
        for t in (self._background, self._checkpointer):
            while t is not None and t is not threading.current_thread():
                try:
                    t.join()
                    break
                except RuntimeError:  # published by another thread just before its start() (catalog_refresh.wake)
                    time.sleep(0.001)
        with self._refresh_lock:
            with self._readers_lock:
                self._readers.clear()
            with self._pool_lock:
                self._pool.clear()
            try:
                self._db.close()
            except duckdb.Error:
                pass  # another thread's statement runs on it: DuckDB frees the database when that ends
