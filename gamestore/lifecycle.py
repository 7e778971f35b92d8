"""What a store's calls do when the store is closed while they run (docs/concurrency.md, "Closing").

A call made after ``close()`` raises :class:`StoreClosedError` at once.  A
call already running when another thread closes the store either completes
or raises :class:`StoreClosedError` (with whatever the closing broke, say
DuckDB's "connection closed", chained); never a raw DuckDB error or
``KeyError``.  Results consumed after the call returned (a ``scan_moves``
iterator, a SQL relation) raise :class:`StoreClosedError` at their next
step after the close.
"""
from __future__ import annotations

import functools
from typing import Callable, Concatenate, Iterator, ParamSpec, Protocol, TypeVar

from .errors import StoreClosedError

__all__ = ["Closable", "while_open", "guard_iter", "closed_error"]

P = ParamSpec("P")
T = TypeVar("T")


class Closable(Protocol):
    @property
    def path(self) -> object: ...

    @property
    def closed(self) -> bool: ...


S = TypeVar("S", bound=Closable)


def closed_error(store: Closable, during: str | None = None) -> StoreClosedError:
    if during is None:
        return StoreClosedError(f"store {store.path} is closed")
    return StoreClosedError(f"store {store.path} was closed during {during}")


def while_open(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """Decorate a store method: StoreClosedError when the store is closed before or while it runs."""

    @functools.wraps(method)
    def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if self.closed:
            raise closed_error(self)
        try:
            return method(self, *args, **kwargs)
        except StoreClosedError:
            raise
        except Exception as exc:
            if self.closed:
                raise closed_error(self, method.__name__) from exc
            raise

    return call


def guard_iter(store: Closable, it: Iterator[T], what: str) -> Iterator[T]:
    """``it``, raising StoreClosedError at the first step after ``store`` was closed."""
    try:
        while True:
            if store.closed:
                raise closed_error(store, what)
            try:
                item = next(it)
            except StopIteration:
                return
            except StoreClosedError:
                raise
            except Exception as exc:
                if store.closed:
                    raise closed_error(store, what) from exc
                raise
            yield item
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
