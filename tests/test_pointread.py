"""get_game's compiled point reads (gamestore/pointread.py, _ext/_decode_point.pxi) equal the batch path and the
records written: any record (hypothesis), every optional field absent or present, empty policies, snapshots,
float16/32/64 vectors and vectors missing from older shards; fallbacks where the point reader does not apply."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import gamestore
from gamestore import pointread, readpath, shard
from gamestore.backend import BACKEND
from gamestore.records import games_equal
from gamestore.shard import LRUCache
from gamestore.testing import synth

from helpers.codec_cases import VECTORS, expected, game_batches, realistic_games, REAL_VECTORS

pytestmark = [pytest.mark.single_backend,  # the compiled backend's read path: the python pass deselects it
              pytest.mark.skipif(BACKEND != "cython", reason="the compiled backend's read path")]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def _fresh_caches(monkeypatch):
    monkeypatch.setattr(shard, "BATCH_CACHE", LRUCache(64 << 20))
    monkeypatch.setattr(shard, "ROW_CACHE", LRUCache(1000))


def _counting(monkeypatch) -> list:
    """Wrap pointread.decode: the list receives one bool per call (True: read by the point reader)."""
    calls: list = []
    real = pointread.decode

    def counted(*args, **kwargs):
        got = real(*args, **kwargs)
        calls.append(got is not None)
        return got

    monkeypatch.setattr(pointread, "decode", counted)
    return calls


def _batch_path(store, game_id, monkeypatch) -> dict:
    """get_game through the whole-batch path (Arrow assembly + BatchDecoder), caches bypassed."""
    with monkeypatch.context() as m:
        m.setattr(pointread, "decode", lambda *a, **k: None)
        m.setattr(shard, "BATCH_CACHE", LRUCache(64 << 20))
        m.setattr(shard, "ROW_CACHE", LRUCache(1000))
        return store.get_game(game_id)


def _read_both_ways(store, games, monkeypatch) -> list[dict]:
    """get_game of each game, checked equal to the whole-batch path's and read by the point reader."""
    calls = _counting(monkeypatch)
    out = []
    for g in games:
        got = store.get_game(g["game_id"])
        assert games_equal(got, _batch_path(store, g["game_id"], monkeypatch))
        out.append(got)
    assert len(calls) == len(games) and all(calls)
    return out


def test_available():
    assert pointread.available()


@SETTINGS
@given(games=game_batches(max_games=4))
def test_any_record_reads_back_through_the_point_reader(games):
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(shard, "BATCH_CACHE", LRUCache(64 << 20))
        calls = _counting(mp)
        with gamestore.open(Path(tmp) / "s", vectors=VECTORS, batch_rows=4) as store:
            store.write_games(games)
            store.flush()
            for g in games:
                got = store.get_game(g["game_id"])
                want = expected(g)
                if "created_at" not in g:
                    want["created_at"] = got["created_at"]  # the write time
                assert games_equal(got, want)
                again = store.get_game(g["game_id"])  # from the cached buffers: equal, new objects
                assert games_equal(again, got) and (not got.get("moves") or again["moves"] is not got["moves"])
        assert all(calls)
        assert len(calls) == 2 * sum(1 for g in games if g.get("moves"))


def test_point_reads_equal_the_batch_path(tmp_path, monkeypatch):
    """Realistic games in many batches: every game read both ways, equal; the point reader did every read."""
    games = realistic_games(30, seed=5, moves_per_game=40)
    with gamestore.open(tmp_path / "s", vectors=REAL_VECTORS, batch_rows=100) as store:
        store.write_games(games[:20])
        store.flush()
        store.write_games(games[20:])
        store.flush()
        for got, g in zip(_read_both_ways(store, games, monkeypatch), games):
            assert games_equal(got["moves"], g["moves"])


