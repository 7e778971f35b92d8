"""The bounded shuffle of one worker's stream (numpy only).

A worker reads its segments in order and gathers them into *windows* of at
least ``buffer_size`` positions (whole segments).  Each window is permuted
by a generator seeded from the window's number and cut into batches; the
fewer than ``batch_size`` positions left over join the next window, so
every batch but the worker's last is full.  A window holds only indices
(``(part, position)`` per position, see :class:`Window`): the batch builder
copies each position's data once, from its decoded moves batch straight
into the batch.  Memory is the window's moves batches.

Every position has an id (its number in the worker's stream).  The windows,
permutations and leftovers depend only on segment sizes and the seeds, so
replaying them on ids alone, without decoding anything, reproduces the
stream exactly: a saved state is just the number of batches emitted.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from .gather import Part

__all__ = ["stream", "Window"]

Segment = tuple[int, int, int]


class Window:
    """Positions as ``(part, position in the part)`` pairs, in stream order; ``cache`` holds what the consumer derives."""

    __slots__ = ("parts", "part", "pos", "cache")

    def __init__(self, parts: list[Part], part: np.ndarray, pos: np.ndarray) -> None:
        self.parts, self.part, self.pos = parts, part, pos
        self.cache: dict = {}

    def tail(self, start: int) -> "Window":
        """Positions ``start:`` (only the parts they use)."""
        part = self.part[start:]
        used = np.unique(part)
        remap = np.zeros(len(self.parts), dtype=np.int32)
        remap[used] = np.arange(used.size, dtype=np.int32)
        return Window([self.parts[int(i)] for i in used], remap[part], self.pos[start:])


def stream(
    segments: list[Segment],
    *,
    read: Callable[[Segment], Part],
    count: Callable[[Segment], int],
    window_rng: Callable[[int], np.random.Generator],
    shuffle: bool,
    buffer_size: int,
    batch_size: int,
    drop_last: bool,
    skip: int = 0,
) -> Iterator[tuple[Window, int, int]]:
    """Batches ``(window, start, stop)`` of one worker; the first ``skip`` batches are replayed on ids, not decoded."""
    target = max(buffer_size, batch_size) if shuffle else batch_size
    seg_first: list[int] = []  # id of the first position of every segment seen
    carry_ids = np.zeros(0, dtype=np.int64)
    carry: Window | None = None
    next_id = 0
    si = 0
    window = 0
    emitted = 0
    while si < len(segments) or carry_ids.size:
        replaying = emitted < skip
        parts: list[Part] = []
        first_seg = si
        n = carry_ids.size
        while n < target and si < len(segments):
            if replaying:
                size = count(segments[si])
            else:
                part = read(segments[si])
                parts.append(part)
                size = part.n
            seg_first.append(next_id + n - carry_ids.size)
            n += size
            si += 1
        ids = np.concatenate((carry_ids, np.arange(next_id, next_id + n - carry_ids.size, dtype=np.int64)))
        next_id += n - carry_ids.size
        last = si == len(segments)
        nb = n // batch_size if not last or drop_last else -(-n // batch_size)
        perm = window_rng(window).permutation(n) if shuffle else None
        window += 1
        if replaying and emitted + nb <= skip:  # the whole window was emitted before the state was saved
            emitted += nb
            carry_ids = (ids if perm is None else ids[perm])[nb * batch_size :] if not last else carry_ids[:0]
            continue
        if replaying:  # the state was saved inside this window: decode it now
            parts = [read(seg) for seg in segments[first_seg:si]]
        if carry is None and carry_ids.size:  # leftovers of a replayed window
            carry = _rebuild(carry_ids, segments, seg_first, read)
        win = _assemble(carry, parts, perm)
        if perm is not None:
            ids = ids[perm]
        start = max(0, skip - emitted)
        emitted += start
        for b in range(start, nb):
            emitted += 1
            yield win, b * batch_size, min((b + 1) * batch_size, n)
        if last:
            return
        carry_ids = ids[nb * batch_size :]
        carry = win.tail(nb * batch_size) if carry_ids.size else None


def _assemble(carry: Window | None, parts: list[Part], perm: np.ndarray | None) -> Window:
    """The window: the carried positions, then ``parts``, reordered by ``perm`` (indices only, no data copied)."""
    plist = list(carry.parts) if carry is not None else []
    part_in = [carry.part] if carry is not None else []
    pos_in = [carry.pos] if carry is not None else []
    for p in parts:
        part_in.append(np.full(p.n, len(plist), dtype=np.int32))
        pos_in.append(np.arange(p.n, dtype=np.int64))
        plist.append(p)
    part = np.concatenate(part_in) if part_in else np.zeros(0, np.int32)
    pos = np.concatenate(pos_in) if pos_in else np.zeros(0, np.int64)
    if perm is not None:
        part, pos = part[perm], pos[perm]
    return Window(plist, part, pos)


def _rebuild(ids: np.ndarray, segments: list[Segment], seg_first: list[int], read: Callable[[Segment], Part]) -> Window:
    """The positions ``ids`` (in that order), read from their segments."""
    starts = np.asarray(seg_first, dtype=np.int64)
    seg_of = np.searchsorted(starts, ids, side="right") - 1
    used = np.unique(seg_of)
    parts = [read(segments[int(s)]) for s in used]
    return Window(parts, np.searchsorted(used, seg_of).astype(np.int32), ids - starts[seg_of])
