"""GameStore end to end: write, seal, read back, query, SQL, bad input."""
from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pytest

import gamestore
from gamestore.testing import synth
from gamestore.errors import (
    DuplicateGameError,
    GameNotFoundError,
    GamestoreError,
    QueryError,
    RecordError,
    StoreExistsError,
    StoreNotFoundError,
)
from gamestore.records import games_equal, normalize_game

HF = {"heuristic_features": gamestore.VectorSpec("heuristic_features", (49,))}


@pytest.fixture(scope="module")
def corpus():
    return (
        synth.games(12, board_type="square8", num_players=2, seed=1)
        + synth.games(5, board_type="hex8", num_players=4, seed=2, snapshot_every=20)
        + synth.games(3, board_type="square19", num_players=2, seed=3)
    )


@pytest.fixture()
def store(tmp_path, corpus):
    with gamestore.open(tmp_path / "store", shard_moves=1500) as s:
        assert s.write_games(corpus) == len(corpus)
        s.flush()
        yield s


def test_round_trip_every_game(store, corpus):
    for rec in corpus:
        assert games_equal(store.get_game(rec["game_id"]), normalize_game(rec, vectors=HF))


def test_small_shard_target_makes_several_shards(store, corpus):
    assert len(store.catalog.shard_ids()) > 1
    assert store.count_games() == len(corpus)
    assert len(store) == len(corpus)


def test_buffered_games_are_invisible_until_flush(tmp_path, corpus):
    with gamestore.open(tmp_path / "s") as s:
        s.write_games(corpus[:2])
        assert s.count_games() == 0
        with pytest.raises(GameNotFoundError):
            s.get_game(corpus[0]["game_id"])
        s.flush()
        assert s.count_games() == 2


def test_close_seals_and_reopen_reads(tmp_path, corpus):
    with gamestore.open(tmp_path / "s") as s:
        s.write_games(corpus)
    with gamestore.open(tmp_path / "s", create=False) as s:
        assert s.count_games() == len(corpus)
        assert games_equal(s.get_game(corpus[-1]["game_id"]), normalize_game(corpus[-1], vectors=HF))


def test_missing_game_is_a_key_error(store):
    with pytest.raises(KeyError):
        store.get_game("nope")
    with pytest.raises(GameNotFoundError):
        store.get_game("nope")


