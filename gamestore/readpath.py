"""The one read path: catalog selection -> per-shard picks -> filtered record batches (-> decoded games).

Every reader of stored games goes through here: ``GameStore.scan_moves``
and ``get_game``, the exports, the operator jobs that rewrite shards
(compact, merge, prune) and the torch dataset's plan.

1. :func:`select` asks the catalog which indexed games match (SQL over the
   games index) and returns a columnar :class:`Selection`: per game its
   shard, ``games.arrow`` row, first move row and move count, ordered by
   shard and move offset.  Only indexed copies are ever selected (the first
   copy of a game id by shard id, docs/format.md), so a game stored twice is
   read once.
2. :meth:`Selection.picks` cuts it into one :class:`ShardPick` per shard.
3. :func:`shard_batches` reads one shard's moves batches (only the asked-for
   columns' buffers), keeps the picked games' rows and conforms the batches
   to one schema (columns an older shard lacks become nulls); :func:`scan`
   chains the shards.
4. :func:`read_game` (point reads, through the shard caches) and
   :func:`iter_games` decode canonical records; this is the only place above
   the storage layer (:mod:`gamestore.shard`, which never decodes) that turns
   stored rows into records.
"""
from __future__ import annotations

from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import pyarrow as pa

from . import gcpause, gil
from .errors import QueryError, ShardCorruptError
from .arrays import int_values
from .schema import conform
from .shard import GAMES_FILE, MOVES_FILE
from .lazy import lazy_module

_backend = lazy_module("gamestore.backend")  # the compiled coders: loaded by the first read of games

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Future

    from .backend import Backend
    from .catalog import Catalog
    from .shard import ShardReader

__all__ = [
    "Selection",
    "ShardPick",
    "select",
    "reader_for",
    "intact_reader",
    "pick_rows",
    "locate_batches",
    "shard_batches",
    "scan",
    "read_game",
    "watched",
    "decode_moves",
    "iter_games",
]


@dataclass(frozen=True)
class ShardPick:
    """The selected games of one shard, in move order."""

    shard_id: str
    rows: np.ndarray  #: int64 ``games.arrow`` rows
    offsets: np.ndarray  #: int64 first ``moves.arrow`` row of each game
    counts: np.ndarray  #: int64 moves of each game
    columns: dict[str, np.ndarray] = field(default_factory=dict)  #: extra selected columns, aligned with ``rows``

    @property
    def num_games(self) -> int:
        return len(self.rows)

    @property
    def num_moves(self) -> int:
        return int(self.counts.sum())

    def move_mask(self, num_rows: int) -> np.ndarray:
        """A bool per ``moves.arrow`` row (``num_rows`` of them): True for the moves of the picked games."""
        edges = np.zeros(num_rows + 1, dtype=np.int64)
        np.add.at(edges, self.offsets, 1)
        np.add.at(edges, self.offsets + self.counts, -1)
        return np.cumsum(edges[:-1]) > 0

    def subset(self, keep: np.ndarray) -> "ShardPick":
        """The games where the bool array ``keep`` is True."""
        return ShardPick(self.shard_id, self.rows[keep], self.offsets[keep], self.counts[keep],
                         {k: v[keep] for k, v in self.columns.items()})


@dataclass(frozen=True)
class Selection:
    """Selected games, ordered by (shard id, move offset); arrays aligned per game."""

    shard_ids: list[str]  #: the shards holding selected games, sorted
    shard: np.ndarray  #: int32 index into ``shard_ids`` of each game
    rows: np.ndarray
    offsets: np.ndarray
    counts: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def num_moves(self) -> int:
        return int(self.counts.sum())

    def bounds(self) -> np.ndarray:
        """``bounds[i]:bounds[i + 1]`` are the games of ``shard_ids[i]``."""
        return np.searchsorted(self.shard, np.arange(len(self.shard_ids) + 1))

    def picks(self) -> list[ShardPick]:
        b = self.bounds()
        return [
            ShardPick(sid, self.rows[lo:hi], self.offsets[lo:hi], self.counts[lo:hi],
                      {k: v[lo:hi] for k, v in self.columns.items()})
            for sid, lo, hi in zip(self.shard_ids, b[:-1].tolist(), b[1:].tolist())
        ]


