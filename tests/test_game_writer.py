"""Move-by-move writing with store.game_writer(...)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import gamestore
from gamestore.errors import DuplicateGameError, GameNotFoundError, GameWriterError, RecordError
from gamestore.records import games_equal, normalize_game

from helpers import subprocess_env
from helpers.mp_workers import make_games, write_via_game_writer

RESULT_KEYS = ("winner", "termination_reason", "game_status", "completed_at", "duration_ms")


@pytest.fixture(scope="module")
def games():
    return make_games("gw", 4, seed=7, max_moves=30)


@pytest.fixture()
def store(tmp_path):
    with gamestore.open(tmp_path / "store", profile="ringrift") as s:
        yield s


def header(game: dict) -> dict:
    return {k: v for k, v in game.items() if k not in ("moves", "game_id") and k not in RESULT_KEYS}


def test_game_writer_round_trip_equals_write_games(store, games):
    write_via_game_writer(store, games[0])
    store.write_games([games[1]])
    store.flush()
    for g in games[:2]:
        assert games_equal(store.get_game(g["game_id"]), normalize_game(g, vectors=store.vectors))


def test_invisible_until_finalized_and_flushed(store, games, tmp_path):
    g = games[0]
    other = gamestore.open(store.path, create=False)
    try:
        w = store.game_writer(g["game_id"], **header(g))
        for m in g["moves"]:
            w.add_move(m)
        assert w.num_moves == len(g["moves"]) and w.state == "open"
        for s in (store, other):
            assert s.count_games() == 0
            with pytest.raises(GameNotFoundError):
                s.get_game(g["game_id"])
        assert not any((store.path / "shards").iterdir()) and not any((store.path / "tmp").iterdir())
        assert w.finalize(winner=1) == g["game_id"]
        assert w.state == "finalized"
        assert other.count_games() == 0  # buffered, not yet sealed
        store.flush()
        assert other.count_games() == 1
        assert other.get_game(g["game_id"])["winner"] == 1
    finally:
        other.close()


def test_exception_in_context_aborts(store, games):
    g = games[2]
    with pytest.raises(ZeroDivisionError):
        with store.game_writer(g["game_id"], **header(g)) as w:
            w.add_move(g["moves"][0])
            1 / 0
    assert w.state == "aborted"
    store.flush()
    assert store.count_games() == 0
    assert not any((store.path / "shards").iterdir())
    # the id is free again
    write_via_game_writer(store, g)
    store.flush()
    assert store.count_games() == 1


def test_leaving_the_block_without_finalize_aborts(store, games):
    g = games[3]
    with store.game_writer(g["game_id"], **header(g)) as w:
        w.add_move(g["moves"][0])
    assert w.state == "aborted"
    store.flush()
    assert g["game_id"] not in store


def test_bad_move_names_the_move_and_keeps_the_game(store, games):
    g = games[0]
    w = store.game_writer(g["game_id"], **header(g))
    w.add_move(g["moves"][0])
    w.add_move(g["moves"][1])
    with pytest.raises(RecordError) as info:
        w.add_move({"move_type": "place", "policy": {"a": "not a number"}})
    assert info.value.game_id == g["game_id"] and info.value.field.startswith("moves[2].policy")
    with pytest.raises(RecordError, match="does not increase"):
        w.add_move(move_number=0, move_type="place")
    with pytest.raises(RecordError):
        w.add_move(vectors={"heuristic_features": np.zeros(3, np.float32)})  # declared with 49 values
    assert w.num_moves == 2
    for m in g["moves"][2:]:
        w.add_move(m)
    w.finalize(**{k: g[k] for k in RESULT_KEYS if k in g})
    store.flush()
    assert games_equal(store.get_game(g["game_id"]), normalize_game(g, vectors=store.vectors))


def test_keyword_moves_and_default_numbers(store):
    with store.game_writer("kw", board_type="hex8", num_players=2, source="test") as w:
        w.add_move(move_type="place_ring", to=(1, 2, -3), player=1, policy={"a": 0.25, "b": 0.75})
        w.add_move({"move_type": "move_stack", "player": 2}, think_time_ms=5)
        w.finalize(winner=2, game_status="completed")
    store.flush()
    g = store.get_game("kw")
    assert [m["move_number"] for m in g["moves"]] == [0, 1]
    assert g["moves"][0]["to"] == {"x": 1, "y": 2, "z": -3}
    assert g["moves"][1]["think_time_ms"] == 5
    assert g["winner"] == 2 and g["source"] == "test"


def test_arrays_are_copied(store):
    buf = np.arange(6, dtype=np.float64)
    with store.game_writer("arr", board_type="square8", num_players=2) as w:
        w.add_move(move_type="x", vectors={"planes": buf.reshape(2, 3)})
        buf[:] = -1  # the caller reuses its buffer
        w.add_move(move_type="y", vectors={"planes": buf.reshape(2, 3)})
        w.finalize()
    store.flush()
    moves = store.get_game("arr")["moves"]
    assert store.vectors["planes"].shape == (2, 3)
    assert moves[0]["vectors"]["planes"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert moves[1]["vectors"]["planes"].tolist() == [[-1] * 3] * 2


def test_misuse_raises(store, games):
    g = games[1]
    store.write_games([g])
    store.flush()
    with pytest.raises(DuplicateGameError):
        store.game_writer(g["game_id"], **header(g))
    with pytest.raises(RecordError, match="board_type"):
        store.game_writer("nob", num_players=2)
    with pytest.raises(RecordError, match="unknown board type"):
        store.game_writer("badb", board_type="chess", num_players=2)
    with pytest.raises(RecordError, match="add_move"):
        store.game_writer("mv", board_type="hex8", num_players=2, moves=[])
    w = store.game_writer("done", board_type="hex8", num_players=2)
    w.finalize()
    with pytest.raises(GameWriterError):
        w.add_move(move_type="x")
    with pytest.raises(GameWriterError):
        w.finalize()
    with pytest.raises(GameWriterError):
        w.abort()
    a = store.game_writer("ab", board_type="hex8", num_players=2)
    a.abort()
    a.abort()  # idempotent
    with pytest.raises(GameWriterError):
        a.finalize()


def test_bad_result_field_keeps_writer_open(store):
    w = store.game_writer("res", board_type="hex8", num_players=2)
    w.add_move(move_type="x")
    with pytest.raises(RecordError) as info:
        w.finalize(winner="first")
    assert info.value.field == "winner"
    assert w.state == "open"
    w.finalize(winner=1)
    store.flush()
    assert store.get_game("res")["winner"] == 1


def test_two_writers_with_one_id_store_it_once(store):
    a = store.game_writer("same", board_type="hex8", num_players=2)
    b = store.game_writer("same", board_type="hex8", num_players=2)
    a.add_move(move_type="x")
    b.add_move(move_type="y")
    a.finalize()
    with pytest.raises(DuplicateGameError):
        b.finalize()
    store.flush()
    assert store.count_games("game_id = 'same'") == 1


def test_killed_mid_game_leaves_nothing(tmp_path, games):
    """A process dies (SIGKILL) in the middle of a game: no trace in the store, nothing to repair."""
    path = tmp_path / "s"
    with gamestore.open(path) as s:
        s.write_games([games[0]])
        s.flush()
    code = f"""
import os, signal
import gamestore
from helpers.mp_workers import make_games
g = make_games("dead", 1, seed=3, max_moves=40)[0]
s = gamestore.open({str(path)!r})
w = s.game_writer(g["game_id"], board_type=g["board_type"], num_players=2)
for m in g["moves"]:
    w.add_move(m)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), cwd=tmp_path, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    with gamestore.open(path, create=False) as s:
        assert s.count_games() == 1
        assert "dead-0" not in s
        assert list((path / "tmp").iterdir()) == []
        assert len(list((path / "shards").iterdir())) == 1


def test_game_without_moves(tmp_path):
    """A game finalized before its first move (a shard of such games has no move batches at all)."""
    with gamestore.open(tmp_path / "s") as store:
        with store.game_writer("empty", board_type="hex8", num_players=2) as w:
            w.finalize(termination_reason="abandoned")
        store.flush()
        g = store.get_game("empty")
        assert g["moves"] == [] and g["termination_reason"] == "abandoned"
        assert sum(b.num_rows for b in store.scan_moves()) == 0
        assert store.sql("SELECT count(*) FROM moves").fetchall() == [(0,)]
