"""Every table of a GameReplayDB file, for comparing an import's export with its source."""
from __future__ import annotations

from pathlib import Path

from gamestore.ringrift.sqlite_io import connect_readonly, read_table, schema_report
from gamestore.ringrift.tables import COLUMNS


def replay_tables(path: Path) -> dict[str, list[tuple]]:
    """``{table: rows in primary-key order}`` of every schema-v18 table of the database at ``path``."""
    con = connect_readonly(path)
    try:
        rep = schema_report(con)
        return {t: read_table(con, t, rep) for t in COLUMNS}
    finally:
        con.close()
