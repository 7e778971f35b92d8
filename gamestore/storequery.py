"""The store's own statements over the catalog (``count_games``, ``query_games``, ``info``, ...).

A caller's ``where`` and ``order_by`` are checked by :mod:`gamestore.sqlguard`
before they join a statement; the statement runs on the calling thread's
catalog connection, and DuckDB's errors reach the caller as
:class:`~gamestore.errors.QueryError` naming the statement.
"""
from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from . import sqlguard
from .catalog import Catalog
from .errors import QueryError


def where_clause(catalog: Catalog, where: str | None) -> str:
    if where is None or (isinstance(where, str) and not where.strip()):
        return ""
    sqlguard.check_predicate(where, allowed=catalog.view_names)
    return f" WHERE ({where}\n)"


def order_by_clause(catalog: Catalog, order_by: str | None) -> str:
    if not order_by:
        return ""
    sqlguard.check_order_by(order_by, allowed=catalog.view_names)
    return f" ORDER BY {order_by}\n"


def _relation(catalog: Catalog, query: str, *, execute: bool = False) -> Any:
    """``query`` on the calling thread's catalog connection: a relation, or with ``execute`` the connection
    holding its result (a relation binds the statement once more when it runs: ~0.6 ms CPU of a 1.1 ms count)."""
    try:
        con = catalog.cursor(datasets=False)
        return con.execute(query) if execute else con.sql(query)
    except duckdb.CatalogException as exc:
        if "_moves_ds" not in str(exc) and "_games_ds" not in str(exc):
            raise
        # the predicate reads a move-level view: register the shard datasets (skipped when not needed)
        con = catalog.cursor(datasets=True)
        return con.execute(query) if execute else con.sql(query)


def scalar(catalog: Catalog, query: str) -> Any:
    """The first value of ``query``'s first row."""
    try:
        return _relation(catalog, query, execute=True).fetchall()[0][0]
    except duckdb.Error as exc:
        raise QueryError(f"{exc} (in: {query})") from exc


def table(catalog: Catalog, query: str) -> pa.Table:
    """``query``'s whole result."""
    try:
        return _relation(catalog, query).to_arrow_table()
    except duckdb.Error as exc:
        raise QueryError(f"{exc} (in: {query})") from exc
