"""The catalog's data: segment rows, the visibility rule, immutable snapshots and the SQL views.

A :class:`Snapshot` is one consistent view of a store's catalog (docs/format.md
section 5): every game row of the indexed shards, the shard table, the
replaced shards and the indexed (visible) copy of every game.
"""
from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Callable

import duckdb
import numpy as np
import pyarrow as pa

from .arrays import list_lengths, numpy_array, rows_table, string_array
from .checkpoint import SHARDS_SCHEMA, read_parquet_bytes
from .profiles import Profile
from .schema import GAME_SCALAR_FIELDS, PLAYER_FIELDS, PLAYER_TYPE
from .storage import Storage
from .lazy import lazy_module

pc = lazy_module("pyarrow.compute")  # imported on first use (gamestore/lazy.py)
pq = lazy_module("pyarrow.parquet")  # writing a segment (reading one: checkpoint.read_parquet_bytes)

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow.dataset as ds
    import pyarrow.fs as pfs

__all__ = ["KEY_COLUMNS", "SEGMENT_SCHEMA", "segment_from_games", "Snapshot", "advance", "shard_row", "create_views", "read_segment", "write_segment", "segment_of",
           "view_dataset", "SHARD_FIELD"]

#: The column naming each row's shard in the ``games_full`` dataset of a snapshot with shadowed copies
#: (filled from each file's partition expression; the view never shows it).
SHARD_FIELD = "__gamestore_shard"

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


#: The columns of a game row that say where and how big its moves are, and which game it is: what opening a store
#: and a first statement over ``moves`` read of the catalog (Snapshot's ``load``, checkpoint.read_checkpoint).
KEY_COLUMNS = ("game_id", "shard_id", "move_offset", "num_moves", "row")


def segment_from_games(shard_id: str, games: pa.Table) -> pa.Table:
    """The catalog segment of one shard, derived from its ``games.arrow`` table."""
    n = games.num_rows
    cols = {f.name: games.column(f.name) for f in SEGMENT_SCHEMA if f.name in games.column_names}
    cols["shard_id"] = string_array([shard_id] * n)  # pa.array would import pandas (~0.2 s of CPU)
    cols["num_moves"] = games.column("move_count")
    snaps = games.column("snapshots")
    cols["num_snapshots"] = numpy_array(list_lengths(snaps), pa.int32())
    cols["row"] = numpy_array(np.arange(n), pa.int32())
    return pa.table([cols[f.name] for f in SEGMENT_SCHEMA], schema=SEGMENT_SCHEMA)


def shard_row(shard_id: str, manifest: dict) -> dict:
    """The shard's row of the ``shards`` table (its id is its directory name, the manifest's may be a copy's)."""
    return {
        "shard_id": shard_id,
        "num_games": manifest["num_games"],
        "num_moves": manifest["num_moves"],
        "bytes": sum(f["bytes"] for f in manifest["files"].values()),
        "created_at": manifest["created_at"],
        "vectors_json": json.dumps(manifest.get("vectors", {}), sort_keys=True),
        "replaces": _replaces(manifest),
    }


def _replaces(manifest: dict) -> list[str]:
    rep = manifest.get("replaces") or []
    return [str(s) for s in rep] if isinstance(rep, list) else []


#: Below this many game rows a Python set tells whether ids repeat faster than importing pyarrow.compute
#: (~25 ms of CPU, which a store's open otherwise never pays: gamestore/lazy.py) and counting with it.
_SET_ROWS = 250_000


def _id_hashes(ids: pa.ChunkedArray) -> np.ndarray | None:
    """The xxh3-64 of each id's bytes, in one compiled pass per chunk (checksum.int_ranges); None where that
    does not apply (nulls, another type, or no compiled hasher: its fallback is a Python call per id)."""
    from .checksum import _XXH3, int_ranges

    if not _XXH3 or ids.null_count or not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        return None
    width = "<i8" if pa.types.is_large_string(ids.type) else "<i4"
    out = []
    for chunk in ids.chunks:
        if not len(chunk):
            continue
        _, offsets_buf, data_buf = chunk.buffers()
        if offsets_buf is None or data_buf is None:
            return None
        offsets = np.frombuffer(offsets_buf, dtype=width)[chunk.offset:chunk.offset + len(chunk) + 1]
        out.append(int_ranges(memoryview(data_buf), offsets[:-1], offsets[1:]))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.uint64)


