"""Arrow arrays made from their buffers, and integer columns read from theirs, without pyarrow's pandas layer.

``pa.array`` and ``to_numpy`` go through pyarrow's pandas conversion code,
whose first call in a process imports pandas when it is installed: 0.25 s
of CPU, as much as a whole statement of DuckDB over Parquet.  Opening a
store and running its first SQL statement over ``moves`` use these instead
(tests/test_sqlscan.py checks that a fresh process does not import pandas).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

__all__ = ["bool_array", "empty_table", "int_values", "string_array"]


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


def string_array(values: Sequence[str]) -> pa.Array:
    """``pa.array(values, pa.string())``."""
    data = [v.encode() for v in values]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    np.cumsum([len(d) for d in data], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])


def bool_array(mask: np.ndarray) -> pa.Array:
    """``pa.array(mask)`` of a numpy bool array."""
    bits = np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(bits)])


def empty_table(schema: pa.Schema) -> pa.Table:
    """``schema.empty_table()``."""
    return pa.table([pa.nulls(0, f.type) for f in schema], schema=schema)
