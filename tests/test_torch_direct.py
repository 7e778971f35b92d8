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
