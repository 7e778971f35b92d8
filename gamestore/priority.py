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
"""
from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["SUPPORTED", "DEFAULT_NICENESS", "lower", "target", "lowered", "passing_on", "passed_on", "niceness"]

#: Whether threads can be given their own niceness here (Linux).
SUPPORTED = sys.platform.startswith("linux") and hasattr(os, "setpriority")

#: The niceness open_async's pool and its helpers run at, relative to the process (``worker_niceness``).
DEFAULT_NICENESS = 10

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


def _after_fork_in_child() -> None:
    # The child's one thread is the one that forked; a niceness this module gave that thread is not the child's
    # to keep (a worker process forked from a pool call would otherwise run nicer than its parent).
    before = getattr(_state, "before", None)
    if before is not None and _set(before):
        del _state.before
    _state.pass_on = None


if SUPPORTED:
    os.register_at_fork(after_in_child=_after_fork_in_child)
