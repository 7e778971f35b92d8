"""Pool calls of the async API hand the GIL to a waiting event loop (gamestore/gil.py); no timing asserted."""
from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import gamestore
from gamestore import gil
from gamestore.errors import RecordError
from gamestore.records import games_equal
from gamestore.testing import synth

pytestmark = pytest.mark.single_backend  # the handover is the same whichever encoder backend runs

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches threads through /proc")


def _busy_python(n: int) -> int:
    total = 0
    for i in range(n):
        total += len(str(i))  # calls: the marked thread's profile function sees them
    return total


def test_pool_calls_run_marked_and_leave_the_thread_unmarked(tmp_path):
    async def main() -> None:
        pool = ThreadPoolExecutor(1)
        try:
            async with gamestore.open_async(tmp_path / "a", executor=pool) as store:
                assert await store.run_sync(lambda s: gil.interval()) == gil.DEFAULT_EVERY
                # the same pool thread, outside a store call: not marked
                assert await asyncio.get_running_loop().run_in_executor(pool, gil.interval) is None
            async with gamestore.open_async(tmp_path / "b", executor=pool, handover_interval=0.002) as store:
                assert await store.run_sync(lambda s: gil.interval()) == pytest.approx(0.002)
            async with gamestore.open_async(tmp_path / "c", executor=pool, handover_interval=None) as store:
                assert await store.run_sync(lambda s: gil.interval()) is None
        finally:
            pool.shutdown()

    asyncio.run(main())
    assert gil.interval() is None


def test_bad_intervals_are_refused(tmp_path):
    with pytest.raises(ValueError, match="handover_interval"):
        gamestore.open_async(tmp_path / "s", handover_interval=0)
    with pytest.raises(ValueError):
        with gil.handing_over(0):
            pass


def test_marking_keeps_a_profile_function_of_the_thread():
    calls: list[str] = []

    def profiler(frame: Any, event: str, arg: Any) -> None:
        calls.append(event)

    sys.setprofile(profiler)
    try:
        with gil.handing_over(0.001):
            assert gil.interval() == pytest.approx(0.001)
            with gil.handing_over(0.004):  # nested: the inner marking applies, the outer one comes back
                assert gil.interval() == pytest.approx(0.004)
            assert gil.interval() == pytest.approx(0.001)
        assert sys.getprofile() is profiler
    finally:
        sys.setprofile(None)
    assert gil.interval() is None


@linux_only
@pytest.mark.parametrize("work", ["python", "encode"])
def test_a_marked_thread_hands_the_gil_to_a_thread_waiting_for_it(work):
    """A thread that wakes up every 0.5 ms wants the GIL while a marked thread works without blocking: the
    marked thread finds it waiting (futex) and hands the GIL over, from Python code (the profile function)
    and from the compiled encoder's switch points."""
    games = synth.games(4, board_type="square8", num_players=2, seed=5)
    from gamestore import codec

    jobs = {"python": lambda: _busy_python(20_000), "encode": lambda: codec.encode_games(games, vectors=synth.VECTORS)}
    stop = threading.Event()
    waiter_id: list[int] = []
    started = threading.Event()

    def waiter() -> None:  # plays the event loop: sleeps, then needs the GIL
        waiter_id.append(threading.get_native_id())
        started.set()
        while not stop.is_set():
            time.sleep(0.0005)

    t = threading.Thread(target=waiter)
    t.start()
    started.wait()
    before = gil.counts()
    try:
        with gil.handing_over(0.0002, to=waiter_id[0]):
            for _ in range(2000):  # until a handover happened (on an idle machine: the first round)
                jobs[work]()
                if gil.counts()["handed_over"] > before["handed_over"]:
                    break
    finally:
        stop.set()
        t.join()
    after = gil.counts()
    assert after["handed_over"] > before["handed_over"], (before, after)
    assert after["waiting"] > before["waiting"]


