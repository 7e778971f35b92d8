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
* the bytes read are checked against their checksums first, once per open
  shard (:mod:`gamestore.checksum`; format 3: each batch's message and the
  columns read, format 2: whole batches); damage stops the statement with a
  :class:`ShardCorruptError` naming shard and file (a :class:`QueryError`
  through ``store.sql``).

Without ``duckdb._sources`` (another DuckDB build) the source is still an
Arrow C stream of every column (no pushdown).
"""
from __future__ import annotations

import os
import queue
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np
import pyarrow as pa

from . import gil, readpath, zstdlib
from .errors import ShardCorruptError
from .ipc_batch import Damaged, Unsupported, build, field_spans, field_starts, per_schema
from .arrays import bool_array, empty_table, int_values, numpy_array, string_array
from .schema import conform
from .shard import MOVES_FILE, LRUCache

if TYPE_CHECKING:  # pragma: no cover
    from .catalog import Catalog
    from .catalog_snapshot import Snapshot
    from .shard import ShardReader

try:  # the source protocol of DuckDB's Arrow scan (duckdb >= 2.0)
    from duckdb._sources import ArrowScanSource as _Base
    from duckdb._sources import adapt as _adapt
    from duckdb._sources.nodes import Binary, Col, In, Lit
except ImportError:  # pragma: no cover - another DuckDB build: a plain Arrow stream
    _Base = object  # type: ignore[assignment,misc]
    _adapt = None  # type: ignore[assignment]
    Binary = Col = In = Lit = ()  # type: ignore[assignment,misc]

__all__ = ["MovesSource", "built_on_use", "read_columns", "KEEPS_SCHEMA"]

#: Whether a registered :func:`built_on_use` source shows DuckDB exactly the schema it was given (DuckDB's source
#: protocol); without it the built object itself is registered, with whatever columns it has.
KEEPS_SCHEMA = _adapt is not None

#: Shards decoded ahead of the one DuckDB is reading, each in a thread of its own (zstd runs without the GIL).
PREFETCH = max(2, min(8, os.cpu_count() or 2))
#: Decoded columns of whole shards, kept for the next statement (bytes; ``COLUMN_CACHE.max_size = 0``: off).
#: A moves batch is ~1,000 rows and each column of it one zstd frame: decompressing those small frames,
#: not reading them, is most of a scan's cost (docs: benchmarks/README.md, bench_sql.py).
COLUMN_CACHE = LRUCache(256 << 20)
#: Most runs of rows of one shard a statement on some games takes as slices (see _rows).
_SLICED_RUNS = 64
_pool: "_Pool | None" = None
_pool_lock = threading.Lock()
_local = threading.local()  # each thread's zstd context (_joined_at)


class _Job:
    """One call handed to :class:`_Pool`: its result (or exception) once ``done`` is set."""

    __slots__ = ("fn", "args", "done", "value", "error", "cancelled")

    def __init__(self, fn: Callable[..., Any], args: tuple) -> None:
        self.fn, self.args = fn, args
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.cancelled = False

    def run(self) -> None:
        if not self.cancelled:
            try:
                self.value = self.fn(*self.args)
            except BaseException as exc:  # handed to the caller of result()
                self.error = exc
        self.fn = self.args = None  # type: ignore[assignment]
        self.done.set()

    def result(self) -> Any:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value

    def cancel(self) -> None:
        """Skip the call if no thread has started it (what ``Future.cancel`` does for a pending future)."""
        self.cancelled = True


class _Pool:
    """The scan's threads: ``size`` daemon threads taking :class:`_Job` s from one queue.

    What ``concurrent.futures.ThreadPoolExecutor`` gave the scan (submit, result, cancel), without importing
    ``concurrent.futures`` and the ``logging`` it loads (3-5 ms of every process's first statement)."""

    def __init__(self, size: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{k}", daemon=True) for k in range(size)]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        while True:
            self._jobs.get().run()

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Job:
        job = _Job(fn, args)
        self._jobs.put(job)
        return job


def _executor() -> _Pool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = _Pool(PREFETCH, "gamestore-sql")
        return _pool


def _forget_pool() -> None:
    """In a forked child the parent's threads do not exist: the next scan starts threads of its own."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


# ---------------------------------------------------------------------------
# Decoding the asked-for columns of some batches of one shard
# ---------------------------------------------------------------------------
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
        return empty_table(pa.schema([reader.moves_schema.field(n) for n in names]))
    verifier = reader.verifier(MOVES_FILE)
    fast = reader.fast_reader() if verifier is not None else None
    if fast is None:
        return _read_slow(reader, names, batches)
    if verifier is not None and verifier.has_columns:
        verifier.check_messages(batches)  # format 3: the columns read are checked in _read_fast
    else:
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


def _joined_at(fast: Any, pos: np.ndarray, size: np.ndarray, take: np.ndarray, name: str) -> Any:
    """The body buffers at file positions ``pos`` with sizes ``size`` (contiguous int64 arrays, one per batch)
    decompressed and cut to ``take`` bytes each (Arrow pads buffers to 8 bytes), back to back: compiled, each
    frame straight to its place without the GIL by the calling thread's zstd context (``_ext/_scan.pyx``), else
    through zstandard and a join (the reference)."""
    if _scan is not None:
        dctx = getattr(_local, "dctx", None)
        if dctx is None:
            dctx = _local.dctx = _scan.Decompressor()
        # into a buffer of an Arrow pool: a bytearray of a shard's column (~65 KB-260 KB) was a fresh mapping whose
        # every page faulted on first touch (a first scan of 41 shards: ~4,000 faults, ~10-20 ms of CPU)
        out, length = _scan.joined(fast.view, pos, size, take, dctx, _allocate)
        if out is None:
            raise Damaged(f"column {name}: body buffer {length} is damaged or shorter than its rows")
        return out.slice(0, length)
    got = fast.decompress(np.zeros(len(pos), dtype=np.int64), np.stack([pos, size], axis=1))
    return b"".join([memoryview(g)[:n] for g, n in zip(got, take.tolist()) if n])


def _allocate(size: int) -> pa.Buffer:
    """A scan column's buffer, from the system allocator's Arrow pool (:data:`_SCAN_POOL`).

    Not from pyarrow's default pool: its mimalloc takes memory in transparent huge pages, and a fresh process's
    first group-by (41 shards, 26 MB of columns) faulted in 16 of them (each 2 MB zeroed, ~25 ms of the pool
    threads' CPU in perf); from the system pool none (4 KB faults instead: ~9,950 -> ~16,200 in the statement).
    Statement medians, wall / CPU, 10 alternating fresh processes at real-time priority: 159.8 / 269.6 ->
    152.9 / 265.8 ms (benchmarks/README.md); a repeated (uncached) scan takes the same from either pool."""
    return pa.allocate_buffer(size, memory_pool=_SCAN_POOL)


#: The pool scan columns are decompressed into (see :func:`_allocate`).
_SCAN_POOL = pa.system_memory_pool()


def _install_scan() -> Any:
    try:
        from . import _scan as mod
    except ImportError:  # not compiled: the reference path
        return None
    addresses = zstdlib.addresses()
    if addresses is None:
        return None
    mod.set_zstd(*addresses[:len(zstdlib.FUNCTIONS)])
    return mod


_scan = _install_scan()


def _field_starts(schema: pa.Schema) -> list[tuple[int, int, int]]:
    """:func:`field_starts` of a shard reader's moves schema, computed once per distinct schema (walking its nested
    types took ~0.2 ms per shard and statement, and again for every shard a first statement opens)."""
    return per_schema("field_starts", schema, field_starts)


def _column_starts(lay: Any, starts: list[tuple[int, int, int]]) -> np.ndarray:
    """Each batch's (row's) top-level columns' first body buffer offsets, from the batches' messages."""
    firsts = [b for _, b, _ in starts]
    if lay.bufs.shape[1] <= max(firsts):
        raise Damaged("batch messages have fewer buffers than the schema's columns")
    return lay.bufs[:, firsts, 0]


class _Flat(NamedTuple):
    """How to read one fixed-width column of a whole shard: its type, the file positions, sizes and rows' bytes of
    its data buffers (one per batch), its row count and dictionary (None: not dictionary-encoded).  Made once per
    open shard and column, after the batches' messages and the column's bytes were checked."""

    type: pa.DataType
    pos: np.ndarray
    size: np.ndarray
    take: np.ndarray
    total: int
    width: int
    dictionary: pa.Array | None


def _flat_array(fast: Any, plan: _Flat, name: str) -> pa.Array:
    """Column ``name`` by its :class:`_Flat` plan: its frames decompressed back to back into one array."""
    data = _joined_at(fast, plan.pos, plan.size, plan.take, name)
    if len(data) != plan.total * plan.width:
        raise Damaged(f"column {name}: data shorter than its rows")
    buf = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
    if plan.dictionary is not None:
        # read unsigned, a negative index is past any dictionary: one pass finds both
        indices = np.frombuffer(data, dtype=f"<u{plan.width}")
        if plan.total and indices.max() >= len(plan.dictionary):
            raise Damaged(f"column {name}: dictionary index out of range")
        arr = pa.DictionaryArray.from_buffers(plan.type, plan.total, [None, buf], plan.dictionary)
    else:
        arr = pa.Array.from_buffers(plan.type, plan.total, [None, buf])
    arr.validate()
    return arr


def _read_fast(reader: "ShardReader", fast: Any, names: Sequence[str], batches: Sequence[int]) -> pa.Table:
    """The columns through the shard's :class:`~gamestore.ipc_batch.FastBatchReader`: each column's frames of all
    ``batches`` decompressed in one call without the GIL, fixed-width columns joined into one array.

    A whole shard's fixed-width columns are read by a :class:`_Flat` plan kept on the reader: the next
    statement decompresses them without parsing or checking anything again (an uncached scan's Python work)."""
    from .ipc_batch import _ZstdError

    schema = reader.moves_schema
    plans = fast.scan_plans
    whole = list(batches) == list(range(fast.num_batches))
    if whole and all(n in plans for n in names):
        try:
            return pa.table([_flat_array(fast, plans[n], n) for n in names],
                            schema=pa.schema([schema.field(n) for n in names]))
        except IndexError as exc:
            raise Damaged(f"{type(exc).__name__}: {exc}") from exc
    starts = _field_starts(schema)
    lay = fast.layouts(batches)
    rows = np.asarray(reader.manifest["batch_rows"], dtype=np.int64)[list(batches)]
    for j in np.flatnonzero(lay.rows != rows).tolist()[:1]:
        raise ShardCorruptError(f"{MOVES_FILE} batch {batches[j]} has {lay.rows[j]} rows, the manifest says {rows[j]}",
                                shard_id=reader.shard_id)
    total = int(rows.sum())
    counts = rows.tolist()
    verifier = reader.verifier(MOVES_FILE)
    by_column = verifier if verifier is not None and verifier.has_columns else None
    if by_column is not None:  # format 3: only the bytes of the columns read are hashed
        by_column.check_columns(batches, _column_starts(lay, starts), [(schema.get_field_index(n), n) for n in names])
    has_first = by_column is not None and 0 in batches  # batch 0's message and these columns were checked above
    columns: list[pa.Array | pa.ChunkedArray] = []
    try:
        for name in names:
            k = schema.get_field_index(name)
            t = schema.field(k).type
            node, buf, _ = starts[k]
            n_nodes, n_bufs, n_dicts = field_spans(t)
            if n_dicts and by_column is not None:  # Arrow's reader, where it reads the dictionaries, reads them
                if not has_first:  # through batch 0 (checked above when read: ~40 us a column and shard again)
                    by_column.check_messages([0])
                    by_column.check_columns([0], _column_starts(fast.layouts([0]), starts), [(k, name)])
            elif n_dicts:
                reader._checked(MOVES_FILE, 0)
            dicts = fast.column_dictionaries(k) if n_dicts else []
            if _flat(t) and not lay.nodes[:, node, 1].any() and ((rows == 0) | (lay.bufs[:, buf + 1, 1] > 0)).all():
                width = (t.index_type if pa.types.is_dictionary(t) else t).bit_width // 8
                bufs = lay.bufs[:, buf + 1]
                plan = _Flat(t, np.ascontiguousarray(lay.body + bufs[:, 0]), np.ascontiguousarray(bufs[:, 1]),
                             np.ascontiguousarray(rows * width), total, width,
                             dicts[0] if pa.types.is_dictionary(t) else None)
                columns.append(_flat_array(fast, plan, name))
                if whole:
                    plans[name] = plan
                continue
            mine = slice(buf, buf + n_bufs)
            got = fast.decompress(np.repeat(lay.body, n_bufs), lay.bufs[:, mine].reshape(-1, 2))
            chunks = []
            for j in range(len(counts)):
                bufs = [None if g is None else pa.py_buffer(g) for g in got[j * n_bufs:(j + 1) * n_bufs]]
                arr = build(t, lay.nodes[j, node:node + n_nodes].tolist(), bufs, dicts, [0, 0, 0])
                arr.validate(full=True)  # offsets and dictionary indices in range: DuckDB trusts them
                chunks.append(arr)
            columns.append(pa.chunked_array(chunks, type=t))
    except (_ZstdError, IndexError) as exc:
        raise Damaged(f"{type(exc).__name__}: {exc}") from exc
    return pa.table(columns, schema=pa.schema([schema.field(n) for n in names]))


def _whole_shard(reader: "ShardReader", names: list[str], batches: list[int]) -> pa.Table:
    """Columns ``names`` of every row of one shard, through :data:`COLUMN_CACHE`."""
    key = reader.moves_key  # taken when the file is first read (no Arrow file reader opened)
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
            v = self._snap.visible_keys  # no deferred catalog column read (catalog_snapshot.Snapshot's load)
            self._rows = int(int_values(v.column("num_moves")).sum()) if v.num_rows else 0
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
                v = self._snap.visible_keys
                counts = dict(zip(self._snap.shards.column("shard_id").to_pylist(),
                                  self._snap.shards.column("num_games").to_pylist()))
                plan: list[tuple[str, readpath.ShardPick | None]] = []
                if self._snap.all_visible and sum(counts.values()) == v.num_rows:
                    # every game row of every indexed shard is visible (no copies, nothing hidden: the usual case):
                    # each shard with games is read whole, in shard id order like the picks (the selection of
                    # 20,000 games took ~3 ms of a first statement, before any shard was read)
                    plan = [(sid, None) for sid in sorted(counts) if counts[sid]]
                else:
                    for pick in readpath.selection_from_table(v).picks():
                        whole = counts.get(pick.shard_id) == pick.num_games
                        plan.append((pick.shard_id, None if whole else pick))
                self._plan = plan
            return self._plan

    def _id_plan(self, game_ids: set[str]) -> list[tuple[str, "readpath.ShardPick | None"]]:
        locs = self._snap.locations  # built once per snapshot, shared with get_game
        found = [locs[g] for g in sorted(game_ids) if g in locs]
        if not found:
            return []
        shard_id, row, move_offset, num_moves = zip(*found)
        ints = [numpy_array(np.asarray(v, dtype=np.int64), pa.int64()) for v in (row, move_offset, num_moves)]
        table = pa.table([string_array(shard_id), *ints], names=["shard_id", "row", "move_offset", "num_moves"])
        return [(p.shard_id, p) for p in readpath.selection_from_table(table).picks()]

    def _batches(self, plan: list[tuple[str, "readpath.ShardPick | None"]], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        pool = _executor()
        pending: list[_Job] = []
        it = iter(plan)
        for step in it:
            pending.append(pool.submit(gil.inherit(self._shard), step, schema))
            if len(pending) >= PREFETCH:
                break
        try:
            while pending:
                table = pending.pop(0).result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(gil.inherit(self._shard), nxt, schema))
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
                table = read_columns(reader, present, batches) if batches else empty_table(pa.schema(
                    [reader.moves_schema.field(n) for n in present]))
        if keep is not None and not keep.all():
            table = _rows(table, keep)
        return conform(table, schema)


def _rows(table: pa.Table, keep: np.ndarray) -> pa.Table:
    """The rows of ``table`` where ``keep``: the games' runs of rows as slices when they are few (a statement on
    some games: no ``pyarrow.compute``, whose import costs ~25 ms, and no copy), else a filter."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], keep, [False])).astype(np.int8)))
    if not len(edges):
        return table.slice(0, 0)
    if len(edges) > 2 * _SLICED_RUNS:
        return table.filter(bool_array(keep))
    return pa.concat_tables([table.slice(a, b - a) for a, b in zip(edges[0::2].tolist(), edges[1::2].tolist())])


class _BuiltOnUse(_Base):
    """A registered object made when a statement first reads it (see :func:`built_on_use`)."""

    schema_is_stable = True

    def __init__(self, schema: pa.Schema, build: Callable[[], Any], rows: int | None = None) -> None:
        self.obj = None
        self._schema = schema
        self._build = build
        self._rows = rows
        self._inner: Any = None
        self._lock = threading.Lock()

    def _source(self) -> Any:
        with self._lock:
            if self._inner is None:
                self._inner = _adapt(self._build())
            return self._inner

    def __arrow_c_schema__(self) -> object:
        return self._schema.__arrow_c_schema__()

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self.stream(None, [])[0]

    def rows(self) -> int | None:
        return self._rows

    def accepts(self, predicate: Any) -> bool:
        return bool(self._source().accepts(predicate))

    def stream(self, columns: Sequence[int] | None, filters: Sequence[Any]) -> tuple[object, bool]:
        # the object may declare more columns after ours (e.g. a dataset's partition field): never ask for those
        return self._source().stream(range(len(self._schema)) if columns is None else columns, filters)


def built_on_use(schema: pa.Schema, build: Callable[[], Any], *, rows: int | None = None) -> Any:
    """What to register for the Arrow object ``build()`` makes (a dataset whose columns start with ``schema``):
    a source that calls ``build`` when a statement first scans it.  The ``games_full`` view's dataset costs
    the import of ``pyarrow.dataset`` (with pandas, ~0.3 s) and a look at every ``games.arrow`` file, which
    statements that never read that view (most of them) no longer pay.  ``rows``: how many rows it has, when
    known without building it (DuckDB's estimate for the plan).  Without ``duckdb._sources``, ``build()``."""
    return build() if _adapt is None else _BuiltOnUse(schema, build, rows)
