"""Shared memory for the batches DataLoader workers send to the training process (fork start method).

By default a batch leaving a worker is pickled by value: its tensors copied
into one byte buffer, written through the worker's pipe (several pipe-fulls
for a 120 kB batch, each a context switch), read and rebuilt on the other
side.  Instead, the first :class:`~gamestore.torch.PositionDataset` made in a
process creates an :class:`Arena` there: one anonymous shared mapping of
``SLOTS`` slots, inherited by every worker forked from that process.  A
worker copies a batch's tensors into a free slot and sends only the slot
number and layout; the training process views the slot as tensors (no copy).

A slot belongs to whoever holds it: the worker that claimed it until the
batch is received, then the receiving process until every tensor of the
batch is gone (a weak reference's callback frees it).  A worker that finds no free slot (the
training loop keeps many batches alive), a batch larger than a slot, and any
other pickling (``pickle.dumps``, spawned workers, which inherit nothing)
send the batch by value.  Slots claimed by a process that died (a worker
shut down with batches in flight) are freed by :func:`reclaim`.

A batch's ``game_id`` and ``board_type`` (object arrays of str) would cost
the training process one str object per position to unpickle (~40 us for a
batch of 256).  The training process therefore shares each plan's game
tables under the plan's token (:func:`share_tables`, before its workers
fork, and when it publishes a new plan to persistent workers); a worker
whose parent holds the tables sends the positions' indices into them in
the slot, and the training process indexes its own tables.
"""
from __future__ import annotations

import functools
import gc
import mmap
import multiprocessing
import os
import secrets
import sys
import threading
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np

from ..layout import pid_alive

__all__ = ["Arena", "ensure_arena", "sending_arena", "worker_started", "receive", "reclaim", "share_tables", "parent_tables",
           "tables", "SLOTS", "SLOT_BYTES"]

SLOTS = 32
SLOT_BYTES = 4 << 20  # a batch of 256 RingRift positions is ~120 kB; larger batches go by value
_PAGE = mmap.PAGESIZE
_MAP_NORESERVE = 0x4000 if sys.platform.startswith("linux") else 0  # virtual only: pages appear when written
_LOCK_WAIT = 1.0  # seconds: the slot lock is held for microseconds, unless its holder was killed
_ARENA: "Arena | None" = None
_FROZEN = [0]  # the process worker_started last froze the inherited objects in
_SENDING: list = [0, None]  # (pid, the arena that process sends through) - see sending_arena
_CREATE = threading.Lock()
_TABLES_KEPT = 16  # plans whose tables a process keeps (a weighted plan is new every epoch)
#: plan token -> (pid of the training process holding the tables, name -> object array)
_TABLES: "OrderedDict[str, tuple[int, dict[str, np.ndarray]]]" = OrderedDict()


_PID = [os.getpid()]  # this process's pid, without a system call per batch
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def pid() -> int:
    """This process's id (cached; renewed in a forked child)."""
    return _PID[0]


