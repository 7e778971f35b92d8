"""The fast exact JSON checks of the RingRift import, against the json module they stand in for."""
from __future__ import annotations

import enum
import json
import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gamestore.errors import RecordError
from gamestore.records import dump_canonical_json, dump_json, json_canonical
from gamestore.ringrift import jsontext

from gamestore.ringrift import _rrjson  # compiled with the package

pytestmark = pytest.mark.single_backend
styled_equal = _rrjson.styled_equal

_STYLES = {
    (spaced, ascii_only): json.JSONEncoder(
        separators=(", ", ": ") if spaced else (",", ":"), ensure_ascii=ascii_only
    ).encode
    for spaced in (False, True)
    for ascii_only in (False, True)
}

_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e-4, 9.5e-5, 1e-5, 1e-7, 1e15, 1e16, 1.5e300, 5e-324, 123.0]),
)
_text = st.text(alphabet=st.sampled_from('ab,: "\\\x00\x1f\x7f\u00e9\u2028\U0001f600'), max_size=6)
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), _floats, _text),
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(_text, kids, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_json, st.booleans(), st.booleans())
def test_styled_equal_is_exact(value, spaced, ascii_only):
    ob = orjson.dumps(value)
    text = _STYLES[spaced, ascii_only](value).encode("utf-8")
    assert styled_equal(ob, text, spaced, ascii_only) or not text.isascii() or not ascii_only or b"\\u" in text
    for other in _STYLES.values():  # never proves a text another style wrote, unless it is the same text
        t2 = other(value).encode("utf-8")
        if t2 != text:
            assert not styled_equal(ob, t2, spaced, ascii_only)


@settings(max_examples=300, deadline=None)
@given(_json, st.integers(0, 10_000), st.sampled_from([b"", b" ", b"0", b"e", b"-", b",", b"1e-05"]))
def test_styled_equal_refuses_altered_text(value, where, insert):
    ob = orjson.dumps(value)
    text = _STYLES[True, True](value).encode("utf-8")
    k = where % (len(text) + 1)
    for altered in (text[:k] + insert + text[k:], text[:k] + insert + text[k + 1 :]):
        if altered != text:
            assert not styled_equal(ob, altered, True, True)


@pytest.mark.parametrize(
    "value",
    [
        {"p": 4.5e-05, "q": 1e16, "r": 1.5e-10, "s": 0.0001234},
        [1e-7, -2.5e-5, 3.0e22, 1e15, 123456789.125],
        {"k_1,2": -0.9832170009613037, "x": None, "t": True, "n": 7},
    ],
)
def test_float_spellings(value):
    ob = orjson.dumps(value)
    assert styled_equal(ob, json.dumps(value).encode(), True, True)
    assert styled_equal(ob, dump_json(value).encode(), False, False)
    # orjson's own spelling of small/large floats is not Python's: refused
    assert not styled_equal(ob, ob, False, False) or ob == dump_json(value).encode()


def test_text_matches_and_parse_styled():
    value = {"q_values": {"a": 1e-5, "b": 0.5}, "visit_counts": {"a": 3}, "root_value": -0.25}
    text = json.dumps(value)
    assert jsontext.text_matches(value, text, "d", nan_free=True)
    assert not jsontext.text_matches(value, text.replace("1e-05", "0.00001"), "d", nan_free=True)
    assert jsontext.parse_styled(text, "d") == (value, "d")
    compact = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert jsontext.parse_styled(compact, "d") == (value, "c")
    assert jsontext.parse_styled('{"a": NaN}', "d")[1] == "d"  # json's NaN: the json path decides
    assert jsontext.parse_styled('{"a":  1}', "d") is None


class _Color(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, None, True, "x\u00e9"], "b": {"c": -0.0}},
        {"a": (1, 2)},
        {"a": _Color.RED},
        {"a": np.float64(1.5)},
        {"a": 2**70},
        3.0,
    ],
)
def test_json_canonical_fast_path_matches_json(value):
    expected = json.loads(dump_json(value))
    got = json_canonical(value, game_id="g", field="f")
    assert json.dumps(got) == json.dumps(expected)  # NaN-aware, type-aware
    assert type(got) is type(expected)
    if isinstance(got, dict) and isinstance(got.get("a"), float) and math.isnan(got["a"]):
        assert math.isnan(expected["a"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    _json, st.lists(_floats, max_size=30), st.integers(-(2**80), 2**80),
    st.lists(st.one_of(st.floats(min_value=1e15, max_value=1e18), st.integers(10**15, 2**64)), max_size=8),
))
def test_dump_canonical_json_is_dump_json(value):
    """The store's fast text of canonical JSON values (snapshot states, metadata) is dump_json's, float spellings included."""
    canonical = json_canonical(value, game_id="g", field="f")
    assert dump_canonical_json(canonical) == dump_json(canonical)


