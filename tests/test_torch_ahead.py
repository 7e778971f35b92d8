"""PositionDataset(assemble_ahead=True): the same batches, order, resume state and errors as assembling in line."""
from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gamestore.errors import DatasetError  # noqa: E402
from gamestore.positions.ahead import made_ahead  # noqa: E402
from gamestore.torch import PositionDataset  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from helpers.torch_stores import mixed_store  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.filterwarnings("ignore:This DataLoader will create")]

OPTIONS = {"batch_size": 64, "buffer_size": 300, "seed": 5}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return mixed_store(tmp_path_factory.mktemp("torchahead") / "store", square8=10, hex8=3, seed=41)


def _assembling_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gamestore-assemble"]


def _same(a, b):
    assert list(a) == list(b)
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
        else:
            assert isinstance(b[k], np.ndarray) and a[k].tolist() == b[k].tolist(), k


def test_made_ahead_keeps_order_raises_in_place_and_joins():
    assert list(made_ahead(iter(range(23)), depth=1, group=4)) == list(range(23))
    assert list(made_ahead(iter([]))) == []

    def failing():
        yield from range(6)
        raise KeyError("seventh")

    got = []
    with pytest.raises(KeyError, match="seventh"):
        for x in made_ahead(failing(), group=4):
            got.append(x)
    assert got == list(range(6))  # every item made before the error, then the error
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = made_ahead(endless(), depth=2, group=3)
    assert [next(it) for _ in range(5)] == list(range(5))
    it.close()  # an early break: the helper stops, closes the source and is joined
    assert closed.is_set() and not _assembling_threads()
    with pytest.raises(ValueError):
        next(made_ahead(iter(range(3)), group=0))


@pytest.mark.parametrize("extra", [{}, {"policy_only": True, "return_keys": True, "action_size": 4096},
                                   {"shuffle": False, "drop_last": True}])
def test_same_batches_with_and_without(store_path, extra):
    inline = list(PositionDataset(store_path, **OPTIONS, **extra, assemble_ahead=False))
    ahead = PositionDataset(store_path, **OPTIONS, **extra, assemble_ahead=True)
    assert ahead.assemble_ahead
    got = list(ahead)
    assert len(got) == len(inline) > 5
    for a, b in zip(inline, got):
        _same(a, b)
    for a, b in zip(inline, DataLoader(ahead, batch_size=None)):  # the documented idiom
        _same(a, b)
    assert not _assembling_threads()


def test_environment_switch(store_path, monkeypatch):
    monkeypatch.setenv("GAMESTORE_ASSEMBLE_AHEAD", "1")
    assert PositionDataset(store_path, **OPTIONS).assemble_ahead
    monkeypatch.setenv("GAMESTORE_ASSEMBLE_AHEAD", "0")
    assert not PositionDataset(store_path, **OPTIONS).assemble_ahead
    assert PositionDataset(store_path, **OPTIONS, assemble_ahead=True).assemble_ahead


def test_resume_mid_epoch_and_early_break(store_path):
    full = list(PositionDataset(store_path, **OPTIONS, assemble_ahead=False))
    for cut in (1, 4, len(full) - 1):
        ds = PositionDataset(store_path, **OPTIONS, assemble_ahead=True)
        it = iter(ds)
        head = [next(it) for _ in range(cut)]
        state = pickle.loads(pickle.dumps(ds.state_dict()))
        assert state["batches"] == {0: cut}  # batches delivered, not batches made ahead
        it.close()  # a break: the assembling thread is joined
        assert not _assembling_threads()
        fresh = PositionDataset(store_path, **OPTIONS, assemble_ahead=True)
        fresh.load_state_dict(state)
        rest = list(fresh)
        assert len(head) + len(rest) == len(full)
        for a, b in zip(full, head + rest):
            _same(a, b)


def test_transform_runs_on_the_iterating_thread(store_path):
    seen = set()

    def transform(batch):
        seen.add(threading.get_ident())
        batch["n"] = len(batch["move_number"])
        return batch

    got = list(PositionDataset(store_path, **OPTIONS, transform=transform, assemble_ahead=True))
    assert seen == {threading.get_ident()} and sum(b["n"] for b in got) > 0


def test_errors_at_the_same_batch(store_path):
    def run(ahead):
        delivered = 0
        with pytest.raises(DatasetError) as info:
            for _ in PositionDataset(store_path, **OPTIONS, max_candidates=12, assemble_ahead=ahead):
                delivered += 1
        return delivered, str(info.value)

    inline = run(False)
    assert run(True) == inline and "max_candidates=12" in inline[1]
    assert not _assembling_threads()


def test_workers_assemble_in_line(store_path):
    ds = PositionDataset(store_path, **OPTIONS, assemble_ahead=True)
    inline = list(PositionDataset(store_path, **OPTIONS, assemble_ahead=False))
    assert sum(len(b["move_number"]) for b in DataLoader(ds, batch_size=None, num_workers=1)) == sum(
        len(b["move_number"]) for b in inline
    )


def test_taken_items_are_freed_on_the_helper_thread():
    freed_on = []

    class Item:
        def __del__(self):
            freed_on.append(threading.get_ident())

    def items():
        for _ in range(40):
            yield Item()

    for item in made_ahead(items(), depth=2, group=4):
        pass
    del item
    assert len(freed_on) == 40
    here = threading.get_ident()
    assert sum(t != here for t in freed_on) >= 30  # all but the last groups, dropped by the helper
