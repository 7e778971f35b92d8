"""Arrow arrays made from their buffers, and integer columns read from theirs, without pyarrow's pandas layer.

``pa.array`` and ``to_numpy`` go through pyarrow's pandas conversion code,
whose first call in a process imports pandas when it is installed: 0.25 s
of CPU, as much as a whole statement of DuckDB over Parquet.  Opening a
store and running its first SQL statement over ``moves`` use these instead
(tests/test_sqlscan.py checks that a fresh process does not import pandas).
The write path (move and games columns, the seal, catalog segments) builds its arrays here too, so
a writing process never loads pandas either (tests/test_arrays_without_pandas.py); string columns
go through the compiled ``_arrays.utf8_buffers`` (faster than ``pa.array``).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa

__all__ = ["bool_array", "empty_table", "int_values", "string_array", "numpy_array", "from_pylist", "list_lengths", "rows_table",
           "validity_bitmap"]


def int_values(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The values of an integer column as int64 (a column with nulls or of another type: through ``to_numpy``)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = []
    for c in chunks:
        if c.null_count or not pa.types.is_integer(c.type):
            return column.to_numpy(zero_copy_only=False).astype(np.int64)
        dtype = np.dtype(f"<{'i' if pa.types.is_signed_integer(c.type) else 'u'}{c.type.bit_width // 8}")
        parts.append(np.frombuffer(c.buffers()[1], dtype=dtype, count=len(c) + c.offset)[c.offset:].astype(np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def list_lengths(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The length of each list of a list column as int64, 0 for a null (``pc.fill_null(pc.list_value_length(c), 0)``)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = [np.zeros(0, dtype=np.int64)]
    for c in chunks:
        offsets = np.frombuffer(c.buffers()[1], dtype=np.int32, count=len(c) + 1 + c.offset)[c.offset:]
        lengths = np.diff(offsets).astype(np.int64)
        if c.null_count:
            valid = np.unpackbits(np.frombuffer(c.buffers()[0], dtype=np.uint8), bitorder="little")
            lengths *= valid[c.offset : c.offset + len(c)]
        parts.append(lengths)
    return np.concatenate(parts)


def string_array(values: Sequence[str | None], atype: pa.DataType = pa.string()) -> pa.Array:
    """``pa.array(values, atype)`` for a string or binary type (None: null)."""
    return _binary(values, atype)


def validity_bitmap(null: np.ndarray) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap of ``null`` (True: null) and the null count; no bitmap when nothing is null."""
    nulls = int(np.count_nonzero(null))
    if not nulls:
        return None, 0
    return pa.py_buffer(np.packbits(~null, bitorder="little")), nulls


def _py_utf8_buffers(values: list, large: bool) -> tuple[np.ndarray, bytes, np.ndarray | None]:
    """``(offsets, UTF-8 data, null or None)`` of a list of str/None (the reference of ``_arrays.utf8_buffers``)."""
    if any(v is not None and type(v) is not str for v in values):
        bad = next(v for v in values if v is not None and type(v) is not str)
        raise TypeError(f"expected str or None, got {type(bad).__name__}")
    return _offsets_data([b"" if v is None else v.encode() for v in values], values, large)


def _offsets_data(data: list[bytes], values: Sequence[Any], large: bool) -> tuple[np.ndarray, bytes, np.ndarray | None]:
    offsets = np.zeros(len(data) + 1, dtype=np.int64 if large else np.int32)
    np.cumsum(np.fromiter(map(len, data), dtype=np.int64, count=len(data)), out=offsets[1:])
    null = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    return offsets, b"".join(data), null if null.any() else None


try:  # the same in C, as fast as pa.array (tests/test_arrays_without_pandas.py)
    from ._arrays import utf8_buffers as _utf8_buffers
except ImportError:  # pragma: no cover - extension not built
    _utf8_buffers = _py_utf8_buffers


def _binary(values: Sequence[Any], atype: pa.DataType) -> pa.Array:
    large = pa.types.is_large_string(atype) or pa.types.is_large_binary(atype)
    if pa.types.is_string(atype) or pa.types.is_large_string(atype):
        offsets, data, null = _utf8_buffers(values if type(values) is list else list(values), large)
    else:
        offsets, data, null = _offsets_data([b"" if v is None else bytes(v) for v in values], values, large)
    validity, nulls = validity_bitmap(null) if null is not None else (None, 0)
    return pa.Array.from_buffers(atype, len(offsets) - 1, [validity, pa.py_buffer(offsets), pa.py_buffer(data)],
                                 null_count=nulls)


def numpy_array(values: np.ndarray, atype: pa.DataType, mask: np.ndarray | None = None) -> pa.Array:
    """``pa.array(values, type=atype, mask=mask)`` for a 1-d numpy array of a fixed-width number or bool type
    (``values`` converted with numpy's ``astype``; ``mask`` True: null)."""
    n = len(values)
    validity, nulls = validity_bitmap(np.asarray(mask, dtype=bool)) if mask is not None else (None, 0)
    if pa.types.is_boolean(atype):
        data = pa.py_buffer(np.packbits(np.asarray(values, dtype=bool), bitorder="little"))
    else:
        data = pa.py_buffer(np.ascontiguousarray(values, dtype=np.dtype(atype.to_pandas_dtype())))
    return pa.Array.from_buffers(atype, n, [validity, data], null_count=nulls)


def from_pylist(values: Sequence[Any], atype: pa.DataType) -> pa.Array:
    """``pa.array(values, type=atype)`` for validated Python values (None: null) of numbers, bools, strings,
    binaries, and lists and structs of those."""
    if pa.types.is_integer(atype) or pa.types.is_floating(atype) or pa.types.is_boolean(atype):
        null = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
        dtype = bool if pa.types.is_boolean(atype) else np.dtype(atype.to_pandas_dtype())
        return numpy_array(np.array([0 if v is None else v for v in values], dtype=dtype), atype, null)
    if pa.types.is_string(atype) or pa.types.is_large_string(atype) or pa.types.is_binary(atype) or \
            pa.types.is_large_binary(atype):
        return _binary(values, atype)
    null = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    validity, nulls = validity_bitmap(null)
    if pa.types.is_list(atype):
        lengths = [0 if v is None else len(v) for v in values]
        offsets = np.zeros(len(values) + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        items = from_pylist([x for v in values if v is not None for x in v], atype.value_type)
        return pa.ListArray.from_buffers(atype, len(values), [validity, pa.py_buffer(offsets)], null_count=nulls,
                                         children=[items])
    if pa.types.is_struct(atype):
        children = [from_pylist([None if v is None else v.get(f.name) for v in values], f.type) for f in atype]
        return pa.StructArray.from_buffers(atype, len(values), [validity], null_count=nulls, children=children)
    raise TypeError(f"from_pylist does not build {atype}")


def bool_array(mask: np.ndarray) -> pa.Array:
    """``pa.array(mask)`` of a numpy bool array."""
    bits = np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(bits)])


def empty_table(schema: pa.Schema) -> pa.Table:
    """``schema.empty_table()``."""
    return pa.table([pa.nulls(0, f.type) for f in schema], schema=schema)


def rows_table(rows: Sequence[Any], schema: pa.Schema) -> pa.Table:
    """``pa.Table.from_pylist(rows, schema=schema)`` (rows: mappings) through :func:`from_pylist`."""
    return pa.Table.from_arrays([from_pylist([r.get(f.name) for r in rows], f.type) for f in schema], schema=schema)
