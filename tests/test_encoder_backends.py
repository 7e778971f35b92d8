"""The compiled and the pure-Python moves backends produce equal Arrow data and equal errors."""
from __future__ import annotations

import collections
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gamestore.backend import get_backend
from gamestore.errors import RecordError
from gamestore.records import games_equal, normalize_move
from gamestore.schema import VectorSpec, moves_schema

from helpers.codec_cases import REAL_VECTORS, VECTORS, move_lists, realistic_games

CY = get_backend("cython")  # both backends are part of the build
PY = get_backend("python")
pytestmark = pytest.mark.single_backend  # compares both backends explicitly, whichever is selected

SETTINGS = settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def encode_both(games_moves, vectors=VECTORS):
    ids = [f"g{i}" for i in range(len(games_moves))]
    results = []
    for backend in (PY, CY):
        try:
            results.append(("ok", backend.encode_moves(ids, games_moves, vectors)))
        except Exception as exc:  # noqa: BLE001 - the comparison is the point
            results.append(("error", exc))
    return results


_BITS = {pa.float16(): pa.uint16(), pa.float32(): pa.uint32(), pa.float64(): pa.uint64()}


def float_bits(arr: pa.Array) -> pa.Array:
    """``arr`` with every float reinterpreted as its bit pattern (Arrow's equals says NaN != NaN)."""
    t = arr.type
    if t in _BITS:
        return arr.view(_BITS[t])
    mask = arr.is_null() if arr.null_count else None
    if pa.types.is_struct(t):
        return pa.StructArray.from_arrays(
            [float_bits(arr.field(i)) for i in range(t.num_fields)], names=[f.name for f in t], mask=mask
        )
    if pa.types.is_list(t):
        offsets = arr.offsets
        values = arr.values.slice(offsets[0].as_py(), offsets[-1].as_py() - offsets[0].as_py())
        offsets = pa.compute.subtract(offsets, offsets[0])
        return pa.ListArray.from_arrays(offsets, float_bits(values), mask=mask)
    if pa.types.is_fixed_size_list(t):
        values = arr.values.slice(arr.offset * t.list_size, len(arr) * t.list_size)
        return pa.FixedSizeListArray.from_arrays(float_bits(values), t.list_size, mask=mask)
    return arr


def assert_same_tables(t1: pa.Table, t2: pa.Table) -> None:
    """Equal schemas and equal columns, floats compared bit for bit."""
    assert t1.schema.equals(t2.schema, check_metadata=True)
    assert t1.num_rows == t2.num_rows
    for name in t1.schema.names:
        a, b = t1.column(name).combine_chunks(), t2.column(name).combine_chunks()
        assert a.type == b.type, name
        assert float_bits(a).equals(float_bits(b)), (name, a, b)


def assert_same_outcome(games_moves, vectors=VECTORS):
    (kind_py, py), (kind_cy, cy) = encode_both(games_moves, vectors)
    assert kind_py == kind_cy, (py, cy)
    if kind_py == "error":
        assert type(py) is type(cy), (py, cy)
        assert str(py) == str(cy)
        if isinstance(py, RecordError):
            assert (py.game_id, py.field) == (cy.game_id, cy.field)
        return py
    (t_py, counts_py), (t_cy, counts_cy) = py, cy
    assert counts_py == counts_cy
    assert t_py.schema.equals(moves_schema(vectors), check_metadata=True)
    assert_same_tables(t_py, t_cy)
    # each backend decodes the other's table to the canonical moves
    for table in (t_py, t_cy):
        dec_py = PY.decode_moves(table, vectors)
        dec_cy = CY.decode_moves(table, vectors)
        assert games_equal(dec_py, dec_cy)
    canon = []
    for moves in games_moves:
        prev = None
        for i, m in enumerate(moves or []):
            nm = normalize_move(m, i, game_id="x", vectors=vectors, previous_number=prev)
            prev = nm["move_number"]
            canon.append(nm)
    assert games_equal(CY.decode_moves(t_cy, vectors), canon)
    return t_cy


@SETTINGS
@given(games=st.lists(move_lists(max_size=6), min_size=1, max_size=3))
def test_equal_tables_random_valid(games):
    assert_same_outcome(games)


# ---------------------------------------------------------------------------
# Unusual but valid inputs: the compiled backend takes its slow path for them
# ---------------------------------------------------------------------------
class StrKey(str):
    pass


class Num(float):
    pass


