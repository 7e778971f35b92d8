"""import_sqlite / export_sqlite, the compatible SQL views and the compat reader, on the real fixtures."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

import gamestore.store as store_mod
from gamestore.errors import StoreExistsError
from gamestore.ringrift.compat import GameReplayDB
from gamestore.ringrift.fixtures import FIXTURE_NAMES
from gamestore.ringrift.mapping import compare_rows, record_to_rows
from gamestore.ringrift.tables import COLUMNS
from gamestore.ringrift.transfer import export_sqlite, import_sqlite
from helpers.replaydb import replay_tables


@pytest.fixture(scope="session")
def imported(ringrift_dbs, tmp_path_factory) -> dict[str, Path]:
    """One store per fixture, imported once for the session."""
    base = tmp_path_factory.mktemp("ringrift_stores")
    out = {}
    for name, path in ringrift_dbs.items():
        report = import_sqlite(path, base / name, progress=False, verify=True)
        assert report.failed == [] and report.games_written == report.games_in_source > 0
        out[name] = base / name
    return out


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_export_equals_source_table_by_table(ringrift_dbs, imported, tmp_path, name):
    dst = tmp_path / "out.db"
    report = export_sqlite(imported[name], dst, progress=False)
    src_tables, out_tables = replay_tables(ringrift_dbs[name]), replay_tables(dst)
    assert report.games == len(src_tables["games"])
    for table in COLUMNS:
        assert compare_rows(table, src_tables[table], out_tables[table]) == [], table
    # same DDL, text for text
    ddl = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
    a, b = sqlite3.connect(ringrift_dbs[name]), sqlite3.connect(dst)
    assert a.execute(ddl).fetchall() == b.execute(ddl).fetchall()
    assert b.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with pytest.raises(StoreExistsError):
        export_sqlite(imported[name], dst, progress=False)


def test_reimport_adds_nothing(ringrift_dbs, imported, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(imported["ringrift_v18_sample"], store)
    report = import_sqlite(ringrift_dbs["ringrift_v18_sample"], store, progress=False)
    assert report.games_written == 0 and report.games_already_stored == report.games_in_source == 10
    with store_mod.open(store, create=False) as st:
        assert st.count_games() == 10
    # a second database into the same store: both exported together
    report = import_sqlite(ringrift_dbs["ringrift_v18_history"], store, progress=False)
    assert report.games_written == 2 and report.moves_written == 248
    out = replay_tables(export_sqlite(store, tmp_path / "both.db", progress=False).destination)
    both = [replay_tables(ringrift_dbs[n]) for n in FIXTURE_NAMES]
    for table in COLUMNS:
        expected = both[0][table] + both[1][table] if table != "schema_metadata" else both[0][table]
        assert compare_rows(table, expected, out[table]) == [], table


def test_worker_processes_import_the_same_games(ringrift_dbs, tmp_path):
    """workers=2: two processes import a share of the games each, into one store; the export equals the source."""
    src = ringrift_dbs["ringrift_v18_history"]
    report = import_sqlite(src, tmp_path / "store", progress=False, workers=2, verify=True)
    assert report.failed == [] and report.games_written == 2 and report.moves_written == 248
    out = replay_tables(export_sqlite(tmp_path / "store", tmp_path / "out.db", progress=False).destination)
    expected = replay_tables(src)
    for table in COLUMNS:
        assert compare_rows(table, expected[table], out[table]) == [], table
    again = import_sqlite(src, tmp_path / "store", progress=False, workers=2)
    assert again.games_written == 0 and again.games_already_stored == 2


def test_the_store_holds_the_same_games_whatever_the_worker_count(ringrift_dbs, imported, tmp_path):
    """workers=0/1/3: every game once, equal to the serial import's, whichever process took which task."""
    src = ringrift_dbs["ringrift_v18_sample"]
    with store_mod.open(imported["ringrift_v18_sample"], create=False) as ref:
        ids = sorted(ref.query_games(None, columns=["game_id"]).column("game_id").to_pylist())
        expected = {g: ref.get_game(g) for g in ids}
    for workers in (1, 3):
        report = import_sqlite(src, tmp_path / f"w{workers}", progress=False, workers=workers)
        assert report.failed == [] and report.games_written == len(ids) and report.games_already_stored == 0
        assert report.moves_written == sum(len(g["moves"]) for g in expected.values())
        with store_mod.open(tmp_path / f"w{workers}", create=False) as st:
            assert st.count_games() == len(ids)
            for gid in ids:
                got, want = record_to_rows(st.get_game(gid)), record_to_rows(expected[gid])
                for table in COLUMNS:
                    if table in got:
                        assert compare_rows(table, want[table], got[table]) == [], (gid, table)


