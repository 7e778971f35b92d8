"""``_rrmove`` (the compiled per-move loop of the RingRift import) equals its Python references.

``move_fields`` against ``mapping._py_move_fields``, ``decompose_move_json`` against
``cells.decompose_move_json`` and ``move_json_fields`` (the text straight into the record) against the
reference's orjson parse, style check and split: the same record (keys in the same order, values of
the same types, floats bit for bit) for the fixtures' rows and for generated rows, ``move_json``
objects and texts (damaged ones too: those it must leave to the reference, the record untouched).
"""
from __future__ import annotations

import json
import struct
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gamestore.errors import RecordError
from gamestore.ringrift import _rrcols, _rrmove, cells, jsontext, mapping
from gamestore.ringrift.sqlite_io import connect_readonly, read_games, schema_report
from gamestore.ringrift.tables import COLUMNS

pytestmark = pytest.mark.single_backend  # no encoder involved: the same for both backends


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


# ---------------------------------------------------------------------------
# move_json_fields: the text straight into the record, against orjson + style check + decompose_move_json
# ---------------------------------------------------------------------------
def _reference_fields(text: str, m: dict) -> bool:
    """What ``mapping._move_to_record`` does without the compiled parser: True when it splits the text."""
    try:
        parsed, nan_free = jsontext.fast_loads(text) if text[:1] == "{" else (None, False)
    except ValueError:
        return False
    if type(parsed) is not dict:
        return False
    cells.decompose_move_json(parsed, m)
    return jsontext.text_matches(parsed, text, cells.STYLE["move_json"], nan_free=nan_free)


def _fields_alike(row: tuple, text: str) -> bool:
    """``move_json_fields`` splits ``text`` only when the reference does, into the same record; else it leaves
    the record alone.  Whether it split it."""
    base: dict[str, Any] = {"move_number": row[1]}
    mapping._py_move_fields(row, base, mapping._MOVE_TYPED_FAST)
    ref, fast = dict(base), dict(base)
    took = _rrmove.move_json_fields(text, fast)
    if took:
        assert _reference_fields(text, ref), text
        assert _same(ref, fast), text
    else:
        assert _same(fast, base), text
    return took


def test_fixture_move_json_texts_are_parsed_straight_into_the_record(ringrift_dbs):
    n = taken = 0
    for path in ringrift_dbs.values():
        con = connect_readonly(path)
        for rows in read_games(con, schema_report(con)):
            for row in rows["game_moves"]:
                taken += _fields_alike(row, row[6])
                n += 1
        con.close()
    assert taken == n > 1000  # RingRift's own texts all take the compiled path


_json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([32767, 32768, -32768, -32769, 2**63, -(2**63)]),
    st.floats(), st.sampled_from([0.0, -0.0, 1e-5, 1e16, 1e22, 5e-324]),
    st.text(alphabet=st.sampled_from('ab"\\/\x00\x1f\x7f\n\u00e9\u2028\U0001f600'), max_size=4),
)
_json_value = st.recursive(
    st.one_of(_json_scalar, _position.filter(lambda d: all(type(v) is not bytes for v in d.values()))),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=2), inner, max_size=3)),
    max_leaves=6,
)


@st.composite
def _move_text(draw: Any) -> tuple[tuple, str, bool]:
    """A row, a move_json text of it, and whether the text is the compact ASCII dump in pydantic's key order of
    values the compiled parser must take (no NaN/infinity, ints within int64, floats it proves)."""
    row, d = draw(_move())
    d = _no_bytes(d)
    for k in list(d):
        if draw(st.integers(0, 3)) == 0:
            d[k] = draw(_json_value)
    style = draw(st.sampled_from(["c", "c", "c", "spaced", "ascii", "mutated"]))
    text = json.dumps(d, separators=(", ", ": ") if style == "spaced" else (",", ":"), ensure_ascii=style == "ascii")
    if style == "mutated":  # damaged: a byte dropped, doubled, replaced or the text cut short
        i = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["drop", "double", "replace", "cut"]))
        ch = draw(st.sampled_from(list(' {}[],:"\\0123456789.-eE+ntfa\u00e9')))
        text = {"drop": text[:i] + text[i + 1:], "double": text[:i] + text[i:i + 1] * 2 + text[i + 1:],
                "replace": text[:i] + ch + text[i + 1:], "cut": text[:i]}[how]
    plain = (style == "c" and tuple(d) == cells.MOVE_JSON_KEYS and text.isascii()
             and _numbers_fit(d))
    return row, text, plain


def _no_bytes(v: Any) -> Any:
    if type(v) is bytes:
        return None
    if type(v) is dict:
        return {k: _no_bytes(x) for k, x in v.items()}
    if type(v) is list:
        return [_no_bytes(x) for x in v]
    return v


