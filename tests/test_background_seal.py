"""A full write buffer is sealed by a helper thread (gamestore/sealing.py): failures, waits and duplicates."""
from __future__ import annotations

import errno
import threading

import pytest

import gamestore
from gamestore import shardwrite
from gamestore import store as store_mod
from gamestore.errors import DuplicateGameError, SealError, StoreFullError
from gamestore.ops import verify_store
from gamestore.records import games_equal, normalize_game
from gamestore.testing import synth

from helpers.mp_workers import make_games


def games(prefix: str, n: int, seed: int) -> list[dict]:
    return make_games(prefix, n, seed=seed, max_moves=8)


def stored_ids(path) -> list[str]:
    with gamestore.open(path, create=False) as s:
        return sorted(s.query_games(columns=["game_id"]).column("game_id").to_pylist())


def ids(records: list[dict]) -> list[str]:
    return sorted(g["game_id"] for g in records)


class Gate:
    """``write_shard`` that waits for ``release`` (``entered`` set once a seal reached it), or fails when told."""

    def __init__(self, monkeypatch, fail: BaseException | None = None) -> None:
        self.real = store_mod.write_shard
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail = fail
        self.threads: list[str] = []
        monkeypatch.setattr(store_mod, "write_shard", self)

    def __call__(self, *args, **kwargs):
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        assert self.release.wait(60)
        if self.fail is not None:
            fail, self.fail = self.fail, None
            raise fail
        return self.real(*args, **kwargs)


def test_a_full_buffer_is_sealed_by_a_helper_while_write_games_returns(tmp_path, monkeypatch):
    path = tmp_path / "s"
    first, more = games("a", 3, 1), games("b", 2, 2)
    store = gamestore.open(path, shard_games=3)
    gate = Gate(monkeypatch)
    assert store.write_games(first) == 3  # fills the buffer: returns while the helper seals
    assert gate.entered.wait(60) and gate.threads[-1].startswith("gamestore-seal-")
    assert store.write_games(more) == 2  # the next games are accepted meanwhile
    assert store.count_games() == 0
    for g in first + more:  # in flight or buffered: still this handle's games
        with pytest.raises(DuplicateGameError):
            store.write_games([g])
    assert store.write_games(first, on_duplicate="skip") == 0
    flushed = threading.Event()
    flusher = threading.Thread(target=lambda: (store.flush(), flushed.set()))
    flusher.start()
    assert not flushed.wait(0.2)  # flush waits for the shard in flight before sealing the rest
    gate.release.set()
    flusher.join(60)
    assert flushed.is_set()
    assert store.count_games() == 5 and len(store.catalog.shard_ids()) == 2
    store.close()
    assert stored_ids(path) == ids(first + more)
    assert verify_store(path).ok


@pytest.mark.parametrize("surfaces_in", ["write_games", "flush", "close"])
def test_a_failed_background_seal_surfaces_names_its_games_and_loses_nothing(tmp_path, monkeypatch, surfaces_in):
    path = tmp_path / "s"
    committed, doomed, later = games("c", 2, 3), games("d", 3, 4), games("e", 2, 5)
    store = gamestore.open(path, shard_games=3)
    store.write_games(committed)
    store.flush()
    gate = Gate(monkeypatch, fail=OSError(errno.EIO, "Input/output error"))
    store.write_games(doomed)  # fills the buffer: the helper's seal will fail
    gate.release.set()
    store._sealing.wait()  # the helper has failed: the next call reports it
    with pytest.raises(SealError) as info:
        if surfaces_in == "write_games":
            store.write_games(later)
        elif surfaces_in == "flush":
            store.flush()
        else:
            store.close()
    err = info.value
    assert isinstance(err, OSError) and not isinstance(err, StoreFullError) and err.errno == errno.EIO
    assert err.shard_id and err.shard_id in str(err) and err.game_ids == ids(doomed)
    assert isinstance(err.__cause__, OSError) and "Input/output error" in str(err)
    assert not store.closed
    # nothing of the failed shard is visible, nothing is left in tmp/, the committed games are all there
    assert list((path / "tmp").iterdir()) == []
    assert not (path / "shards" / err.shard_id).exists()
    assert stored_ids(path) == ids(committed) and store.count_games() == 2
    # the failed games are buffered again: still duplicates, written once by the next flush
    with pytest.raises(DuplicateGameError):
        store.write_games(doomed[:1])
    if surfaces_in == "write_games":
        assert store.write_games(later) == 2  # the failed call accepted nothing
    store.flush()
    store.close()
    want = committed + doomed + (later if surfaces_in == "write_games" else [])
    assert stored_ids(path) == ids(want)
    report = verify_store(path)
    assert report.ok and not report.duplicate_games


