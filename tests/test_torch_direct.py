"""PositionDataset's direct decoding of moves batches (gamestore/positions/direct.py) equals Arrow's reader."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gamestore  # noqa: E402
from gamestore.positions import direct  # noqa: E402
from gamestore.testing import synth  # noqa: E402
from gamestore.torch import PositionDataset  # noqa: E402

pytestmark = [pytest.mark.torch]


def _games() -> list[dict]:
    """Synthetic games with every policy and vector shape the decoder meets: keyed, action ids, mixed keys and
    ids, probabilities float32 cannot hold, null and empty policies, moves without a player or a vector."""
    games = synth.games(12, board_type="square8", num_players=2, seed=5)
    for g, game in enumerate(games):
        for i, move in enumerate(game["moves"]):
            policy = move.get("policy")
            if g % 4 == 1 and policy:  # action ids only
                move["policy"] = {j * 7 + i % 3: p for j, p in enumerate(policy.values())}
            elif g % 4 == 2 and policy and i % 2:  # keys and ids in one policy, inexact probabilities
                items = list(policy.items())
                move["policy"] = {**dict(items[: len(items) // 2]), 1000 + i: 0.1, 1001 + i: 1 / 3}
            elif g % 4 == 3 and i % 5 == 0:
                move["policy"] = None
            if g % 3 == 0 and i % 7 == 3:
                move["player"] = None
            if g % 2 and i % 6 == 1:
                move.get("vectors", {}).pop("heuristic_features", None)
    return games


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("torchdirect") / "store"
    with gamestore.open(path, shard_moves=1500, batch_rows=200, fsync=False) as store:
        store.write_games(_games())
        store.flush()
    return path


def _epoch(path, **options) -> list:
    with PositionDataset(path, batch_size=64, seed=3, **options) as ds:
        return list(ds)


def _arrow_only(monkeypatch) -> None:
    def unsupported(self, index, vectors, pool=None):
        raise direct.Unsupported("test: Arrow's reader for every batch")

    monkeypatch.setattr(direct.DirectDecoder, "read", unsupported)


def _equal(a: list, b: list) -> None:
    assert len(a) == len(b) and a
    for x, y in zip(a, b):
        assert list(x) == list(y)
        for k in x:
            if isinstance(x[k], torch.Tensor):
                assert x[k].dtype == y[k].dtype and torch.equal(x[k], y[k]), k
            else:
                assert x[k].tolist() == y[k].tolist(), k


@pytest.mark.parametrize("options", [
    {},
    {"policy_dtype": "float64", "return_keys": True},
    {"action_map": {"nothing": 0}, "unknown_keys": "ignore", "policy_only": True},
])
def test_direct_decoding_equals_arrows_reader(store_path, monkeypatch, options):
    used = []
    real = direct.DirectDecoder.read

    def counting(self, index, vectors, pool=None):
        used.append(index)
        return real(self, index, vectors, pool)

    monkeypatch.setattr(direct.DirectDecoder, "read", counting)
    fast = _epoch(store_path, **options)
    assert used  # the direct path ran
    _arrow_only(monkeypatch)
    _equal(fast, _epoch(store_path, **options))


def test_direct_batches_match_the_records(store_path):
    """Exact probabilities (float64), action ids and keys, null players and missing vectors, against get_game."""
    batches = _epoch(store_path, policy_dtype="float64", return_keys=True)
    with gamestore.open(store_path, create=False) as store:
        games = {}
        seen = 0
        for batch in batches:
            for i in range(len(batch["move_number"])):
                gid, mn = batch["game_id"][i], int(batch["move_number"][i])
                if gid not in games:  # one get_game per game (setdefault would call it for every position)
                    games[gid] = {m["move_number"]: m for m in store.get_game(gid)["moves"]}
                move = games[gid][mn]
                policy = move.get("policy") or {}
                n = len(policy)
                assert int(batch["player"][i]) == (-1 if move.get("player") is None else move["player"])
                assert batch["policy_prob"][i, :n].tolist() == list(policy.values())
                ids = [k if isinstance(k, int) else -1 for k in policy]
                assert batch["policy_index"][i, :n].tolist() == ids
                assert batch["policy_keys"][i] == [k if isinstance(k, str) else None for k in policy]
                vec = (move.get("vectors") or {}).get("heuristic_features")
                assert bool(batch["vec_heuristic_features_mask"][i]) == (vec is not None)
                if vec is not None:
                    np.testing.assert_array_equal(batch["vec_heuristic_features"][i].numpy(), vec)
                seen += 1
        assert seen == store.count_moves()


def test_a_batch_laid_out_otherwise_falls_back_to_arrow(store_path, monkeypatch):
    """A batch the decoder does not handle is read with Arrow's reader; the others stay direct."""
    real = direct.DirectDecoder.read
    calls = []

    def odd(self, index, vectors, pool=None):
        calls.append(index)
        if index % 2:
            raise direct.Unsupported("test")
        return real(self, index, vectors, pool)

    monkeypatch.setattr(direct.DirectDecoder, "read", odd)
    mixed = _epoch(store_path)
    assert any(i % 2 for i in calls) and any(i % 2 == 0 for i in calls)
    _arrow_only(monkeypatch)
    _equal(mixed, _epoch(store_path))


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_frozen_format_stores_decode_directly_and_equal_arrow(tmp_path, monkeypatch, version):
    """Shards of every published format version take the direct path, with Arrow's batches."""
    import shutil
    from pathlib import Path

    path = tmp_path / "store"
    shutil.copytree(Path(__file__).parent / "fixtures" / f"format_v{version}" / "store", path)
    with PositionDataset(path, batch_size=64, shuffle=False) as ds:
        fast = list(ds)
        assert ds._reader is not None and all(sh.direct is not None for sh in ds._reader._open.values())
    _arrow_only(monkeypatch)
    _equal(fast, _epoch(path, shuffle=False))