def test_the_task_pool_hands_out_every_game_once_in_order():
    import threading

    from gamestore.ringrift.workers import POOL_TASK_MAX, POOL_TASK_MIN, TaskPool

    ids = [f"g{i}" for i in range(1000)]
    pool = TaskPool(ids, 3)
    taken: list[list] = []

    def take() -> None:
        for task in pool:
            taken.append(task)

    threads = [threading.Thread(target=take) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(g for task in taken for g in task) == sorted(ids)
    assert all(POOL_TASK_MIN <= len(t) <= POOL_TASK_MAX for t in taken[:-1]) and 0 < len(taken[-1]) <= POOL_TASK_MAX
    assert sorted(taken, key=lambda t: ids.index(t[0])) == sorted(taken, key=len, reverse=True)  # large tasks first
    assert pool.take() == []


def test_older_schema_imports_what_it_holds(ringrift_dbs, tmp_path):
    old = tmp_path / "v9.db"
    shutil.copy(ringrift_dbs["ringrift_v18_sample"], old)
    con = sqlite3.connect(old)
    for col in ("heuristic_features", "search_stats_json", "move_probs"):
        con.execute(f"ALTER TABLE game_moves DROP COLUMN {col}")
    con.execute("DROP TABLE game_nnue_features")
    con.execute("UPDATE schema_metadata SET value = '9' WHERE key = 'schema_version'")
    # a game that cannot be stored: its player count is text
    con.execute("UPDATE games SET num_players = 'two' WHERE game_id = 'hex8-2p-100-1-b285e19f'")
    con.commit()
    con.close()
    report = import_sqlite(old, tmp_path / "store", progress=False)
    assert report.schema_version == 9
    assert any("heuristic_features" in m and "move_probs" in m for m in report.missing)
    assert any("game_nnue_features" in m for m in report.missing)
    assert [g for g, _ in report.failed] == ["hex8-2p-100-1-b285e19f"]
    assert report.games_written == 9
    out = replay_tables(export_sqlite(tmp_path / "store", tmp_path / "v18.db", progress=False).destination)
    src = replay_tables(ringrift_dbs["ringrift_v18_sample"])
    keep = [r for r in src["game_moves"] if r[0] != "hex8-2p-100-1-b285e19f"]
    cols = COLUMNS["game_moves"]
    blank = [cols.index(c) for c in ("move_probs", "search_stats_json", "heuristic_features")]
    expected = [tuple(None if i in blank else v for i, v in enumerate(r)) for r in keep]
    assert compare_rows("game_moves", expected, out["game_moves"]) == []
    assert dict(out["schema_metadata"])["schema_version"] == "18"


def test_sql_views_answer_like_sqlite(ringrift_dbs, imported):
    for name in FIXTURE_NAMES:
        lite = sqlite3.connect(ringrift_dbs[name])
        with store_mod.open(imported[name], create=False) as st:
            def same(query: str, duck_query: str | None = None) -> None:
                a = sorted(lite.execute(query).fetchall(), key=repr)
                b = sorted(st.sql(duck_query or query).fetchall(), key=repr)
                assert a == b, query

            same("SELECT board_type, num_players, COUNT(*) FROM games GROUP BY 1, 2")
            same("SELECT move_type, COUNT(*) FROM game_moves GROUP BY 1")
            same("SELECT phase, player, COUNT(*), SUM(turn_number) FROM game_moves GROUP BY 1, 2")
            same("SELECT * FROM game_players")
            same("SELECT game_id, move_number, compressed, state_hash FROM game_state_snapshots")
            same("SELECT * FROM game_initial_state")
            same(
                "SELECT game_id, schema_version, parity_status, quality_score, engine_mode FROM games",
                "SELECT game_id, schema_version, parity_status, quality_score, engine_mode FROM ringrift_games",
            )
            same(
                "SELECT game_id, move_number, player, phase_before, status_after, progress_before_json,"
                " state_hash_before, compressed_states FROM game_history_entries"
            )
            for col in ("move_json", "move_probs", "search_stats_json"):
                q = f"SELECT game_id, move_number, {col} FROM game_moves"
                a = {(g, n): v for g, n, v in lite.execute(q)}
                b = {(g, n): v for g, n, v in st.sql(q).fetchall()}
                assert a.keys() == b.keys()
                for k, v in a.items():
                    assert (v is None and b[k] is None) or json.loads(v) == json.loads(b[k]), (col, k)
            total = sum(len(json.loads(t)) for (t,) in lite.execute("SELECT move_probs FROM game_moves WHERE move_probs IS NOT NULL"))
            assert st.sql("SELECT COUNT(*) FROM policies").fetchall()[0][0] == total
            feats = st.sql("SELECT heuristic_features FROM game_moves WHERE heuristic_features IS NOT NULL").fetchall()
            assert len(feats) == lite.execute("SELECT COUNT(*) FROM game_moves").fetchone()[0]


def test_compat_reader_matches_sqlite(ringrift_dbs, imported):
    lite = sqlite3.connect(ringrift_dbs["ringrift_v18_history"])
    lite.row_factory = sqlite3.Row
    with GameReplayDB(imported["ringrift_v18_history"], models=False) as db:  # plain dicts (tests/test_ringrift_compat.py: models)
        assert db.get_game_count() == 2
        assert db.get_game_count(board_type="hex8") == 1
        stats = db.get_stats()
        assert stats["total_games"] == 2 and stats["total_moves"] == 248 and stats["schema_version"] == 18
        assert stats["games_by_board_type"] == {"hex8": 1, "square8": 1}
        for row in lite.execute("SELECT * FROM games"):
            gid = row["game_id"]
            meta = db.get_game_metadata(gid)
            assert {k: meta[k] for k in row.keys() if k != "metadata_json"} == {
                k: row[k] for k in row.keys() if k != "metadata_json"
            }
            assert json.loads(meta["metadata_json"]) == json.loads(row["metadata_json"])
            moves = [json.loads(r[0]) for r in lite.execute(
                "SELECT move_json FROM game_moves WHERE game_id = ? ORDER BY move_number", (gid,))]
            assert db.get_moves(gid) == moves
            assert db.get_moves(gid, 5, 9) == moves[5:9]
            recs = db.get_move_records(gid, 0, 3)
            assert [r["move"] for r in recs] == moves[:3] and recs[0]["moveNumber"] == 0
            init = lite.execute("SELECT initial_state_json FROM game_initial_state WHERE game_id = ?", (gid,)).fetchone()
            assert db.get_initial_state(gid) == json.loads(init[0])
            for mn, state in lite.execute(
                "SELECT move_number, state_json FROM game_state_snapshots WHERE game_id = ?", (gid,)):
                assert db.get_state_at_move(gid, mn) == json.loads(state)  # moveHistory rebuilt
        assert db.get_game_metadata("nope") is None and db.get_moves("nope") == []
        games = list(db.iterate_games_with_probs(board_type="square8"))
        assert len(games) == 1
        meta, initial, moves, probs = games[0]
        assert meta["board_type"] == "square8" and len(moves) == meta["total_moves"]
        expected = {mn: json.loads(p) for mn, p in lite.execute(
            "SELECT move_number, move_probs FROM game_moves WHERE game_id = ? AND move_probs IS NOT NULL", (meta["game_id"],))}
        assert probs == expected and 0 < len(probs) < len(moves)  # {move_number: probs} for the moves that have them
        assert [m for m, _, _ in db.iterate_games(num_players=2, limit=1)]
        assert len(db.query_games(limit=1)) == 1 and db.query_games(board_type="hex8")[0]["board_type"] == "hex8"


def test_cli_commands(ringrift_dbs, tmp_path, capsys):
    from gamestore.cli import main

    store, out = tmp_path / "store", tmp_path / "hex8.db"
    assert main(["import-sqlite", "-q", str(ringrift_dbs["ringrift_v18_history"]), str(store)]) == 0
    assert "2 imported (248 moves" in capsys.readouterr().out
    assert main(["export-sqlite", "-q", str(store), str(out), "--where", "board_type = 'hex8'"]) == 0
    assert "wrote 1 games" in capsys.readouterr().out
    assert sqlite3.connect(out).execute("SELECT board_type FROM games").fetchall() == [("hex8",)]
    assert main(["export-sqlite", "-q", str(store), str(out)]) == 2  # exists
    assert main(["import-sqlite", "-q", str(tmp_path / "missing.db"), str(store)]) == 2
    assert "missing.db" in capsys.readouterr().err


def test_gc_is_left_alone_unless_asked(ringrift_dbs, tmp_path, monkeypatch):
    """The collector and Arrow's default memory pool are process-wide settings: import_sqlite and synth only
    switch them with pause_gc=True, and restore them (the compiled encode's own pauses, gamestore.gcpause,
    switch the collector off and back on around each chunk: not counted here)."""
    import gc

    import pyarrow as pa

    from gamestore.testing import synth

    calls: list[str] = []
    real_disable, real_set_pool = gc.disable, pa.set_memory_pool
    monkeypatch.setattr(gc, "disable", lambda: (calls.append("disable"), real_disable())[1])
    monkeypatch.setattr(pa, "set_memory_pool",
                        lambda pool: (calls.append(pool.backend_name), real_set_pool(pool))[1])
    pool = pa.default_memory_pool().backend_name
    assert gc.isenabled()
    synth.games(3, seed=1, snapshot_every=5)
    import_sqlite(ringrift_dbs["ringrift_v18_history"], tmp_path / "a", progress=False, workers=0)
    assert [c for c in calls if c != "disable"] == [] and gc.isenabled()
    calls.clear()
    report = import_sqlite(ringrift_dbs["ringrift_v18_history"], tmp_path / "b", progress=False, workers=2,
                           pause_gc=True)
    assert report.games_written == 2 and gc.isenabled()
    assert calls[0] == "disable" and [c for c in calls if c != "disable"] == ["system", pool]
    assert pa.default_memory_pool().backend_name == pool
