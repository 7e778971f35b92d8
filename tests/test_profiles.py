"""Game profiles (gamestore/profiles.py): a core that knows no game, RingRift as a plugin."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import gamestore
from gamestore import profiles
from gamestore.errors import ProfileError, QueryError
from gamestore.testing import synth

pytestmark = pytest.mark.single_backend

FROZEN = Path(__file__).parent / "fixtures" / "format_v1" / "store"
RINGRIFT_VIEWS = {"game_moves", "game_players", "ringrift_games", "game_state_snapshots"}


def _config(path: Path) -> dict:
    return json.loads((path / "gamestore.json").read_text())


def test_a_new_store_knows_no_game(tmp_path):
    with gamestore.open(tmp_path / "s") as s:
        assert s.profile is None and s.board_types is None
        assert not RINGRIFT_VIEWS & s.catalog.view_names
        assert {"games", "moves", "players", "policies", "shards"} <= s.catalog.view_names
        s.write_games([{"game_id": "c1", "board_type": "chess", "num_players": 2, "moves": [{"player": 1, "move_type": "e4"}]}])
        s.flush()
        assert s.count_games("board_type = 'chess'") == 1
        with pytest.raises(QueryError):
            s.sql("SELECT count(*) FROM game_moves").fetchall()
        with pytest.raises(QueryError):
            s.count_games("parity_status IS NULL")  # a RingRift column of the games view
    assert _config(tmp_path / "s")["profile"] is None


def test_ringrift_profile_is_recorded_and_installed_on_every_open(tmp_path):
    with gamestore.open(tmp_path / "s", profile="ringrift", vectors=synth.VECTORS) as s:
        s.write_games(synth.games(3, seed=1))
        s.flush()
        assert s.board_types == profiles.get_profile("ringrift").board_types
    assert _config(tmp_path / "s")["profile"] == "ringrift"
    with gamestore.open(tmp_path / "s", create=False) as s:  # no profile asked: the recorded one
        assert s.profile == "ringrift" and RINGRIFT_VIEWS <= s.catalog.view_names
        assert s.sql("SELECT count(DISTINCT game_id) FROM game_moves").fetchall()[0][0] == 3
        assert s.count_games("parity_status IS NULL") == 3
        with pytest.raises(gamestore.RecordError, match="unknown board type"):
            s.write_games([{"game_id": "x", "board_type": "chess", "num_players": 2, "moves": []}])


def test_stores_from_before_profiles_keep_the_ringrift_views(tmp_path):
    shutil.copytree(FROZEN, tmp_path / "frozen")
    assert "profile" not in _config(tmp_path / "frozen")
    with gamestore.open(tmp_path / "frozen", create=False) as s:
        assert s.profile == "ringrift" and RINGRIFT_VIEWS <= s.catalog.view_names
        assert s.sql("SELECT count(*) FROM ringrift_games").fetchall()[0][0] == s.count_games() > 0
    assert "profile" not in _config(tmp_path / "frozen")  # reading changes nothing on disk


def test_asking_for_a_profile_records_it_once(tmp_path):
    gamestore.open(tmp_path / "s").close()
    with gamestore.open(tmp_path / "s", profile="ringrift") as s:
        assert s.profile == "ringrift" and "game_moves" in s.catalog.view_names
    assert _config(tmp_path / "s")["profile"] == "ringrift"
    other = profiles.Profile(name="test-other")
    profiles.register(other)
    with pytest.raises(ProfileError, match="created with profile 'ringrift'"):
        gamestore.open(tmp_path / "s", profile="test-other")


def test_unknown_profile_creates_nothing(tmp_path):
    with pytest.raises(ProfileError, match="unknown profile 'nope'"):
        gamestore.open(tmp_path / "s", profile="nope")
    assert not (tmp_path / "s").exists()


def test_a_registered_profile_adds_its_views_and_columns(tmp_path):
    def install(con):
        con.execute("CREATE OR REPLACE VIEW long_games AS SELECT game_id FROM games WHERE num_moves > 1")

    profiles.register(profiles.Profile(
        name="test-chess",
        board_types=frozenset({"chess"}),
        games_columns=("upper(board_type) AS board_upper",),
        install_views=install,
    ))
    with gamestore.open(tmp_path / "s", profile="test-chess") as s:
        s.write_games([
            {"game_id": "a", "board_type": "chess", "num_players": 2,
             "moves": [{"player": 1, "move_type": "e4"}, {"player": 2, "move_type": "e5"}]},
            {"game_id": "b", "board_type": "chess", "num_players": 2, "moves": []},
        ])
        s.flush()
        assert s.sql("SELECT game_id FROM long_games").fetchall() == [("a",)]
        assert s.count_games("board_upper = 'CHESS'") == 2
        assert len(s.select_games("board_upper = 'CHESS'")) == 2
        with pytest.raises(gamestore.RecordError, match="unknown board type"):
            s.write_games([{"game_id": "c", "board_type": "go", "num_players": 2, "moves": []}])