def _all_distinct(ids: pa.ChunkedArray) -> bool:
    if len(ids) < _SET_ROWS:
        # ids with different hashes differ: no Python string per id (20,000 ids: ~1 ms against 2.5-4.6 ms for a set of
        # them, a store's open); a hash seen twice (a game twice, or two ids colliding) is decided by the set
        hashes = _id_hashes(ids)
        if hashes is not None:
            hashes.sort()
            if not (hashes[1:] == hashes[:-1]).any():
                return True
        return len(set(ids.to_pylist())) == len(ids)
    return bool(pc.count_distinct(ids).as_py() == len(ids))


def _first_copies(rows: pa.Table, hidden: frozenset[str]) -> pa.Table:
    """The indexed copy of every game: not in a replaced shard, then the lowest shard id (first committed)."""
    if hidden:
        rows = rows.filter(pc.invert(pc.is_in(rows.column("shard_id"), pa.array(sorted(hidden), pa.string()))))
    if rows.num_rows == 0 or _all_distinct(rows.column("game_id")):
        return rows
    order = pc.sort_indices(rows, [("game_id", "ascending"), ("shard_id", "ascending")]).to_numpy()
    ids = rows.column("game_id").take(pa.array(order)).to_numpy(zero_copy_only=False)
    first = np.ones(len(ids), dtype=bool)
    first[1:] = ids[1:] != ids[:-1]
    return rows.take(pa.array(np.sort(order[first])))


def _shadowed_copies(rows: pa.Table, visible: pa.Table, hidden: frozenset[str]) -> dict[str, list[str]]:
    """Per shard holding indexed games, the ids of its other rows: copies of games indexed in another shard."""
    if hidden:
        rows = rows.filter(pc.invert(pc.is_in(rows.column("shard_id"), pa.array(sorted(hidden), pa.string()))))
    if rows.num_rows == visible.num_rows:
        return {}
    order = pc.sort_indices(rows, [("game_id", "ascending"), ("shard_id", "ascending")]).to_numpy()
    ids = rows.column("game_id").take(pa.array(order)).to_numpy(zero_copy_only=False)
    sids = rows.column("shard_id").take(pa.array(order)).to_numpy(zero_copy_only=False)
    first = np.ones(len(ids), dtype=bool)
    first[1:] = ids[1:] != ids[:-1]
    winner = sids[np.maximum.accumulate(np.where(first, np.arange(len(ids)), 0))]  # the indexed copy's shard
    with_games = set(pc.unique(visible.column("shard_id")).to_pylist())
    out: dict[str, list[str]] = {}
    # a copy in the winner's own shard (one shard holding an id twice) cannot be told apart by id: not filtered
    for i in np.flatnonzero(~first & (sids != winner)):
        if sids[i] in with_games:
            out.setdefault(str(sids[i]), []).append(str(ids[i]))
    return out


def view_dataset(files: dict[str, str], schema: pa.Schema, shadowed: dict[str, list[str]], *,
                 filesystem: "pfs.FileSystem") -> "ds.Dataset":
    """One Arrow dataset over the ``files`` (shard id -> path on ``filesystem``) of the shards holding indexed games.

    Without shadowed copies it is the plain union of the files.  Otherwise
    each file is a fragment whose partition expression names its shard
    (column :data:`SHARD_FIELD`), and the dataset's filter drops the rows of
    ``shadowed[shard]`` in that shard only, so that every scan (whatever
    DuckDB pushes down) sees each game once (docs/format.md, "Visibility").
    """
    import pyarrow.dataset as ds

    if not shadowed:
        return ds.dataset(list(files.values()), schema=schema, format="ipc", filesystem=filesystem)
    fmt = ds.IpcFileFormat()
    shard = pc.field(SHARD_FIELD)
    fragments = [fmt.make_fragment(path, filesystem, partition_expression=shard == sid) for sid, path in files.items()]
    full = ds.FileSystemDataset(fragments, schema.append(pa.field(SHARD_FIELD, pa.string())), fmt, filesystem)
    keep = None
    for sid, ids in sorted(shadowed.items()):
        cond = (shard != sid) | ~pc.field("game_id").isin(pa.array(ids, pa.string()))
        keep = cond if keep is None else keep & cond
    return full.filter(keep)