def test_open_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        gamestore.open(tmp_path / "missing", create=False)
    with pytest.raises(StoreNotFoundError):
        gamestore.open(tmp_path / "missing", create=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("x")
    with pytest.raises(StoreExistsError):
        gamestore.open(tmp_path / "other")


def test_query_games(store, corpus):
    t = store.query_games("board_type = 'hex8'", columns=["game_id", "num_players"], order_by="game_id")
    assert isinstance(t, pa.Table)
    assert t.column_names == ["game_id", "num_players"]
    assert t.column("game_id").to_pylist() == sorted(g["game_id"] for g in corpus if g["board_type"] == "hex8")
    assert set(t.column("num_players").to_pylist()) == {4}
    newest = store.query_games(order_by="created_at DESC", limit=3)
    assert newest.num_rows == 3
    assert store.count_games("num_players = 2") == 15
    with pytest.raises(QueryError):
        store.query_games("no_such_column = 1")
    with pytest.raises(QueryError):
        store.query_games(columns=["game_id; DROP TABLE x"])


def test_scan_moves(store, corpus):
    total = sum(len(g["moves"]) for g in corpus)
    batches = list(store.scan_moves(batch_size=1000))
    assert all(isinstance(b, pa.RecordBatch) and b.num_rows <= 1000 for b in batches)
    assert sum(b.num_rows for b in batches) == total
    hex_moves = sum(len(g["moves"]) for g in corpus if g["board_type"] == "hex8")
    sel = list(store.scan_moves("board_type = 'hex8'", columns=["game_id", "move_number", "policy"]))
    assert sum(b.num_rows for b in sel) == hex_moves
    assert sel[0].schema.names == ["game_id", "move_number", "policy"]
    ids = {g for b in sel for g in b.column("game_id").to_pylist()}
    assert ids == {g["game_id"] for g in corpus if g["board_type"] == "hex8"}


def test_scan_moves_policies_exact(store, corpus):
    rec = corpus[0]
    rows = [r for b in store.scan_moves(f"game_id = '{rec['game_id']}'", columns=["move_number", "policy"]) for r in b.to_pylist()]
    for move, row in zip(rec["moves"], rows):
        assert row["move_number"] == move["move_number"]
        if "policy" in move:
            got = {e["key"]: (e["prob64"] if e["prob64"] is not None else e["prob"]) for e in row["policy"]}
            assert got == move["policy"]
        else:
            assert row["policy"] is None


def test_sql_views(store, corpus):
    assert store.sql("SELECT count(*) FROM games").fetchall()[0][0] == len(corpus)
    cols = {r[0] for r in store.sql("DESCRIBE games").fetchall()}
    assert {"game_id", "board_type", "num_players", "winner", "game_status", "total_moves", "created_at"} <= cols
    mcols = {r[0] for r in store.sql("DESCRIBE moves").fetchall()}
    assert {"game_id", "move_number", "player", "move_type", "policy", "search"} <= mcols
    n_moves = sum(len(g["moves"]) for g in corpus)
    assert store.sql("SELECT count(*) FROM moves").fetchall()[0][0] == n_moves
    n_players = sum(len(g.get("players", [])) for g in corpus)
    assert store.sql("SELECT count(*) FROM players").fetchall()[0][0] == n_players
    n_policy = sum(len(m["policy"]) for g in corpus for m in g["moves"] if "policy" in m)
    assert store.sql("SELECT count(*) FROM policies").fetchall()[0][0] == n_policy
    by_type = dict(store.sql("SELECT move_type, count(*) FROM moves GROUP BY 1").fetchall())
    expect: dict[str, int] = {}
    for g in corpus:
        for m in g["moves"]:
            expect[m["move_type"]] = expect.get(m["move_type"], 0) + 1
    assert by_type == expect
    with pytest.raises(QueryError):
        store.sql("SELEKT 1")


def _game(gid="g1", **over):
    rec = {
        "game_id": gid,
        "board_type": "square8",
        "num_players": 2,
        "created_at": "2026-01-01T00:00:00",
        "moves": [
            {"player": 1, "move_type": "place_ring", "to": (1, 2), "policy": {"a": 0.25, "b": 0.75}},
            {"player": 2, "move_type": "move_stack", "from": {"x": 1, "y": 2, "z": None}, "to": (3, 4)},
        ],
    }
    rec.update(over)
    return rec


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"game_id": None}, "game_id"),
        ({"board_type": "chess"}, "board_type"),
        ({"num_players": "two"}, "num_players"),
        ({"winner": 1.5}, "winner"),
        ({"moves": [{"player": 1, "move_type": "x", "policy": {"a": "high"}}]}, "moves[0].policy"),
        ({"moves": [{"player": 1, "move_type": "x", "vectors": {"heuristic_features": [0.0] * 48}}]}, "moves[0].vectors.heuristic_features"),
        ({"moves": [{"player": "one", "move_type": "x"}]}, "moves[0].player"),
    ],
)
@pytest.mark.parametrize("shard_moves", [None, 8])  # 8: every game is encoded as a chunk of its own
def test_bad_record_keeps_earlier_games(tmp_path, bad, field, shard_moves):
    options = {} if shard_moves is None else {"shard_moves": shard_moves}
    with gamestore.open(tmp_path / "s", profile="ringrift", vectors={"heuristic_features": 49}, **options) as s:
        good = [_game("ok1"), _game("ok2")]
        with pytest.raises(RecordError) as info:
            s.write_games(good + [_game("bad", **bad), _game("after")])
        err = info.value
        assert isinstance(err, ValueError) and isinstance(err, GamestoreError)
        assert err.field == field
        assert err.game_index == 2  # counted in the caller's list, whatever chunks the store encoded it in
        if bad.get("game_id", "x") is not None:
            assert err.game_id == "bad"
        s.flush()
        assert sorted(s.query_games(columns=["game_id"]).column("game_id").to_pylist()) == ["ok1", "ok2"]


def test_duplicates_error_or_skip(tmp_path):
    with gamestore.open(tmp_path / "s") as s:
        s.write_games([_game("a")])
        with pytest.raises(DuplicateGameError) as info:
            s.write_games([_game("b"), _game("a")])
        assert (info.value.game_id, info.value.game_index) == ("a", 1)
        s.flush()
        with pytest.raises(DuplicateGameError):
            s.write_games([_game("a")])
        assert s.write_games([_game("a"), _game("c"), _game("c")], on_duplicate="skip") == 1
        s.flush()
        assert s.count_games() == 3


