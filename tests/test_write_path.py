"""write_games: the fast attempt (no per-move vector scan) has the outcome of the full path.

A chunk is first encoded as it is; only when that fails (a repeated id, a bad record, or a move
using a vector the store has not declared yet) does the store scan the moves for new vectors,
declare them and encode again.  These cases pin what the caller sees either way.
"""
from __future__ import annotations

import numpy as np
import pytest

import gamestore
from gamestore.errors import DuplicateGameError, RecordError


def _game(gid: str, vectors: dict | None = None, bad: bool = False) -> dict:
    move: dict = {"player": 1, "move_type": "place_ring"}
    if vectors:
        move["vectors"] = vectors
    if bad:
        move["player"] = "one"
    return {"game_id": gid, "board_type": "square8", "num_players": 2, "moves": [move, {"player": 2, "move_type": "pass"}]}


def test_new_vector_is_declared_on_first_write(tmp_path):
    with gamestore.open(tmp_path / "s") as s:
        assert s.write_games([_game("a"), _game("b", {"f": np.arange(3, dtype=np.float32)})]) == 2
        assert s.vectors["f"].shape == (3,)
        s.flush()
        got = s.get_game("b")["moves"][0]["vectors"]["f"]
        assert got.tolist() == [0.0, 1.0, 2.0]


def test_vector_after_a_bad_record_is_declared_and_games_before_it_kept(tmp_path):
    with gamestore.open(tmp_path / "s") as s:
        records = [_game("a"), _game("b", bad=True), _game("c", {"g": np.ones(2, dtype=np.float32)})]
        with pytest.raises(RecordError) as info:
            s.write_games(records)
        assert info.value.game_id == "b" and info.value.game_index == 1
        assert "g" in s.vectors  # declared from the chunk, as before the fast attempt existed
        s.flush()
        assert sorted(s.query_games(columns=["game_id"]).column("game_id").to_pylist()) == ["a"]


def test_repeated_id_stops_at_it_and_declares_vectors_of_the_chunk(tmp_path):
    with gamestore.open(tmp_path / "s") as s:
        s.write_games([_game("a")])
        with pytest.raises(DuplicateGameError):
            s.write_games([_game("b"), _game("a"), _game("c", {"h": np.ones(4, dtype=np.float32)})])
        assert "h" in s.vectors
        assert s.write_games([_game("a"), _game("d")], on_duplicate="skip") == 1
        s.flush()
        assert s.count_games() == 3


def test_unusable_new_vector_is_a_record_error_naming_it(tmp_path):
    with gamestore.open(tmp_path / "s") as s:
        with pytest.raises(RecordError) as info:
            s.write_games([_game("a"), _game("b", {"bad": ["x", "y"]})])
        assert info.value.game_index == 1 and "vectors.bad" in str(info.value.field)
        s.flush()
        assert s.count_games() == 1


def test_new_shards_segment_is_built_from_the_written_table_not_read_back(tmp_path, monkeypatch):
    """A shard's catalog segment comes from the games table its writer just wrote (background seal and flush
    alike): the same segment as one rebuilt from games.arrow, and games.arrow is not read back."""
    from gamestore import catalog_snapshot
    from gamestore.manifest import read_manifest
    from gamestore.shard import ShardReader
    from gamestore.storage import Storage
    from gamestore.testing import synth

    def no_read_back(self):
        raise AssertionError("games.arrow read back after the commit")

    records = synth.games(12, board_type="square8", num_players=2, seed=3)
    root = tmp_path / "s"
    with monkeypatch.context() as m:
        m.setattr(ShardReader, "games", property(no_read_back))
        with gamestore.open(root, vectors=synth.VECTORS, shard_moves=900) as s:
            s.write_games(records)  # several shards, sealed in the background
            s.flush()
            assert s.count_games() == 12
    storage = Storage.from_location(root)
    shards = sorted(p.name for p in (root / "shards").iterdir())
    assert len(shards) >= 2
    for sid in shards:
        stored = catalog_snapshot.read_segment(storage, f"catalog/{sid}.parquet")
        manifest = read_manifest(storage, f"shards/{sid}")
        rebuilt = catalog_snapshot.segment_from_games(sid, ShardReader(storage, sid, manifest=manifest).games)
        assert stored.equals(rebuilt)
        assert stored.schema.equals(catalog_snapshot.SEGMENT_SCHEMA)
    with gamestore.open(root, create=False) as s:
        assert sorted(s.query_games(columns=["game_id"]).column("game_id").to_pylist()) == sorted(r["game_id"] for r in records)
