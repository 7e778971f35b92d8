"""``import_sqlite`` and ``export_sqlite``: GameReplayDB files into a store and back, losslessly."""
from __future__ import annotations

import contextlib
import gc
import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import RecordError, StoreExistsError
from .jsontext import tag, untag
from .mapping import RINGRIFT_VECTORS, record_to_rows, rows_to_record, verbatim_cells
from .sqlite_io import (
    connect_readonly,
    count_games,
    create_v18,
    finish_v18,
    game_ids,
    insert_game_rows,
    insert_rows,
    read_games,
    read_table,
    schema_report,
    unowned_rows,
)
from .tables import SCHEMA_VERSION
from .workers import ImportProcesses, TaskPool, fixed_tasks, map_tasks

__all__ = [
    "ImportReport",
    "ExportReport",
    "import_sqlite",
    "export_sqlite",
    "read_store_tables",
    "merge_store_tables",
    "META_SCHEMA",
    "META_ORPHANS",
]

#: Store meta documents holding the store-level tables.
META_SCHEMA = "ringrift.schema_metadata"
META_ORPHANS = "ringrift.orphaned_games"

_CHUNK_GAMES = 32  # games per store write
_MMAP_BYTES = 1 << 34  # SQLite maps at most this much of the source (its own limit may be lower)

ProgressArg = bool | None | Callable[..., Any]


@dataclass
class ImportReport:
    """What one ``import_sqlite`` run did."""

    source: str
    schema_version: int | None
    games_in_source: int = 0
    games_written: int = 0
    games_already_stored: int = 0
    moves_written: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (game_id, reason)
    #: JSON/state cells stored as verbatim text: their split into fields could not be proven exact (still lossless)
    cells_verbatim: int = 0
    missing: list[str] = field(default_factory=list)  # what an older schema lacks
    unowned_rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def moves_per_second(self) -> float:
        return self.moves_written / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        lines = [
            f"{self.source}: schema v{self.schema_version}, {self.games_in_source} games;"
            f" {self.games_written} imported ({self.moves_written} moves, {self.moves_per_second:,.0f} moves/s),"
            f" {self.games_already_stored} already stored, {len(self.failed)} failed"
        ]
        if self.cells_verbatim:
            lines.append(f"  {self.cells_verbatim} JSON/state cells kept as verbatim text (not split into fields)")
        lines += [f"  missing: {m}" for m in self.missing]
        lines += [f"  not imported: {n} {t} rows without a games row" for t, n in self.unowned_rows.items()]
        lines += [f"  failed: {g}: {r}" for g, r in self.failed[:20]]
        return "\n".join(lines)


@dataclass
class ExportReport:
    destination: str
    games: int = 0
    moves: int = 0
    seconds: float = 0.0


def _progress(progress: ProgressArg, total: int | None, desc: str) -> Any:
    """A tqdm bar (``progress=None``: only when stderr is a terminal) or a no-op."""
    enabled = sys.stderr.isatty() if progress is None else bool(progress)
    if callable(progress) and not isinstance(progress, bool):
        return progress(total=total, desc=desc)
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        enabled = False
        tqdm = None
    if not enabled or tqdm is None:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="game", file=sys.stderr)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _create_store(store_path: str | os.PathLike) -> None:
    """Make the store's files as ``_open_store(create=True)`` would (config, profile, directories), without opening it."""
    from ..layout import prepare_store
    from ..storage import Storage

    prepare_store(Storage.from_location(store_path), create=True, profile="ringrift", board_types=None, fsync=True)


def _open_store(store_path: str | os.PathLike, *, create: bool):
    from .. import store as store_mod

    if create:
        return store_mod.open(store_path, create=True, profile="ringrift", vectors=RINGRIFT_VECTORS)
    return store_mod.open(store_path, create=False)


