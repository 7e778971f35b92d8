"""The compiled encoder's text columns (plain str fields, ``search_extra_json``, ``extra_json``): UTF-8 bytes appended
while a move is encoded, offsets set per row, rolled back with a move that leaves the fast path; equal to the
reference backend's columns and errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gamestore import _encode
from gamestore.schema import VectorSpec

from helpers.codec_cases import VECTORS
from test_encoder_backends import assert_same_outcome

pytestmark = pytest.mark.single_backend  # compares both backends explicitly, whichever is selected

_texts = st.one_of(st.none(), st.text(max_size=8), st.sampled_from(["", "é", "\U0001f600", "x\ud800", "\udfff", "a" * 40]))
# values that make a move leave the fast path after its texts may have been appended (a numpy int, a
# tuple position): the row is rolled back and encoded again from the reference's canonical move
_detours = st.sampled_from([None, ("turn_number", np.int64(3)), ("to", (1, 2))])


@st.composite
def _moves(draw):
    n = draw(st.integers(1, 6))
    moves = []
    for i in range(n):
        m: dict = {"move_number": i, "move_type": "place", "timestamp": draw(_texts), "engine_pv": draw(_texts)}
        if draw(st.booleans()):
            m["search"] = {"q_values": {"a": 0.5}, **({draw(st.sampled_from(["note", "é"])): draw(_texts)}
                                                      if draw(st.booleans()) else {})}
        if draw(st.booleans()):
            m[draw(st.sampled_from(["placedOnStack", "ünknown"]))] = draw(_texts)
        detour = draw(_detours)
        if detour is not None:
            m[detour[0]] = detour[1]
        moves.append({k: v for k, v in m.items() if not (k in ("timestamp", "engine_pv") and v is None)})
    return moves


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(games=st.lists(_moves(), min_size=1, max_size=3))
def test_text_columns_equal_the_reference(games):
    assert_same_outcome(games)


def test_finish_hands_out_offsets_bytes_and_validity():
    specs = [VectorSpec.coerce(k, d) for k, d in sorted(VECTORS.items())]
    moves = [
        {"move_number": 0, "timestamp": "t0", "search": {"q_values": {"a": 1.0}}},
        {"move_number": 1, "engine_pv": "é pv", "foo": 1},
        {"move_number": 2, "timestamp": "", "turn_number": np.int64(2)},  # leaves the fast path: rolled back
    ]
    enc = _encode.MoveEncoder(specs, len(moves))
    assert enc.encode(["g"], [moves]) == [3]
    out = enc.finish()
    offsets, data, ok = out["strs"][0]  # timestamp
    assert offsets.tolist() == [0, 2, 2, 2] and bytes(data) == b"t0" and ok.tolist() == [True, False, True]
    offsets, data, ok = out["strs"][1]  # engine_pv
    assert offsets.tolist() == [0, 0, 5, 5] and bytes(data) == "é pv".encode() and ok.tolist() == [False, True, False]
    offsets, data, ok = out["search_extra"]
    assert offsets.tolist() == [0, 2, 2, 2] and bytes(data) == b"{}" and ok.tolist() == [True, False, False]
    offsets, data, ok = out["extra"]
    assert bytes(data) == b'{"foo":1}' and offsets.tolist() == [0, 0, 9, 9] and ok.tolist() == [False, True, False]
    del enc
    assert bytes(out["extra"][1]) == b'{"foo":1}'  # the view keeps the encoder's buffer alive
