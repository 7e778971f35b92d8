"""gamestore.torch: exact mid-epoch resumption (in process, ResumableLoader workers, torchdata)."""
from __future__ import annotations

import os
import pickle

import pytest

torch = pytest.importorskip("torch")

import gamestore  # noqa: E402
from gamestore.testing import synth  # noqa: E402
from gamestore.torch import PositionDataset, ResumableLoader, StateMismatchError  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from helpers.torch_stores import mixed_store  # noqa: E402

pytestmark = [
    pytest.mark.torch,
    pytest.mark.filterwarnings("ignore:This DataLoader will create"),
    pytest.mark.filterwarnings("ignore:.set_vital. is deprecated"),
]

OPTIONS = {"batch_size": 100, "buffer_size": 400, "seed": 7}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return mixed_store(tmp_path_factory.mktemp("torchresume") / "store", square8=12, hex8=4, seed=31)


def _sig(batch):
    """Everything that identifies a batch's content, as plain values."""
    return (
        tuple(batch["game_id"]),
        tuple(batch["move_number"].tolist()),
        tuple(map(tuple, batch["policy_prob"].tolist())),
        tuple(batch["value_mover"].tolist()),
    )


def _take(iterator, n):
    return [_sig(next(iterator)) for _ in range(n)]


@pytest.mark.parametrize("extra", [{}, {"policy_only": True}, {"weight": "1.0 + (board_type = 'hex8')::INT"}])
def test_resume_in_process(store_path, extra):
    full = [_sig(b) for b in PositionDataset(store_path, **OPTIONS, **extra)]
    assert len(full) > 8
    for cut in (0, 1, 5, len(full) - 1, len(full)):
        ds = PositionDataset(store_path, **OPTIONS, **extra)
        it = iter(ds)
        head = _take(it, cut)
        state = pickle.loads(pickle.dumps(ds.state_dict()))  # survives serialisation
        ds.close()
        fresh = PositionDataset(store_path, **OPTIONS, **extra)
        fresh.load_state_dict(state)
        assert head + [_sig(b) for b in fresh] == full, cut
        fresh.close()


def test_resume_through_a_plain_dataloader_without_workers(store_path):
    ds = PositionDataset(store_path, **OPTIONS)
    ds.set_epoch(3)
    full = [_sig(b) for b in DataLoader(ds, batch_size=None)]
    it = iter(DataLoader(ds, batch_size=None))
    head = _take(it, 4)
    state = ds.state_dict()
    assert state["epoch"] == 3
    other = PositionDataset(store_path, **OPTIONS)
    other.load_state_dict(state)
    assert other.epoch == 3
    assert head + [_sig(b) for b in DataLoader(other, batch_size=None)] == full


