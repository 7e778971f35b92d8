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


@pytest.mark.parametrize("compiled", [True, False])
def test_int_ranges_equal_xxhash_range_by_range(monkeypatch, compiled):
    import numpy as np

    if not compiled:
        monkeypatch.setattr(checksum, "_XXH3", 0)
    starts, ends = [a for a, _ in RANGES], [b for _, b in RANGES]
    got = checksum.int_ranges(memoryview(DATA), np.array(starts), np.array(ends))
    assert got.dtype == np.uint64 and got.tolist() == [xxhash.xxh3_64_intdigest(DATA[a:b]) for a, b in RANGES]
    assert checksum.int_ranges(memoryview(DATA), [], []).tolist() == []


def _moves_verifier(root):
    from gamestore.shard import MANIFEST

    import json

    (shard,) = (root / "shards").iterdir()
    record = json.loads((shard / MANIFEST).read_text())["files"][MOVES_FILE]
    return shard / MOVES_FILE, record


@pytest.mark.parametrize("compiled", [True, False])
def test_the_read_side_checks_batches_in_one_compiled_call_and_finds_damage(tmp_path, monkeypatch, compiled):
    """FileVerifier's message and column checks hash all the ranges of a call at once (compiled: one
    ``hash_ranges`` call per check, not one per range) and, either way, find a flipped byte."""
    from gamestore import _xxh
    from gamestore.errors import ShardCorruptError

    if not compiled:
        monkeypatch.setattr(checksum, "_XXH3", 0)
    calls = []
    real = _xxh.hash_ranges
    monkeypatch.setattr(_xxh, "hash_ranges", lambda data, a, b, fn: calls.append(len(a)) or real(data, a, b, fn))
    root = tmp_path / "s"
    with gamestore.open(root, vectors=synth.VECTORS, fsync=False, batch_rows=128) as store:
        store.write_games(synth.games(8, seed=5))
    path, record = _moves_verifier(root)
    calls.clear()  # the write side's
    ver = checksum.FileVerifier(path, record["checksums"], shard_id="x", name=MOVES_FILE, size=record["bytes"])
    ver.check_all_columns()
    batches, ncols = ver.num_batches, len(record["checksums"]["columns"][0][1]) // 16 - 1
    ver.close()
    assert batches >= 4
    if compiled and checksum._XXH3:
        # head and tail in one call, every message in one, then one call per column covering every batch
        assert calls == [2, batches] + [batches] * ncols
    else:
        assert calls == []
    off, length, _ = record["checksums"]["batches"][2]
    with open(path, "r+b") as f:  # a byte in the middle of batch 2's body
        f.seek(off + length // 2)
        byte = f.read(1)
        f.seek(off + length // 2)
        f.write(bytes([byte[0] ^ 0x41]))
    ver = checksum.FileVerifier(path, record["checksums"], shard_id="x", name=MOVES_FILE, size=record["bytes"])
    with pytest.raises(ShardCorruptError, match="record batch 2"):
        ver.check_all_columns()
    ver.close()
