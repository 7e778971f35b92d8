"""RingRift's policy / search-statistics text parsed in C straight into the encoder's columns
(``gamestore.ringrift.textcols``, ``_rrcols.policy_columns`` / ``search_columns``), against the reference.

Soundness: whatever the C parser accepts is exactly what ``json.dumps`` writes for the value
``json.loads`` reads (every float's text is ``repr``'s, bit for bit the same double), the reference
path splits it the same way (default style, RingRift's key order), and the encoder makes the same
Arrow columns of the column form as of the parsed dict.  Coverage: RingRift's texts (floats from
1e-5 to 1e16, the usual shape) are accepted, so the import takes the column path.
"""
from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gamestore import _backend_cython, _backend_python
from gamestore._encode import Columns
from gamestore.codec import _coerce_vectors
from gamestore.errors import RecordError
from gamestore.ringrift import _rrcols, cells, textcols
from gamestore.ringrift.mapping import RINGRIFT_VECTORS

from test_ringrift_fastpath import reference_path, strict_equal

_SPECS = _coerce_vectors(RINGRIFT_VECTORS)


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


# ---------------------------------------------------------------------------
# Floats: accepted only when repr writes the text back; repr's own texts accepted in RingRift's range
# ---------------------------------------------------------------------------
def _check_float_text(text: str) -> float | None:
    got = _rrcols.float_text(text)
    if got is not None:
        x = float(text)
        assert repr(x) == text and _bits(got) == _bits(x), text
    return got


def _variants(text: str) -> list[str]:
    """Texts next to ``text``: last digit moved, cut, extended, respelled."""
    out = [text + "0", text + "1", text[:-1], text.upper(), text.replace("e+", "e"), text.replace("e-0", "e-")]
    if text[-1].isdigit():
        out += [text[:-1] + str((int(text[-1]) + d) % 10) for d in (1, 9, 2)]
    if "." in text and "e" not in text:
        out.append(text + "e+00")
    return out


_doubles = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(width=32, allow_nan=False, allow_infinity=False),  # network outputs widened: ties at the 17th digit
    st.floats(min_value=1e-5, max_value=1e16),
    st.floats(min_value=-1.0, max_value=1.0),
    st.sampled_from([0.0, -0.0, 1.0, 100.0, 1e15, 1e16, 1e-5, 1e-4, 9.999999999999999e-05, 0.1, 5e-324,
                     2.2250738585072014e-308, 1.7976931348623157e308, 123456789012345678.0, 0.30000000000000004]),
)


@pytest.mark.single_backend  # no encoder involved
@settings(max_examples=1500, deadline=None)
@given(_doubles)
def test_a_float_text_is_accepted_only_as_repr_writes_it(x):
    text = repr(x)
    got = _check_float_text(text)
    if x == 0.0 or 1e-5 <= abs(x) < 1e16:
        assert got is not None, text  # the proof covers RingRift's range
    for other in _variants(text):
        _check_float_text(other)
    _check_float_text("-" + text if text[0] != "-" else text[1:])


@pytest.mark.single_backend
@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"-?(0|[1-9][0-9]{0,19})(\.[0-9]{1,21})?([eE][-+]?[0-9]{1,4})?", fullmatch=True))
def test_any_json_number_text_is_accepted_only_as_repr_writes_it(text):
    _check_float_text(text)


@pytest.mark.single_backend
@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1", "-0", "1.", ".5", "1e5", "1E+05", "1.0e+05",
                                  "01.5", "1.50", "0.00001", "1e-5", "+1.0", " 1.0", "1.0 ", "1_0.0", ""])
def test_texts_repr_never_writes_are_refused(text):
    assert _rrcols.float_text(text) is None


@pytest.mark.single_backend
@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(-(2**64), 2**64), st.from_regex(r"-?[0-9]{1,21}", fullmatch=True)))
def test_an_int_text_is_accepted_only_as_repr_writes_it(v):
    text = str(v)
    got = _rrcols.int_text(text)
    if got is not None:
        assert repr(int(text)) == text and got == int(text)
    if isinstance(v, int) and -(2**63) <= v < 2**63:
        assert got == v


# ---------------------------------------------------------------------------
# Whole cells: the column form equals the reference's split and encodes to the same columns
# ---------------------------------------------------------------------------
_ckeys = st.one_of(st.sampled_from(["place_ring_1,4", "move_stack_5,0_5,2", "a", "", "x" * 40]),
                   st.text(alphabet=st.sampled_from('ab,: "\\\x00\x7f\u00e9'), max_size=3))
