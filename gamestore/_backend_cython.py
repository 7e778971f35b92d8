"""The compiled moves backend: Arrow assembly around the hot loops of ``gamestore._encode`` and ``gamestore._decode``.

A complete backend, peer of :mod:`gamestore._backend_python` (the reference it must equal):
``NAME``, ``encode_moves``, ``decode_moves`` and ``batch_decoder``.  Importing this module
raises ``ImportError`` when the extensions are not compiled; :mod:`gamestore.backend` selects.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

from . import _decode, _encode  # ImportError when the extension is not built
from .arrays import numpy_array, string_array, validity_bitmap  # pa.array would import pandas (~0.2 s of CPU)
from .schema import (
    MOVE_SCALAR_FIELDS,
    POLICY_ENTRY,
    POSITION_FIELDS,
    SEARCH_ENTRY,
    SEARCH_SCALARS,
    VectorSpec,
    moves_schema,
)

__all__ = ["NAME", "encode_moves", "decode_moves", "batch_decoder"]

NAME = "cython"

_INT_FIELDS = [(k, c, t) for k, c, t, kind in MOVE_SCALAR_FIELDS if kind == "int"]
_FLOAT_FIELDS = [(k, c, t) for k, c, t, kind in MOVE_SCALAR_FIELDS if kind == "float"]
_DSTR_FIELDS = [(k, c, t) for k, c, t, kind in MOVE_SCALAR_FIELDS if kind == "str" and pa.types.is_dictionary(t)]
_STR_FIELDS = [(k, c, t) for k, c, t, kind in MOVE_SCALAR_FIELDS if kind == "str" and not pa.types.is_dictionary(t)]
_SFLOAT_FIELDS = [(k, c, t, b) for k, c, t, kind, b in SEARCH_SCALARS if kind == "float"]
_SINT_FIELDS = [(k, c, t, b) for k, c, t, kind, b in SEARCH_SCALARS if kind == "int"]


def _masked(values: np.ndarray, ok: np.ndarray, atype: pa.DataType) -> pa.Array:
    values = values.astype(atype.to_pandas_dtype(), copy=False)
    if ok.all():
        return numpy_array(values, atype)
    # zeros under null slots, so that mostly-null columns compress to almost nothing
    return numpy_array(np.where(ok, values, 0), atype, ~ok)


def _valid(values: np.ndarray, valid: np.ndarray | None, atype: pa.DataType) -> pa.Array:
    """The Arrow array of ``values`` (already 0 under its null slots) where ``valid`` (bool; None: everywhere)."""
    return numpy_array(values, atype, None if valid is None else ~valid)


def _keys(cand: np.ndarray, is_key: np.ndarray, values: list) -> tuple[pa.Array, pa.Array]:
    key, action = _encode.key_action(cand, is_key)  # each 0 where the other applies, in one pass
    return pa.DictionaryArray.from_arrays(_valid(key, is_key, pa.int32()), string_array(values)), \
        _valid(action, ~is_key, pa.int32())


def _list(offsets: np.ndarray, ok: np.ndarray, entries: pa.StructArray, entry_type: pa.DataType) -> pa.Array:
    # from its buffers: ``ListArray.from_arrays(mask=...)`` inverts the mask with pyarrow.compute, whose import
    # (~0.1 s of CPU) the first write of a process paid
    validity, nulls = validity_bitmap(~ok)
    return pa.Array.from_buffers(pa.list_(entry_type), len(ok), [validity, pa.py_buffer(offsets)], nulls,
                                 children=[entries])


def _text(col: tuple[np.ndarray, np.ndarray, np.ndarray], atype: pa.DataType = pa.string()) -> pa.Array:
    """The string column of a MoveEncoder text column: (int32 offsets, UTF-8 bytes, validity)."""
    offsets, data, ok = col
    validity, nulls = validity_bitmap(~ok)
    return pa.Array.from_buffers(atype, len(ok), [validity, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls)


def _split_float(values: np.ndarray, ok: np.ndarray | None) -> tuple[pa.Array, pa.Array]:
    """The float32 column of entry values (0.0 under their null slots) and its float64 overrides."""
    f32, f64, valid64 = _encode.entries_split(values, ok)
    return _valid(f32, ok, pa.float32()), _valid(f64, valid64, pa.float64())


def encode_moves(
    game_ids: Sequence[str], games_moves: Sequence[Sequence[Any]], vectors: Mapping[str, VectorSpec]
) -> tuple[pa.Table, list[int]]:
    """Validate and encode the moves of each game; returns the moves table and the move count per game."""
    specs = [vectors[name] for name in sorted(vectors)]
    n = sum(len(m) for m in games_moves if isinstance(m, (list, tuple)))
    enc = _encode.MoveEncoder(specs, n)
    counts: list[int] = enc.encode(list(game_ids), games_moves)
    b = enc.finish()
    schema = moves_schema(vectors)
    cols: dict[str, pa.Array] = {
        "game_id": pa.DictionaryArray.from_arrays(
            numpy_array(np.repeat(np.arange(len(counts), dtype=np.int32), counts), pa.int32()),
            string_array(list(game_ids)),
        ),
        "move_number": numpy_array(b["move_number"], pa.int32()),
    }
    for j, (_, col, atype) in enumerate(_INT_FIELDS):
        cols[col] = _masked(b["ints"][j], b["ints_ok"][j], atype)
    for j, (_, col, atype) in enumerate(_FLOAT_FIELDS):
        cols[col] = _masked(b["floats"][j], b["floats_ok"][j], atype)
    for j, (_, col, atype) in enumerate(_DSTR_FIELDS):
        cols[col] = pa.DictionaryArray.from_arrays(
            _masked(b["dstr"][j], b["dstr_ok"][j], atype.index_type), string_array(b["dstr_values"][j])
        )
    for j, (_, col, atype) in enumerate(_STR_FIELDS):
        cols[col] = _text(b["strs"][j], atype)
    for j, (_, prefix) in enumerate(POSITION_FIELDS):
        cols[f"{prefix}_x"] = _masked(b["pos"][3 * j], b["pos_ok"][j], pa.int16())
        cols[f"{prefix}_y"] = _masked(b["pos"][3 * j + 1], b["pos_ok"][j], pa.int16())
        cols[f"{prefix}_z"] = _masked(b["pos"][3 * j + 2], b["z_ok"][j], pa.int16())
    key, action = _keys(b["p_cand"], b["p_is_key"], b["p_values"])
    prob, prob64 = _split_float(b["p_prob"], None)
    entries = pa.StructArray.from_arrays([key, action, prob, prob64], fields=list(POLICY_ENTRY))
    cols["policy"] = _list(b["pol_off"], b["pol_ok"], entries, POLICY_ENTRY)
    key, action = _keys(b["s_cand"], b["s_is_key"], b["s_values"])
    q, q64 = _split_float(b["s_q"], b["s_q_ok"])
    prior, prior64 = _split_float(b["s_prior"], b["s_p_ok"])
    visits = _valid(b["s_visits"], b["s_v_ok"], pa.int32())  # 0 under nulls: entries start zeroed
    entries = pa.StructArray.from_arrays([key, action, q, q64, visits, prior, prior64], fields=list(SEARCH_ENTRY))
    cols["search"] = _list(b["srch_off"], b["srch_ok"], entries, SEARCH_ENTRY)
    flags = b["flags"]
    cols["search_flags"] = numpy_array(flags, pa.uint8())
    for j, (_, col, atype, bit) in enumerate(_SFLOAT_FIELDS):
        cols[col] = _masked(b["sfloat"][j], (flags & bit) != 0, atype)
    for j, (_, col, atype, bit) in enumerate(_SINT_FIELDS):
        cols[col] = _masked(b["sint"][j], (flags & bit) != 0, atype)
    cols["search_extra_json"] = _text(b["search_extra"])
    cols["extra_json"] = _text(b["extra"])
    for j, spec in enumerate(specs):
        flat = b["vec_bufs"][j].view(spec.numpy_dtype).reshape(-1)
        ok = b["vec_ok"][j]
        validity, nulls = validity_bitmap(~ok)
        cols[spec.column] = pa.Array.from_buffers(schema.field(spec.column).type, len(ok), [validity], nulls,
                                                  children=[numpy_array(flat, pa.from_numpy_dtype(flat.dtype))])
    return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema), counts


def _as_batch(moves: pa.Table | pa.RecordBatch) -> pa.RecordBatch:
    if isinstance(moves, pa.RecordBatch):
        return moves
    batches = moves.to_batches()
    if len(batches) != 1:
        batches = moves.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=moves.schema)


def _vector_specs(vectors: Mapping[str, VectorSpec]) -> list[tuple[str, str, tuple[int, ...], np.dtype]]:
    return [(name, s.column, tuple(s.shape), s.numpy_dtype) for name, s in sorted(vectors.items())]


def batch_decoder(
    batch: pa.RecordBatch, vectors: Mapping[str, VectorSpec], strings: dict | None = None
) -> _decode.BatchDecoder:
    """Decodes any row range of ``batch``; ``strings`` shares decoded dictionary strings across batches of one file."""
    return _decode.BatchDecoder(batch, _vector_specs(vectors), strings)


def decode_moves(moves: pa.Table | pa.RecordBatch, vectors: Mapping[str, VectorSpec]) -> list[dict]:
    """Canonical move dicts of every row of ``moves``."""
    batch = _as_batch(moves)
    if not batch.num_rows:
        return []
    return batch_decoder(batch, vectors).decode(0, batch.num_rows)
