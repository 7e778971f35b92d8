"""Round trips and errors of gamestore.codec, on every available backend."""
from __future__ import annotations

import math
import os
import random
import struct
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gamestore import codec
from gamestore.backend import BACKENDS, get_backend
from gamestore.errors import DuplicateGameError, RecordError
from gamestore.records import games_equal, normalize_game
from gamestore.schema import GAMES_SCHEMA, RINGRIFT_BOARD_TYPES, VectorSpec, moves_schema

NOW = "2026-11-28T23:15:40.954795+00:00"

VECTORS = {
    "feat": VectorSpec("feat", (5,), "float32"),
    "planes": VectorSpec("planes", (2, 3), "float16"),
    "wide": VectorSpec("wide", (3,), "float64"),
}


def available_backends() -> list[str]:
    names = []
    for name in BACKENDS:
        try:
            get_backend(name)
        except ImportError:
            continue
        names.append(name)
    return names


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """Run the test with codec using each backend in turn."""
    try:
        chosen = get_backend(request.param)
    except ImportError as exc:  # extension not built in this checkout
        pytest.skip(f"{request.param} backend unavailable: {exc}")
    monkeypatch.setattr(codec, "_moves", chosen)
    return chosen


# ---------------------------------------------------------------------------
# Strategies: valid game records with every feature the format knows
# ---------------------------------------------------------------------------
INT_RANGE = {"int8": (-(2**7), 2**7 - 1), "int16": (-(2**15), 2**15 - 1), "int32": (-(2**31), 2**31 - 1),
             "int64": (-(2**63), 2**63 - 1)}


def ints(kind: str) -> st.SearchStrategy[int]:
    lo, hi = INT_RANGE[kind]
    return st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0]))


small_text = st.text(max_size=6)
candidates = st.one_of(small_text, st.integers(-(2**31), 2**31 - 1), st.sampled_from(["a", "b", 1, 2]))
any_float = st.one_of(
    st.floats(width=64),
    st.floats(width=32),
    st.sampled_from([-0.0, 0.0, math.nan, -math.nan, math.inf, 1e300, 3.4028235677973366e38]),
    st.integers(-(2**53), 2**53).map(float),
    st.binary(min_size=8, max_size=8).map(lambda b: struct.unpack("<d", b)[0]),  # NaN payloads
)
probability = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from([0.1, 1 / 3, -0.0, 0.0]),
    st.integers(-1000, 1000),  # ints become floats
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), small_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(small_text, inner, max_size=3)),
    max_leaves=6,
)
phases = st.sampled_from(["movement", "capture", "ring_placement", "line_processing"])


@st.composite
def positions(draw):
    x, y = draw(ints("int16")), draw(ints("int16"))
    z = draw(st.one_of(st.none(), ints("int16")))
    form = draw(st.integers(0, 2))
    if form == 0:
        return {"x": x, "y": y, "z": z}
    if form == 1:
        return {"x": x, "y": y} if z is None else {"x": x, "y": y, "z": z}
    return (x, y) if z is None else (x, y, z)


@st.composite
def searches(draw):
    cands = draw(st.lists(candidates, max_size=6, unique=True))
    out = {}
    for key in draw(st.permutations(["q_values", "visit_counts", "prior_policy"])):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            continue
        if choice == 1:
            out[key] = None
            continue
        subset = [c for c in cands if draw(st.booleans())]
        if draw(st.booleans()):
            subset.reverse()
        value = ints("int32") if key == "visit_counts" else any_float
        out[key] = {c: draw(value) for c in subset}
    scalars = {"root_value": any_float, "search_depth": ints("int32"), "uncertainty": any_float,
               "nodes_explored": ints("int64"), "total_simulations": ints("int64")}
    for key, strat in scalars.items():
        if draw(st.booleans()):
            out[key] = draw(st.one_of(st.none(), strat))
    if draw(st.booleans()):
        out["extra_stat"] = draw(json_values)
    return out


def vector_value(spec: VectorSpec):
    def build(data):
        raw, as_list, dtype = data
        arr = np.array(raw, dtype=dtype).reshape(spec.shape)
        return arr.tolist() if as_list else arr

    return st.tuples(
        st.lists(st.floats(width=32), min_size=spec.size, max_size=spec.size),
        st.booleans(),
        st.sampled_from(["float32", "float64"]),
    ).map(build)


