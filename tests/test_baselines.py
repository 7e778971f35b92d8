"""The benchmark baselines (SQLite laid out like GameReplayDB, JSON text in Parquet) round-trip synth games."""
from __future__ import annotations

import json
import sqlite3

import pytest

from gamestore.testing import synth
from gamestore.records import games_equal

from helpers import import_benchmark

pytestmark = pytest.mark.single_backend  # SQLite and Parquet layouts: no gamestore encoder involved

JsonParquetBaseline = import_benchmark("json_parquet_baseline").JsonParquetBaseline
SqliteBaseline = import_benchmark("sqlite_baseline").SqliteBaseline


@pytest.fixture(scope="module")
def corpus():
    return synth.games(3, board_type="square8", seed=21, snapshot_every=20) + synth.games(
        2, board_type="hex8", num_players=3, seed=21
    )


def _check_roundtrip(store, corpus):
    assert store.write_games(corpus) == len(corpus)
    assert store.count_games() == len(corpus)
    for g in corpus:
        assert games_equal(store.get_game(g["game_id"]), g)
    with pytest.raises(KeyError):
        store.get_game("no-such-game")
    scanned = list(store.scan_moves())
    assert len(scanned) == sum(len(g["moves"]) for g in corpus)
    by_key = {(g["game_id"], m["move_number"]): m.get("policy") for g in corpus for m in g["moves"]}
    assert all(games_equal(by_key[(gid, num)], policy) for gid, num, policy in scanned)
    assert store.bytes_on_disk() > 0


def test_sqlite_baseline_roundtrip(tmp_path, corpus):
    path = tmp_path / "replay.db"
    with SqliteBaseline(path) as store:
        _check_roundtrip(store, corpus)
        store.checkpoint()
    # the file is a GameReplayDB v18: WAL mode, JSON text columns, features as float32 bytes
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT value FROM schema_metadata WHERE key = 'schema_version'").fetchone()[0] == "18"
    mj, probs, feats = con.execute(
        "SELECT move_json, move_probs, heuristic_features FROM game_moves WHERE move_type = 'place_ring' LIMIT 1"
    ).fetchone()
    move = json.loads(mj)
    assert len(move) == 30 and move["type"] == "place_ring" and set(move["to"]) == {"x", "y", "z"}
    assert 1 <= len(json.loads(probs)) <= 16 and len(feats) == 49 * 4
    # snapshots carry the move history, as GameReplayDB's do
    num, state = con.execute("SELECT move_number, state_json FROM game_state_snapshots LIMIT 1").fetchone()
    assert len(json.loads(state)["moveHistory"]) == num
    con.close()
    with SqliteBaseline(path) as again:  # reopening keeps the data
        assert again.count_games() == len(corpus)


def test_json_parquet_baseline_roundtrip(tmp_path, corpus):
    with JsonParquetBaseline(tmp_path / "pq", row_group_rows=100) as store:
        _check_roundtrip(store, corpus)
        assert store.write_games([]) == 0
    again = JsonParquetBaseline(tmp_path / "pq")
    assert sorted(again.game_ids()) == sorted(g["game_id"] for g in corpus)
    assert games_equal(again.get_game(corpus[-1]["game_id"]), corpus[-1])


def test_compare_smoke(tmp_path, capsys):
    from benchmarks import compare

    args = ["--games", "12", "--chunk", "5", "--latency-samples", "5", "--encoder-games", "3",
            "--workdir", str(tmp_path / "work")]
    assert compare.main(args) == 0
    out = capsys.readouterr().out
    assert "| bytes per move on disk |" in out and "| lossless round trip (5 games) | yes | yes | yes |" in out
    assert "get_game p99" in out and ("Encoder on" in out or "Encoder ratio not measured" in out)