def _compact_chunks(table: pa.Table) -> pa.Table:
    """``table`` with its chunks merged once appends have made many (scans of many tiny chunks are slow)."""
    return table.combine_chunks() if table.num_columns and table.column(0).num_chunks > 32 else table


#: Loading a snapshot's deferred game columns: one thread at a time (see Snapshot.rows).
_LOAD_LOCK = threading.Lock()


class Snapshot:
    """One consistent view of the catalog; never changed once published (except ``_locations`` growing, and the
    deferred columns of ``rows`` read once: see ``load``)."""

    __slots__ = ("_rows", "_visible", "_keys", "_load", "shards", "shard_ids", "hidden", "damaged", "generation",
                 "_locations", "_datasets", "covered", "_shadowed", "games_source")

    def __init__(self, rows: pa.Table, shards: pa.Table, damaged: frozenset[str], generation: int,
                 covered: int, visible: pa.Table | None = None, hidden: frozenset[str] | None = None,
                 shard_ids: frozenset[str] | None = None, *, load: Callable[[], pa.Table] | None = None) -> None:
        """``load``: ``rows`` holds only some columns (at least :data:`KEY_COLUMNS`) of every game row, and
        ``load()`` returns all of them (the same rows in the same order), called when ``rows`` or ``visible`` is
        first read.  Only where every row is visible (no replaced shard, no game id twice: the usual store);
        otherwise it is called at once."""
        self.shards = _compact_chunks(shards)  # SHARDS_SCHEMA, one row per indexed shard
        if shard_ids is None:
            shard_ids = frozenset(shards.column("shard_id").to_pylist())
        self.shard_ids = shard_ids
        if hidden is None:  # one row per shard: Python lists, no pyarrow.compute (gamestore/lazy.py)
            replaced = {s for rep in shards.column("replaces").to_pylist() for s in rep or ()}
            hidden = frozenset(replaced & shard_ids)
        self.hidden = hidden
        self._load: Callable[[], pa.Table] | None = None
        self._keys: pa.Table | None = None
        self._rows: pa.Table | None = None
        self._visible: pa.Table | None = None  # None with _load set: every row (rows)
        if load is not None and visible is None and not hidden and (
                rows.num_rows == 0 or _all_distinct(rows.column("game_id"))):
            self._keys = _compact_chunks(rows)
            self._load = load
        else:
            self._rows = _compact_chunks(load() if load is not None else rows)  # every game row (all copies)
            self._visible = _first_copies(self._rows, hidden) if visible is None else _compact_chunks(visible)
        self.damaged = damaged
        self.generation = generation
        self.covered = covered  # shards that came from the checkpoint (the rest is the tail)
        self._locations: dict[str, tuple[str, int, int, int]] | None = None
        self._datasets: tuple[ds.Dataset, ds.Dataset] | None = None  # built on first use
        self._shadowed: dict[str, list[str]] | None = None
        #: what the catalog registers as ``_games`` while the columns are deferred (made once: catalog.py)
        self.games_source: object = None

    @property
    def rows(self) -> pa.Table:
        """Every game row of every indexed shard (all copies), all columns (``SEGMENT_SCHEMA``)."""
        got = self._rows
        if got is None:
            with _LOAD_LOCK:
                if self._rows is None:
                    assert self._load is not None and self._keys is not None
                    full = _compact_chunks(self._load())
                    if full.num_rows != self._keys.num_rows:
                        raise ValueError("deferred catalog columns have other rows")
                    self._rows = full
                    self._load = None
                got = self._rows
        return got

    @property
    def visible(self) -> pa.Table:
        """The indexed (visible) copy of every game, all columns."""
        v = self._visible
        return self.rows if v is None else v

    @property
    def loaded(self) -> bool:
        """Whether every column of ``rows`` is in memory (False: see ``load``)."""
        return self._rows is not None

    @property
    def visible_keys(self) -> pa.Table:
        """``visible`` with at least :data:`KEY_COLUMNS` (where and how big its moves are), without reading
        deferred columns."""
        if self._rows is None:
            assert self._keys is not None
            return self._keys  # deferred only when every row is visible
        return self.visible

    @property
    def all_visible(self) -> bool:
        """Whether ``visible`` is ``rows`` (no copy hidden)."""
        return self._visible is None or self._visible is self._rows

    @property
    def shadowed(self) -> dict[str, list[str]]:
        """Per shard holding indexed games, the ids whose indexed copy is in another shard (usually empty)."""
        if self._shadowed is None:
            self._shadowed = {} if self.all_visible and not self.hidden else _shadowed_copies(
                self.rows, self.visible, self.hidden)
        return self._shadowed

    @property
    def locations(self) -> dict[str, tuple[str, int, int, int]]:
        locs = self._locations
        if locs is None:
            v = self.visible_keys
            locs = dict(zip(v.column("game_id").to_pylist(), zip(
                v.column("shard_id").to_pylist(), v.column("row").to_pylist(),
                v.column("move_offset").to_pylist(), v.column("num_moves").to_pylist())))
            self._locations = locs
        return locs


