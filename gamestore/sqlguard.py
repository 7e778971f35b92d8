"""The SQL trust model: what caller-supplied SQL text may do (README "SQL trust model").

* ``where=`` and ``order_by=`` arguments are **one SQL expression** each (a
  list of sort keys for ``order_by``).  They are parsed by DuckDB's own parser
  before use: stacked statements, clause injection (``1=1) UNION SELECT ...``,
  ``LIMIT``, ``GROUP BY``) and table functions or file names anywhere inside
  them (``read_text('/etc/passwd')``, ``FROM 'x.csv'``) are rejected with
  :class:`QueryError`; subqueries over the store's own views are allowed.
* :meth:`GameStore.sql` and ``gamestore sql`` run one read-only statement
  (``SELECT``, ``WITH``, ``FROM``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``,
  ``EXPLAIN``); ``COPY``, ``ATTACH``, ``CREATE``, ``DROP``, ``SET``, ``INSTALL``,
  ``LOAD``, ... are rejected before they run.
* Every query of the store runs on a DuckDB database with
  ``enable_external_access = false`` and ``lock_configuration = true``
  (DuckDB's "Securing DuckDB" settings): no file, network or extension
  access, and no statement can switch that back on.  The store's own views
  reach the shards through registered Arrow datasets, which this does not
  affect.
* Trusted code opts out with ``store.sql(query, allow_writes=True)`` or
  ``gamestore sql --unsafe``: any statement, run on a private full-access
  DuckDB database holding a snapshot of the views, so even a ``DROP VIEW``
  leaves the store's handle intact.

Every error is a :class:`QueryError` with DuckDB's exception chained.
"""
from __future__ import annotations

import functools
import json
import threading
from typing import Any, Collection, Iterator

import duckdb

from .errors import QueryError
from .lifecycle import Closable, closed_error

__all__ = ["check_predicate", "check_order_by", "check_query", "lock_down", "Relation", "READ_ONLY_STATEMENTS"]

#: Statement types :meth:`GameStore.sql` runs without ``allow_writes``.
READ_ONLY_STATEMENTS = frozenset({"SELECT", "EXPLAIN"})

_local = threading.local()


def _parser() -> duckdb.DuckDBPyConnection:
    """A private, locked-down DuckDB connection of this thread, used only to parse."""
    con = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect(":memory:")
        lock_down(con)
        _local.con = con
    return con


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """Switch off file/network/extension access of ``con``'s database, for good."""
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _statement_types(query: str, parser: duckdb.DuckDBPyConnection | None) -> list[str]:
    try:
        # duckdb.extract_statements would create DuckDB's default database on first use (~15 ms)
        statements = (parser or _parser()).extract_statements(query)
    except duckdb.Error as exc:
        raise QueryError(f"{exc}") from exc
    return [str(s.type).rsplit(".", 1)[-1] for s in statements]


def _parse(query: str) -> dict:
    """DuckDB's parse tree of ``query`` (one statement) as JSON."""
    try:
        text = _parser().execute("SELECT json_serialize_sql(?::VARCHAR)", [query]).fetchone()[0]  # type: ignore[index]
    except duckdb.Error as exc:
        raise QueryError(f"{exc}") from exc
    tree = json.loads(text)
    if tree.get("error"):
        raise QueryError(str(tree.get("error_message", "cannot parse")))
    statements = tree.get("statements", [])
    if len(statements) != 1:
        raise QueryError("more than one statement")
    return statements[0]["node"]


