"""New shards from rows of committed ones, without re-encoding (compact, prune and merge write through here)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import faults, readpath
from ..readpath import ShardPick
from ..schema import VectorSpec, conform, moves_schema
from ..shard import ShardReader, write_shard
from ..store import GameStore
from .common import union_vectors

__all__ = ["Part", "build_shard_tables", "write_parts", "successor_shard_id"]


def _recode_dictionary(arr: pa.Array, type_: pa.DataType) -> pa.Array:
    """Re-encode a dictionary array so its dictionary lists used values in order of first appearance."""
    return arr.cast(type_.value_type).cast(type_)


def _recode_list_keys(arr: pa.Array, type_: pa.ListType) -> pa.Array:
    """Re-encode the ``key`` dictionary inside a ``list<struct<key: dictionary, ...>>`` array."""
    values = arr.flatten()
    struct_type = type_.value_type
    children = []
    for i in range(struct_type.num_fields):
        f = struct_type.field(i)
        child = values.field(i)
        children.append(_recode_dictionary(child, f.type) if pa.types.is_dictionary(f.type) else child)
    struct = pa.StructArray.from_arrays(children, fields=list(struct_type))
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int32)
    offsets = np.zeros(len(arr) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    mask = arr.is_null() if arr.null_count else None
    return pa.ListArray.from_arrays(pa.array(offsets), struct, type=type_, mask=mask)


def _recode(moves: pa.Table, game_ids: list[str], counts: list[int]) -> pa.Table:
    """One chunk per column, ``game_id`` dictionary = the shard's game ids, other dictionaries minimal."""
    n = len(game_ids)
    cols = []
    for f in moves.schema:
        if f.name == "game_id":
            idx = np.repeat(np.arange(n, dtype=np.int32), np.asarray(counts, dtype=np.int64))
            col = pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32()), pa.array(game_ids, pa.string()))
        else:
            col = moves.column(f.name).combine_chunks()
            if isinstance(col, pa.ChunkedArray):  # empty table
                col = pa.concat_arrays(col.chunks) if col.num_chunks else pa.array([], f.type)
            if pa.types.is_dictionary(f.type):
                col = _recode_dictionary(col, f.type)
            elif pa.types.is_list(f.type) and pa.types.is_struct(f.type.value_type):
                st = f.type.value_type
                if any(pa.types.is_dictionary(st.field(i).type) for i in range(st.num_fields)):
                    col = _recode_list_keys(col, f.type)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=moves.schema)


@dataclass
class Part:
    """Some games of one committed shard, to be carried into a new shard."""

    reader: ShardReader
    pick: ShardPick


def _part_tables(part: Part) -> tuple[pa.Table, pa.Table]:
    """The games rows and their move rows of one part (move_offset relative to the part)."""
    reader, pick = part.reader, part.pick
    games = reader.games
    moves = pa.Table.from_batches(list(readpath.shard_batches(reader, pick)), schema=reader.moves_schema)
    if pick.num_games == games.num_rows and np.array_equal(pick.rows, np.arange(games.num_rows)):
        return games, moves
    sel = games.take(pa.array(pick.rows, pa.int64()))
    new_offsets = np.zeros(pick.num_games, dtype=np.int64)
    if pick.num_games:
        np.cumsum(pick.counts[:-1], out=new_offsets[1:])
    i = sel.schema.get_field_index("move_offset")
    sel = sel.set_column(i, sel.schema.field(i), pa.array(new_offsets, pa.int64()))
    return sel, moves


def build_shard_tables(parts: Sequence[Part], vectors: dict[str, VectorSpec]) -> tuple[pa.Table, pa.Table]:
    """Concatenate parts into the games and moves tables of one new shard (no re-encoding)."""
    mschema = moves_schema(vectors)
    games_parts, moves_parts, base = [], [], 0
    for part in parts:
        g, m = _part_tables(part)
        i = g.schema.get_field_index("move_offset")
        g = g.set_column(i, g.schema.field(i), pc.add(g.column(i), pa.scalar(base, pa.int64())))
        games_parts.append(g.replace_schema_metadata(None))
        moves_parts.append(conform(m.replace_schema_metadata(None), mschema))
        base += m.num_rows
    games = pa.concat_tables(games_parts).combine_chunks()
    moves = pa.concat_tables(moves_parts)
    moves = _recode(moves, games.column("game_id").to_pylist(), games.column("move_count").to_pylist())
    return games, moves


def successor_shard_id(replaced: Sequence[str]) -> str:
    """The id of a shard that replaces ``replaced`` (compaction, prune): it sorts where the lowest of them did.

    ``<the first three fields of the lowest replaced id>-<8 new hex>``: among
    the ids of other origins it takes that id's place, so the copy of a game
    that readers show (the one in the lowest shard id, docs/format.md
    section 6) stays the same copy when its shard is rewritten.
    """
    base = "-".join(min(replaced).split("-")[:3])
    return f"{base}-{secrets.token_hex(4)}"


def write_parts(store: GameStore, parts: Sequence[Part], *, fsync: bool, batch_rows: int = 2048,
                replaces: Sequence[str] = ()) -> str | None:
    """Write and commit one shard holding ``parts``; returns its id (None when the parts are empty).

    ``replaces``: the shards the new one supersedes (named in its manifest; readers ignore them from its commit on).
    """
    parts = [p for p in parts if p.pick.num_games]
    if not parts:
        return None
    vectors = union_vectors([p.reader.vectors for p in parts])
    games, moves = build_shard_tables(parts, vectors)
    info = write_shard(store.storage, games, moves, vectors=vectors, batch_rows=batch_rows, fsync=fsync,
                       replaces=replaces, shard_id=successor_shard_id(replaces) if replaces else None)
    faults.point("shard.committed")
    store.catalog.add_committed(info.shard_id)
    return info.shard_id