def test_shards_without_a_later_vector_and_empty_policies(tmp_path, monkeypatch):
    """A vector declared after the first shard was written is absent from that shard; empty and missing
    policies and searches, snapshots and players read back as written."""
    base = synth.games(3, seed=9)
    for g in base:
        g["snapshots"] = [{"move_number": 0, "state": {"board": [1, 2]}, "state_hash": "h"}]
        g["moves"][0]["policy"] = {}
        g["moves"][1].pop("policy", None)
        g["moves"][1].pop("search", None)
        g["moves"][2]["search"] = {"q_values": {}, "root_value": None}
    with gamestore.open(tmp_path / "s", vectors=synth.VECTORS) as store:
        store.write_games(base[:1])
        store.flush()
    more = {**synth.VECTORS, "extra": gamestore.VectorSpec("extra", (2, 2), "float64")}
    for m in base[1]["moves"]:
        m.setdefault("vectors", {})["extra"] = [[1.0, 2.0], [3.0, 4.0]]
    with gamestore.open(tmp_path / "s", vectors=more) as store:
        store.write_games(base[1:])
        store.flush()
        for got in _read_both_ways(store, base, monkeypatch):
            assert got["moves"][0]["policy"] == {} and "policy" not in got["moves"][1]
            assert got["moves"][2]["search"]["q_values"] == {} and got["snapshots"][0]["state_hash"] == "h"
        second = store.get_game(base[1]["game_id"])["moves"][0]["vectors"]
        assert second["extra"].tolist() == [[1.0, 2.0], [3.0, 4.0]] and second["extra"].dtype == "float64"
        assert "extra" not in store.get_game(base[0]["game_id"])["moves"][0]["vectors"]


def test_unsupported_layout_and_missing_libzstd_fall_back(tmp_path, monkeypatch):
    games = synth.games(2, seed=4)
    with gamestore.open(tmp_path / "s", vectors=synth.VECTORS) as store:
        store.write_games(games)
        store.flush()

        def unsupported(*args):
            raise pointread.Unsupported("a layout the point reader does not handle")

        monkeypatch.setattr(pointread, "_make", unsupported)
        assert games_equal(store.get_game(games[0]["game_id"]), games[0])
        monkeypatch.undo()
        monkeypatch.setattr(shard, "BATCH_CACHE", LRUCache(64 << 20))
        monkeypatch.setattr(pointread, "_decode_mod", None)
        assert games_equal(store.get_game(games[1]["game_id"]), games[1])


def _as_py_rows(games) -> list[dict]:
    cols = [(f.name, c.combine_chunks()) for f, c in zip(games.schema, games.columns)]
    return [{name: col[i].as_py() for name, col in cols} for i in range(games.num_rows)]


def _same(a, b) -> bool:
    """Equal values of equal types, floats bit for bit (NaN, -0.0)."""
    return type(a) is type(b) and repr(a) == repr(b)


@SETTINGS
@given(games=game_batches(max_games=4))
def test_game_rows_equal_as_py(games):
    """The compiled game-row reader gives what ``as_py()`` of every column gives, for any record."""
    with tempfile.TemporaryDirectory() as tmp:
        with gamestore.open(Path(tmp) / "s", vectors=VECTORS) as store:
            store.write_games(games)
            store.flush()
            for reader in store._catalog.readers():
                rows = readpath.compiled_rows(reader.games)
                want = _as_py_rows(reader.games)
                assert [_same(rows.row(i), w) for i, w in enumerate(want)] == [True] * len(want)


def test_game_rows_of_the_frozen_fixtures(fixtures_dir=Path(__file__).parent / "fixtures"):
    stores = sorted(fixtures_dir.glob("format_v*/store"))
    assert stores
    for st in stores:
        for d in sorted((st / "shards").iterdir()):
            reader = shard.ShardReader.at(d)
            rows = readpath.compiled_rows(reader.games)
            assert [_same(rows.row(i), w) for i, w in enumerate(_as_py_rows(reader.games))] == [True] * rows.num_rows
            with pytest.raises(IndexError):
                rows.row(rows.num_rows)
            reader.close()


# ---------------------------------------------------------------------------
# Prefix reads: only the part of each buffer up to the game's last row is decompressed
# ---------------------------------------------------------------------------
def _place(store, game_id):
    """(reader, batch index, first row, stop row) of a game's moves."""
    loc = store._catalog.locate(game_id)
    reader = store._catalog.reader(loc.shard_id)
    index = reader.batch_index(loc.move_offset)
    start = loc.move_offset - reader.batch_starts[index]
    return reader, index, start, start + loc.num_moves


def _decoded(store, game_id) -> int:
    """Bytes the cached scratch of the game's batch holds decoded."""
    reader, index, _, _ = _place(store, game_id)
    return shard.BATCH_CACHE.get(reader.batch_key(index)).decoded


