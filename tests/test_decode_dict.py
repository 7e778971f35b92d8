"""``_decode``'s direct dict fill (``_ext/_decode_dict.pxi``) builds dicts equal to PyDict_SetItem's, whose every
later lookup, insertion, deletion, copy, pickle and GC tracking behaves as a dict built by Python."""
from __future__ import annotations

import gc
import pickle
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

_decode = pytest.importorskip("gamestore._decode")
pytestmark = pytest.mark.single_backend  # the compiled module's dict fill: the same whichever encoder is selected

keys = st.one_of(st.text(max_size=12), st.sampled_from(["q", "prior", "move_1,2", "x", "y", "z"]),
                 st.integers(-5, 10**6), st.floats(allow_nan=False), st.tuples(st.integers()))
values = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=3), st.lists(st.integers(), max_size=2))


def _reference(pairs: list) -> dict:
    d: dict = {}
    for k, v in pairs:
        d[k] = v
    return d


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(keys, values), max_size=300), st.integers(-1, 400))
def test_filled_equals_setitem(pairs: list, presize: int) -> None:
    got = _decode._filled(pairs, presize)
    want = _reference(pairs)
    assert got == want
    assert list(got.items()) == list(want.items())  # insertion order, duplicates replaced in place
    for k, _ in pairs:
        assert k in got and got[k] == want[k] and got.get(k) == want.get(k)
    assert pickle.loads(pickle.dumps(got)) == want
    assert got.copy() == want and dict(got) == want
    if pairs:  # deletion, then insertion of new keys, resize past the presized room
        k0 = pairs[0][0]
        del got[k0], want[k0]
        for n in range(50):
            got[f"extra{n}"] = want[f"extra{n}"] = n
        assert got == want and list(got) == list(want)


def test_equal_strings_of_other_objects_replace() -> None:
    a = "".join(["move_", "1"])
    b = "".join(["move", "_1"])
    assert a == b and a is not b
    hash(a), hash(b)
    for presize in (-1, 0, 3, 40):
        d = _decode._filled([(a, 1), ("other", 2), (b, 3)], presize)
        assert d == {"move_1": 3, "other": 2} and len(d) == 2


def test_uncached_hash_and_non_str_keys() -> None:
    fresh = "".join(["never", "_hashed"])  # a new str object: its hash is not computed yet
    d = _decode._filled([(fresh, 1), (7, 2), (("t",), 3), (1.5, 4)], 20)
    assert d == {"never_hashed": 1, 7: 2, ("t",): 3, 1.5: 4}


def test_gc_tracking_as_python() -> None:
    flat = _decode._filled([(f"k{i}", float(i)) for i in range(30)], 30)
    assert not gc.is_tracked(flat) and not gc.is_tracked(_reference([("a", 1.0)]))
    arr = _decode._filled([("v", np.zeros(3))], 10)
    assert gc.is_tracked(arr) == gc.is_tracked(_reference([("v", np.zeros(3))]))
    nested = _decode._filled([("a", 1), ("m", {"x": 1})], 10)
    assert gc.is_tracked(nested)
    # a cycle through a filled dict is collected
    holder = _decode._filled([("self", {})], 10)
    holder["self"]["back"] = holder
    del holder
    assert gc.collect() >= 2


def test_large_tables() -> None:
    rng = random.Random(5)
    for n in (200, 300, 70_000):
        pairs = [(f"key{rng.randrange(n)}", i) for i in range(n)]
        assert _decode._filled(pairs, n) == _reference(pairs)


def test_fast_path_in_use_on_cpython_311() -> None:
    import sys

    assert _decode.dict_fast() == (sys.version_info[:2] == (3, 11) and sys.implementation.name == "cpython")
