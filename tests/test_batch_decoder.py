"""Decoding row ranges of one moves batch in place, and the point-read caches of ShardReader."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gamestore
from gamestore import shard
from gamestore.testing import synth
from gamestore.backend import BACKENDS, get_backend
from gamestore.errors import ShardCorruptError
from gamestore.records import games_equal
from gamestore.shard import LRUCache

from helpers.codec_cases import REAL_VECTORS, VECTORS, move_lists, realistic_games
from helpers.crafted import CRAFTS

PY = get_backend("python")
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(games=st.lists(move_lists(), min_size=1, max_size=4), data=st.data())
def test_any_row_range_equals_the_reference(games, data):
    """Every backend's batch decoder, on any row range of a (possibly sliced) batch, equals the reference."""
    ids = [f"g{i}" for i in range(len(games))]
    table, _ = PY.encode_moves(ids, games, VECTORS)
    n = table.num_rows
    expected = PY.decode_moves(table, VECTORS)
    lo = data.draw(st.integers(0, n))
    batch = table.combine_chunks().to_batches()[0].slice(lo) if n else pa.RecordBatch.from_pylist([], schema=table.schema)
    start = data.draw(st.integers(0, batch.num_rows))
    stop = data.draw(st.integers(start, batch.num_rows))
    for be in map(get_backend, BACKENDS):
        decoder = be.batch_decoder(batch, VECTORS, {})
        assert decoder.num_rows == batch.num_rows
        assert games_equal(decoder.decode(start, stop), expected[lo + start:lo + stop]), be.name


def test_strings_shared_across_batches_of_one_file(backend, tmp_path):
    """Batches of one IPC file share their dictionaries: one ``strings`` dict serves them all."""
    games = realistic_games(6, moves_per_game=30)
    with gamestore.open(tmp_path / "s", vectors=REAL_VECTORS, batch_rows=50) as store:
        store.write_games(games)
        store.flush()
        reader = store._catalog.readers()[0]
        assert reader.num_batches > 1
        strings: dict = {}
        decoded = []
        for i in range(reader.num_batches):
            batch = reader.batch(i)
            decoded += backend.batch_decoder(batch, reader.vectors, strings).decode(0, batch.num_rows)
        if backend.name == "cython":
            assert strings and all(len(t) > 0 for k, t in strings.items() if k[0] == "policy.key")
        expected = [m for g in games for m in g["moves"]]
        assert games_equal(decoded, expected)


def test_decoder_rejects_other_batches():
    cy = get_backend("cython")
    with pytest.raises(ValueError, match="lacks column"):
        cy.batch_decoder(pa.record_batch([pa.array([1, 2], pa.int32())], names=["move_number"]), {})
    table, _ = PY.encode_moves(["g"], [[{"move_number": 0}]], VECTORS)
    batch = table.to_batches()[0]
    wrong = {"feat": VECTORS["planes"].__class__("feat", (7,), "float32")}
    with pytest.raises(ValueError, match="vector column"):
        cy.batch_decoder(batch, wrong)
    with pytest.raises(IndexError):
        cy.batch_decoder(batch, VECTORS).decode(0, 2)


def test_lru_cache_bounds():
    cache = LRUCache(10)
    for i in range(5):
        cache.put(i, str(i), 3)
    assert len(cache) == 3 and cache.size == 9 and cache.get(0) is None and cache.get(4) == "4"
    cache.get(2)  # now the most recent
    cache.put(9, "9", 3)
    assert cache.get(3) is None and cache.get(2) == "2"
    cache.put("big", "x", 11)  # larger than the cache: not kept, nothing evicted
    assert cache.get("big") is None and len(cache) == 3
    cache.clear()
    assert len(cache) == 0 and cache.size == 0


