"""Handing the GIL over for real during long work in a latency-sensitive thread (docs/concurrency.md).

CPython hands the GIL to a waiting thread only once that thread has waited a
whole switch interval (5 ms by default): the waiter sleeps that long, then
asks the holder to drop it.  An asyncio loop waking while a pool thread
validates and encodes a batch therefore waits up to the interval, however
little it has to do.  A thread marked with :func:`handing_over` (the async
API's pool calls are) instead gives the GIL up itself, at most ``every``
seconds of work after it last did: when the thread it hands over to (the
event loop's) is blocked waiting for the GIL, it releases the GIL and sleeps
in short steps until that thread has it.  (A release-and-retake alone does
not do: the releasing thread nearly always wins the race, and the waiter
restarts its interval.)

Where a marked thread looks at the time: every 64th Python function call or
return (a C profile function, installed while marked: Python code needs no
switch points of its own), and at :func:`switch_point`, which the compiled
encoder and decoder call every few dozen rows (``_ext/_common.pxd``).  An
unmarked thread never pauses, so synchronous programs pay nothing.  Whether
the waiter waits is read from Linux's ``/proc/self/task/<tid>/syscall``
(one system call per look); elsewhere, or without the compiled module, a
marked thread sleeps briefly (``time.sleep(0)``) every ``every`` seconds
instead, which hands over less reliably.  A look that finds the waiter
*woken* instead (runnable, ``R`` in ``/proc/self/task/<tid>/stat``, not yet
blocked on the GIL: its timer fired, or a call finished, and it may be queued
for the very CPU this thread runs on) releases the GIL and naps 20 us (twice
while the waiter stays so), so that the waiter gets the CPU and the GIL at
once instead of at the scheduler's next preemption
(``counts()["yielded_to_woken"]``).
"""
from __future__ import annotations

import functools
import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Generic, Iterator, TypeVar

from . import priority

__all__ = ["switch_point", "handing_over", "interval", "inherit", "counts", "wake", "marked_threads", "HandingOver",
           "Waiter", "DEFAULT_EVERY"]

T = TypeVar("T")

#: Default longest stretch of GIL-holding work between two handovers (seconds).
DEFAULT_EVERY = 0.0005

try:
    from . import _gil as _c
except ImportError:  # pragma: no cover - not built: the pure-Python handover below
    _c = None  # type: ignore[assignment]

_state = threading.local()  # .marking: (every, to) while marked; without _c also .due (next handover, 0.0: none)
_monotonic = time.monotonic
_sleep = time.sleep
_MAX_WAITERS = 8


