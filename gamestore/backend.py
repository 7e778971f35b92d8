"""The moves encoder backend, chosen in this one place.

``GAMESTORE_BACKEND=cython|python`` (default ``cython``).  When the compiled
module cannot be imported, gamestore warns and uses the pure-Python
reference.  Both backends expose::

    encode_moves(game_ids, games_moves, vectors) -> (pa.Table, list[int])
    decode_moves(moves_table_or_batch, vectors) -> list[dict]

:func:`get_backend` returns either one explicitly (tests use it to compare them).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

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

__all__ = ["BACKEND", "BACKENDS", "Backend", "get_backend", "encode_moves", "decode_moves"]

BACKENDS = ("cython", "python")


@dataclass(frozen=True)
class Backend:
    """One implementation of the move hot loops."""

    name: str
    encode_moves: Callable[
        [Sequence[str], Sequence[Sequence[Any]], Mapping[str, VectorSpec]], tuple[pa.Table, list[int]]
    ]
    decode_moves: Callable[[pa.Table | pa.RecordBatch, Mapping[str, VectorSpec]], list[dict]]


_cache: dict[str, Backend] = {}


def get_backend(name: str) -> Backend:
    """The backend called ``name``; ``ImportError`` if ``cython`` is not compiled."""
    if name in _cache:
        return _cache[name]
    if name == "python":
        from . import _encoder_py as mod

        backend = Backend("python", mod.encode_moves, mod.decode_moves)
    elif name == "cython":
        backend = _cython_backend()  # raises ImportError when the extension is not built
    else:
        raise ValueError(f"unknown gamestore backend {name!r} (choose one of {', '.join(BACKENDS)})")
    _cache[name] = backend
    return backend


def _cython_backend() -> Backend:
    from . import _encoder  # noqa: F401  (ImportError when not compiled)

    return Backend("cython", _cy_encode_moves, _cy_decode_moves)


# ---------------------------------------------------------------------------
# Arrow assembly around the compiled hot loops (gamestore._encoder)
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
    from . import _encoder

    specs = [vectors[name] for name in sorted(vectors)]
    n = sum(len(m) for m in games_moves if isinstance(m, (list, tuple)))
    enc = _encoder.MoveEncoder(specs, n)
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


def _values(arr: pa.Array, dtype, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Zero-copy numpy view of rows ``[start, stop)`` of a primitive array (values under nulls arbitrary)."""
    stop = len(arr) if stop is None else stop
    buf = arr.buffers()[1]
    if buf is None or stop <= start or arr.null_count == len(arr):
        return np.zeros(max(stop - start, 0), dtype=dtype)
    return np.frombuffer(buf, dtype=dtype, count=arr.offset + stop)[arr.offset + start:]


_ONES = np.ones(0, dtype=np.uint8)


def _ones(n: int) -> np.ndarray:
    """A read-only array of ``n`` ones (shared)."""
    global _ONES
    if len(_ONES) < n:
        ones = np.ones(max(n, 2 * len(_ONES), 8192), dtype=np.uint8)
        ones.flags.writeable = False
        _ONES = ones
    return _ONES[:n]