def advance(snap: Snapshot, segments: list[pa.Table], shard_rows: list[dict], removed: set[str],
            damaged: set[str]) -> Snapshot:
    """The snapshot after ``snap``: ``segments`` (with their ``shard_rows``) added, ``removed`` shards dropped,
    ``damaged`` ones recorded (a removed damaged shard is forgotten)."""
    new_rows = pa.concat_tables(segments) if segments else SEGMENT_SCHEMA.empty_table()
    shards = rows_table(shard_rows, SHARDS_SCHEMA) if shard_rows else None
    dead = removed & snap.damaged
    removed = removed - dead
    all_damaged = frozenset((snap.damaged - dead) | damaged)
    if not removed and not any(r["replaces"] for r in shard_rows):
        new = _appended(snap, new_rows, shards, all_damaged)
        if new is not None:
            return new
    rows, table = snap.rows, snap.shards
    covered = snap.covered
    if removed:
        gone = pa.array(sorted(removed), pa.string())
        rows = rows.filter(pc.invert(pc.is_in(rows.column("shard_id"), gone)))
        keep = pc.invert(pc.is_in(table.column("shard_id"), gone))
        covered -= len(removed)  # approximate: only decides when the next checkpoint is due
        table = table.filter(keep)
    if segments:
        rows = pa.concat_tables([rows, new_rows])
    if shards is not None:
        table = pa.concat_tables([table, shards])
    return Snapshot(rows, table, all_damaged, snap.generation + 1, max(covered, 0))


def _appended(snap: Snapshot, new_rows: pa.Table, shards: pa.Table | None, damaged: frozenset[str]) -> Snapshot | None:
    """The common case, a writer's new shard of new games: the next snapshot without recomputation.

    None when that does not apply (the location index was never built, or a game id is already known).
    """
    locs = snap._locations
    if locs is None:
        return None
    ids = new_rows.column("game_id").to_pylist()
    if any(g in locs for g in ids) or len(set(ids)) != len(ids):
        return None
    table = snap.shards
    new_ids = snap.shard_ids
    if shards is not None:
        table = pa.concat_tables([table, shards])
        new_ids = new_ids | set(shards.column("shard_id").to_pylist())
    new = Snapshot(pa.concat_tables([snap.rows, new_rows]), table, damaged, snap.generation + 1, snap.covered,
                   visible=pa.concat_tables([snap.visible, new_rows]), hidden=snap.hidden, shard_ids=new_ids)
    cols = [new_rows.column(c).to_pylist() for c in ("shard_id", "row", "move_offset", "num_moves")]
    locs.update(zip(ids, zip(*cols)))  # new keys only: what an older snapshot finds there exists on disk
    new._locations = locs
    return new