moves_optional = {
    "turn_number": ints("int32"),
    "player": st.one_of(st.none(), ints("int8")),
    "phase": phases,
    "move_type": st.one_of(st.sampled_from(["move_stack", "no_line_action"]), small_text),
    "move_id": small_text,
    "from": positions(),
    "to": st.one_of(st.none(), positions()),
    "capture_target": positions(),
    "placement_count": ints("int16"),
    "timestamp": small_text,
    "think_time_ms": ints("int32"),
    "time_remaining_ms": ints("int64"),
    "engine_eval": any_float,
    "engine_eval_type": st.sampled_from(["heuristic", "nn"]),
    "engine_depth": ints("int32"),
    "engine_nodes": ints("int64"),
    "engine_pv": small_text,
    "engine_time_ms": ints("int64"),
    "policy": st.one_of(st.none(), st.dictionaries(candidates, probability, max_size=6)),
    "search": searches(),
    "vectors": st.fixed_dictionaries(
        {}, optional={name: st.one_of(st.none(), vector_value(spec)) for name, spec in VECTORS.items()}
    ),
    "note": json_values,
    "debug": st.dictionaries(small_text, json_values, max_size=2),
}


@st.composite
def move_lists(draw, max_size=5):
    moves = draw(st.lists(st.fixed_dictionaries({}, optional=moves_optional), max_size=max_size))
    number = draw(st.integers(-5, 5))
    for m in moves:
        if draw(st.booleans()):
            number += draw(st.integers(1, 3))
            m["move_number"] = number
        else:
            number += 1
    return _fix_defaults(moves)


def _fix_defaults(moves: list[dict]) -> list[dict]:
    """Make implicit move numbers consistent with the default rule (previous + 1, first = index)."""
    prev = None
    for i, m in enumerate(moves):
        if "move_number" not in m:
            number = i if prev is None else prev + 1
        else:
            number = m["move_number"]
            if prev is not None and number <= prev:
                number = prev + 1
                m["move_number"] = number
        prev = number
    return moves


players = st.lists(
    st.fixed_dictionaries(
        {"player_number": ints("int8")},
        optional={
            "player_type": st.sampled_from(["ai", "human"]),
            "ai_type": st.one_of(st.none(), small_text),
            "ai_difficulty": ints("int32"),
            "ai_profile_id": small_text,
            "final_eliminated_rings": ints("int32"),
            "final_territory_spaces": ints("int32"),
            "final_rings_in_hand": ints("int32"),
            "final_score": any_float,
            "elo": json_values,
        },
    ),
    max_size=3,
)
snapshots = st.lists(
    st.fixed_dictionaries(
        {"move_number": ints("int32"), "state": json_values},
        optional={"state_hash": st.one_of(st.none(), small_text), "compressed": st.booleans()},
    ),
    max_size=2,
)

game_optional = {
    "winner": st.one_of(st.none(), ints("int8")),
    "termination_reason": small_text,
    "game_status": st.sampled_from(["completed", "abandoned"]),
    "source": small_text,
    "engine_mode": small_text,
    "opponent_type": small_text,
    "opponent_model_id": small_text,
    "model_version": small_text,
    "rng_seed": ints("int64"),
    "created_at": st.sampled_from(["2026-01-01T00:00:00+00:00", "yesterday"]),
    "completed_at": small_text,
    "duration_ms": ints("int64"),
    "total_moves": ints("int32"),
    "total_turns": ints("int32"),
    "quality_score": any_float,
    "quality_category": small_text,
    "time_control_type": small_text,
    "initial_time_ms": ints("int64"),
    "time_increment_ms": ints("int64"),
    "players": st.one_of(st.none(), players),
    "metadata": json_values,
    "initial_state": st.one_of(json_values, st.binary(max_size=8)),
    "snapshots": st.one_of(st.none(), snapshots),
    "custom_field": json_values,
}


