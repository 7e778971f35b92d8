"""gamestore.torch.PositionDataset: selection, batches, shuffle, sharding, live data, weights."""
from __future__ import annotations

import collections
import collections.abc
import gc
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gamestore  # noqa: E402
from gamestore.testing import synth  # noqa: E402
from gamestore.errors import GamestoreError, QueryError  # noqa: E402
from gamestore.torch import DatasetError, PositionDataset  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.filterwarnings("ignore:This DataLoader will create")]


def _build(path):
    """~5,000 positions in 3 shards, moves batches of ~256 rows: many units to shuffle."""
    with gamestore.open(path, shard_moves=2000, batch_rows=256, fsync=False) as store:
        store.write_games(synth.games(20, board_type="square8", num_players=2, seed=11))
        store.write_games(synth.games(6, board_type="hex8", num_players=4, seed=12))
        store.flush()
    return path


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("torchds") / "store")


@pytest.fixture(scope="module")
def store(store_path):
    with gamestore.open(store_path, create=False) as s:
        yield s


def _positions(store, where=None):
    keys = []
    for batch in store.scan_moves(where, columns=["game_id", "move_number"]):
        keys += zip(batch.column("game_id").to_pylist(), batch.column("move_number").to_pylist())
    return keys


def _keys(batches):
    out = []
    for b in batches:
        out += zip(b["game_id"], b["move_number"].tolist())
    return out


