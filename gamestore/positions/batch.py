"""Batch: what a PositionDataset yields, passed through DataLoader's collation untouched.

``DataLoader(ds, batch_size=None)`` passes every batch through torch's
``default_convert``, which copies any ``Mapping`` and converts it key by key
(about 6% of the batch's own cost for a dict of 15 tensors).  A
:class:`Batch` is therefore a dict-like object that is *not* a
``collections.abc.Mapping``: ``default_convert`` returns it as it is, and
``pin_memory=True`` calls its :meth:`Batch.pin_memory`.  It supports what a
training loop does with a dict (``batch["policy_prob"]``, ``items()``,
``keys()``, ``dict(batch)``, ``**batch``, assignment, ``in``, ``len``), plus
:meth:`Batch.to` for moving its tensors to a device (PyTorch Lightning and
HF Accelerate move any object with a ``to`` method).  Values are tensors
and numpy arrays (strings as object arrays).

A batch leaving a forked DataLoader worker travels through a slot of the
shared-memory area the training process mapped before the fork
(:mod:`gamestore.positions.shared`): the worker copies its tensors into the
slot (one ``memmove`` each; a PositionDataset's ``game_id`` and
``board_type`` go in the slot too, as indices into the plan's tables the
training process holds: no str objects to unpickle) and pickles only the
slot's number and the batch's recipe (names, dtypes, shapes and offsets as
one bytes object, made once per distinct recipe; the receiver parses each
recipe once); the receiving side views the slot as tensors, and the slot is
freed when they are gone.  When no slot is free, for a batch larger than a
slot and from spawned workers, it is
pickled by value: its tensors as one byte array in the worker's pipe
(cheaper than torch's default of one shared-memory segment and one passed
file descriptor per tensor storage), rebuilt as tensors viewing one buffer.
"""
from __future__ import annotations

import ctypes
import pickle
from typing import Any, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView

import numpy as np
import torch

from . import shared

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
#: a batch's object arrays as indices into tables its receiver holds (see :meth:`Batch.of`)
Codes = tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]