def unusual(m: dict, choice: int) -> object:
    m = dict(m)
    if choice == 0:
        return collections.OrderedDict(m)  # a Mapping that is not exactly a dict
    if choice == 1 and "from" in m and isinstance(m["from"], dict):
        p = m["from"]
        m["from"] = (np.int16(p["x"]), np.int64(p["y"])) if p.get("z") is None else (p["x"], p["y"], p["z"])
    if choice == 2 and m.get("policy"):
        m["policy"] = {k: np.float32(v) if isinstance(v, float) and abs(v) < 1e30 else v
                       for k, v in m["policy"].items()}
    if choice == 3 and m.get("search") and m["search"].get("visit_counts"):
        m["search"] = dict(m["search"], visit_counts={k: np.int32(v) if abs(v) < 2**31 else v
                                                      for k, v in m["search"]["visit_counts"].items()})
    if choice == 4 and m.get("vectors"):
        m["vectors"] = {k: (None if v is None else np.asarray(v, dtype=">f8")) for k, v in m["vectors"].items()}
    if choice == 5:
        m = {StrKey(k) if k == "phase" else k: v for k, v in m.items()}
        if "turn_number" in m:
            m["turn_number"] = np.int32(m["turn_number"] % 2**31)
    if choice == 6 and m.get("policy"):
        m["policy"] = {StrKey(k) if isinstance(k, str) else np.int64(k): Num(v) for k, v in m["policy"].items()}
    if choice == 7 and "engine_eval" in m:
        m["engine_eval"] = 3  # an int where a float is expected
    if choice == 9:
        m["note"] = (1, [2.5, (3,)], {"k": (None, "\u00e9")}, 10**30)  # tuples become lists
        m["search"] = dict(m.get("search") or {}, extra=(float("nan"), -0.0))
    if choice == 8 and m.get("vectors"):
        m["vectors"] = {k: (None if v is None else np.asarray(v, dtype=np.float64)[..., ::-1][..., ::-1])
                        for k, v in m["vectors"].items()}
    return m


@SETTINGS
@given(moves=move_lists(max_size=6), data=st.data())
def test_equal_tables_unusual_valid(moves, data):
    changed = [unusual(m, data.draw(st.integers(0, 9))) for m in moves]
    assert_same_outcome([changed])


# ---------------------------------------------------------------------------
# Malformed moves: the same RecordError (game, field, message) from both
# ---------------------------------------------------------------------------
BAD_VALUES = {
    "move": [None, [], "move", 3],
    "move_number": ["1", 1.5, True, 2**40, -(2**40)],
    "turn_number": ["x", 1.5, True, 2**31, np.float64(1.0)],
    "player": [128, -129, "1", False],
    "placement_count": [2**15, 0.5],
    "time_remaining_ms": [2**63, "1"],
    "phase": [1, b"movement", 1.5],
    "timestamp": [3, ["t"]],
    "engine_eval": ["0.5", True, [0.5], np.bool_(True)],
    "from": [{"x": 1}, {"x": 1, "y": 2, "w": 3}, (1,), (1, 2, 3, 4), "ab", {"x": 1.5, "y": 1}, {"x": 70000, "y": 0},
             {"x": 1, "y": 2, "z": "3"}, (1, None)],
    "policy": [[], "p", {"a": "p"}, {"a": math.nan}, {"a": math.inf}, {1.5: 0.1}, {True: 0.1}, {2**40: 0.1},
               {None: 0.1}, {"a": 0.1, "b": None}, {"a": 1e300, (1,): 0.2}],
    "search": [[], {1: {}}, {"q_values": []}, {"q_values": {"a": "x"}}, {"visit_counts": {"a": 1.5}},
               {"visit_counts": {"a": 2**40}}, {"search_depth": 1.5}, {"root_value": "x"}, {"extra": {1: 2}},
               {"prior_policy": {(1,): 0.1}}, {"q_values": {"a": 0.5}, "visit_counts": {"a": True}},
               {"nodes_explored": 2**64}, {"prior_policy": {"a": 0.1, 2**31: 0.2}}, {"extra": object()}],
    "vectors": [[1.0], "abc", {"feat": [1.0, 2.0]}, {"undeclared": [1.0]}, {"feat": "abcde"},
                {"feat": np.zeros(6, np.float32)}, {"planes": np.zeros((3, 2, 2))}, {"wide": [1, 2, "x"]}],
    "note": [{1: 2}, object(), {"a": {2: 3}}, {1, 2}],
    1: ["non-str key"],
}


@st.composite
def corrupted(draw):
    games = draw(st.lists(move_lists(max_size=5), min_size=1, max_size=3))
    for _ in range(draw(st.integers(1, 3))):
        gi = draw(st.integers(0, len(games) - 1))
        games[gi] = list(games[gi])
        if not games[gi]:
            games[gi].append({})
        mi = draw(st.integers(0, len(games[gi]) - 1))
        field = draw(st.sampled_from(sorted(BAD_VALUES, key=str)))
        value = draw(st.sampled_from(BAD_VALUES[field]))
        if field == "move":
            games[gi][mi] = value
        elif isinstance(games[gi][mi], dict):
            games[gi][mi] = dict(games[gi][mi])
            games[gi][mi][field] = value
    return games


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@SETTINGS
@given(games=corrupted())
def test_equal_errors_random_corruption(games):
    assert_same_outcome(games)


def test_errors_name_the_first_bad_field():
    games = [[{}, {"policy": {"a": 0.1}, "player": 999, "from": (1,)}]]
    err = assert_same_outcome(games)
    assert isinstance(err, RecordError) and (err.game_id, err.field) == ("g0", "moves[1].player")
    err = assert_same_outcome([[{}], [{"search": {"q_values": {"a": 0.1}, "visit_counts": {"b": "x"}}}]])
    assert (err.game_id, err.field) == ("g1", "moves[0].search.visit_counts['b']")
    err = assert_same_outcome([[{"move_number": 3}, {"move_number": 3}]])
    assert err.field == "moves[1].move_number"
    err = assert_same_outcome([[{}], "not a list"])
    assert (err.game_id, err.field) == ("g1", "moves")


