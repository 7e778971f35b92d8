"""The import's compiled fast path (orjson + ``_rrjson``) against the pure-Python reference path.

The reference path is the same code with the compiled checks swapped for their Python references
(``jsontext._styled_equal`` off: every text proven by re-rendering with ``json``; ``cells`` shape
checks in Python; no policy / search statistics parsed in C into the encoder's columns; no
``move_json`` parsed in C straight into the record; the per-row loop in Python).  Both must
split every row into exactly the same record (a column-form value: the mapping it stands for, and the
same encoded columns), and so store the same games.
"""
from __future__ import annotations

import json
import math
import struct
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gamestore.store as store_mod
from gamestore import _backend_cython, _backend_python
from gamestore._encode import Columns
from gamestore.codec import _coerce_vectors
from gamestore.ringrift import _rrjson, cells, jsontext, mapping, textcols
from gamestore.ringrift.mapping import RINGRIFT_VECTORS
from gamestore.ringrift.mapping import compare_rows, record_to_rows, rows_to_record
from gamestore.ringrift.tables import COLUMNS
from gamestore.ringrift.transfer import import_sqlite
from helpers.replaydb import replay_games


@contextmanager
def reference_path() -> Iterator[None]:
    saved = (jsontext._styled_equal, cells._search_maps, cells._finite_floats, cells._policy_text, cells._search_text,
             mapping._move_json_fields, mapping._move_record)
    jsontext._styled_equal, cells._search_maps, cells._finite_floats = None, cells._py_search_maps, cells._py_finite_floats
    cells._policy_text = cells._search_text = mapping._move_json_fields = None
    mapping._move_record = mapping._move_to_record
    try:
        yield
    finally:
        (jsontext._styled_equal, cells._search_maps, cells._finite_floats, cells._policy_text,
         cells._search_text, mapping._move_json_fields, mapping._move_record) = saved


def strict_equal(a: Any, b: Any, where: str = "") -> None:
    """Equal values of the same types, floats bit for bit, dict keys in the same order (a column-form
    value of the fast path: its mapping)."""
    if isinstance(a, Columns):
        a = json.loads(a.source)
    assert type(a) is type(b), (where, a, b)
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            strict_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            strict_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), (where, a, b)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), where
    else:
        assert a == b, (where, a, b)


_SPECS = _coerce_vectors(RINGRIFT_VECTORS)


def assert_same_columns(fast_moves: list, ref_moves: list) -> None:
    """The compiled encoder makes the same Arrow columns of both, and the reference backend of the fast ones."""
    ref = _ipc(_backend_cython.encode_moves(["g"], [ref_moves], _SPECS)[0])
    assert _ipc(_backend_cython.encode_moves(["g"], [fast_moves], _SPECS)[0]) == ref
    assert _ipc(_backend_python.encode_moves(["g"], [fast_moves], _SPECS)[0]) == ref


