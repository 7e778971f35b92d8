"""The compiled Assembler's native producer (``Assembler(ahead=depth)``, ``PositionDataset(native_ahead=True)``): the
same batches as the synchronous Assembler and the numpy reference, the same errors, and no producer thread left."""
from __future__ import annotations

import gc
import pickle
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gamestore import backend  # noqa: E402
from gamestore.errors import DatasetError  # noqa: E402
from gamestore.positions import gather  # noqa: E402
from gamestore.torch import PositionDataset  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from helpers.torch_stores import mixed_store  # noqa: E402
from test_torch_gather import _compiled, _source  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.filterwarnings("ignore:This DataLoader will create")]

OPTIONS = {"batch_size": 64, "buffer_size": 300, "seed": 5}


def _window(rng, dtype, *, vectors: bool, positions: int = 700, widening: bool = False):
    """A window's sources and per-position arrays, and a function making its Assembler (``widening``: the positions
    in order of their policy lengths, so a later batch's tail block is larger than an earlier one's)."""
    srcs = [_source(rng, r, dtype, nulls=i % 2 == 0) for i, r in enumerate((50, 1, 300, 17, 90))]
    for s in srcs:
        s.player[:] = rng.integers(-1, 5, s.player.size)
        s.vectors["g"] = (rng.standard_normal((s.lens.size, 6)).astype(np.float32), None)
    ngames = 9
    games = {"players": rng.integers(2, 5, ngames), "winner": rng.integers(-1, 5, ngames),
             "value": rng.standard_normal((ngames, 4)).astype(np.float32), "present": rng.random((ngames, 4)) > 0.3}
    part = rng.integers(0, len(srcs), positions).astype(np.int32)
    row = np.array([rng.integers(0, srcs[p].lens.size) for p in part], dtype=np.int64)
    if widening:
        order = np.argsort([srcs[p].lens[r] for p, r in zip(part, row)], kind="stable")
        part, row = part[order], row[order]
    game = rng.integers(0, ngames, part.size)
    ids = np.array([f"g{g}" for g in game], dtype=object)
    names = ["f", "g"] if vectors else []
    table = gather.address_table(srcs, names)
    vecs = (("f", (7,)), ("g", (2, 3)))[: len(names)]
    tables = (games["players"], games["winner"], games["value"], games["present"])
    fast = _compiled()

    def make(max_candidates=-1, **kw):
        return fast.Assembler(table, part, row, game, *tables, 1, max_candidates, dtype == np.float64, vecs, -3,
                              game_id=ids, board_type=ids[::-1].copy(), convert=torch.from_numpy, **kw)

    def reference(a, b, width=None):
        head = gather.fill_head(srcs, part[a:b], row[a:b], game[a:b], games, 1)
        want = dict(zip(["move_number", "player", "num_players", "winner"], head[0]))
        want.update(value=head[1], value_mask=head[2], value_mover=head[3])
        policy = gather.fill_policy(srcs, part[a:b], row[a:b], head[5], head[6] if width is None else width,
                                    np.dtype(dtype))
        want.update(policy_index=policy[0], policy_prob=policy[1], policy_mask=policy[2], has_policy=head[4])
        for name, shape in vecs:
            vals, ok = gather.copy_rows(srcs, name, part[a:b], row[a:b], shape)
            want[f"vec_{name}"], want[f"vec_{name}_mask"] = vals, ok
        return want, head[6], policy[3]

    return make, reference, srcs, ids


def _fill(asm, n=1):
    """Wait (at most 10 s: a loaded machine may not run the producer at once) until ``asm`` holds ``n`` made batches."""
    end = time.monotonic() + 10
    while asm.ready() < n and asm.running and time.monotonic() < end:
        time.sleep(0.0005)


def _same_items(got, want, ids, a, b):
    assert list(got) == ["game_id", "board_type"] + list(want)
    assert got["game_id"].tolist() == ids[a:b].tolist() and got["board_type"].tolist() == ids[::-1][a:b].tolist()
    for key, w in want.items():
        assert isinstance(got[key], torch.Tensor), key
        assert got[key].numpy().dtype == w.dtype and tuple(got[key].shape) == w.shape, key
        np.testing.assert_array_equal(got[key].numpy(), w, err_msg=key)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("vectors", [True, False])