def selection_from_table(table: pa.Table, columns: Sequence[str] = ()) -> Selection:
    """A :class:`Selection` from rows ``shard_id, row, move_offset, num_moves`` (+ ``columns``) in any order.

    Rows already ordered by shard and move offset (a catalog query's ORDER
    BY) are taken as they are; others are sorted first.  (The catalog's own
    tables are in indexing order, which is not shard id order: a shard id
    carries the time its writer started sealing, and a shard with a lower id
    may be committed and indexed after one with a higher id.  Cut unsorted,
    the picks lost those games: the ``moves`` view of test_multiprocess.)
    """
    shard_col = table.column("shard_id").to_pylist()
    shard_ids = sorted(set(shard_col))
    index = {s: i for i, s in enumerate(shard_ids)}
    n = len(shard_col)
    shard = np.fromiter((index[s] for s in shard_col), dtype=np.int32, count=n)
    offsets = int_values(table.column("move_offset"))
    order: np.ndarray | None = None
    if n > 1:
        step = np.diff(shard)
        if (step < 0).any() or ((step == 0) & (np.diff(offsets) < 0)).any():
            order = np.lexsort((offsets, shard))  # by shard, then move offset

    def ints(name: str) -> np.ndarray:
        return int_values(table.column(name))

    def arranged(values: np.ndarray) -> np.ndarray:
        return values if order is None else values[order]

    return Selection(
        shard_ids=shard_ids,
        shard=arranged(shard),
        rows=arranged(ints("row")),
        offsets=arranged(offsets),
        counts=arranged(ints("num_moves")),
        columns={c: arranged(table.column(c).to_numpy(zero_copy_only=False)) for c in columns},
    )


def select(catalog: "Catalog", where: str | None = None, *, columns: Sequence[str] = ()) -> Selection:
    """The indexed games matching the SQL predicate ``where`` (over the ``games`` view's columns; None: all).

    ``columns``: game columns to carry along (e.g. ``game_id``).  The caller
    checks ``where`` (``GameStore`` does, with :mod:`gamestore.sqlguard`).
    """
    return selection_from_table(catalog.select_games(where, columns=columns), columns)


def reader_for(catalog: "Catalog", pick: "ShardPick | str") -> "ShardReader":
    """The reader of ``pick``'s shard; a shard removed since the selection (by a compaction) is an error."""
    sid = pick if isinstance(pick, str) else pick.shard_id
    reader = catalog.find_reader(sid)
    if reader is None:
        why = catalog.damage().get(sid)
        raise ShardCorruptError(why or "shard removed while being read; run the job again", shard_id=sid)
    return reader


def intact_reader(catalog: "Catalog", shard_id: str) -> "ShardReader | None":
    """The reader of a shard whose files pass every checksum now (a job that takes whole shards checks them before
    it writes anything of one); None when the shard is damaged (quarantined: ``catalog.damage()`` says why)."""
    reader = catalog.find_reader(shard_id)
    if reader is None:
        if shard_id in catalog.damage():
            return None
        raise ShardCorruptError("shard removed while being read; run the job again", shard_id=shard_id)
    try:
        with watched(reader):
            verifiers = [reader.verifier(name) for name in (MOVES_FILE, GAMES_FILE)]
            for v in verifiers:
                if v is not None:
                    v.check_all()
            problems = reader.check_files() if None in verifiers else []  # format 1: sha256
            if problems:
                raise ShardCorruptError("; ".join(problems), shard_id=shard_id)
    except ShardCorruptError:
        return None
    return reader


