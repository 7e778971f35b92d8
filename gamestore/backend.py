"""The moves encoder backend, chosen in this one place.

``GAMESTORE_BACKEND=cython|python`` (default ``cython``).  When the compiled
module cannot be imported, gamestore warns and uses the pure-Python
reference.  Both backends expose::

    encode_moves(game_ids, games_moves, vectors) -> (pa.Table, list[int])
    decode_moves(moves_table_or_batch, vectors) -> list[dict]
    batch_decoder(record_batch, vectors, strings=None) -> BatchDecoder  (.decode(start, stop) -> list[dict])

:func:`get_backend` returns either one explicitly (tests use it to compare them).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
import pyarrow as pa

from .schema import (
    MOVE_SCALAR_FIELDS,
    POLICY_ENTRY,
    POSITION_FIELDS,
    SEARCH_ENTRY,
    SEARCH_SCALARS,
    VectorSpec,
    moves_schema,
)

__all__ = ["BACKEND", "BACKENDS", "Backend", "BatchDecoder", "get_backend", "encode_moves", "decode_moves", "batch_decoder"]

BACKENDS = ("cython", "python")


class BatchDecoder(Protocol):
    """Move dicts of any row range of one moves record batch (set up once per batch)."""

    num_rows: int

    def decode(self, start: int, stop: int) -> list[dict]: ...


@dataclass(frozen=True)
class Backend:
    """One implementation of the move hot loops."""

    name: str
    encode_moves: Callable[
        [Sequence[str], Sequence[Sequence[Any]], Mapping[str, VectorSpec]], tuple[pa.Table, list[int]]
    ]
    decode_moves: Callable[[pa.Table | pa.RecordBatch, Mapping[str, VectorSpec]], list[dict]]
    #: ``batch_decoder(batch, vectors, strings=None)``: decodes any row range of one record batch;
    #: ``strings`` (a dict the caller keeps) shares decoded dictionary strings across batches of one file
    batch_decoder: Callable[..., "BatchDecoder"]


_cache: dict[str, Backend] = {}


def get_backend(name: str) -> Backend:
    """The backend called ``name``; ``ImportError`` if ``cython`` is not compiled."""
    if name in _cache:
        return _cache[name]
    if name == "python":
        from . import _encoder_py as mod

        backend = Backend("python", mod.encode_moves, mod.decode_moves, _PyBatchDecoder)
    elif name == "cython":
        backend = _cython_backend()  # raises ImportError when the extension is not built
    else:
        raise ValueError(f"unknown gamestore backend {name!r} (choose one of {', '.join(BACKENDS)})")
    _cache[name] = backend
    return backend


def _cython_backend() -> Backend:
    from . import _decode, _encode  # noqa: F401  (ImportError when not compiled)

    return Backend("cython", _cy_encode_moves, _cy_decode_moves, _cy_batch_decoder)


# ---------------------------------------------------------------------------
# Arrow assembly around the compiled hot loops (gamestore._encode, gamestore._decode)
# ---------------------------------------------------------------------------
_INT_FIELDS = [(k, c, t) for k, c, t, kind in MOVE_SCALAR_FIELDS if kind == "int"]
_FLOAT_FIELDS = [(k, c, t) for k, c, t, kind in MOVE_SCALAR_FIELDS if kind == "float"]
_DSTR_FIELDS = [(k, c, t) for k, c, t, kind in MOVE_SCALAR_FIELDS if kind == "str" and pa.types.is_dictionary(t)]
_STR_FIELDS = [(k, c, t) for k, c, t, kind in MOVE_SCALAR_FIELDS if kind == "str" and not pa.types.is_dictionary(t)]
_SFLOAT_FIELDS = [(k, c, t, b) for k, c, t, kind, b in SEARCH_SCALARS if kind == "float"]
_SINT_FIELDS = [(k, c, t, b) for k, c, t, kind, b in SEARCH_SCALARS if kind == "int"]


def _masked(values: np.ndarray, ok: np.ndarray, atype: pa.DataType) -> pa.Array:
    values = values.astype(atype.to_pandas_dtype(), copy=False)
    if ok.all():
        return pa.array(values, type=atype)
    # zeros under null slots, so that mostly-null columns compress to almost nothing
    return pa.array(np.where(ok, values, 0), type=atype, mask=~ok)


def _keys(cand: np.ndarray, is_key: np.ndarray, values: list) -> tuple[pa.Array, pa.Array]:
    key = pa.DictionaryArray.from_arrays(_masked(cand, is_key, pa.int32()), pa.array(values, type=pa.string()))
    return key, _masked(cand, ~is_key, pa.int32())


def _list(offsets: np.ndarray, ok: np.ndarray, entries: pa.StructArray, entry_type: pa.DataType) -> pa.Array:
    return pa.ListArray.from_arrays(
        pa.array(offsets, type=pa.int32()), entries, type=pa.list_(entry_type), mask=pa.array(~ok)
    )


def _split_float(b: dict, name: str, ok: np.ndarray | None) -> tuple[pa.Array, pa.Array]:
    if ok is None:
        ok = np.ones(len(b[name]), dtype=bool)
    f32 = _masked(b[name + "32"], ok, pa.float32())
    f64 = _masked(b[name], ok & ~b[name + "_exact"], pa.float64())
    return f32, f64


def _cy_encode_moves(game_ids, games_moves, vectors):
    from . import _encode

    specs = [vectors[name] for name in sorted(vectors)]
    n = sum(len(m) for m in games_moves if isinstance(m, (list, tuple)))
    enc = _encode.MoveEncoder(specs, n)
    counts = enc.encode(list(game_ids), games_moves)
    b = enc.finish()
    schema = moves_schema(vectors)
    cols: dict[str, pa.Array] = {
        "game_id": pa.DictionaryArray.from_arrays(
            pa.array(np.repeat(np.arange(len(counts), dtype=np.int32), counts), type=pa.int32()),
            pa.array(list(game_ids), type=pa.string()),
        ),
        "move_number": pa.array(b["move_number"], type=pa.int32()),
    }
    for j, (_, col, atype) in enumerate(_INT_FIELDS):
        cols[col] = _masked(b["ints"][j], b["ints_ok"][j], atype)
    for j, (_, col, atype) in enumerate(_FLOAT_FIELDS):
        cols[col] = _masked(b["floats"][j], b["floats_ok"][j], atype)
    for j, (_, col, atype) in enumerate(_DSTR_FIELDS):
        cols[col] = pa.DictionaryArray.from_arrays(
            _masked(b["dstr"][j], b["dstr_ok"][j], atype.index_type), pa.array(b["dstr_values"][j], type=pa.string())
        )
    for j, (_, col, atype) in enumerate(_STR_FIELDS):
        cols[col] = pa.array(b["strs"][j], type=atype)
    for j, (_, prefix) in enumerate(POSITION_FIELDS):
        cols[f"{prefix}_x"] = _masked(b["pos"][3 * j], b["pos_ok"][j], pa.int16())
        cols[f"{prefix}_y"] = _masked(b["pos"][3 * j + 1], b["pos_ok"][j], pa.int16())
        cols[f"{prefix}_z"] = _masked(b["pos"][3 * j + 2], b["z_ok"][j], pa.int16())
    key, action = _keys(b["p_cand"], b["p_is_key"], b["p_values"])
    prob, prob64 = _split_float(b, "p_prob", None)
    entries = pa.StructArray.from_arrays([key, action, prob, prob64], fields=list(POLICY_ENTRY))
    cols["policy"] = _list(b["pol_off"], b["pol_ok"], entries, POLICY_ENTRY)
    key, action = _keys(b["s_cand"], b["s_is_key"], b["s_values"])
    q, q64 = _split_float(b, "s_q", b["s_q_ok"])
    prior, prior64 = _split_float(b, "s_prior", b["s_p_ok"])
    visits = _masked(b["s_visits"], b["s_v_ok"], pa.int32())
    entries = pa.StructArray.from_arrays([key, action, q, q64, visits, prior, prior64], fields=list(SEARCH_ENTRY))
    cols["search"] = _list(b["srch_off"], b["srch_ok"], entries, SEARCH_ENTRY)
    flags = b["flags"]
    cols["search_flags"] = pa.array(flags, type=pa.uint8())
    for j, (_, col, atype, bit) in enumerate(_SFLOAT_FIELDS):
        cols[col] = _masked(b["sfloat"][j], (flags & bit) != 0, atype)
    for j, (_, col, atype, bit) in enumerate(_SINT_FIELDS):
        cols[col] = _masked(b["sint"][j], (flags & bit) != 0, atype)
    cols["search_extra_json"] = pa.array(b["search_extra"], type=pa.string())
    cols["extra_json"] = pa.array(b["extra"], type=pa.string())
    for j, spec in enumerate(specs):
        flat = b["vec_bufs"][j].view(spec.numpy_dtype).reshape(-1)
        ok = b["vec_ok"][j]
        cols[spec.column] = pa.FixedSizeListArray.from_arrays(
            pa.array(flat), type=schema.field(spec.column).type, mask=None if ok.all() else pa.array(~ok)
        )
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


def _cy_batch_decoder(
    batch: pa.RecordBatch, vectors: Mapping[str, VectorSpec], strings: dict | None = None
) -> BatchDecoder:
    from . import _decode

    return _decode.BatchDecoder(batch, _vector_specs(vectors), strings)


def _cy_decode_moves(moves, vectors):
    batch = _as_batch(moves)
    if not batch.num_rows:
        return []
    return _cy_batch_decoder(batch, vectors).decode(0, batch.num_rows)


class _PyBatchDecoder:
    """The reference backend's :class:`BatchDecoder`: decodes a slice of the batch."""

    def __init__(self, batch: pa.RecordBatch, vectors: Mapping[str, VectorSpec], strings: dict | None = None) -> None:
        self._batch = batch
        self._vectors = dict(vectors)
        self.num_rows = batch.num_rows

    def decode(self, start: int, stop: int) -> list[dict]:
        if start < 0 or stop > self.num_rows or start > stop:
            raise IndexError(f"rows [{start}, {stop}) outside the batch of {self.num_rows}")
        from . import _encoder_py

        return _encoder_py.decode_moves(self._batch.slice(start, stop - start), self._vectors)


def _select() -> Backend:
    name = os.environ.get("GAMESTORE_BACKEND", "").strip().lower() or "cython"
    if name not in BACKENDS:
        raise ValueError(f"GAMESTORE_BACKEND={name!r}: choose one of {', '.join(BACKENDS)}")
    if name == "cython":
        try:
            return get_backend("cython")
        except ImportError as exc:
            warnings.warn(
                f"gamestore: compiled encoder unavailable ({exc}); using the pure-Python backend",
                RuntimeWarning,
                stacklevel=2,
            )
            return get_backend("python")
    return get_backend(name)


_selected = _select()
#: Name of the backend in use ("cython" or "python").
BACKEND: str = _selected.name
encode_moves = _selected.encode_moves
decode_moves = _selected.decode_moves
batch_decoder = _selected.batch_decoder
