"""A DB-API 2.0 connection over a store's RingRift-compatible views, for RingRift's raw SQL.

``connect(path)`` (and ``GameReplayDB._get_conn()``) give an object shaped like
``sqlite3.Connection``: ``execute(sql, params)`` with ``?`` parameters,
cursors with ``fetchone/fetchall/fetchmany``, ``description``, ``row_factory``
(``sqlite3.Row`` or :class:`Row` give rows addressable by column name,
case-insensitively, like ``sqlite3.Row``), read-only.  Statements run on the
store's DuckDB catalog, in a schema where the v18 table names resolve to
views with the v18 columns in table order (``games`` has RingRift's 26
columns, ``sqlite_master`` lists the v18 DDL).  SQLite dialect handled
(docs/ringrift.md, "Raw SQL"): ``PRAGMA table_info(t)`` answers from the v18
DDL, other PRAGMAs and ``BEGIN/COMMIT/ROLLBACK`` are accepted and do nothing,
``heuristic_features`` comes back as the float32 bytes SQLite holds,
booleans as 0/1.  Writes raise :class:`ReadOnlySQLError` (a
``sqlite3.OperationalError``).

Point queries (one statement over one game-keyed table with a top-level
``game_id = ?`` or ``game_id IN (?, ...)``) run over just those games' rows,
read through the store's point-read path (the catalog's location of each
game), so they cost about the same whatever the store's size.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import duckdb
import pyarrow as pa

from .compat_cursor import Cursor, Row
from .compat_rows import game_moves_batch
from .compat_sqltext import _MOVE_TABLES, _VIEWS, SCHEMA, CompatSQLError, ReadOnlySQLError
from .jsontext import dumps, untag
from .tables import COLUMNS, V18_DDL

__all__ = ["Connection", "Cursor", "Row", "ReadOnlySQLError", "CompatSQLError", "connect", "install_schema"]

# ---------------------------------------------------------------------------------------------
# schema: v18 names over the store's views
# ---------------------------------------------------------------------------------------------
def _metadata_text(metadata_json: str | None, extra_json: str | None) -> str | None:
    """``games.metadata_json`` in the text RingRift wrote (the catalog keeps it compact)."""
    meta: Any = {}
    if extra_json and '"rr_metadata"' in extra_json:
        meta = json.loads(extra_json).get("rr_metadata") or {}
        if "raw" in meta:
            return untag(meta["raw"])
    if metadata_json is None:
        return None
    return dumps(json.loads(metadata_json), meta.get("st", "s"))


def _sql_str(s: str | None) -> str:
    return "NULL" if s is None else "'" + s.replace("'", "''") + "'"


def _master_rows() -> list[str]:
    rows = []
    for kind, name, sql in V18_DDL:
        m = re.search(r"\bON\s+(\w+)", sql) if kind != "table" else None
        tbl = m.group(1) if m else name
        rows.append(f"({_sql_str(kind)}, {_sql_str(name)}, {_sql_str(tbl)}, 0, {_sql_str(sql)})")
    return rows


def _table_info_rows() -> list[str]:
    rows = []
    for kind, name, sql in V18_DDL:
        if kind != "table":
            continue
        body = sql[sql.index("(") + 1 : sql.rindex(")")]
        pk_cols: list[str] = []
        m = re.search(r"PRIMARY KEY\s*\(([^)]*)\)", body)
        if m:
            pk_cols = [c.strip() for c in m.group(1).split(",")]
        cid = 0
        for line in body.split("\n"):
            line = re.sub(r"--.*", "", line).strip().rstrip(",")
            if not line or line.startswith(("PRIMARY KEY", "FOREIGN KEY", "UNIQUE", "CHECK")):
                continue
            parts = line.split()
            col, ctype = parts[0], (parts[1] if len(parts) > 1 and parts[1].isalpha() and parts[1].isupper() else "")
            rest = " ".join(parts[1:])
            notnull = int("NOT NULL" in rest)
            dm = re.search(r"DEFAULT\s+('[^']*'|\S+)", rest)
            pk = (pk_cols.index(col) + 1) if col in pk_cols else int("PRIMARY KEY" in rest)
            rows.append(f"({_sql_str(name)}, {cid}, {_sql_str(col)}, {_sql_str(ctype)}, {notnull},"
                        f" {_sql_str(dm.group(1) if dm else None)}, {pk})")  # fmt: skip
            cid += 1
    return rows


def schema_statements() -> list[str]:
    """CREATE statements of the compat schema (views over the catalog's RingRift views)."""
    s = SCHEMA
    # the base games view has every v18 column (RingRift-only ones from extra_json: views.GAMES_EXTRA_COLUMNS)
    game_cols = ", ".join(
        "rr_metadata_text(metadata_json, extra_json) AS metadata_json" if c == "metadata_json" else c
        for c in COLUMNS["games"]
    )
    stmts = [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"CREATE OR REPLACE VIEW {s}.games AS SELECT {game_cols} FROM memory.main.games",
        f"CREATE OR REPLACE VIEW {s}.sqlite_master AS SELECT * FROM (VALUES {', '.join(_master_rows())})"
        " AS t(type, name, tbl_name, rootpage, sql)",
        f"CREATE OR REPLACE VIEW {s}._table_info AS SELECT * FROM (VALUES {', '.join(_table_info_rows())})"
        " AS t(tbl, cid, name, type, \"notnull\", dflt_value, pk)",
    ]
    for v in _VIEWS[1:]:
        stmts.append(f"CREATE OR REPLACE VIEW {s}.{v} AS SELECT {', '.join(COLUMNS[v])} FROM memory.main.{v}")
    for table in _META_TABLES:  # store meta documents, registered per connection
        stmts.append(f"CREATE OR REPLACE VIEW {s}.{table} AS SELECT * FROM _rr_{table}")
    return stmts


#: v18 tables kept as store meta documents (transfer.py), as Arrow tables of their rows
_META_TABLES = {"schema_metadata": "ringrift.schema_metadata", "orphaned_games": "ringrift.orphaned_games"}


def _register_meta_tables(con: duckdb.DuckDBPyConnection, store: Any) -> None:
    for table, doc in _META_TABLES.items():
        cols = COLUMNS[table]
        rows = store.get_meta(doc) if store is not None else None
        if rows is None and table == "schema_metadata":
            rows = [["schema_version", "18"]]  # a store not imported from SQLite reads as schema v18
        rows = [[untag(v) for v in r] for r in rows or []]
        arrays = [pa.array([r[i] for r in rows], type=pa.int64() if c == "num_players" else pa.string())
                  for i, c in enumerate(cols)]  # fmt: skip
        con.register(f"_rr_{table}", pa.Table.from_arrays(arrays, names=list(cols)))


_INSTALL_LOCK = threading.Lock()


def install_schema(catalog: Any, store: Any = None) -> None:
    """Create the compat schema on the catalog's database once."""
    if getattr(catalog, "_rr_compat_schema", False):
        return
    with _INSTALL_LOCK:
        if getattr(catalog, "_rr_compat_schema", False):
            return
        con = catalog.new_connection()
        _add_udf(con)
        _register_meta_tables(con, store)
        for stmt in schema_statements():
            con.execute(stmt)
        catalog._rr_compat_schema = True


def _add_udf(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.create_function("rr_metadata_text", _metadata_text, ["VARCHAR", "VARCHAR"], "VARCHAR",  # type: ignore[call-overload]
                            null_handling="special", side_effects=False)  # fmt: skip
    except duckdb.Error:  # already registered
        pass


# ---------------------------------------------------------------------------------------------
# connection
# ---------------------------------------------------------------------------------------------
class Connection:
    """A read-only, ``sqlite3.Connection``-shaped connection over a store's compatible views."""

    Error = sqlite3.Error
    OperationalError = sqlite3.OperationalError

    def __init__(self, store: Any, *, owns_store: bool = False) -> None:
        self._store = store
        self._owns = owns_store
        self._closed = False
        self.row_factory: Any = None
        self.isolation_level: str | None = None
        self.total_changes = 0
        self.in_transaction = False
        self._local = threading.local()
        install_schema(store.catalog, store)

    # -- DuckDB connections --------------------------------------------------------------------
    def _base(self) -> duckdb.DuckDBPyConnection:
        catalog = self._store.catalog
        self._store._check_open()
        catalog.refresh()
        local = self._local
        con = getattr(local, "con", None)
        gen = catalog.snapshot_generation
        if con is None or local.gen != gen:
            con = self._new_duck()
            local.con, local.gen = con, gen
        return con

    def _new_duck(self) -> duckdb.DuckDBPyConnection:
        con = self._store.catalog.new_connection()
        _add_udf(con)
        _register_meta_tables(con, self._store)
        return con

    @contextmanager
    def _duck(self, table: str | None, ids: list[Any] | None) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self._base()
        if table is None or ids is None:
            yield con
            return
        moves, games = self._point_tables(table, ids)
        if moves is None and games is None:
            yield con
            return
        local = self._local
        pcon = getattr(local, "point", None)
        if pcon is None or local.point_gen != local.gen:
            pcon = self._new_duck()
            local.point, local.point_gen = pcon, local.gen
        if moves is not None:
            pcon.register("_moves_ds", moves)
        if games is not None:
            pcon.register("_games_ds", games)
        yield pcon

    def _point_tables(self, table: str, ids: list[Any]) -> tuple[pa.Table | None, pa.Table | None]:
        """The moves / games rows of just these games, through the catalog's locations (None: not routable)."""
        catalog = self._store.catalog
        want_moves = table in _MOVE_TABLES
        parts = []
        for gid in dict.fromkeys(ids):
            if not isinstance(gid, str):
                return None, None
            loc = catalog.locate(gid)
            if loc is None:
                continue
            reader = catalog.find_reader(loc.shard_id)
            if reader is None:
                return None, None
            if want_moves:
                found = game_moves_batch(self._store, gid)  # the point-read path's cached, decompressed batch
                t = pa.Table.from_batches([found[1]]) if found is not None else reader.game_moves(loc.move_offset, loc.num_moves)
            else:
                t = reader.games.slice(loc.row, 1)
            parts.append(t)
        if want_moves:
            from ..schema import conform

            schema = _moves_target(self._store)
            tables = [conform(t, schema) for t in parts] or [schema.empty_table()]
            return pa.concat_tables(tables), None
        from ..schema import GAMES_SCHEMA, conform

        tables = [conform(t, GAMES_SCHEMA) for t in parts] or [GAMES_SCHEMA.empty_table()]
        return None, pa.concat_tables(tables)

    # -- DB-API ---------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")

    def cursor(self, factory: Callable[..., Cursor] | None = None) -> Cursor:
        self._check_open()
        return (factory or Cursor)(self)

    def execute(self, sql: str, parameters: Sequence[Any] | dict = ()) -> Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq: Any) -> Cursor:
        return self.cursor().executemany(sql, seq)

    def executescript(self, script: str) -> Cursor:
        return self.cursor().executescript(script)

    def commit(self) -> None:
        self._check_open()

    def rollback(self) -> None:
        self._check_open()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns:
            self._store.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:  # like sqlite3: ends the transaction, does not close
        return None


def _moves_target(store: Any) -> pa.Schema:
    from ..schema import moves_schema

    return moves_schema({**store.catalog.vectors(), **store.vectors})


def connect(path: Any, *args: Any, **kwargs: Any) -> Any:
    """``sqlite3.connect`` for stores: a compatible connection when ``path`` is a gamestore directory.

    ``file:PATH?mode=ro`` URIs (``uri=True``) naming a store are accepted too.  Any other path
    (a SQLite file, ``:memory:``) goes to ``sqlite3.connect`` unchanged, so this function can
    replace ``sqlite3.connect`` in RingRift's readers (docs/ringrift.md, migration guide).
    """
    from pathlib import Path
    from urllib.parse import unquote, urlsplit

    from ..store import CONFIG_FILE

    target = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else None
    if target is not None and kwargs.get("uri") and target.startswith("file:"):
        target = unquote(urlsplit(target).path)
    if target is not None and (Path(target) / CONFIG_FILE).is_file():
        from .. import store as store_mod

        return Connection(store_mod.open(Path(target), create=False), owns_store=True)
    return _sqlite_connect(path, *args, **kwargs)


_sqlite_connect = sqlite3.connect