@pytest.mark.parametrize("size", [1, 7, 256])
def test_every_batch_equals_the_synchronous_assembler_and_the_reference(dtype, vectors, size):
    fast = _compiled()
    rng = np.random.default_rng(size * 7 + vectors)
    for window in range(3):  # several windows, the stream starting anywhere
        make, reference, _, ids = _window(rng, dtype, vectors=vectors)
        sync, ahead = make(), make(ahead=4)
        start = [0, 3, size][window]
        n = 700
        stops = list(range(start + size, n + 1, size))
        if stops[-1] != n:
            stops.append(n)  # the window's last, shorter batch (drop_last=False): made synchronously
        a = start
        for i, b in enumerate(stops):
            if i % 5 == 1 and b + size <= n:
                _fill(ahead)  # let the producer make the next ones
            got, plain = ahead.batch(a, b), sync.batch(a, b)
            want, widest, first = reference(a, b)
            _same_items(got, want, ids, a, b)
            _same_items(plain, want, ids, a, b)
            assert ahead.widest == sync.widest == widest and ahead.first_unknown == sync.first_unknown == first
            np.testing.assert_array_equal(ahead.lens, sync.lens)
            np.testing.assert_array_equal(ahead.number, sync.number)
            a = b
        if len(stops) > 8:
            assert ahead.taken > 0  # the producer made some of them
        ahead.close()
        assert not ahead.running
    assert fast.live_producers() == 0


def test_max_candidates_gives_none_at_the_same_batch():
    rng = np.random.default_rng(3)
    make, reference, _, ids = _window(rng, np.float32, vectors=True, positions=2000)
    for cap in (4, 6, 8):
        sync, ahead = make(cap), make(cap, ahead=3)
        for a in range(0, 1995, 7):
            if a % 70 == 14:
                _fill(ahead)
            got, plain = ahead.batch(a, a + 7), sync.batch(a, a + 7)
            assert (got is None) == (plain is None)
            assert ahead.widest == sync.widest
            np.testing.assert_array_equal(ahead.lens, sync.lens)
            if plain is not None:
                _same_items(got, reference(a, a + 7, cap)[0], ids, a, a + 7)
        ahead.close()


def test_out_of_order_batches_fall_back_to_the_synchronous_path():
    fast = _compiled()
    rng = np.random.default_rng(8)
    make, reference, _, ids = _window(rng, np.float64, vectors=True, positions=1000)
    ahead = make(ahead=2)
    order = [(0, 10), (10, 20), (20, 30), (500, 510), (30, 40), (40, 47), (47, 57), (57, 67), (5, 900), (67, 77)]
    for a, b in order:
        _fill(ahead)
        _same_items(ahead.batch(a, b), reference(a, b)[0], ids, a, b)
    assert ahead.taken >= 3 and ahead.running
    with pytest.raises(ValueError):
        ahead.batch(990, 1001)
    del ahead
    gc.collect()
    assert fast.live_producers() == 0
    with pytest.raises(ValueError):
        make(ahead=9)


def test_the_producer_stops_on_close_and_garbage_collection():
    fast = _compiled()
    rng = np.random.default_rng(9)
    make, _, srcs, _ = _window(rng, np.float32, vectors=True, positions=5000)
    ahead = make(ahead=4, keep=srcs)
    assert not ahead.running
    kept = ahead.batch(0, 10)  # the first batch starts the producer
    assert ahead.running and fast.live_producers() == 1
    _fill(ahead, 2)
    taken = ahead.batch(10, 20)
    ahead.close()  # a break after two batches: the thread is joined, the batches it made and nobody took are freed
    assert not ahead.running and fast.live_producers() == 0
    assert ahead.batch(20, 30)["move_number"].shape == (10,)  # synchronous after close, and never restarted
    assert not ahead.running
    assert int(taken["move_number"].shape[0]) == 10 and int(kept["move_number"].shape[0]) == 10
    other = make(ahead=4, keep=srcs)
    other.batch(0, 100)
    assert other.running and fast.live_producers() == 1
    del other, srcs
    gc.collect()
    assert fast.live_producers() == 0
    # a batch outlives its Assembler: its tensors own their memory
    del ahead
    gc.collect()
    assert taken["move_number"].sum() >= 0 and taken["policy_prob"].numpy().base is not None


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return mixed_store(tmp_path_factory.mktemp("torchnative") / "store", square8=10, hex8=3, seed=43)


