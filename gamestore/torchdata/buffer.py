"""The bounded shuffle buffer of one worker, and its stream (numpy only).

The buffer holds position ids (sequential numbers of the worker's stream)
and, unless replaying, their decoded columns.  Filling adds whole segments
until ``target`` positions are held; each batch takes ``batch_size`` random
positions (or the oldest, without shuffling) and fills the holes from the
tail.  The choice depends only on the ids and a seeded generator, so a
replay without any data reproduces the buffer exactly: that is how a saved
state (just the number of batches each worker emitted) resumes.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from .decode import FILL, concat_columns

__all__ = ["ShuffleBuffer", "stream"]


class ShuffleBuffer:
    """Position ids (and their columns, held in slots of a column store) awaiting a batch."""

    def __init__(self, *, rng: np.random.Generator, shuffle: bool) -> None:
        self.rng = rng
        self.shuffle = shuffle
        self.ids = np.zeros(1024, dtype=np.int64)  # the m held ids, in buffer order
        self.slots = np.zeros(1024, dtype=np.int64)  # their rows in ``data``
        self.m = 0
        self.data: dict[str, np.ndarray] | None = None
        self.free = np.zeros(0, dtype=np.int64)  # unused rows of ``data``

    def _reserve(self, n: int) -> None:
        need = self.m + n
        if need > self.ids.shape[0]:
            cap = max(need, 2 * self.ids.shape[0])
            for name in ("ids", "slots"):
                grown = np.zeros(cap, dtype=np.int64)
                grown[: self.m] = getattr(self, name)[: self.m]
                setattr(self, name, grown)
        if self.data is not None and self.free.size < n:
            size = next(iter(self.data.values())).shape[0]
            cap = max(size + n - self.free.size, 2 * size)
            self.data = {k: _grow(v, cap, size, FILL.get(k)) for k, v in self.data.items()}
            self.free = np.concatenate((np.arange(cap - 1, size - 1, -1, dtype=np.int64), self.free))

    def push(self, ids: np.ndarray, data: dict[str, np.ndarray] | None) -> None:
        n = ids.size
        if n == 0:
            return
        if data is not None and self.data is None:
            self.data = {k: _grow(v[:0], 0, 0, FILL.get(k)) for k, v in data.items()}
        self._reserve(n)
        m = self.m
        self.ids[m : m + n] = ids
        if data is not None:
            slots = self.free[-n:]
            self.free = self.free[:-n]
            self.slots[m : m + n] = slots
            self._write(slots, data)
        self.m += n

    def _write(self, slots: np.ndarray, data: dict[str, np.ndarray]) -> None:
        assert self.data is not None
        for k, v in data.items():
            store = self.data[k]
            if v.ndim == 2 and k in FILL and v.shape[1] != store.shape[1]:
                if v.shape[1] > store.shape[1]:
                    store = self.data[k] = _pad(store, v.shape[1], FILL[k])
                else:
                    v = _pad(v, store.shape[1], FILL[k])
            if v.ndim == 2 and v.shape[1]:
                _as_rows(store)[slots] = _as_rows(np.ascontiguousarray(v, dtype=store.dtype))
            else:
                store[slots] = v

    def pop(self, k: int) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        """Remove ``k`` positions: random ones (shuffle) or the oldest; returns their ids and columns."""
        m = self.m
        if self.shuffle:
            picks = self.rng.choice(m, size=k, replace=False) if k < m else self.rng.permutation(m)
        else:
            picks = np.arange(k)
        ids = self.ids[picks]
        data = None
        if self.data is not None:
            slots = self.slots[picks]
            data = {n: np.take(v, slots, axis=0) for n, v in self.data.items()}
            self.free = np.concatenate((self.free, slots))
        if self.shuffle:
            tail = m - k
            in_tail = picks >= tail
            holes = picks[~in_tail]
            taken = np.zeros(k, dtype=bool)
            taken[picks[in_tail] - tail] = True
            fillers = tail + np.flatnonzero(~taken)
            self.ids[holes] = self.ids[fillers]
            self.slots[holes] = self.slots[fillers]
        else:
            self.ids[: m - k] = self.ids[k:m].copy()
            self.slots[: m - k] = self.slots[k:m].copy()
        self.m = m - k
        return ids, data

    def set_data(self, data: dict[str, np.ndarray]) -> None:
        """Install the columns of the ``m`` held positions (in buffer order) after a replay."""
        self.data = {k: _grow(v, max(v.shape[0], 1), v.shape[0], FILL.get(k)) for k, v in data.items()}
        self.slots[: self.m] = np.arange(self.m)
        self.free = np.zeros(0, dtype=np.int64)


def _as_rows(a: np.ndarray) -> np.ndarray:
    """A C-contiguous 2-D numeric array seen as one opaque item per row (fast row scatter)."""
    return a.view(np.dtype((np.void, a.shape[1] * a.dtype.itemsize))).reshape(a.shape[0])


def _grow(a: np.ndarray, cap: int, keep: int, fill) -> np.ndarray:
    shape = (cap,) + a.shape[1:]
    out = np.full(shape, fill, dtype=a.dtype) if fill is not None else np.zeros(shape, dtype=a.dtype)
    out[:keep] = a[:keep]
    return out


def _pad(a: np.ndarray, width: int, fill) -> np.ndarray:
    out = np.full((a.shape[0], width), fill, dtype=a.dtype)
    out[:, : a.shape[1]] = a
    return out


def stream(
    segments: list[tuple[int, int, int]],
    *,
    read: Callable[[tuple[int, int, int]], dict[str, np.ndarray]],
    count: Callable[[tuple[int, int, int]], int],
    rng: np.random.Generator,
    shuffle: bool,
    buffer_size: int,
    batch_size: int,
    drop_last: bool,
    skip: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    """Batches (column dicts) of one worker; the first ``skip`` batches are replayed, not decoded."""
    buf = ShuffleBuffer(rng=rng, shuffle=shuffle)
    target = max(buffer_size, batch_size) if shuffle else batch_size
    seg_first: list[int] = []  # first id of every pushed segment
    next_id = 0
    si = 0
    emitted = 0
    replaying = skip > 0
    while True:
        while buf.m < target and si < len(segments):
            seg = segments[si]
            if replaying:
                n = count(seg)
                data = None
            else:
                data = read(seg)
                n = len(data["gid"])
            seg_first.append(next_id)
            buf.push(np.arange(next_id, next_id + n, dtype=np.int64), data)
            next_id += n
            si += 1
        if buf.m == 0:
            return
        k = min(batch_size, buf.m)
        if k < batch_size and drop_last:
            return
        _, data = buf.pop(k)
        emitted += 1
        if replaying:
            if emitted == skip:
                replaying = False
                _restore(buf, segments, seg_first, read)
            continue
        yield data  # type: ignore[misc]


def _restore(buf: ShuffleBuffer, segments, seg_first: list[int], read) -> None:
    """Decode the segments whose positions the replayed buffer holds, and install their columns."""
    if buf.m == 0:
        return
    ids = buf.ids[: buf.m]
    starts = np.asarray(seg_first, dtype=np.int64)
    seg_of = np.searchsorted(starts, ids, side="right") - 1
    pieces, order = [], []
    for s in np.unique(seg_of):
        pos = np.flatnonzero(seg_of == s)
        cols = read(segments[int(s)])
        local = ids[pos] - starts[s]
        pieces.append({k: v[local] for k, v in cols.items()})
        order.append(pos)
    data = concat_columns(pieces)
    where = np.concatenate(order)
    inverse = np.empty_like(where)
    inverse[where] = np.arange(where.size)
    buf.set_data({k: v[inverse] for k, v in data.items()})
