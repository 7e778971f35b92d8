"""A fresh process that opens a store and queries it imports only what that needs (gamestore/lazy.py).

The encoder (``gamestore.codec`` and the compiled coders), ``pyarrow.compute``,
``pyarrow.dataset``, ``pyarrow.parquet`` and ``pyarrow.fs`` (with ssl), pandas and torch stay unimported through ``gamestore.open``
and ``store.sql`` over moves, games and players; the results equal DuckDB's
over the store's Parquet export; a write and a read of a game afterwards load
what they need on the spot.
"""
from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pyarrow as pa
import pytest

import gamestore
from gamestore import catalog_snapshot
from gamestore.lazy import lazy_module
from gamestore.ops import export_parquet
from gamestore.testing import synth

pytestmark = pytest.mark.single_backend

UNWANTED = ("pandas", "torch", "pyarrow.compute", "pyarrow.dataset", "pyarrow.parquet", "pyarrow.fs", "ssl", "sqlite3",
            "gamestore.shardwrite", "gamestore.ipc_write", "concurrent.futures", "logging",
            "gamestore.codec", "gamestore.backend",
            "gamestore._encode", "gamestore._decode", "gamestore.records", "gamestore.pointread")

STATEMENTS = [
    "SELECT phase, move_type, count(*), avg(think_time_ms) FROM {moves} GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT g.board_type, g.winner, count(*) FROM {moves} m JOIN {games} g USING (game_id) GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT count(*), max(move_number) FROM {moves} WHERE game_id = '{gid}'",
]

_CHILD = r"""
import json, sys
import gamestore
store = gamestore.open(sys.argv[1], create=False)
statements, gid = json.loads(sys.argv[2]), sys.argv[3]
rows = [store.sql(q.format(moves="moves", games="games", gid=gid)).fetchall() for q in statements]
players = store.sql("SELECT count(*) FROM players").fetchall()
loaded = [m for m in json.loads(sys.argv[4]) if m in sys.modules]
game = store.get_game(gid)  # the decoder, imported now
store.write_games(gamestore.testing.synth.games(1, seed=99))  # the encoder, imported now
store.flush()
print(json.dumps({"loaded": loaded, "rows": [[list(r) for r in rs] for rs in rows], "players": players[0][0],
                  "moves": len(game["moves"]), "games": store.count_games()}, default=str))
"""


def test_open_and_query_import_only_what_they_need(tmp_path):
    from helpers import subprocess_env

    with gamestore.open(tmp_path / "s", fsync=False) as s:
        s.write_games(synth.iter_games(30, seed=1))
        s.flush()
        s.write_games(synth.iter_games(20, seed=2))  # a second shard
        s.flush()
        gid = s.query_games(columns=["game_id"], limit=1, order_by="game_id").column("game_id")[0].as_py()
        num_moves = s.count_moves(f"game_id = '{gid}'")
        players = s.sql("SELECT count(*) FROM players").fetchall()[0][0]
        export_parquet(s, tmp_path / "export")
    # the first open writes the catalog checkpoint (pyarrow.parquet, which imports pyarrow.fs); the child opens a
    # checkpointed store, as every later open does, and reads it without either
    gamestore.open(tmp_path / "s", create=False).close()
    plain = {"moves": f"read_parquet('{tmp_path / 'export' / 'moves.parquet'}')",
             "games": f"read_parquet('{tmp_path / 'export' / 'games.parquet'}')"}
    con = duckdb.connect()
    want = [[list(r) for r in con.sql(q.format(**plain, gid=gid)).fetchall()] for q in STATEMENTS]
    out = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / "s"), json.dumps(STATEMENTS), gid,
                          json.dumps(UNWANTED)], env=subprocess_env(), capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["loaded"] == []
    assert json.loads(json.dumps(want, default=str)) == got["rows"]
    assert got["players"] == players
    assert got["moves"] == num_moves and got["games"] == 51


def test_lazy_module_imports_on_first_attribute():
    stub = lazy_module("json.tool")
    sys.modules.pop("json.tool", None)
    assert not hasattr(stub, "__wrapped__")  # dunder probes (copy, inspect, pickle) do not import it
    assert "json.tool" not in sys.modules
    assert callable(stub.main)
    assert "json.tool" in sys.modules and stub.main is sys.modules["json.tool"].main
    assert "main" in vars(stub)  # later reads find the name without __getattr__
    with pytest.raises(AttributeError):
        stub.no_such_name
    with pytest.raises(ModuleNotFoundError):
        lazy_module("gamestore.no_such_module").anything


@pytest.mark.parametrize("set_rows", [0, 10**9])
def test_first_copies_set_and_compute_paths_agree(monkeypatch, set_rows):
    monkeypatch.setattr(catalog_snapshot, "_SET_ROWS", set_rows)
    ids = pa.chunked_array([pa.array(["a", "b"]), pa.array(["c"])])
    assert catalog_snapshot._all_distinct(ids)
    assert not catalog_snapshot._all_distinct(pa.chunked_array([pa.array(["a", "b"]), pa.array(["a"])]))
    rows = pa.table({"game_id": ["x", "y", "x", "z"], "shard_id": ["s2", "s1", "s1", "s2"], "n": [0, 1, 2, 3]})
    assert catalog_snapshot._first_copies(rows, frozenset()).column("n").to_pylist() == [1, 2, 3]


def test_the_compat_sql_errors_made_on_first_use_are_one_class_each_and_sqlite3_errors():
    """CompatSQLError and ReadOnlySQLError (whose base ``sqlite3.OperationalError`` would import sqlite3 with
    gamestore) are made when first asked for: one class each whichever way they are reached, still sqlite3 errors
    and query errors, and they pickle."""
    import pickle
    import sqlite3

    from gamestore import errors
    from gamestore.compat import CompatSQLError as from_compat
    from gamestore.errors import CompatSQLError, ReadOnlySQLError

    assert gamestore.CompatSQLError is errors.CompatSQLError is CompatSQLError is from_compat
    assert gamestore.ReadOnlySQLError is ReadOnlySQLError and issubclass(ReadOnlySQLError, CompatSQLError)
    assert issubclass(CompatSQLError, sqlite3.OperationalError) and issubclass(CompatSQLError, gamestore.QueryError)
    assert CompatSQLError.__module__ == "gamestore.errors" and ReadOnlySQLError.__qualname__ == "ReadOnlySQLError"
    again = pickle.loads(pickle.dumps(ReadOnlySQLError("no writes")))
    assert type(again) is ReadOnlySQLError and again.args == ("no writes",)
    with pytest.raises(AttributeError):
        errors.NoSuchError  # noqa: B018
