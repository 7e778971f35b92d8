"""The compiled encoder's string dictionaries (``_encode.Codes``) code exactly as a ``dict`` does.

``Codes`` replaces the ``dict`` + ``list`` first-appearance dictionaries of the policy and search
keys and of the dictionary-string columns: its codes, its values and its rollback (a move that
leaves the fast path) must equal the dict model's, whatever the strings (any kind, equal content
in distinct objects, colliding or many keys, tables that grow and shrink back).
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.codec_cases import VECTORS

from test_encoder_backends import SETTINGS, assert_same_outcome

_encode = pytest.importorskip("gamestore._encode")
pytestmark = pytest.mark.single_backend  # compares both backends explicitly

# ASCII, Latin-1, BMP and astral code points: the three storage kinds of CPython's str
keys = st.text(alphabet=st.sampled_from("ab_,0é\u00ff\u0100中\U0001F600"), max_size=5)


class _Model:
    def __init__(self, limit: int) -> None:
        self.codes: dict[str, int] = {}
        self.values: list[str] = []
        self.limit = limit

    def add(self, s: str) -> int:
        if s in self.codes:
            return self.codes[s]
        if len(self.values) >= self.limit:
            return -1
        self.codes[s] = len(self.values)
        self.values.append(s)
        return self.codes[s]

    def rollback(self, mark: int) -> None:
        for s in self.values[mark:]:
            del self.codes[s]
        del self.values[mark:]


def _fresh(s: str) -> str:
    """An equal str in a distinct object (as each move's keys are after json.loads)."""
    return "".join(list(s)) if len(s) > 1 else (s + "x")[:-1] if s else str()


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.one_of(keys.map(lambda k: ("add", k)), st.integers(0, 40).map(lambda m: ("rollback", m))),
                    max_size=300),
       limit=st.sampled_from([3, 1000]))
def test_codes_equal_dict_model(ops, limit):
    codes, model = _encode.Codes(limit), _Model(limit)
    for op, arg in ops:
        if op == "add":
            assert codes.add(_fresh(arg)) == model.add(arg)
        else:
            mark = min(arg, len(model.values))
            codes.rollback(mark)
            model.rollback(mark)
        assert codes.values == model.values
        assert len(codes) == len(model.values)
    for k in model.values:
        assert k in codes and codes.add(_fresh(k)) == model.codes[k]
    assert 12 not in codes


def test_codes_grow_and_roll_back_across_growth():
    codes, model = _encode.Codes(2**31), _Model(2**31)
    for i in range(50):
        assert codes.add(f"k{i}") == model.add(f"k{i}")
    for i in range(50, 5000):  # grows the table several times
        assert codes.add(f"k{i}") == model.add(f"k{i}")
    codes.rollback(50)
    model.rollback(50)
    assert codes.values == model.values
    for i in range(5000):  # the rolled-back keys are new again, in a new order
        k = f"k{(i * 7919) % 5000}"
        assert codes.add(k) == model.add(k)
    assert codes.values == model.values


def test_codes_equal_content_distinct_kinds_and_subclass():
    class Sub(str):
        pass

    codes = _encode.Codes(100)
    assert codes.add("é") == 0 and codes.add("e") == 1 and codes.add("\u0100") == 2
    assert codes.add(Sub("e")) == 1 and codes.add("".join(["é"])) == 0
    with pytest.raises(TypeError):
        codes.add(b"e")


@SETTINGS
@given(moves=st.lists(st.fixed_dictionaries({
    "phase": keys,
    "policy": st.dictionaries(keys, st.floats(-1, 1), max_size=8),
    "search": st.fixed_dictionaries({"q_values": st.dictionaries(keys, st.floats(-1, 1), max_size=8)}),
}, optional={"from": st.just((1, 2))}), min_size=1, max_size=12))
def test_backends_equal_with_rollbacks_and_any_strings(moves):
    # "from" as a tuple sends a move to the slow path after its keys were coded: rollback, then re-coding
    assert_same_outcome([moves], VECTORS)


def test_many_keys_in_one_move_then_rollback():
    policy = {f"cand-{i}-\u00e9": 1.0 / (i + 1) for i in range(300)}
    moves = [{"policy": dict(list(policy.items())[:10])},
             {"policy": policy, "search": {"q_values": {f"q{i}": 0.5 for i in range(200)}}, "from": (1, 2)},
             {"policy": {"cand-5-\u00e9": 0.5, "late": 0.5}}]
    table = assert_same_outcome([moves], VECTORS)
    keys_dict = table.column("policy").chunk(0).values.field("key").dictionary.to_pylist()
    assert keys_dict[:10] == list(policy)[:10] and keys_dict[-1] == "late" and len(keys_dict) == 301


def test_key_cache_distinct_key_objects_and_evictions():
    # known keys as fresh objects in every move, and hundreds of unknown keys (extra_json) that
    # collide and evict each other in the encoder's key caches: same tables as the reference
    def fresh(k: str) -> str:
        return "".join(list(k))

    moves = []
    for i in range(400):
        move = {fresh("move_type"): "place", fresh("phase"): f"p{i % 3}", f"extra_{i}": i,
                fresh("search"): {fresh("q_values"): {"a": 0.5}, fresh("root_value"): 0.25, f"s_{i}": True}}
        if i % 2:
            move = {"move_type": "place", "phase": "p0", "search": {"q_values": {"a": 0.5}}, f"extra_{i % 7}": None}
        moves.append(move)
    table = assert_same_outcome([moves], VECTORS)
    assert table.column("move_type").null_count == 0
    assert table.column("extra_json").to_pylist()[2] == '{"extra_2":2}'


class _Key(str):
    pass


@pytest.mark.parametrize("position", [
    {"y": 2, "x": 1}, {"x": 1, "y": 2, "z": None}, {"z": -3, "x": 1, "y": 2}, {"x": 1, "y": 2, "w": 3},
    {"x": 1}, {"x": 1, "y": 2, 7: 3}, {_Key("x"): 1, _Key("y"): 2}, {"x": 1, "y": 2, "z": 40000}, {},
])
def test_positions_walked_as_the_reference_reads_them(position):
    assert_same_outcome([[{"to": position}, {"from": dict(position), "to": {"x": 0, "y": 0}}]], VECTORS)


def test_codes_every_length_and_last_byte():
    # the hash reads whole words and then the last 8 bytes (overlapping) or, below 8, byte by byte:
    # texts that differ only in their last byte, at every length around those word boundaries
    codes, model = _encode.Codes(2**31), _Model(2**31)
    texts = [p * n + last for n in range(0, 41) for p in ("a", "\u00e9", "\u4e2d") for last in ("x", "y", "")]
    for t in texts + [_fresh(t) for t in reversed(texts)]:
        assert codes.add(t) == model.add(t)
    assert codes.values == model.values
