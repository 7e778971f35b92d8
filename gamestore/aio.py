"""The async API: :func:`open_async` and :class:`AsyncGameStore`.

A thin facade over the one implementation, the synchronous
:class:`~gamestore.store.GameStore`: every call that touches files,
encodes, compresses or runs DuckDB is sent to a small thread pool owned by
the store, so the event loop only awaits.  zstd, Arrow I/O and DuckDB
release the GIL; Python code and the compiled encoder and decoder hand it to
a waiting thread (the loop) after the interpreter's switch interval; see
docs/concurrency.md for the measured event-loop lag.

    async with gamestore.open_async("runs/store", flush_interval=5.0) as store:
        await store.write_games(games)
        n = await store.count_games("board_type = 'hex8'")
        async for batch in store.scan_moves("num_players = 2"):
            ...
        rows = await store.sql("SELECT board_type, count(*) FROM games GROUP BY 1").fetchall()
        async with store.game_writer("g-1", board_type="square8", num_players=2) as game:
            await game.add_move(move_type="place", to=(3, 4), policy={"a": 0.5, "b": 0.5})
            await game.finalize(winner=1)
"""
from __future__ import annotations

import asyncio
import functools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, AsyncIterator, Awaitable, Callable, Generator, Iterable, Iterator, Mapping, Sequence, TypeVar

import pyarrow as pa

from . import gcpause as _gcpause
from . import gil as _gil
from . import priority as _priority
from . import store as _store
from .errors import GamestoreError, StoreClosedError
from .game_writer import GameWriter
from .sqlguard import Relation
from .store import GameStore, OnDuplicate

__all__ = ["open_async", "AsyncGameStore", "AsyncGameWriter", "AsyncQuery"]

T = TypeVar("T")
_log = logging.getLogger("gamestore.aio")


_DONE = object()


def _next(it: Iterator[T]) -> Any:
    return next(it, _DONE)


