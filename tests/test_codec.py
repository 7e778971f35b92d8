"""Round trips and errors of gamestore.codec, on every available backend."""
from __future__ import annotations

import gc
import math
import pickle
import struct
import subprocess
import sys

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from gamestore import codec
from gamestore.backend import BACKENDS, get_backend, use
from gamestore.errors import DuplicateGameError, RecordError
from gamestore.records import games_equal, normalize_game
from gamestore.ringrift.profile import BOARD_TYPES as RINGRIFT_BOARD_TYPES
from gamestore.schema import GAMES_SCHEMA, moves_schema

from helpers import subprocess_env
from helpers.codec_cases import NOW, REAL_VECTORS, VECTORS, assert_games_equal, game_batches, realistic_games


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(records=game_batches())
def test_roundtrip_hypothesis(records):
    for name in BACKENDS:
        with use(name):
            enc = codec.encode_games(records, vectors=VECTORS, board_types=RINGRIFT_BOARD_TYPES, now=NOW)
            decoded = codec.decode_games(enc.games, enc.moves)
        assert enc.games.schema.equals(GAMES_SCHEMA)
        assert enc.moves.schema.equals(moves_schema(VECTORS), check_metadata=True)
        assert enc.game_ids == [r["game_id"] for r in records]
        assert_games_equal(decoded, records)


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
    # the index is set through the constructor, and survives pickling (worker processes)
    err = pickle.loads(pickle.dumps(info.value))
    assert type(err) is RecordError and str(err) == str(info.value)
    assert (err.game_id, err.field, err.game_index, err.message) == (
        info.value.game_id, "board_type", 0, info.value.message)
    dup = DuplicateGameError("repeated", game_id="g", field="game_id").at_index(4)
    assert type(dup) is DuplicateGameError and dup.game_index == 4 and str(dup) == "game 'g', field 'game_id': repeated"


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
    def run(env_value, code):
        env = subprocess_env()
        if env_value is None:
            env.pop("GAMESTORE_BACKEND", None)
        else:
            env["GAMESTORE_BACKEND"] = env_value
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)

    show = "import gamestore.backend as b; print(b.BACKEND, b.selected().name)"
    assert run("python", show).stdout.split() == ["python", "python"]
    assert run("cython", show).stdout.split() == ["cython", "cython"]
    assert run(None, show).stdout.split() == ["cython", "cython"]  # the default when compiled
    out = run("fortran", show)
    assert out.returncode != 0 and "ValueError" in out.stderr
    with pytest.raises(ValueError):
        get_backend("fortran")
    # the compiled module cannot be imported: asked for explicitly, an ImportError ...
    broken = "import sys; sys.modules['gamestore._decode'] = None; "
    out = run("cython", broken + "import gamestore.backend")
    assert out.returncode != 0 and "ImportError: GAMESTORE_BACKEND=cython" in out.stderr
    out = run("cython", broken + "import gamestore.codec")
    assert out.returncode != 0 and "ImportError" in out.stderr
    # ... unset: a RuntimeWarning, then the pure-Python backend
    out = run(None, broken + "import warnings; warnings.simplefilter('error'); import gamestore.backend")
    assert out.returncode != 0 and "RuntimeWarning" in out.stderr and "pure-Python" in out.stderr
    out = run(None, broken + "import warnings; warnings.simplefilter('ignore'); import gamestore.backend as b;"
                             " print(b.selected().name)")
    assert out.stdout.strip() == "python", out.stderr


def test_use_switches_and_restores():
    from gamestore import backend

    before = backend.selected()
    for name in BACKENDS:
        with use(name) as chosen:
            assert backend.selected() is chosen is get_backend(name)
        assert backend.selected() is before
    with pytest.raises(RuntimeError), use("python"):
        raise RuntimeError
    assert backend.selected() is before


def test_schemas_are_exact(backend):
    enc = codec.encode_games(realistic_games(1, moves_per_game=2), vectors=REAL_VECTORS, now=NOW)
    assert enc.moves.schema.equals(moves_schema(REAL_VECTORS), check_metadata=True)
    assert enc.moves.schema.field("vec_heuristic_features").metadata == {b"shape": b"[49]"}
    assert isinstance(enc.moves.column("policy").type, pa.ListType)


def test_compiled_encode_runs_no_collection_and_restores_the_collector():
    """With the compiled backend encode_games keeps the collector off (its dicts are freed by reference counting
    when it returns), puts its state back as it was, also after an error; the reference keeps it on."""
    games = realistic_games(6, moves_per_game=5)
    bad = [*games, {"game_id": "bad", "moves": "not a list"}]
    started: list[int] = []

    def watch(phase, info):
        if phase == "start":
            started.append(info["generation"])

    old = gc.get_threshold()
    gc.callbacks.append(watch)
    try:
        for name in BACKENDS:
            with use(name):
                started.clear()
                gc.set_threshold(1)  # without the window, every container made would start a collection
                encoded = codec.encode_games(games, vectors=REAL_VECTORS, now=NOW)
                during = len(started)
                gc.set_threshold(*old)
                assert (during == 0) == (name == "cython") and gc.isenabled()
                assert encoded.games.num_rows == len(games)
                with pytest.raises(RecordError):
                    codec.encode_games(bad, vectors=REAL_VECTORS, now=NOW)
                assert gc.isenabled()
                gc.disable()
                codec.encode_games(games, vectors=REAL_VECTORS, now=NOW)
                assert not gc.isenabled()  # left off
                gc.enable()
    finally:
        gc.set_threshold(*old)
        gc.callbacks.remove(watch)
        gc.enable()
