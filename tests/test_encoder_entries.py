"""The compiled encoder's policy and search entry columns: built in one pass from the encoder's own vectors.

``MoveEncoder.finish`` hands out its entry vectors as numpy views (no copy); ``entries_split`` and
``key_action`` make the final columns in one pass each, where numpy made a float32 split, masks and
``np.where`` copies.  They must equal those numpy formulas bit for bit, keep zeros under every null slot
(the columns compress to almost nothing there), and the views must outlive the encoder object.
"""
from __future__ import annotations

import gc

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gamestore.schema import VectorSpec
from gamestore.testing import synth

from test_encoder_backends import SETTINGS, assert_same_outcome, move_lists

_encode = pytest.importorskip("gamestore._encode")
pytestmark = pytest.mark.single_backend  # the compiled module itself


def _reference_split(d: np.ndarray, ok: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.errstate(over="ignore", invalid="ignore"):
        f32 = d.astype(np.float32)
    exact = f32.astype(np.float64).view(np.uint64) == d.view(np.uint64)
    valid64 = ~exact if ok is None else ok & ~exact
    return f32, np.where(valid64, d, 0.0), valid64


floats = hnp.arrays(np.float64, st.integers(0, 200), elements=st.floats(allow_nan=True, allow_infinity=True, width=64))


@settings(max_examples=200, deadline=None)
@given(d=floats, data=st.data())
def test_entries_split_equals_numpy(d, data):
    ok = data.draw(st.none() | hnp.arrays(np.bool_, len(d)))
    if ok is not None:
        d = np.where(ok, d, 0.0)  # the encoder's vectors hold 0.0 under a null slot
    got = _encode.entries_split(np.ascontiguousarray(d), ok)
    for g, e in zip(got, _reference_split(d, ok)):
        assert g.dtype == e.dtype and g.view(np.uint8).tobytes() == e.view(np.uint8).tobytes()


@settings(max_examples=200, deadline=None)
@given(cand=hnp.arrays(np.int32, st.integers(0, 200)), data=st.data())
def test_key_action_equals_numpy(cand, data):
    is_key = data.draw(hnp.arrays(np.bool_, len(cand)))
    key, action = _encode.key_action(cand, is_key)
    assert key.tobytes() == np.where(is_key, cand, 0).astype(np.int32).tobytes()
    assert action.tobytes() == np.where(is_key, 0, cand).astype(np.int32).tobytes()


def test_entry_helpers_refuse_mismatched_arrays():
    with pytest.raises(ValueError):
        _encode.entries_split(np.zeros(3), np.zeros(2, bool))
    with pytest.raises(ValueError):
        _encode.entries_split(np.zeros(3), np.zeros(3, np.uint8))
    with pytest.raises(ValueError):
        _encode.key_action(np.zeros(3, np.int32), np.zeros(4, bool))


def _fixed_width_children(table: pa.Table):
    for name in ("policy", "search"):
        values = table.column(name).combine_chunks().values
        for field in values.type:
            child = values.field(field.name)
            if isinstance(child, pa.DictionaryArray):
                child = child.indices
            yield f"{name}.{field.name}", child


def _assert_zero_under_nulls(table: pa.Table) -> None:
    for name, child in _fixed_width_children(table):
        if not child.null_count:
            continue
        width = child.type.bit_width // 8
        raw = np.frombuffer(child.buffers()[1], dtype=np.uint8)[child.offset * width:(child.offset + len(child)) * width]
        under = raw.reshape(len(child), width)[~np.asarray(child.is_valid())]
        assert not under.any(), name


def test_entry_columns_zero_under_nulls_on_synthetic_games():
    specs = {n: VectorSpec.coerce(n, d) for n, d in synth.VECTORS.items()}
    games = synth.games(4, board_type="square8", num_players=2, seed=11)
    table = assert_same_outcome([g["moves"] for g in games], specs)
    _assert_zero_under_nulls(table)


@settings(SETTINGS, max_examples=40)
@given(games=st.lists(move_lists(max_size=6), min_size=1, max_size=3))
def test_entry_columns_zero_under_nulls_on_any_moves(games):
    table = assert_same_outcome(games)
    if isinstance(table, pa.Table):
        _assert_zero_under_nulls(table)


def test_finish_views_outlive_the_encoder_and_end_its_encoding():
    specs = [VectorSpec.coerce(n, d) for n, d in sorted(synth.VECTORS.items())]
    games = synth.games(3, board_type="square8", num_players=2, seed=2)
    moves = [g["moves"] for g in games]
    enc = _encode.MoveEncoder(specs, sum(map(len, moves)))
    enc.encode([g["game_id"] for g in games], moves)
    out = enc.finish()
    expected = {k: out[k].copy() for k in ("p_cand", "p_prob", "s_q", "s_q_ok", "s_visits")}
    with pytest.raises(ValueError):
        enc.encode([games[0]["game_id"]], [moves[0]])
    del enc
    gc.collect()
    _ = [np.ones(1 << 16) for _ in range(64)]  # reuse freed memory, were the vectors freed
    for k, v in expected.items():
        assert len(v) and out[k].tobytes() == v.tobytes(), k
