"""Reading and writing GameReplayDB SQLite files, table by table.

:func:`read_games` streams the rows of each game (all per-game tables, in
primary-key order) from a database of any schema version: columns an older
schema lacks read as NULL, and :func:`schema_report` says which.
:func:`create_v18` writes an empty v18 database with RingRift's exact DDL;
:func:`insert_game_rows` fills it.
"""
from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from .tables import COLUMNS, GAME_TABLES, PRIMARY_KEYS, STORE_TABLES, V18_DDL

__all__ = [
    "SchemaReport",
    "connect_readonly",
    "schema_report",
    "read_games",
    "game_ids",
    "read_table",
    "create_v18",
    "finish_v18",
    "insert_rows",
]


@dataclass
class SchemaReport:
    """What a GameReplayDB holds compared with schema v18."""

    schema_version: int | None
    tables: dict[str, list[str]]  # table -> columns present (v18 names only)
    missing_tables: list[str] = field(default_factory=list)
    missing_columns: dict[str, list[str]] = field(default_factory=dict)
    extra_columns: dict[str, list[str]] = field(default_factory=dict)  # not in v18: not imported

    def lines(self) -> list[str]:
        out = []
        if self.missing_tables:
            out.append("tables missing (imported as empty): " + ", ".join(self.missing_tables))
        for t, cols in self.missing_columns.items():
            out.append(f"{t}: columns missing (imported as NULL): {', '.join(cols)}")
        for t, cols in self.extra_columns.items():
            out.append(f"{t}: columns not in schema v18 (NOT imported): {', '.join(cols)}")
        return out


def connect_readonly(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-only connection (the file is never modified)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no SQLite file at {p}")
    con = sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True)
    con.execute("PRAGMA query_only = 1")
    return con


def schema_report(con: sqlite3.Connection) -> SchemaReport:
    present = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    tables: dict[str, list[str]] = {}
    report = SchemaReport(schema_version=None, tables=tables)
    for t, cols in COLUMNS.items():
        if t not in present:
            report.missing_tables.append(t)
            continue
        have = [r[1] for r in con.execute(f'PRAGMA table_info("{t}")')]
        tables[t] = [c for c in cols if c in have]
        missing = [c for c in cols if c not in have]
        extra = [c for c in have if c not in cols]
        if missing:
            report.missing_columns[t] = missing
        if extra:
            report.extra_columns[t] = extra
    if "schema_metadata" in tables:
        row = con.execute("SELECT value FROM schema_metadata WHERE key = 'schema_version'").fetchone()
        if row is not None:
            try:
                report.schema_version = int(row[0])
            except (TypeError, ValueError):
                pass
    return report


def _select(table: str, report: SchemaReport) -> str:
    have = set(report.tables.get(table, ()))
    return ", ".join(f'"{c}"' if c in have else f'NULL AS "{c}"' for c in COLUMNS[table])


def read_table(con: sqlite3.Connection, table: str, report: SchemaReport) -> list[tuple]:
    """All rows of a (store-level) table, in primary-key order."""
    if table not in report.tables:
        return []
    order = ", ".join(f'"{c}"' for c in PRIMARY_KEYS[table])
    return con.execute(f'SELECT {_select(table, report)} FROM "{table}" ORDER BY {order}').fetchall()


def count_games(con: sqlite3.Connection, report: SchemaReport) -> int:
    if "games" not in report.tables:
        return 0
    return int(con.execute("SELECT COUNT(*) FROM games").fetchone()[0])


def game_ids(con: sqlite3.Connection, report: SchemaReport) -> list:
    """Every ``games.game_id``, in rowid order."""
    if "games" not in report.tables:
        return []
    return [r[0] for r in con.execute("SELECT game_id FROM games ORDER BY rowid")]


def read_games(
    con: sqlite3.Connection, report: SchemaReport, *, batch: int = 64, ids: Sequence | None = None
) -> Iterator[dict[str, list[tuple]]]:
    """Yield ``{table: rows}`` for each game of ``games`` (in rowid order, or for ``ids`` in that order), rows in primary-key order."""
    if "games" not in report.tables:
        return
    if ids is not None:
        for k in range(0, len(ids), batch):
            part = list(ids[k : k + batch])
            marks = ", ".join("?" * len(part))
            games = con.execute(f"SELECT {_select('games', report)} FROM games WHERE game_id IN ({marks})", part).fetchall()
            order = {g: n for n, g in enumerate(part)}
            games.sort(key=lambda g: order.get(g[0], len(order)))
            yield from _read_children(con, report, games)
        return
    cur = con.execute(f"SELECT {_select('games', report)} FROM games ORDER BY rowid")
    while True:
        games = cur.fetchmany(batch)
        if not games:
            return
        yield from _read_children(con, report, games)


def _read_children(con: sqlite3.Connection, report: SchemaReport, games: list[tuple]) -> Iterator[dict[str, list[tuple]]]:
    """The rows of every per-game table for ``games`` (rows of ``games``), one dict per game in that order."""
    child_tables = [t for t in GAME_TABLES if t != "games" and t in report.tables]
    ids = [g[0] for g in games]
    per: dict[object, dict[str, list[tuple]]] = {gid: {t: [] for t in GAME_TABLES} for gid in ids}
    for g in games:
        per[g[0]]["games"].append(g)
    marks = ", ".join("?" * len(ids))
    for t in child_tables:
        order = ", ".join(f'"{c}"' for c in PRIMARY_KEYS[t])
        q = f'SELECT {_select(t, report)} FROM "{t}" WHERE game_id IN ({marks}) ORDER BY {order}'
        for row in con.execute(q, ids):
            per[row[0]][t].append(row)
    for gid in ids:
        yield per[gid]


def unowned_rows(con: sqlite3.Connection, report: SchemaReport) -> dict[str, int]:
    """Rows of per-game tables whose game_id has no ``games`` row (they cannot be imported)."""
    out: dict[str, int] = {}
    if "games" not in report.tables:
        return out
    for t in GAME_TABLES:
        if t == "games" or t not in report.tables:
            continue
        n = con.execute(f'SELECT COUNT(*) FROM "{t}" WHERE game_id NOT IN (SELECT game_id FROM games)').fetchone()[0]
        if n:
            out[t] = int(n)
    return out


def create_v18(path: str | Path) -> sqlite3.Connection:
    """Create an empty schema-v18 GameReplayDB (tables and indexes; triggers come in :func:`finish_v18`)."""
    p = Path(path)
    if p.exists():
        raise FileExistsError(f"{p} exists")
    con = sqlite3.connect(str(p), isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = OFF")
    con.execute("BEGIN")
    for kind, _name, sql in V18_DDL:
        if kind != "trigger":
            con.execute(sql)
    return con


def finish_v18(con: sqlite3.Connection) -> None:
    """Create the triggers (after the data: they check moves of completed games), commit, checkpoint."""
    for kind, _name, sql in V18_DDL:
        if kind == "trigger":
            con.execute(sql)
    con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("PRAGMA synchronous = FULL")


def insert_rows(con: sqlite3.Connection, table: str, rows: Sequence[tuple]) -> None:
    if not rows:
        return
    cols = COLUMNS[table]
    names = ", ".join(f'"{c}"' for c in cols)
    marks = ", ".join("?" * len(cols))
    con.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', rows)


def insert_game_rows(con: sqlite3.Connection, rows: Mapping[str, Sequence[tuple]]) -> None:
    for t in GAME_TABLES:
        insert_rows(con, t, rows.get(t, ()))


STORE_TABLE_NAMES = STORE_TABLES
