"""gamestore's own threads run at a lower CPU priority, the caller's never (gamestore/priority.py); no timing."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import gamestore
from gamestore import gil, priority
from gamestore.records import games_equal, normalize_game
from gamestore.testing import synth

from helpers import subprocess_env

pytestmark = [pytest.mark.single_backend,  # thread priorities are the same whichever encoder backend runs
              pytest.mark.skipif(not priority.SUPPORTED, reason="per-thread priority is a Linux feature")]


def nice() -> int:
    return priority.niceness()


def test_open_async_lowers_its_pool_and_the_helpers_of_its_calls_never_the_loop(tmp_path):
    base = nice()
    seen: dict[str, int] = {}

    def call(store: gamestore.GameStore) -> None:
        seen["pool"] = nice()

        def helper() -> None:
            seen["helper"] = nice()

        t = threading.Thread(target=gil.inherit(helper))
        t.start()
        t.join()

    async def main() -> None:
        async with gamestore.open_async(tmp_path / "s", create=True) as store:
            seen["loop"] = nice()
            await store.run_sync(call)

    asyncio.run(main())
    want = min(19, base + priority.DEFAULT_NICENESS)
    assert seen == {"loop": base, "pool": want, "helper": want}
    assert nice() == base


def test_a_pool_passed_in_is_the_callers_and_keeps_its_priority(tmp_path):
    base = nice()
    seen: dict[str, int] = {}

    def call(store: gamestore.GameStore) -> None:
        seen["pool"] = nice()
        with ThreadPoolExecutor(1) as helpers:  # a helper gamestore would start: still lowered
            seen["helper"] = helpers.submit(gil.inherit(nice)).result()

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            async with gamestore.open_async(tmp_path / "s", create=True, executor=pool, worker_niceness=4) as store:
                await store.run_sync(call)

    asyncio.run(main())
    assert seen == {"pool": base, "helper": min(19, base + 4)}


def test_niceness_zero_changes_nothing_and_bad_values_are_refused(tmp_path):
    base = nice()

    async def main() -> list[int]:
        async with gamestore.open_async(tmp_path / "s", create=True, worker_niceness=0) as store:
            return await store.run_sync(lambda s: [nice(), gil.inherit(nice)()])

    assert asyncio.run(main()) == [base, base]
    for bad in (-1, 20):
        with pytest.raises(ValueError, match="worker_niceness"):
            gamestore.open_async(tmp_path / "s", worker_niceness=bad)


def test_a_helper_gets_its_priority_back_when_its_work_ends():
    base = nice()
    got: list[int] = []
    with ThreadPoolExecutor(1) as persistent:  # like a module-level read-ahead pool, reused by later calls
        with priority.passing_on(priority.target(3)):
            got.append(persistent.submit(gil.inherit(nice)).result())
        got.append(persistent.submit(nice).result())  # a later, plain (synchronous) use of the same thread
        assert gil.inherit(nice) is nice  # nothing passed on any more: helpers run as they are
    assert got == [min(19, base + 3), base]
    assert nice() == base  # passing_on never touches the thread that passes on


def test_a_background_seal_of_a_lowered_call_runs_lowered_and_restores():
    from gamestore.sealing import SealJob

    base = nice()
    seen: list[int] = []
    with priority.passing_on(priority.target(5)):
        job = SealJob("s-1", [], set(), 0, lambda: seen.append(nice())).start()
    job.wait()
    SealJob("s-2", [], set(), 0, lambda: seen.append(nice())).start().wait()
    assert seen == [min(19, base + 5), base]


_FORK_SCRIPT = """
import os, threading
from gamestore import gil, priority
from gamestore.records import games_equal, normalize_game
from gamestore.testing import synth

from helpers import subprocess_env

base = priority.niceness()
out = {}

def pool_thread():
    priority.lower(6)
    out["lowered"] = priority.niceness()
    with gil.handing_over(0.001, to=threading.main_thread().native_id):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its niceness, whether it still watches a thread of its parent
            try:
                os.write(w, f"{priority.niceness()} {len(gil._waiters)}".encode())
            except BaseException as exc:
                os.write(w, repr(exc).encode())
            finally:
                os._exit(0)
        os.close(w)
        out["child"] = os.read(r, 200).decode()
        os.close(r)
        os.waitpid(pid, 0)
    out["after"] = priority.niceness()

t = threading.Thread(target=pool_thread)
t.start()
t.join()
print(base, out["lowered"], out["after"], out["child"], priority.niceness())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_process_forked_from_a_lowered_thread_starts_at_the_parents_priority():
    # in a fresh interpreter: a fork from this test process would carry every earlier test's threads and at-fork
    # hooks along
    proc = subprocess.run([sys.executable, "-c", _FORK_SCRIPT], env=subprocess_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    base, lowered, after, child_nice, child_waiters, main_after = proc.stdout.split()
    assert int(lowered) == min(19, int(base) + 6) and after == lowered  # the forking thread stays lowered
    assert child_nice == base and child_waiters == "0"  # the child: its parent's priority, no watched threads
    assert main_after == base


def test_without_thread_priorities_nothing_is_touched(monkeypatch):
    base = nice()
    monkeypatch.setattr(priority, "SUPPORTED", False)
    assert priority.target(5) is None
    with priority.lowered(15):
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base
    assert priority.niceness() == 0


def test_games_sealed_in_the_background_by_lowered_threads_read_back_equal(tmp_path):
    games = synth.games(9, board_type="hex8", num_players=2, seed=4)
    moves = sum(len(g["moves"]) for g in games)

    async def write() -> None:
        # a small shard size: full buffers are sealed by background threads at the pool's lower priority
        async with gamestore.open_async(tmp_path / "s", create=True, vectors=synth.VECTORS,
                                        shard_moves=max(1, moves // 3), worker_niceness=7) as store:
            for g in games:
                await store.write_games([g])

    asyncio.run(write())
    with gamestore.open(tmp_path / "s") as s:  # read back synchronously, in this thread
        assert s.info()["shards"] >= 3
        for g in games:
            assert games_equal(s.get_game(g["game_id"]), normalize_game(g, vectors=s.vectors))
