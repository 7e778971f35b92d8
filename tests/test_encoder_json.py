"""The compiled encoder's JSON text of unknown keys (``extra_json``, ``search_extra_json``) is ``dump_json``'s.

The fast path writes orjson's text where ``records._orjson_text_is_json`` proves it equal to
``json.dumps``'s and falls back to json's otherwise; the check is compiled (``orjson_text_is_json``).
Both must agree with the reference, whatever the values (every kind of str, control characters,
floats that Python and orjson spell differently, ints beyond 64 bits, lone surrogates).
"""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gamestore.records import _orjson_text_is_json, dump_json

from test_encoder_backends import SETTINGS, assert_same_outcome

_encode = pytest.importorskip("gamestore._encode")
pytestmark = pytest.mark.single_backend  # compares the compiled text with the reference's explicitly

floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e-5, 1e-4, 0.00012, 1e-7, 1e16, 1e17, 123456789012345678.0, 1e308, 5e-324, 0.1]),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70), floats,
                    st.text(), st.sampled_from(["line", "territory", "\u2028", "\x7f", "\x00\x1f", "\ud800"]))
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.lists(inner, max_size=3).map(tuple),
                            st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=8), trees, min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(value=objects)
def test_json_text_is_dump_json(value):
    assert _encode.json_text_of(value) == dump_json(value)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(st.binary(max_size=40), st.lists(st.sampled_from([b"e+", b"e-", b"e", b".", b"0.0000", b"1" * 17, b"7",
                                                                          b"0", b"-", b'"']), max_size=12).map(b"".join)))
def test_compiled_check_is_the_reference(body):
    text = b"{" + body  # the check sees objects' texts only
    assert _encode.orjson_text_is_json(text) == _orjson_text_is_json(text)


def test_known_spellings():
    for value in ({"placedOnStack": False}, {"x": 1e-7}, {"x": 1e16}, {"x": 0.00001}, {"x": 2**64},
                  {"s": "é\n\"\\\x01"}, {"t": (1, [2.5, None])}, {"x": -0.0}, {"x": math.pi}):
        assert _encode.json_text_of(value) == dump_json(value), value


@SETTINGS
@given(extras=st.lists(objects, min_size=1, max_size=6))
def test_backends_equal_with_unknown_keys(extras):
    moves = []
    for i, extra in enumerate(extras):
        m = {"move_number": i, "move_type": "place_ring", "phase": "ring_placement"}
        m.update({f"x_{k}": v for k, v in extra.items()})
        if i % 2:
            m["search"] = {"q_values": {"a": 0.5}, "root_value": 0.25, **{f"y_{k}": v for k, v in extra.items()}}
        moves.append(m)
    assert_same_outcome([moves])