@pytest.mark.single_backend  # the compiled path (the python backend's pass runs zstandard's throughout)
def test_compiled_decompression_equals_zstandards(store_path, monkeypatch):
    """The compiled path (libzstd into a reused buffer) yields what zstandard's multi-frame call does."""
    assert direct._unpacker() is not None
    options = {"policy_dtype": "float64", "return_keys": True}
    fast = _epoch(store_path, **options)
    monkeypatch.setattr(direct, "_unpacker", lambda: None)
    _equal(fast, _epoch(store_path, **options))


def test_buffer_pool_reuses_a_buffer_only_once_nothing_views_it():
    pool = direct.BufferPool(keep=3)
    a = pool.take(1000)
    assert a.size >= 1000 and a.dtype == np.uint8
    first = id(a)  # the pool keeps it: the id stays its own
    view = np.frombuffer(a[10:20], dtype=np.int16)  # a view of a view, as the decoder makes them
    del a
    b = pool.take(1000)  # the first is still viewed: a new one
    assert id(b) != first and not np.shares_memory(b, view)
    assert id(pool.take(1000)) not in (first, id(b))  # b is held here
    del view
    assert id(pool.take(500)) == first  # free again: taken again
    d = pool.take(10**6)  # larger than any: new
    assert d.size >= 10**6
    held = [pool.take(10) for _ in range(4)]  # all held: new ones, past ``keep`` only held ones are kept
    assert len({id(x) for x in held}) == 4 and len(pool._bufs) <= 3 + 4


@pytest.mark.parametrize("column, message", [("off", "values buffer shorter"), ("bitmap", "validity bitmap missing")])
def test_a_buffer_too_short_for_its_column_is_a_typed_error(store_path, column, message):
    """The lengths the decoder's recipe checks once per batch (a column's body buffer pointed at one too short, or
    a bitmap's at none): ShardCorruptError naming the shard and the batch, on either backend's path."""
    from gamestore.errors import ShardCorruptError

    with PositionDataset(store_path, batch_size=64, seed=3) as ds:
        next(iter(ds))
        sh = next(s for s in ds._reader._open.values() if s.direct is not None)
        dec = sh.direct
        nodes = dec.layouts.nodes
        index = next(i for i in range(len(dec.layouts.rows)) if nodes[i, dec._at["policy"][0], 1])  # a null policy
        _, pb = dec._at["player"]
        _, qb = dec._at["policy"]
        bufs = dec.layouts.bufs
        if column == "off":
            bufs[index, qb + 1] = bufs[index, pb + 1]  # the offsets (rows + 1 int32) read from the player's bytes
        else:
            bufs[index, qb, 1] = 0  # the policy list's validity bitmap absent
        dec._recipes.clear()
        with pytest.raises(ShardCorruptError, match=f"batch {index} unreadable: {message}") as err:
            sh.batch(index, {}, ds._reader._buffers)
        assert err.value.shard_id == sh.shard_id


