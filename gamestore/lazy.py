"""Modules imported when first used, so that opening a store and reading it import only what that needs.

``import pyarrow.compute`` costs ~40 ms of CPU (it builds a Python wrapper
with a docstring for every Arrow kernel, through ``pydoc``) and
``pyarrow.fs`` ~15 ms (it loads the S3, GCS, Azure and HDFS bindings and
``ssl``); most statements and reads need neither.  ``pc = lazy_module(
"pyarrow.compute")`` binds a stand-in that imports the module on its first
attribute access and from then on holds the module's names itself.

A fresh process's first statement is measured by ``benchmarks/bench_sql.py``;
``tests/test_lazy_imports.py`` checks what opening a store and querying it
import.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["lazy_module"]


class _LazyModule(ModuleType):
    """Stands for module ``__lazy_name__`` until an attribute is first read (see :func:`lazy_module`)."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)  # copy/pickle/inspection probes never import the module
        # importlib is thread-safe, and copying the names twice is harmless: no lock (none to deadlock on)
        module = importlib.import_module(self.__dict__["__lazy_name__"])
        # later reads find the module's names here, without __getattr__
        self.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
        return getattr(module, attr)


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it on first attribute access (typed Any: pyarrow has no
    type information anyway)."""
    stub = _LazyModule(name)
    stub.__dict__["__lazy_name__"] = name
    return stub
