"""Which thread holds the GIL, sampled from outside the process: per-probe attribution of event-loop lag.

A helper *process* (so it never waits for our GIL) reads CPython's "current
thread state" pointer (``_PyRuntime.gilstate.tstate_current``: the thread that
holds the GIL, NULL while nobody does) from ``/proc/<pid>/mem`` every
``period`` seconds and records it with its ``time.monotonic()``
(one clock for both processes).  Threads of interest register themselves
(:meth:`HolderSampler.register`: the loop, each pool thread, gamestore's helper
threads through ``gamestore.gil.inherit``); :meth:`HolderSampler.shares` then
says, for any interval (a late probe's), for how long each of them held the GIL,
and for how long nobody did (the GIL free, the loop not yet running: its wake-up).

CPython 3.11 on Linux only (the field's offset is found by scanning the runtime
for the calling thread's state from two threads, and checked against the
layout of 3.11); :func:`available` says whether it runs here.
"""
from __future__ import annotations

import array
import bisect
import ctypes
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Iterable, Iterator

__all__ = ["available", "tstate", "syscall_name", "HolderSampler"]

_OFFSET_3_11 = 576  # offsetof(_PyRuntimeState, gilstate.tstate_current) in CPython 3.11 (x86-64, aarch64)

NOBODY_RUNNABLE = "nobody: the GIL free, the watched thread running or waiting for a CPU"
NOBODY_ASLEEP = "nobody: the GIL free, the watched thread asleep (its wake-up not yet delivered)"
UNKNOWN = "unknown: the sampler waited for a CPU"

#: Longest time between two samples still read as "the holder did not change" (seconds).
GAP = 0.001

_SAMPLER = (
    "import os, struct, sys, time\n"
    "pid, addr, period, tid_at = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[6])\n"
    "fd = os.open(f'/proc/{pid}/mem', os.O_RDONLY)\n"
    "out = open(sys.argv[4], 'wb')\n"
    "wfd = os.open(f'/proc/{pid}/task/{sys.argv[5]}/stat', os.O_RDONLY)\n"
    "sfd_loop = os.open(f'/proc/{pid}/task/{sys.argv[5]}/syscall', os.O_RDONLY)\n"
    "mono, pread, sleep, pack = time.monotonic, os.pread, time.sleep, struct.Struct('dQQq').pack\n"
    "sched = {}\n"
    "stop = sys.stdin.fileno(); os.set_blocking(stop, False)\n"
    "n = 0\n"
    "while True:\n"
    "    v = int.from_bytes(pread(fd, 8, addr), 'little')\n"
    "    waited = 0\n"
    "    if not v:  # nobody holds the GIL: is the watched thread running/runnable (0) or asleep (1)?\n"
    "        st = pread(wfd, 128, 0)\n"
    "        v = 0 if st[st.rindex(b')') + 2:st.rindex(b')') + 3] == b'R' else 1\n"
    "    else:  # the holder's run-queue wait so far (ns): did it run, or wait for a CPU holding the GIL?\n"
    "        try:\n"
    "            tid = int.from_bytes(pread(fd, 8, v + tid_at), 'little')\n"
    "            sfd = sched.get(tid)\n"
    "            if sfd is None:\n"
    "                sfd = sched[tid] = os.open(f'/proc/{pid}/task/{tid}/schedstat', os.O_RDONLY)\n"
    "            waited = int(pread(sfd, 64, 0).split()[1])\n"
    "        except (OSError, ValueError, IndexError):\n"
    "            pass\n"
    "    sc = pread(sfd_loop, 24, 0).split(b' ', 1)[0]\n"
    "    t = mono()\n"
    "    out.write(pack(t, v, waited, int(sc) if sc.isdigit() else -1))\n"
    "    n += 1\n"
    "    if n % 256 == 0:\n"
    "        try:\n"
    "            if os.read(stop, 1) == b'':\n"
    "                break\n"
    "        except BlockingIOError:\n"
    "            pass\n"
    "    sleep(period)\n"
    "out.close()\n"
)


_SYSCALLS = {202: "futex", 232: "epoll_wait", 281: "epoll_pwait", 7: "poll", 23: "select", -1: "running"}


def syscall_name(nr: int) -> str:
    """A system call number as the sampler records the watched thread's (x86-64 names; -1: running)."""
    return _SYSCALLS.get(nr, f"syscall {nr}") if sys.platform == "linux" and os.uname().machine == "x86_64" \
        else ("running" if nr == -1 else f"syscall {nr}")


def tstate() -> int:
    """The calling thread's state (its address), what the sampler records while the thread holds the GIL."""
    get = ctypes.pythonapi.PyThreadState_Get
    get.restype = ctypes.c_void_p
    return int(get())