def _same(a, b):
    assert list(a) == list(b)
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
        else:
            assert isinstance(b[k], np.ndarray) and a[k].tolist() == b[k].tolist(), k


@pytest.mark.parametrize("extra", [{}, {"drop_last": True}, {"policy_only": True, "return_keys": True},
                                   {"shuffle": False, "batch_size": 7}, {"policy_dtype": "float64", "batch_size": 1},
                                   {"assemble_ahead": True}])
def test_dataset_same_batches_with_and_without(store_path, extra):
    fast = _compiled()
    opts = {**OPTIONS, **extra}
    with backend.use("python"):
        reference = list(PositionDataset(store_path, **opts))
    with backend.use("cython"):
        inline = list(PositionDataset(store_path, **opts, native_ahead=False))
        native = PositionDataset(store_path, **opts, native_ahead=True)
        assert native.native_ahead
        got = list(native)
        idiom = list(DataLoader(native, batch_size=None))
    assert len(got) == len(inline) == len(reference) == len(idiom) > 5
    for a, b, c, d in zip(reference, inline, got, idiom):
        _same(a, b)
        _same(a, c)
        _same(a, d)
    assert fast.live_producers() == 0


def test_dataset_environment_switch(store_path, monkeypatch):
    monkeypatch.delenv("GAMESTORE_NATIVE_AHEAD", raising=False)
    assert PositionDataset(store_path, **OPTIONS).native_ahead  # on by default
    monkeypatch.setenv("GAMESTORE_NATIVE_AHEAD", "1")
    assert PositionDataset(store_path, **OPTIONS).native_ahead
    monkeypatch.setenv("GAMESTORE_NATIVE_AHEAD", "0")
    assert not PositionDataset(store_path, **OPTIONS).native_ahead
    assert PositionDataset(store_path, **OPTIONS, native_ahead=True).native_ahead
    monkeypatch.delenv("GAMESTORE_NATIVE_AHEAD")
    assert not PositionDataset(store_path, **OPTIONS, native_ahead=False).native_ahead


def test_dataset_break_error_gc_and_resume(store_path):
    fast = _compiled()
    with backend.use("cython"):
        full = list(PositionDataset(store_path, **OPTIONS, native_ahead=False))
        for cut in (1, 4, len(full) - 1):
            ds = PositionDataset(store_path, **OPTIONS, native_ahead=True)
            it = iter(ds)
            head = [next(it) for _ in range(cut)]
            state = pickle.loads(pickle.dumps(ds.state_dict()))
            it.close()  # a break: the window's producer is joined
            assert fast.live_producers() == 0
            fresh = PositionDataset(store_path, **OPTIONS, native_ahead=True)
            fresh.load_state_dict(state)
            rest = list(fresh)
            assert len(head) + len(rest) == len(full)
            for a, b in zip(full, head + rest):
                _same(a, b)
        ds = PositionDataset(store_path, **OPTIONS, native_ahead=True)  # garbage collection mid-epoch
        it = iter(ds)
        next(it)
        next(it)
        del it, ds
        gc.collect()
        assert fast.live_producers() == 0

        def run(native):
            delivered = 0
            with pytest.raises(DatasetError) as info:
                for _ in PositionDataset(store_path, **OPTIONS, max_candidates=12, native_ahead=native):
                    delivered += 1
                    time.sleep(0.001)
            return delivered, str(info.value)

        inline = run(False)
        assert run(True) == inline and "max_candidates=12" in inline[1]
        assert fast.live_producers() == 0