def _ipc(table: pa.Table) -> bytes:
    """The table's IPC bytes: equal columns, NaN bit for bit (``Table.equals`` never finds a NaN equal)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table.combine_chunks())
    return sink.getvalue().to_pybytes()


# ---------------------------------------------------------------------------
# The compiled shape checks equal their references
# ---------------------------------------------------------------------------
_keys = st.sampled_from(["a", "b", "move_stack_1,2_3,4", "\u00e9", ""])
_value = st.one_of(
    st.floats(), st.integers(-(2**40), 2**40), st.sampled_from([2**31 - 1, -(2**31), 2**31, True, None, "x", 1e-5]),
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_keys, _value, max_size=4), st.dictionaries(_keys, _value, max_size=4),
       st.dictionaries(_keys, _value, max_size=4), st.booleans())
def test_search_maps_and_finite_floats_equal_their_references(q, vc, pp, aligned):
    if aligned:  # mostly the usual shape: one key list, floats / int32 ints
        vc = {k: (v if i else 7) for i, (k, v) in enumerate(zip(q, list(vc.values()) + [3] * len(q)))}
        pp = {k: (float(i) if i % 2 else v) for i, (k, v) in enumerate(zip(q, list(pp.values()) + [0.5] * len(q)))}
    assert _rrjson.search_maps(q, vc, pp) == cells._py_search_maps(q, vc, pp)
    for d in (q, vc, pp):
        assert _rrjson.finite_floats(d) == cells._py_finite_floats(d)


# ---------------------------------------------------------------------------
# Whole records: the fixtures, and RingRift-shaped rows with the odd cases
# ---------------------------------------------------------------------------
def test_fixture_records_equal_on_both_paths(ringrift_dbs):
    for name, path in ringrift_dbs.items():
        for rows in replay_games(path):
            fast = rows_to_record(rows)
            with reference_path():
                ref = rows_to_record(rows)
            strict_equal(fast, ref, f"{name}:{rows['games'][0][0]}")
            assert_same_columns(fast["moves"], ref["moves"])
            if rows["game_moves"] and rows["game_moves"][0][_MI["search_stats_json"]] is not None:
                assert isinstance(fast["moves"][0]["search"], Columns)  # RingRift's texts take the column path


_MI = {c: i for i, c in enumerate(COLUMNS["game_moves"])}
_text = st.text(alphabet=st.sampled_from('ab,: "\\\x00\x7f\u00e9\u2028\U0001f600'), max_size=4)
_num = st.one_of(
    st.floats(width=32), st.floats(), st.sampled_from([0.0, -0.0, 1e-5, 1e16, float("nan"), float("inf")]),
    st.integers(-(2**31) - 1, 2**31), st.just(2**70),
)
_map = st.dictionaries(st.one_of(st.sampled_from(["move_stack_5,0_5,2", "place_1,1", "\u00e9"]), _text), _num, max_size=5)


def _styled(value: Any, style: int) -> str:
    """A JSON text of ``value``: RingRift's default spelling, compact, ASCII-escaped or not, or oddly spaced."""
    if style == 0:
        return json.dumps(value)
    if style == 1:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if style == 2:
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, indent=1)


@st.composite
def _cells(draw) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kind = draw(st.sampled_from(["keep", "null", "empty", "map", "text"]))
    if kind != "keep":
        out["move_probs"] = {"null": None, "empty": "{}", "text": draw(_text)}.get(kind) or _styled(draw(_map), draw(st.integers(0, 3)))
    kind = draw(st.sampled_from(["keep", "null", "aligned", "map", "text"]))
    if kind == "null":
        out["search_stats_json"] = None
    elif kind == "text":
        out["search_stats_json"] = draw(_text)
    elif kind != "keep":
        q = draw(_map)
        vc = {k: draw(st.integers(-3, 2**31)) for k in q} if kind == "aligned" else draw(_map)
        pp = {k: draw(_num) for k in q} if kind == "aligned" else draw(_map)
        s = {"q_values": q, "visit_counts": vc, "search_depth": draw(st.integers(0, 9)),
             "uncertainty": draw(_num), "prior_policy": pp, "root_value": draw(_num)}
        if draw(st.booleans()):
            s = dict(reversed(list(s.items())))
        out["search_stats_json"] = _styled(s, draw(st.integers(0, 3)))
    kind = draw(st.sampled_from(["keep", "null", "respaced", "unicode", "text"]))
    if kind == "null":
        out["move_json"] = None
    elif kind == "text":
        out["move_json"] = draw(_text)
    elif kind != "keep":
        out["move_json"] = ("respaced", "unicode")  # applied to the row's own move_json below
    return out


