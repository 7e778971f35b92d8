"""A GameReplayDB file read the way the importer reads it: every table, or every game's rows."""
from __future__ import annotations

from pathlib import Path

from gamestore.ringrift.sqlite_io import connect_readonly, read_games, read_table, schema_report
from gamestore.ringrift.tables import COLUMNS


def replay_tables(path: Path) -> dict[str, list[tuple]]:
    """``{table: rows in primary-key order}`` of every schema-v18 table of the database at ``path``."""
    con = connect_readonly(path)
    try:
        rep = schema_report(con)
        return {t: read_table(con, t, rep) for t in COLUMNS}
    finally:
        con.close()


def replay_games(path: Path) -> list[dict]:
    """Every game of the database at ``path``: its rows of each game table, as the importer reads them."""
    con = connect_readonly(path)
    try:
        return list(read_games(con, schema_report(con)))
    finally:
        con.close()