def create_views(db: duckdb.DuckDBPyConnection, profile: Profile | None) -> None:
    """The views of a catalog database over its ``_games``/``_shards`` tables and registered datasets,
    then those of ``profile``."""
    extra = list(profile.games_columns) if profile is not None else []
    game_cols = ", ".join([n for n, _, _ in GAME_SCALAR_FIELDS] + extra)
    # _game_rows: the games view plus each game's games.arrow row (the selection of gamestore/readpath.py)
    db.execute(
        f"CREATE VIEW _game_rows AS SELECT {game_cols}, players, metadata_json, extra_json,"
        ' shard_id, move_offset, num_moves, num_snapshots, "row" FROM _games'
    )
    db.execute('CREATE VIEW games AS SELECT * EXCLUDE ("row") FROM _game_rows')
    player_cols = ", ".join(f"p.{n} AS {n}" for n, _, _ in PLAYER_FIELDS)
    db.execute(
        f"CREATE VIEW players AS SELECT game_id, {player_cols}, p.extra_json AS extra_json"
        " FROM (SELECT game_id, unnest(players) AS p FROM _games)"
    )
    db.execute("CREATE VIEW shards AS SELECT shard_id, num_games, num_moves, bytes, created_at FROM _shards")
    db.execute("CREATE VIEW moves AS SELECT * FROM _moves_ds")
    from .schema import GAMES_SCHEMA
    from .sqlscan import KEEPS_SCHEMA

    if KEEPS_SCHEMA:  # _games_ds is registered as a source declaring GAMES_SCHEMA (catalog.Catalog._datasets)
        # its columns by name: a COLUMNS lambda cost ~4 ms of a fresh process's open (DuckDB's first lambda)
        every = ", ".join('"' + n.replace('"', '""') + '"' for n in GAMES_SCHEMA.names)
    else:  # the dataset itself: all columns but the shard marker (when present)
        every = f"COLUMNS(lambda c: c <> '{SHARD_FIELD}')"
    db.execute(f"CREATE VIEW games_full AS SELECT {every} FROM _games_ds")
    db.execute(
        "CREATE VIEW policies AS SELECT game_id, move_number, e.key AS key, e.action AS action,"
        " coalesce(e.prob64, e.prob::DOUBLE) AS prob"
        " FROM (SELECT game_id, move_number, unnest(policy) AS e FROM _moves_ds)"
    )
    if profile is not None and profile.install_views is not None:
        profile.install_views(db)


def write_segment(storage: Storage, rel: str, table: pa.Table) -> None:
    """Replace catalog segment ``rel`` (zstd Parquet with page checksums)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_page_checksum=True)
    storage.write_bytes(rel, sink.getvalue(), fsync=False)  # derived data: rebuilt when lost


def read_segment(storage: Storage, rel: str) -> pa.Table:
    """Catalog segment ``rel``; page checksums: a damaged segment raises and is rebuilt by the caller."""
    # page checksums: a damaged segment is rebuilt from its shard, never trusted; no pyarrow.dataset (read_table
    # imports it, and pandas: ~0.3 s of CPU) nor pyarrow.parquet (pyarrow.fs: ~10 ms) imported
    return read_parquet_bytes(storage.read_bytes(rel), page_checksums=True)


def segment_of(storage: Storage, shard_id: str, manifest: dict, *, games: pa.Table | None = None) -> pa.Table:
    """The catalog segment of a committed shard: its stored one when it matches the manifest, else rebuilt
    from ``games.arrow`` (and stored again, best effort).  ``games``: the shard's games table as its writer
    just wrote it (a new shard has no segment yet: it is built from that table, nothing is read back)."""
    from .shard import ShardReader

    rel = f"catalog/{shard_id}.parquet"
    if games is None or games.num_rows != manifest["num_games"]:
        try:
            table = read_segment(storage, rel)
            if (table.schema.equals(SEGMENT_SCHEMA) and table.num_rows == manifest["num_games"]
                    and table.column("game_id").to_pylist() == manifest["game_ids"]):
                return table
        except FileNotFoundError:
            pass
        except pa.ArrowException:
            pass  # damaged: rebuilt below
        except OSError:
            if not storage.local:
                raise  # a network failure is not a damaged segment
        games = ShardReader(storage, shard_id, manifest=manifest).games
    table = segment_from_games(shard_id, games)
    try:
        write_segment(storage, rel, table)
    except OSError:
        pass  # read-only media, credentials or disk full: the in-memory index is still right
    return table