@pytest.fixture
def whole_buffers():
    """Point reads without libzstd's streaming API (every needed buffer decompressed whole), restored after."""
    addresses = pointread._zstd_addresses()
    assert addresses is not None and len(addresses) == 7  # the system libzstd exports the streaming API
    pointread._decode_mod.set_zstd(*addresses[:4])
    try:
        yield
    finally:
        pointread._decode_mod.set_zstd(*addresses)


@pytest.fixture(scope="module")
def one_batch(tmp_path_factory):
    """12 realistic games of 100 moves in one batch of 1,200 rows: its larger buffers (search entries, the
    49-float vectors) are zstd frames of more than one block."""
    games = realistic_games(12, seed=7, moves_per_game=100)
    path = tmp_path_factory.mktemp("prefix") / "s"
    with gamestore.open(path, vectors=REAL_VECTORS, batch_rows=1200) as store:
        store.write_games(games)
        store.flush()
    return path, games


@pytest.fixture(scope="module")
def one_batch_frames(tmp_path_factory):
    """``one_batch`` with every buffer a zstd frame (none stored uncompressed, as before format versions 4 and 5)."""
    from gamestore import ipc_write

    games = realistic_games(12, seed=7, moves_per_game=100)
    path = tmp_path_factory.mktemp("frames") / "s"
    before = ipc_write.RAW_BELOW, ipc_write.RAW_INDICES_BELOW
    ipc_write.RAW_BELOW = ipc_write.RAW_INDICES_BELOW = 0
    try:
        with gamestore.open(path, vectors=REAL_VECTORS, batch_rows=1200) as store:
            store.write_games(games)
            store.flush()
    finally:
        ipc_write.RAW_BELOW, ipc_write.RAW_INDICES_BELOW = before
    return path, games


def test_prefix_reads_of_first_middle_and_last_games_of_a_batch(one_batch, monkeypatch):
    """Every game of a batch, read in several orders from fresh and shared caches, equals the whole-batch path;
    the first game's read decodes less of the batch than the last one's, and reading the last game after the
    first decodes the rest into the cached buffers."""
    path, games = one_batch
    ids = [g["game_id"] for g in games]
    with gamestore.open(path, create=False) as store:
        assert {_place(store, g)[:2] == _place(store, ids[0])[:2] for g in ids} == {True}  # one batch
        assert _place(store, ids[0])[2] == 0 and _place(store, ids[-1])[3] == 1200
        want = {g: _batch_path(store, g, monkeypatch) for g in ids}
        assert pointread.prefix_reads()
        calls = _counting(monkeypatch)
        for order in (ids, ids[::-1], [ids[6], ids[0], ids[11], ids[5]]):
            monkeypatch.setattr(shard, "BATCH_CACHE", LRUCache(64 << 20))
            for gid in order:
                assert games_equal(store.get_game(gid), want[gid])
        assert len(calls) == 2 * len(ids) + 4 and all(calls)
        for got, written in zip(store.get_game(ids[6])["moves"], games[6]["moves"]):  # maps in written order
            for name in ("q_values", "visit_counts", "prior_policy"):
                assert list(got.get("search", {}).get(name, {}).items()) == \
                    list(written.get("search", {}).get(name, {}).items())
            assert list(got.get("policy", {}).items()) == list(written.get("policy", {}).items())
        sizes = {}
        for gid in (ids[0], ids[6], ids[-1]):
            monkeypatch.setattr(shard, "BATCH_CACHE", LRUCache(64 << 20))
            store.get_game(gid)
            sizes[gid] = _decoded(store, gid)
        assert sizes[ids[0]] < sizes[ids[6]] < sizes[ids[-1]]
        store.get_game(ids[0])  # after the last game: its cached buffers serve, nothing decoded again
        assert _decoded(store, ids[0]) == sizes[ids[-1]]
        monkeypatch.setattr(shard, "BATCH_CACHE", LRUCache(64 << 20))
        store.get_game(ids[0])
        store.get_game(ids[-1])  # the first game's cached prefix, decoded further
        assert _decoded(store, ids[-1]) == sizes[ids[-1]]
        assert games_equal(store.get_game(ids[6]), want[ids[6]])


