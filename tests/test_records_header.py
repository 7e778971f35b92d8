"""normalize_header's typed fields: the fast path (a value of exactly its field's type taken as it is) equals
``check_scalar`` for every field of a game and of a player, values and errors alike."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gamestore import records
from gamestore.errors import RecordError
from gamestore.schema import GAME_SCALAR_FIELDS, PLAYER_FIELDS


class _Str(str):
    pass


class _Int(int):
    pass


class _Float(float):
    pass


def _model_scalars(fields, values: dict[str, Any], game_id: object, prefix: str) -> dict[str, Any]:
    """The typed fields of ``values`` as check_scalar alone makes them (the code before the fast path)."""
    out = {}
    for name, atype, kind in fields:
        if name in values and values[name] is not None:
            out[name] = records.check_scalar(values[name], kind, atype, game_id=game_id, field=f"{prefix}{name}")
    return out


def _outcome(fn):
    try:
        return "ok", fn()
    except RecordError as exc:
        return "error", (type(exc), exc.message, exc.game_id, exc.field)


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.sampled_from([0, 1, -1, 127, 128, -128, -129, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["a", "é", "\ud800", "x\udfff", "", "ring"]),
    st.builds(_Str, st.sampled_from(["a", "é"])),
    st.builds(_Int, st.integers(-200, 200)),
    st.builds(_Float, st.floats(allow_nan=False)),
    st.builds(np.int64, st.integers(-(2**40), 2**40)),
    st.builds(np.int8, st.integers(-128, 127)),
    st.builds(np.float32, st.floats(width=32, allow_nan=False)),
    st.lists(st.integers(), max_size=2),
)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@settings(max_examples=400, deadline=None)
@given(field=st.sampled_from([n for n, _, _ in GAME_SCALAR_FIELDS if n not in ("game_id", "board_type", "num_players")]),
       value=_values)
def test_game_fields_equal_check_scalar(field, value):
    record = {"game_id": "g", "board_type": "square8", "num_players": 2, field: value}
    got = _outcome(lambda: records.normalize_header(record))
    want = _outcome(lambda: {"game_id": "g", "board_type": "square8", "num_players": 2,
                             **_model_scalars(GAME_SCALAR_FIELDS, {field: value}, "g", "")})
    assert got[0] == want[0], (got, want)
    if got[0] == "ok":
        assert _same(got[1], want[1])
    else:
        assert got[1] == want[1]


@settings(max_examples=400, deadline=None)
@given(field=st.sampled_from([n for n, _, _ in PLAYER_FIELDS if n != "player_number"]), value=_values,
       number=st.sampled_from([1, 2, 127, 128, True, 1.0, _Int(3)]))
def test_player_fields_equal_check_scalar(field, value, number):
    record = {"game_id": "g", "board_type": "square8", "num_players": 2,
              "players": [{"player_number": 1}, {"player_number": number, field: value}]}
    got = _outcome(lambda: records.normalize_header(record))

    def model():
        players = [_model_scalars(PLAYER_FIELDS, {"player_number": 1}, "g", "players[0]."),
                   _model_scalars(PLAYER_FIELDS, {"player_number": number, field: value}, "g", "players[1].")]
        return {"game_id": "g", "board_type": "square8", "num_players": 2, "players": players}

    want = _outcome(model)
    assert got[0] == want[0], (got, want)
    if got[0] == "ok":
        assert _same(got[1], want[1])
    else:
        assert got[1] == want[1]


@pytest.mark.parametrize("value, kept", [(2**31 - 1, True), (2**31, False), (-(2**31), True), (-(2**31) - 1, False)])
def test_int_bounds_at_the_edge(value, kept):
    record = {"game_id": "g", "board_type": "square8", "num_players": 2, "total_moves": value}
    if kept:
        out = records.normalize_header(record)
        assert out["total_moves"] == value and type(out["total_moves"]) is int
    else:
        with pytest.raises(RecordError, match="out of range") as info:
            records.normalize_header(record)
        assert info.value.field == "total_moves"


def test_exact_types_are_taken_as_they_are_and_others_coerced():
    value = "a text"
    out = records.normalize_header({"game_id": "g", "board_type": "square8", "num_players": np.int8(2),
                                    "source": value, "quality_score": 3, "winner": _Int(1)})
    assert out["source"] is value
    assert type(out["num_players"]) is int and out["num_players"] == 2
    assert type(out["quality_score"]) is float and out["quality_score"] == 3.0
    assert type(out["winner"]) is int
    with pytest.raises(RecordError, match="not valid Unicode"):
        records.normalize_header({"game_id": "g", "board_type": "square8", "num_players": 2, "source": "x\ud800"})