_floats = st.one_of(
    st.floats(width=32), st.floats(), st.floats(min_value=-1, max_value=1),
    st.sampled_from([0.0, -0.0, 1e-5, 1e16, 1.0, float("nan"), float("inf"), 1e-300]),
)
_ints = st.one_of(st.integers(0, 2**31 - 1), st.integers(-(2**33), 2**33))
_scalars = {"search_depth": _ints, "uncertainty": _floats, "root_value": _floats,
            "nodes_explored": st.integers(-(2**64), 2**64), "total_simulations": st.integers(0, 10**6)}


@st.composite
def _search(draw) -> dict[str, Any]:
    keys = draw(st.lists(_ckeys, min_size=0, max_size=6))
    s: dict[str, Any] = {}
    for name in cells.SEARCH_KEYS:
        if draw(st.integers(0, 4)) == 0:
            continue  # absent
        if name in ("q_values", "prior_policy"):
            s[name] = {k: draw(_floats) for k in keys}
        elif name == "visit_counts":
            s[name] = {k: draw(_ints) for k in keys}
        else:
            s[name] = draw(_scalars[name])
    if draw(st.integers(0, 9)) == 0 and s:  # another key order, an unknown key, a null, an int as float
        items = list(s.items())
        kind = draw(st.integers(0, 3))
        if kind == 0:
            items.reverse()
        elif kind == 1:
            items.insert(draw(st.integers(0, len(items))), ("extra", 1))
        elif kind == 2:
            items[draw(st.integers(0, len(items) - 1))] = (items[0][0], None)
        else:
            items = [(k, 1 if isinstance(v, float) else v) for k, v in items]
        s = dict(items)
    return s


def _texts(value: Any, data) -> str:
    text = json.dumps(value)
    kind = data.draw(st.integers(0, 9))
    if kind == 1:
        return json.dumps(value, separators=(",", ":"))
    if kind == 2:
        return json.dumps(value, ensure_ascii=False)
    if kind == 3 and len(text) > 2:  # one character dropped, doubled or changed
        i = data.draw(st.integers(0, len(text) - 1))
        return text[:i] + data.draw(st.sampled_from(["", text[i] * 2, " ", "0", "}", "\"a\": 1, "])) + text[i + 1:]
    if kind == 4 and isinstance(value.get("q_values"), dict) and value["q_values"]:  # a duplicated candidate
        k = next(iter(value["q_values"]))
        return text.replace(json.dumps(k) + ": ", json.dumps(k) + ": 0.5, " + json.dumps(k) + ": ", 1)
    return text


def _encoded(moves: list) -> tuple:
    """The compiled encoder's columns of ``moves``, and the reference backend's."""
    try:
        c = _backend_cython.encode_moves(["g"], [moves], _SPECS)[0]
    except RecordError as exc:
        c = ("error", exc.field)
    try:
        p = _backend_python.encode_moves(["g"], [moves], _SPECS)[0]
    except RecordError as exc:
        p = ("error", exc.field)
    return c, p


def _same_encoding(cols: Columns, value: dict, key: str) -> None:
    c, p = _encoded([{"move_number": 0, key: cols}])
    ref, _ = _encoded([{"move_number": 0, key: value}])
    assert (c.equals(ref) if not isinstance(ref, tuple) else c == ref), key
    assert (p.equals(ref) if not isinstance(ref, tuple) else p == ref), key


@settings(max_examples=400, deadline=None)
@given(_search(), st.data())
def test_search_text_in_column_form_equals_the_reference(s, data):
    text = _texts(s, data)
    cols = textcols.search_text(text)
    with reference_path():
        ref = cells.parse_search(text)
    if cols is None:
        return  # the reference path decides (verbatim, or split in Python)
    assert ref is not None and ref[1] is None and ref[2] == cells.STYLE["search_stats_json"], text
    strict_equal(cols, ref[0])
    assert json.dumps(dict(cols)) == text and cells.parse_search(text)[0] is not cols
    _same_encoding(cols, ref[0], "search")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_ckeys, _floats, max_size=8), st.data())
def test_policy_text_in_column_form_equals_the_reference(p, data):
    text = _texts(p, data)
    cols = textcols.policy_text(text)
    with reference_path():
        ref = cells.parse_policy(text)
    if cols is None:
        return
    assert ref is not None and ref[1] == cells.STYLE["move_probs"], text
    strict_equal(cols, ref[0])
    _same_encoding(cols, ref[0], "policy")