@st.composite
def game_batches(draw, max_games=4):
    n = draw(st.integers(1, max_games))
    ids = draw(st.lists(st.text(min_size=1, max_size=8), min_size=n, max_size=n, unique=True))
    games = []
    for gid in ids:
        g = {"game_id": gid, "board_type": draw(st.sampled_from(sorted(RINGRIFT_BOARD_TYPES))),
             "num_players": draw(st.integers(1, 127))}
        g.update(draw(st.fixed_dictionaries({}, optional=game_optional)))
        if draw(st.integers(0, 7)):
            g["moves"] = draw(move_lists(max_size=6))
        elif draw(st.booleans()):
            g["moves"] = None
        games.append(g)
    return games


def expected(record: dict) -> dict:
    out = normalize_game(record, vectors=VECTORS, board_types=RINGRIFT_BOARD_TYPES)
    out.setdefault("created_at", NOW)
    return out


def assert_games_equal(got: list[dict], records: list[dict]) -> None:
    assert len(got) == len(records)
    for g, r in zip(got, records):
        want = expected(r)
        assert games_equal(g, want), (g, want)


# ---------------------------------------------------------------------------
# A small realistic generator (RingRift-shaped moves)
# ---------------------------------------------------------------------------
REAL_VECTORS = {"heuristic_features": VectorSpec("heuristic_features", (49,), "float32")}


def realistic_games(n: int, *, seed: int = 0, moves_per_game: int = 60) -> list[dict]:
    rnd = random.Random(seed)
    nrng = np.random.default_rng(seed)
    out = []
    for g in range(n):
        feats = nrng.standard_normal(49).astype(np.float32)
        moves = []
        for i in range(moves_per_game):
            feats = (feats + nrng.standard_normal(49).astype(np.float32) * 0.01).astype(np.float32)
            m = {
                "move_number": i,
                "turn_number": i // 2,
                "player": 1 + i % 2,
                "phase": rnd.choice(["movement", "capture", "line_processing"]),
                "move_type": rnd.choice(["move_stack", "overtaking_capture", "no_line_action"]),
                "from": {"x": rnd.randrange(8), "y": rnd.randrange(8), "z": None},
                "to": {"x": rnd.randrange(8), "y": rnd.randrange(8), "z": None},
                "think_time_ms": rnd.randrange(2000),
                "timestamp": f"2026-11-28T10:{i // 60:02d}:{i % 60:02d}.000000",
                "vectors": {"heuristic_features": feats},
            }
            if i % 3:
                legal = [f"move_stack_{rnd.randrange(8)},{rnd.randrange(8)}_{k}" for k in range(65)]
                legal = list(dict.fromkeys(legal))
                probs = nrng.dirichlet(np.ones(12)).astype(np.float32)
                m["policy"] = {k: float(p) for k, p in zip(legal[:12], probs)}
                m["search"] = {
                    "q_values": {k: float(np.float32(rnd.uniform(-1, 1))) for k in legal},
                    "visit_counts": {k: rnd.randrange(100) for k in legal},
                    "prior_policy": {k: float(np.float32(rnd.random())) for k in legal},
                    "root_value": float(np.float32(rnd.uniform(-1, 1))),
                    "search_depth": rnd.randrange(1, 20),
                    "uncertainty": rnd.random(),
                    "nodes_explored": rnd.randrange(10_000),
                    "total_simulations": 800,
                }
            moves.append(m)
        out.append({
            "game_id": f"real-{seed}-{g}",
            "board_type": "square8",
            "num_players": 2,
            "winner": 1 + g % 2,
            "created_at": NOW,
            "players": [{"player_number": 1, "player_type": "ai"}, {"player_number": 2, "player_type": "ai"}],
            "metadata": {"source": "selfplay", "model_version": "v3"},
            "moves": moves,
        })
    return out


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(records=game_batches())
def test_roundtrip_hypothesis(records, monkeypatch_backends):
    for name in monkeypatch_backends:
        codec._moves = get_backend(name)
        enc = codec.encode_games(records, vectors=VECTORS, board_types=RINGRIFT_BOARD_TYPES, now=NOW)
        assert enc.games.schema.equals(GAMES_SCHEMA)
        assert enc.moves.schema.equals(moves_schema(VECTORS), check_metadata=True)
        assert enc.game_ids == [r["game_id"] for r in records]
        assert_games_equal(codec.decode_games(enc.games, enc.moves), records)