def test_dataset_workers_and_stateful_loader(store_path):
    fast = _compiled()
    with backend.use("cython"):
        inline = list(PositionDataset(store_path, **OPTIONS, native_ahead=False))
        ds = PositionDataset(store_path, **OPTIONS, native_ahead=True)
        got = list(DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork"))
        assert sum(len(b["move_number"]) for b in got) == sum(len(b["move_number"]) for b in inline)
        stateful = pytest.importorskip("torchdata.stateful_dataloader")
        loader = stateful.StatefulDataLoader(ds, batch_size=None, num_workers=0)
        it = iter(loader)
        head = [next(it) for _ in range(3)]
        state = loader.state_dict()
        del it, loader  # the loader holds its iterator: dropping both ends the iteration
        gc.collect()
        assert fast.live_producers() == 0
        resumed = stateful.StatefulDataLoader(PositionDataset(store_path, **OPTIONS, native_ahead=True),
                                              batch_size=None, num_workers=0)
        resumed.load_state_dict(state)
        rest = list(resumed)
        assert len(head) + len(rest) == len(inline)
        for a, b in zip(inline, head + rest):
            _same(a, b)
    assert fast.live_producers() == 0


def test_a_forked_child_neither_waits_for_nor_uses_the_parents_producer():
    import os

    fast = _compiled()
    rng = np.random.default_rng(12)
    make, reference, srcs, ids = _window(rng, np.float32, vectors=True, positions=3000)
    ahead = make(ahead=4, keep=srcs)
    ahead.batch(0, 10)
    assert ahead.running
    _fill(ahead, 2)
    pid = os.fork()
    if pid == 0:  # the child: no producer thread here; batches are synchronous, closing does not wait
        code = 1
        try:
            got = ahead.batch(10, 20)
            want = reference(10, 20)[0]
            code = 0 if all(np.array_equal(got[k].numpy(), w) for k, w in want.items()) else 2
            ahead.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    _same_items(ahead.batch(10, 20), reference(10, 20)[0], ids, 10, 20)  # the parent's producer goes on
    ahead.close()
    assert fast.live_producers() == 0


# -- the producer's block pool ------------------------------------------------------------------------------------
def test_blocks_come_back_to_the_pool_and_are_reused():
    fast = _compiled()
    rng = np.random.default_rng(21)
    make, reference, srcs, ids = _window(rng, np.float32, vectors=True, positions=5000)
    ahead = make(ahead=2, keep=srcs)
    pool = ahead.pool
    assert isinstance(pool, fast.BlockPool) and pool.cap == 6 and make().pool is None
    for a in range(0, 4000, 40):  # each batch dropped before the next: its two blocks go back to the pool
        if a % 400 == 40:
            _fill(ahead)
        _same_items(ahead.batch(a, a + 40), reference(a, a + 40)[0], ids, a, a + 40)
    assert ahead.taken > 50 and pool.reused > 50
    # a block is in use (ring or batch) or pooled: at most the ring, the batch being made, and one batch out, twice
    assert pool.fresh <= 2 * (2 + 1 + 1) and pool.kept <= 2 * pool.cap and pool.dropped == 0
    ahead.close()  # the batches made and not taken go back too
    # every block back but the last batch's head (ahead.lens and ahead.number are views of it)
    assert pool.reused + pool.fresh == 2 * ahead.made and pool.returned + pool.dropped == 2 * ahead.made - 1
    assert fast.live_producers() == 0
    with pytest.raises(ValueError):
        fast.BlockPool(33)


def test_batches_kept_by_the_caller_stay_valid_after_more_batches_and_after_close():
    fast = _compiled()
    rng = np.random.default_rng(22)
    make, reference, srcs, ids = _window(rng, np.float64, vectors=True, positions=3000)
    ahead = make(ahead=3, keep=srcs)
    kept = {}
    for a in range(0, 2900, 29):
        if a % 290 == 29:
            _fill(ahead, 3)
        got = ahead.batch(a, a + 29)
        if a % 87 == 0:  # every third batch kept (as tensors): its blocks never go back while it lives
            kept[a] = got
    pool = ahead.pool
    assert pool.reused > 0
    ahead.close()
    del ahead
    gc.collect()
    for b in range(2):  # the reused blocks were never a kept batch's: every kept batch still equals the reference
        more = make(ahead=3, keep=srcs, pool=pool)  # another Assembler on the same pool reuses the freed blocks
        for a in range(0, 1000, 29):
            more.batch(a, a + 29)
        more.close()
    for a, got in kept.items():
        _same_items(got, reference(a, a + 29)[0], ids, a, a + 29)
    assert fast.live_producers() == 0


def test_the_pool_outlives_its_assembler_while_blocks_are_out():
    fast = _compiled()
    rng = np.random.default_rng(23)
    make, reference, srcs, ids = _window(rng, np.float32, vectors=True, positions=2000)
    ahead = make(ahead=4, keep=srcs)
    ahead.batch(0, 50)
    _fill(ahead, 4)
    out = [ahead.batch(a, a + 50) for a in range(50, 250, 50)]
    assert ahead.taken == 4
    pool = ahead.pool
    returned = pool.returned
    del ahead, pool  # the Assembler and every other reference to its pool: the batches' blocks hold it
    gc.collect()
    assert fast.live_producers() == 0
    for i, a in enumerate(range(50, 250, 50)):
        _same_items(out[i], reference(a, a + 50)[0], ids, a, a + 50)
    owner = out[0]["move_number"].numpy().base
    assert owner is not None
    del out  # the blocks go back to the pool, which then goes too (no leak, no crash)
    gc.collect()
    assert returned >= 0


def test_a_batch_whose_tail_needs_a_bigger_block_replaces_a_pooled_one():
    fast = _compiled()
    rng = np.random.default_rng(24)
    make, reference, srcs, ids = _window(rng, np.float32, vectors=False, positions=4000, widening=True)
    ahead = make(ahead=1, keep=srcs)
    widths = []
    for a in range(0, 4000, 200):
        _fill(ahead)
        got = ahead.batch(a, a + 200)
        _same_items(got, reference(a, a + 200)[0], ids, a, a + 200)
        widths.append(ahead.widest)
        del got  # its blocks back to the pool before the producer makes the batch after next
    assert widths == sorted(widths) and widths[0] < widths[-1]
    pool = ahead.pool
    assert pool.replaced > 0 and pool.reused > 0
    ahead.close()
    assert fast.live_producers() == 0


def test_a_forked_child_frees_the_blocks_given_back_to_it_and_never_takes_the_pools_lock():
    import os

    fast = _compiled()
    rng = np.random.default_rng(25)
    make, reference, srcs, ids = _window(rng, np.float32, vectors=True, positions=6000)
    ahead = make(ahead=4, keep=srcs)
    held = []
    for a in range(0, 300, 30):
        if a:
            _fill(ahead)
        held.append(ahead.batch(a, a + 30))  # the producer keeps making batches meanwhile
    pool = ahead.pool
    assert ahead.taken > 0
    pid = os.fork()
    if pid == 0:  # the child: batches dropped here are freed, not pooled; the pool's counters read 0
        code = 1
        try:
            del held
            gc.collect()
            got = ahead.batch(300, 330)
            want = reference(300, 330)[0]
            code = 0 if all(np.array_equal(got[k].numpy(), w) for k, w in want.items()) else 2
            if pool.reused or pool.kept:
                code = 3
            ahead.close()
            del ahead, pool, got
            gc.collect()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    before = pool.returned
    del held
    gc.collect()
    assert pool.returned > before  # the parent's pool goes on
    for a in range(300, 900, 30):
        _same_items(ahead.batch(a, a + 30), reference(a, a + 30)[0], ids, a, a + 30)
    assert pool.reused > 0
    ahead.close()
    assert fast.live_producers() == 0


def test_dataset_iteration_shares_one_pool_between_its_windows(store_path):
    fast = _compiled()
    seen = []
    real = fast.Assembler

    def recording(*args, **kw):
        asm = real(*args, **kw)
        seen.append(asm)
        return asm

    with backend.use("cython"):
        inline = list(PositionDataset(store_path, **OPTIONS, native_ahead=False))
        fast.Assembler = recording
        try:
            n = 0
            for i, b in enumerate(PositionDataset(store_path, **OPTIONS, native_ahead=True)):
                _same(inline[i], b)  # then dropped: its blocks go back to the pool
                n += 1
        finally:
            fast.Assembler = real
    assert n == len(inline)
    assert len(seen) > 1 and all(a.pool is seen[0].pool for a in seen)
    assert seen[0].pool.reused > 0
    assert fast.live_producers() == 0