def _walk(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _cte_names(node: Any) -> set[str]:
    names: set[str] = set()
    for d in _walk(node):
        cte = d.get("cte_map")
        if isinstance(cte, dict):
            for entry in cte.get("map", []):
                key = entry.get("key") if isinstance(entry, dict) else None
                if isinstance(key, str):
                    names.add(key.lower())
    return names


def _check_sources(node: Any, allowed: Collection[str] | None, what: str) -> None:
    """No table function, and no table other than ``allowed`` views (or CTEs), anywhere in ``node``."""
    ctes = _cte_names(node)
    for d in _walk(node):
        kind = d.get("type")
        if kind == "TABLE_FUNCTION":
            fn = d.get("function", {})
            name = fn.get("function_name") if isinstance(fn, dict) else None
            raise QueryError(f"{what}: table function {name or '?'}() is not allowed")
        if kind == "BASE_TABLE":
            name = str(d.get("table_name", ""))
            if d.get("catalog_name") or d.get("schema_name"):
                raise QueryError(f"{what}: qualified table names are not allowed ({name!r})")
            if allowed is not None and name.lower() not in allowed and name.lower() not in ctes:
                raise QueryError(f"{what}: unknown table {name!r} (views: {', '.join(sorted(allowed))})")


def _plain_select(node: dict, what: str) -> None:
    bad = (
        node.get("type") != "SELECT_NODE"
        or node.get("cte_map", {}).get("map")
        or node.get("group_expressions")
        or node.get("group_sets")
        or node.get("having") is not None
        or node.get("qualify") is not None
        or node.get("sample") is not None
        or (node.get("from_table") or {}).get("table_name") != "games"
    )
    if bad:
        raise QueryError(f"{what} must be one SQL expression")


def _embedded(expr: str, template: str, what: str) -> dict:
    """The parse tree of ``template`` with ``expr`` in it, when that is one plain SELECT over ``games``."""
    query = template.format(expr)
    types = _statement_types(query, None)
    if types != ["SELECT"]:
        raise QueryError(f"{what} must be one SQL expression, not {len(types)} statements")
    node = _parse(query)
    _plain_select(node, what)
    return node


def check_predicate(expr: str, *, allowed: Collection[str] | None = None, what: str = "where") -> str:
    """``expr`` when it is one SQL boolean expression over ``games`` (subqueries only over ``allowed`` views)."""
    _require_str(expr, what)
    _checked_predicate(expr, _frozen(allowed), what)
    return expr


def check_order_by(expr: str, *, allowed: Collection[str] | None = None, what: str = "order_by") -> str:
    """``expr`` when it is a list of sort keys (``col [ASC|DESC] [NULLS FIRST|LAST], ...``)."""
    _require_str(expr, what)
    _checked_order_by(expr, _frozen(allowed), what)
    return expr


# Accepted expressions are remembered: a check parses through DuckDB and walks its parse tree as JSON (about a
# millisecond and thousands of short-lived objects, which also drive garbage-collector passes), while programs
# repeat the same few predicates.  The verdict depends only on the arguments; rejections are not remembered.
@functools.lru_cache(maxsize=512)
def _checked_predicate(expr: str, allowed: frozenset[str] | None, what: str) -> None:
    node = _embedded(expr, "SELECT * FROM games WHERE ({}\n)", what)
    if node.get("modifiers") or node.get("where_clause") is None:
        raise QueryError(f"{what} must be one SQL expression")
    _check_sources(node.get("where_clause"), _lower(allowed), what)


@functools.lru_cache(maxsize=512)
def _checked_order_by(expr: str, allowed: frozenset[str] | None, what: str) -> None:
    node = _embedded(expr, "SELECT * FROM games ORDER BY {}\n", what)
    mods = node.get("modifiers") or []
    if node.get("where_clause") is not None or len(mods) != 1 or mods[0].get("type") != "ORDER_MODIFIER":
        raise QueryError(f"{what} must be one ORDER BY list")
    _check_sources(mods[0], _lower(allowed), what)


def _require_str(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise QueryError(f"{what} must be a str, not {type(value).__name__}")


def _frozen(names: Collection[str] | None) -> frozenset[str] | None:
    return None if names is None else frozenset(names)


def check_query(query: str, *, parser: duckdb.DuckDBPyConnection | None = None) -> None:
    """Raise :class:`QueryError` unless ``query`` is one read-only statement.

    ``parser``: a connection (of the calling thread) to split the statements with; by default one of this
    module's own."""
    _require_str(query, "query")
    types = _statement_types(query, parser)
    if len(types) != 1:
        raise QueryError(f"expected one statement, got {len(types)} (use allow_writes=True for scripts)")
    if types[0] not in READ_ONLY_STATEMENTS:
        raise QueryError(
            f"{types[0]} statements are not allowed in read-only SQL (trusted code: sql(..., allow_writes=True)"
            " or gamestore sql --unsafe)"
        )


class Relation:
    """A DuckDB relation whose every method raises :class:`QueryError` (DuckDB's error chained).

    Everything of ``duckdb.DuckDBPyRelation`` is there (``fetchall``,
    ``to_arrow_table``, ``arrow``, ``limit``, ``columns``, ...); methods that
    return a relation return a :class:`Relation` again.
    """

    __slots__ = ("_rel", "_parent", "_store", "__weakref__")

    def __init__(self, rel: duckdb.DuckDBPyRelation, parent: "Relation | None" = None,
                 store: Closable | None = None) -> None:
        self._rel = rel
        self._parent = parent  # relations made from this one keep it (and its connection) alive
        self._store = store  # its close makes every later call raise StoreClosedError (gamestore/lifecycle.py)

    @property
    def relation(self) -> duckdb.DuckDBPyRelation:
        """The DuckDB relation itself (its errors are DuckDB's)."""
        return self._rel

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._rel, name)
        if not callable(value):
            return value

        store = self._store

        def call(*args: Any, **kwargs: Any) -> Any:
            if store is not None and store.closed:
                raise closed_error(store)
            try:
                out = value(*args, **kwargs)
            except duckdb.Error as exc:
                if store is not None and store.closed:
                    raise closed_error(store, "a SQL statement") from exc
                raise QueryError(str(exc)) from exc
            return Relation(out, self, store) if isinstance(out, duckdb.DuckDBPyRelation) else out

        call.__name__ = name
        return call

    def __len__(self) -> int:
        try:
            return len(self._rel)
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from exc

    def __repr__(self) -> str:
        return f"<gamestore Relation {self._rel.columns}>"


def _lower(names: Collection[str] | None) -> set[str] | None:
    return None if names is None else {n.lower() for n in names if not n.startswith("_")}
