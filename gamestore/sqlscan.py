"""The ``moves`` view's source: DuckDB scans the shards through it, asking only for what a statement needs.

DuckDB hands a registered source the columns a statement reads and the
filters it may apply (projection and filter pushdown, the Arrow C stream
source protocol of ``duckdb._sources``).  :class:`MovesSource` answers with a
stream of the indexed copies' moves (docs/format.md section 5):

* only the asked-for columns' buffers are decompressed, one zstd context per
  thread (:mod:`gamestore.ipc_batch`), the shards two at a time in a thread
  pool (zstd releases the GIL);
* a filter on ``game_id`` (``=``, ``IN``, ``OR`` of those) is taken over and
  answered from the catalog: only the moves batches holding those games are
  read, and only their rows are returned;
* every batch read is checked against its checksum first (format 2, once per
  open shard, :mod:`gamestore.checksum`); damage stops the statement with a
  :class:`ShardCorruptError` naming shard and file (a :class:`QueryError`
  through ``store.sql``).

Without ``duckdb._sources`` (another DuckDB build) the source is still an
Arrow C stream of every column (no pushdown).
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import readpath
from .errors import ShardCorruptError
from .ipc_batch import Damaged, Unsupported, build
from .schema import conform
from .shard import MOVES_FILE, LRUCache

if TYPE_CHECKING:  # pragma: no cover
    from .catalog import Catalog
    from .catalog_snapshot import Snapshot
    from .shard import ShardReader

try:  # the source protocol of DuckDB's Arrow scan (duckdb >= 2.0)
    from duckdb._sources import ArrowScanSource as _Base
    from duckdb._sources.nodes import Binary, Col, In, Lit
except ImportError:  # pragma: no cover - another DuckDB build: a plain Arrow stream
    _Base = object  # type: ignore[assignment,misc]
    Binary = Col = In = Lit = ()  # type: ignore[assignment,misc]

__all__ = ["MovesSource", "read_columns"]

#: Shards decoded ahead of the one DuckDB is reading.
PREFETCH = 2
#: Decoded columns of whole shards, kept for the next statement (bytes; ``COLUMN_CACHE.max_size = 0``: off).
#: A moves batch is ~1,000 rows and each column of it one zstd frame: decompressing those small frames,
#: not reading them, is most of a scan's cost (docs: benchmarks/README.md, bench_sql.py).
COLUMN_CACHE = LRUCache(256 << 20)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=PREFETCH, thread_name_prefix="gamestore-sql")
        return _pool


# ---------------------------------------------------------------------------
# Decoding the asked-for columns of some batches of one shard
# ---------------------------------------------------------------------------
def _spans(t: pa.DataType) -> tuple[int, int, int]:
    """(field nodes, body buffers, dictionaries) one column of type ``t`` takes in a record batch message."""
    if pa.types.is_dictionary(t):
        return 1, 2, 1
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_struct(t):
        n, b, d = 1, 1 if pa.types.is_fixed_size_list(t) or pa.types.is_struct(t) else 2, 0
        for child in ([t.value_type] if not pa.types.is_struct(t) else [f.type for f in t]):
            cn, cb, cd = _spans(child)
            n, b, d = n + cn, b + cb, d + cd
        return n, b, d
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return 1, 3, 0
    return 1, 2, 0


def _starts(schema: pa.Schema) -> list[tuple[int, int, int]]:
    """Per column of ``schema``: its first field node, body buffer and dictionary."""
    out, n, b, d = [], 0, 0, 0
    for f in schema:
        out.append((n, b, d))
        dn, db, dd = _spans(f.type)
        n, b, d = n + dn, b + db, d + dd
    return out


def _flat(t: pa.DataType) -> bool:
    """Whether batches of a column of type ``t`` concatenate by joining their (only) data buffers."""
    if pa.types.is_dictionary(t):
        return pa.types.is_integer(t.index_type)
    return (pa.types.is_integer(t) or pa.types.is_floating(t)) and t.bit_width >= 8


def read_columns(reader: "ShardReader", names: Sequence[str], batches: Sequence[int]) -> pa.Table:
    """Columns ``names`` (all in the shard) of moves batches ``batches`` of one shard, concatenated.

    Every batch is checked against its checksum before a byte of it is
    decompressed; format-1 shards (no checksums) go through Arrow's
    validating reader.  Damage is a :class:`ShardCorruptError`.
    """
    if not batches:
        return pa.schema([reader.moves_schema.field(n) for n in names]).empty_table()
    fast = reader.fast_reader() if reader.verifier(MOVES_FILE) is not None else None
    if fast is None:
        return _read_slow(reader, names, batches)
    for i in batches:
        reader._checked(MOVES_FILE, i)
    try:
        return _read_fast(reader, fast, names, batches)
    except Unsupported:
        return _read_slow(reader, names, batches)
    except Damaged as exc:
        raise ShardCorruptError(f"{MOVES_FILE}: {exc}", shard_id=reader.shard_id) from exc
    except (ValueError, IndexError, pa.ArrowException) as exc:
        raise ShardCorruptError(f"{MOVES_FILE}: {type(exc).__name__}: {exc}", shard_id=reader.shard_id) from exc


def _read_slow(reader: "ShardReader", names: Sequence[str], batches: Sequence[int]) -> pa.Table:
    got = [b for _, b in reader.iter_batches(list(names), only=batches)]
    schema = pa.schema([reader.moves_schema.field(n) for n in names])
    return pa.Table.from_batches(got, schema=schema)


def _read_fast(reader: "ShardReader", fast: Any, names: Sequence[str], batches: Sequence[int]) -> pa.Table:
    from .ipc_batch import _ZstdError

    schema = reader.moves_schema
    starts = _starts(schema)
    layouts = [fast.layout(i) for i in batches]
    rows = reader.manifest["batch_rows"]
    for i, lay in zip(batches, layouts):
        if lay[0] != rows[i]:
            raise ShardCorruptError(f"{MOVES_FILE} batch {i} has {lay[0]} rows, the manifest says {rows[i]}",
                                    shard_id=reader.shard_id)
    total = sum(lay[0] for lay in layouts)
    columns: list[pa.Array | pa.ChunkedArray] = []
    try:
        for name in names:
            k = schema.get_field_index(name)
            t = schema.field(k).type
            node, buf, _ = starts[k]
            _, n_bufs, n_dicts = _spans(t)
            if n_dicts:
                reader._checked(MOVES_FILE, 0)
            dicts = fast.column_dictionaries(k) if n_dicts else []
            flat = _flat(t) and all(lay[1][node][1] == 0 and (lay[0] == 0 or lay[2][buf + 1][1] > 0) for lay in layouts)
            if flat:
                width = (t.index_type if pa.types.is_dictionary(t) else t).bit_width // 8
                parts = [memoryview(fast.buffer(lay[3], *lay[2][buf + 1]))[:lay[0] * width] for lay in layouts if lay[0]]
                data = b"".join(parts)
                if len(data) != total * width:  # Arrow pads buffers to 8 bytes: each part was cut to its rows
                    raise Damaged(f"column {name}: data shorter than its rows")
                if pa.types.is_dictionary(t):
                    arr = pa.DictionaryArray.from_buffers(t, total, [None, pa.py_buffer(data)], dicts[0])
                else:
                    arr = pa.Array.from_buffers(t, total, [None, pa.py_buffer(data)])
                arr.validate()
                columns.append(arr)
                continue
            chunks = []
            for lay in layouts:
                bufs = fast.buffers(lay[2], lay[3], range(buf, buf + n_bufs))
                arr = build(t, lay[1], bufs, dicts, [node, buf, 0])
                arr.validate()
                chunks.append(arr)
            columns.append(pa.chunked_array(chunks, type=t))
    except (_ZstdError, IndexError) as exc:
        raise Damaged(f"{type(exc).__name__}: {exc}") from exc
    return pa.table(columns, schema=pa.schema([schema.field(n) for n in names]))


def _whole_shard(reader: "ShardReader", names: list[str], batches: list[int]) -> pa.Table:
    """Columns ``names`` of every row of one shard, through :data:`COLUMN_CACHE`."""
    reader.moves_reader  # sets the file's cache key
    key = reader._moves_key
    got = {n: COLUMN_CACHE.get((key, n)) for n in names}
    missing = [n for n in names if got[n] is None]
    if missing:
        read = read_columns(reader, missing, batches)
        for n, col in zip(missing, read.columns):
            got[n] = col
            COLUMN_CACHE.put((key, n), col, col.nbytes)
    schema = pa.schema([reader.moves_schema.field(n) for n in names])
    return pa.table([got[n] for n in names], schema=schema)


# ---------------------------------------------------------------------------
# Which rows: the indexed copies, and the pushed-down game_id filter
# ---------------------------------------------------------------------------
def _game_ids(p: Any) -> set[str] | None:
    """The game ids a predicate keeps when it only compares ``game_id`` with constants (None otherwise)."""
    if isinstance(p, Binary) and p.op == "=" and isinstance(p.left, Col) and isinstance(p.right, Lit):
        if p.left.parts == ("game_id",) and isinstance(p.right.value, str):
            return {p.right.value}
        return None
    if isinstance(p, Binary) and p.op.upper() == "OR":
        a, b = _game_ids(p.left), _game_ids(p.right)
        return None if a is None or b is None else a | b
    if isinstance(p, Binary) and p.op.upper() == "AND":
        a, b = _game_ids(p.left), _game_ids(p.right)
        if a is None or b is None:
            return None  # the other side may drop rows of these games: leave the filter to DuckDB
        return a & b
    if isinstance(p, In) and isinstance(p.operand, Col) and p.operand.parts == ("game_id",):
        values = [getattr(v, "value", None) for v in p.values]
        return {v for v in values if isinstance(v, str)} if all(isinstance(v, str) for v in values) else None
    return None


def _by_shard(games: pa.Table) -> pa.Table:
    """The locating columns of catalog rows, ordered by shard and move offset (as a Selection needs: rows are
    in commit order, and a shard committed later may have a lower id, e.g. a compaction's output)."""
    cols = games.select(["shard_id", "row", "move_offset", "num_moves"])
    return cols.sort_by([("shard_id", "ascending"), ("move_offset", "ascending")])


class MovesSource(_Base):
    """The moves of one catalog snapshot's indexed games, for DuckDB (see the module docstring)."""

    schema_is_stable = True

    def __init__(self, catalog: "Catalog", snap: "Snapshot", schema: pa.Schema) -> None:
        self.obj = None
        self._catalog = catalog
        self._snap = snap
        self._schema = schema
        self._plan: list[tuple[str, "readpath.ShardPick | None"]] | None = None
        self._rows: int | None = None
        self._lock = threading.Lock()

    # -- DuckDB's side ------------------------------------------------------------
    def __arrow_c_schema__(self) -> object:
        return self._schema.__arrow_c_schema__()

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self.reader(None, None).__arrow_c_stream__(requested_schema)

    def rows(self) -> int | None:
        if self._rows is None:
            v = self._snap.visible
            self._rows = int(pc.sum(v.column("num_moves")).as_py() or 0) if v.num_rows else 0
        return self._rows

    def accepts(self, predicate: Any) -> bool:
        return _game_ids(predicate) is not None

    def stream(self, columns: Sequence[int] | None, filters: Sequence[Any]) -> tuple[object, bool]:
        ids: set[str] | None = None
        for f in filters:
            got = _game_ids(f)
            assert got is not None  # only accepted predicates arrive
            ids = got if ids is None else ids & got
        names = None if columns is None else [self._schema.names[i] for i in columns]
        return self.reader(names, ids).__arrow_c_stream__(), True

    # -- the scan -------------------------------------------------------------------
    def reader(self, names: list[str] | None, game_ids: set[str] | None) -> pa.RecordBatchReader:
        """The moves (columns ``names``, None: all) of the indexed games (or of ``game_ids`` among them)."""
        schema = self._schema if names is None else pa.schema([self._schema.field(n) for n in names])
        plan = self._full_plan() if game_ids is None else self._id_plan(game_ids)
        return pa.RecordBatchReader.from_batches(schema, self._batches(plan, schema))

    def _full_plan(self) -> list[tuple[str, "readpath.ShardPick | None"]]:
        with self._lock:
            if self._plan is None:
                v = self._snap.visible
                sel = readpath.selection_from_table(_by_shard(v))
                plan: list[tuple[str, readpath.ShardPick | None]] = []
                shards = dict(zip(self._snap.shards.column("shard_id").to_pylist(),
                                  self._snap.shards.column("num_games").to_pylist()))
                for pick in sel.picks():
                    whole = shards.get(pick.shard_id) == pick.num_games
                    plan.append((pick.shard_id, None if whole else pick))
                self._plan = plan
            return self._plan

    def _id_plan(self, game_ids: set[str]) -> list[tuple[str, "readpath.ShardPick | None"]]:
        v = self._snap.visible
        if not game_ids or not v.num_rows:
            return []
        mask = pc.is_in(v.column("game_id"), pa.array(sorted(game_ids), pa.string()))
        return [(p.shard_id, p) for p in readpath.selection_from_table(_by_shard(v.filter(mask))).picks()]

    def _batches(self, plan: list[tuple[str, "readpath.ShardPick | None"]], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        pool = _executor()
        pending: list[Future] = []
        it = iter(plan)
        for step in it:
            pending.append(pool.submit(self._shard, step, schema))
            if len(pending) >= PREFETCH:
                break
        try:
            while pending:
                table = pending.pop(0).result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(self._shard, nxt, schema))
                yield from table.to_batches()
        finally:
            for f in pending:
                f.cancel()

    def _shard(self, step: tuple[str, "readpath.ShardPick | None"], schema: pa.Schema) -> pa.Table:
        shard_id, pick = step
        reader = self._catalog.find_reader(shard_id)
        if reader is None:
            why = self._catalog.damage().get(shard_id)
            raise ShardCorruptError(f"{why} (quarantined; the next statement runs without it)" if why else
                                    "shard removed while being read; run the statement again", shard_id=shard_id)
        with readpath.watched(reader):  # damage found here quarantines the shard (gamestore/quarantine.py)
            present = [n for n in schema.names if n in reader.moves_schema.names]
            rows = reader.manifest["batch_rows"]
            if pick is None:
                batches = list(range(len(rows)))
                keep = None
            else:
                mask = pick.move_mask(sum(rows))
                starts = reader.batch_starts
                batches = [i for i, (s, n) in enumerate(zip(starts, rows)) if mask[s:s + n].any()]
                keep = np.concatenate([mask[starts[i]:starts[i] + rows[i]] for i in batches]) if batches else None
            if pick is None:
                table = _whole_shard(reader, present, batches)
            else:
                table = read_columns(reader, present, batches) if batches else pa.schema(
                    [reader.moves_schema.field(n) for n in present]).empty_table()
        if keep is not None and not keep.all():
            table = table.filter(pa.array(keep))
        return conform(table, schema)
