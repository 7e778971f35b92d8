"""The cyclic garbage collector paused while gamestore builds, or hands over, many fresh containers.

A young collection that starts while a call's result is being built or handed to its caller (a game record is
~1,300 fresh dicts and lists, more than the young generation's threshold of 700) walks every container of it
only to find it reachable, and promotes it to the older generations, whose collections then walk it again.  None
of them holds a cycle, so such a collection frees nothing.  While a pause lasts no collection starts (in any
thread: the collector's switch is process-wide); one that is due runs at the first allocation after the last
pause has ended, by which time a caller that dropped the result has freed it.

Pauses are counted, so that pool threads may pause at once: the first switches the collector off, the last to
end switches it back on if it was on when the first began, also when the paused code raised.  A :class:`Hold`
may begin in one thread and end in another (the async API: a pool call's result travels to the event loop's
thread with the collector still paused).  A program that calls ``gc.disable()`` itself while a pause lasts finds
the collector on again when the last pause ends; one that switched it off before is left alone.

Overlapping pauses could keep the collector off for good (four pool threads reading games back to back): a pause
that would begin once the collector has been off for :data:`MAX_OFF` seconds without a break does not begin
(:func:`pause` returns False and the code runs as without it), so the collector is back on as soon as the pauses
in progress end.
"""
from __future__ import annotations

import gc
import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator

__all__ = ["Hold", "pause", "resume", "paused", "active", "carry"]

_lock = threading.Lock()
_count = 0  # pauses in progress
_restore = False  # whether the collector was on when the first of them began
_epoch = 0  # bumped in a forked child: holds begun before the fork end there without effect
_since = 0.0  # time.monotonic() when the first of the pauses in progress began

#: The longest the collector stays off through overlapping pauses before new ones stop beginning (seconds).
MAX_OFF = 0.05
_clock = time.monotonic

#: Whether the async API keeps the collector paused until a result built in its pool reaches the awaiting task
#: (gamestore/aio.py; False: side-by-side measurements, benchmarks/loop_gc_trace.py --carry on off).
carry = True


def pause() -> bool:
    """Begin a pause, unless the collector has been off for :data:`MAX_OFF` through overlapping pauses; whether
    it began.  End one that began with ``resume(True)`` (``try``/``finally``: ``resume(began)``).  Allocates
    nothing the collector counts before the collector is off (a ``with`` block's bound ``__exit__`` would: the
    allocation could start the very collection the pause is for), which is why read_game calls these rather
    than :func:`paused`."""
    global _count, _restore, _since
    _lock.acquire()
    try:
        if not _count:
            _restore = gc.isenabled()
            gc.disable()
            _since = _clock()
        elif _clock() - _since > MAX_OFF:
            return False
        _count += 1
        return True
    finally:
        _lock.release()


def resume(began: bool = True) -> None:
    """End a pause :func:`pause` began (nothing when ``began`` is False): the last one to end switches the
    collector back on if the first found it on."""
    global _count
    if not began:
        return
    _lock.acquire()
    try:
        if not _count:  # a pause begun before a fork, ending in the child: the child's count started afresh
            return
        _count -= 1
        if not _count and _restore:
            gc.enable()
    finally:
        _lock.release()


class Hold:
    """One pause: :meth:`begin` and :meth:`end` (from any thread; each takes effect once, ``end`` before
    ``begin`` cancels it)."""

    __slots__ = ("_state", "_epoch", "_guard")

    def __init__(self) -> None:
        self._state = 0  # 0: not begun, 1: in progress, 2: ended
        self._epoch = -1
        self._guard = threading.Lock()

    def begin(self) -> None:
        with self._guard:
            if self._state:
                return
            self._state, self._epoch = (1 if pause() else 2), _epoch

    def end(self) -> None:
        with self._guard:
            began, self._state = self._state == 1 and self._epoch == _epoch, 2
            if began:
                resume()


@contextmanager
def paused() -> Iterator[None]:
    """``with paused():`` no collection starts while the block runs (once it has begun); the collector's state is
    restored after it, also on errors."""
    began = pause()
    try:
        yield
    finally:
        resume(began)


def active() -> int:
    """How many pauses are in progress."""
    return _count


def _after_fork_in_child() -> None:
    """A forked child has only the forking thread: the others' pauses would never end there."""
    global _lock, _count, _epoch
    _lock = threading.Lock()
    _epoch += 1
    if _count and _restore:
        gc.enable()
    _count = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