@linux_only
def test_a_marked_thread_joins_a_handover_in_progress():
    """While one marked thread hands the GIL over (sleeping without it until the waiter has it), another marked
    thread that takes the GIL meanwhile looks at once, due or not, and hands it on too: the first thread's release
    does not get the GIL to the waiter when the other takes it first."""
    stop = threading.Event()
    waiter_id: list[int] = []
    started = threading.Event()

    def waiter() -> None:  # plays the event loop
        waiter_id.append(threading.get_native_id())
        started.set()
        while not stop.is_set():
            time.sleep(0.0005)

    def worker(every: float) -> None:
        with gil.handing_over(every, to=waiter_id[0]):
            while not stop.is_set():
                _busy_python(2_000)

    t = threading.Thread(target=waiter)
    t.start()
    started.wait()
    before = gil.counts()
    # one thread due every 0.2 ms, one never due by itself (100 s): its looks are joins only
    workers = [threading.Thread(target=worker, args=(every,)) for every in (0.0002, 100.0)]
    try:
        for w in workers:
            w.start()
        deadline = time.monotonic() + 60
        # a join may also come during a step aside for the woken waiter (yielded_to_woken): wait for both
        while ((gil.counts()["joined"] == before["joined"] or gil.counts()["handed_over"] == before["handed_over"])
               and time.monotonic() < deadline):
            time.sleep(0.01)
    finally:
        stop.set()
        for w in workers:
            w.join()
        t.join()
    after = gil.counts()
    assert after["joined"] > before["joined"], (before, after)
    assert after["handed_over"] > before["handed_over"]


def _woken_waiter_yields(on: bool) -> tuple[dict[str, int], dict[str, int]]:
    """A marked thread works in Python while its waiter is runnable without wanting the GIL at the moment (it
    hashes a large buffer, which releases the GIL): the tallies before and after, with yielding ``on`` or off."""
    import hashlib

    stop = threading.Event()
    waiter_id: list[int] = []
    started = threading.Event()
    data = os.urandom(1 << 22)

    def waiter() -> None:  # plays a woken event loop: runnable, on its way to the GIL
        waiter_id.append(threading.get_native_id())
        started.set()
        while not stop.is_set():
            hashlib.sha256(data).digest()

    t = threading.Thread(target=waiter)
    t.start()
    started.wait()
    gil._c.set_yield_woken(on)
    before = gil.counts()
    results: list[int] = []
    try:
        with gil.handing_over(0.0002, to=waiter_id[0]):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                results.append(_busy_python(2_000))
                if gil.counts()["yielded_to_woken"] > before["yielded_to_woken"] or (not on and len(results) > 200):
                    break
    finally:
        gil._c.set_yield_woken(True)
        stop.set()
        t.join()
    assert set(results) == {_busy_python(2_000)}  # the work itself is unchanged
    return before, gil.counts()


@linux_only
@pytest.mark.skipif(gil._c is None, reason="the compiled handover")
def test_a_marked_thread_steps_aside_for_a_woken_waiter():
    """A look that finds the waiter runnable (woken, not yet blocked on the GIL) releases the GIL and naps, so
    that a waiter queued behind this thread on its CPU gets it, instead of reading it as "running" and keeping
    the GIL for another interval; turned off, the same work never does."""
    before, after = _woken_waiter_yields(True)
    assert after["yielded_to_woken"] > before["yielded_to_woken"], (before, after)
    before, after = _woken_waiter_yields(False)
    assert after["yielded_to_woken"] == before["yielded_to_woken"]
    assert after["due"] > before["due"]


@linux_only
def test_no_handover_to_an_idle_loop():
    """A waiter blocked in another system call (an idle event loop sits in epoll; here a pipe read) does not want
    the GIL: the marked thread looks, and keeps it."""
    r, w = os.pipe()
    ready = threading.Event()
    tid: list[int] = []

    def idle() -> None:
        tid.append(threading.get_native_id())
        ready.set()
        os.read(r, 1)

    t = threading.Thread(target=idle)
    t.start()
    ready.wait()
    time.sleep(0.01)  # let it reach the read
    before = gil.counts()
    try:
        with gil.handing_over(0.0001, to=tid[0]):
            _busy_python(50_000)
    finally:
        os.write(w, b"x")
        t.join()
        os.close(r)
        os.close(w)
    after = gil.counts()
    assert after["due"] > before["due"]
    assert after["waiting"] == before["waiting"]
    assert after["yielded_to_woken"] == before["yielded_to_woken"]  # asleep in a read: not woken, left alone