async def _aiter_sync(run: Callable[..., Awaitable[Any]], make: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Drive a blocking iterator in the pool, one item ahead of the consumer."""
    it = await run(make)
    pending: asyncio.Future[Any] | None = asyncio.ensure_future(run(_next, it))
    try:
        while True:
            assert pending is not None
            item = await pending
            pending = None
            if item is _DONE:
                return
            pending = asyncio.ensure_future(run(_next, it))
            yield item
    finally:
        if pending is not None:
            try:
                await pending
            except Exception:  # the consumer stopped; the prefetched item (or its error) is discarded
                pass
        close = getattr(it, "close", None)
        if close is not None:
            try:
                await run(close)
            except RuntimeError:  # the pool is already shut down (store closed, loop ending): close here
                close()


class _AwaitableContext:
    """Result of a call that is both awaitable and an async context manager."""

    def __init__(self, make: Callable[[], Awaitable[Any]]) -> None:
        self._make = make
        self._value: Any = None

    def __await__(self) -> Generator[Any, None, Any]:
        return self._make().__await__()

    async def __aenter__(self) -> Any:
        self._value = await self._make()
        return await self._value.__aenter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._value.__aexit__(exc_type, exc, tb)


class AsyncQuery:
    """A SQL query over the store; awaiting it (or a method) runs it off the loop.

    ``await store.sql(q)`` gives a ``pyarrow.Table``; ``fetchall``,
    ``fetchone``, ``fetchval`` and ``batches`` give other shapes.
    """

    def __init__(self, astore: "AsyncGameStore", query: str, *, allow_writes: bool = False) -> None:
        self._astore = astore
        self.query = query
        self.allow_writes = allow_writes

    def _relation(self) -> Relation | None:
        """The relation, or None for a statement without a result (only with ``allow_writes=True``)."""
        return self._astore.sync.sql(self.query, allow_writes=self.allow_writes)

    def __await__(self) -> Generator[Any, None, pa.Table]:
        return self.to_arrow_table().__await__()

    async def to_arrow_table(self) -> pa.Table:
        def table() -> pa.Table:
            rel = self._relation()
            return pa.table({}) if rel is None else rel.to_arrow_table()

        return await self._astore._run(table)

    async def fetchall(self) -> list[tuple[Any, ...]]:
        def rows() -> list[tuple[Any, ...]]:
            rel = self._relation()
            return [] if rel is None else list(rel.fetchall())

        return await self._astore._run(rows)

    async def fetchone(self) -> tuple[Any, ...] | None:
        def one() -> tuple[Any, ...] | None:
            rel = self._relation()
            rows = [] if rel is None else rel.limit(1).fetchall()
            return tuple(rows[0]) if rows else None

        return await self._astore._run(one)

    async def fetchval(self) -> Any:
        """The first column of the first row (``None`` when there are no rows)."""
        row = await self.fetchone()
        return None if row is None else row[0]

    def batches(self, batch_size: int = 65536) -> AsyncIterator[pa.RecordBatch]:
        """Stream the result as record batches (for results too big to hold at once)."""

        def make() -> Iterator[pa.RecordBatch]:
            rel = self._relation()
            return iter(()) if rel is None else iter(rel.arrow(batch_size))

        return _aiter_sync(self._astore._run, make)

    def __repr__(self) -> str:
        return f"<AsyncQuery {self.query!r}>"


class AsyncGameWriter:
    """Async face of :class:`~gamestore.game_writer.GameWriter` (from :meth:`AsyncGameStore.game_writer`).

    ``add_move`` validates in memory on the loop (tens of microseconds, no
    I/O) unless the move declares a new vector, which is written to the store
    config in the pool; ``finalize`` encodes in the pool.
    """

    def __init__(self, astore: "AsyncGameStore", writer: GameWriter) -> None:
        self._astore = astore
        self.sync = writer

    @property
    def game_id(self) -> str:
        return self.sync.game_id

    @property
    def state(self) -> str:
        return self.sync.state

    @property
    def num_moves(self) -> int:
        return self.sync.num_moves

    async def add_move(self, move: Mapping[str, Any] | None = None, /, **fields: Any) -> dict[str, Any]:
        """Validate and append one move (see :meth:`GameWriter.add_move`)."""
        vecs = (move or {}).get("vectors") if "vectors" not in fields else fields["vectors"]
        if vecs and isinstance(vecs, Mapping) and any(n not in self._astore.sync.vectors for n in vecs):
            return await self._astore._write(self.sync.add_move, move, **fields)
        return self.sync.add_move(move, **fields)

    async def finalize(self, **result_fields: Any) -> str:
        """Store the game (see :meth:`GameWriter.finalize`); returns its id."""
        return await self._astore._write(self.sync.finalize, **result_fields)

    async def abort(self) -> None:
        """Drop the game; nothing of it is stored."""
        self.sync.abort()

    async def __aenter__(self) -> "AsyncGameWriter":
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.sync.state == "open":
            self.sync.abort()

    def __repr__(self) -> str:
        return f"<AsyncGameWriter {self.sync!r}>"


class AsyncGameStore:
    """Awaitable version of the whole :class:`GameStore` API (get one with :func:`open_async`).

    ``flush_interval`` (seconds) starts a background task that flushes the
    write buffer that often, bounding how long a returned write stays
    un-durable; ``None`` flushes only on ``flush()``, a full buffer and
    ``close()``.  ``helper_niceness``: how much nicer than the thread creating
    the store the helper threads of its calls run (``worker_niceness`` of
    :func:`open_async`; 0: as the process); ``loop_slice``: the scheduler
    slice the creating thread (the loop's) holds while the store is open
    (None: left alone).
    """

    def __init__(
        self,
        store: GameStore,
        *,
        executor: ThreadPoolExecutor,
        own_executor: bool = True,
        flush_interval: float | None = None,
        switch_interval: float | None = None,
        handover_interval: float | None = _gil.DEFAULT_EVERY,
        helper_niceness: int = 0,
        loop_slice: float | None = None,
    ) -> None:
        if handover_interval is not None and handover_interval <= 0:
            raise ValueError("handover_interval must be > 0")
        self.sync = store
        self._handover = handover_interval
        self._nice = _priority.target(helper_niceness)  # absolute: helper threads inherit their creator's
        self._executor = executor
        self._own_executor = own_executor
        self._closed = False
        self._switch_interval = switch_interval
        self._flush_interval = flush_interval
        self._flusher: asyncio.Task[Any] | None = None
        self.flush_errors: list[BaseException] = []
        if flush_interval is not None:
            if flush_interval <= 0:
                raise ValueError("flush_interval must be > 0")
            self._flusher = asyncio.get_running_loop().create_task(self._autoflush(flush_interval))
        if switch_interval is not None:
            if switch_interval <= 0:
                raise ValueError("switch_interval must be > 0")
            _gil.SWITCH_INTERVAL.hold(switch_interval)
        # the loop's thread gets a fresh wake-up when it sleeps through a GIL release (gamestore.gil.wake)
        self._unwake = _gil.wake(threading.get_native_id()) if handover_interval is not None else None
        self._unslice = _priority.hold_slice(loop_slice) if loop_slice is not None else None

    # -- plumbing -----------------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self._closed:
            raise StoreClosedError(f"store {self.sync.path} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call(fn, *args, **kwargs))

    def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Callable[[], T]:
        """``fn(*args, **kwargs)`` as the pool runs it: handing the GIL to the loop, its helper threads nicer."""
        return _gil.wrap(fn, *args, every=self._handover, nice=self._nice, **kwargs)

    async def _run_carried(self, fn: Callable[..., T], /, *args: Any) -> T:
        """``_run``, with the collector paused from the call's start in the pool until the awaiting task has
        taken the result (for calls that build a large result of fresh containers: get_game).

        Without it a young collection is due when the call returns (the result alone exceeds the threshold), and
        the pool thread's next allocation, handing the result over (``Future.set_result``, the loop's wake-up),
        runs it: it walks the whole fresh result while every other thread, the loop's too, waits for the GIL, and
        promotes it to the older generations.  Here the pause ends in a callback the loop runs after the task's
        step that received the result (the task has dropped the result, or holds it, by then), or at once in the
        pool thread when the loop is not running to take it.  The result travels in a one-item list that the
        task empties, so the pool thread's own references (its work item, until it gets the GIL back) keep only
        the list alive.  ``gamestore.gcpause.carry = False``: as ``_run``.
        """
        if not _gcpause.carry:
            return await self._run(fn, *args)
        if self._closed:
            raise StoreClosedError(f"store {self.sync.path} is closed")
        loop = asyncio.get_running_loop()
        hold = _gcpause.Hold()

        @functools.wraps(fn)  # named as ``fn`` (the benchmarks' tracers attribute pool calls by name)
        def call() -> list[T]:
            hold.begin()
            return [fn(*args)]  # boxed: the pool thread's lingering references (its work item) end at the box

        def handed(_: Any) -> None:  # in the pool thread after the result was set (or in the loop's, cancelled)
            try:
                if loop.is_running():  # the task's step (queued by the result's own callback) runs first
                    loop.call_soon_threadsafe(loop.call_soon, hold.end)
                    return
            except RuntimeError:  # the loop is closed
                pass
            hold.end()

        cf = self._executor.submit(self._call(call))
        fut = asyncio.wrap_future(cf, loop=loop)  # registers its callback first: the result reaches the loop first
        cf.add_done_callback(handed)
        return (await fut).pop()

    async def _write(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a call that stores something; cancelling the awaiting task never interrupts it.

        On cancellation the call still runs to its end in the pool; the
        CancelledError is raised once it has ended, so the caller knows it
        took full effect (if the call itself failed, that error is the
        CancelledError's ``__cause__``).  docs/concurrency.md, "Cancellation".
        """
        if self._closed:
            raise StoreClosedError(f"store {self.sync.path} is closed")
        loop = asyncio.get_running_loop()
        return await _to_the_end(loop.run_in_executor(self._executor, self._call(fn, *args, **kwargs)))

    async def run_sync(self, fn: Callable[[GameStore], T]) -> T:

        """Run ``fn(sync_store)`` in the store's pool (for APIs without an async wrapper)."""
        return await self._run(fn, self.sync)

    async def _autoflush(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self._run(self.sync.flush)
            except asyncio.CancelledError:
                raise
            except GamestoreError as exc:  # e.g. StoreFullError: games stay buffered, retried next time
                self.flush_errors.append(exc)
                _log.warning("gamestore: background flush of %s failed: %s", self.sync.path, exc)

    @property
    def path(self) -> Path | str:
        """The store's directory (a Path) on a local filesystem, else its URI."""
        return self.sync.path

    # -- writing ------------------------------------------------------------------------
    async def write_games(self, games: Iterable[Mapping[str, Any]], *, on_duplicate: OnDuplicate = "error") -> int:
        """See :meth:`GameStore.write_games`.  A generator argument is consumed in the pool."""
        return await self._write(self.sync.write_games, games, on_duplicate=on_duplicate)

    async def flush(self) -> None:
        """Seal the buffer into a shard: durable and visible to every reader on return."""
        await self._write(self.sync.flush)

    def game_writer(self, game_id: str, **game_fields: Any) -> _AwaitableContext:
        """Start a move-by-move game: ``w = await store.game_writer(...)`` or ``async with ...``."""

        async def make() -> AsyncGameWriter:
            writer = await self._run(GameWriter, self.sync, game_id, game_fields)
            return AsyncGameWriter(self, writer)

        return _AwaitableContext(make)

    async def declare_vectors(self, vectors: Mapping[str, object]) -> None:
        await self._write(self.sync.declare_vectors, vectors)

    # -- reading ------------------------------------------------------------------------
    async def refresh(self) -> None:
        await self._run(self.sync.refresh)

    async def contains(self, game_id: str) -> bool:
        return await self._run(self.sync.__contains__, game_id)

    async def get_game(self, game_id: str) -> dict[str, Any]:
        """See :meth:`GameStore.get_game` (raises :class:`GameNotFoundError`, a ``KeyError``)."""
        return await self._run_carried(self.sync.get_game, game_id)

    async def query_games(
        self,
        where: str | None = None,
        *,
        columns: Sequence[str] | None = None,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        return await self._run(self.sync.query_games, where, columns=columns, order_by=order_by, limit=limit)

    async def count_games(self, where: str | None = None) -> int:
        return await self._run(self.sync.count_games, where)

    async def count_moves(self, where: str | None = None) -> int:
        return await self._run(self.sync.count_moves, where)

    async def game_locations(
        self, where: str | None = None, *, order_by: str | None = None, limit: int | None = None
    ) -> pa.Table:
        return await self._run(self.sync.game_locations, where, order_by=order_by, limit=limit)

    def scan_moves(
        self,
        where: str | None = None,
        *,
        columns: Sequence[str] | None = None,
        batch_size: int = 65536,
    ) -> AsyncIterator[pa.RecordBatch]:
        """``async for batch in store.scan_moves(...)``; the next batch is read while one is consumed."""
        return _aiter_sync(self._run, lambda: self.sync.scan_moves(where, columns=columns, batch_size=batch_size))

    def sql(self, query: str, *, allow_writes: bool = False) -> AsyncQuery:
        """``await store.sql(q)`` -> ``pyarrow.Table``; or ``.fetchall()``, ``.fetchone()``, ``.fetchval()``, ``.batches()``.

        Read-only unless ``allow_writes`` (see :meth:`GameStore.sql`).
        """
        return AsyncQuery(self, query, allow_writes=allow_writes)

    async def sql_fetch(self, query: str) -> pa.Table:
        """The result of ``query`` as a ``pyarrow.Table``."""
        return await AsyncQuery(self, query).to_arrow_table()

    async def info(self) -> dict[str, Any]:
        return await self._run(self.sync.info)

    # -- store-level documents ----------------------------------------------------------
    async def put_meta(self, name: str, value: Any) -> None:
        await self._write(self.sync.put_meta, name, value)

    async def get_meta(self, name: str, default: Any = None) -> Any:
        return await self._run(self.sync.get_meta, name, default)

    async def meta_names(self) -> list[str]:
        return await self._run(self.sync.meta_names)

    # -- lifetime -----------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Stop the background flush, seal what is buffered and release the pool (from any loop or thread).

        Cancelling it does not interrupt the seal (see :meth:`_write`).  If
        sealing fails (``StoreFullError``...), the error is raised and the
        store stays open with the games still buffered: ``close()`` again
        once the cause is gone.
        """
        if self._closed:
            return
        self._closed = True
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            if flusher.get_loop() is asyncio.get_running_loop():
                flusher.cancel()
                try:
                    await flusher
                except asyncio.CancelledError:
                    pass
            else:  # closed from another event loop than the one that opened: cancel it there, never await it here
                try:
                    flusher.get_loop().call_soon_threadsafe(flusher.cancel)
                except RuntimeError:
                    pass  # that loop is closed: its task is gone with it
        # sealing what is buffered runs whatever happened above: no buffered game is lost
        try:
            await _to_the_end(asyncio.get_running_loop().run_in_executor(
                self._executor, self._call(self.sync.close)))
        finally:
            if self.sync.closed:
                self._release()
            else:
                self._closed = False  # the seal failed: the store stays open, its games buffered

    def _release(self) -> None:
        self._closed = True
        if self._own_executor:
            self._executor.shutdown(wait=False)
        if self._switch_interval is not None:
            _gil.SWITCH_INTERVAL.release(self._switch_interval)
            self._switch_interval = None
        if self._unwake is not None:
            self._unwake()
            self._unwake = None
        if self._unslice is not None:
            self._unslice()
            self._unslice = None

    async def __aenter__(self) -> "AsyncGameStore":
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncGameStore {str(self.sync.path)!r}{' closed' if self._closed else ''}>"


async def _to_the_end(fut: asyncio.Future[T]) -> T:
    """Await ``fut`` (a call running in the pool); if the awaiting task is cancelled, still wait for the call
    to end, then raise the CancelledError (the call's own error, if any, as its ``__cause__``)."""
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError as cancelled:
        while not fut.done():
            try:
                await asyncio.wait([fut])
            except asyncio.CancelledError:
                continue  # cancelled again: the call still runs, wait for it
        failure = fut.exception()
        if failure is not None:
            raise cancelled from failure
        raise


def _warm_up(store: GameStore) -> None:
    """Import and initialise, off the loop, what the first calls would otherwise load while holding the GIL.

    Only an optimisation: a failure here is logged, never raised.
    """
    try:
        import pyarrow.compute  # noqa: F401
        import pyarrow.dataset  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        from . import codec

        move = {"move_number": 0, "turn_number": 0, "player": 1, "phase": "p", "move_type": "x", "to": {"x": 0, "y": 0},
                "think_time_ms": 1, "policy": {"a": 1.0}, "search": {"visit_counts": {"a": 1}, "root_value": 0.0}}
        enc = codec.encode_games([{"game_id": "warm-up", "board_type": "b", "num_players": 2, "moves": [move]}], vectors={})
        codec.decode_game(enc.games.slice(0, 1), enc.moves)
        store.count_games()
        store.sql("SELECT 1").fetchall()
    except Exception as exc:  # pragma: no cover - depends on the codec in use
        _log.debug("gamestore: warm-up failed: %r", exc)


def open_async(
    path: Any,
    *,
    workers: int = 4,
    executor: ThreadPoolExecutor | None = None,
    flush_interval: float | None = None,
    switch_interval: float | None = None,
    handover_interval: float | None = _gil.DEFAULT_EVERY,
    worker_niceness: int = _priority.DEFAULT_NICENESS,
    loop_slice: float | None = None,
    **open_options: Any,
) -> _AwaitableContext:
    """Open a store for asyncio code: ``store = await open_async(path)`` or ``async with open_async(path) as store``.

    ``open_options`` are those of :func:`gamestore.open` (``create``,
    ``vectors``, ``board_types``, ``shard_moves``, ...).  Calls run in a
    pool of ``workers`` threads owned by the store, or in ``executor`` when
    given (then the caller shuts it down).  ``flush_interval``: see
    :class:`AsyncGameStore`.

    ``switch_interval`` (seconds, opt-in): while the store is open, the
    interpreter's GIL switch interval (a process-wide setting) is lowered to at
    most this (``sys.setswitchinterval``; never raised), so that Python code
    running in the pool hands the GIL back to the event loop within about that
    time instead of Python's default 5 ms; ``close()`` restores it.  ``None``
    (the default) leaves the interpreter setting alone (docs/concurrency.md).

    ``handover_interval`` (seconds, default 0.5 ms): the store's pool calls
    give the GIL up for a moment at least this often while they validate,
    encode or decode (:mod:`gamestore.gil`), so the event loop, when it
    wakes, waits about that long for the GIL instead of a whole switch
    interval; each handover costs the call ~0.1 ms of wall time.  ``None``:
    pool calls hand the GIL over only at the interpreter's switch interval.

    ``worker_niceness`` (default 10; 0: off): gamestore's own threads run
    this much nicer than the thread that opened the store (Linux per-thread
    priority, :mod:`gamestore.priority`), so that when every core is busy
    with the program's threads the kernel gives the event loop's thread a
    core first: the store's pool (not an ``executor`` passed in: those are
    the caller's threads) and the helper threads its calls start
    (background sealing, parallel compression, read-ahead) while they work
    for it.  The caller's own threads are never touched.

    ``loop_slice`` (seconds, opt-in, e.g. 0.0001; None: the default): while
    the store is open, the thread that opens it (the event loop's) asks the
    kernel for this short a scheduler slice (Linux 6.12+ EEVDF: 1.4 ms by
    default, 0.1..100 ms accepted; :mod:`gamestore.priority`), so that when
    it wakes while a thread with a longer slice runs (the program's own
    threads at the loop's niceness, other processes), the kernel lets it
    preempt that thread at once instead of after the rest of its slice;
    ``close()`` gives it its slice back.  Where the kernel has no per-thread
    slice, nothing changes.
    """
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if switch_interval is not None and switch_interval <= 0:
        raise ValueError("switch_interval must be > 0")
    if handover_interval is not None and handover_interval <= 0:
        raise ValueError("handover_interval must be > 0")
    if not 0 <= worker_niceness <= 19:
        raise ValueError("worker_niceness must be in 0..19")
    if loop_slice is not None:
        _priority.check_slice(loop_slice, "loop_slice")

    async def make() -> AsyncGameStore:
        pool = executor
        if pool is None:
            pool = ThreadPoolExecutor(workers, thread_name_prefix="gamestore", initializer=_priority.lower,
                                      initargs=(worker_niceness,))
        loop = asyncio.get_running_loop()
        nice = _priority.target(worker_niceness)
        try:
            store = await loop.run_in_executor(pool, _gil.wrap(_store.open, path, every=handover_interval,
                                                               nice=nice, **open_options))
            await loop.run_in_executor(pool, _gil.wrap(_warm_up, store, every=handover_interval, nice=nice))
        except BaseException:
            if executor is None:
                pool.shutdown(wait=False)
            raise
        try:
            return AsyncGameStore(store, executor=pool, own_executor=executor is None, flush_interval=flush_interval,
                                  switch_interval=switch_interval, handover_interval=handover_interval,
                                  helper_niceness=worker_niceness, loop_slice=loop_slice)
        except BaseException:
            store.close()
            if executor is None:
                pool.shutdown(wait=False)
            raise

    return _AwaitableContext(make)
