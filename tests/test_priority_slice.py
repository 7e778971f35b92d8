"""gamestore's threads ask for a short scheduler slice (Linux 6.12+ EEVDF), the loop's only when opted in, and
nothing changes where the kernel lacks, refuses or ignores it (gamestore/priority.py); no timing."""
from __future__ import annotations

import asyncio
import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import gamestore
from gamestore import gil, priority

pytestmark = pytest.mark.single_backend  # thread scheduling is the same whichever encoder backend runs

needs_slices = pytest.mark.skipif(priority.slice_of() is None,
                                  reason="threads have no slice of their own (not Linux 6.12+ EEVDF)")


def tid_slice() -> tuple[int, float | None]:
    return threading.get_native_id(), priority.slice_of()


@needs_slices
def test_open_async_gives_its_pool_and_helpers_a_short_slice_read_back_by_the_kernel(tmp_path):
    base = priority.slice_of()
    seen: dict[str, Any] = {}
    # a helper thread started outside the pool (a new thread inherits its creator's niceness and slice), reused
    # by gamestore's calls, like its module-level read-ahead pools
    persistent = ThreadPoolExecutor(1)
    persistent.submit(int).result()

    def call(store: gamestore.GameStore) -> None:
        seen["pool"] = tid_slice()
        seen["helper"] = persistent.submit(gil.inherit(tid_slice)).result()
        seen["helper after"] = persistent.submit(tid_slice).result()  # its work ended: the kernel's again
        seen["helper nice after"] = persistent.submit(priority.niceness).result()  # and its niceness too

    async def main() -> None:
        async with gamestore.open_async(tmp_path / "s", create=True) as store:
            seen["loop"] = priority.slice_of()
            await store.run_sync(call)
            # read by native id from this thread: sched_getattr on the pool's thread itself
            seen["pool from outside"] = priority.slice_of(seen["pool"][0])

    try:
        asyncio.run(main())
    finally:
        persistent.shutdown()
    assert priority.DEFAULT_SLICE < base  # otherwise the option would lengthen it
    assert seen["loop"] == base and priority.slice_of() == base  # the caller's thread is never touched
    assert seen["pool"][1] == seen["pool from outside"] == priority.DEFAULT_SLICE
    assert seen["helper"][1] == priority.DEFAULT_SLICE and seen["helper after"][1] == base
    assert seen["helper nice after"] == priority.niceness()


@needs_slices
def test_worker_slice_none_leaves_the_kernels_slice_and_niceness_still_applies(tmp_path):
    base = priority.slice_of()

    async def main() -> list[Any]:
        async with gamestore.open_async(tmp_path / "s", create=True, worker_slice=None) as store:
            return await store.run_sync(lambda s: [priority.slice_of(), gil.inherit(priority.slice_of)(),
                                                   priority.niceness()])

    assert asyncio.run(main()) == [base, base, min(19, priority.niceness() + priority.DEFAULT_NICENESS)]


@needs_slices
def test_loop_slice_is_held_while_open_shortest_wins_and_comes_back_at_close(tmp_path):
    base = priority.slice_of()
    seen: list[float | None] = []

    async def main() -> None:
        a = await gamestore.open_async(tmp_path / "a", create=True, loop_slice=0.0003)
        seen.append(priority.slice_of())
        b = await gamestore.open_async(tmp_path / "b", create=True, loop_slice=0.0001)
        seen.append(priority.slice_of())
        await b.close()
        seen.append(priority.slice_of())  # a still holds its 0.3 ms
        await a.close()
        seen.append(priority.slice_of())

    asyncio.run(main())
    assert seen == [0.0003, 0.0001, 0.0003, base]


@needs_slices
def test_a_slice_set_by_someone_else_meanwhile_is_theirs_to_keep():
    base = priority.slice_of()
    release = priority.hold_slice(0.0002)
    assert priority.set_slice(0.0005)  # the program changes it while held
    release()
    release()  # a second call does nothing
    assert priority.slice_of() == 0.0005
    assert priority.set_slice(None) and priority.slice_of() == base


def test_slices_outside_what_linux_accepts_are_refused(tmp_path):
    for bad in (0.00005, 0.2, 0.0):
        with pytest.raises(ValueError, match="worker_slice"):
            gamestore.open_async(tmp_path / "s", worker_slice=bad)
        with pytest.raises(ValueError, match="loop_slice"):
            gamestore.open_async(tmp_path / "s", loop_slice=bad)
        with pytest.raises(ValueError, match="slice"):
            priority.set_slice(bad)


def _fake_syscall(monkeypatch: pytest.MonkeyPatch, *, get: str, set_: str) -> list[str]:
    """Stand in for libc's syscall(): ``get``/``set_`` 'fail' (-1: ENOSYS, EINVAL, EPERM), 'zero' (a kernel
    before 6.12: sched_runtime reads 0 for SCHED_OTHER, a set is accepted and ignored) or 'real'."""
    real: Any = priority._calls() if priority.SUPPORTED else None
    calls: list[str] = []

    def syscall(nr: int, tid: int, buf: Any, *rest: int) -> int:
        kind = "get" if rest else "set"  # getattr passes (size, flags), setattr (flags)
        calls.append(kind)
        how = get if kind == "get" else set_
        if how == "fail":
            return -1
        if how == "zero" and kind == "get":
            packed = priority._ATTR.pack(priority._ATTR.size, 0, 0, priority.niceness(), 0, 0, 0, 0, 0, 0)
            ctypes.memmove(buf, packed, len(packed))
            return 0
        if how == "zero":
            return 0
        return real(nr, tid, buf, *rest)

    monkeypatch.setattr(priority, "_syscall", syscall)
    monkeypatch.setattr(priority, "_ATTR_CALLS", {**priority._ATTR_CALLS, priority.platform.machine().lower(): (1, 2)})
    return calls


@pytest.mark.skipif(not priority.SUPPORTED, reason="per-thread priority is a Linux feature")
@pytest.mark.parametrize("get, set_", [("fail", "fail"), ("zero", "zero"), ("real", "fail")],
                         ids=["no-syscall", "kernel-before-6.12", "set-refused"])
def test_without_a_usable_slice_nothing_changes_and_stores_still_open(tmp_path, monkeypatch, get, set_):
    before = priority.slice_of()
    calls = _fake_syscall(monkeypatch, get=get, set_=set_)
    assert priority.set_slice(0.0002) is False
    release = priority.hold_slice(0.0001)
    release()
    if get != "real":
        assert priority.slice_of() is None and priority.target(0, 0.0002) is None
    with priority.lowered(priority.Target(None, 0.0002)):  # a helper: nothing to restore after
        pass

    async def main() -> list[Any]:
        async with gamestore.open_async(tmp_path / "s", create=True, loop_slice=0.0001) as store:
            return await store.run_sync(lambda s: [priority.niceness(), gil.inherit(priority.niceness)()])

    want = min(19, priority.niceness() + priority.DEFAULT_NICENESS)
    assert asyncio.run(main()) == [want, want]  # the niceness part works regardless
    assert "get" in calls
    monkeypatch.undo()
    assert priority.slice_of() == before  # the real slice was never changed


def test_elsewhere_than_linux_no_syscall_is_made(monkeypatch):
    monkeypatch.setattr(priority, "SUPPORTED", False)
    monkeypatch.setattr(priority, "_syscall", None)
    assert priority.slice_of() is None and priority.set_slice(0.0002) is False
    assert priority.target(0, 0.0002) is None
    priority.hold_slice(0.0002)()
    assert priority._syscall is False  # looked at the platform, never loaded libc