def test_unmarked_threads_never_stop_to_hand_over():
    before = gil.counts()
    _busy_python(50_000)
    assert gil.counts()["due"] == before["due"]


def test_async_writes_store_exactly_what_sync_writes_store(tmp_path):
    games = synth.games(12, board_type="square8", num_players=2, seed=9)
    with gamestore.open(tmp_path / "sync", create=True, vectors=synth.VECTORS) as s:
        s.write_games(games)
        s.flush()
        expected = [s.get_game(g["game_id"]) for g in games]

    async def main() -> list[dict]:
        async with gamestore.open_async(tmp_path / "async", create=True, vectors=synth.VECTORS) as store:
            for i in range(0, len(games), 3):
                assert await store.write_games(games[i : i + 3]) == 3
            await store.flush()
            bad = dict(games[0], game_id="bad", num_players="two")
            with pytest.raises(RecordError) as info:  # typed, with the index in the batch, through the pool
                await store.write_games([dict(games[0], game_id="ok-extra"), bad])
            assert info.value.game_index == 1 and info.value.game_id == "bad"
            await store.flush()
            assert await store.contains("ok-extra")
            return [await store.get_game(g["game_id"]) for g in games]

    got = asyncio.run(main())
    assert all(games_equal(a, b) for a, b in zip(got, expected, strict=True))


def test_helper_threads_of_a_marked_call_inherit_its_marking():
    seen: list[float | None] = []

    def helper() -> None:
        seen.append(gil.interval())

    assert gil.inherit(helper) is helper  # unmarked: nothing to carry
    with gil.handing_over(0.003):
        t = threading.Thread(target=gil.inherit(helper))
        t.start()
        t.join()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(gil.inherit(lambda _: helper()), range(2)))
    t = threading.Thread(target=helper)
    t.start()
    t.join()
    assert seen == [pytest.approx(0.003)] * 3 + [None]


def test_the_catalog_refresher_started_by_a_marked_call_runs_marked(tmp_path, monkeypatch):
    from gamestore import catalog_refresh

    seen: list[float | None] = []
    monkeypatch.setattr(catalog_refresh, "run_refresher", lambda catalog: seen.append(gil.interval()))
    with gamestore.open(tmp_path / "s", create=True) as store:
        catalog = store._catalog
        catalog._background = None
        with gil.handing_over(0.003):
            catalog_refresh.wake(catalog)
        thread = catalog._background
        assert thread is not None
        thread.join()
        catalog._background = None
    assert seen == [pytest.approx(0.003)]


def test_a_background_seal_started_by_a_marked_call_runs_marked():
    from gamestore.sealing import SealJob

    seen: list[float | None] = []
    with gil.handing_over(0.003):
        job = SealJob("s-1", [], set(), 0, lambda: seen.append(gil.interval())).start()
    job.wait()
    SealJob("s-2", [], set(), 0, lambda: seen.append(gil.interval())).start().wait()
    assert seen == [pytest.approx(0.003), None]
    assert job.error is None


@pytest.mark.skipif(gil._c is None, reason="the compiled handover is not built")
def test_gap_diagnostics_name_a_long_stretch_between_handover_points():
    """``_gil.track_gaps`` (bench_event_loop --gil-holders) notes a marked thread's CPU stretch between two
    handover points with where it ended; one C call sorting a million numbers is one stretch of many ms."""
    assert gil._c is not None
    gil._c.track_gaps(0.001)
    gil._c.gaps()
    try:
        with gil.handing_over(0.0005):
            _busy_python(100)
            data = sorted(range(1_000_000, 0, -1))  # no profile event inside: no handover point
            _busy_python(100)
    finally:
        gil._c.track_gaps(0)
    found = gil._c.gaps()
    assert data[0] == 1
    assert found, "no stretch noted"
    cpu, end, ident, where = max(found)
    assert cpu >= 0.001 and ident == threading.get_ident() and end <= time.monotonic()
    assert any("test_gap_diagnostics_name_a_long_stretch" in w for w in where), where
    assert gil._c.gaps() == []  # handed out once


