"""Hypothesis strategies and generators of game records for the codec and backend tests."""
from __future__ import annotations

import math
import random
import struct

import numpy as np
from hypothesis import strategies as st

from gamestore.records import games_equal, normalize_game
from gamestore.ringrift.profile import BOARD_TYPES as RINGRIFT_BOARD_TYPES
from gamestore.schema import VectorSpec

NOW = "2026-11-28T23:15:40.954795+00:00"

VECTORS = {
    "feat": VectorSpec("feat", (5,), "float32"),
    "planes": VectorSpec("planes", (2, 3), "float16"),
    "wide": VectorSpec("wide", (3,), "float64"),
}



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
