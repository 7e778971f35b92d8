"""``_rrmove`` (the compiled per-move loop of the RingRift import) equals its Python references.

``move_fields`` against ``mapping._py_move_fields`` and ``decompose_move_json`` against
``cells.decompose_move_json``: the same record (keys in the same order, values of the same types,
floats bit for bit) for the fixtures' rows and for generated rows and ``move_json`` objects.
"""
from __future__ import annotations

import struct
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gamestore.ringrift import _rrmove, cells, mapping
from gamestore.ringrift.sqlite_io import connect_readonly, read_games, schema_report
from gamestore.ringrift.tables import COLUMNS


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return struct.pack("<d", a) == struct.pack("<d", b)
    if type(a) is dict:
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _both(row: tuple, parsed: Any) -> tuple[dict, dict]:
    out = []
    for fields, decompose in ((mapping._py_move_fields, cells.decompose_move_json),
                              (_rrmove.move_fields, _rrmove.decompose_move_json)):
        m: dict[str, Any] = {"move_number": row[1]}
        got = fields(row, m, mapping._MOVE_TYPED_FAST)
        m["_cells"] = got
        if type(parsed) is dict:
            decompose(parsed, m)
        out.append(m)
    return out[0], out[1]


def test_fixture_rows_split_alike(ringrift_dbs):
    n = 0
    for path in ringrift_dbs.values():
        con = connect_readonly(path)
        for rows in read_games(con, schema_report(con)):
            for row in rows["game_moves"]:
                ref, fast = _both(row, orjson.loads(row[6]))
                assert _same(ref, fast), row[:2]
                n += 1
        con.close()
    assert n > 1000


_MOVE_COLS = COLUMNS["game_moves"]
_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([32767, 32768, -32768, -32769, 2**31]),
    st.floats(), st.text(max_size=4), st.binary(max_size=3),
)
_position = st.one_of(
    st.fixed_dictionaries({"x": _scalar, "y": _scalar, "z": _scalar}),
    st.fixed_dictionaries({"x": st.integers(-40000, 40000), "y": st.integers(-5, 5), "z": st.none() | st.integers(-3, 3)}),
    st.dictionaries(st.sampled_from(["x", "y", "z", "w"]), st.integers(0, 3), max_size=4),
)
_value = st.one_of(_scalar, _position, st.lists(_scalar, max_size=2))


@st.composite
def _move(draw: Any) -> tuple[tuple, Any]:
    row = [draw(_scalar) for _ in _MOVE_COLS]
    row[1] = draw(st.integers(0, 500))
    for i, col in enumerate(_MOVE_COLS):  # mostly well-typed typed columns
        if col in ("turn_number", "player", "think_time_ms") and draw(st.booleans()):
            row[i] = draw(st.integers(-5, 300))
        elif col in ("phase", "move_type", "timestamp") and draw(st.booleans()):
            row[i] = draw(st.sampled_from(["ring_placement", "movement", "2026-01-01T00:00:00"]))
    keys = list(cells.MOVE_JSON_KEYS)
    if draw(st.integers(0, 4)) == 0:  # another key order or set
        keys = draw(st.permutations(keys))[: draw(st.integers(0, len(keys)))] + draw(st.lists(st.text(max_size=3), max_size=2))
    d = {k: draw(_value) for k in keys}
    if draw(st.booleans()):  # the implied keys agree with the row, as RingRift writes them
        d.update({k: row[_MOVE_COLS.index(c)] for k, c in (("type", "move_type"), ("player", "player"),
                  ("timestamp", "timestamp"), ("thinkTime", "think_time_ms"), ("phase", "phase")) if k in d})
        if "moveNumber" in d:
            d["moveNumber"] = row[1] + 1
    return tuple(row), d


@settings(max_examples=600, deadline=None)
@given(_move())
def test_generated_rows_split_alike(move):
    row, parsed = move
    ref, fast = _both(row, parsed)
    assert _same(ref, fast)