@pytest.mark.parametrize("policy_only", [False, True])
def test_resumable_loader_with_workers(store_path, policy_only):
    shm_before = set(os.listdir("/dev/shm"))
    ds = PositionDataset(store_path, **OPTIONS, policy_only=policy_only)
    loader = ResumableLoader(ds, num_workers=2)
    loader.set_epoch(1)
    full = [_sig(b) for b in loader]
    assert sum(len(s[0]) for s in full) == (ds.num_positions if not policy_only else sum(len(s[0]) for s in full))
    assert len({(g, m) for s in full for g, m in zip(s[0], s[1])}) == sum(len(s[0]) for s in full)
    for cut in (3, len(full) // 2 + 1):
        ds = PositionDataset(store_path, **OPTIONS, policy_only=policy_only)
        loader = ResumableLoader(ds, num_workers=2)
        loader.set_epoch(1)
        head = _take(iter(loader), cut)
        state = loader.state_dict()
        again = ResumableLoader(PositionDataset(store_path, **OPTIONS, policy_only=policy_only), num_workers=2)
        again.load_state_dict(state)
        assert head + [_sig(b) for b in again] == full, cut
        # the next epoch starts from the beginning again
        again.set_epoch(2)
        assert sum(len(b["game_id"]) for b in again) == sum(len(s[0]) for s in full)
    # the worker-order rule makes 0 workers and 2 workers agree on the set, not the order
    inproc = ResumableLoader(PositionDataset(store_path, **OPTIONS, policy_only=policy_only), num_workers=0)
    inproc.set_epoch(1)
    assert sorted(x for s in inproc for x in zip(*(_sig(s)[:2]))) == sorted(x for s in full for x in zip(s[0], s[1]))
    assert set(os.listdir("/dev/shm")) <= shm_before


def test_resume_keeps_the_epoch_snapshot_when_games_arrive(tmp_path):
    path = tmp_path / "live"
    with gamestore.open(path, fsync=False, batch_rows=200) as store:
        store.write_games(synth.games(6, seed=41))
        store.flush()
    full = [_sig(b) for b in PositionDataset(path, **OPTIONS)]
    ds = PositionDataset(path, **OPTIONS)
    it = iter(ds)
    head = _take(it, 3)
    state = ds.state_dict()
    with gamestore.open(path, create=False, fsync=False) as store:
        store.write_games(synth.games(2, seed=42))
    fresh = PositionDataset(path, **OPTIONS)
    assert fresh.num_games == 8
    fresh.load_state_dict(state)
    assert fresh.num_games == 6
    assert head + [_sig(b) for b in fresh] == full


def test_mismatched_state_is_refused(store_path):
    ds = PositionDataset(store_path, **OPTIONS)
    state = ds.state_dict()
    with pytest.raises(StateMismatchError):
        PositionDataset(store_path, **{**OPTIONS, "seed": 8}).load_state_dict(state)
    loader = ResumableLoader(PositionDataset(store_path, **OPTIONS), num_workers=2)
    with pytest.raises(StateMismatchError):
        ResumableLoader(PositionDataset(store_path, **OPTIONS), num_workers=3).load_state_dict(loader.state_dict())
    bad = dict(state, snapshot=["20000101T000000000000-1-deadbeef"])
    with pytest.raises(StateMismatchError):
        PositionDataset(store_path, **OPTIONS).load_state_dict(bad)


def test_torchdata_stateful_dataloader(store_path):
    sdl = pytest.importorskip("torchdata.stateful_dataloader")
    ds = PositionDataset(store_path, **OPTIONS)
    full = [_sig(b) for b in sdl.StatefulDataLoader(ds, batch_size=None, num_workers=2)]
    assert sum(len(s[0]) for s in full) == ds.num_positions
    loader = sdl.StatefulDataLoader(PositionDataset(store_path, **OPTIONS), batch_size=None, num_workers=2)
    head = _take(iter(loader), 5)
    state = loader.state_dict()
    again = sdl.StatefulDataLoader(PositionDataset(store_path, **OPTIONS), batch_size=None, num_workers=2)
    again.load_state_dict(state)
    assert head + [_sig(b) for b in again] == full


def _positions_of(batches):
    return [(g, m) for s in batches for g, m in zip(s[0], s[1])]


@pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_persistent_workers_follow_set_epoch(tmp_path, context):
    path = tmp_path / "live"
    with gamestore.open(path, fsync=False, batch_rows=200) as store:
        store.write_games(synth.games(8, seed=51))
        store.flush()
    ds = PositionDataset(path, **OPTIONS)
    loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True, multiprocessing_context=context)
    fresh = PositionDataset(path, **OPTIONS)
    seen = []
    for epoch in range(3):
        if epoch == 2:  # games committed between epochs reach workers that started before them
            with gamestore.open(path, create=False, fsync=False) as store:
                store.write_games(synth.games(2, seed=52))
        ds.set_epoch(epoch)
        got = [_sig(b) for b in loader]
        fresh.set_epoch(epoch)
        # exactly what workers started for this epoch deliver: every position once, in the epoch's order
        assert got == [_sig(b) for b in DataLoader(fresh, batch_size=None, num_workers=2)], epoch
        assert len(set(_positions_of(got))) == len(_positions_of(got)) == ds.num_positions
        seen.append(_positions_of(got))
    assert seen[0] != seen[1] and sorted(seen[0]) == sorted(seen[1])  # epochs differ in order only
    assert len(seen[2]) > len(seen[1])
    assert loader._iterator is not None and all(w.is_alive() for w in loader._iterator._workers)  # the same workers


def test_persistent_workers_resume_mid_epoch(store_path):
    sdl = pytest.importorskip("torchdata.stateful_dataloader")
    ds = PositionDataset(store_path, **OPTIONS)
    ds.set_epoch(4)
    full = [_sig(b) for b in DataLoader(ds, batch_size=None, num_workers=2)]
    loader = sdl.StatefulDataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True)
    head = _take(iter(loader), 5)
    state = loader.state_dict()
    other = PositionDataset(store_path, **OPTIONS)
    again = sdl.StatefulDataLoader(other, batch_size=None, num_workers=2, persistent_workers=True)
    again.load_state_dict(state)
    assert head + [_sig(b) for b in again] == full
    other.set_epoch(5)  # the next epoch, through the same persistent workers, starts from its beginning
    nxt = [_sig(b) for b in again]
    assert sorted(_positions_of(nxt)) == sorted(_positions_of(full)) and nxt != full