def test_whole_buffers_without_the_streaming_api(one_batch_frames, monkeypatch, whole_buffers):
    """Every frame a read needs decoded whole: the first game's read decodes as much as the last one's (a buffer
    stored uncompressed is copied only up to the prefix either way: none here)."""
    path, games = one_batch_frames
    with gamestore.open(path, create=False) as store:
        assert not pointread.prefix_reads()
        calls = _counting(monkeypatch)
        first = store.get_game(games[0]["game_id"])
        whole = _decoded(store, games[0]["game_id"])
        assert games_equal(first, _batch_path(store, games[0]["game_id"], monkeypatch))
        assert games_equal(store.get_game(games[-1]["game_id"]), _batch_path(store, games[-1]["game_id"], monkeypatch))
        assert _decoded(store, games[-1]["game_id"]) == whole and calls == [True, True]


def _second_block(frame: bytes) -> int:
    """Position of the second block header of a zstd frame (the first block is not the last)."""
    fhd = frame[4]
    single, fcs, did = (fhd >> 5) & 1, (0, 2, 4, 8)[fhd >> 6], (0, 1, 2, 4)[fhd & 3]
    pos = 5 + (0 if single else 1) + did + (1 if single and not fcs else fcs)
    head = int.from_bytes(frame[pos:pos + 3], "little")
    assert not head & 1, "a frame of one block"
    return pos + 3 + (1 if (head >> 1) & 3 == 1 else head >> 3)


@pytest.mark.filterwarnings("ignore::gamestore.errors.DamagedShardWarning")  # the shard is quarantined
def test_damage_past_the_prefix_costs_only_the_games_that_reach_it(one_batch_frames, tmp_path, monkeypatch):
    """A frame damaged in its second block, checksums recomputed (a crafted shard): the first game, whose rows
    end in the first block, reads back equal; a game whose rows reach the damage is a ShardCorruptError naming
    the shard and the batch."""
    import shutil

    from gamestore.errors import ShardCorruptError
    from helpers.crafted import record_checksums

    src, games = one_batch_frames  # the random float values of the vectors are a two-block frame there
    path = tmp_path / "s"
    shutil.copytree(src, path)
    with gamestore.open(path, create=False) as store:
        reader, index, _, _ = _place(store, games[0]["game_id"])
        sid, fast = reader.shard_id, reader.fast_reader()
        places, _, _, _ = pointread.field_places(fast.schema)
        _, _, bufs, body = fast.point_layout(index)
        k = places["vec_heuristic_features.item"][1] + 1  # the float values
        at = body + int(bufs[2 * k]) + 8
        frame = bytes(fast.view[at:at + int(bufs[2 * k + 1]) - 8])
        block = at + _second_block(frame)
    moves = path / "shards" / sid / shard.MOVES_FILE
    data = bytearray(moves.read_bytes())
    data[block] |= 0b110  # block type 3: reserved, a decoder must reject it
    moves.write_bytes(bytes(data))
    record_checksums(path / "shards" / sid)
    with gamestore.open(path, create=False) as store:
        assert games_equal(store.get_game(games[0]["game_id"]), games[0])
        with pytest.raises(ShardCorruptError, match="moves.arrow batch 0") as err:
            store.get_game(games[-1]["game_id"])
        assert err.value.shard_id == sid


def test_frames_split_with_the_helper_thread_read_the_same(one_batch, monkeypatch):
    """A fresh batch's frames decoded by the calling thread and the helper thread together (_decode_helper.pxi)
    give the same games as the calling thread alone and as the whole-batch path, from fresh and cached buffers."""
    mod = pointread._decode_mod
    path, games = one_batch
    ids = [g["game_id"] for g in games]
    was = mod.set_point_helper(True)
    try:
        with gamestore.open(path, create=False) as store:
            want = {g: _batch_path(store, g, monkeypatch) for g in (ids[0], ids[5], ids[-1])}
            for on in (True, False, True):
                mod.set_point_helper(on)
                for gid in want:
                    monkeypatch.setattr(shard, "BATCH_CACHE", LRUCache(64 << 20))
                    runs = mod.point_helper_runs()
                    assert games_equal(store.get_game(gid), want[gid])
                    assert mod.point_helper_runs() == runs + on  # split only with the helper on
                    assert games_equal(store.get_game(ids[3]), _batch_path(store, ids[3], monkeypatch))
    finally:
        mod.set_point_helper(was)


def _read_in_child(path: str, gid: str, out) -> None:
    with gamestore.open(path, create=False) as store:
        shard.BATCH_CACHE.clear()
        out.put(len(store.get_game(gid)["moves"]))


