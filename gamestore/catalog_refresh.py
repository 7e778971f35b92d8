"""The catalog's background refresher: lists ``shards/`` and indexes new shards off the readers' threads.

A read only wakes it (:func:`wake`); it lists once per wake-up, then indexes
the tail in steps of ``REFRESH_STEP_SHARDS``, publishing a snapshot after
each step (docs/concurrency.md, "Refresh contract").  A shard committed
through another handle of this process is handed over with its segment
(:func:`hand_over`) and published by that handle's next call without reading
a file (:func:`take_inbox`).
"""
from __future__ import annotations

import os
import threading
import time
import weakref
from typing import TYPE_CHECKING

import pyarrow as pa

from . import gil
from .errors import FormatError, ShardCorruptError

if TYPE_CHECKING:  # pragma: no cover
    from .catalog import Catalog

__all__ = ["run_refresher", "wake", "take_inbox", "register", "unregister", "hand_over"]

#: The refresher lists ``shards/`` at most once per this many seconds, and spends at most a tenth of its
#: time listing (a listing of 100,000 shards takes tens of milliseconds).
_REFRESH_PAUSE_SECONDS = 0.01
_LISTING_SHARE = 0.1
#: The refresher thread ends after this long without a wake-up (the next one starts another).
_REFRESHER_IDLE_SECONDS = 5.0

#: The open catalogs of each store in this process: a shard committed through one handle is handed to the others.
_OPEN: dict[str, weakref.WeakSet[Catalog]] = {}
_OPEN_LOCK = threading.Lock()


def _key(catalog: Catalog) -> str:
    storage = catalog.storage
    return os.path.realpath(storage.root) if storage.local else storage.uri


def register(catalog: Catalog) -> None:
    with _OPEN_LOCK:
        _OPEN.setdefault(_key(catalog), weakref.WeakSet()).add(catalog)


def unregister(catalog: Catalog) -> None:
    with _OPEN_LOCK:
        siblings = _OPEN.get(_key(catalog))
        if siblings is not None:
            siblings.discard(catalog)
            if not siblings:
                del _OPEN[_key(catalog)]


def hand_over(catalog: Catalog, shard_id: str, loaded: tuple[pa.Table, dict]) -> None:
    """Give a shard ``catalog`` just committed and indexed to the other open catalogs of its store."""
    with _OPEN_LOCK:
        others = [c for c in _OPEN.get(_key(catalog), ()) if c is not catalog]
    for other in others:
        other._inbox.append((shard_id, loaded))


def take_inbox(catalog: Catalog) -> bool:
    """Publish the shards other handles of this process committed since the last look (refresh lock held)."""
    snap, segments, rows, seen = catalog._snap, [], [], set()
    while catalog._inbox:
        sid, (segment, row) = catalog._inbox.popleft()
        if sid in snap.shard_ids or sid in snap.damaged or sid in seen:
            continue
        seen.add(sid)
        if sid in catalog._pending:
            catalog._pending.remove(sid)
        segments.append(segment)
        rows.append(row)
    if segments:
        catalog._publish(segments, rows, set(), set())
    return bool(segments)


def wake(catalog: Catalog) -> None:
    """Have the refresher list ``shards/`` and index what is new (its thread started when none runs)."""
    catalog._wanted.set()
    if catalog._background is None:
        with catalog._readers_lock:
            if catalog._background is None and not catalog._closed:
                t = threading.Thread(target=gil.inherit(run_refresher), args=(catalog,), name="gamestore-catalog-refresh",
                                     daemon=True)
                catalog._background = t
                t.start()


def run_refresher(catalog: Catalog) -> None:
    """The refresher thread: one listing per wake-up, then the tail in bounded steps (one snapshot each)."""
    from .catalog import _REFRESH_ATTEMPTS, REFRESH_STEP_SHARDS

    self = catalog
    while True:
        if not self._wanted.wait(_REFRESHER_IDLE_SECONDS):
            with self._readers_lock:
                if not self._wanted.is_set():  # idle: end (the next wake-up starts another)
                    self._background = None
                    return
        if self._closed:
            return
        self._wanted.clear()
        relist, failures = True, 0
        while not self._closed and (relist or self._pending):
            with self._refresh_lock:
                if self._closed:
                    return
                try:
                    if relist:
                        relist = False
                        self._refresh_locked(limit=REFRESH_STEP_SHARDS)
                    else:
                        self._step(REFRESH_STEP_SHARDS)
                except (OSError, ShardCorruptError, FormatError):
                    # a shard removed between the listing and its loading (compact, prune): list again;
                    # anything persistent is left to the next wake-up, and a forced refresh raises it
                    failures += 1
                    relist = failures < _REFRESH_ATTEMPTS
                    if not relist:
                        self._pending = []
            time.sleep(0)  # let the readers' threads in between steps
        # at most one listing per pause however fast shards arrive
        time.sleep(max(_REFRESH_PAUSE_SECONDS, self._listing_seconds / _LISTING_SHARE))
