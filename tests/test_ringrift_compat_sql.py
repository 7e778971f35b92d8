"""Raw SQL RingRift's code runs (gamestore.ringrift.rr_sql), on gamestore.compat.connect(store) and on the SQLite file: same rows."""
from __future__ import annotations

import json
import sqlite3

import pytest

from gamestore.compat import CompatSQLError, GameReplayDB, ReadOnlySQLError, Row, connect
from gamestore.ringrift.rr_sql import STATEMENTS, bind
from gamestore.ringrift.transfer import import_sqlite

pytestmark = pytest.mark.single_backend

_JSON_COLS = {"move_json", "move_probs", "search_stats_json", "metadata_json", "initial_state_json", "options_json",
              "selected_option_json", "available_moves_json", "progress_before_json", "progress_after_json"}  # fmt: skip


@pytest.fixture(scope="module")
def dbs(tmp_path_factory, ringrift_dbs):
    base = tmp_path_factory.mktemp("compat_sql")
    out = {}
    for name, path in ringrift_dbs.items():
        store = base / f"{name}.store"
        import_sqlite(path, store, progress=False, workers=0)
        out[name] = (path, store)
    return out


def _norm(cursor, rows, sql):
    names = [d[0] for d in cursor.description]
    out = []
    for r in rows:
        out.append(tuple(json.loads(v) if n in _JSON_COLS and isinstance(v, str) else v for n, v in zip(names, r)))
    if "ORDER BY" not in sql.upper():
        out.sort(key=repr)
    return names, out


@pytest.mark.parametrize("i", range(len(STATEMENTS)), ids=[f"{s[0]}-{n}" for n, s in enumerate(STATEMENTS)])
def test_statement_answers_like_sqlite(dbs, i):
    source, sql, params = STATEMENTS[i]
    for path, store in dbs.values():
        lite = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        ids = [r[0] for r in lite.execute("SELECT game_id FROM games ORDER BY total_moves DESC")]
        args = bind(params, ids)
        with connect(store) as conn:
            try:
                expected_cur = lite.execute(sql, args)
                expected = _norm(expected_cur, expected_cur.fetchall(), sql)
            except sqlite3.OperationalError:
                with pytest.raises(sqlite3.OperationalError):
                    conn.execute(sql, args).fetchall()
                continue
            cur = conn.execute(sql, args)
            assert _norm(cur, cur.fetchall(), sql) == expected, (source, sql)


def test_dbapi_surface(dbs):
    path, store = dbs["ringrift_v18_history"]
    conn = connect(store)
    assert connect(str(path)).__class__ is sqlite3.Connection  # other paths: sqlite3 itself
    assert isinstance(connect(f"file:{store}?mode=ro", uri=True), type(conn))
    cur = conn.execute("SELECT game_id, board_type, total_moves FROM games ORDER BY game_id")
    assert [d[0] for d in cur.description] == ["game_id", "board_type", "total_moves"]
    first = cur.fetchone()
    assert isinstance(first, tuple)
    assert len(cur.fetchmany(5)) == 1 and cur.fetchall() == [] and cur.fetchone() is None
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT game_id, board_type AS Board FROM games ORDER BY game_id").fetchone()
    assert isinstance(row, Row) and row["board"] == row["BOARD"] == row[1] and row.keys() == ["game_id", "Board"]
    assert dict(row) == {"game_id": first[0], "Board": first[1]} and tuple(row) == first[:2]
    with pytest.raises(IndexError):
        row["nope"]
    conn.row_factory = lambda cursor, r: {d[0]: v for d, v in zip(cursor.description, r)}
    assert conn.execute("SELECT COUNT(*) AS n FROM games").fetchone() == {"n": 2}
    for write in ("UPDATE games SET parity_status = 'passed' WHERE game_id = ?", "DELETE FROM game_moves",
                  "INSERT OR REPLACE INTO schema_metadata (key, value) VALUES ('a', ?)"):  # fmt: skip
        with pytest.raises(ReadOnlySQLError) as err:
            conn.execute(write, ("x",) if "?" in write else ())
        assert isinstance(err.value, sqlite3.OperationalError)
    with pytest.raises(ReadOnlySQLError):
        conn.executescript("CREATE TABLE t (a)")
    with pytest.raises(CompatSQLError):
        conn.execute("SELECT * FROM no_such_table")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.commit()
    conn.rollback()
    with conn:
        pass
    conn.close()
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")


def test_get_conn_context_manager(dbs):
    _, store = dbs["ringrift_v18_sample"]
    with GameReplayDB(store, models=False) as db:
        with db._get_conn() as conn:
            rows = conn.execute("SELECT game_id FROM games").fetchall()
            assert len(rows) == 10 and rows[0]["game_id"] == rows[0][0]


def test_move_json_fast_path_equals_the_mapping(dbs):
    """compat_rows.move_json (the readers' fast path) gives mapping.move_json_value's object, key order included."""
    import gamestore
    from gamestore.ringrift.compat_rows import move_json
    from gamestore.ringrift.mapping import move_json_value

    records = [{"move_number": 3, "move_type": "place_ring", "player": 1, "custom": 5, "rr_x": 1,
                "to": {"x": 1, "y": 2, "z": None}}]  # fmt: skip
    for _, path in dbs.values():
        with gamestore.open(path) as s:
            for gid in s.query_games(columns=["game_id"]).column("game_id").to_pylist():
                records += s.get_game(gid)["moves"]
    assert len(records) > 2000
    for m in records:
        a, b = move_json(m), move_json_value(m)
        assert a == b and list(a) == list(b)