def test_the_helper_thread_after_a_fork(one_batch):
    """A child forked after the parent's reads used the helper thread starts a helper of its own (no wait for
    the parent's thread, which the child does not have)."""
    import multiprocessing

    mod = pointread._decode_mod
    path, games = one_batch
    was = mod.set_point_helper(True)
    try:
        with gamestore.open(path, create=False) as store:
            runs = mod.point_helper_runs()
            store.get_game(games[0]["game_id"])
            assert mod.point_helper_runs() == runs + 1
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        child = ctx.Process(target=_read_in_child, args=(str(path), games[-1]["game_id"], out))
        child.start()
        child.join(120)
        assert child.exitcode == 0
        assert out.get(timeout=5) == len(games[-1]["moves"])
    finally:
        mod.set_point_helper(was)


def _key_order(obj):
    """The keys of every dict in ``obj``, in their order, nested as ``obj`` is (games_equal ignores the order)."""
    if isinstance(obj, dict):
        return [(k, _key_order(v)) for k, v in obj.items()]
    if isinstance(obj, list):
        return [_key_order(v) for v in obj]
    return None


def test_pipelined_parts_keep_every_dicts_key_order(tmp_path, monkeypatch):
    """With the helper thread on, a fresh batch's move dicts are built part by part (base fields, policy, search,
    vectors, extra; each part over all rows) while the helper decompresses the next parts' buffers: the records,
    and the order of the keys of every dict in them, are those of the calling thread alone and of the whole-batch
    path (BatchDecoder._row, one row at a time)."""
    mod = pointread._decode_mod
    games = realistic_games(12, seed=11, moves_per_game=100)
    for g in games:
        for n, m in enumerate(g["moves"]):
            if n % 7 == 3:  # extra fields (extra_json, the last part), after the vectors
                m["engine_note"] = {"k": n, "s": "x" * (n % 5)}
                m["zz_flag"] = n % 2 == 0
    path = tmp_path / "s"
    with gamestore.open(path, vectors=REAL_VECTORS, batch_rows=1200) as store:
        store.write_games(games)
        store.flush()
    ids = [g["game_id"] for g in games]
    was = mod.set_point_helper(True)
    try:
        with gamestore.open(path, create=False) as store:
            for gid in (ids[0], ids[6], ids[-1]):
                want = _batch_path(store, gid, monkeypatch)
                for on in (True, False):
                    mod.set_point_helper(on)
                    monkeypatch.setattr(shard, "BATCH_CACHE", LRUCache(64 << 20))
                    runs = mod.point_helper_runs()
                    got = store.get_game(gid)
                    assert mod.point_helper_runs() == runs + on
                    assert games_equal(got, want)
                    assert _key_order(got) == _key_order(want)
                    keys = [list(m) for m in got["moves"]]
                    assert any(k[-5:] == ["policy", "search", "vectors", "engine_note", "zz_flag"] for k in keys)
    finally:
        mod.set_point_helper(was)


def test_a_read_while_another_holds_the_helper_decodes_alone(one_batch, monkeypatch):
    """The helper serves one read at a time, for the whole of its dict building: a read in another thread meanwhile
    (here: between two parts of the first, when it hands the GIL over) decodes its batch alone, equal."""
    import sys
    import threading

    mod = pointread._decode_mod
    path, games = one_batch
    ids = [g["game_id"] for g in games]
    was = mod.set_point_helper(True)
    try:
        with gamestore.open(path, create=False) as store:
            want = {g: _batch_path(store, g, monkeypatch) for g in (ids[2], ids[-1])}
            got: dict = {}
            store.get_game(ids[0])  # the file's point reader set up
            monkeypatch.setattr(shard, "BATCH_CACHE", LRUCache(64 << 20))

            def other() -> None:
                reader, index, start, stop = _place(store, ids[2])
                fast = reader.fast_reader()
                length, nodes, bufs, body = fast.point_layout(index)
                got[ids[2]], _ = fast.point.decode(nodes, bufs, length, body, start, stop, None)

            switch = sys.getswitchinterval()
            sys.setswitchinterval(1e-6)  # hand the GIL over at every chance
            try:
                t = threading.Thread(target=other)
                t.start()
                got[ids[-1]] = store.get_game(ids[-1])
                t.join()
            finally:
                sys.setswitchinterval(switch)
            assert games_equal(got[ids[-1]], want[ids[-1]])
            assert games_equal({**want[ids[2]], "moves": got[ids[2]]}, want[ids[2]])
    finally:
        mod.set_point_helper(was)
