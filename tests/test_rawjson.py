"""JSONText: a JSON object handed to the store as its canonical text is stored byte for byte as the dict would be."""
from __future__ import annotations

import json
import pickle

import pytest
from hypothesis import given, strategies as st

import gamestore
from gamestore import codec
from gamestore.errors import RecordError
from gamestore.rawjson import JSONText
from gamestore.records import dump_canonical_json, dump_json, games_equal, json_canonical, normalize_game

pytestmark = pytest.mark.single_backend  # game-level columns are built in Python for both backends

STATE = {"board": {"0,0": {"rings": [1, 2], "h": 0.5}, "1,2": None}, "phase": "ring_placement", "t": "é\n\"x\"", "n": -3}


def _game(gid: str, state: object, initial: object) -> dict:
    return {
        "game_id": gid, "board_type": "square8", "num_players": 2,
        "initial_state": initial, "metadata": {"m": 1},
        "snapshots": [{"move_number": 0, "state": state, "state_hash": "h"}, {"move_number": 1, "state": {}}],
        "moves": [{"move_number": 0, "player": 1}, {"move_number": 1, "player": 2}],
    }  # fmt: skip


def test_store_keeps_text_and_reads_back_the_dict(tmp_path) -> None:
    text = dump_json(STATE)
    with gamestore.open(tmp_path / "s", create=True) as st_:
        st_.write_games([_game("a", STATE, STATE), _game("b", JSONText(text), JSONText.proven(text))])
        st_.flush()
        a, b = st_.get_game("a"), st_.get_game("b")
    assert type(b["snapshots"][0]["state"]) is dict and type(b["initial_state"]) is dict
    a.pop("game_id"), b.pop("game_id")
    assert games_equal(a, b)
    enc = codec.encode_games([_game("a", STATE, STATE), _game("b", JSONText(text), JSONText(text))], vectors={})
    snaps = enc.games.column("snapshots").to_pylist()
    assert snaps[0] == snaps[1]  # the same stored text
    assert enc.games.column("initial_state_json").to_pylist() == [text, text]


def test_mapping_behaviour_and_pickle() -> None:
    j = JSONText(dump_json(STATE))
    assert j == STATE and dict(j) == STATE and list(j) == list(STATE) and len(j) == len(STATE) and j["n"] == -3
    assert j == JSONText.proven(j.text) and j != {"n": 1}
    back = pickle.loads(pickle.dumps(j))
    assert type(back) is JSONText and back.text == j.text
    assert json_canonical(j, game_id="g", field="f") is j and dump_canonical_json(j) == j.text
    assert games_equal(normalize_game(_game("g", j, None)), normalize_game(_game("g", STATE, None)))


@pytest.mark.parametrize(
    "text",
    ['{"a": 1}', '{"a":1.0e5}', '{"a":NaN}', '[1]', '"x"', '{"a":1,"a":2}', '{"a":"\\u00e9"}', '{"a":1', "{}x",
     '{"a":' * 300 + "1" + "}" * 300, 5],
)  # fmt: skip
def test_constructor_refuses_non_canonical_text(text: object) -> None:
    with pytest.raises(RecordError):
        JSONText(text)  # type: ignore[arg-type]


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(), lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4),
                    max_leaves=20))
def test_any_dumped_object_is_accepted(value: object) -> None:
    obj = {"v": value}
    try:
        text = dump_json(obj)
        text.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return
    j = JSONText(text)
    assert dump_canonical_json(j) == dump_canonical_json(json_canonical(obj, game_id="g", field="f")) == text
    assert j == json.loads(text)