class Batch:
    """A training batch: names -> tensors and numpy arrays, used like a dict (see the module docstring)."""

    __slots__ = ("_items", "_codes")

    def __init__(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), /, **kwargs: Any) -> None:
        self._items: dict[str, Any] = dict(items, **kwargs)
        self._codes: Codes | None = None

    @classmethod
    def of(cls, items: dict[str, Any], codes: "Codes | None" = None) -> "Batch":
        """A batch holding ``items`` itself (no copy: the caller hands the dict over).

        ``codes``: ``(token, {key: (indices, array)})``: ``items[key]`` is ``array``, equal to
        ``shared.tables(token)[key][indices]`` (a worker sends the indices while ``items[key]`` is still ``array``).
        """
        batch = cls.__new__(cls)
        batch._items = items
        batch._codes = codes
        return batch

    # -- the dict interface ----------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._items[key] = value

    def __delitem__(self, key: str) -> None:
        del self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> KeysView[str]:
        return self._items.keys()

    def values(self) -> ValuesView[Any]:
        return self._items.values()

    def items(self) -> ItemsView[str, Any]:
        return self._items.items()

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def pop(self, key: str, *default: Any) -> Any:
        return self._items.pop(key, *default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        return self._items.setdefault(key, default)

    def update(self, other: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), /, **kwargs: Any) -> None:
        self._items.update(other, **kwargs)

    def copy(self) -> "Batch":
        """A shallow copy (the same tensors and arrays)."""
        return Batch(self._items)

    __copy__ = copy

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the same tensors and arrays."""
        return dict(self._items)

    def __repr__(self) -> str:
        def show(v: Any) -> str:
            if isinstance(v, (torch.Tensor, np.ndarray)):
                return f"{type(v).__name__}{list(v.shape)} {str(v.dtype).replace('torch.', '')}"
            return type(v).__name__

        return "Batch(" + ", ".join(f"{k}={show(v)}" for k, v in self._items.items()) + ")"

    # -- devices ------------------------------------------------------------------------------
    def to(self, *args: Any, **kwargs: Any) -> "Batch":
        """A batch with every tensor's ``tensor.to(*args, **kwargs)`` (numpy arrays as they are)."""
        return Batch({k: v.to(*args, **kwargs) if isinstance(v, torch.Tensor) else v for k, v in self._items.items()})

    def pin_memory(self, device: Any = None) -> "Batch":
        """A batch with its tensors in page-locked memory (``DataLoader(pin_memory=True)`` calls this)."""
        return Batch({k: _pinned(v, device) for k, v in self._items.items()})

    # -- pickling (DataLoader workers) ----------------------------------------------------
    def _split(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(CPU tensors as numpy arrays, everything else)."""
        packed = {
            k: v.numpy()
            for k, v in self._items.items()
            if type(v) is torch.Tensor and v.is_cpu and not v.requires_grad and v.dtype in _PACKABLE
        }
        return packed, {k: v for k, v in self._items.items() if k not in packed}

    def __reduce__(self) -> tuple:
        packed, others = self._split()
        raw, layout = pack(packed)
        return (_rebuild, (raw, layout, others, list(self._items)))


def _reduce_for_queue(batch: Batch) -> tuple:
    """How a multiprocessing queue (a DataLoader worker's) pickles a batch: tensors through shared memory when it can.

    The batch's tensors (and, when the training process holds the plan's game tables, the indices standing for its
    ``game_id`` and ``board_type``) are copied into a free slot, each with one ``memmove``; the pickle carries the slot
    number and the batch's *recipe* (names, dtypes, shapes, offsets: see :func:`_recipe_for`) as one bytes object,
    made once per distinct recipe in the worker and parsed once in the training process.
    """
    arena = shared.sending_arena()
    if arena is None:
        return batch.__reduce__()
    codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    token = None
    if batch._codes is not None and shared.parent_tables(batch._codes[0]):
        token, codes = batch._codes
    sig: list[Any] = []
    addrs: list[int] = []
    keep: list[Any] = []  # contiguous copies made here stay alive until copied
    others: dict[str, Any] = {}
    for key, v in batch._items.items():
        if (type(v) is torch.Tensor and v.dtype in _PACKABLE and v.is_cpu and not v.requires_grad
                and v.layout is torch.strided):
            if not v.is_contiguous():
                v = v.contiguous()
                keep.append(v)
            sig.append((key, v.dtype, v.shape))
            addrs.append(v.data_ptr())
            continue
        code = codes.get(key)
        if code is not None and code[1] is v:  # not replaced since the batch was made (a transform may have)
            indices = np.ascontiguousarray(code[0])
            keep.append(indices)
            sig.append((key, indices.dtype, indices.shape, True))
            addrs.append(indices.ctypes.data)
            continue
        sig.append(key)
        others[key] = v
    recipe = _recipe_for((token, tuple(sig)))
    slot = arena.claim() if recipe.total <= arena.slot_bytes else None
    if slot is None:
        return batch.__reduce__()
    base = arena.address(slot)
    for addr, off, size in zip(addrs, recipe.offsets, recipe.sizes):
        _memmove(base + off, addr, size)
    args = (arena.token, slot, recipe.total, recipe.blob)
    return (_rebuild_slot, args + (others,) if others else args)


class _Recipe:
    """How a batch lies in a slot: where each packed array goes, and ``blob``, what the receiver rebuilds it from."""

    __slots__ = ("blob", "offsets", "sizes", "total")

    def __init__(self, key: tuple[str | None, tuple]) -> None:
        token, sig = key
        steps: list[tuple[str, int, str | None, tuple | None, int]] = []
        self.offsets: list[int] = []
        self.sizes: list[int] = []
        total = 0
        for entry in sig:
            if isinstance(entry, str):  # pickled by value next to the recipe
                steps.append((entry, _OTHER, None, None, 0))
                continue
            name, dtype, shape = entry[:3]
            dt = _NUMPY_DTYPES[dtype] if isinstance(dtype, torch.dtype) else np.dtype(dtype)
            size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            total = -(-total // 8) * 8
            steps.append((name, _CODED if len(entry) > 3 else _TENSOR, dt.str, tuple(int(d) for d in shape), total))
            self.offsets.append(total)
            self.sizes.append(size)
            total += size
        self.total = total
        self.blob = pickle.dumps((token, tuple(steps)), protocol=pickle.HIGHEST_PROTOCOL)


_TENSOR, _CODED, _OTHER = 0, 1, 2
_RECIPES_KEPT = 1024  # distinct recipes a process keeps (a batch's shape varies with its widest policy)
_SENT: dict[tuple, _Recipe] = {}  # in a worker: signature -> recipe
_LEARNED: dict[bytes, tuple[str | None, list[tuple[str, int, Any, tuple, int]]]] = {}  # in the receiver: blob -> steps
_NUMPY_DTYPES = {t: np.dtype(d) for d, t in TORCH_DTYPES.items()}
_memmove = ctypes.memmove


def _recipe_for(key: tuple[str | None, tuple]) -> _Recipe:
    recipe = _SENT.get(key)
    if recipe is None:
        if len(_SENT) >= _RECIPES_KEPT:
            _SENT.clear()
        recipe = _SENT[key] = _Recipe(key)
    return recipe


def _learn(blob: bytes) -> tuple[str | None, list[tuple[str, int, Any, tuple, int]]]:
    token, steps = pickle.loads(blob)
    learned = (token, [(name, kind, None if dt is None else np.dtype(dt), shape, off) for name, kind, dt, shape, off in steps])
    if len(_LEARNED) >= _RECIPES_KEPT:
        _LEARNED.clear()
    _LEARNED[blob] = learned
    return learned


def _rebuild_slot(token: str, slot: int, total: int, blob: bytes, others: dict[str, Any] | None = None) -> Batch:
    """The batch a worker put in ``slot`` (see :func:`_reduce_for_queue`): its tensors view the slot (no copy)."""
    learned = _LEARNED.get(blob)
    if learned is None:
        learned = _learn(blob)
    codes, steps = learned
    raw = shared.receive(token, slot, total)  # the slot is freed when ``raw`` and every array over it are gone
    named = shared.tables(codes) if codes is not None else None
    array, tensor = np.ndarray, torch.from_numpy
    items: dict[str, Any] = {}
    for name, kind, dt, shape, off in steps:
        if kind == _TENSOR:
            items[name] = tensor(array(shape, dt, raw, off))
        elif kind == _CODED:
            items[name] = named[name][array(shape, dt, raw, off)]  # type: ignore[index]  # a new array: holds no slot
        else:
            items[name] = others[name]  # type: ignore[index]
    return Batch.of(items)


def _pinned(value: Any, device: Any) -> Any:
    if not isinstance(value, torch.Tensor):
        return value
    return value.pin_memory() if device is None else value.pin_memory(device)


def placement(arrays: dict[str, np.ndarray]) -> tuple[list[tuple[str, int, int, str, tuple]], int]:
    """Where each array goes in one byte buffer (8-byte aligned): ``(name, offset, bytes, dtype, shape)``, and its size."""
    layout, total = [], 0
    for name, a in arrays.items():
        total = -(-total // 8) * 8
        layout.append((name, total, a.nbytes, a.dtype.str, a.shape))
        total += a.nbytes
    return layout, total


def pack(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, list[tuple[str, int, int, str, tuple]]]:
    """Copy ``arrays`` into one byte buffer (8-byte aligned); returns it and where each array lives."""
    layout, total = placement(arrays)
    raw = np.empty(total, np.uint8)
    _fill(raw, layout, arrays)
    return raw, layout


def _fill(raw: np.ndarray, layout: list, arrays: dict[str, np.ndarray]) -> None:
    for (name, off, size, dt, shape), a in zip(layout, arrays.values()):
        raw[off : off + size].view(dt).reshape(shape)[...] = a


def _rebuild(raw: np.ndarray, layout: list, others: dict[str, Any], order: list[str]) -> Batch:
    # one array per tensor straight over ``raw`` (its base)
    array, tensor = np.ndarray, torch.from_numpy
    items: dict[str, Any] = {name: tensor(array(shape, dt, raw, off)) for name, off, _, dt, shape in layout}
    items.update(others)
    return Batch.of({k: items[k] for k in order})


shared.register_reducer(Batch, _reduce_for_queue)
