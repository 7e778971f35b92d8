"""``open_async(loop_slice=...)``: the loop's thread holds a short scheduler slice (Linux 6.12+ EEVDF) while the
store is open, gamestore's own threads keep the kernel's, and nothing changes where the kernel lacks, refuses or
ignores it (gamestore/priority.py); no timing."""
from __future__ import annotations

import asyncio
import ctypes
import os
import subprocess
import sys
import threading
from typing import Any

import pytest

import gamestore
from gamestore import gil, priority

from helpers import subprocess_env

pytestmark = pytest.mark.single_backend  # thread scheduling is the same whichever encoder backend runs

needs_slices = pytest.mark.skipif(priority.slice_of() is None,
                                  reason="threads have no slice of their own (not Linux 6.12+ EEVDF)")


@needs_slices
def test_loop_slice_is_held_while_open_read_back_by_the_kernel_and_comes_back_at_close(tmp_path):
    base = priority.slice_of()
    loop_tid = threading.get_native_id()
    seen: dict[str, Any] = {}

    def call(store: gamestore.GameStore) -> None:
        seen["pool"] = priority.slice_of()
        seen["helper"] = gil.inherit(priority.slice_of)()
        seen["loop from the pool"] = priority.slice_of(loop_tid)  # sched_getattr on the loop's thread by its id

    async def main() -> None:
        async with gamestore.open_async(tmp_path / "s", create=True, loop_slice=0.0001) as store:
            seen["loop"] = priority.slice_of()
            await asyncio.gather(*(store.run_sync(call) for _ in range(4)))  # the pool starts threads on demand
            started: list[float | None] = []  # a thread the loop starts meanwhile: the kernel's slice
            t = threading.Thread(target=lambda: started.append(priority.slice_of()))
            t.start()
            t.join()
            seen["started by the loop"] = started[0]

    asyncio.run(main())
    assert 0.0001 < base
    assert seen == {"loop": 0.0001, "loop from the pool": 0.0001, "pool": base, "helper": base,
                    "started by the loop": base}
    assert not priority._get_attr(0)[2] & priority._RESET_ON_FORK  # the flag went with the hold
    assert priority.slice_of() == base


@needs_slices
def test_without_loop_slice_no_thread_is_touched(tmp_path):
    base = priority.slice_of()

    async def main() -> list[Any]:
        async with gamestore.open_async(tmp_path / "s", create=True) as store:
            return [priority.slice_of(), await store.run_sync(lambda s: priority.slice_of())]

    assert asyncio.run(main()) == [base, base]


@needs_slices
def test_the_shortest_slice_held_applies_and_each_close_gives_back_its_part(tmp_path):
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
def test_a_slice_set_by_the_program_meanwhile_is_its_to_keep():
    base = priority.slice_of()
    release = priority.hold_slice(0.0002)
    assert priority.slice_of() == 0.0002
    assert priority.set_slice(0.0005)  # the program changes it while held
    release()
    release()  # a second call does nothing
    assert priority.slice_of() == 0.0005
    assert priority.set_slice(None) and priority.slice_of() == base
    longer = priority.hold_slice(0.05)  # a hold never lengthens the thread's slice
    assert priority.slice_of() == base
    longer()


_FORK_SCRIPT = """
import os
from gamestore import priority

base = priority.slice_of()
release = priority.hold_slice(0.0001)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(w, repr(priority.slice_of()).encode())
    os._exit(0)
os.close(w)
child = os.read(r, 100).decode()
os.waitpid(pid, 0)
held = priority.slice_of()
release()
print(base, child, held, priority.slice_of())
"""


@needs_slices
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_process_forked_from_the_loop_starts_with_the_slice_from_before():
    proc = subprocess.run([sys.executable, "-c", _FORK_SCRIPT], env=subprocess_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    base, child, held, after = proc.stdout.split()
    assert child == base and held == "0.0001" and after == base


def test_slices_outside_what_linux_accepts_are_refused(tmp_path):
    for bad in (0.00005, 0.2, 0.0):
        with pytest.raises(ValueError, match="loop_slice"):
            gamestore.open_async(tmp_path / "s", loop_slice=bad)
        with pytest.raises(ValueError, match="slice"):
            priority.set_slice(bad)


def _fake_syscall(monkeypatch: pytest.MonkeyPatch, *, get: str, set_: str) -> list[str]:
    """Stand in for libc's syscall(): ``get``/``set_`` 'fail' (-1: ENOSYS, EINVAL, EPERM), 'zero' (a kernel
    before 6.12: sched_runtime reads 0 for SCHED_OTHER, a set is accepted and ignored), 'ignore' (a set accepted,
    nothing changed) or 'real'."""
    real: Any = priority._calls() if priority.SUPPORTED else None
    calls: list[str] = []

    def syscall(nr: int, tid: int, buf: Any, *rest: int) -> int:
        kind = "get" if len(rest) == 2 else "set"  # sched_getattr passes (size, flags), sched_setattr (flags)
        calls.append(kind)
        how = get if kind == "get" else set_
        if how == "fail":
            return -1
        if how in ("zero", "ignore"):
            if kind == "get":
                packed = priority._ATTR.pack(priority._ATTR.size, 0, 0, priority.niceness(), 0, 0, 0, 0, 0, 0)
                ctypes.memmove(buf, packed, len(packed))
            return 0
        return int(real(nr, tid, buf, *rest))

    monkeypatch.setattr(priority, "_syscall", syscall)
    return calls


@pytest.mark.skipif(not priority.SUPPORTED or priority._calls() is False,
                    reason="sched_getattr is called through libc's syscall() on Linux (x86_64, arm64, riscv64)")
@pytest.mark.parametrize("get, set_", [("fail", "fail"), ("zero", "zero"), ("real", "fail"), ("real", "ignore")],
                         ids=["no-syscall", "kernel-before-6.12", "set-refused", "set-ignored"])
def test_without_a_usable_slice_nothing_changes_and_stores_still_open(tmp_path, monkeypatch, get, set_):
    before = priority.slice_of()
    calls = _fake_syscall(monkeypatch, get=get, set_=set_)
    assert priority.set_slice(0.0002) is False
    if get != "real":
        assert priority.slice_of() is None
    priority.hold_slice(0.0001)()

    async def main() -> int:
        async with gamestore.open_async(tmp_path / "s", create=True, loop_slice=0.0001) as store:
            return await store.run_sync(lambda s: priority.niceness())

    assert asyncio.run(main()) == min(19, priority.niceness() + priority.DEFAULT_NICENESS)  # niceness regardless
    assert "get" in calls and ("set" in calls) == (get == "real")  # tried only where a slice reads back
    monkeypatch.undo()
    assert priority.slice_of() == before  # the real slice was never changed


def test_elsewhere_than_linux_no_syscall_is_made(monkeypatch):
    monkeypatch.setattr(priority, "SUPPORTED", False)
    monkeypatch.setattr(priority, "_syscall", None)
    assert priority.slice_of() is None and priority.set_slice(0.0002) is False
    priority.hold_slice(0.0002)()
    assert priority._syscall is False  # looked at the platform only, never loaded libc
