"""A lower CPU priority for gamestore's own worker threads, so that the event loop's thread gets a core first.

On a machine whose cores are all busy with the program's own threads (an
async writer encoding, zstd compressing in helper threads, a background
seal), the event loop's thread, woken by its timer or by a finished pool
call, may wait for a CPU although nothing holds the GIL.  Linux schedules
threads individually and takes a niceness per thread
(``os.setpriority(os.PRIO_PROCESS, native_thread_id, n)``): a thread ``n``
steps nicer gets about ``1.25 ** -n`` of the CPU share of a thread at the
process's niceness when both want one, and a waking thread at the process's
niceness preempts it sooner.  Nothing changes while a core is free.

Which threads (docs/concurrency.md, "Thread priority"): only threads gamestore
itself starts and owns.  The pool :func:`gamestore.open_async` creates (not
an ``executor`` the caller passes in), and the helper threads a call made
from that pool starts (:func:`gamestore.gil.inherit`: background sealing,
parallel compression, scan and SQL read-ahead) for as long as they work on
it.  The caller's threads, the event loop's included, are never touched.

Undoing it: a helper thread gets its niceness back when its work ends (a
persistent helper pool's thread then serves synchronous callers at the usual
priority again), where the process may raise priority (root, or
``RLIMIT_NICE``); where it may not, the thread keeps the lower priority, which
only ever makes gamestore's own work yield to the program's.  A forked child
of a lowered thread starts at the niceness the thread had before (where
permitted).  Elsewhere than Linux all of this does nothing.

The loop's own scheduler slice (``open_async(loop_slice=...)``, opt-in):
Linux 6.12 and later (EEVDF) give every thread a slice, 1.4 ms here by
default, and a running thread is protected from wake-up preemption for it;
a waking thread whose own slice is shorter may preempt at once.  A thread may
ask for its own slice between 0.1 and 100 ms (``sched_setattr``'s
``sched_runtime`` for SCHED_OTHER, unprivileged, niceness kept):
:func:`hold_slice` gives the loop's thread a short one while a store is
open.  (gamestore's own threads keep the kernel's: shorter slices for them
were measured not to help, and take the loop's advantage away.)  Where the
kernel lacks the call, refuses it or ignores the value (before 6.12: it reads
back unchanged), nothing is changed.
"""
from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

__all__ = ["SUPPORTED", "DEFAULT_NICENESS", "MIN_SLICE", "MAX_SLICE", "lower", "target", "lowered", "passing_on",
           "passed_on", "niceness", "slice_of", "set_slice", "check_slice", "hold_slice"]

#: Whether threads can be given their own niceness here (Linux).
SUPPORTED = sys.platform.startswith("linux") and hasattr(os, "setpriority")

#: The niceness open_async's pool and its helpers run at, relative to the process (``worker_niceness``).
DEFAULT_NICENESS = 10

#: The range Linux accepts for a SCHED_OTHER thread's own scheduler slice (seconds).
MIN_SLICE, MAX_SLICE = 0.0001, 0.1

_MAX = 19
_state = threading.local()  # .before: the niceness this module moved the thread from (absent: untouched)
#                              .pass_on: the niceness helpers started by this thread's current call get (0: none)


def niceness(tid: int | None = None) -> int:
    """The niceness of thread ``tid`` (native id; None: the calling thread), 0 where threads have none."""
    if not SUPPORTED:
        return 0
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id() if tid is None else tid)


def _set(nice: int) -> bool:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        return True
    except OSError:  # not permitted (raising priority back without CAP_SYS_NICE / RLIMIT_NICE)
        return False


# sched_setattr / sched_getattr: syscall numbers per machine, and struct sched_attr (its first 56 bytes: size,
# policy, flags, nice, priority, runtime, deadline, period, util_min, util_max).
_ATTR_CALLS = {"x86_64": (314, 315), "amd64": (314, 315), "aarch64": (274, 275), "arm64": (274, 275),
               "riscv64": (274, 275)}
_ATTR = struct.Struct("IIQiIQQQII")
_SCHED_OTHER = 0
_RESET_ON_FORK = 0x01  # SCHED_FLAG_RESET_ON_FORK: threads and processes the thread starts get the kernel's slice
_syscall: Any = None  # libc's syscall(), loaded at first use; False: not available here


