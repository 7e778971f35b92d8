"""A corpus of bad records (runs on both encoder backends).

Each case writes ``[good, good, BAD, good]`` in one ``write_games`` call and
checks: a :class:`RecordError` (never another exception) naming the bad game
and the field, the two games before it written and readable, nothing of the
bad game or the one after it written, and the store still working.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import gamestore
from gamestore.errors import DuplicateGameError, RecordError

S = "\ud800"  # a lone surrogate: not encodable as UTF-8


def base(game_id: str) -> dict:
    moves = []
    for i in range(4):
        moves.append({
            "move_number": i, "turn_number": i // 2, "player": 1 + i % 2, "phase": "placement",
            "move_type": "place_ring", "move_id": f"m{i}", "to": {"x": i, "y": 1, "z": None},
            "think_time_ms": 5, "policy": {"a": 0.25, "b": 0.75, 7: 0.0},
            "search": {"q_values": {"a": 0.1}, "visit_counts": {"a": 3}, "root_value": 0.5},
            "vectors": {"feat": [1.0, 2.0, 3.0, float(i)]},
        })
    return {
        "game_id": game_id, "board_type": "square8", "num_players": 2, "winner": 1, "source": "selfplay",
        "termination_reason": "ring_elimination", "quality_score": 0.5, "created_at": "2026-01-01T00:00:00",
        "players": [{"player_number": 1, "ai_type": "mcts"}, {"player_number": 2, "ai_type": "mcts"}],
        "metadata": {"k": [1, 2, {"x": None}]}, "initial_state": {"board": "empty"}, "moves": moves,
    }


def _deep(n: int, leaf=0):
    v = leaf
    for _ in range(n):
        v = [v]
    return v


def _circular():
    d: dict = {}
    d["self"] = d
    return d


def _set_game(key, value):
    def f(g):
        g[key] = value
    return f


def _del_game(key):
    def f(g):
        del g[key]
    return f


def _set_move(key, value, index=2):
    def f(g):
        g["moves"][index][key] = value
    return f


def _set_player(key, value):
    def f(g):
        g["players"][0][key] = value
    return f


def _replace(value):
    return lambda g: value


def _replace_move(value, index=2):
    def f(g):
        g["moves"][index] = value
    return f


CASES: list[tuple[str, object]] = []


def case(name, fn):
    CASES.append((name, fn))


# -- the record itself and its id
for i, v in enumerate([None, 5, "game", [1, 2], b"bytes", 1.5]):
    case(f"record-not-a-mapping-{i}", _replace(v))
case("game_id-missing", _del_game("game_id"))
for i, v in enumerate([None, "", 5, b"id", 1.5, ["x"], S, "a" + S + "b", "x\udfff"]):
    case(f"game_id-bad-{i}", _set_game("game_id", v))
case("record-key-not-str", _set_game(1, "x"))
case("record-key-surrogate", _set_game("extra" + S, 1))
# -- game-level fields
case("board_type-missing", _del_game("board_type"))
for i, v in enumerate(["", 5, "chess", S, ["square8"]]):
    case(f"board_type-bad-{i}", _set_game("board_type", v))
case("num_players-missing", _del_game("num_players"))
for i, v in enumerate([0, -1, 128, "2", 2.5, True, 2**70]):
    case(f"num_players-bad-{i}", _set_game("num_players", v))
for key, v in [("winner", "x"), ("winner", 2**40), ("rng_seed", 2**70), ("rng_seed", 1.5), ("duration_ms", "1"),
               ("total_moves", "x"), ("total_turns", 2**40), ("quality_score", "high"), ("quality_score", 1j),
               ("termination_reason", 5), ("source", ["a"]), ("created_at", 1), ("completed_at", b"x"),
               ("source", S), ("termination_reason", "x" + S), ("model_version", S), ("created_at", S)]:
    case(f"game-{key}-{v!r}", _set_game(key, v))
# -- players, snapshots
for i, v in enumerate(["x", 5, [1], [{"ai_type": "x"}], [{"player_number": "1"}], [{"player_number": 1, 2: 3}],
                       [{"player_number": 1, "ai_type": S}], [{"player_number": 1, "extra" + S: 1}],
                       [{"player_number": 1, "note": float("nan")}], [{"player_number": 2**40}]]):
    case(f"players-bad-{i}", _set_game("players", v))
for i, v in enumerate(["x", [5], [{"move_number": 1}], [{"state": {}}], [{"move_number": "x", "state": {}}],
                       [{"move_number": 1, "state": float("inf")}], [{"move_number": 1, "state": {}, "state_hash": 5}],
                       [{"move_number": 1, "state": {}, "state_hash": S}], [{"move_number": 1, "state": _deep(5000)}]]):
    case(f"snapshots-bad-{i}", _set_game("snapshots", v))
# -- JSON values: metadata, initial_state, unknown game keys
JSON_BAD = [
    ("nan", float("nan")), ("inf", float("inf")), ("-inf", float("-inf")), ("nested-nan", {"a": [1, float("nan")]}),
    ("int-key", {1: 2}), ("tuple-key", {(1, 2): 3}), ("set", {1, 2}), ("bytes", b"x"), ("object", object()),
    ("complex", 1j), ("deep-5000", _deep(5000)), ("deep-dict-5000", None), ("deep-300", _deep(300)),
    ("circular", _circular()), ("surrogate-value", {"a": S}), ("surrogate-key", {S: 1}),
    ("numpy-array", np.zeros(3)),
]
deep_dict: object = 0
for _ in range(5000):
    deep_dict = {"k": deep_dict}
JSON_BAD = [(n, deep_dict if n == "deep-dict-5000" else v) for n, v in JSON_BAD]
for name, v in JSON_BAD:
    case(f"metadata-{name}", _set_game("metadata", v))
for name, v in JSON_BAD[:6] + JSON_BAD[10:16]:
    case(f"initial_state-{name}", _set_game("initial_state", v))
    case(f"extra-key-{name}", _set_game("my_extra", v))
# -- moves
for i, v in enumerate(["abc", 5, {"a": 1}, b"xx"]):
    case(f"moves-not-a-list-{i}", _set_game("moves", v))
for i, v in enumerate([None, 5, "move", [1, 2]]):
    case(f"move-not-a-mapping-{i}", _replace_move(v))
for i, v in enumerate(["1", 2**40, 1, 0, -5, 1.5]):
    case(f"move_number-bad-{i}", _set_move("move_number", v))
for key, v in [("player", "1"), ("player", 300), ("turn_number", 2**40), ("phase", 5), ("phase", S),
               ("move_type", S + "x"), ("move_id", S), ("move_type", ["a"]), ("think_time_ms", "x"),
               ("think_time_ms", 2**40), ("engine_eval", "x"), ("timestamp", 5), ("timestamp", S),
               ("placement_count", 2**20), ("engine_pv", S)]:
    case(f"move-{key}-{v!r}", _set_move(key, v))
for i, v in enumerate(["a", (1,), (1, 2, 3, 4), {"x": 1}, {"x": 1, "y": "2"}, {"x": 1, "y": 2, "w": 3},
                       (70000, 1), (1.5, 2), {"x": True, "y": 1}]):
    case(f"move-from-bad-{i}", _set_move("from", v))
for i, v in enumerate([[0.5], {"a": "x"}, {"a": float("nan")}, {"a": float("inf")}, {1.5: 0.1}, {None: 0.1},
                       {2**40: 0.1}, {S: 0.5}, {"a": True}, {(1,): 0.2}]):
    case(f"move-policy-bad-{i}", _set_move("policy", v))
for i, v in enumerate([[1], {"q_values": [1]}, {"visit_counts": {"a": 1.5}}, {"visit_counts": {"a": 2**40}},
                       {"root_value": "x"}, {"search_depth": 1.5}, {1: 2}, {"extra": float("nan")},
                       {S: 1}, {"q_values": {S: 0.1}}, {"prior_policy": {"a": "p"}}, {"note": _deep(5000)}]):
    case(f"move-search-bad-{i}", _set_move("search", v))
for i, v in enumerate([[1.0], {"feat": [1.0, 2.0]}, {"feat": "abcd"}, {"feat": [[1.0, 2.0], [3.0]]},
                       {"feat": ["a", "b", "c", "d"]}, {"new_ragged": [[1.0, 2.0], [3.0]]},
                       {"bad name": [1.0]}, {"": [1.0]}, {S: [1.0]}, {5: [1.0]}, {"new_strings": ["a", "b"]},
                       {"new_empty": []}, {"new_objects": [object()]}, {"feat": [1.0, 2.0, 3.0, {"x": 1}]}]):
    case(f"move-vectors-bad-{i}", _set_move("vectors", v))
for name, v in JSON_BAD[:6] + JSON_BAD[10:16]:
    case(f"move-extra-{name}", _set_move("my_extra", v))
case("move-key-not-str", _set_move(7, "x"))
case("move-key-surrogate", _set_move("k" + S, 1))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("badrec") / "store"
    with gamestore.open(path, profile="ringrift", fsync=False, vectors={"feat": 4}) as s:
        yield s


def test_corpus_is_large():
    assert len(CASES) >= 100, len(CASES)


@pytest.mark.parametrize("name,mutate", CASES, ids=[n for n, _ in CASES])
def test_bad_record_is_typed_and_earlier_games_are_kept(store, name, mutate):
    tag = name.replace(" ", "_")
    a, b, c = base(f"{tag}-a"), base(f"{tag}-b"), base(f"{tag}-c")
    bad = base(f"{tag}-bad")
    if name.startswith("record-not-a-mapping"):
        bad = mutate(bad)
    else:
        mutate(bad)
    with pytest.raises(RecordError) as exc:
        store.write_games([a, b, bad, c])
    err = exc.value
    if isinstance(bad, dict) and isinstance(bad.get("game_id"), str) and bad["game_id"] and S not in bad["game_id"] \
            and "\udfff" not in bad["game_id"]:
        assert err.game_id == bad["game_id"], (name, err)
    if isinstance(bad, dict):
        assert err.field is not None or "record keys" in str(err), (name, err)
    str(err).encode("utf-8", "backslashreplace")  # printable
    store.flush()
    assert store.get_game(a["game_id"])["moves"][3]["policy"] == {"a": 0.25, "b": 0.75, 7: 0.0}
    assert b["game_id"] in store
    assert c["game_id"] not in store
    assert store.write_games([c]) == 1  # the store keeps working
    store.flush()
    assert c["game_id"] in store


def test_duplicates_are_typed_and_earlier_games_kept(store):
    a, b = base("dup-a"), base("dup-b")
    with pytest.raises(DuplicateGameError):
        store.write_games([a, b, base("dup-a")])
    with pytest.raises(DuplicateGameError):
        store.write_games([base("dup-c"), base("dup-a")])
    store.flush()
    assert "dup-a" in store and "dup-b" in store and "dup-c" in store


def test_finite_json_and_deep_but_allowed_nesting_round_trip(store):
    g = base("json-ok")
    g["metadata"] = {"deep": _deep(150), "big": 10**30, "neg0": -0.0, "text": "é\u2028"}
    store.write_games([g])
    store.flush()
    back = store.get_game("json-ok")["metadata"]
    assert back["deep"] == _deep(150) and back["big"] == 10**30 and math.copysign(1, back["neg0"]) == -1
    # the stored text is valid JSON for DuckDB too
    assert store.sql("SELECT json_valid(metadata_json) FROM games WHERE game_id = 'json-ok'").fetchall() == [(True,)]


def test_nan_in_typed_float_fields_is_kept(store):
    g = base("nan-float")
    g["quality_score"] = float("nan")
    g["moves"][0]["engine_eval"] = float("nan")
    store.write_games([g])
    store.flush()
    back = store.get_game("nan-float")
    assert math.isnan(back["quality_score"]) and math.isnan(back["moves"][0]["engine_eval"])


def test_bad_records_in_a_later_encode_chunk_keep_every_earlier_chunk(store):
    games = [base(f"chunk-{i}") for i in range(300)]  # more than one encode chunk (256)
    games[290]["metadata"] = {"x": float("nan")}
    with pytest.raises(RecordError) as exc:
        store.write_games(games)
    assert exc.value.game_id == "chunk-290" and exc.value.field == "metadata"
    store.flush()
    assert all(f"chunk-{i}" in store for i in (0, 255, 256, 289))
    assert "chunk-290" not in store and "chunk-291" not in store