class Arena:
    """``slots`` shared slots of ``slot_bytes`` each, with an owner pid per slot (0: free)."""

    def __init__(self, slots: int = SLOTS, slot_bytes: int = SLOT_BYTES) -> None:
        self.slots = slots
        self.slot_bytes = -(-slot_bytes // _PAGE) * _PAGE
        self.header = -(-slots * 8 // _PAGE) * _PAGE
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_ANONYMOUS", 0x20) | _MAP_NORESERVE
        self.mm = mmap.mmap(-1, self.header + slots * self.slot_bytes, flags=flags)
        self.owner = np.frombuffer(self.mm, np.int64, count=slots)  # pid holding each slot, 0 when free
        self.lock = multiprocessing.get_context("fork").Lock()
        self.pid = os.getpid()  # the process that created it (a worker's parent)
        self.token = secrets.token_hex(8)
        self._next = 0
        self.stuck = False
        self._base = int(self.owner.ctypes.data)  # the mapping's address (the same in every forked process)
        self._held: list[weakref.ref | None] = [None] * slots  # the receiver's reference to each slot it views
        self._frees = [functools.partial(self._freed, slot) for slot in range(slots)]

    def claim(self) -> int | None:
        """A free slot, now owned by this process (None when every slot is held, or the lock is stuck)."""
        if self.stuck or not self.lock.acquire(timeout=_LOCK_WAIT):
            self.stuck = True  # a process was killed while holding the lock: this one sends by value from now on
            return None
        try:
            owner, slot = self.owner, self._next
            if owner[slot] != 0:  # the next one in turn is held: the first free one after it
                free = np.flatnonzero(owner == 0)
                if free.size == 0:
                    return None
                after = free[free >= slot]
                slot = int(after[0] if after.size else free[0])
            owner[slot] = pid()
        finally:
            self.lock.release()
        self._next = (slot + 1) % self.slots
        return slot

    def view(self, slot: int, nbytes: int) -> np.ndarray:
        return np.frombuffer(self.mm, np.uint8, count=nbytes, offset=self.header + slot * self.slot_bytes)

    def address(self, slot: int) -> int:
        """Where ``slot`` starts in this process's memory."""
        return self._base + self.header + slot * self.slot_bytes

    def hold(self, slot: int, nbytes: int) -> np.ndarray:
        """The first ``nbytes`` of ``slot``, now this process's until the returned array (and every view of it) is gone."""
        self.owner[slot] = pid()
        raw = self.view(slot, nbytes)  # its own array (not a slice of another: views of a slice keep only its base)
        self._held[slot] = weakref.ref(raw, self._frees[slot])  # views (and tensors of them) keep ``raw`` alive
        return raw

    def _freed(self, slot: int, ref: weakref.ref) -> None:
        if self._held[slot] is ref:
            self._held[slot] = None
            self.owner[slot] = 0


def ensure_arena() -> None:
    """Create this process's arena (before any DataLoader worker forks from it); once per process."""
    global _ARENA
    if sys.platform != "linux":
        return  # other platforms spawn their workers: nothing is inherited
    with _CREATE:
        if _ARENA is None or _ARENA.pid != os.getpid():
            _ARENA = Arena()


def sending_arena() -> Arena | None:
    """The arena a DataLoader worker sends through: its parent's, inherited by fork (else None; once per process)."""
    me = pid()
    if _SENDING[0] != me:
        arena = _ARENA
        if arena is None or arena.pid != os.getppid() or arena.pid == me:
            arena = None
        else:
            from torch.utils.data import get_worker_info

            arena = arena if get_worker_info() is not None else None
        _SENDING[:] = [me, arena]
    return _SENDING[1]


def worker_started() -> None:
    """In a DataLoader worker, once per process: leave the objects inherited from the training process out of the
    garbage collector's young generations (``gc.freeze``), so its collections in the worker neither walk them
    (about 3 ms per worker and epoch with a RingRift-sized training process) nor copy their pages."""
    if _FROZEN[0] != pid():
        _FROZEN[0] = pid()
        gc.freeze()


def reclaim() -> int:
    """Free the slots held by processes that no longer exist (batches lost in flight); returns how many."""
    arena = _ARENA
    if arena is None or arena.pid != os.getpid():
        return 0
    freed = 0
    if not arena.lock.acquire(timeout=_LOCK_WAIT):
        return 0
    try:
        for slot in np.flatnonzero(arena.owner != 0).tolist():
            owner = int(arena.owner[slot])
            if owner != os.getpid() and not pid_alive(owner):
                arena.owner[slot] = 0
                freed += 1
    finally:
        arena.lock.release()
    return freed


def receive(token: str, slot: int, nbytes: int) -> np.ndarray:
    """The bytes a worker put in ``slot``, now this process's: the slot is freed when the array and its views are gone."""
    arena = _ARENA
    if arena is None or arena.token != token:
        raise RuntimeError("a batch sent through a DataLoader worker's shared memory reached another process")
    return arena.hold(slot, nbytes)


def share_tables(token: str, named: dict[str, np.ndarray], *, holder: int | None = None) -> None:
    """Keep ``named`` (object arrays indexed by position codes) under ``token``; ``holder``: the training process that
    holds them too (default: this one; a worker passes its parent's pid for a plan its parent published)."""
    with _CREATE:
        _TABLES[token] = (os.getpid() if holder is None else holder, named)
        _TABLES.move_to_end(token)
        while len(_TABLES) > _TABLES_KEPT:
            _TABLES.popitem(last=False)


def parent_tables(token: str) -> bool:
    """In a DataLoader worker sending through its parent's arena: whether the parent holds ``token``'s tables."""
    arena = sending_arena()
    got = _TABLES.get(token)
    return arena is not None and got is not None and got[0] == arena.pid


def tables(token: str) -> dict[str, np.ndarray]:
    """The tables this process shared under ``token`` (a batch's codes index them)."""
    got = _TABLES.get(token)
    if got is None or got[0] != pid():
        raise RuntimeError(f"a DataLoader worker's batch refers to game tables {token!r} this process no longer holds"
                           f" (more than {_TABLES_KEPT} plans since)")  # fmt: skip
    return got[1]


def register_reducer(cls: type, reduce: Any) -> None:
    """Pickle ``cls`` with ``reduce`` in multiprocessing's queues (DataLoader workers) only."""
    from multiprocessing.reduction import ForkingPickler

    ForkingPickler.register(cls, reduce)