def test_duplicate_index_counts_from_the_callers_list(tmp_path):
    with gamestore.open(tmp_path / "s", shard_moves=8) as s:  # a chunk per game
        s.write_games([_game("a")])
        with pytest.raises(DuplicateGameError) as info:
            s.write_games([_game("b"), _game("c"), _game("a"), _game("d")])
        assert (info.value.game_id, info.value.game_index) == ("a", 2)
        with pytest.raises(RecordError) as bad:  # skipped duplicates still count in the index
            s.write_games([_game("a"), _game("e"), _game("f", num_players="two")], on_duplicate="skip")
        assert (bad.value.game_id, bad.value.game_index) == ("f", 2)
        s.flush()
        assert sorted(s.query_games(columns=["game_id"]).column("game_id").to_pylist()) == ["a", "b", "c", "e"]


def test_lost_catalog_is_rebuilt(tmp_path, corpus):
    with gamestore.open(tmp_path / "s") as s:
        s.write_games(corpus)
    shutil.rmtree(tmp_path / "s" / "catalog")
    with gamestore.open(tmp_path / "s") as s:
        assert s.count_games() == len(corpus)
        assert games_equal(s.get_game(corpus[3]["game_id"]), normalize_game(corpus[3], vectors=HF))
    assert len(list((tmp_path / "s" / "catalog").glob("*.parquet"))) >= 1


def test_second_handle_sees_new_shards(tmp_path, corpus):
    with gamestore.open(tmp_path / "s") as a, gamestore.open(tmp_path / "s") as b:
        a.write_games(corpus[:4])
        a.flush()
        assert b.count_games() == 4
        assert games_equal(b.get_game(corpus[2]["game_id"]), normalize_game(corpus[2], vectors=HF))


def test_vectors_declared_and_returned_as_arrays(store, corpus):
    assert store.vectors["heuristic_features"].shape == (49,)
    game = store.get_game(corpus[0]["game_id"])
    vec = game["moves"][0]["vectors"]["heuristic_features"]
    assert isinstance(vec, np.ndarray) and vec.dtype == np.float32 and vec.shape == (49,)


def test_meta_documents(tmp_path):
    with gamestore.open(tmp_path / "s") as s:
        assert s.get_meta("schema_metadata") is None
        s.put_meta("schema_metadata", {"schema_version": "18"})
        assert s.get_meta("schema_metadata") == {"schema_version": "18"}
        assert s.meta_names() == ["schema_metadata"]
        with pytest.raises(ValueError):
            s.put_meta("../escape", 1)


def test_info(store, corpus):
    info = store.info()
    assert info["games"] == len(corpus)
    assert info["moves"] == sum(len(g["moves"]) for g in corpus)
    assert info["bytes_per_move"] > 0
    assert {(c["board_type"], c["num_players"]) for c in info["configs"]} == {("square8", 2), ("hex8", 4), ("square19", 2)}


def test_closed_store_raises(tmp_path):
    s = gamestore.open(tmp_path / "s")
    s.close()
    with pytest.raises(gamestore.StoreClosedError):
        s.count_games()


def test_vector_added_later_reads_as_null_in_older_shards(tmp_path):
    def game(gid, vec):
        move = {"player": 1, "move_type": "a"}
        if vec:
            move["vectors"] = {"h": np.array([1.0, 2.0], dtype=np.float32)}
        return {"game_id": gid, "board_type": "square8", "num_players": 2, "moves": [move]}

    with gamestore.open(tmp_path / "s") as s:
        s.write_games([game("a", False)])
        s.flush()
        s.write_games([game("b", True)])
        s.flush()
        assert s.vectors["h"].dtype == "float32"
        rows = [r for b in s.scan_moves(columns=["game_id", "vec_h"]) for r in b.to_pylist()]
        assert sorted(rows, key=lambda r: r["game_id"]) == [{"game_id": "a", "vec_h": None}, {"game_id": "b", "vec_h": [1.0, 2.0]}]
        assert s.sql("SELECT game_id, vec_h FROM moves ORDER BY 1").fetchall() == [("a", None), ("b", (1.0, 2.0))]
        assert "vectors" not in s.get_game("a")["moves"][0]
        with pytest.raises(QueryError):
            list(s.scan_moves(columns=["vec_nope"]))
