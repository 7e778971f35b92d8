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
    return pa.array(values, type=atype, mask=None if ok.all() else ~ok)


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


def _np(arr: pa.Array, dtype) -> np.ndarray:
    """Values of ``arr`` with nulls as 0, as a C-contiguous numpy array of ``dtype``."""
    if arr.null_count:
        arr = arr.fill_null(0)
    return np.ascontiguousarray(arr.to_numpy(zero_copy_only=False), dtype=dtype)


def _ok(arr: pa.Array) -> np.ndarray:
    if not arr.null_count:
        return np.ones(len(arr), dtype=np.uint8)
    return np.ascontiguousarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=np.uint8)


def _exact(f32: pa.Array, f64: pa.Array) -> np.ndarray:
    wide = _np(f32, np.float64)
    if f64.null_count < len(f64):
        over = _ok(f64).astype(bool)
        wide[over] = _np(f64, np.float64)[over]
    return wide


def _entries(lst: pa.Array) -> tuple[np.ndarray, pa.StructArray, list, np.ndarray, np.ndarray]:
    """Offsets (from 0), the entries, their key dictionary, candidate codes and key flags of a list column."""
    offsets = lst.offsets.to_numpy(zero_copy_only=False).astype(np.int32)
    first = int(offsets[0]) if len(offsets) else 0
    entries = lst.values.slice(first, int(offsets[-1]) - first if len(offsets) else 0)
    offsets = np.ascontiguousarray(offsets - first)
    key = entries.field("key")
    is_key = _ok(key.indices)
    cand = np.where(is_key.astype(bool), _np(key.indices, np.int32), _np(entries.field("action"), np.int32))
    return offsets, entries, key.dictionary.to_pylist(), np.ascontiguousarray(cand, dtype=np.int32), is_key


def _stack(arrays: list[np.ndarray], dtype, n: int) -> np.ndarray:
    return np.ascontiguousarray(np.stack(arrays), dtype=dtype) if arrays else np.zeros((0, n), dtype=dtype)


def _cy_decode_moves(moves, vectors):
    from . import _encoder

    if isinstance(moves, pa.Table):
        moves = moves.combine_chunks()
        get = lambda name: (  # noqa: E731
            moves.column(name).chunk(0) if moves.column(name).num_chunks else pa.array([], moves.schema.field(name).type)
        )
    else:
        get = moves.column
    n = moves.num_rows
    c: dict[str, object] = {"n": n, "move_number": _np(get("move_number"), np.int32)}
    c["ints"] = _stack([_np(get(col), np.int64) for _, col, _ in _INT_FIELDS], np.int64, n)
    c["ints_ok"] = _stack([_ok(get(col)) for _, col, _ in _INT_FIELDS], np.uint8, n)
    c["floats"] = _stack([_np(get(col), np.float64) for _, col, _ in _FLOAT_FIELDS], np.float64, n)
    c["floats_ok"] = _stack([_ok(get(col)) for _, col, _ in _FLOAT_FIELDS], np.uint8, n)
    dcols = [get(col) for _, col, _ in _DSTR_FIELDS]
    c["dstr"] = _stack([_np(a.indices, np.int32) for a in dcols], np.int32, n)
    c["dstr_ok"] = _stack([_ok(a.indices) for a in dcols], np.uint8, n)
    c["dstr_values"] = [a.dictionary.to_pylist() for a in dcols]
    c["strs"] = [get(col).to_pylist() for _, col, _ in _STR_FIELDS]
    pcols = [get(f"{prefix}_{a}") for _, prefix in POSITION_FIELDS for a in "xyz"]
    c["pos"] = _stack([_np(a, np.int16) for a in pcols], np.int16, n)
    c["pos_ok"] = _stack([_ok(a) for a in pcols[0::3]], np.uint8, n)
    c["z_ok"] = _stack([_ok(a) for a in pcols[2::3]], np.uint8, n)
    policy = get("policy")
    c["pol_ok"] = _ok(policy)
    c["pol_off"], entries, c["p_values"], c["p_cand"], c["p_is_key"] = _entries(policy)
    c["p_prob"] = _exact(entries.field("prob"), entries.field("prob64"))
    search = get("search")
    c["srch_off"], entries, c["s_values"], c["s_cand"], c["s_is_key"] = _entries(search)
    c["s_q"] = _exact(entries.field("q"), entries.field("q64"))
    c["s_q_ok"] = _ok(entries.field("q"))
    c["s_visits"] = _np(entries.field("visits"), np.int32)
    c["s_v_ok"] = _ok(entries.field("visits"))
    c["s_prior"] = _exact(entries.field("prior"), entries.field("prior64"))
    c["s_p_ok"] = _ok(entries.field("prior"))
    c["flags"] = _np(get("search_flags"), np.uint8)
    c["sfloat"] = _stack([_np(get(col), np.float64) for _, col, _, _ in _SFLOAT_FIELDS], np.float64, n)
    c["sint"] = _stack([_np(get(col), np.int64) for _, col, _, _ in _SINT_FIELDS], np.int64, n)
    c["search_extra"] = get("search_extra_json").to_pylist()
    c["extra"] = get("extra_json").to_pylist()
    names, rows, oks = [], [], []
    for name in sorted(vectors):
        spec = vectors[name]
        if spec.column not in moves.schema.names:
            continue
        arr = get(spec.column)
        flat = arr.values.slice(arr.offset * spec.size, len(arr) * spec.size)
        block = np.array(flat.to_numpy(zero_copy_only=False), dtype=spec.numpy_dtype).reshape((n,) + spec.shape)
        names.append(name)
        rows.append(list(block))
        oks.append(_ok(arr))
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