def import_sqlite(
    src: str | os.PathLike,
    store_path: str | os.PathLike,
    *,
    progress: ProgressArg = None,
    verify: bool = False,
    batch_games: int = _CHUNK_GAMES,
    workers: int | None = None,
    part: tuple[int, int] | None = None,
    store_tables: bool = True,
    pause_gc: bool = False,
) -> ImportReport:
    """Import every game of the GameReplayDB ``src`` into the store at ``store_path`` (created if needed).

    Games already in the store are skipped, so re-running adds nothing twice.
    Every JSON text, state and blob is checked while it is split up (text
    that cannot be rebuilt exactly is kept verbatim); ``verify`` also rebuilds
    each game's rows from its record before writing and refuses (reports as
    failed) any game that would not come back equal.
    The store-level tables go to the store meta documents
    ``ringrift.schema_metadata`` and ``ringrift.orphaned_games``.
    ``workers``: processes importing in all, this one included (None: one per CPU from 2 CPUs and
    20,000 moves; 0 or 1: everything in this process).  The others are started first (forked when
    no other thread runs here) and each reads, splits and writes (its own shards) the games it asks
    this process for, a few at a time (:class:`~gamestore.ringrift.workers.TaskPool`), so all finish
    together; one that fails or is killed raises :class:`~gamestore.errors.ImportWorkerError`.
    ``part=(i, n)`` imports only the i-th of n contiguous runs of the source's games (so that
    n processes, on one machine or many, can import one file together: ``gamestore.ray.import_sqlite``);
    ``store_tables=False`` leaves the store-level tables to the caller (:func:`read_store_tables`,
    :func:`merge_store_tables`).
    ``pause_gc``: the import owns its process: two process-wide settings are
    switched during the import and restored afterwards, in this process and the
    workers (:func:`owned_process`): Python's cyclic garbage collector is
    disabled (records are acyclic, and collecting while they are built costs
    about a third more time, ``benchmarks/gc_ratio.py``), and Arrow buffers come
    from the system allocator instead of pyarrow's default (mimalloc).  Off
    unless asked; ``gamestore import-sqlite`` asks.
    """
    t0 = time.perf_counter()
    con = _connect(src)
    settings = owned_process() if pause_gc else contextlib.nullcontext()
    settings.__enter__()
    helpers: ImportProcesses | None = None
    try:
        report_schema = schema_report(con)
        report = ImportReport(source=str(src), schema_version=report_schema.schema_version)
        report.missing = report_schema.lines()
        ids = game_ids(con, report_schema)
        if part is not None:
            index, count = part
            if not 0 <= index < count:
                raise ValueError(f"part {index} of {count} does not exist")
            ids = ids[len(ids) * index // count : len(ids) * (index + 1) // count]
        n_workers = _worker_count(con, report_schema, workers) if part is None else 0
        if n_workers > 1:
            # the helpers first, given tasks at once: they open the store (its files made here) while this
            # process does; everything this one does before its own first task is balanced by the task pool
            _create_store(store_path)
            helpers = ImportProcesses(src, store_path, n_workers - 1, verify=verify, pause_gc=pause_gc)
            pool = TaskPool(ids, n_workers)
            helpers.serve(pool)
        with _open_store(store_path, create=True) as store:
            store.declare_vectors(RINGRIFT_VECTORS)
            if store_tables:
                merge_store_tables(store, _store_tables(con, report_schema))
            report.unowned_rows = unowned_rows(con, report_schema)
            report.games_in_source = count_games(con, report_schema)
            bar = _progress(progress, report.games_in_source, "import")
            try:
                if helpers is not None:
                    _import_serial(con, report_schema, store, pool, report, helpers.relay(bar), verify, batch_games)
                    for child in helpers.finish():
                        report.games_already_stored += child["games_already_stored"]
                        report.games_written += child["games_written"]
                        report.moves_written += child["moves_written"]
                        report.cells_verbatim += child["cells_verbatim"]
                        report.failed += [(g, r) for g, r in child["failed"]]
                else:
                    _import_serial(con, report_schema, store, fixed_tasks(ids), report, bar, verify, batch_games)
            finally:
                bar.close()
    finally:
        if helpers is not None:
            helpers.close()
        con.close()
        settings.__exit__(None, None, None)
    report.seconds = time.perf_counter() - t0
    return report


def import_tasks(
    src: str | os.PathLike,
    store_path: str | os.PathLike,
    tasks: Iterable[list],
    *,
    progress: ProgressArg = None,
    verify: bool = False,
    batch_games: int = _CHUNK_GAMES,
    pause_gc: bool = False,
) -> ImportReport:
    """Import the games of ``src`` named by ``tasks`` (lists of game ids) into the existing store at ``store_path``.

    What a helper process of ``import_sqlite(workers=N)`` runs; the store is opened once the first
    task has come (the caller creates it before it hands tasks out).  The store-level tables and
    the source-wide counts are the caller's.
    """
    t0 = time.perf_counter()
    con = _connect(src)
    settings = owned_process() if pause_gc else contextlib.nullcontext()
    settings.__enter__()
    try:
        report_schema = schema_report(con)
        report = ImportReport(source=str(src), schema_version=report_schema.schema_version)
        todo = iter(tasks)
        first = next(todo, None)
        if first is not None:
            with _open_store(store_path, create=False) as store:
                store.declare_vectors(RINGRIFT_VECTORS)
                bar = _progress(progress, None, "import")
                try:
                    _import_serial(con, report_schema, store, itertools.chain([first], todo), report, bar, verify,
                                   batch_games)
                finally:
                    bar.close()
    finally:
        con.close()
        settings.__exit__(None, None, None)
    report.seconds = time.perf_counter() - t0
    return report


@contextlib.contextmanager
def owned_process() -> Iterator[None]:
    """The process-wide settings of an import that owns its process (``pause_gc=True``), restored on exit.

    The cyclic garbage collector is off.  Arrow buffers (the seal's concatenated columns and IPC
    files, ~3 KB per move) come from ``pyarrow.system_memory_pool()`` (glibc) instead of the default
    mimalloc, which backs them with transparent huge pages that the kernel zeroes, and may first
    compact memory for, at every seal: with two import processes, 2-3 us CPU per move less, most of
    it system time (``benchmarks/README.md``, RingRift import).  Buffers allocated before the switch
    keep their pool.
    """
    import pyarrow as pa

    gc_was_enabled = gc.isenabled()
    pool = pa.default_memory_pool()
    gc.disable()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(pool)
        if gc_was_enabled:
            gc.enable()


def _connect(src: str | os.PathLike):
    con = connect_readonly(src)
    # pages through a read-only memory map instead of read() copies: half the CPU of reading the
    # ~100 KB snapshot texts and the move rows (benchmarks/README.md, RingRift GameReplayDB import)
    con.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}").fetchall()
    return con


