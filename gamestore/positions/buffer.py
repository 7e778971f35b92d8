"""The bounded shuffle of one worker's stream (numpy only).

A worker reads its segments in order and gathers them into *windows* of at
least ``buffer_size`` positions (whole segments).  Each window is permuted
by a generator seeded from the window's number and cut into batches; the
fewer than ``batch_size`` positions left over join the next window, so
every batch but the worker's last is full.  Memory is one window.

Every position has an id (its number in the worker's stream).  The windows,
permutations and leftovers depend only on segment sizes and the seeds, so
replaying them on ids alone, without decoding anything, reproduces the
stream exactly: a saved state is just the number of batches emitted.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from .decode import FILL, _widen, concat_columns

__all__ = ["stream"]

Segment = tuple[int, int, int]


def _take(cols: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.take(v, idx, axis=0) for k, v in cols.items()}


def _slice(cols: dict[str, np.ndarray], a: int, b: int) -> dict[str, np.ndarray]:
    return {k: v[a:b] for k, v in cols.items()}


def stream(
    segments: list[Segment],
    *,
    read: Callable[[Segment], dict[str, np.ndarray]],
    count: Callable[[Segment], int],
    window_rng: Callable[[int], np.random.Generator],
    shuffle: bool,
    buffer_size: int,
    batch_size: int,
    drop_last: bool,
    skip: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    """Batches (column dicts) of one worker; the first ``skip`` batches are replayed on ids, not decoded."""
    target = max(buffer_size, batch_size) if shuffle else batch_size
    seg_first: list[int] = []  # id of the first position of every segment seen
    carry_ids = np.zeros(0, dtype=np.int64)
    carry: dict[str, np.ndarray] | None = None
    next_id = 0
    si = 0
    window = 0
    emitted = 0
    while si < len(segments) or carry_ids.size:
        replaying = emitted < skip
        parts: list[dict[str, np.ndarray]] = []
        first_seg = si
        n = carry_ids.size
        while n < target and si < len(segments):
            if replaying:
                size = count(segments[si])
            else:
                part = read(segments[si])
                parts.append(part)
                size = len(part["gid"])
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
        data = _assemble(([carry] if carry is not None else []) + parts, perm)
        if perm is not None:
            ids = ids[perm]
        start = max(0, skip - emitted)
        emitted += start
        for b in range(start, nb):
            emitted += 1
            yield _slice(data, b * batch_size, (b + 1) * batch_size)  # views: the batch builder copies
        if last:
            return
        carry_ids = ids[nb * batch_size :]
        carry = _slice(data, nb * batch_size, n) if carry_ids.size else None


def _as_rows(a: np.ndarray) -> np.ndarray:
    """A C-contiguous 2-D array seen as one opaque item per row (fast row gathers and scatters)."""
    return a.view(np.dtype((np.void, a.shape[1] * a.dtype.itemsize))).reshape(a.shape[0])


def _assemble(parts: list[dict[str, np.ndarray]], perm: np.ndarray | None) -> dict[str, np.ndarray]:
    """The window: ``parts`` concatenated, then rows reordered by ``perm`` (one copy of each row)."""
    if perm is None:
        return concat_columns(parts)
    n = perm.size
    dest = np.empty(n, dtype=np.int64)
    dest[perm] = np.arange(n)  # where each input row goes
    out = {}
    for name, first in parts[0].items():
        arrays = [p[name] for p in parts]
        if name in FILL:
            width = max(a.shape[1] for a in arrays)
            arrays = [a if a.shape[1] == width else _widen(a, width, FILL[name]) for a in arrays]
            shape: tuple = (n, width)
        else:
            shape = (n,) + first.shape[1:]
        dst = np.empty(shape, dtype=first.dtype)
        rows = dst.ndim == 2 and dst.dtype != object and dst.shape[1] > 0
        off = 0
        for a in arrays:
            k = a.shape[0]
            if rows:
                _as_rows(dst)[dest[off : off + k]] = _as_rows(np.ascontiguousarray(a))
            else:
                dst[dest[off : off + k]] = a
            off += k
        out[name] = dst
    return out


def _rebuild(ids: np.ndarray, segments: list[Segment], seg_first: list[int], read) -> dict[str, np.ndarray]:
    """Decode the columns of positions ``ids`` (in that order) from their segments."""
    starts = np.asarray(seg_first, dtype=np.int64)
    seg_of = np.searchsorted(starts, ids, side="right") - 1
    pieces, order = [], []
    for s in np.unique(seg_of):
        pos = np.flatnonzero(seg_of == s)
        cols = read(segments[int(s)])
        pieces.append(_take(cols, ids[pos] - starts[s]))
        order.append(pos)
    data = concat_columns(pieces)
    where = np.concatenate(order)
    inverse = np.empty_like(where)
    inverse[where] = np.arange(where.size)
    return _take(data, inverse)