def test_get_game_through_the_caches(tmp_path, monkeypatch):
    """Repeated and neighbouring reads come from the caches and still hand out new, equal objects."""
    monkeypatch.setattr(shard, "BATCH_CACHE", LRUCache(64 << 20))
    monkeypatch.setattr(shard, "ROW_CACHE", LRUCache(1000))
    games = synth.games(12, seed=3)
    path = tmp_path / "s"
    with gamestore.open(path, vectors=synth.VECTORS, batch_rows=400) as store:
        store.write_games(games)
        store.flush()
    with gamestore.open(path, create=False) as store:
        for g in games:
            assert games_equal(store.get_game(g["game_id"]), g)
        batches = len(shard.BATCH_CACHE)
        assert batches == store._catalog.readers()[0].num_batches and len(shard.ROW_CACHE) == len(games)
        first = store.get_game(games[0]["game_id"])
        first["moves"][0]["policy"].clear()
        first["players"][0]["player_type"] = "changed"
        first["metadata"]["x"] = 1
        again = store.get_game(games[0]["game_id"])
        assert games_equal(again, games[0]) and len(shard.BATCH_CACHE) == batches
        assert again["moves"][0]["vectors"]["heuristic_features"] is not first["moves"][0]["vectors"]["heuristic_features"]
    # a shard file rewritten in place is a different cache entry (same path, new mtime)
    moves_file = next((path / "shards").iterdir()) / shard.MOVES_FILE
    st = moves_file.stat()
    os.utime(moves_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    with gamestore.open(path, create=False) as store:
        assert games_equal(store.get_game(games[0]["game_id"]), games[0])
        assert len(shard.BATCH_CACHE) == batches + 1


def test_backends_agree_on_read_game(backend, tmp_path):
    games = synth.games(3, seed=5, board_type="hex8")
    with gamestore.open(tmp_path / "s", vectors=synth.VECTORS) as store:
        store.write_games(games)
        store.flush()
        for g in games:
            got = store.get_game(g["game_id"])
            assert games_equal(got, g)
            vec = got["moves"][-1]["vectors"]["heuristic_features"]
            assert isinstance(vec, np.ndarray) and vec.flags.writeable and vec.dtype == np.float32


def test_fast_batch_reader_equals_arrow(tmp_path):
    """ipc_batch reads every batch of both shard files exactly as Arrow's reader does."""
    import pyarrow.ipc as ipc

    from gamestore.ipc_batch import Unsupported, fast_reader

    pytest.importorskip("zstandard")
    games = realistic_games(5, moves_per_game=40) + synth.games(4, seed=9, snapshot_every=10)
    games[0]["moves"] = []
    games[1]["initial_state"] = b"\x00blob"
    sparse = {"game_id": "sparse", "board_type": "square8", "num_players": 2, "moves": [{"player": 1, "move_type": "a"}]}
    with gamestore.open(tmp_path / "s", vectors={**REAL_VECTORS, **synth.VECTORS}, batch_rows=64) as store:
        store.write_games(games)
        store.flush()
        store.write_games([sparse])  # one row: all-null columns without data buffers
        store.flush()
    for shard_dir, name in [(d, n) for d in (tmp_path / "s" / "shards").iterdir() for n in (shard.MOVES_FILE, shard.GAMES_FILE)]:
        path = str(shard_dir / name)
        reader = ipc.open_file(pa.memory_map(path))
        fast = fast_reader(path, reader)
        assert fast is not None
        assert reader.num_record_batches > 0
        for i in range(reader.num_record_batches):
            got = fast.read(i)
            got.validate(full=True)
            assert got.equals(reader.get_record_batch(i)), (name, i)
        fast.close()
    # an uncompressed IPC file is left to Arrow's reader
    plain = tmp_path / "plain.arrow"
    table = pa.table({"a": [1, 2]})
    with ipc.new_file(str(plain), table.schema) as w:
        w.write_table(table)
    fast = fast_reader(str(plain), ipc.open_file(pa.memory_map(str(plain))))
    assert fast is not None
    with pytest.raises(Unsupported, match="not zstd"):
        fast.read(0)
    assert fast_reader(str(tmp_path / "s" / "MISSING"), reader) is None


@pytest.fixture(scope="module")
def real_batch() -> pa.RecordBatch:
    games = realistic_games(3, moves_per_game=6)
    table, _ = PY.encode_moves([g["game_id"] for g in games], [g["moves"] for g in games], REAL_VECTORS)
    return table.combine_chunks().to_batches()[0]


@pytest.mark.parametrize("craft", sorted(CRAFTS))
@pytest.mark.parametrize("name", BACKENDS)
def test_crafted_batch_is_a_shard_corrupt_error(real_batch, craft, name):
    """Offsets, indices and texts out of range in a batch that passes Arrow's cheap validation (what a checksum
    computed over the damage lets through): every backend's decoder raises ShardCorruptError, never reads out of
    bounds (before the bounds checks the compiled decoder segfaulted or returned garbage on most of these, the
    reference crashed in Arrow or raised SystemError)."""
    batch = CRAFTS[craft](real_batch)
    batch.validate()  # the damage is inside: the structure Arrow checks cheaply is intact
    be = get_backend(name)
    with pytest.raises(ShardCorruptError, match="damaged moves batch"):
        be.batch_decoder(batch, REAL_VECTORS, {}).decode(0, batch.num_rows)
    with pytest.raises(ShardCorruptError, match="damaged moves batch"):
        be.decode_moves(batch, REAL_VECTORS)


@pytest.mark.parametrize("name", BACKENDS)
def test_structurally_invalid_batch_is_a_shard_corrupt_error(real_batch, name):
    """A batch read from damaged IPC bytes without Arrow's validation (Arrow's readers do not validate): a
    dictionary whose last offset runs past its strings.  Both decoders validate first: ShardCorruptError."""
    import io

    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, real_batch.schema) as w:  # uncompressed: the offsets are plain bytes
        w.write_batch(real_batch)
    data = bytearray(sink.getvalue())
    offsets = real_batch.column("policy").values.field("key").dictionary.buffers()[1].to_pybytes()
    at = data.find(offsets)
    assert at > 0 and data.find(offsets, at + 1) < 0
    data[at + len(offsets) - 4:at + len(offsets)] = np.array([1 << 24], np.int32).tobytes()
    batch = pa.ipc.open_stream(bytes(data)).read_next_batch()
    with pytest.raises(pa.ArrowInvalid):
        batch.validate()
    with pytest.raises(ShardCorruptError, match="damaged moves batch"):
        get_backend(name).batch_decoder(batch, REAL_VECTORS, {}).decode(0, batch.num_rows)