def test_a_full_disk_in_the_background_is_a_store_full_error(tmp_path, monkeypatch):
    path = tmp_path / "s"
    store = gamestore.open(path, shard_games=2)
    gate = Gate(monkeypatch, fail=StoreFullError(errno.ENOSPC, "disk full while writing shard x"))
    gate.release.set()
    doomed = games("f", 2, 6)
    store.write_games(doomed)
    with pytest.raises(StoreFullError) as info:
        store.flush()
    assert info.value.errno == errno.ENOSPC and info.value.game_ids == ids(doomed)
    store.flush()  # space is back: written once
    store.close()
    assert stored_ids(path) == ids(doomed)


def test_a_half_written_background_shard_never_becomes_visible(tmp_path, monkeypatch):
    """The helper fails after moves.arrow is on disk, before games.arrow: the staging directory goes."""
    path = tmp_path / "s"
    real = shardwrite._write_ipc
    calls = []

    def half(p, *args, **kwargs):
        calls.append(p)
        if p.name == shardwrite.GAMES_FILE and len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        return real(p, *args, **kwargs)

    monkeypatch.setattr(shardwrite, "_write_ipc", half)
    store = gamestore.open(path, shard_games=2)
    first = games("g", 2, 7)
    store.write_games(first)
    with pytest.raises(SealError):
        store.flush()
    assert list((path / "tmp").iterdir()) == [] and list((path / "shards").iterdir()) == []
    with gamestore.open(path, create=False) as other:
        assert other.count_games() == 0
    store.flush()
    store.close()
    assert stored_ids(path) == ids(first)


def test_close_waits_for_the_background_seal(tmp_path):
    """Games of many shards sealed in the background; close() returns with every one committed and readable."""
    path = tmp_path / "s"
    records = synth.games(12, seed=8)
    with gamestore.open(path, vectors=synth.VECTORS, shard_games=4) as store:
        for k in range(0, 12, 3):
            store.write_games(records[k : k + 3])
    with gamestore.open(path, create=False) as store:
        assert len(store.catalog.shard_ids()) == 2  # 6 and 6 games: the buffer is full after 6 each time
        for g in records:
            assert games_equal(store.get_game(g["game_id"]), normalize_game(g, vectors=store.vectors))


@pytest.mark.parametrize("background", [True, False])
def test_a_shard_committed_but_not_indexed_is_not_written_again(tmp_path, monkeypatch, background):
    """Indexing the committed shard in this handle fails: a warning, never a seal failure (a retry would store the
    games twice); the next listing indexes it."""
    path = tmp_path / "s"
    store = gamestore.open(path, shard_games=2 if background else 100)
    real = store.catalog.add_committed
    calls = []

    def add_committed(shard_id):
        calls.append(shard_id)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        return real(shard_id)

    monkeypatch.setattr(store.catalog, "add_committed", add_committed)
    first = games("h", 2, 9)
    with pytest.warns(RuntimeWarning, match="committed, but indexing it failed"):
        store.write_games(first)
        store.flush()
    store.flush()
    store.refresh()
    assert store.count_games() == 2
    store.close()
    assert stored_ids(path) == ids(first)
    report = verify_store(path)
    assert report.ok and not report.duplicate_games