def test_rollback_after_slow_path_keeps_dictionaries_in_order():
    # the fast path codes "new" and "k1" before it meets the tuple position, then rolls back
    moves = [{"phase": "a"}, {"phase": "new", "policy": {"k1": 0.5}, "from": (1, 2)}, {"phase": "b", "policy": {"k2": 1.0}}]
    table = assert_same_outcome([moves])
    assert table.column("phase").chunk(0).dictionary.to_pylist() == ["a", "new", "b"]


def test_search_union_out_of_step_keys():
    search = {"prior_policy": {"c": 0.3, 1: 0.1}, "visit_counts": {"b": 2, "a": 1},
              "q_values": {"a": 0.5, "b": -0.5}}
    table = assert_same_outcome([[{"search": search}, {"search": {"q_values": {}, "prior_policy": {}}}]])
    entries = table.column("search").to_pylist()
    assert [(e["key"] or e["action"]) for e in entries[0]] == ["a", "b", "c", 1]
    assert entries[1] == []


def test_realistic_equal_tables():
    records = realistic_games(4, moves_per_game=50, seed=3)
    assert_same_outcome([r["moves"] for r in records], REAL_VECTORS)


def _fixture_games(db: Path) -> list[list[dict]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    games: dict[str, list[dict]] = {}
    for row in con.execute("SELECT * FROM game_moves ORDER BY game_id, move_number"):
        mj = json.loads(row["move_json"])
        m = {k: row[k] for k in ("move_number", "turn_number", "player", "phase", "move_type", "timestamp",
                                 "think_time_ms", "time_remaining_ms", "engine_eval", "engine_eval_type",
                                 "engine_depth", "engine_nodes", "engine_pv", "engine_time_ms")}
        m["from"], m["to"], m["capture_target"] = mj.pop("from"), mj.pop("to"), mj.pop("captureTarget")
        m["move_json"] = mj
        if row["move_probs"]:
            m["policy"] = json.loads(row["move_probs"])
        if row["search_stats_json"]:
            m["search"] = json.loads(row["search_stats_json"])
        if row["heuristic_features"]:
            m["vectors"] = {"heuristic_features": np.frombuffer(row["heuristic_features"], dtype=np.float32)}
        games.setdefault(row["game_id"], []).append(m)
    con.close()
    return list(games.values())


def test_fixture_moves_equal_tables(ringrift_dbs):
    games = _fixture_games(ringrift_dbs["ringrift_v18_sample"])
    assert sum(map(len, games)) == 2044
    table = assert_same_outcome(games, REAL_VECTORS)
    # RingRift's probabilities are float32 numbers: no float64 override column is needed
    entries = table.column("policy").combine_chunks().flatten()
    assert entries.field("prob64").null_count == len(entries)


def test_decode_sliced_batches():
    records = realistic_games(3, moves_per_game=20, seed=5)
    table, _ = CY.encode_moves([r["game_id"] for r in records], [r["moves"] for r in records], REAL_VECTORS)
    batch = table.to_batches()[0]
    for part in (batch.slice(20, 20), table.slice(35, 10), pa.Table.from_batches([batch.slice(0, 7), batch.slice(7)])):
        assert games_equal(CY.decode_moves(part, REAL_VECTORS), PY.decode_moves(part, REAL_VECTORS))
    assert CY.decode_moves(table.slice(0, 0), REAL_VECTORS) == []


def test_vector_declared_but_absent_from_old_file():
    table, _ = CY.encode_moves(["g"], [[{"phase": "a"}]], {})
    extra = {"feat": VectorSpec("feat", (5,), "float32")}
    assert CY.decode_moves(table, extra) == PY.decode_moves(table, {}) == [{"move_number": 0, "phase": "a"}]


def test_decode_after_ipc_roundtrip_with_zstd():
    records = realistic_games(3, moves_per_game=30, seed=9)
    games = [r["moves"] for r in records]
    games[1][3] = {"phase": "odd", "note": [1, None], "search": {"uncertainty": math.nan}}
    games[2] = []
    table, _ = CY.encode_moves([r["game_id"] for r in records], games, REAL_VECTORS)
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=25)
    read = pa.ipc.open_file(sink.getvalue()).read_all()
    assert read.column("policy").num_chunks == 3
    canon = [m for moves in games for m in PY.decode_moves(PY.encode_moves(["x"], [moves], REAL_VECTORS)[0],
                                                            REAL_VECTORS)]
    for backend in (PY, CY):
        assert games_equal(backend.decode_moves(read, REAL_VECTORS), canon)
        reader = pa.ipc.open_file(sink.getvalue())
        batch = reader.get_batch(1)  # rows 25..49: the end of game 0 and the start of game 1
        assert games_equal(backend.decode_moves(batch.slice(5, 10), REAL_VECTORS), canon[30:40])