def _calls() -> Any:
    global _syscall
    if _syscall is None:
        _syscall = False
        if SUPPORTED and platform.machine().lower() in _ATTR_CALLS:
            try:
                _syscall = ctypes.CDLL(None, use_errno=True).syscall
            except (OSError, AttributeError):  # pragma: no cover - a libc without syscall()
                pass
    return _syscall


def _get_attr(tid: int) -> tuple[int, ...] | None:
    call = _calls()
    if not call:
        return None
    buf = ctypes.create_string_buffer(_ATTR.size)
    if call(_ATTR_CALLS[platform.machine().lower()][1], tid, buf, _ATTR.size, 0) != 0:
        return None  # ENOSYS (before Linux 3.14), EPERM, ESRCH...
    return _ATTR.unpack(buf.raw)


def _slice_ns(tid: int = 0) -> int | None:
    attr = _get_attr(tid)
    if attr is None or attr[1] != _SCHED_OTHER or not attr[5]:
        return None  # no sched_getattr, another policy, or a kernel without per-thread slices (reads 0)
    return int(attr[5])


def _set_slice_ns(ns: int, tid: int = 0, *, reset_on_fork: bool | None = None) -> bool:
    """Set thread ``tid``'s slice to ``ns`` (0: the kernel's default), its niceness kept, and its reset-on-fork
    flag as it was (``reset_on_fork`` None) or as given; whether the slice reads back so."""
    attr = _get_attr(tid)
    if attr is None or attr[1] != _SCHED_OTHER:
        return False
    flags = attr[2] & _RESET_ON_FORK if reset_on_fork is None else (_RESET_ON_FORK if reset_on_fork else 0)
    buf = ctypes.create_string_buffer(_ATTR.pack(_ATTR.size, _SCHED_OTHER, flags, attr[3], 0, ns, 0, 0, 0, 0),
                                      _ATTR.size)
    if _calls()(_ATTR_CALLS[platform.machine().lower()][0], tid, buf, 0) != 0:
        return False  # EINVAL (a kernel that checks the value), EPERM, ENOSYS
    return ns == 0 or _slice_ns(tid) == ns  # a kernel before 6.12 accepts and ignores it


def slice_of(tid: int | None = None) -> float | None:
    """The scheduler slice (seconds) of thread ``tid`` (native id; None: the calling thread), None where threads
    have none (not Linux 6.12+ EEVDF, or not SCHED_OTHER)."""
    ns = _slice_ns(0 if tid is None or tid == threading.get_native_id() else tid)
    return None if ns is None else ns / 1e9


def set_slice(seconds: float | None) -> bool:
    """Ask for a scheduler slice of ``seconds`` (:data:`MIN_SLICE`..:data:`MAX_SLICE`; None: the kernel's
    default) for the calling thread, keeping its niceness; whether it took effect (False, and nothing changed,
    where unsupported, refused or ignored)."""
    if seconds is not None:
        check_slice(seconds, "slice")
    return _slice_ns() is not None and _set_slice_ns(0 if seconds is None else round(seconds * 1e9))


def check_slice(seconds: float, name: str) -> None:
    """ValueError naming option ``name`` unless ``seconds`` is a slice Linux accepts."""
    if not MIN_SLICE <= seconds <= MAX_SLICE:
        raise ValueError(f"{name} must be within {MIN_SLICE:g}..{MAX_SLICE:g} s, got {seconds!r}")


# native id -> [its slice before the first hold (ns), slices held, slice set (ns), its reset-on-fork flag before]
_holds: dict[int, list[Any]] = {}
_holds_lock = threading.Lock()


