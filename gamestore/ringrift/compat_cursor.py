"""Rows and cursors of the compat connection (``sqlite3.Row`` / ``sqlite3.Cursor``-shaped)."""
from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import duckdb
import numpy as np

from .compat_sqltext import SCHEMA, CompatSQLError, Plan, ReadOnlySQLError, plan_for

if TYPE_CHECKING:  # pragma: no cover
    from .compat_sql import Connection

__all__ = ["Row", "Cursor"]


class Row:
    """A result row addressable by index or (case-insensitive) column name, like ``sqlite3.Row``."""

    __slots__ = ("_names", "_index", "_values")

    def __init__(self, cursor: "Cursor", values: tuple) -> None:
        self._names = cursor._names
        self._index = cursor._name_index
        self._values = values

    def keys(self) -> list[str]:
        return list(self._names)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            i = self._index.get(key.lower())
            if i is None:
                raise IndexError("No item with that key")
            return self._values[i]
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return self._names == other._names and self._values == other._values
        return NotImplemented

    def __hash__(self) -> int:
        return hash((tuple(self._names), self._values))

    def __repr__(self) -> str:
        return f"<Row {dict(zip(self._names, self._values))!r}>"



class Cursor:
    """DB-API 2.0 cursor over the compatible views (``sqlite3.Cursor``-shaped)."""

    arraysize = 1

    def __init__(self, connection: "Connection") -> None:
        self.connection = connection
        self.row_factory: Any = connection.row_factory
        self.description: tuple | None = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[tuple] = []
        self._pos = 0
        self._names: list[str] = []
        self._name_index: dict[str, int] = {}

    def execute(self, sql: str, parameters: Sequence[Any] | dict = ()) -> "Cursor":
        self.connection._check_open()
        plan = plan_for(sql)
        self._rows, self._pos, self.description = [], 0, None
        if plan.kind == "noop":
            return self
        if plan.kind == "write":
            raise ReadOnlySQLError(f"attempt to write a readonly database (gamestore compat views): {sql.strip()[:80]!r}")
        if plan.kind == "table_info":
            q = f"SELECT cid, name, type, \"notnull\", dflt_value, pk FROM {SCHEMA}._table_info WHERE tbl = ? ORDER BY cid"
            self._run(q, [plan.sql], None)
            return self
        if isinstance(parameters, dict):
            raise CompatSQLError("named parameters are not supported: use ? placeholders")
        params = list(parameters)
        self._run(plan.sql, params, plan)
        return self

    def _run(self, sql: str, params: list, plan: Plan | None) -> None:
        conn = self.connection
        ids: list[str] | None = None
        if plan is not None and plan.table is not None:
            try:
                ids = [params[i] for i in plan.id_params]
            except IndexError:
                ids = None
        try:
            with conn._duck(plan.table if plan is not None and ids is not None else None, ids) as con:
                res = con.execute(sql, params)
                desc = res.description
                rows = res.fetchall()
        except duckdb.Error as exc:
            raise CompatSQLError(f"{exc} (in: {sql.strip()[:200]})") from None
        if desc is None:
            return
        names = [d[0] for d in desc]
        if plan is not None and plan.names is not None and len(plan.names) == len(names):
            names = list(plan.names)
        fix_cols = [i for i, d in enumerate(desc) if str(d[1]) in ("BOOLEAN", "bool") or names[i] == "heuristic_features"]
        if fix_cols:
            rows = [_fix_row(r, fix_cols) for r in rows]
        self.description = tuple((n, None, None, None, None, None, None) for n in names)
        self._names = names
        self._name_index = {}
        for i, n in enumerate(names):
            self._name_index.setdefault(n.lower(), i)
        self._rows = rows

    def executemany(self, sql: str, seq: Any) -> "Cursor":
        plan = plan_for(sql)
        if plan.kind == "write":
            raise ReadOnlySQLError("attempt to write a readonly database (gamestore compat views)")
        for params in seq:
            self.execute(sql, params)
        return self

    def executescript(self, script: str) -> "Cursor":
        raise ReadOnlySQLError("attempt to write a readonly database (gamestore compat views)")

    def _make(self, row: tuple) -> Any:
        rf = self.row_factory
        if rf is None:
            return row
        if rf is sqlite3.Row or rf is Row:
            return Row(self, row)
        return rf(self, row)

    def fetchone(self) -> Any:
        if self._pos >= len(self._rows):
            return None
        row = self._rows[self._pos]
        self._pos += 1
        return self._make(row)

    def fetchmany(self, size: int | None = None) -> list[Any]:
        n = self.arraysize if size is None else size
        chunk = self._rows[self._pos : self._pos + n]
        self._pos += len(chunk)
        return [self._make(r) for r in chunk]

    def fetchall(self) -> list[Any]:
        chunk = self._rows[self._pos :]
        self._pos = len(self._rows)
        if self.row_factory is None:
            return chunk
        return [self._make(r) for r in chunk]

    def __iter__(self) -> Iterator[Any]:
        while True:
            row = self.fetchone()
            if row is None:
                return
            yield row

    def close(self) -> None:
        self._rows = []

    def setinputsizes(self, sizes: Any) -> None:
        pass

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        pass


def _fix_row(row: tuple, cols: list[int]) -> tuple:
    out = list(row)
    for i in cols:
        v = out[i]
        if type(v) is bool:
            out[i] = int(v)
        elif type(v) in (list, tuple):
            out[i] = np.asarray(v, dtype="<f4").tobytes()
    return tuple(out)
