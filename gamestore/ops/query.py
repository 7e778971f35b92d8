"""``gamestore sql`` output: a query's result as an aligned table, CSV, JSON Lines or Parquet."""
from __future__ import annotations

import base64
import builtins
import csv
import datetime as _dt
import decimal
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Literal, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import QueryError
from ..fsutil import atomic_path
from .common import opened
from ..store import GameStore

__all__ = ["write_query", "QueryFormat"]

QueryFormat = Literal["table", "csv", "json", "parquet"]


def _json_default(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, _dt.timedelta):
        return v.total_seconds()
    if isinstance(v, decimal.Decimal):  # e.g. sum() of integers is a 128-bit DECIMAL in DuckDB
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _cell(v: Any) -> str:
    """Text of one value for csv/table output: nested values as JSON, bytes as base64."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, dict, tuple)):
        return json.dumps(v, default=_json_default, separators=(",", ":"))
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _json_default(v)
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    return str(v)


def _batches(rel) -> Iterator[pa.RecordBatch]:
    reader = rel.arrow()  # duckdb 2.0: a RecordBatchReader, consumed lazily
    if isinstance(reader, pa.Table):
        yield from reader.to_batches()
        return
    yield from reader


def _format_table(table: pa.Table, out: TextIO, *, max_width: int) -> None:
    names = table.column_names
    rows = []
    for row in table.to_pylist():
        cells = []
        for v in row.values():
            text = _cell(v).replace("\n", " ")
            cells.append(text if len(text) <= max_width else text[: max_width - 1] + "…")
        rows.append(cells)
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    out.write("  ".join(n.ljust(w) for n, w in zip(names, widths)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in rows:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() + "\n")
    out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")


def write_query(
    store: GameStore | str | os.PathLike,
    query: str,
    *,
    fmt: QueryFormat = "table",
    output: str | os.PathLike | None = None,
    max_width: int = 60,
    unsafe: bool = False,
) -> int:
    """Run ``query`` with :meth:`GameStore.sql` and write the result; returns the row count.

    Read-only unless ``unsafe`` (``sql(query, allow_writes=True)``; see gamestore/sqlguard.py).

    ``table`` is aligned text for people (cells cut to ``max_width``); ``csv``
    has a header row, nested values as JSON and bytes as base64; ``json`` is
    JSON Lines (one object per row); ``parquet`` needs ``output``.  Results
    are streamed, except for ``table``.  Files are written to a temporary
    name and renamed when complete.
    """
    if fmt not in ("table", "csv", "json", "parquet"):
        raise ValueError(f"unknown format {fmt!r}")
    if fmt == "parquet" and output is None:
        raise QueryError("--format parquet needs --output FILE")
    with opened(store) as s:
        rel = s.sql(query, allow_writes=unsafe)
        if rel is None:  # a statement without a result (e.g. SET)
            return 0
        if output is None:
            return _write_relation(rel, fmt, None, max_width=max_width)
        with atomic_path(output) as tmp:
            return _write_relation(rel, fmt, tmp, max_width=max_width)


def _write_relation(rel, fmt: str, path: Path | None, *, max_width: int) -> int:
    import duckdb

    rows = 0
    try:
        if fmt == "parquet":
            assert path is not None
            writer = None
            try:
                for batch in _batches(rel):
                    if writer is None:
                        writer = pq.ParquetWriter(str(path), batch.schema, compression="zstd")
                    writer.write_batch(batch)
                    rows += batch.num_rows
                if writer is None:
                    pq.write_table(rel.to_arrow_table(), str(path), compression="zstd")
            finally:
                if writer is not None:
                    writer.close()
            return rows
        f = builtins.open(path, "w", encoding="utf-8", newline="") if path is not None else None
        out = f if f is not None else sys.stdout
        try:
            if fmt == "table":
                table = rel.to_arrow_table()
                _format_table(table, out, max_width=max_width)
                return table.num_rows
            if fmt == "csv":
                w = csv.writer(out, lineterminator="\n")
                w.writerow(rel.columns)
                for batch in _batches(rel):
                    for row in batch.to_pylist():
                        w.writerow([_cell(v) for v in row.values()])
                    rows += batch.num_rows
                return rows
            for batch in _batches(rel):
                buf = io.StringIO()
                for row in batch.to_pylist():
                    buf.write(json.dumps(row, default=_json_default, ensure_ascii=False))
                    buf.write("\n")
                out.write(buf.getvalue())
                rows += batch.num_rows
            return rows
        finally:
            if f is not None:
                f.close()
            else:
                out.flush()
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from exc
