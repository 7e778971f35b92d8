"""Tests of gamestore.testing.synth: shape, realism and determinism of synthetic records."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gamestore.testing import synth
from gamestore.records import games_equal, normalize_game
from gamestore.ringrift.profile import BOARD_TYPES as RINGRIFT_BOARD_TYPES

# a handful of games per board keeps the suite light (hexagonal games have ~1,200 moves)
SMALL = {"square8": 12, "hex8": 12, "square19": 3, "hexagonal": 2}


@pytest.fixture(scope="module", params=sorted(SMALL))
def corpus(request):
    board = request.param
    return board, synth.games(SMALL[board], board_type=board, num_players=2, seed=11)


def _searched(games):
    return [m for g in games for m in g["moves"] if "search" in m]


def test_canonical_form_unchanged_by_normalize(corpus):
    _, games = corpus
    for g in games:
        norm = normalize_game(g, vectors=synth.VECTORS, board_types=RINGRIFT_BOARD_TYPES)
        assert games_equal(norm, g)


def test_canonical_with_snapshots_and_players():
    for n in (3, 4):
        for g in synth.games(2, board_type="hex8", num_players=n, seed=2, snapshot_every=15):
            assert games_equal(normalize_game(g, vectors=synth.VECTORS, board_types=RINGRIFT_BOARD_TYPES), g)
            assert [p["player_number"] for p in g["players"]] == list(range(1, n + 1))


def test_deterministic_and_prefix_stable():
    a = synth.games(4, board_type="square8", seed=7, snapshot_every=25)
    b = synth.games(4, board_type="square8", seed=7, snapshot_every=25)
    assert games_equal(a, b)
    assert games_equal(synth.games(2, board_type="square8", seed=7, snapshot_every=25), a[:2])
    c = synth.games(4, board_type="square8", seed=8)
    assert not games_equal([g["moves"] for g in a], [g["moves"] for g in c])
    assert games_equal(list(synth.iter_games(3, seed=7)), synth.games(3, seed=7))


def test_game_ids_unique_across_seeds_boards_and_players():
    ids = [
        g["game_id"]
        for seed in range(4)
        for board, n in (("square8", 2), ("square8", 3), ("hex8", 2))
        for g in synth.games(6, board_type=board, num_players=n, seed=seed)
    ]
    assert len(ids) == len(set(ids)) == 4 * 3 * 6
    assert ids[0].startswith("square8-2p-0-0-")


def test_lengths_per_board(corpus):
    board, games = corpus
    lo, hi = synth.BOARDS[board].length
    for g in games:
        n = len(g["moves"])
        assert lo <= n <= hi, (board, n)
        assert g["total_moves"] == n
        assert g["total_turns"] == g["moves"][-1]["turn_number"] + 1
        assert [m["move_number"] for m in g["moves"]] == list(range(n))


def test_length_ranges_match_production():
    assert synth.BOARDS["square8"].length == (100, 250)
    assert synth.BOARDS["hex8"].length == (130, 280)
    assert synth.BOARDS["square19"].length == (400, 650)
    assert synth.BOARDS["hexagonal"].length == (1000, 1400)


def test_bookkeeping_fraction(corpus):
    board, games = corpus
    moves = [m for g in games for m in g["moves"]]
    book = [m for m in moves if m["move_type"] in synth.BOOKKEEPING_MOVE_TYPES]
    assert 1 / 3 <= len(book) / len(moves) <= 1 / 2, board
    for m in book:
        assert "policy" not in m and "search" not in m
        assert m["move_type"].startswith("no_") and m["move_type"].endswith("_action")
    # every other move carries policy and search
    assert all("policy" in m and "search" in m for m in moves if m["move_type"] not in synth.BOOKKEEPING_MOVE_TYPES)


def test_move_types_phases_and_turn_rotation(corpus):
    _, games = corpus
    for g in games:
        n = g["num_players"]
        for m in g["moves"]:
            assert m["move_type"] in synth.MOVE_TYPES
            assert m["phase"] in synth.PHASES
            assert m["player"] == m["turn_number"] % n + 1
            if m["move_type"] == "place_ring":
                assert 1 <= m["placement_count"] <= 3
                assert isinstance(m["placedOnStack"], bool)
            if m["move_type"] in ("overtaking_capture", "continue_capture_segment"):
                assert {"from", "to", "capture_target"} <= m.keys()
            assert isinstance(m["timestamp"], str) and isinstance(m["think_time_ms"], int)
    assert len(synth.MOVE_TYPES) == len(set(synth.MOVE_TYPES))


def test_policies(corpus):
    _, games = corpus
    searched = _searched(games)
    sizes = [len(m["policy"]) for m in searched]
    assert max(sizes) <= 16
    assert 8 <= np.mean([s for s, m in zip(sizes, searched) if len(m["search"]["q_values"]) >= 16]) <= 16
    for m in searched:
        pol, legal = m["policy"], m["search"]["q_values"]
        assert len(pol) == min(len(legal), len(pol)) and len(pol) >= min(8, len(legal))
        assert set(pol) <= set(legal)
        assert math.isclose(sum(pol.values()), 1.0, abs_tol=1e-5)
        for k, p in pol.items():
            assert type(p) is float and float(np.float32(p)) == p and p > 0
            assert isinstance(k, str)


def test_policy_keys_follow_build_move_key(corpus):
    board, games = corpus
    for m in _searched(games):
        mt = m["move_type"]
        frm, to = m.get("from"), m.get("to")
        if mt == "place_ring":
            key = f"place_ring_{to['x']},{to['y']}"
        elif mt in ("move_stack", "overtaking_capture", "continue_capture_segment", "recovery_slide"):
            key = f"{mt}_{frm['x']},{frm['y']}_{to['x']},{to['y']}"
        elif mt == "skip_capture":
            key = "skip_capture_0,0"
        else:
            continue
        assert key in m["search"]["q_values"], (board, key)


def test_search_statistics(corpus):
    board, games = corpus
    spec = synth.BOARDS[board]
    searched = _searched(games)
    for m in searched:
        s = m["search"]
        keys = list(s["q_values"])
        assert list(s["visit_counts"]) == keys == list(s["prior_policy"])
        assert all(type(v) is int and v >= 0 for v in s["visit_counts"].values())
        assert all(-1.0 <= q <= 1.0 and float(np.float32(q)) == q for q in s["q_values"].values())
        assert math.isclose(sum(s["prior_policy"].values()), 1.0, abs_tol=1e-5)
        assert -1.0 <= s["root_value"] <= 1.0 and 0.0 <= s["uncertainty"] <= 1.0
        assert isinstance(s["search_depth"], int) and isinstance(s["nodes_explored"], int)
        assert s["total_simulations"] == spec.simulations
    # placements range over (nearly) every cell: ~65 on square8, ~200+ on square19
    place = [len(m["search"]["q_values"]) for m in searched if m["move_type"] == "place_ring"]
    cells = {"square8": 64, "hex8": 61, "square19": 361, "hexagonal": 469}[board]
    assert 0.5 * cells <= np.mean(place) <= cells
    assert max(len(m["search"]["q_values"]) for m in searched) <= cells + 8


def test_heuristic_features_drift(corpus):
    _, games = corpus
    for g in games:
        feats = np.stack([m["vectors"]["heuristic_features"] for m in g["moves"]])
        assert feats.dtype == np.float32 and feats.shape == (len(g["moves"]), 49)
        step = np.abs(np.diff(feats, axis=0))
        assert step.max() <= 1.0  # small steps only
        assert 0.01 < (step > 0).mean() < 0.2  # a few features move each time
        assert not np.array_equal(feats[0], feats[-1])


def test_positions(corpus):
    board, games = corpus
    spec = synth.BOARDS[board]
    for g in games:
        for m in g["moves"]:
            for key in ("from", "to", "capture_target"):
                pos = m.get(key)
                if pos is None:
                    continue
                assert set(pos) == {"x", "y", "z"}
                if spec.hex:
                    if (pos["x"], pos["y"], pos["z"]) == (0, 0, None):
                        continue  # bookkeeping moves carry RingRift's placeholder (0, 0)
                    assert pos["z"] == -pos["x"] - pos["y"]
                    assert max(abs(pos["x"]), abs(pos["y"]), abs(pos["z"])) <= spec.radius
                else:
                    assert pos["z"] is None
                    assert 0 <= pos["x"] < spec.size and 0 <= pos["y"] < spec.size


def test_game_fields_and_times():
    games = synth.games(5, board_type="square8", num_players=3, seed=4, start_time="2026-05-01T12:00:00")
    created = [g["created_at"] for g in games]
    assert created == sorted(created) and len(set(created)) == 5
    assert created[0].startswith("2026-05-01T12:")
    for g in games:
        assert g["game_status"] == "completed" and g["source"] == "selfplay"
        assert 1 <= g["winner"] <= 3
        assert g["completed_at"] > g["created_at"]
        stamps = [m["timestamp"] for m in g["moves"]]
        assert stamps == sorted(stamps) and g["created_at"] <= stamps[0] and stamps[-1] <= g["completed_at"]
        assert g["metadata"] == {k: g[k] for k in ("source", "engine_mode", "opponent_type", "model_version")}
        assert g["initial_state"]["boardType"] == "square8" and g["initial_state"]["board"]["stacks"] == {}
        assert len(g["players"]) == 3 and all(p["player_type"] == "ai" for p in g["players"])
        assert 0.0 <= g["quality_score"] <= 1.0 and g["quality_category"]
        assert isinstance(g["rng_seed"], int) and g["duration_ms"] > 0


def test_snapshots():
    (g,) = synth.games(1, board_type="hex8", num_players=2, seed=5, snapshot_every=20)
    snaps = g["snapshots"]
    assert [s["move_number"] for s in snaps] == list(range(20, len(g["moves"]) + 1, 20))
    for s in snaps:
        assert "moveHistory" not in s["state"]
        assert len(s["state_hash"]) == 16 and int(s["state_hash"], 16) >= 0
        assert json.loads(json.dumps(s["state"])) == s["state"]
        for key, stack in s["state"]["board"]["stacks"].items():
            x, y, z = map(int, key.split(","))
            assert x + y + z == 0 and stack["stackHeight"] == len(stack["rings"])
    assert len({s["state_hash"] for s in snaps}) == len(snaps)
    assert "snapshots" not in synth.games(1, board_type="hex8", seed=5)[0]


def test_bad_arguments():
    with pytest.raises(ValueError):
        synth.games(1, board_type="go19")
    with pytest.raises(ValueError):
        synth.games(1, num_players=5)
    with pytest.raises(ValueError):
        synth.games(1, snapshot_every=0)
    assert synth.games(0) == []
