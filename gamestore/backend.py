"""The moves encoder backend in use, selected in this one place.

Two complete implementations of one interface (:class:`Backend`), peers:

- :mod:`gamestore._backend_cython`: the compiled hot loops (``_ext/*.pyx``), the default;
- :mod:`gamestore._backend_python`: the pure-Python reference, the spec the compiled one must equal.

``GAMESTORE_BACKEND`` picks one when this module is first imported:

- ``cython``: the compiled backend; ``ImportError`` when the extension cannot be loaded
  (a test run that asked for it never silently runs on the reference);
- ``python``: the reference backend;
- unset or empty: ``cython`` when it loads, otherwise ``python`` with a ``RuntimeWarning``.

Anything else is a ``ValueError``.  :func:`selected` is the backend in use (the only
stored choice); :func:`get_backend` returns either backend by name (tests and
benchmarks compare them); :func:`use` runs a block with another backend.
"""
from __future__ import annotations

import importlib
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import pyarrow as pa

from .schema import VectorSpec

__all__ = ["BACKEND", "BACKENDS", "Backend", "BatchDecoder", "get_backend", "selected", "use"]

BACKENDS = ("cython", "python")
_MODULES = {"cython": "._backend_cython", "python": "._backend_python"}


class BatchDecoder(Protocol):
    """Move dicts of any row range of one moves record batch (set up once per batch)."""

    num_rows: int

    def decode(self, start: int, stop: int) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Backend:
    """One implementation of the move hot loops (the functions of one ``_backend_*`` module)."""

    name: str
    encode_moves: Callable[
        [Sequence[str], Sequence[Sequence[Any]], Mapping[str, VectorSpec]], tuple[pa.Table, list[int]]
    ]
    decode_moves: Callable[[pa.Table | pa.RecordBatch, Mapping[str, VectorSpec]], list[dict[str, Any]]]
    #: ``batch_decoder(batch, vectors, strings=None)``: decodes any row range of one record batch;
    #: ``strings`` (a dict the caller keeps) shares decoded dictionary strings across batches of one file
    batch_decoder: Callable[..., BatchDecoder]


_cache: dict[str, Backend] = {}


def get_backend(name: str) -> Backend:
    """The backend called ``name``; ``ImportError`` if ``cython`` is not compiled, ``ValueError`` for other names."""
    backend = _cache.get(name)
    if backend is not None:
        return backend
    if name not in _MODULES:
        raise ValueError(f"unknown gamestore backend {name!r} (choose one of {', '.join(BACKENDS)})")
    mod = importlib.import_module(_MODULES[name], __package__)
    if mod.NAME != name:  # pragma: no cover - a wiring mistake
        raise ImportError(f"{mod.__name__} implements backend {mod.NAME!r}, not {name!r}")
    backend = _cache[name] = Backend(name, mod.encode_moves, mod.decode_moves, mod.batch_decoder)
    return backend


def _select(env: str | None) -> Backend:
    name = (env or "").strip().lower()
    if not name:
        try:
            return get_backend("cython")
        except ImportError as exc:
            warnings.warn(
                f"gamestore: compiled encoder unavailable ({exc}); using the pure-Python backend"
                " (set GAMESTORE_BACKEND=python to choose it explicitly)",
                RuntimeWarning,
                stacklevel=3,
            )
            return get_backend("python")
    if name not in BACKENDS:
        raise ValueError(f"GAMESTORE_BACKEND={name!r}: choose one of {', '.join(BACKENDS)}")
    try:
        return get_backend(name)
    except ImportError as exc:
        raise ImportError(
            f"GAMESTORE_BACKEND={name} but the compiled encoder cannot be loaded: {exc}"
            " (build it with `python setup.py build_ext --inplace` or install the package)"
        ) from exc


_selected: Backend = _select(os.environ.get("GAMESTORE_BACKEND"))

#: Name of the backend ``GAMESTORE_BACKEND`` selected at import ("cython" or "python").
BACKEND: str = _selected.name


def selected() -> Backend:
    """The backend in use."""
    return _selected


@contextmanager
def use(name: str) -> Iterator[Backend]:
    """Run the block with the backend called ``name`` in use, then restore the previous one.

    For tests and benchmarks that compare backends through the whole stack; it
    switches the process-wide choice, so do not use it while other threads encode.
    """
    global _selected
    previous, _selected = _selected, get_backend(name)
    try:
        yield _selected
    finally:
        _selected = previous