@pytest.fixture
def monkeypatch_backends(monkeypatch):
    """The available backend names; codec._moves is restored afterwards."""
    monkeypatch.setattr(codec, "_moves", codec._moves)
    return available_backends()


def test_realistic_roundtrip(backend):
    records = realistic_games(3, moves_per_game=40)
    enc = codec.encode_games(records, vectors=REAL_VECTORS, now=NOW)
    assert enc.moves.num_rows == 120
    assert enc.games.column("move_offset").to_pylist() == [0, 40, 80]
    assert enc.games.column("move_count").to_pylist() == [40, 40, 40]
    got = codec.decode_games(enc.games, enc.moves)
    for g, r in zip(got, records):
        assert games_equal(g, normalize_game(r, vectors=REAL_VECTORS))
    # network outputs are float32 numbers: no float64 override is needed
    policy = enc.moves.column("policy").combine_chunks().flatten()
    assert policy.field("prob64").null_count == len(policy)


def test_decode_with_base_offset_and_single_game(backend):
    records = realistic_games(3, moves_per_game=7)
    enc = codec.encode_games(records, vectors=REAL_VECTORS, now=NOW)
    # the caller reads rows [7, 21) of a moves file whose row 0 is offset 0
    got = codec.decode_games(enc.games.slice(1), enc.moves.slice(7), base_offset=7)
    assert_equal_records(got, records[1:])
    one = codec.decode_game(enc.games.slice(2, 1), enc.moves.slice(14, 7))
    assert games_equal(one, normalize_game(records[2], vectors=REAL_VECTORS))
    with pytest.raises(ValueError):
        codec.decode_game(enc.games.slice(2, 1), enc.moves.slice(14, 6))
    # games out of move order still decode (each game's own rows)
    rev = codec.decode_games(enc.games.take([2, 0]), enc.moves)
    assert_equal_records(rev, [records[2], records[0]])


def assert_equal_records(got, records):
    assert len(got) == len(records)
    for g, r in zip(got, records):
        assert games_equal(g, normalize_game(r, vectors=REAL_VECTORS))


def test_created_at_filled_and_kept(backend):
    records = [
        {"game_id": "a", "board_type": "square8", "num_players": 2},
        {"game_id": "b", "board_type": "square8", "num_players": 2, "created_at": "then"},
    ]
    enc = codec.encode_games(records, vectors={})
    created = enc.games.column("created_at").to_pylist()
    assert created[1] == "then"
    assert created[0].endswith("+00:00") and len(created[0]) == len("2026-11-28T23:15:40.954795+00:00")
    enc = codec.encode_games(records, vectors={}, now="NOW")
    assert enc.games.column("created_at").to_pylist() == ["NOW", "then"]
    assert codec.decode_games(enc.games, enc.moves)[0]["moves"] == []


