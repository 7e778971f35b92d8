"""Export games for other tools: Parquet (DuckDB, Spark, pandas) and decoded games, streaming.

Exports stream shard by shard, so memory stays bounded by one shard's
games table and one moves batch whatever the size of the store.  (RingRift's
GameRecord JSONL export lives in :mod:`gamestore.ringrift.jsonl`.)
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import readpath
from ..errors import GamestoreError
from ..fsutil import atomic_path
from ..schema import GAMES_SCHEMA, VectorSpec, moves_schema
from ..shard import ShardReader
from ..store import GameStore
from .common import known_damage

__all__ = [
    "ExportResult",
    "export_parquet",
    "iter_games",
    "plain_moves_schema",
    "plain_games_schema",
    "to_plain_moves",
]

#: ``progress(iterable, total)`` wraps an iterable (e.g. in a progress bar).
Progress = Callable[[Iterable, "int | None"], Iterable]
GAMES_PARQUET = "games.parquet"
MOVES_PARQUET = "moves.parquet"


@dataclass
class ExportResult:
    """What an export wrote."""

    games: int = 0
    moves: int = 0
    files: list[str] = field(default_factory=list)
    #: damaged shards (id -> what is wrong) whose games the export lacks
    damaged_shards: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------
def _plain(t: pa.DataType) -> pa.DataType:
    """A Spark-friendly type: no dictionaries, no unsigned or half floats, no fixed-size lists."""
    if pa.types.is_dictionary(t):
        return _plain(t.value_type)
    if pa.types.is_uint8(t):
        return pa.int16()
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(pa.field("element", _plain(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain(f.type)) for f in t])
    return t


#: Entry structs of the exported policy and search lists: exact doubles, plain keys.
PLAIN_POLICY_ENTRY = pa.struct([("key", pa.string()), ("action", pa.int32()), ("prob", pa.float64())])
PLAIN_SEARCH_ENTRY = pa.struct(
    [("key", pa.string()), ("action", pa.int32()), ("q", pa.float64()), ("visits", pa.int32()), ("prior", pa.float64())]
)


def plain_moves_schema(vectors: Mapping[str, VectorSpec]) -> pa.Schema:
    """Schema of ``moves.parquet``: the moves-file columns with plain types and exact probabilities."""
    fields = []
    for f in moves_schema(vectors):
        if f.name == "policy":
            fields.append(pa.field("policy", pa.list_(pa.field("element", PLAIN_POLICY_ENTRY))))
        elif f.name == "search":
            fields.append(pa.field("search", pa.list_(pa.field("element", PLAIN_SEARCH_ENTRY))))
        else:
            fields.append(pa.field(f.name, _plain(f.type), metadata=f.metadata))
    return pa.schema(fields)


def plain_games_schema() -> pa.Schema:
    """Schema of ``games.parquet``: games-file columns, plain types, ``num_moves`` instead of the location."""
    fields = [pa.field(f.name, _plain(f.type)) for f in GAMES_SCHEMA if f.name not in ("move_offset", "move_count")]
    return pa.schema(fields + [pa.field("num_moves", pa.int32())])


def _exact(f32: pa.Array, f64: pa.Array) -> pa.Array:
    return pc.coalesce(f64, f32.cast(pa.float64()))


def _plain_entries(arr: pa.Array, kind: str) -> pa.Array:
    values = arr.flatten()
    key = values.field("key").cast(pa.string())
    action = values.field("action")
    if kind == "policy":
        children = [key, action, _exact(values.field("prob"), values.field("prob64"))]
        struct_type = PLAIN_POLICY_ENTRY
    else:
        children = [
            key,
            action,
            _exact(values.field("q"), values.field("q64")),
            values.field("visits"),
            _exact(values.field("prior"), values.field("prior64")),
        ]
        struct_type = PLAIN_SEARCH_ENTRY
    struct = pa.StructArray.from_arrays(children, fields=list(struct_type))
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int32)
    offsets = np.zeros(len(arr) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    mask = arr.is_null() if arr.null_count else None
    return pa.ListArray.from_arrays(pa.array(offsets), struct, type=pa.list_(pa.field("element", struct_type)), mask=mask)


def _cast_plain(arr: pa.Array, type_: pa.DataType) -> pa.Array:
    if arr.type == type_:
        return arr
    if pa.types.is_fixed_size_list(arr.type):
        values = arr.flatten().cast(type_.value_type)
        size = arr.type.list_size
        offsets = np.arange(len(arr) + 1, dtype=np.int32) * size
        # null vectors keep their (null-padded) slots out of the plain list
        lengths = np.where(arr.is_null().to_numpy(zero_copy_only=False), 0, size).astype(np.int32)
        if arr.null_count:
            keep = np.repeat(lengths > 0, size)
            values = values.filter(pa.array(keep))
            offsets = np.zeros(len(arr) + 1, dtype=np.int32)
            np.cumsum(lengths, out=offsets[1:])
        mask = arr.is_null() if arr.null_count else None
        return pa.ListArray.from_arrays(pa.array(offsets), values, type=type_, mask=mask)
    return arr.cast(type_)


def to_plain_moves(batch: pa.RecordBatch | pa.Table, schema: pa.Schema) -> pa.Table:
    """Convert moves-file rows to ``schema`` (from :func:`plain_moves_schema`); missing vectors become nulls."""
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    table = table.combine_chunks()
    cols = []
    for f in schema:
        if f.name not in table.column_names:
            cols.append(pa.nulls(table.num_rows, f.type))
            continue
        col = table.column(f.name)
        arr = col.chunk(0) if col.num_chunks else pa.array([], col.type)
        if f.name in ("policy", "search"):
            cols.append(_plain_entries(arr, f.name))
        else:
            cols.append(_cast_plain(arr, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _plain_games(games: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = []
    for f in schema:
        src = "move_count" if f.name == "num_moves" else f.name
        cols.append(games.column(src).cast(f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def export_parquet(
    store: GameStore,
    dest: str | os.PathLike,
    *,
    where: str | None = None,
    compression: str = "zstd",
    overwrite: bool = False,
    row_group_rows: int = 65536,
    progress: Progress | None = None,
) -> ExportResult:
    """Write ``DEST/games.parquet`` (one row per game) and ``DEST/moves.parquet`` (one row per move).

    Types are plain (strings, not dictionaries; lists, not fixed-size
    lists; no unsigned or half-precision numbers) so DuckDB, Spark and
    pandas read them alike; policy and search values are exact doubles.
    Both files are written under temporary names and renamed at the end.
    """
    dest = Path(dest)
    targets = [dest / GAMES_PARQUET, dest / MOVES_PARQUET]
    if not overwrite and any(t.exists() for t in targets):
        raise GamestoreError(f"{dest} already holds an export (use --overwrite to replace it)")
    dest.mkdir(parents=True, exist_ok=True)
    result = ExportResult(damaged_shards=known_damage(store))
    picks = store.select_games(where).picks()
    vectors = store.catalog.vectors()
    gschema, mschema = plain_games_schema(), plain_moves_schema(vectors)
    with atomic_path(targets[0]) as gtmp, atomic_path(targets[1]) as mtmp:
        with pq.ParquetWriter(str(gtmp), gschema, compression=compression) as gw, \
                pq.ParquetWriter(str(mtmp), mschema, compression=compression) as mw:
            pending: list[pa.Table] = []
            pending_rows = 0
            for pick, reader in _intact(store, picks if progress is None else progress(picks, len(picks)), result):
                gw.write_table(_plain_games(reader.games.take(pa.array(pick.rows, pa.int64())), gschema))
                result.games += pick.num_games
                for batch in readpath.shard_batches(reader, pick):
                    pending.append(to_plain_moves(batch, mschema))
                    pending_rows += batch.num_rows
                    if pending_rows >= row_group_rows:
                        mw.write_table(pa.concat_tables(pending), row_group_size=row_group_rows)
                        result.moves += pending_rows
                        pending, pending_rows = [], 0
            if pending:
                mw.write_table(pa.concat_tables(pending), row_group_size=row_group_rows)
                result.moves += pending_rows
    result.files = [str(t) for t in targets]
    return result


# ---------------------------------------------------------------------------
# Decoded games, streaming
# ---------------------------------------------------------------------------
def iter_games(store: GameStore, where: str | None = None, *, skipped: ExportResult | None = None) -> Iterator[dict]:
    """Canonical records of the matching games, decoded one moves batch at a time (bounded memory).

    A damaged shard raises :class:`~gamestore.errors.ShardCorruptError`; with ``skipped``, it is checked whole
    before any of its games is yielded, skipped, and named in ``skipped.damaged_shards``."""
    picks = store.select_games(where).picks()
    if skipped is None:
        for pick in picks:
            yield from readpath.iter_games(readpath.reader_for(store.catalog, pick), pick)
        return
    skipped.damaged_shards.update(known_damage(store))
    for pick, reader in _intact(store, picks, skipped):
        yield from readpath.iter_games(reader, pick)


def _intact(store: GameStore, picks: Iterable[readpath.ShardPick], result: ExportResult) -> Iterator[tuple[readpath.ShardPick, "ShardReader"]]:
    """The picks whose shard passes every checksum now, with its reader; damaged ones are named in ``result``."""
    for pick in picks:
        reader = readpath.intact_reader(store.catalog, pick.shard_id)
        if reader is None:
            result.damaged_shards[pick.shard_id] = [store.catalog.damage().get(pick.shard_id, "unreadable")]
        else:
            yield pick, reader
