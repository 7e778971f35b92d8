"""The write path's checksum hashing: many ranges in one compiled call (libxxhash, without the GIL) equal to
``xxhash`` range by range (the spec), and the fallback when the library or the extension is missing."""
import random

import pytest
import xxhash

import gamestore
from gamestore import checksum
from gamestore.manifest import MOVES_FILE
from gamestore.testing import synth

pytestmark = pytest.mark.single_backend

DATA = random.Random(7).randbytes(5000)
RANGES = [(0, 0), (0, 1), (3, 19), (0, 16), (1, 130), (7, 247), (100, 340), (4999, 5000), (0, 5000), (2500, 2500)]
RANGES += [tuple(sorted(random.Random(k).sample(range(5001), 2))) for k in range(40)]


@pytest.mark.parametrize("compiled", [True, False])
def test_hex_ranges_equal_xxhash_range_by_range(monkeypatch, compiled):
    if not compiled:
        monkeypatch.setattr(checksum, "_XXH3", 0)
    expected = [xxhash.xxh3_64_hexdigest(DATA[a:b]) for a, b in RANGES]
    assert checksum.hex_ranges(memoryview(DATA), RANGES) == expected
    assert checksum.hex_ranges(memoryview(DATA), []) == []


def test_file_checksums_are_the_same_with_and_without_the_compiled_hash(tmp_path, monkeypatch):
    with gamestore.open(tmp_path / "s", vectors=synth.VECTORS) as store:
        store.write_games(synth.games(6, seed=3))
    (shard,) = (tmp_path / "s" / "shards").iterdir()
    fast = checksum.file_checksums(shard / MOVES_FILE)
    monkeypatch.setattr(checksum, "_XXH3", 0)
    slow = checksum.file_checksums(shard / MOVES_FILE)
    assert fast == slow and fast["columns"] and fast["batches"]


def test_hash_ranges_refuses_ranges_outside_the_buffer():
    import numpy as np

    from gamestore import _xxh

    for a, b in [(-1, 3), (4, 3), (0, 5001)]:
        with pytest.raises(ValueError):  # checked before any hashing (the address is never called)
            _xxh.hash_ranges(DATA, np.array([0, a], np.int64), np.array([1, b], np.int64), 1)
    with pytest.raises(ValueError):
        _xxh.hash_ranges(DATA, np.array([0], np.int64), np.array([1, 2], np.int64), 1)