def test_columns_follow_the_format(backend):
    records = [
        {
            "game_id": "g1", "board_type": "hex8", "num_players": 2,
            "initial_state": b"\x00\x01", "players": [{"player_number": 1, "elo": 1500}],
            "snapshots": [{"move_number": 0, "state": {"board": []}, "state_hash": "h", "note": 1}],
            "zeta": [1, 2],
            "moves": [
                {"phase": "movement", "policy": {"k1": 0.1, 7: 0.9}, "from": (1, 2, -3), "misc": None,
                 "search": {"visit_counts": {"k1": 3}, "q_values": {7: 0.5, "k1": -0.0},
                            "search_depth": 4, "root_value": None, "extra": "x"}},
                {"phase": "capture", "search": {"uncertainty": 0.25}},
                {"phase": "movement", "policy": {}},
            ],
        },
        {"game_id": "g2", "board_type": "hex8", "num_players": 2, "initial_state": {"a": 1},
         "moves": [{"move_number": 5, "phase": "capture", "vectors": {"feat": [1, 2, 3, 4, 5]}}]},
    ]
    enc = codec.encode_games(records, vectors=VECTORS, now=NOW)
    m = enc.moves
    gid = m.column("game_id").combine_chunks()
    assert gid.dictionary.to_pylist() == ["g1", "g2"] and gid.indices.to_pylist() == [0, 0, 0, 1]
    assert m.column("move_number").to_pylist() == [0, 1, 2, 5]
    phase = m.column("phase").combine_chunks()
    assert phase.dictionary.to_pylist() == ["movement", "capture"]
    assert phase.indices.to_pylist() == [0, 1, 0, 1]
    assert m.column("from_x").to_pylist() == [1, None, None, None]
    assert m.column("from_z").to_pylist() == [-3, None, None, None]
    assert m.column("policy").to_pylist() == [
        [{"key": "k1", "action": None, "prob": pytest.approx(0.1), "prob64": 0.1},
         {"key": None, "action": 7, "prob": pytest.approx(0.9), "prob64": 0.9}],
        None, [], None,
    ]
    search = m.column("search").to_pylist()
    # union in first-seen order over q_values, visit_counts, prior_policy (not dict order)
    assert [(e["key"], e["action"]) for e in search[0]] == [(None, 7), ("k1", None)]
    assert [e["visits"] for e in search[0]] == [None, 3]
    assert [e["q"] for e in search[0]] == [0.5, -0.0] and math.copysign(1, search[0][1]["q"]) == -1
    assert [e["q64"] for e in search[0]] == [None, None]
    assert search[1:] == [None, None, None]
    assert m.column("search_flags").to_pylist() == [0b11 | 1 << 4, 1 << 5, 0, 0]
    assert m.column("search_extra_json").to_pylist() == ['{"root_value":null,"extra":"x"}', "{}", None, None]
    assert m.column("extra_json").to_pylist() == ['{"misc":null}', None, None, None]
    assert m.column("vec_feat").to_pylist() == [None, None, None, [1, 2, 3, 4, 5]]
    g = enc.games
    assert g.column("initial_state_blob").to_pylist() == [b"\x00\x01", None]
    assert g.column("initial_state_json").to_pylist() == [None, '{"a":1}']
    assert g.column("players").to_pylist()[0][0]["extra_json"] == '{"elo":1500}'
    assert g.column("snapshots").to_pylist()[0] == [
        {"move_number": 0, "state_json": '{"board":[]}', "state_hash": "h", "extra_json": '{"note":1}'}]
    assert g.column("extra_json").to_pylist() == ['{"zeta":[1,2]}', None]
    assert g.column("move_count").to_pylist() == [3, 1]
    assert_games_equal(codec.decode_games(enc.games, enc.moves), records)


def test_float64_overrides(backend):
    values = [0.1, 0.5, -0.0, 1e-50, 1e300, math.nan, struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0]]
    rec = {"game_id": "f", "board_type": "square8", "num_players": 2,
           "moves": [{"search": {"q_values": {i: v for i, v in enumerate(values)}}}]}
    enc = codec.encode_games([rec], vectors={}, now=NOW)
    entries = enc.moves.column("search").to_pylist()[0]
    overridden = [e["q64"] is not None for e in entries]
    assert overridden == [True, False, False, True, True, False, True]
    got = codec.decode_games(enc.games, enc.moves)[0]["moves"][0]["search"]["q_values"]
    assert [struct.pack("<d", got[i]) for i in range(len(values))] == [struct.pack("<d", v) for v in values]