@pytest.mark.slow
@linux_only
def test_gil_holder_sampler_names_the_thread_that_holds_the_gil():
    """benchmarks/gil_holders.py: while a registered thread runs Python for 0.3 s, the sampler (another process)
    attributes most of the time it saw to it (slow: the sampler needs a CPU of its own)."""
    gh = pytest.importorskip("benchmarks.gil_holders", reason="run from the repository root")
    if not gh.available():
        pytest.skip("needs CPython 3.11 on Linux")
    spans: list[tuple[float, float]] = []

    def busy() -> None:
        sampler.register("busy")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.3:
            _busy_python(1000)
        spans.append((t0, time.monotonic()))

    with gh.HolderSampler() as sampler:
        t = threading.Thread(target=busy)
        t.start()
        t.join()
    a, b = spans[0]
    shares = sampler.shares(a, b)
    known = {k: v for k, v in shares.items() if k != gh.UNKNOWN}  # a busy machine delays the sampler itself
    assert known.get("busy", 0.0) > 0.5 * sum(known.values()), shares


@linux_only
def test_a_waker_wakes_a_thread_asleep_on_a_lock_and_stops_with_the_last_user():
    """gil.wake: while a thread is marked, a thread asleep in futex twice in a row (250 us apart) gets a fresh
    wake-up, the waker taking and releasing the GIL (here the thread sleeps on a lock, not on the GIL: the
    wake-up is counted and harmless); with no thread marked the waker sleeps (it does not look, nor wake);
    the waker is shared per thread and stops when its last user releases it."""
    lock = threading.Lock()
    lock.acquire()
    tid: list[int] = []
    started = threading.Event()

    def blocked() -> None:
        tid.append(threading.get_native_id())
        started.set()
        with lock:
            pass

    t = threading.Thread(target=blocked)
    t.start()
    started.wait()
    before = gil.counts()["woken"]
    release_a = gil.wake(tid[0])
    release_b = gil.wake(tid[0])
    try:
        wakers = [th for th in threading.enumerate() if th.name == "gamestore-gil-waker"]
        assert len(wakers) == 1
        assert gil.marked_threads() == 0
        time.sleep(0.2)  # 800 looks' worth while a thread is marked; none now
        assert gil.counts()["woken"] == before
        with gil.handing_over(0.001):
            assert gil.marked_threads() == 1
            deadline = time.monotonic() + 60
            while gil.counts()["woken"] == before and time.monotonic() < deadline:
                time.sleep(0.01)
        assert gil.marked_threads() == 0
        assert gil.counts()["woken"] > before
        release_a()
        release_a()  # a second call does nothing
        assert wakers[0].is_alive()
    finally:
        release_b()
        lock.release()
        t.join()
    wakers[0].join(5)
    assert not wakers[0].is_alive()


def test_an_async_store_runs_one_waker_for_its_loop_while_open(tmp_path):
    async def main() -> None:
        async with gamestore.open_async(tmp_path / "s"), gamestore.open_async(tmp_path / "t"):
            names = [th.name for th in threading.enumerate()]
            assert names.count("gamestore-gil-waker") == (1 if sys.platform.startswith("linux") else 0)
        async with gamestore.open_async(tmp_path / "u", handover_interval=None):
            assert "gamestore-gil-waker" not in [th.name for th in threading.enumerate()]

    asyncio.run(main())
    for th in threading.enumerate():
        if th.name == "gamestore-gil-waker":
            th.join(5)
    assert "gamestore-gil-waker" not in [th.name for th in threading.enumerate() if th.is_alive()]