def test_import_gamestore_does_not_import_torch(store_path):
    code = (
        "import sys, gamestore; s = gamestore.open(sys.argv[1], create=False); s.count_games();"
        " list(s.scan_moves(columns=['game_id'])); assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code, str(store_path)], check=True, timeout=120)


def test_one_epoch_is_the_selection_exactly(store):
    ds = PositionDataset(store, batch_size=200, buffer_size=1000, seed=1)
    got = _keys(ds)
    want = _positions(store)
    assert len(got) == len(want) == ds.num_positions
    assert collections.Counter(got) == collections.Counter(want)
    assert got != want  # shuffled


def test_batch_contents_match_the_records(store):
    ds = PositionDataset(store, batch_size=128, seed=2, policy_dtype="float64", return_keys=True, columns=["move_type", "think_time_ms"])
    batch = next(iter(ds))
    assert set(batch) >= {
        "game_id", "board_type", "move_number", "player", "num_players", "winner", "value", "value_mask",
        "value_mover", "policy_index", "policy_prob", "policy_mask", "has_policy", "policy_keys",
        "vec_heuristic_features", "vec_heuristic_features_mask", "move_type", "think_time_ms",
    }
    assert batch["move_number"].dtype == torch.int64 and batch["policy_prob"].dtype == torch.float64
    assert batch["vec_heuristic_features"].shape == (128, 49)
    assert batch["value"].shape == (128, 4)  # hex8 games have 4 players
    games = {}
    for i in range(128):
        gid, mn = batch["game_id"][i], int(batch["move_number"][i])
        game = games.setdefault(gid, store.get_game(gid))
        move = next(m for m in game["moves"] if m["move_number"] == mn)
        assert batch["board_type"][i] == game["board_type"]
        assert int(batch["player"][i]) == move["player"]
        assert batch["move_type"][i] == move["move_type"]
        assert int(batch["think_time_ms"][i]) == move["think_time_ms"]
        policy = move.get("policy") or {}
        n = len(policy)
        assert bool(batch["has_policy"][i]) == (n > 0)
        assert int(batch["policy_mask"][i].sum()) == n
        assert batch["policy_keys"][i] == list(policy)
        assert batch["policy_prob"][i, :n].tolist() == list(policy.values())  # exact, bit for bit
        assert float(batch["policy_prob"][i, n:].abs().sum()) == 0.0
        np.testing.assert_array_equal(batch["vec_heuristic_features"][i].numpy(), move["vectors"]["heuristic_features"])
        # value targets: +1 for the winner, -1 for the others, 0 past the player count
        nplayers, winner = game["num_players"], game["winner"]
        expect = [(1.0 if p == winner else -1.0) if p <= nplayers else 0.0 for p in range(1, 5)]
        assert batch["value"][i].tolist() == expect
        assert float(batch["value_mover"][i]) == expect[move["player"] - 1]


def test_selection_where_and_newest(store):
    ds = PositionDataset(store, where="board_type = 'hex8'", batch_size=256)
    assert collections.Counter(_keys(ds)) == collections.Counter(_positions(store, "board_type = 'hex8'"))
    newest = store.query_games(columns=["game_id", "num_moves"], order_by="created_at DESC", limit=5)
    ds = PositionDataset(store, newest_games=5, batch_size=256)
    assert {g for g, _ in _keys(ds)} == set(newest.column("game_id").to_pylist())
    # newest N positions: whole newest games until N positions are covered
    counts = store.query_games(columns=["game_id", "num_moves"], order_by="created_at DESC").to_pylist()
    n = counts[0]["num_moves"] + counts[1]["num_moves"] + 1
    ds = PositionDataset(store, newest_positions=n, batch_size=256)
    assert {g for g, _ in _keys(ds)} == {c["game_id"] for c in counts[:3]}
    assert ds.num_positions == sum(c["num_moves"] for c in counts[:3])
    with pytest.raises(QueryError):
        PositionDataset(store, where="no_such_column = 1")
    with pytest.raises(ValueError):
        PositionDataset(store, newest_games=3, newest_positions=10)


def test_shuffle_is_deterministic_per_seed_and_epoch(store_path, store):
    def order(seed, epoch, **kw):
        ds = PositionDataset(store_path, seed=seed, epoch=epoch, batch_size=300, buffer_size=700, **kw)
        try:
            return _keys(ds)
        finally:
            ds.close()

    a = order(5, 0)
    assert a == order(5, 0)
    assert a != order(6, 0)
    assert a != order(5, 1)
    ds = PositionDataset(store, seed=5, batch_size=300, buffer_size=700)
    ds.set_epoch(1)
    assert _keys(ds) == order(5, 1)
    assert order(5, 0, shuffle=False) == _positions(store)  # store order without shuffling


def test_two_ranks_three_workers_partition_exactly(store):
    shm_before = set(os.listdir("/dev/shm"))
    got, per_rank = [], []
    for rank in range(2):
        ds = PositionDataset(store, batch_size=128, buffer_size=512, seed=3, rank=rank, world_size=2)
        batches = list(DataLoader(ds, batch_size=None, num_workers=3))
        per_rank.append(len(batches))
        got += _keys(batches)
    want = _positions(store)
    assert len(got) == len(want)
    assert collections.Counter(got) == collections.Counter(want)
    assert abs(per_rank[0] - per_rank[1]) <= 1  # DDP ranks run (nearly) the same number of steps
    assert set(os.listdir("/dev/shm")) <= shm_before  # nothing left in /dev/shm


def test_workers_never_open_the_store(store):
    ds = PositionDataset(store, batch_size=256, seed=4)

    def probe(batch):
        batch["opened"] = ds._store_pid == os.getpid()  # ds here is the worker's copy
        batch["pid"] = os.getpid()
        batch["frozen"] = gc.get_freeze_count()  # the objects inherited from this process, out of the worker's GC
        return batch

    ds.transform = probe
    batches = list(DataLoader(ds, batch_size=None, num_workers=2))
    assert not any(b["opened"] for b in batches)
    assert all(b["frozen"] > 0 for b in batches) and gc.get_freeze_count() == 0
    assert {b["pid"] for b in batches}.isdisjoint({os.getpid()})
    assert len(_keys(batches)) == ds.num_positions


def test_pickled_dataset_iterates_the_same(store):
    ds = PositionDataset(store, batch_size=256, seed=8)
    clone = pickle.loads(pickle.dumps(ds))
    try:
        assert _keys(clone) == _keys(ds)
    finally:
        clone.close()


def test_live_data_appears_next_epoch(tmp_path):
    path = tmp_path / "live"
    with gamestore.open(path, fsync=False) as store:
        store.write_games(synth.games(4, seed=21))
        store.flush()
        ds = PositionDataset(path, batch_size=256, seed=1)
        first = {g for g, _ in _keys(ds)}
        with gamestore.open(path, create=False) as writer:  # another handle, as another process would
            writer.write_games(synth.games(3, seed=22))
        assert {g for g, _ in _keys(ds)} == first  # the running epoch keeps its snapshot
        ds.set_epoch(1)
        second = {g for g, _ in _keys(ds)}
        assert first < second and len(second) == 7
        ds.close()


def test_weighted_sampling(store):
    hex_only = PositionDataset(store, weight="CASE WHEN board_type = 'hex8' THEN 2.5 ELSE 0 END", batch_size=256, seed=1)
    keys = _keys(hex_only)
    hex_games = set(store.query_games("board_type = 'hex8'", columns=["game_id"]).column("game_id").to_pylist())
    assert len(keys) == hex_only.num_positions == store.count_moves()  # default size: the selection's
    assert {g for g, _ in keys} <= hex_games
    assert len(set(keys)) < len(keys)  # drawn with replacement

    weight = "CASE WHEN board_type = 'hex8' THEN 3.0 ELSE 1.0 END"
    ds = PositionDataset(store, weight=weight, num_samples=20000, batch_size=500, seed=2)
    keys = _keys(ds)
    assert len(keys) == 20000
    hex_moves, all_moves = store.count_moves("board_type = 'hex8'"), store.count_moves()
    expect = 3 * hex_moves / (3 * hex_moves + (all_moves - hex_moves))
    share = sum(g in hex_games for g, _ in keys) / len(keys)
    assert abs(share - expect) < 0.03
    # the drawn multiset does not depend on how ranks split it
    split = []
    for rank in range(2):
        split += _keys(PositionDataset(store, weight=weight, num_samples=20000, batch_size=500, seed=2, rank=rank, world_size=2))
    assert collections.Counter(split) == collections.Counter(keys)
    with pytest.raises(QueryError):
        PositionDataset(store, weight="-1.0")


def test_policy_only_and_dense_policy(store):
    with_policy = store.sql("SELECT count(*) FROM moves WHERE len(policy) > 0").fetchall()[0][0]
    ds = PositionDataset(store, policy_only=True, batch_size=256, seed=1)
    batches = list(ds)
    assert sum(len(b["game_id"]) for b in batches) == with_policy
    assert all(bool(b["has_policy"].all()) for b in batches)

    keys = [r[0] for r in store.sql("SELECT DISTINCT key FROM policies ORDER BY key").fetchall()]
    action_map = {k: i for i, k in enumerate(keys)}
    ds = PositionDataset(store, policy_only=True, batch_size=256, seed=1, action_map=action_map, action_size=len(keys) + 3)
    batch = next(iter(ds))
    dense = batch["policy_dense"]
    assert dense.shape == (256, len(keys) + 3)
    torch.testing.assert_close(dense.sum(1), batch["policy_prob"].sum(1))
    idx, prob, mask = batch["policy_index"], batch["policy_prob"], batch["policy_mask"]
    assert bool((idx[mask] >= 0).all()) and bool((idx[~mask] == -1).all())
    rows = torch.arange(256)[:, None].expand_as(idx)
    assert torch.equal(dense[rows[mask], idx[mask]], prob[mask])

    partial = dict(list(action_map.items())[: len(keys) // 2])
    with pytest.raises(DatasetError):
        list(PositionDataset(store, policy_only=True, batch_size=256, action_map=partial, action_size=len(keys)))
    ignored = next(iter(PositionDataset(store, policy_only=True, batch_size=256, action_map=partial, unknown_keys="ignore")))
    assert bool((ignored["policy_index"][ignored["policy_mask"]] >= -1).all())
    with pytest.raises(DatasetError):
        list(PositionDataset(store, batch_size=256, max_candidates=4))
    fixed = next(iter(PositionDataset(store, batch_size=64, max_candidates=20)))
    assert fixed["policy_prob"].shape == (64, 20)


def test_transform_and_drop_last(store):
    ds = PositionDataset(store, batch_size=1000, seed=1, drop_last=True, transform=lambda b: (b["vec_heuristic_features"], b["value_mover"]))
    out = list(ds)
    assert len(out) == ds.num_positions // 1000
    assert all(x.shape == (1000, 49) and y.shape == (1000,) for x, y in out)
    # across ranks and workers: the same number of full batches everywhere, nothing repeated
    per_rank, seen = [], []
    for rank in range(2):
        ds = PositionDataset(store, batch_size=300, seed=1, drop_last=True, rank=rank, world_size=2)
        batches = list(DataLoader(ds, batch_size=None, num_workers=2))
        assert all(len(b["game_id"]) == 300 for b in batches)
        per_rank.append(len(batches))
        seen += _keys(batches)
    assert per_rank[0] == per_rank[1] == ds.num_positions // 2 // 300
    assert len(set(seen)) == len(seen)


def test_bad_options(store):
    with pytest.raises(ValueError):
        PositionDataset(store, rank=2, world_size=2)
    with pytest.raises(ValueError):
        PositionDataset(store, rank=0)
    with pytest.raises(ValueError):
        PositionDataset(store, batch_size=0)
    with pytest.raises(QueryError):
        PositionDataset(store, vectors=["nope"])
    with pytest.raises(GamestoreError):
        PositionDataset(store.path / "missing")


def test_unit_order_mixes_shards_and_opens_each_once(tmp_path):
    from gamestore.positions.plan import LANES, unit_order

    path = tmp_path / "many"
    with gamestore.open(path, batch_rows=128, fsync=False) as store:
        for i in range(12):  # 12 shards
            store.write_games(synth.games(2, seed=60 + i))
            store.flush()
    ds = PositionDataset(path, batch_size=256)
    plan = ds.plan
    assert len(plan.shards) > LANES
    order = unit_order(plan, seed=3)
    assert sorted(order.tolist()) == list(range(plan.unit_len.size))
    assert order.tolist() == unit_order(plan, seed=3).tolist() != unit_order(plan, seed=4).tolist()
    shards = plan.unit_shard[order]
    # the first stretch of the stream draws on LANES shards, and a shard once finished never returns
    assert len(set(shards[: 2 * LANES].tolist())) == LANES
    last_seen = {int(s): i for i, s in enumerate(shards)}
    first_seen = {}
    for i, s in enumerate(shards.tolist()):
        first_seen.setdefault(s, i)
    active = [sum(first_seen[s] <= i <= last_seen[s] for s in first_seen) for i in range(len(shards))]
    assert max(active) <= LANES
    ds.close()


def _same_batch(a, b):
    assert list(a) == list(b)
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert isinstance(b[k], torch.Tensor) and a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
        else:
            assert isinstance(b[k], np.ndarray) and a[k].tolist() == b[k].tolist(), k


def test_default_collation_passes_batches_through_untouched(store_path):
    from torch.utils.data._utils.collate import default_convert

    from gamestore.torch import Batch

    ds = PositionDataset(store_path, batch_size=100, seed=2, return_keys=True, columns=["phase", "move_type"])
    batch = next(iter(ds))
    assert isinstance(batch, Batch)
    assert batch["game_id"].dtype == object and isinstance(batch["policy_keys"][0], list)
    assert default_convert(batch) is batch  # not copied, not walked key by key
    assert not isinstance(batch, collections.abc.Mapping)
    # used like a dict
    plain = dict(batch)
    assert list(plain) == list(batch.keys()) == [k for k, _ in batch.items()] and len(batch) == len(plain)
    assert "policy_prob" in batch and batch.get("nope") is None and {**batch}.keys() == plain.keys()
    copy = batch.copy()
    copy["extra"] = torch.zeros(1)
    assert "extra" not in batch and copy.pop("extra").shape == (1,) and list(copy) == list(batch)
    moved = batch.to("cpu", torch.float64)
    assert type(moved) is Batch and moved["policy_prob"].dtype == torch.float64 and moved["game_id"] is batch["game_id"]
    assert "policy_prob=Tensor[100," in repr(batch)
    _same_batch(batch, pickle.loads(pickle.dumps(batch)))  # tensors by value in one buffer, objects as they are
    direct = list(ds)
    _same_batch(direct[0], next(iter(DataLoader(ds, batch_size=None))))
    through_workers = list(DataLoader(ds, batch_size=None, num_workers=1))
    assert len(through_workers) == len(direct)
    for a, b in zip(direct, through_workers):
        _same_batch(a, b)


def test_worker_batches_travel_through_shared_memory(store_path):
    from gamestore.positions import shared

    ds = PositionDataset(store_path, batch_size=100, seed=6)
    direct = list(ds)
    arena = shared._ARENA
    assert arena is not None and arena.pid == os.getpid()
    gc.collect()
    before = int(np.count_nonzero(arena.owner))
    held = list(DataLoader(ds, batch_size=None, num_workers=2))  # 50 batches held: more than the slots
    assert len(held) == len(direct) > shared.SLOTS
    def rows(batches):  # every position's values (the two workers' batches hold other positions than one stream's)
        out = collections.Counter()
        for b in batches:
            for i, g in enumerate(b["game_id"]):
                m = b["policy_mask"][i]
                fixed = (k for k in b if k not in ("game_id", "board_type") and not k.startswith("policy_"))
                out[(g, *(tuple(np.asarray(b[k][i]).ravel().tolist()) for k in fixed),
                     tuple(b["policy_index"][i][m].tolist()), tuple(b["policy_prob"][i][m].tolist()))] += 1
        return out

    assert rows(held) == rows(direct)
    viewing = int(np.count_nonzero(arena.owner == os.getpid()))
    assert viewing >= shared.SLOTS // 2  # the first batches arrived as views of the arena, the rest by value
    keep = held[0]["policy_prob"][1:]  # a view of a view of the first batch's slot
    expect = keep.clone()
    del held
    gc.collect()
    assert int(np.count_nonzero(arena.owner)) == before + 1  # the slot stays held while any view of it lives
    again = list(DataLoader(ds, batch_size=None, num_workers=2))  # claims every other slot
    assert torch.equal(keep, expect)  # never overwritten
    del keep, again
    gc.collect()
    assert int(np.count_nonzero(arena.owner)) == before  # every slot freed with its batch's tensors
    # a slot claimed by a process that died (a worker shut down with the batch in flight) is reclaimed
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    arena.owner[3] = child.pid
    assert shared.reclaim() >= 1 and arena.owner[3] == 0


def _odd_values(batch):
    """A transform adding values the shared-memory path must carry: a strided view, a 0-d tensor, an empty one, a
    tensor needing grad, numeric numpy and plain Python objects (in that order, after the dataset's keys)."""
    batch["strided"] = torch.arange(12, dtype=torch.int16).reshape(3, 4).t()
    batch["scalar"] = torch.tensor(2.5, dtype=torch.float64)
    batch["empty"] = torch.zeros((0, 5))
    batch["grad"] = torch.ones(2, requires_grad=True)
    batch["numpy"] = np.arange(4, dtype=np.uint16)
    batch["plain"] = {"n": len(batch["game_id"])}
    return batch


def test_worker_batches_carry_any_values_in_order(store_path):
    """Whatever a transform leaves in a batch crosses the worker boundary equal and in order (slot or by value)."""
    ds = PositionDataset(store_path, batch_size=64, seed=11, transform=_odd_values)
    direct = list(ds)
    through = list(DataLoader(ds, batch_size=None, num_workers=1))
    assert len(through) == len(direct)
    for a, b in zip(direct, through):
        assert list(a) == list(b)
        for k in a:
            if isinstance(a[k], torch.Tensor):
                assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and torch.equal(a[k], b[k]), k
            elif isinstance(a[k], np.ndarray):
                assert a[k].dtype == b[k].dtype and a[k].tolist() == b[k].tolist(), k
            else:
                assert a[k] == b[k], k
        assert b["grad"].requires_grad
    from gamestore.positions import shared

    assert shared._ARENA is not None and (shared._ARENA.owner == os.getpid()).any()  # held: they came through slots


def test_worker_batches_send_game_ids_as_indices(store_path, monkeypatch):
    """A worker sends a batch's game ids and boards as indices into the plan's tables its training process shares."""
    from gamestore.positions import shared

    looked_up = []
    real = shared.tables
    monkeypatch.setattr(shared, "tables", lambda token: looked_up.append(token) or real(token))
    ds = PositionDataset(store_path, batch_size=64, seed=9)
    direct = list(ds)
    through = list(DataLoader(ds, batch_size=None, num_workers=1))
    assert len(through) == len(direct)
    for a, b in zip(direct, through):
        _same_batch(a, b)
        assert b["game_id"].dtype == object and b["board_type"].dtype == object
    assert looked_up and set(looked_up) == {ds.plan.token}  # the receiving side indexed its own tables
    # a transform may change the arrays in place: its batches carry the strings themselves
    looked_up.clear()
    marked = PositionDataset(store_path, batch_size=64, seed=9, transform=lambda b: (b["game_id"].__setitem__(0, "x"), b)[1])
    got = list(DataLoader(marked, batch_size=None, num_workers=1))
    assert not looked_up and [b["game_id"][0] for b in got] == ["x"] * len(got)
    assert [b["game_id"][1:].tolist() for b in got] == [b["game_id"][1:].tolist() for b in direct]
    # tables this process no longer holds: a clear error, never other games' ids
    with pytest.raises(RuntimeError, match="no longer holds"):
        real("0123456789abcdef")


@pytest.mark.parametrize("where", [None, "hash(game_id) % 2 = 0"])
def test_unit_rows_back_to_back_and_with_gaps(tmp_path, where):
    """A unit's rows: one range when its games lie back to back in the batch, else each game's range (a filter)."""
    with gamestore.open(tmp_path / "s", batch_rows=4096, fsync=False) as store:
        store.write_games(synth.games(24, board_type="square8", num_players=2, seed=13))
        store.flush()
        plan = PositionDataset(store, where=where).plan
    gaps = 0
    for u in range(plan.unit_len.size):
        glo, ghi = int(plan.unit_glo[u]), int(plan.unit_ghi[u])
        local = plan.game_offset[glo:ghi] - plan.unit_start[u]
        counts = plan.game_count[glo:ghi]
        gaps += int(np.any(local[1:] != local[:-1] + counts[:-1]))
        rows, games = plan.unit_rows(u, seed=0)
        assert rows.dtype == np.int64 and games.dtype == np.int64
        assert rows.tolist() == [r for lo, c in zip(local.tolist(), counts.tolist()) for r in range(lo, lo + c)]
        assert games.tolist() == [g for g, c in zip(range(glo, ghi), counts.tolist()) for _ in range(c)]
    assert (gaps > 0) == (where is not None)  # both paths ran


@pytest.mark.single_backend  # the compiled path against the numpy reference, both in one test
def test_compiled_unit_rows_equal_numpy(tmp_path, monkeypatch):
    """Plan.unit_rows' compiled pass (unweighted plans) equals its numpy reference, back to back and with gaps."""
    from gamestore import backend
    from gamestore.positions import plan as plan_mod

    monkeypatch.setattr(backend, "_selected", backend.get_backend("cython"))
    with gamestore.open(tmp_path / "s", batch_rows=512, fsync=False) as store:
        store.write_games(synth.games(24, board_type="square8", num_players=2, seed=13))
        store.flush()
        plans = [PositionDataset(store, where=w).plan for w in (None, "hash(game_id) % 3 = 0")]
    assert plan_mod.compiled() is not None
    for plan in plans:
        got = [plan.unit_rows(u, seed=0) for u in range(plan.unit_len.size)]
        with monkeypatch.context() as m:
            m.setattr(plan_mod, "compiled", lambda: None)
            want = [plan.unit_rows(u, seed=0) for u in range(plan.unit_len.size)]
        for (r, g), (wr, wg) in zip(got, want):
            assert r.dtype == wr.dtype == np.int64 and g.dtype == wg.dtype == np.int64
            np.testing.assert_array_equal(r, wr)
            np.testing.assert_array_equal(g, wg)
    fast = plan_mod.compiled()
    offs, counts = np.array([5, 9, 20], np.int64), np.array([3, 0, 2], np.int64)
    rows, games = fast.unit_rows(offs, counts, 0, 3, 5)
    assert rows.tolist() == [0, 1, 2, 15, 16] and games.tolist() == [0, 0, 0, 2, 2]
    with pytest.raises(ValueError):
        fast.unit_rows(offs, np.array([1, -1, 1], np.int64), 0, 3, 0)
    with pytest.raises(IndexError):
        fast.unit_rows(offs, counts, 1, 4, 0)
    with pytest.raises(TypeError):
        fast.unit_rows(offs.astype(np.int32), counts, 0, 3, 0)