def test_ringrift_shaped_texts_take_the_column_path():
    q = {f"place_ring_{i},{j}": (i - j) / 7 for i in range(8) for j in range(8)}
    s = {"q_values": q, "visit_counts": {k: 3 for k in q}, "search_depth": 5, "uncertainty": 0.6701,
         "prior_policy": {k: 1 / 64 for k in q}, "root_value": -0.1, "nodes_explored": 540, "total_simulations": 800}
    cols = textcols.search_text(json.dumps(s))
    assert isinstance(cols, Columns) and dict(cols) == s and list(cols) == list(s)
    _same_encoding(cols, s, "search")
    for partial in ({k: v for k, v in s.items() if k != "root_value"}, {k: v for k, v in s.items() if k in ("q_values", "visit_counts", "prior_policy")}):
        assert textcols.search_text(json.dumps(partial)) is not None
    pol = {"place_ring_1,4": 0.007060106843709946, "place_ring_1,6": 0.16772876679897308}
    assert dict(textcols.policy_text(json.dumps(pol))) == pol
    # not the usual shape, or not the default spelling: the reference path
    for odd in ({**s, "prior_policy": {}}, {**s, "visit_counts": {k: 3 for k in list(q)[1:]}}, dict(reversed(s.items()))):
        assert textcols.search_text(json.dumps(odd)) is None
    assert textcols.search_text(json.dumps(s, separators=(",", ":"))) is None


def test_column_form_under_the_wrong_key_or_damaged_takes_the_reference_route():
    pol = textcols.policy_text('{"a": 0.25, "b": 0.75}')
    search = textcols.search_text('{"q_values": {"a": 0.5}, "visit_counts": {"a": 1}, "prior_policy": {"a": 1.0}}')
    # a policy where search statistics go (and back): the encoder reads the mapping, as the reference does
    for key, value in (("search", pol), ("policy", search)):
        c, p = _encoded([{"move_number": 0, key: value}])
        ref, _ = _encoded([{"move_number": 0, key: dict(value)}])
        for got in (c, p):
            assert got == ref if isinstance(ref, tuple) else got.equals(ref)
    for bad in (b"", b"\x00" * 8, pol.data[:-1], pol.data + b"x", pol.data[:-1] + b"\xe9"):
        with pytest.raises(ValueError):
            Columns(bad)
    assert math.isclose(sum(pol.values()), 1.0) and repr(pol).startswith("TextColumns(")


@pytest.mark.parametrize(
    "text",
    [
        '{"q_values": {"a": 0.51.2}, "visit_counts": {"a": 1}, "prior_policy": {"a": 1.0}}',  # a number run repr never writes
        '{"q_values": {"a": 0.5e}, "visit_counts": {"a": 1}, "prior_policy": {"a": 1.0}}',
        '{"q_values": {"a": 0.5-}, "visit_counts": {"a": 1}, "prior_policy": {"a": 1.0}}',
        '{"q_values": {"a": 0.5}, "visit_counts": {"a": 1}, "prior_policy": {"a": 1.0}, "root_value": 0.1.}',
        '{"q_values": {"a": 0.5, "b": 0.25}, "visit_counts": {"a": 1, "b\\"": 2}, "prior_policy": {"a": 1.0, "b": 0.5}}',
        '{"q_values": {"ab": 0.5}, "visit_counts": {"a": 1}, "prior_policy": {"ab": 1.0}}',  # a later key shorter,
        '{"q_values": {"a": 0.5}, "visit_counts": {"ab": 1}, "prior_policy": {"a": 1.0}}',  # longer
        '{"q_values": {"a": 0.' + "1" * 45 + '}, "visit_counts": {"a": 1}, "prior_policy": {"a": 1.0}}',  # > 40 chars
    ],
)
def test_number_ends_and_later_keys_are_checked(text):
    """The number's end is where the float proof stops and a later map's key is compared byte for byte: what
    does not follow the layout exactly takes the reference route (the text stays verbatim or parses in Python)."""
    good = '{"q_values": {"a": 0.5, "b": 0.25}, "visit_counts": {"a": 1, "b": 2}, "prior_policy": {"a": 1.0, "b": 0.5}}'
    assert textcols.search_text(good) is not None
    assert textcols.search_text(text) is None
