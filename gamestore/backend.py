"""The moves encoder backend, chosen in this one place.

``GAMESTORE_BACKEND=cython|python`` (default ``cython``).  When the compiled
module cannot be imported, gamestore warns and uses the pure-Python
reference.  Both backends expose::

    encode_moves(game_ids, games_moves, vectors) -> (pa.Table, list[int])
    decode_moves(moves_table_or_batch, vectors) -> list[dict]

:func:`get_backend` returns either one explicitly (tests use it to compare them).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import pyarrow as pa

from .schema import VectorSpec

__all__ = ["BACKEND", "BACKENDS", "Backend", "get_backend", "encode_moves", "decode_moves"]

BACKENDS = ("cython", "python")


@dataclass(frozen=True)
class Backend:
    """One implementation of the move hot loops."""

    name: str
    encode_moves: Callable[
        [Sequence[str], Sequence[Sequence[Any]], Mapping[str, VectorSpec]], tuple[pa.Table, list[int]]
    ]
    decode_moves: Callable[[pa.Table | pa.RecordBatch, Mapping[str, VectorSpec]], list[dict]]


_cache: dict[str, Backend] = {}


def get_backend(name: str) -> Backend:
    """The backend called ``name``; ``ImportError`` if ``cython`` is not compiled."""
    if name in _cache:
        return _cache[name]
    if name == "python":
        from . import _encoder_py as mod

        backend = Backend("python", mod.encode_moves, mod.decode_moves)
    elif name == "cython":
        backend = _cython_backend()  # raises ImportError when the extension is not built
    else:
        raise ValueError(f"unknown gamestore backend {name!r} (choose one of {', '.join(BACKENDS)})")
    _cache[name] = backend
    return backend


def _cython_backend() -> Backend:
    from . import _encoder  # noqa: F401

    return Backend("cython", _cy_encode_moves, _cy_decode_moves)


def _cy_encode_moves(game_ids, games_moves, vectors):
    raise NotImplementedError


def _cy_decode_moves(moves, vectors):
    raise NotImplementedError


def _select() -> Backend:
    name = os.environ.get("GAMESTORE_BACKEND", "").strip().lower() or "cython"
    if name not in BACKENDS:
        raise ValueError(f"GAMESTORE_BACKEND={name!r}: choose one of {', '.join(BACKENDS)}")
    if name == "cython":
        try:
            return get_backend("cython")
        except ImportError as exc:
            warnings.warn(
                f"gamestore: compiled encoder unavailable ({exc}); using the pure-Python backend",
                RuntimeWarning,
                stacklevel=2,
            )
            return get_backend("python")
    return get_backend(name)


_selected = _select()
#: Name of the backend in use ("cython" or "python").
BACKEND: str = _selected.name
encode_moves = _selected.encode_moves
decode_moves = _selected.decode_moves