def hold_slice(seconds: float, tid: int | None = None) -> Callable[[], None]:
    """Give thread ``tid`` (native id; None: the calling thread) a scheduler slice of at most ``seconds``
    (``open_async(loop_slice=...)``); returns the function that ends the hold.

    The shortest slice held for a thread applies (never longer than its own); when the last hold ends, the
    thread gets its slice from before back, unless someone else changed it meanwhile.  Meanwhile the thread
    carries the kernel's reset-on-fork flag, so the threads and processes it starts (a pool's threads created
    on demand) get the kernel's slice, not its short one (and niceness 0 if its own is negative).  Where
    threads have no slice of their own, nothing happens.
    """
    check_slice(seconds, "loop_slice")
    tid = threading.get_native_id() if tid is None else tid
    with _holds_lock:
        entry = _holds.get(tid)
        if entry is None:
            before, attr = _slice_ns(tid), _get_attr(tid)
            if before is None or attr is None:
                return lambda: None
            entry = _holds[tid] = [before, [], before, bool(attr[2] & _RESET_ON_FORK)]
        entry[1].append(round(seconds * 1e9))
        _apply_hold(tid, entry)
    done = threading.Event()

    def release() -> None:
        if done.is_set():
            return
        done.set()
        with _holds_lock:
            entry[1].remove(round(seconds * 1e9))
            if entry[1]:
                _apply_hold(tid, entry)
            else:
                del _holds[tid]
                if _slice_ns(tid) == entry[2]:  # else changed by someone else (or the thread ended): theirs
                    _set_slice_ns(entry[0], tid, reset_on_fork=entry[3])

    return release


def _apply_hold(tid: int, entry: list[Any]) -> None:
    ns = min(entry[0], *entry[1])
    if _slice_ns(tid) == entry[2] and _set_slice_ns(ns, tid, reset_on_fork=True):
        entry[2] = ns


def lower(by: int) -> None:
    """Make the calling thread ``by`` steps nicer than it is, for the rest of its life (a pool initializer).

    Meant for threads gamestore creates and owns; does nothing for ``by <= 0``
    or where unsupported (and where not permitted).
    """
    if by <= 0 or not SUPPORTED:
        return
    before = niceness()
    if _set(min(_MAX, before + by)) and not hasattr(_state, "before"):
        _state.before = before


def target(by: int) -> int | None:
    """The niceness ``by`` steps nicer than the calling thread's (None: ``by <= 0`` or unsupported), for
    :func:`passing_on`: helper threads inherit their creator's niceness, so the target is absolute."""
    if by <= 0 or not SUPPORTED:
        return None
    return min(_MAX, niceness() + by)


@contextmanager
def lowered(to: int | None) -> Iterator[None]:
    """Within the block, the calling thread (a gamestore helper) runs at niceness ``to`` at least (None:
    unchanged); restored after where permitted."""
    if to is None or not SUPPORTED or hasattr(_state, "before"):  # unchanged, or lowered already (a pool thread)
        yield
        return
    before = niceness()
    if not _set(max(to, before)):
        yield
        return
    _state.before = before
    try:
        yield
    finally:
        if _set(before):
            del _state.before


@contextmanager
def passing_on(to: int | None) -> Iterator[None]:
    """Within the block, helper threads this thread starts through :func:`gamestore.gil.inherit` run at
    niceness ``to`` (see :func:`target`; None: unchanged); the calling thread itself is left alone (it may
    be the caller's)."""
    saved = getattr(_state, "pass_on", None)
    _state.pass_on = to
    try:
        yield
    finally:
        _state.pass_on = saved


def passed_on() -> int | None:
    """What :func:`passing_on` set for the calling thread (None: nothing)."""
    return getattr(_state, "pass_on", None)


def _before_fork() -> None:
    _state.forking = threading.get_native_id()


def _after_fork_in_child() -> None:
    # The child's one thread is the one that forked; a niceness this module gave that thread is not the child's
    # to keep (a worker process forked from a pool call would otherwise run nicer than its parent).
    before = getattr(_state, "before", None)
    if before is not None and _set(before):
        del _state.before
    _state.pass_on = None
    # a slice held for the forking thread (a loop that forks) is not the child's either; the other threads are gone
    global _holds_lock
    _holds_lock = threading.Lock()  # another thread may have held it at the fork
    entry = _holds.get(getattr(_state, "forking", -1))
    _holds.clear()
    if entry is not None and _slice_ns() == entry[2]:
        _set_slice_ns(entry[0], reset_on_fork=entry[3])


if SUPPORTED:
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