_PARALLEL_MIN_MOVES = 20_000
_PARALLEL_MIN_CPUS = 2


def _worker_count(con, report_schema, workers: int | None) -> int:
    if workers is not None:
        return max(0, int(workers))
    # each process costs an interpreter and a store open (~0.5 s of CPU): worth it from ~20,000 moves
    cpus = os.cpu_count() or 1
    if cpus < _PARALLEL_MIN_CPUS or "game_moves" not in report_schema.tables:
        return 0
    moves = con.execute("SELECT COUNT(*) FROM game_moves").fetchone()[0]
    return cpus if moves >= _PARALLEL_MIN_MOVES else 0


def _import_serial(con, report_schema, store, tasks: Iterable[list], report: ImportReport, bar: Any, verify: bool,
                   batch_games: int) -> None:
    """Import the games of ``tasks`` in this process: read and split them a task at a time, write them in chunks."""
    chunk: list[dict] = []
    submitted: dict[str, int] = {}
    for records, failed in map_tasks(con, report_schema, _not_stored(store, tasks, report, bar), verify):
        bar.update(len(records) + len(failed))
        report.failed += failed
        report.cells_verbatim += sum(map(verbatim_cells, records))
        chunk += records
        if len(chunk) >= batch_games:
            _write(store, chunk, report, submitted)
            chunk = []
    if chunk:
        _write(store, chunk, report, submitted)
    store.flush()
    written = [n for g, n in submitted.items() if g in store]
    report.games_written = len(written)
    report.moves_written = sum(written)