def pick_rows(reader: "ShardReader", rows: Sequence[int] | np.ndarray) -> ShardPick:
    """A pick of the given ``games.arrow`` rows of one shard (sorted into move order)."""
    games = reader.games
    r = np.asarray(rows, dtype=np.int64)
    offsets = games.column("move_offset").to_numpy()[r].astype(np.int64)
    counts = games.column("move_count").to_numpy()[r].astype(np.int64)
    order = np.lexsort((r, offsets))
    return ShardPick(reader.shard_id, r[order], offsets[order], counts[order])


def locate_batches(batch_rows: Sequence[int], offsets: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each game (first move row, move count): its moves batch, that batch's first row, and whether the
    game runs past the end of that batch (gamestore never writes such games, but they are readable)."""
    starts = np.concatenate(([0], np.cumsum(np.asarray(batch_rows, dtype=np.int64))))
    idx = np.searchsorted(starts, offsets, side="right") - 1
    idx = np.clip(idx, 0, max(len(batch_rows) - 1, 0))
    first = starts[idx]
    straddles = offsets + counts > starts[np.minimum(idx + 1, len(starts) - 1)]
    return idx.astype(np.int32), first, straddles


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------
def shard_batches(
    reader: "ShardReader",
    pick: ShardPick | None = None,
    *,
    columns: Sequence[str] | None = None,
    schema: pa.Schema | None = None,
) -> Iterator[pa.RecordBatch]:
    """The moves batches of one shard holding ``pick``'s games (None: every row), filtered to their rows.

    ``columns`` projects (only those buffers are read); ``schema`` (a moves
    schema) gives the output columns' types: columns the shard lacks are
    filled with nulls.  Batches without a picked row are skipped unread.
    """
    with watched(reader):
        yield from _shard_batches(reader, pick, columns, schema)


def _shard_batches(
    reader: "ShardReader", pick: ShardPick | None, columns: Sequence[str] | None, schema: pa.Schema | None
) -> Iterator[pa.RecordBatch]:
    shard_names = reader.moves_schema.names
    want = list(columns) if columns is not None else (schema.names if schema is not None else shard_names)
    present = [c for c in want if c in shard_names]
    target = None
    if schema is not None:
        target = pa.schema([schema.field(c) for c in want])
    elif len(present) != len(want):
        raise QueryError(f"unknown move columns: {[c for c in want if c not in shard_names]}")
    read_cols = present if (columns is not None or len(present) != len(want)) else None
    mask = None if pick is None else pick.move_mask(sum(reader.manifest["batch_rows"]))
    wanted = None if mask is None else _wanted_batches(reader, mask)
    for start, batch in reader.iter_batches(read_cols, only=wanted):
        if mask is not None:
            m = mask[start : start + batch.num_rows]
            if not m.all():
                batch = batch.filter(pa.array(m))
        if target is not None:
            batch = conform(batch, target)
        yield batch


def _wanted_batches(reader: "ShardReader", mask: np.ndarray) -> list[int]:
    starts = reader.batch_starts
    rows = reader.manifest["batch_rows"]
    return [i for i, (s, n) in enumerate(zip(starts, rows)) if mask[s : s + n].any()]


def scan(
    catalog: "Catalog",
    selection: Selection,
    *,
    columns: Sequence[str] | None = None,
    schema: pa.Schema,
    batch_size: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """Moves of the selected games, shard by shard, as batches of ``schema``'s columns (cut to ``batch_size`` rows)."""
    if columns is not None:
        unknown = [c for c in columns if c not in schema.names]
        if unknown:
            raise QueryError(f"unknown move columns: {unknown} (known: {', '.join(schema.names)})")
    for pick, reader in _scan_readers(catalog, selection.picks()):
        if reader is None:  # damaged, or removed since the selection
            continue
        for batch in shard_batches(reader, pick, columns=columns, schema=schema):
            if batch_size is None:
                yield batch
            else:
                for off in range(0, batch.num_rows, batch_size):
                    yield batch.slice(off, batch_size)


#: object storage: shards whose moves files a scan downloads ahead (the requests are latency-bound)
SCAN_DOWNLOADS = 4


def _scan_readers(catalog: "Catalog", picks: list[ShardPick]) -> Iterator[tuple[ShardPick, "ShardReader | None"]]:
    """(pick, reader) in order.  On object storage the next :data:`SCAN_DOWNLOADS` shards' moves files
    are downloaded while the current one is decoded, into readers of this scan only (a scan never pins
    the whole store in memory)."""
    if catalog.storage.local:
        for pick in picks:
            yield pick, catalog.find_reader(pick.shard_id)
        return
    from concurrent.futures import ThreadPoolExecutor  # not imported with gamestore: logging too (3-5 ms)

    from .shard import ShardReader

    def load(pick: ShardPick) -> "ShardReader | None":
        cached = catalog.find_reader(pick.shard_id)
        if cached is None:
            return None
        reader = ShardReader(catalog.storage, pick.shard_id, manifest=cached.manifest)
        reader.preload()
        return reader

    with ThreadPoolExecutor(SCAN_DOWNLOADS, thread_name_prefix="gamestore-scan") as pool:
        ahead: deque[tuple[ShardPick, Future]] = deque()
        todo = iter(picks)
        try:
            for pick in todo:
                ahead.append((pick, pool.submit(gil.inherit(load), pick)))
                if len(ahead) >= SCAN_DOWNLOADS:
                    break
            while ahead:
                pick, fut = ahead.popleft()
                nxt = next(todo, None)
                if nxt is not None:
                    ahead.append((nxt, pool.submit(gil.inherit(load), nxt)))
                yield pick, fut.result()
        finally:
            for _, fut in ahead:
                fut.cancel()


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------
def read_game(reader: "ShardReader", row: int, move_offset: int, move_count: int) -> dict:
    """The canonical record of the game in ``games.arrow`` row ``row`` (new objects on every call).

    Through the shard's caches of decompressed batches and game rows
    (``shard.BATCH_CACHE``, ``shard.ROW_CACHE``).

    The collector is off while the record is built (as in the compiled decoder): a game is ~1,300 fresh dicts,
    more than the collector's young-generation threshold, and a collection triggered before the record is
    returned only walks it to find every dict reachable, and promotes it to the older generations, whose full
    collections then walk the whole process (benchmarks/README.md, get_game).  The record holds no cycles; a
    collection that is due runs at the caller's next allocation, after a caller that drops the record freed it.
    """
    began = gcpause.pause()  # counted: other threads' pauses (the async get_game's) are not cut short
    try:
        return _read_game(reader, row, move_offset, move_count)
    finally:
        gcpause.resume(began)


def _read_game(reader: "ShardReader", row: int, move_offset: int, move_count: int) -> dict:
    with watched(reader):
        if reader.row_reader is None and _backend.selected().name == "cython":
            reader.row_reader = compiled_rows(reader.games)
        game_row = reader.game_row(row)
        if game_row["move_count"] != move_count or game_row["move_offset"] != move_offset:
            raise ShardCorruptError(f"games.arrow row {row} does not match the catalog", shard_id=reader.shard_id)
        with _damage_named(reader, f"games.arrow row {row}"):
            from .codec import header_from_row  # the encoder's module: imported by reads of games only

            game = header_from_row(game_row)
        game["moves"] = decode_moves(reader, move_offset, move_count)
    return game


def compiled_rows(games: pa.Table) -> Any:
    """The compiled reader of ``games``' rows (``gamestore._decode.RowReader``: ``{name: column[row].as_py()}``
    read in place, 4x faster), or None: ``as_py()`` per column (the pure-Python backend's way, the reference)."""
    if not games.num_rows:
        return None
    from ._decode import RowReader

    return RowReader(games.combine_chunks().to_batches()[0])


@contextmanager
def watched(reader: "ShardReader") -> Iterator[None]:
    """Reading ``reader``'s shard: damage found on the way (a :class:`ShardCorruptError` of this shard) is reported
    to its ``on_damage`` (the catalog quarantines the shard) before it propagates."""
    try:
        yield
    except ShardCorruptError as exc:
        if exc.shard_id == reader.shard_id and reader.on_damage is not None:
            reader.on_damage(exc)
        raise


@contextmanager
def _damage_named(reader: "ShardReader", where: str) -> Iterator[None]:
    """Decoding stored rows of ``reader``'s shard: a damaged batch (the decoders' :class:`ShardCorruptError`, which
    cannot know the shard) or a stored JSON text that does not parse becomes a ShardCorruptError naming shard and
    file."""
    try:
        yield
    except ShardCorruptError as exc:
        if exc.shard_id is not None:
            raise
        raise ShardCorruptError(f"{where}: {exc}", shard_id=reader.shard_id) from exc
    except (ValueError, TypeError, KeyError) as exc:  # header JSON (metadata, initial state) that is not JSON
        raise ShardCorruptError(f"{where}: {type(exc).__name__}: {exc}", shard_id=reader.shard_id) from exc


def decode_moves(reader: "ShardReader", move_offset: int, move_count: int, *, backend: "Backend | None" = None) -> list[dict]:
    """The move dicts of rows ``[move_offset, +move_count)`` of one shard, through its batch cache.

    ``backend``: a :class:`gamestore.backend.Backend` (default: the one the codec uses).
    """
    if backend is None:
        backend = _backend.selected()
    if move_count == 0:
        return []
    i = reader.batch_index(move_offset)
    start = move_offset - reader.batch_starts[i]
    if backend.name == "cython" and start >= 0 and start + move_count <= reader.manifest["batch_rows"][i]:
        from . import pointread  # get_game's reader (ctypes, libzstd): imported by reads of games only

        with _damage_named(reader, f"moves.arrow batch {i}"):
            moves = pointread.decode(reader, i, start, start + move_count)  # only the buffers the columns use
        if moves is not None:
            return moves
    entry = reader.cached_batch(i)
    with _damage_named(reader, f"moves.arrow batch {i}"):
        if start < 0 or start + move_count > entry.batch.num_rows:
            # a game over several batches (never written so, but readable): the generic path
            return backend.decode_moves(reader.game_moves(move_offset, move_count), reader.vectors)
        decoder: Any = entry.decoders.get(backend.name)
        if decoder is None:
            decoder = entry.decoders[backend.name] = backend.batch_decoder(entry.batch, reader.vectors, reader.strings)
        return decoder.decode(start, start + move_count)


def iter_games(reader: "ShardReader", pick: ShardPick) -> Iterator[dict]:
    """Canonical records of ``pick``'s games, decoded one moves batch at a time (bounded memory)."""
    if not pick.num_games:
        return
    with watched(reader):
        yield from _iter_games(reader, pick)


def _iter_games(reader: "ShardReader", pick: ShardPick) -> Iterator[dict]:
    from . import codec  # the encoder's module: imported by reads of games only

    games = reader.games.take(pa.array(pick.rows, pa.int64()))
    batch_idx, first, straddles = locate_batches(reader.manifest["batch_rows"], pick.offsets, pick.counts)
    whole = np.flatnonzero(~straddles)
    k = 0
    while k < len(whole):
        b = batch_idx[whole[k]]
        j = k
        while j < len(whole) and batch_idx[whole[j]] == b:
            j += 1
        sel = whole[k:j]
        batch = reader.batch(int(b))
        with _damage_named(reader, f"moves.arrow batch {b}"):
            decoded = codec.decode_games(games.take(pa.array(sel, pa.int64())), batch, base_offset=int(first[sel[0]]))
        yield from decoded
        k = j
    for g in np.flatnonzero(straddles).tolist():
        moves = reader.game_moves(int(pick.offsets[g]), int(pick.counts[g]))
        with _damage_named(reader, f"moves.arrow rows from {int(pick.offsets[g])}"):
            game = codec.decode_game(games.slice(g, 1), moves)
        yield game