@pytest.fixture(scope="module")
def small_game(ringrift_dbs) -> dict:
    return min(replay_games(ringrift_dbs["ringrift_v18_sample"]), key=lambda g: len(g["game_moves"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_cells(), min_size=1, max_size=4), st.data())
def test_odd_rows_equal_on_both_paths_and_round_trip(small_game, changes, data):
    rows = {t: list(v) for t, v in small_game.items()}
    moves = rows["game_moves"]
    for change in changes:
        i = data.draw(st.integers(0, len(moves) - 1))
        row = list(moves[i])
        for col, value in change.items():
            if isinstance(value, tuple):  # the source row's own move_json, respaced, with a unicode id
                parsed = json.loads(small_game["game_moves"][i][_MI[col]])
                parsed["id"] = data.draw(_text)
                value = json.dumps(parsed, ensure_ascii=data.draw(st.booleans()),
                                   separators=data.draw(st.sampled_from([(",", ":"), (", ", ": ")])))
            row[_MI[col]] = value
        moves[i] = tuple(row)
    fast = rows_to_record(rows)
    with reference_path():
        ref = rows_to_record(rows)
    strict_equal(fast, ref)
    assert_same_columns(fast["moves"], ref["moves"])
    back = record_to_rows(fast)
    assert compare_rows("game_moves", moves, back["game_moves"]) == []


def test_fixture_import_stores_the_same_games_on_both_paths(ringrift_dbs, tmp_path):
    """The stores written through either path hold the same games (the encoder backend under test writes both)."""
    src = ringrift_dbs["ringrift_v18_history"]
    import_sqlite(src, tmp_path / "fast", progress=False, workers=0)
    with reference_path():
        import_sqlite(src, tmp_path / "ref", progress=False, workers=0)
    with store_mod.open(tmp_path / "fast", create=False) as a, store_mod.open(tmp_path / "ref", create=False) as b:
        ids = sorted(a.query_games(None, columns=["game_id"]).column("game_id").to_pylist())
        assert ids == sorted(b.query_games(None, columns=["game_id"]).column("game_id").to_pylist()) and ids
        for gid in ids:
            ga, gb = a.get_game(gid), b.get_game(gid)
            ga.pop("created_at", None), gb.pop("created_at", None)
            strict_equal(ga, gb, gid)


def test_nan_and_infinity_cells_are_kept_verbatim_on_both_paths(small_game):
    rows = {t: list(v) for t, v in small_game.items()}
    row = list(rows["game_moves"][0])
    row[_MI["move_probs"]] = '{"a": NaN, "b": Infinity}'
    row[_MI["search_stats_json"]] = '{"q_values": {"a": NaN}, "visit_counts": {"a": 1}, "prior_policy": {"a": 0.5}}'
    rows["game_moves"][0] = tuple(row)
    fast = rows_to_record(rows)
    with reference_path():
        strict_equal(fast, rows_to_record(rows))
    m = fast["moves"][0]
    assert m["rr_text"]["move_probs"] == row[_MI["move_probs"]] and "policy" not in m
    assert math.isnan(m["search"]["q_values"]["a"])  # json parses NaN; the text is rebuilt exactly
    assert compare_rows("game_moves", rows["game_moves"], record_to_rows(fast)["game_moves"]) == []


def test_the_import_report_counts_cells_kept_verbatim(ringrift_dbs, tmp_path):
    """A cell whose split cannot be proven exact is kept as text (lossless) and counted, in every import process."""
    import shutil
    import sqlite3

    src = tmp_path / "odd.db"
    shutil.copy(ringrift_dbs["ringrift_v18_history"], src)
    con = sqlite3.connect(src)
    gids = [g for (g,) in con.execute("SELECT game_id FROM games ORDER BY rowid")]
    with con:
        for gid in gids:  # one odd cell in each process's share
            con.execute("UPDATE game_moves SET move_probs = '{\"a\": NaN}' WHERE game_id = ? AND move_number = 3", (gid,))
    con.close()
    for workers in (0, 2):
        report = import_sqlite(src, tmp_path / f"store{workers}", progress=False, workers=workers)
        assert report.failed == [] and report.cells_verbatim == len(gids) == 2
        assert "2 JSON/state cells kept as verbatim text" in report.summary()
    out = tmp_path / "out.db"
    from gamestore.ringrift.transfer import export_sqlite

    export_sqlite(tmp_path / "store2", out, progress=False)
    a, b = sqlite3.connect(src), sqlite3.connect(out)
    q = "SELECT game_id, move_number, move_probs FROM game_moves ORDER BY 1, 2"
    assert a.execute(q).fetchall() == b.execute(q).fetchall()