class Waiter:
    """A thread of this process watched for waiting on a lock (Linux: ``/proc/self/task/<tid>/syscall``).

    A thread that woke up and wants the GIL sleeps in ``futex``; an event loop
    with nothing to do sleeps in ``epoll_wait``; a running (or runnable)
    thread reads as ``running``.  Reading the file costs one system call.
    """

    _futex: int | None = None  # the number shown while blocked on a lock; -1: threads cannot be watched here

    def __init__(self, native_id: int) -> None:
        self.native_id = native_id
        self.fd = os.open(f"/proc/self/task/{native_id}/syscall", os.O_RDONLY | os.O_CLOEXEC)
        try:  # its state: runnable (R) once woken, also while it waits for a CPU
            self.stat_fd = os.open(f"/proc/self/task/{native_id}/stat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.stat_fd = -1

    def close(self) -> None:
        os.close(self.fd)
        if self.stat_fd >= 0:
            os.close(self.stat_fd)

    @classmethod
    def of(cls, native_id: int) -> "Waiter | None":
        """The watcher of thread ``native_id`` (cached), or None where threads cannot be watched."""
        w = _waiters.get(native_id)
        if w is not None:
            return w
        if cls._futex is None:
            cls._futex = _futex_number()
            if _c is not None:
                _c.set_futex(cls._futex)
        if cls._futex < 0 or _c is None:
            return None
        try:
            w = cls(native_id)
        except OSError:
            return None
        with _waiters_lock:
            while len(_waiters) >= _MAX_WAITERS:  # loops come and go (asyncio.run per thread): keep a few
                _waiters.pop(next(iter(_waiters))).close()
            _waiters[native_id] = w
        return w


_waiters: dict[int, Waiter] = {}
_waiters_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # The watched threads are the parent's (each descriptor names a task of the parent process), and the loop a
    # marked thread handed over to is not in the child: the forking thread stops handing over, the cache empties.
    for w in _waiters.values():
        w.close()
    _waiters.clear()
    if _c is not None:
        _c.forget()
    due = getattr(_state, "due", 0.0)
    if due:
        _state.due = 0.0
    for entry in _wakers.values():  # their threads are the parent's
        for fd in entry[3]:
            os.close(fd)
    _wakers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _futex_number() -> int:
    """The system call number of a thread blocked on a lock, read from one (no table per architecture); -1 if
    threads cannot be watched (no ``/proc``)."""
    lock = threading.Lock()
    lock.acquire()
    started = threading.Event()
    tid: list[int] = []

    def blocked() -> None:
        tid.append(threading.get_native_id())
        started.set()
        lock.acquire()

    t = threading.Thread(target=blocked, name="gamestore-gil-probe", daemon=True)
    t.start()
    started.wait()
    try:
        deadline = _monotonic() + 1.0
        while _monotonic() < deadline:
            try:
                with open(f"/proc/self/task/{tid[0]}/syscall", "rb") as f:
                    nr = f.read(16).split(b" ", 1)[0]
            except OSError:
                return -1
            if nr.isdigit():
                return int(nr)
            _sleep(0.0005)  # not blocked yet
        return -1
    finally:
        lock.release()
        t.join()


def switch_point() -> None:
    """Hand the GIL over if this thread is marked and has worked ``every`` seconds since it last did.

    With a watched waiter (the event loop's thread, given to
    :func:`handing_over`), only if that thread is blocked on a lock, i.e.
    wants the GIL: this thread then releases the GIL and sleeps in 20 us
    steps until the waiter runs (it took the GIL), at most 1 ms (if it stays
    blocked, it waits for something else: the next look is 8 intervals
    later).  Without one: ``time.sleep(0)``, which releases the GIL for the
    kernel's timer slack (~50 us on Linux), time for a waiting thread to
    wake and take it, though not always enough.

    Being a bytecode function, its entry also runs the interpreter's
    eval-breaker check (signal handlers, the switch-interval handover), which
    compiled loops would otherwise never reach.
    """
    if _c is not None:
        _c.switch_point()
        return
    due = getattr(_state, "due", 0.0)
    if due and _monotonic() >= due:
        _sleep(0)
        _state.due = _monotonic() + _state.marking[0]


@contextmanager
def handing_over(every: float = DEFAULT_EVERY, *, to: int | None = None) -> Iterator[None]:
    """Within the block, this thread hands the GIL over at switch points at least every ``every`` seconds.

    ``to``: the native id (``threading.get_native_id()``) of the thread that
    must not wait, typically the event loop's: the GIL is then handed over
    only when that thread waits for it (where threads can be watched, see
    :class:`Waiter`), and then until it got it.
    """
    if every <= 0:
        raise ValueError("every must be > 0")
    saved = getattr(_state, "marking", None)
    _state.marking = (every, to)
    try:
        if _c is not None:
            waiter = None if to is None else Waiter.of(to)
            previous = _c.mark(every, -1 if waiter is None else waiter.fd, -1 if waiter is None else waiter.stat_fd)
            try:
                yield
            finally:
                _c.restore(previous)
        else:
            saved_due = getattr(_state, "due", 0.0)
            _state.due = _monotonic() + every
            try:
                yield
            finally:
                _state.due = saved_due
    finally:
        _state.marking = saved


def interval() -> float | None:
    """This thread's handover interval (seconds), or None when it is not marked."""
    marking = getattr(_state, "marking", None)
    return None if marking is None else marking[0]


def inherit(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` for a helper thread this thread starts: run marked as this thread is, and at the lower priority
    this thread's call passes on (:func:`gamestore.priority.passing_on`); ``fn`` itself if neither applies.

    For work a marked call hands to other threads (sealing, parallel
    compression): unmarked, their Python code would keep the GIL from the
    loop for a whole switch interval; at the process's priority, they would
    take a core from the loop's thread when it wakes.
    """
    marking = getattr(_state, "marking", None)
    nice = priority.passed_on()
    if marking is None and nice is None:
        return fn

    @functools.wraps(fn)
    def helper(*args: Any, **kwargs: Any) -> T:
        with priority.lowered(nice), priority.passing_on(nice):
            if marking is None:
                return fn(*args, **kwargs)
            with handing_over(marking[0], to=marking[1]):
                return fn(*args, **kwargs)

    return helper


def counts() -> dict[str, int]:
    """Process-wide tallies of the compiled handover (zeros without it): looks at a due switch point, how many
    found the waiter waiting, how many handed the GIL over, how many gave up (the waiter stayed blocked), looks a
    marked thread took, not due, because another marked thread was handing over, and of the give-ups those where
    the waiter was runnable (woken, waiting for a CPU: the next look comes after one interval, not eight), and
    how often a handover woke the waiter again (still asleep 20 us after the release: the wake-up had gone to
    another thread waiting for the GIL), how often a look stepped aside for a woken waiter (runnable, not yet
    blocked on the GIL), and how often a waker (:func:`wake`) woke its thread."""
    due, waiting, handed, gave_up, joined, runnable, resent, yielded = _c.counts() if _c is not None else (0,) * 8
    return {"due": due, "waiting": waiting, "handed_over": handed, "gave_up": gave_up, "joined": joined,
            "gave_up_runnable": runnable, "wakeups_resent": resent, "yielded_to_woken": yielded,
            "woken": _c.woken() if _c is not None else 0}


def marked_threads() -> int:
    """How many threads are marked (inside :func:`handing_over`) right now; wakers look only while one is."""
    return _c.marked() if _c is not None else 0


_wakers: dict[int, list[Any]] = {}  # native id -> [Waker, its thread, users, descriptors]
_wakers_lock = threading.Lock()


def wake(native_id: int) -> Callable[[], None]:
    """Start (or share) a waker for thread ``native_id`` (an event loop's); returns the function that stops using it.

    A thread released from the GIL wakes *one* waiting thread; when that is a
    pool thread without a CPU yet (a busy machine, gamestore's threads run
    nicer), the GIL stays free while the loop sleeps on until its own 5 ms
    timeout.  The waker, a thread of its own that sleeps without the GIL,
    looks at the loop every 250 us while a thread of the process is marked
    (:func:`handing_over`: gamestore's calls); asleep on a lock twice in a
    row, the loop gets a fresh wake-up: the waker takes the GIL (when free)
    and releases it.  With no thread marked it sleeps (a look reads two /proc
    files: looking all the time cost an idle process ~6% of a core).
    Where threads cannot be watched, nothing is started.
    """
    if _c is None or Waiter.of(native_id) is None:
        return lambda: None
    with _wakers_lock:
        entry = _wakers.get(native_id)
        if entry is None:
            fds = [os.open(f"/proc/self/task/{native_id}/{name}", os.O_RDONLY | os.O_CLOEXEC)
                   for name in ("syscall", "stat")]
            waker = _c.Waker(fds[0], fds[1])
            thread = threading.Thread(target=waker.run, name="gamestore-gil-waker", daemon=True)
            entry = _wakers[native_id] = [waker, thread, 0, fds]
            thread.start()
        entry[2] += 1
    done = threading.Event()

    def release() -> None:
        if done.is_set():
            return
        done.set()
        with _wakers_lock:
            entry[2] -= 1
            if entry[2] or _wakers.get(native_id) is not entry:
                return
            del _wakers[native_id]
        entry[0].stop()
        if entry[1] is not threading.current_thread():
            entry[1].join()
        for fd in entry[3]:
            os.close(fd)

    return release


class HandingOver(Generic[T]):
    """``fn()`` run under :func:`handing_over` (``every`` None: not marked), the helper threads it starts at
    niceness ``nice`` (None: unchanged); what the async API submits to its pool."""

    __slots__ = ("__wrapped__", "every", "to", "nice")

    def __init__(self, fn: Callable[[], T], every: float | None, to: int | None, nice: int | None = None) -> None:
        self.__wrapped__ = fn
        self.every = every
        self.to = to
        self.nice = nice

    def __call__(self) -> T:
        with priority.passing_on(self.nice):
            if self.every is None:
                return self.__wrapped__()
            with handing_over(self.every, to=self.to):
                return self.__wrapped__()

    def __repr__(self) -> str:
        every = "never" if self.every is None else f"every {self.every * 1000:g} ms"
        return f"<HandingOver {every}, helpers at niceness {self.nice}: {self.__wrapped__!r}>"


def wrap(fn: Callable[..., T], *args: Any, every: float | None, nice: int | None = None,
         **kwargs: Any) -> Callable[[], T]:
    """``fn(*args, **kwargs)`` as a no-argument callable for another thread, handing the GIL over to this one
    (see :func:`handing_over`) every ``every`` s of work (None: never), the helper threads it starts at
    niceness ``nice`` (:func:`inherit`, :func:`gamestore.priority.target`; None: unchanged)."""
    call: Callable[[], T] = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
    if every is None and nice is None:
        return call
    return HandingOver(call, every, threading.get_native_id(), nice)


class SwitchInterval:
    """The interpreter's GIL switch interval, lowered while stores that asked for it are open.

    The lowest interval asked for by an open store applies (never raised above the
    interpreter's own setting); when the last of them closes, the setting from before
    the first is restored, unless someone else changed it meanwhile.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: list[float] = []
        self._saved = 0.0
        self._set = 0.0

    def hold(self, interval: float) -> None:
        with self._lock:
            if not self._held:
                self._saved = sys.getswitchinterval()
            self._held.append(interval)
            self._apply(min(self._saved, *self._held))

    def release(self, interval: float) -> None:
        with self._lock:
            self._held.remove(interval)
            if sys.getswitchinterval() != self._set:  # changed by someone else: theirs to keep
                return
            self._apply(min(self._saved, *self._held) if self._held else self._saved)

    def _apply(self, value: float) -> None:
        sys.setswitchinterval(value)
        self._set = sys.getswitchinterval()


SWITCH_INTERVAL = SwitchInterval()  # held by async stores opened with switch_interval=