def test_first_bad_record_has_game_index(backend):
    good = realistic_games(3, moves_per_game=3)
    bad_move = dict(good[1], moves=[{"policy": {"a": "x"}}])
    with pytest.raises(RecordError) as info:
        codec.encode_games([good[0], bad_move, good[2]], vectors=REAL_VECTORS)
    assert (info.value.game_id, info.value.field, info.value.game_index) == (good[1]["game_id"], "moves[0].policy", 1)
    # a bad header later than a bad move: the move's game is first
    bad_header = dict(good[2], num_players="two")
    with pytest.raises(RecordError) as info:
        codec.encode_games([good[0], bad_move, bad_header], vectors=REAL_VECTORS)
    assert info.value.game_index == 1
    with pytest.raises(RecordError) as info:
        codec.encode_games([good[0], bad_header, bad_move], vectors=REAL_VECTORS)
    assert (info.value.game_index, info.value.field) == (1, "num_players")
    with pytest.raises(DuplicateGameError) as info:
        codec.encode_games([good[0], good[1], good[0]], vectors=REAL_VECTORS)
    assert (info.value.game_index, info.value.game_id) == (2, good[0]["game_id"])
    with pytest.raises(RecordError) as info:
        codec.encode_games([good[0], {"board_type": "square8"}], vectors=REAL_VECTORS)
    assert info.value.game_index == 1 and info.value.field == "game_id"
    with pytest.raises(RecordError) as info:
        codec.encode_games([good[0], dict(good[1], moves="no")], vectors=REAL_VECTORS)
    assert (info.value.game_index, info.value.field) == (1, "moves")
    with pytest.raises(RecordError) as info:
        codec.encode_games([dict(good[0], board_type="chess")], vectors=REAL_VECTORS,
                           board_types=RINGRIFT_BOARD_TYPES)
    assert (info.value.game_index, info.value.field) == (0, "board_type")


@pytest.mark.parametrize(
    "move, field",
    [
        ({"vectors": {"heuristic_features": [1.0] * 48}}, "moves[1].vectors.heuristic_features"),
        ({"vectors": {"other": [1.0]}}, "moves[1].vectors.other"),
        ({"policy": {"a": math.nan}}, "moves[1].policy"),
        ({"policy": {True: 0.5}}, "moves[1].policy"),
        ({"move_number": 0}, "moves[1].move_number"),
        ({"player": 300}, "moves[1].player"),
        ({"from": {"x": 1}}, "moves[1].from"),
        ({"search": {"visit_counts": {"a": 1.5}}}, "moves[1].search.visit_counts['a']"),
        ({"search": {"q_values": {"a": 0.1, 2**40: 0.2}}}, f"moves[1].search.q_values[{2**40}]"),
        ({"note": {1: 2}}, "moves[1].note"),
    ],
)
def test_bad_moves(backend, move, field):
    rec = {"game_id": "bad", "board_type": "square8", "num_players": 2, "moves": [{}, move]}
    with pytest.raises(RecordError) as info:
        codec.encode_games([rec], vectors=REAL_VECTORS)
    assert (info.value.game_id, info.value.field, info.value.game_index) == ("bad", field, 0)


def test_dictionary_overflow_is_a_record_error(backend):
    # phase is dictionary<int16>: the 32,769th distinct value in one batch cannot be coded
    moves = [{"phase": f"p{i}"} for i in range(2**15)]
    recs = [{"game_id": "a", "board_type": "square8", "num_players": 2, "moves": moves},
            {"game_id": "b", "board_type": "square8", "num_players": 2, "moves": [{"phase": "new"}]}]
    with pytest.raises(RecordError) as info:
        codec.encode_games(recs, vectors={})
    assert (info.value.game_index, info.value.field) == (1, "moves[0].phase")


def test_backend_selection_env():
    code = "import gamestore.backend as b; print(b.BACKEND)"
    env = dict(os.environ, GAMESTORE_BACKEND="python")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "python"
    env["GAMESTORE_BACKEND"] = "fortran"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "ValueError" in out.stderr
    with pytest.raises(ValueError):
        get_backend("fortran")
    # the compiled module cannot be imported: a warning, then the pure-Python backend
    code = ("import sys, warnings; sys.modules['gamestore._decode'] = None; warnings.simplefilter('error'); "
            "import gamestore.backend")
    env["GAMESTORE_BACKEND"] = "cython"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "RuntimeWarning" in out.stderr and "pure-Python" in out.stderr
    code = ("import sys, warnings; sys.modules['gamestore._decode'] = None; warnings.simplefilter('ignore'); "
            "import gamestore.backend as b; print(b.BACKEND)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "python"


def test_schemas_are_exact(backend):
    enc = codec.encode_games(realistic_games(1, moves_per_game=2), vectors=REAL_VECTORS, now=NOW)
    assert enc.moves.schema.equals(moves_schema(REAL_VECTORS), check_metadata=True)
    assert enc.moves.schema.field("vec_heuristic_features").metadata == {b"shape": b"[49]"}
    assert isinstance(enc.moves.column("policy").type, pa.ListType)