def _valid(arr: pa.Array, start: int = 0, stop: int | None = None) -> np.ndarray:
    """uint8 validity of rows ``[start, stop)``."""
    stop = len(arr) if stop is None else stop
    if not arr.null_count:
        return _ones(max(stop - start, 0))
    first, last = arr.offset + start, arr.offset + stop
    bits = np.frombuffer(arr.buffers()[0], dtype=np.uint8, count=(last + 7) // 8)[first // 8:]
    return np.unpackbits(bits, bitorder="little", count=last - (first // 8) * 8)[first % 8:]


def _strings(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, utf-8 bytes)`` of a string array, for lazy decoding in the compiled loop."""
    if not len(arr):
        return np.zeros(1, dtype=np.int32), np.zeros(0, dtype=np.uint8)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=arr.offset + len(arr) + 1)[arr.offset:]
    data = np.zeros(0, dtype=np.uint8) if bufs[2] is None else np.frombuffer(bufs[2], dtype=np.uint8)
    return offsets, data


def _wide(entries: pa.StructArray, name: str, start: int, stop: int) -> np.ndarray:
    """Exact float64 values of a float32 field with its float64 override field."""
    f32 = entries.field(name)
    f64 = entries.field(name + "64")
    wide = _values(f32, np.float32, start, stop).astype(np.float64)
    if f64.null_count < len(f64):
        over = _valid(f64, start, stop).view(bool)
        wide[over] = _values(f64, np.float64, start, stop)[over]
    return wide


def _entries(c: dict, prefix: str, lst: pa.Array, floats: tuple[str, ...]) -> pa.StructArray:
    n = len(lst)
    offsets = np.frombuffer(lst.buffers()[1], dtype=np.int32, count=lst.offset + n + 1)[lst.offset:]
    start, stop = int(offsets[0]), int(offsets[-1])
    entries = lst.values
    c[prefix + "off"] = np.ascontiguousarray(offsets - start, dtype=np.int32)
    key = entries.field("key")
    indices = key.indices
    is_key = _valid(indices, start, stop)
    action = _values(entries.field("action"), np.int32, start, stop)
    c[prefix + "cand"] = np.where(is_key.view(bool), _values(indices, np.int32, start, stop), action).astype(np.int32)
    c[prefix + "is_key"] = np.ascontiguousarray(is_key)
    c[prefix + "keys"] = _strings(key.dictionary)
    for name in floats:
        c[f"{prefix}{name}"] = _wide(entries, name, start, stop)
        c[f"{prefix}{name}_ok"] = np.ascontiguousarray(_valid(entries.field(name), start, stop))
    return entries, start, stop


def _stack(arrays: list[np.ndarray], dtype, n: int) -> np.ndarray:
    out = np.empty((len(arrays), n), dtype=dtype)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


def _as_batch(moves: pa.Table | pa.RecordBatch) -> pa.RecordBatch:
    if isinstance(moves, pa.RecordBatch):
        return moves
    batches = moves.to_batches()
    if len(batches) != 1:
        batches = moves.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=moves.schema)


def _cy_decode_moves(moves, vectors):
    from . import _encoder

    batch = _as_batch(moves)
    n = batch.num_rows
    if not n:
        return []
    col = dict(zip(batch.schema.names, batch.columns))
    c: dict[str, object] = {"n": n, "move_number": np.ascontiguousarray(_values(col["move_number"], np.int32))}
    ints = [col[name] for _, name, _ in _INT_FIELDS]
    c["ints"] = _stack([_values(a, a.type.to_pandas_dtype()) for a in ints], np.int64, n)
    c["ints_ok"] = _stack([_valid(a) for a in ints], np.uint8, n)
    floats = [col[name] for _, name, _ in _FLOAT_FIELDS]
    c["floats"] = _stack([_values(a, np.float64) for a in floats], np.float64, n)
    c["floats_ok"] = _stack([_valid(a) for a in floats], np.uint8, n)
    dcols = [col[name] for _, name, _ in _DSTR_FIELDS]
    c["dstr"] = _stack([_values(a.indices, a.type.index_type.to_pandas_dtype()) for a in dcols], np.int32, n)
    c["dstr_ok"] = _stack([_valid(a.indices) for a in dcols], np.uint8, n)
    c["dstr_values"] = [_strings(a.dictionary) for a in dcols]
    c["strs"] = [col[name].to_pylist() for _, name, _ in _STR_FIELDS]
    pcols = [col[f"{prefix}_{a}"] for _, prefix in POSITION_FIELDS for a in "xyz"]
    c["pos"] = _stack([_values(a, np.int16) for a in pcols], np.int16, n)
    c["pos_ok"] = _stack([_valid(a) for a in pcols[0::3]], np.uint8, n)
    c["z_ok"] = _stack([_valid(a) for a in pcols[2::3]], np.uint8, n)
    c["pol_ok"] = np.ascontiguousarray(_valid(col["policy"]))
    _entries(c, "p_", col["policy"], ("prob",))
    entries, start, stop = _entries(c, "s_", col["search"], ("q", "prior"))
    c["s_visits"] = np.ascontiguousarray(_values(entries.field("visits"), np.int32, start, stop))
    c["s_visits_ok"] = np.ascontiguousarray(_valid(entries.field("visits"), start, stop))
    flags = np.ascontiguousarray(_values(col["search_flags"], np.uint8))
    c["flags"] = flags
    c["sfloat"] = _stack([_values(col[name], np.float64) for _, name, _, _ in _SFLOAT_FIELDS], np.float64, n)
    c["sint"] = _stack([_values(col[name], t.to_pandas_dtype()) for _, name, t, _ in _SINT_FIELDS], np.int64, n)
    c["search_extra"] = col["search_extra_json"].to_pylist()
    c["extra"] = col["extra_json"].to_pylist()
    names, rows, oks = [], [], []
    for name in sorted(vectors):
        spec = vectors[name]
        arr = col.get(spec.column)
        if arr is None:
            continue
        flat = _values(arr.values, spec.numpy_dtype, arr.offset * spec.size, (arr.offset + n) * spec.size)
        names.append(name)
        rows.append(list(flat.reshape((n,) + spec.shape).copy()))
        oks.append(_valid(arr))
    c["vec_names"], c["vec_rows"], c["vec_ok"] = names, rows, _stack(oks, np.uint8, n)
    return _encoder.decode_moves(c)


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