def test_dump_canonical_json_takes_orjson_for_ints_and_plain_floats(monkeypatch):
    import gamestore.records as records

    monkeypatch.setattr(records, "dump_json", None)  # the slow path would fail: only orjson's text is used
    value = {"zobristHash": 12264949464163878250, "x": [0.5, -0.0, 1234567890123456.0, 0.0001], "s": "\u00e9\n"}
    assert records.dump_canonical_json(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_dump_canonical_json_escapes_every_code_point_alike():
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    for k in range(0, len(points), 4096):
        chunk = "".join(points[k : k + 4096])
        value = {chunk: [chunk]}
        assert dump_canonical_json(value) == dump_json(value), hex(k)


def test_json_canonical_still_refuses_non_json():
    with pytest.raises(RecordError):
        json_canonical({1: "x"}, game_id="g", field="f")
    with pytest.raises(RecordError):
        json_canonical({"a": object()}, game_id="g", field="f")
    for value in ({"a": float("nan")}, [float("inf")], "\ud800", {"\udc00": 1}):  # not valid JSON / UTF-8
        with pytest.raises(RecordError):
            json_canonical(value, game_id="g", field="f")


# ---------------------------------------------------------------------------
# move_json decomposition: exact without re-rendering
# ---------------------------------------------------------------------------
from gamestore.ringrift import cells, mapping  # noqa: E402

_pos = st.one_of(
    st.none(),
    st.fixed_dictionaries({"x": st.integers(-40000, 40000), "y": st.integers(0, 9), "z": st.none() | st.integers(-9, 9)}),
    st.fixed_dictionaries({"y": st.integers(0, 9), "x": st.integers(0, 9), "z": st.none()}),
    st.just([1, 2]),
)
_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), st.text(max_size=3))


@st.composite
def _move_json(draw):
    d = {k: None for k in mapping.MOVE_JSON_KEYS}
    for k in ("from", "to", "captureTarget"):
        d[k] = draw(_pos)
    d["id"] = draw(st.one_of(st.none(), st.text(max_size=4), st.integers(0, 3)))
    d["placementCount"] = draw(st.one_of(st.none(), st.integers(-40000, 40000), st.booleans()))
    d["type"] = draw(st.sampled_from(["place_ring", "move_stack", None, 3]))
    d["player"] = draw(st.sampled_from([1, 2, True, 1.0, None]))
    d["timestamp"] = draw(st.sampled_from(["2026-01-01T00:00:00", None]))
    d["thinkTime"] = draw(st.sampled_from([5, 5.0, None, 0]))
    d["moveNumber"] = draw(st.sampled_from([8, 7, 8.0, None, True]))
    d["phase"] = draw(st.sampled_from(["movement", "capture", None]))
    for k in draw(st.lists(st.sampled_from(mapping.MOVE_JSON_KEYS), max_size=4)):
        if k not in ("from", "to", "captureTarget", "id", "placementCount"):
            d[k] = draw(_leaf)
    extra = draw(st.dictionaries(st.sampled_from(["policy", "move_id", "rr_x", "newKey", "turn_number"]), _leaf, max_size=2))
    d.update(extra)
    if draw(st.booleans()):
        items = list(d.items())
        draw(st.randoms()).shuffle(items)
        d = dict(items)
    return d


@settings(max_examples=300, deadline=None)
@given(_move_json())
def test_decomposition_rebuilds_the_parsed_move_json(d):
    m = {"move_number": 7, "turn_number": 3, "player": 1, "phase": "movement", "move_type": "move_stack",
         "timestamp": "2026-01-01T00:00:00", "think_time_ms": 5}  # fmt: skip
    cells.decompose_move_json(d, m)
    back = mapping.move_json_value(m)
    assert cells.same(back, d)
    assert all(back[k] is d[k] or back[k] == d[k] for k in d)


_span_text = st.text(alphabet=st.sampled_from("ab,\u00e9\u0101\U0001f600"), max_size=8)


@settings(max_examples=300, deadline=None)
@given(_span_text, _span_text, st.integers(-2, 9), st.integers(-2, 9), st.integers(-2, 9))
def test_span_equal_equals_its_reference(a, b, i, j, n):
    assert _rrjson.span_equal(a, i, b, j, n) is jsontext._py_span_equal(a, i, b, j, n)
    if 0 <= i <= len(a) and 0 <= n <= len(a) - i:  # a span equals itself, in a copy stored at any width
        assert _rrjson.span_equal(a, i, "\U0001f600" + a, i + 1, n)


@given(st.lists(st.text(alphabet=st.sampled_from('{}"a,\u00e9'), max_size=4), max_size=5), st.data())
def test_history_at_finds_the_history_it_joins(texts, data):
    mt = jsontext.MoveTexts(texts)
    n = data.draw(st.integers(0, len(texts)))
    pre = data.draw(st.text(max_size=3))
    text = pre + mt.history(n) + data.draw(st.text(max_size=3))
    assert mt.history_at(text, len(pre), n) == len(pre) + len(",".join(texts[:n]))
    hist = mt.history(n)
    if hist:  # the last character differs (not in the alphabet), or the text is cut short
        assert mt.history_at(pre + hist[:-1] + "\u0101", len(pre), n) == -1
        assert mt.history_at(pre + hist[:-1], len(pre), n) == -1