def _address() -> int | None:
    """The address of ``_PyRuntime.gilstate.tstate_current`` in this process, or None where unsupported."""
    if not sys.platform.startswith("linux") or sys.version_info[:2] != (3, 11):
        return None
    try:
        base = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))
    except (ValueError, AttributeError):
        return None

    def holds() -> bool:  # the slot names the calling thread while it holds the GIL
        return struct.unpack("Q", ctypes.string_at(base + _OFFSET_3_11, 8))[0] == tstate()

    other: list[bool] = []
    t = threading.Thread(target=lambda: other.append(holds()))
    t.start()
    t.join()
    return base + _OFFSET_3_11 if holds() and other == [True] else None


def _native_id_offset() -> int | None:
    """Where a thread state keeps its thread's native id (CPython 3.11: ``native_thread_id``), found by scanning."""
    buf = ctypes.string_at(tstate(), 512)
    nid = threading.get_native_id()
    hits = [i for i in range(0, 512, 8) if struct.unpack_from("Q", buf, i)[0] == nid]
    return hits[0] if len(hits) == 1 else None


def available() -> bool:
    return _address() is not None and os.access(f"/proc/{os.getpid()}/mem", os.R_OK)


class HolderSampler:
    """Samples the GIL holder of this process from a helper process while the ``with`` block runs."""

    def __init__(self, period: float = 0.0001) -> None:
        addr = _address()
        if addr is None:
            raise RuntimeError("GIL-holder sampling needs CPython 3.11 on Linux")
        self._addr = addr
        self._period = period
        self.names: dict[int, str] = {0: NOBODY_RUNNABLE, 1: NOBODY_ASLEEP, -1: UNKNOWN}
        self._lock = threading.Lock()
        self.times = array.array("d")
        self.holders = array.array("Q")
        self.waited = array.array("Q")  # the holder's run-queue wait so far (ns; 0: not read)
        self.syscall = array.array("q")  # the watched thread's system call (-1: running)

    def register(self, name: str) -> None:
        """Name the calling thread's state (a thread state may be reused by a later thread: the last name wins)."""
        with self._lock:
            self.names[tstate()] = name

    def __enter__(self) -> "HolderSampler":
        """Start sampling; the calling thread is the watched one (the event loop's): while nobody holds the GIL,
        the sampler tells whether it is runnable or asleep."""
        fd, self._file = tempfile.mkstemp(prefix="gil-holders-")
        os.close(fd)
        self._proc = subprocess.Popen([sys.executable, "-c", _SAMPLER, str(os.getpid()), str(self._addr),
                                       str(self._period), self._file, str(threading.get_native_id()),
                                       str(_native_id_offset() or 0)],
                                      stdin=subprocess.PIPE)
        time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)
        with open(self._file, "rb") as f:
            data = f.read()
        os.unlink(self._file)
        rec = struct.Struct("dQQq")
        for t, h, w, sc in rec.iter_unpack(data[: len(data) - len(data) % rec.size]):
            self.times.append(t)
            self.holders.append(h)
            self.waited.append(w)
            self.syscall.append(sc)

    def segments(self, a: float, b: float) -> Iterator[tuple[int, float, float, float]]:
        """(thread state, start, end, seconds of it the holder waited for a CPU) of each holder within ``[a, b]``:
        thread state 0 where nobody held the GIL and the watched thread was running or runnable, 1 where it was
        asleep, -1 where the sampler itself did not run for over ``GAP`` (a busy machine's run queue): unknown."""
        i = max(0, bisect.bisect_right(self.times, a) - 1)
        while i < len(self.times) and self.times[i] < b:
            start = max(a, self.times[i])
            nxt = self.times[i + 1] if i + 1 < len(self.times) else b
            end = min(b, nxt)
            if end > start:
                h = self.holders[i]
                queued = 0.0
                if i + 1 < len(self.times) and self.holders[i + 1] == h and self.waited[i] and self.waited[i + 1]:
                    queued = min(end - start, (self.waited[i + 1] - self.waited[i]) / 1e9)
                yield (h if nxt - self.times[i] <= GAP else -1), start, end, queued
            i += 1

    def shares(self, a: float, b: float) -> dict[str, float]:
        """Seconds each named holder (unnamed: "other thread") held the GIL within ``[a, b]``."""
        out: dict[str, float] = {}
        for h, start, end, _q in self.segments(a, b):
            name = self.names.get(h, "other thread")
            out[name] = out.get(name, 0.0) + end - start
        return out


def summarize(per_probe: Iterable[dict[str, float]]) -> list[tuple[str, int, float]]:
    """(holder, late probes in which it held the GIL longest, its summed seconds), most frequent first."""
    first: dict[str, int] = {}
    total: dict[str, float] = {}
    for shares in per_probe:
        if not shares:
            continue
        top = max(shares, key=lambda k: shares[k])
        first[top] = first.get(top, 0) + 1
        for k, v in shares.items():
            total[k] = total.get(k, 0.0) + v
    return sorted(((k, first.get(k, 0), total[k]) for k in total), key=lambda r: (-r[1], -r[2]))
