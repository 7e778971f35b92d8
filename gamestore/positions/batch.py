"""Batch: the dict a PositionDataset yields, cheap for DataLoader's collation and worker pipes.

``DataLoader(ds, batch_size=None)`` passes every batch through torch's
``default_convert``, which rebuilds a mapping key by key and walks every
element of a list; a :class:`Batch` holds only tensors and numpy arrays
(strings as object arrays), which it returns untouched.  A batch leaving a
DataLoader worker is pickled by value: its tensors as one byte array in the
worker's pipe (cheaper than torch's default of one shared-memory segment and
one passed file descriptor per tensor storage), rebuilt as tensors viewing
one buffer on the other side.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["Batch", "TORCH_DTYPES"]

#: numpy dtype -> torch dtype of the arrays a batch carries
TORCH_DTYPES = {
    np.dtype(np.bool_): torch.bool,
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.int8): torch.int8,
    np.dtype(np.int16): torch.int16,
    np.dtype(np.int32): torch.int32,
    np.dtype(np.int64): torch.int64,
    np.dtype(np.uint16): torch.uint16,
    np.dtype(np.uint32): torch.uint32,
    np.dtype(np.uint64): torch.uint64,
    np.dtype(np.float16): torch.float16,
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float64): torch.float64,
}
_PACKABLE = frozenset(TORCH_DTYPES.values())


class Batch(dict):
    """A dict of tensors and numpy arrays (one training batch); pickles its tensors in one buffer."""

    __slots__ = ()

    def __copy__(self) -> "Batch":
        return Batch(self)

    def __reduce__(self) -> tuple:
        packed = {
            k: v.numpy()
            for k, v in self.items()
            if type(v) is torch.Tensor and v.device.type == "cpu" and v.dtype in _PACKABLE and not v.requires_grad
        }
        raw, layout = pack(packed)
        others = {k: v for k, v in self.items() if k not in packed}
        return (_rebuild, (raw, layout, others, list(self)))


def pack(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, list[tuple[str, int, int, np.dtype, tuple]]]:
    """Copy ``arrays`` into one byte buffer (8-byte aligned); returns it and where each array lives."""
    layout, total = [], 0
    for name, a in arrays.items():
        total = -(-total // 8) * 8
        layout.append((name, total, a.nbytes, a.dtype, a.shape))
        total += a.nbytes
    raw = np.empty(total, np.uint8)
    for (name, off, size, dt, shape), a in zip(layout, arrays.values()):
        raw[off : off + size].view(dt).reshape(shape)[...] = a
    return raw, layout


def _rebuild(raw: np.ndarray, layout: list, others: dict[str, Any], order: list[str]) -> Batch:
    items: dict[str, Any] = {
        name: torch.from_numpy(raw[off : off + size].view(dt).reshape(shape)) for name, off, size, dt, shape in layout
    }
    items.update(others)
    return Batch((k, items[k]) for k in order)
