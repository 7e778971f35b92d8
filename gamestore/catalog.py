"""The catalog: an in-process DuckDB index of every committed game and shard.

Each process keeps its own in-memory DuckDB database, loaded from the
per-shard catalog segments (``catalog/<shard_id>.parquet``, rebuilt from the
shard when missing) and refreshed when ``shards/`` changes.  No process
ever holds a lock on a shared database file, so any number of writer and
reader processes work on one store at once (docs/concurrency.md).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from . import sqlguard
from .errors import FormatError, ShardCorruptError
from .fsutil import atomic_path
from .ringrift import views as ringrift_views
from .schema import GAME_SCALAR_FIELDS, GAMES_SCHEMA, PLAYER_FIELDS, PLAYER_TYPE, VectorSpec, moves_schema
from .shard import GAMES_FILE, MOVES_FILE, ShardReader

__all__ = ["Catalog", "GameLocation", "segment_from_games", "SEGMENT_SCHEMA"]

SEGMENT_SCHEMA = pa.schema(
    [pa.field(n, t) for n, t, _ in GAME_SCALAR_FIELDS]
    + [
        pa.field("players", pa.list_(PLAYER_TYPE)),
        pa.field("metadata_json", pa.string()),
        pa.field("extra_json", pa.string()),
        pa.field("shard_id", pa.string()),
        pa.field("move_offset", pa.int64()),
        pa.field("num_moves", pa.int32()),
        pa.field("num_snapshots", pa.int32()),
        pa.field("row", pa.int32()),
    ]
)

_FULL_REFRESH_SECONDS = 1.0
_REFRESH_ATTEMPTS = 8


@dataclass(frozen=True)
class GameLocation:
    shard_id: str
    row: int
    move_offset: int
    num_moves: int


def segment_from_games(shard_id: str, games: pa.Table) -> pa.Table:
    """The catalog segment of one shard, derived from its ``games.arrow`` table."""
    n = games.num_rows
    cols = {f.name: games.column(f.name) for f in SEGMENT_SCHEMA if f.name in games.column_names}
    cols["shard_id"] = pa.array([shard_id] * n, pa.string())
    cols["num_moves"] = games.column("move_count")
    snaps = games.column("snapshots")
    cols["num_snapshots"] = pc.fill_null(pc.list_value_length(snaps), 0).cast(pa.int32())
    cols["row"] = pa.array(range(n), pa.int32())
    return pa.table([cols[f.name] for f in SEGMENT_SCHEMA], schema=SEGMENT_SCHEMA)


def _write_segment(path: Path, table: pa.Table) -> None:
    with atomic_path(path, fsync=False) as tmp:
        pq.write_table(table, tmp, compression="zstd")


class Catalog:
    """Game and shard index of one store, for one process (thread-safe)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.shards_dir = self.root / "shards"
        self.catalog_dir = self.root / "catalog"
        self._db = duckdb.connect(":memory:")
        self._lock = threading.RLock()
        self._local = threading.local()
        self._generation = 0
        self._readers: dict[str, ShardReader] = {}
        self._locations: dict[str, GameLocation] = {}
        self._indexed: dict[str, int] = {}  # shard id -> games indexed from it
        self._dir_state: tuple[int, int] | None = None
        self._last_full = 0.0
        self._datasets: tuple[ds.Dataset | None, ds.Dataset | None] = (None, None)
        self._datasets_stale = False  # set while a refresh has not rebuilt the datasets yet
        self._create_tables()

    # -- setup ------------------------------------------------------------------
    def _create_tables(self) -> None:
        db = self._db
        db.register("_segment_template", SEGMENT_SCHEMA.empty_table())
        db.execute("CREATE TABLE _games AS SELECT * FROM _segment_template")
        db.unregister("_segment_template")
        db.execute(
            "CREATE TABLE _shards (shard_id VARCHAR PRIMARY KEY, num_games INTEGER, num_moves BIGINT,"
            " bytes BIGINT, created_at VARCHAR)"
        )
        self._register(db)
        _create_views(db)
        # every query of the store runs here: no file, network or extension access (gamestore/sqlguard.py)
        sqlguard.lock_down(db)
        self._views = frozenset(
            r[0] for r in db.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        )

    @property
    def view_names(self) -> frozenset[str]:
        """The views a query may read (games, moves, players, policies, shards, the RingRift views, ...)."""
        return self._views

    def _register(self, con: duckdb.DuckDBPyConnection) -> None:
        moves_ds, games_ds = self._datasets
        if moves_ds is None:
            con.register("_moves_ds", moves_schema({}).empty_table())
            con.register("_games_ds", GAMES_SCHEMA.empty_table())
        else:
            con.register("_moves_ds", moves_ds)
            con.register("_games_ds", games_ds)

    # -- connections ------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection for the calling thread with every view current."""
        local = self._local
        con = getattr(local, "con", None)
        if con is None:
            con = self._db.cursor()
            local.con = con
            local.generation = -1
        if local.generation != self._generation:
            with self._lock:
                self._register(con)
                local.generation = self._generation
        return con

    def new_connection(self) -> duckdb.DuckDBPyConnection:
        """A fresh connection with every view current (for relations handed to callers)."""
        con = self._db.cursor()
        with self._lock:
            self._register(con)
        return con

    def trusted_connection(self) -> duckdb.DuckDBPyConnection:
        """A private full-access DuckDB database holding a snapshot of every view (``sql(allow_writes=True)``).

        Whatever runs there (COPY, ATTACH, DROP VIEW, SET) leaves this catalog untouched.
        """
        with self._lock:
            cur = self._db.cursor()
            games = cur.sql("SELECT * FROM _games").to_arrow_table()
            shards = cur.sql("SELECT * FROM _shards").to_arrow_table()
            cur.close()
            con = duckdb.connect(":memory:")
            for name, table in (("_games", games), ("_shards", shards)):
                con.register("_snapshot", table)
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM _snapshot")
                con.unregister("_snapshot")
            self._register(con)
        _create_views(con)
        return con

    # -- refresh ------------------------------------------------------------------
    def _dir_signature(self) -> tuple[int, int]:
        st = os.stat(self.shards_dir)
        return (st.st_mtime_ns, st.st_nlink)

    def refresh(self, *, force: bool = False) -> bool:
        """Pick up shards committed or removed since the last call; True if anything changed."""
        sig = self._dir_signature()
        now = time.monotonic()
        if not force and sig == self._dir_state and now - self._last_full < _FULL_REFRESH_SECONDS:
            return False
        with self._lock:
            for attempt in range(_REFRESH_ATTEMPTS):
                try:
                    return self._refresh_locked()
                except (FileNotFoundError, ShardCorruptError):
                    # a shard was removed (compact, prune) between the listing and its loading: list again
                    if attempt == _REFRESH_ATTEMPTS - 1:
                        raise
            return False  # pragma: no cover

    def _refresh_locked(self) -> bool:
        sig = self._dir_signature()
        on_disk = {n for n in os.listdir(self.shards_dir) if not n.startswith(".")}
        self._dir_state = sig
        self._last_full = time.monotonic()
        known = set(self._readers)
        added = sorted(on_disk - known)
        removed = known - on_disk
        if not added and not removed and not self._datasets_stale:
            return False
        self._datasets_stale = True
        if removed:
            self._drop_shards(removed)
        for shard_id in added:
            self._load_shard(shard_id)
        self._rebuild_datasets()
        self._datasets_stale = False
        return True

    def add_committed(self, shard_id: str) -> None:
        """Index a shard this process has just committed (no directory listing needed)."""
        with self._lock:
            if shard_id not in self._readers:
                self._load_shard(shard_id)
                try:
                    self._rebuild_datasets()
                except (FileNotFoundError, ShardCorruptError):
                    # another process removed a shard we knew of: pick that up with a listing
                    self._datasets_stale = True
                    self.refresh(force=True)

    def _load_shard(self, shard_id: str) -> None:
        path = self.shards_dir / shard_id
        try:
            reader = ShardReader(path)
        except (ShardCorruptError, FormatError):
            # a damaged shard never makes the rest unreadable; `verify` reports it
            self._readers[shard_id] = None  # type: ignore[assignment]
            return
        segment = self._segment(reader)
        # the first committed copy of a game id wins; later copies stay unindexed
        known = self._locations
        fresh = [gid not in known for gid in segment.column("game_id").to_pylist()]
        if not all(fresh):
            segment = segment.filter(pa.array(fresh))
        self._readers[shard_id] = reader
        self._index_segment(shard_id, segment)
        db = self._db
        m = reader.manifest
        size = sum(f["bytes"] for f in m["files"].values())
        db.execute(
            "INSERT OR REPLACE INTO _shards VALUES (?, ?, ?, ?, ?)",
            [shard_id, m["num_games"], m["num_moves"], size, m["created_at"]],
        )

    def _segment(self, reader: ShardReader) -> pa.Table:
        path = self.catalog_dir / f"{reader.shard_id}.parquet"
        try:
            table = pq.read_table(path)
            if table.schema.equals(SEGMENT_SCHEMA) and table.num_rows == reader.manifest["num_games"]:
                return table
        except (OSError, pa.ArrowException):
            pass
        table = segment_from_games(reader.shard_id, reader.games)
        try:
            _write_segment(path, table)
        except OSError:
            pass  # read-only media or disk full: the in-memory index is still right
        return table

    def _drop_shards(self, shard_ids: Iterable[str]) -> None:
        ids = list(shard_ids)
        for sid in ids:
            self._readers.pop(sid, None)
            self._indexed.pop(sid, None)
        self._locations = {g: loc for g, loc in self._locations.items() if loc.shard_id not in set(ids)}
        self._db.execute("DELETE FROM _games WHERE shard_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
        self._db.execute("DELETE FROM _shards WHERE shard_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
        # a game shadowed by a removed shard's copy may live in another shard
        for sid in sorted(self._readers):
            reader = self._readers[sid]
            if reader is None:
                continue
            missing = [g for g in reader.manifest["game_ids"] if g not in self._locations]
            if missing:
                self._reindex_games(reader, set(missing))

    def _reindex_games(self, reader: ShardReader, game_ids: set[str]) -> None:
        segment = self._segment(reader)
        mask = pc.is_in(segment.column("game_id"), pa.array(sorted(game_ids), pa.string()))
        self._index_segment(reader.shard_id, segment.filter(mask))

    def _index_segment(self, shard_id: str, segment: pa.Table) -> None:
        """Make the games of ``segment`` (rows of one shard) the indexed copies."""
        for gid, row, off, cnt in zip(
            segment.column("game_id").to_pylist(),
            segment.column("row").to_pylist(),
            segment.column("move_offset").to_pylist(),
            segment.column("num_moves").to_pylist(),
        ):
            self._locations[gid] = GameLocation(shard_id, row, off, cnt)
        self._indexed[shard_id] = self._indexed.get(shard_id, 0) + segment.num_rows
        self._db.register("_segment_in", segment)
        try:
            self._db.execute("INSERT INTO _games SELECT * FROM _segment_in")
        finally:
            self._db.unregister("_segment_in")

    def _rebuild_datasets(self) -> None:
        # shards whose every game has an earlier copy (a compaction's new shard before the old
        # ones are trashed) stay out of the SQL datasets, so no game is counted twice
        readers = [r for s, r in sorted(self._readers.items()) if r is not None and self._indexed.get(s)]
        if readers:
            vectors: dict[str, VectorSpec] = {}
            for r in readers:
                for name, spec in r.vectors.items():
                    vectors.setdefault(name, spec)
            mschema = moves_schema(vectors)
            moves_ds = ds.dataset([str(r.path / MOVES_FILE) for r in readers], schema=mschema, format="ipc")
            games_ds = ds.dataset([str(r.path / GAMES_FILE) for r in readers], format="ipc")
            self._datasets = (moves_ds, games_ds)
        else:
            self._datasets = (None, None)
        self._generation += 1
        self._register(self._db)

    # -- lookups --------------------------------------------------------------------
    def locate(self, game_id: str) -> GameLocation | None:
        return self._locations.get(game_id)

    def reader(self, shard_id: str) -> ShardReader:
        return self._readers[shard_id]

    def find_reader(self, shard_id: str) -> ShardReader | None:
        """The shard's reader, or None when it is gone or damaged."""
        return self._readers.get(shard_id)

    def shard_ids(self) -> list[str]:
        return sorted(s for s, r in self._readers.items() if r is not None)

    def damaged_shards(self) -> list[str]:
        return sorted(s for s, r in self._readers.items() if r is None)

    def readers(self) -> list[ShardReader]:
        return [self._readers[s] for s in self.shard_ids()]

    def __contains__(self, game_id: str) -> bool:
        return game_id in self._locations

    def __len__(self) -> int:
        return len(self._locations)

    def vectors(self) -> dict[str, VectorSpec]:
        out: dict[str, VectorSpec] = {}
        for r in self.readers():
            for name, spec in r.vectors.items():
                out.setdefault(name, spec)
        return out

    def close(self) -> None:
        with self._lock:
            self._readers.clear()
            self._indexed.clear()
            self._locations.clear()
            self._db.close()


def _create_views(db: duckdb.DuckDBPyConnection) -> None:
    """The views of a catalog database over its ``_games``/``_shards`` tables and registered datasets."""
    game_cols = ", ".join([n for n, _, _ in GAME_SCALAR_FIELDS] + list(ringrift_views.GAMES_EXTRA_COLUMNS))
    db.execute(
        f"CREATE VIEW games AS SELECT {game_cols}, players, metadata_json, extra_json,"
        " shard_id, move_offset, num_moves, num_snapshots FROM _games"
    )
    player_cols = ", ".join(f"p.{n} AS {n}" for n, _, _ in PLAYER_FIELDS)
    db.execute(
        f"CREATE VIEW players AS SELECT game_id, {player_cols}, p.extra_json AS extra_json"
        " FROM (SELECT game_id, unnest(players) AS p FROM _games)"
    )
    db.execute("CREATE VIEW shards AS SELECT * FROM _shards")
    db.execute("CREATE VIEW moves AS SELECT * FROM _moves_ds")
    db.execute("CREATE VIEW games_full AS SELECT * FROM _games_ds")
    db.execute(
        "CREATE VIEW policies AS SELECT game_id, move_number, e.key AS key, e.action AS action,"
        " coalesce(e.prob64, e.prob::DOUBLE) AS prob"
        " FROM (SELECT game_id, move_number, unnest(policy) AS e FROM _moves_ds)"
    )
    # the RingRift profile: GameReplayDB table and column names (docs/ringrift.md)
    ringrift_views.install_views(db)