def test_buffer_pool_never_reuses_a_buffer_a_column_field_still_views():
    """The decoder's columns are fields of one structured view of the pool's buffer: while any of them (or an array
    a user made from it) is alive, the buffer is never handed out again; once all are gone it is."""
    pool = direct.BufferPool(keep=8)
    a = pool.take(4096)
    first = id(a)
    layout = np.dtype({"names": ["x", "y"], "formats": [(np.int32, (16,)), (np.float32, (4, 2))],
                       "offsets": [0, 64], "itemsize": 128})
    whole = np.ndarray((), layout, buffer=a)
    x, y = whole["x"], whole["y"]
    user = torch.from_numpy(y)  # a tensor a user keeps
    del a, whole, x, y
    others = [pool.take(4096) for _ in range(3)]
    assert first not in {id(b) for b in others}
    del others
    assert id(pool.take(4096)) != first  # still viewed by the tensor
    user.add_(1)  # and its memory still its own
    del user
    assert id(pool.take(4096)) == first


@pytest.mark.single_backend  # the compiled helper itself (the python backend's pass never calls it)
def test_compiled_moves_rows_equal_numpy():
    from gamestore import _positions

    rng = np.random.default_rng(1)
    for rows in (0, 1, 7, 64, 1001):
        player = rng.integers(-3, 4, rows).astype(np.int8)
        off = np.concatenate(([0], np.cumsum(rng.integers(0, 5, rows)))).astype(np.int32)
        pvalid = np.packbits(rng.random(rows) < 0.8, bitorder="little")
        lvalid = np.packbits(rng.random(rows) < 0.7, bitorder="little")
        for pv, lv in ((None, None), (pvalid, None), (None, lvalid), (pvalid, lvalid)):
            got = _positions.moves_rows(player, pv, off, lv, int(off[-1]))
            assert got is not None
            want_player = player.astype(np.int64)
            want_lens = off[1:] - off[:-1]
            if pv is not None:
                want_player[~np.unpackbits(pv, count=rows, bitorder="little").view(bool)] = -1
            if lv is not None:
                want_lens[~np.unpackbits(lv, count=rows, bitorder="little").view(bool)] = 0
            assert got[0].dtype == np.int64 and got[1].dtype == np.int32
            np.testing.assert_array_equal(got[0], want_player)
            np.testing.assert_array_equal(got[1], want_lens)
        if rows:
            assert _positions.moves_rows(player, None, off, None, int(off[-1]) - 1) is None  # past the entries
            back = off.copy()
            back[rows // 2 + 1] = back[rows // 2] - 1  # out of order
            assert _positions.moves_rows(player, None, back, None, int(off[-1])) is None
            neg = off.copy()
            neg[0] = -1
            assert _positions.moves_rows(player, None, neg, None, int(off[-1])) is None
    with pytest.raises(ValueError):
        _positions.moves_rows(np.zeros(16, np.int8), np.zeros(1, np.uint8), np.zeros(17, np.int32), None, 0)
    with pytest.raises(TypeError):
        _positions.moves_rows(np.zeros(4, np.int64), None, np.zeros(5, np.int32), None, 0)


@pytest.mark.single_backend
def test_compiled_unpack_reports_damaged_and_out_of_range_frames():
    fast = direct._unpacker()
    assert fast is not None
    import zstandard

    raw = np.arange(1000, dtype=np.int64).tobytes()
    comp = zstandard.ZstdCompressor().compress(raw)
    src = np.frombuffer(comp + b"plain bytes", dtype=np.uint8)
    out = np.zeros(16384, dtype=np.uint8)
    frames = np.array([[0, len(comp), len(raw), 0], [len(comp), 11, -1, 8192]], dtype=np.int64)
    ctx = fast.Decompressor()
    assert fast.unpack(src, frames, out, ctx) == -1
    assert out[:len(raw)].tobytes() == raw and out[8192:8203].tobytes() == b"plain bytes"
    bad = src.copy()
    bad[0] ^= 0xFF  # the frame's magic number
    wrong_size = frames.copy()
    wrong_size[0, 2] = len(raw) - 8
    outside = frames.copy()
    outside[1, 1] = 12  # past the end of src
    too_big = frames.copy()
    too_big[1, 3] = out.size - 5  # does not fit the output
    assert fast.unpack(bad, frames, out, ctx) == 0
    assert fast.unpack(src, wrong_size, out, ctx) == 0
    assert fast.unpack(src, outside, out, ctx) == 1
    assert fast.unpack(src, too_big, out, ctx) == 1


@pytest.mark.parametrize("case", ["keyed", "nulls", "outside"])
def test_keyed_entries_compiled_equal_numpy(case):
    """A batch's keyed policy entries (code, index) from the compiled one-pass ``key_codes`` equal numpy's gathers;
    null entries take the general path, an index outside the dictionary is a ShardCorruptError on both."""
    from types import SimpleNamespace

    from gamestore import backend
    from gamestore.errors import ShardCorruptError
    from gamestore.positions.decode import SegmentReader

    rng = np.random.default_rng(7)
    dec = direct.Decoded(40)
    dec.number, dec.player = np.arange(40, dtype=np.int32), np.ones(40, np.int64)
    dec.lens = rng.integers(0, 6, 40).astype(np.int32)
    dec.off = np.concatenate(([0], np.cumsum(dec.lens))).astype(np.int32)
    n = int(dec.off[-1])
    dec.key = rng.integers(0, 9, n).astype(np.int32)
    if case == "nulls":
        dec.key[::5] = -1
    if case == "outside":
        dec.key[n // 2] = 9
    dec.action, dec.prob, dec.prob64, dec.vectors = None, rng.random(n).astype(np.float32), None, {}
    sh = SimpleNamespace(key_map=(-2 - np.arange(9)).astype(np.int32), key_index=None, shard_id="s")
    lookup = np.arange(100, 109, dtype=np.int64)[::-1].copy()  # key table id -> policy index
    plan = SimpleNamespace(vectors={})
    reader = SegmentReader.__new__(SegmentReader)
    reader.prob_dtype = np.dtype(np.float32)
    got = []
    for name in ("python", "cython"):
        with backend.use(name):
            if case == "outside":
                with pytest.raises(ShardCorruptError, match="outside its dictionary"):
                    reader._direct_source(sh, dec, plan, lookup)
                continue
            src = reader._direct_source(sh, dec, plan, lookup)
            got.append((src.code.tolist(), src.index.tolist(), src.code.dtype, src.index.dtype))
    if got:
        assert got[0] == got[1]
        code = np.asarray(got[0][0])
        assert ((code == -1) == (dec.key < 0)).all() and (np.asarray(got[0][1])[dec.key >= 0] >= 100).all()


def _keyed_games() -> list[dict]:
    """Games whose policies are keyed only (RingRift's), with null and empty policies, null players and missing
    vectors: every batch takes the compiled ``direct_source``."""
    games = synth.games(10, board_type="square8", num_players=2, seed=11)
    for g, game in enumerate(games):
        for i, move in enumerate(game["moves"]):
            if g % 3 == 1 and i % 5 == 0:
                move["policy"] = None
            if g % 3 == 2 and i % 4 == 1:
                move["policy"] = {}
            if g % 2 == 0 and i % 7 == 3:
                move["player"] = None
            if g % 4 == 1 and i % 6 == 2:
                move.get("vectors", {}).pop("heuristic_features", None)
    return games


def _action_map(games: list[dict]) -> dict[str, int]:
    """Two keys of three mapped (the others: -1)."""
    keys = sorted({k for g in games for m in g["moves"] for k in (m.get("policy") or {}) if isinstance(k, str)})
    return {k: i for i, k in enumerate(keys) if i % 3}


def _same_source(a, b) -> None:
    for name in ("number", "player", "off", "lens", "code", "index", "prob"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), name
    assert list(a.vectors) == list(b.vectors)
    for name in a.vectors:
        (xv, xok), (yv, yok) = a.vectors[name], b.vectors[name]
        assert xv.dtype == yv.dtype and np.array_equal(xv, yv), name
        assert (xok is None) == (yok is None) and (xok is None or (xok.dtype == yok.dtype and np.array_equal(xok, yok)))


@pytest.mark.single_backend  # the compiled path against the reference, both in one test
@pytest.mark.parametrize("which", ["keyed", "mixed"])
@pytest.mark.parametrize("prob_dtype", [np.float32, np.float64])
def test_compiled_source_equals_the_reference(store_path, tmp_path, monkeypatch, which, prob_dtype):
    """``SegmentReader._compiled_source`` (one ``_positions.direct_source`` call) makes of every batch it takes what
    the reference makes (``DirectDecoder.read`` with zstandard and numpy, then ``_direct_source``'s numpy): keyed
    entries with nulls, null and empty policies, null players, missing vectors; a batch with action ids or float64
    probabilities it leaves to the reference."""
    from gamestore import backend
    from gamestore.positions.decode import SegmentReader
    from gamestore.positions.gather import source_addresses

    if which == "keyed":
        games, path = _keyed_games(), tmp_path / "keyed"
        with gamestore.open(path, shard_moves=1500, batch_rows=200, fsync=False) as store:
            store.write_games(games)
            store.flush()
    else:
        games, path = _games(), store_path
    with PositionDataset(path, batch_size=64) as ds:
        plan = ds.plan
    reader = SegmentReader(path, action_map=_action_map(games), prob_dtype=prob_dtype)
    unpacker = direct._unpacker
    taken = left = 0
    for sid in plan.shards:
        sh = reader._shard(sid, plan)
        assert sh.direct is not None
        for index in range(len(sh.direct.layouts.rows)):
            with backend.use("cython"):
                fast = reader._compiled_source(sh, index, plan, reader._lookup())
            with backend.use("python"), monkeypatch.context() as m:
                m.setattr(direct, "_unpacker", lambda: None)
                ref = reader._decode(sh, index, plan, reader._lookup())
            if fast is None:
                assert sh.direct._recipe(index, plan.vectors).spec is None
                left += 1
                continue
            taken += 1
            _same_source(fast, ref)
            got, fast.addr = fast.addr, {}  # the call's addresses: what source_addresses records
            assert got == source_addresses(fast, list(plan.vectors)) and got["index"] == fast.index.ctypes.data
    assert direct._unpacker is unpacker
    assert taken and (left == 0) == (which == "keyed")


@pytest.mark.single_backend
def test_compiled_source_reports_a_key_outside_the_dictionary_as_the_reference_does(tmp_path):
    from gamestore import backend
    from gamestore.errors import ShardCorruptError
    from gamestore.positions.decode import SegmentReader

    path = tmp_path / "keyed"
    with gamestore.open(path, batch_rows=200, fsync=False) as store:
        store.write_games(_keyed_games())
        store.flush()
    with PositionDataset(path, batch_size=64) as ds:
        plan = ds.plan
    for name in ("cython", "python"):
        reader = SegmentReader(path)
        sh = reader._shard(plan.shards[0], plan)
        sh.key_map = sh.key_map[:3]  # the dictionary shorter than the batch's keys say
        with backend.use(name), pytest.raises(ShardCorruptError, match="outside its dictionary"):
            reader._decode(sh, 0, plan, reader._lookup())


def _random_columns(rows: int, entries: int, rng: np.random.Generator, *, nulls: bool, size: int):
    """A batch's columns (keys inside a dictionary of 9) and, with ``nulls``, validity bitmaps."""
    off = np.sort(rng.integers(0, entries + 1, rows + 1)).astype(np.int32)
    if rows:
        off[0], off[-1] = 0, entries
    cols = {
        "number": rng.integers(0, 500, rows).astype(np.int32),
        "player": rng.integers(-2, 5, rows).astype(np.int8),
        "off": off,
        "key": rng.integers(-3, 9, entries).astype(np.int32),
        "prob": rng.random(entries).astype(np.float32),
        "vec": rng.random((rows, size)).astype(np.float32),
    }
    bits = {name: np.packbits(rng.random(n) < 0.7, bitorder="little") for name, n in
            (("player_valid", rows), ("list_valid", rows), ("key_valid", entries), ("vec_valid", rows))} if nulls else {}
    return cols, bits


def _columns_file(cols: dict, bits: dict, *, keyed: bool):
    """The columns stored uncompressed (frames with -1), and ``direct_source``'s spec of their places."""
    parts = {**cols, **bits}
    if not keyed:
        parts.pop("key")
        parts.pop("key_valid", None)
    src, frames, place, at = b"", [], {}, 0
    for name, a in parts.items():
        raw = np.ascontiguousarray(a).tobytes()
        frames.append((len(src), len(raw), -1, at))
        place[name] = at
        src += raw
        at += -(-len(raw) // 64) * 64
    rows, entries, size = cols["vec"].shape[0], cols["prob"].size, cols["vec"].shape[1]
    spec = [rows, entries, place["number"], place["player"], place.get("player_valid", -1), place["off"],
            place.get("list_valid", -1), place.get("key", -1), place.get("key_valid", -1), place["prob"], 1, at,
            place["vec"], size, place.get("vec_valid", -1)]
    return (np.frombuffer(src, np.uint8), np.asarray(frames, np.int64).reshape(-1, 4), np.asarray(spec, np.int64),
            np.zeros(at + 64, np.uint8))


@pytest.mark.single_backend
def test_compiled_direct_source_equals_numpy():
    """``_positions.direct_source`` against numpy on hand-made batches (nulls everywhere, no keys, empty), and its
    error codes: a frame outside the file, offsets out of order, a key outside the dictionary, a spec outside the
    buffer."""
    from gamestore import _positions

    assert direct._unpacker() is not None
    rng = np.random.default_rng(3)
    key_map = (-2 - rng.permutation(12)[:9]).astype(np.int32)
    key_index = rng.integers(-1, 50, 9).astype(np.int64)
    ctx = _positions.Decompressor()
    runs = 0
    for rows, entries in ((0, 0), (1, 0), (1, 3), (37, 120), (300, 1000)):
        for nulls in (False, True):
            for keyed in (True, False):
                cols, bits = _random_columns(rows, entries, rng, nulls=nulls, size=5)
                src, frames, spec, buf = _columns_file(cols, bits, keyed=keyed)
                got = _positions.direct_source(src, frames, buf, ctx, spec, key_map, key_index)
                assert type(got) is tuple, got
                number, player, off, lens, code, index, prob, vectors = got

                def valid(name: str, n: int) -> np.ndarray:
                    b = bits.get(name)
                    return np.ones(n, bool) if b is None else np.unpackbits(b, count=n, bitorder="little").view(bool)

                np.testing.assert_array_equal(number, cols["number"])
                np.testing.assert_array_equal(off, cols["off"])
                np.testing.assert_array_equal(prob, cols["prob"])
                want_player = np.where(valid("player_valid", rows), cols["player"].astype(np.int64), -1)
                want_lens = np.where(valid("list_valid", rows), np.diff(cols["off"]), 0).astype(np.int32)
                k = np.where(valid("key_valid", entries), cols["key"], -1) if keyed else np.full(entries, -1, np.int32)
                want_code = np.where(k >= 0, key_map[np.maximum(k, 0)], -1).astype(np.int32)
                want_index = np.where(k >= 0, key_index[np.maximum(k, 0)], -1).astype(np.int64)
                for a, w in ((player, want_player), (lens, want_lens), (code, want_code), (index, want_index)):
                    assert a.dtype == w.dtype
                    np.testing.assert_array_equal(a, w)
                ((vals, ok),) = vectors
                assert vals.shape == (rows, 5)
                np.testing.assert_array_equal(vals, cols["vec"])
                if nulls:
                    assert ok.dtype == np.uint8
                    np.testing.assert_array_equal(ok, valid("vec_valid", rows).astype(np.uint8))
                else:
                    assert ok is None
                assert all(np.shares_memory(a, buf) for a in (number, off, prob, vals) if a.size)
                runs += 1
                if entries and keyed:  # a set key outside key_map
                    outside = dict(cols, key=np.where(valid("key_valid", entries), 9, cols["key"]).astype(np.int32))
                    s2, f2, sp2, b2 = _columns_file(outside, bits, keyed=True)
                    assert _positions.direct_source(s2, f2, b2, ctx, sp2, key_map, key_index) == -3
                if rows > 1:  # offsets out of order, or past the entries
                    for bad_off in (cols["off"][2] + 1, entries + 1):
                        back = dict(cols, off=cols["off"].copy())
                        back["off"][1 if bad_off != entries + 1 else rows] = bad_off
                        s2, f2, sp2, b2 = _columns_file(back, bits, keyed=keyed)
                        assert _positions.direct_source(s2, f2, b2, ctx, sp2, key_map, key_index) == -2
                outside_src = frames.copy()
                outside_src[-1, 1] = len(src) + 1 - outside_src[-1, 0]  # past the end of src
                assert _positions.direct_source(src, outside_src, buf, ctx, spec, key_map, key_index) == len(frames) - 1
                if buf.size > 128:
                    with pytest.raises(ValueError, match="outside buf"):
                        _positions.direct_source(src, frames, buf[:-128].copy(), ctx, spec, key_map, key_index)
    assert runs == 20
    with pytest.raises(ValueError, match="spec"):
        _positions.direct_source(src, frames, buf, ctx, spec[:-1], key_map, key_index)
    with pytest.raises(ValueError, match="key_index"):
        _positions.direct_source(src, frames, buf, ctx, spec, key_map, key_index[:-1])


@pytest.mark.single_backend
def test_compiled_direct_source_takes_a_free_buffer_of_the_pools_list():
    """Given a BufferPool's list, ``direct_source`` decodes into the smallest free buffer large enough (never one a
    view holds) or returns -4; with ``names`` its addresses are the arrays'."""
    from gamestore import _positions

    rng = np.random.default_rng(5)
    cols, bits = _random_columns(50, 200, rng, nulls=True, size=3)
    src, frames, spec, buf = _columns_file(cols, bits, keyed=True)
    key_map, key_index = (-2 - np.arange(9)).astype(np.int32), np.arange(9, dtype=np.int64)
    ctx = _positions.Decompressor()
    need = int(spec[11])
    small, held, big, bigger = (np.zeros(n, np.uint8) for n in (need - 1, need + 10, need + 100, need + 1000))
    view = held[:5]
    bufs = [small, held, bigger, big]
    del small, big, bigger
    names = ("number", "player", "lens", "off", "index", "prob", "vec_v", "valid_v")
    got = _positions.direct_source(src, frames, bufs, ctx, spec, key_map, key_index, names)
    assert type(got) is tuple and len(got) == 9
    assert np.shares_memory(got[0], bufs[3])  # the smallest free one large enough: not the held one
    ((vals, ok),), addr = got[7], got[8]
    assert addr == {"number": got[0].ctypes.data, "player": got[1].ctypes.data, "lens": got[3].ctypes.data,
                    "off": got[2].ctypes.data, "index": got[5].ctypes.data, "prob": got[6].ctypes.data,
                    "vec_v": vals.ctypes.data, "valid_v": ok.ctypes.data}
    np.testing.assert_array_equal(got[0], cols["number"])
    again = _positions.direct_source(src, frames, bufs, ctx, spec, key_map, key_index)
    assert np.shares_memory(again[0], bufs[2])  # the first's arrays hold bufs[3]
    assert _positions.direct_source(src, frames, bufs, ctx, spec, key_map, key_index) == -4  # none free
    del got, vals, ok, again
    assert type(_positions.direct_source(src, frames, bufs, ctx, spec, key_map, key_index)) is tuple
    assert view.base is held
    with pytest.raises(ValueError, match="names"):
        _positions.direct_source(src, frames, buf, ctx, spec, key_map, key_index, names[:-1])