def _numbers_fit(v: Any) -> bool:
    """Ints within int64, floats whose repr the compiled float proof takes (it leaves a few boundary cases)."""
    if type(v) is int:
        return -(2**63) <= v < 2**63
    if type(v) is float:
        return _rrcols.float_text(repr(v)) is not None
    if type(v) is dict:
        return all(map(_numbers_fit, v.values()))
    if type(v) is list:
        return all(map(_numbers_fit, v))
    return True


@settings(max_examples=200, deadline=None)
@given(_move_text())
def test_generated_and_damaged_move_json_texts_split_as_the_reference(move):
    row, text, plain = move
    took = _fields_alike(row, text)
    if plain:
        assert took, text


def test_move_json_fields_refuses_what_it_cannot_prove():
    row = tuple([None] * len(_MOVE_COLS))
    keys = {k: None for k in cells.MOVE_JSON_KEYS}
    ok = json.dumps(keys, separators=(",", ":"))
    assert _fields_alike(row, ok)
    for odd in (ok.replace(":null", ": null", 1), ok[:-1] + " }", ok + " ", ok.replace('"id":null', '"id":NaN'),
                ok.replace('"id":null', '"id":1.50'), ok.replace('"id":null', '"id":01'),
                ok.replace('"id":null', '"id":"\\u00e9"'), ok.replace('"id":null', '"id":"\u00e9"'),
                ok.replace('"id":null', '"id":99999999999999999999'), ok.replace('"id":null', '"id":{"a":1,"a":2}'),
                # beyond int64 inside a nested value: orjson would read it as a float
                ok.replace('"eliminatedRings":null', '"eliminatedRings":{"x":0,"y":0,"z":-9223372036854775809}'),
                ok.replace('"eliminatedRings":null', '"eliminatedRings":[18446744073709551616]'),
                ok.replace('"eliminatedRings":null', '"eliminatedRings":{"a":[9223372036854775808]}'),
                ok.replace('"type":null,', ""), ok.replace("}", ',"extra":1}'), "", "{", "[]"):
        assert not _fields_alike(row, odd), odd


# ---------------------------------------------------------------------------
# move_record: a whole row, against mapping._move_to_record
# ---------------------------------------------------------------------------
def _records_alike(row: tuple, game_id: str = "g") -> None:
    ref_features: list = []
    fast_features: list = []
    try:
        ref = mapping._move_to_record(row, game_id, ref_features)
    except RecordError as exc:
        with pytest.raises(RecordError) as got:
            _rrmove.move_record(row, game_id, fast_features)
        assert (str(got.value), got.value.game_id, got.value.field) == (str(exc), exc.game_id, exc.field)
        return
    fast = _rrmove.move_record(row, game_id, fast_features)
    assert _same(ref, fast), row
    assert [(list(v), b) for v, b in ref_features] == [(list(v), b) for v, b in fast_features]


def test_fixture_rows_make_the_same_move_records(ringrift_dbs):
    n = 0
    for path in ringrift_dbs.values():
        con = connect_readonly(path)
        for rows in read_games(con, schema_report(con)):
            for row in rows["game_moves"]:
                _records_alike(row, rows["games"][0][0])
                n += 1
        con.close()
    assert n > 1000


@settings(max_examples=200, deadline=None)
@given(_move_text(), st.data())
def test_generated_rows_make_the_same_move_records(move, data):
    row, text, _ = move
    row = list(row)
    row[_MOVE_COLS.index("move_json")] = data.draw(st.sampled_from([text, None, 3, b"{}", "{}"]))
    for col in ("move_probs", "search_stats_json"):
        row[_MOVE_COLS.index(col)] = data.draw(st.sampled_from(
            [None, 7, "", "{}", '{"a": 0.5}', '{"a":0.5}', '{"a": NaN}', '{"q_values": {"a": 0.5}, "visit_counts": {"a": 1}, '
             '"search_depth": 2, "uncertainty": 0.1, "prior_policy": {"a": 0.25}, "root_value": -0.5}']))
    row[_MOVE_COLS.index("heuristic_features")] = data.draw(st.sampled_from([None, b"\0" * 196, b"\0" * 195, "x", 1.5]))
    if data.draw(st.integers(0, 5)) == 0:
        row[1] = data.draw(st.sampled_from([None, -1, 2**31, 2**40, True, 1.0, "1"]))
    _records_alike(tuple(row))


def test_a_move_number_that_is_not_an_int32_names_game_and_field():
    row = [None] * len(_MOVE_COLS)
    row[1] = 2**31
    with pytest.raises(RecordError) as exc:
        _rrmove.move_record(tuple(row), "game-7", [])
    assert exc.value.game_id == "game-7" and exc.value.field == "moves.move_number" and "int32" in str(exc.value)