def _not_stored(store, tasks: Iterable[list], report: ImportReport, bar: Any) -> Iterator[list]:
    """The tasks without the games the store already holds (counted in ``report`` and on ``bar``)."""
    for ids in tasks:
        todo = [g for g in ids if not (isinstance(g, str) and g in store)]
        if len(todo) < len(ids):
            report.games_already_stored += len(ids) - len(todo)
            bar.update(len(ids) - len(todo))
        if todo:
            yield todo


def _write(store, chunk: list[dict], report: ImportReport, submitted: dict[str, int]) -> None:
    """Write a chunk; a game the store refuses is reported and the rest of the chunk still goes in."""
    for r in chunk:
        submitted[r["game_id"]] = len(r["moves"])
    pending = chunk
    while pending:
        try:
            store.write_games(pending, on_duplicate="skip")
            return
        except RecordError as exc:
            ids = [r["game_id"] for r in pending]
            idx = ids.index(exc.game_id) if exc.game_id in ids else len(pending) - 1
            report.failed.append((str(exc.game_id), str(exc)))
            submitted.pop(ids[idx], None)
            pending = pending[idx + 1 :]


def read_store_tables(src: str | os.PathLike) -> dict[str, list[list]]:
    """The store-level tables (``schema_metadata``, ``orphaned_games``) of a GameReplayDB, as meta rows."""
    con = connect_readonly(src)
    try:
        return _store_tables(con, schema_report(con))
    finally:
        con.close()


def _store_tables(con, report_schema) -> dict[str, list[list]]:
    return {
        META_SCHEMA: [[tag(v) for v in row] for row in read_table(con, "schema_metadata", report_schema)],
        META_ORPHANS: [[tag(v) for v in row] for row in read_table(con, "orphaned_games", report_schema)],
    }


def merge_store_tables(store, tables: dict[str, list[list]]) -> None:
    """Merge store-level table rows (from :func:`read_store_tables`) into the store meta documents."""
    for name, rows in tables.items():
        merged = {r[0]: r for r in (store.get_meta(name) or [])}
        for row in rows:
            merged.setdefault(row[0], row)
        if merged:
            store.put_meta(name, list(merged.values()))


def export_sqlite(
    store_path: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    where: str | None = None,
    progress: ProgressArg = None,
    overwrite: bool = False,
) -> ExportReport:
    """Write the store's games (``where``: SQL predicate over the ``games`` view) as a schema-v18 GameReplayDB at ``dst``.

    The file is built under a temporary name and renamed into place when complete.
    """
    t0 = time.perf_counter()
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise StoreExistsError(f"{dst} exists (pass overwrite=True to replace it)")
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    report = ExportReport(destination=str(dst))
    with _open_store(store_path, create=False) as store:
        ids = store.query_games(where, columns=["game_id"]).column("game_id").to_pylist()
        con = create_v18(tmp)
        try:
            meta_rows = [tuple(untag(v) for v in r) for r in (store.get_meta(META_SCHEMA) or [])]
            meta_rows = [r for r in meta_rows if r[0] != "schema_version"] + [("schema_version", str(SCHEMA_VERSION))]
            insert_rows(con, "schema_metadata", meta_rows)
            orphans = [tuple(untag(v) for v in r) for r in (store.get_meta(META_ORPHANS) or [])]
            insert_rows(con, "orphaned_games", orphans)
            bar = _progress(progress, len(ids), "export")
            try:
                for gid in ids:
                    rows = record_to_rows(store.get_game(gid))
                    insert_game_rows(con, rows)
                    report.games += 1
                    report.moves += len(rows["game_moves"])
                    bar.update(1)
            finally:
                bar.close()
            finish_v18(con)
        except BaseException:
            con.close()
            tmp.unlink(missing_ok=True)
            raise
        con.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, dst)
    report.seconds = time.perf_counter() - t0
    return report


def iter_records(src: str | os.PathLike) -> Iterator[dict]:
    """The game records of a GameReplayDB, without a store (for tools and tests)."""
    con = connect_readonly(src)
    try:
        report = schema_report(con)
        for rows in read_games(con, report):
            yield rows_to_record(rows)
    finally:
        con.close()
