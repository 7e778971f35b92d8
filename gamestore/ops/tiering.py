"""Automatic tiered compaction: small shards merged into larger ones as they accumulate (size-tiered, LSM-like).

Shards are put in *tiers* by their move count: tier 0 below ``base_moves``,
tier ``k`` below ``base_moves * fanin**k``; shards of ``target_moves`` or
more are final.  When a tier holds ``fanin`` shards or more, its oldest ones
(at most ``max_inputs``, at most ``target_moves`` moves together) are merged
into one shard, which lands in a higher tier.  Every shard is therefore
rewritten about ``log_fanin(target_moves / its size)`` times, and the number
of shards stays about ``fanin`` per tier plus the final ones, however many
tiny shards writers commit.

Each merge follows the rewrite rule of :mod:`gamestore.ops.rewrite`: the
new shard is committed first and names the shards it replaces in its
manifest, so every reader ignores them from that instant on (each game is
seen exactly once at every moment); the replaced shards are removed
afterwards, after ``retain_seconds`` so that a statement already reading
them finishes.  A round takes the store's maintenance lock without waiting
(one compactor per store; the lock is an ``flock`` that dies with its
process); a busy round is skipped.

Drivers: :func:`compact_round` (one round), :class:`AutoCompactor` (a
background thread: ``gamestore.open(path, auto_compact=True)``) and
``gamestore compact --watch`` (a foreground loop until SIGINT/SIGTERM).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from .. import faults
from ..errors import StoreBusyError
from ..store import GameStore
from .common import (
    DEFAULT_TARGET_MOVES,
    clean_orphan_segments,
    indexed_picks,
    maintenance_lock,
    pick_of,
    trash_shards,
)
from .shardbuild import Part, write_parts

__all__ = ["TierPolicy", "RoundResult", "plan_tiers", "compact_round", "AutoCompactor", "watch"]

_log = logging.getLogger("gamestore.compaction")


@dataclass(frozen=True)
class TierPolicy:
    """When and what the tiered compactor merges."""

    fanin: int = 8  #: shards of one tier that trigger a merge (and the size ratio between tiers)
    base_moves: int = 1024  #: upper bound (exclusive) of tier 0, in moves
    target_moves: int = DEFAULT_TARGET_MOVES  #: shards this large are final; no merge output exceeds it
    max_inputs: int = 64  #: most shards merged into one at a time
    retain_seconds: float = 2.0  #: how long replaced shards stay on disk for statements already reading them

    def __post_init__(self) -> None:
        if self.fanin < 2:
            raise ValueError("fanin must be at least 2")
        if self.base_moves < 1 or self.target_moves < 1:
            raise ValueError("base_moves and target_moves must be positive")
        if self.max_inputs < 2:
            raise ValueError("max_inputs must be at least 2")
        if self.retain_seconds < 0:
            raise ValueError("retain_seconds must be >= 0")

    def tier(self, moves: int) -> int | None:
        """The tier of a shard of ``moves`` moves (None: final)."""
        if moves >= self.target_moves:
            return None
        t, bound = 0, self.base_moves
        while moves >= bound:
            t += 1
            bound *= self.fanin
        return t


@dataclass
class RoundResult:
    """What one :func:`compact_round` did."""

    busy: bool = False  #: another compactor held the lock: nothing was done
    merges: int = 0  #: shards written
    shards_merged: int = 0  #: shards they replace
    shards_removed: int = 0  #: replaced shards deleted this round
    damaged_shards: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def plan_tiers(shards: list[tuple[str, int]], policy: TierPolicy) -> list[list[str]]:
    """Groups of shard ids to merge, from ``(shard_id, moves)`` of the visible shards (oldest first)."""
    tiers: dict[int, list[tuple[str, int]]] = {}
    for sid, moves in sorted(shards):
        t = policy.tier(moves)
        if t is not None:
            tiers.setdefault(t, []).append((sid, moves))
    groups = []
    for t in sorted(tiers):
        members = tiers[t]
        while len(members) >= policy.fanin:
            group: list[str] = []
            total = 0
            for sid, moves in members:
                if len(group) >= policy.max_inputs or (group and total + moves > policy.target_moves):
                    break
                group.append(sid)
                total += moves
            if len(group) < 2:
                break
            groups.append(group)
            members = members[len(group):]
    return groups


def compact_round(
    store: GameStore,
    policy: TierPolicy = TierPolicy(),
    *,
    fsync: bool = True,
    hidden_since: dict[str, float] | None = None,
    stop: threading.Event | None = None,
) -> RoundResult:
    """One round of tiered compaction on an open store; never waits for another compactor.

    ``hidden_since`` (kept by a long-running caller between rounds) records
    when each replaced shard was first seen, so that it is removed
    ``policy.retain_seconds`` later; without it replaced shards are removed
    in the same round.
    """
    result = RoundResult()
    try:
        with maintenance_lock(store):
            _round_locked(store, policy, result, fsync=fsync, hidden_since=hidden_since, stop=stop)
    except StoreBusyError:
        result.busy = True
    return result


def _round_locked(store: GameStore, policy: TierPolicy, result: RoundResult, *, fsync: bool,
                  hidden_since: dict[str, float] | None, stop: threading.Event | None) -> None:
    clean_orphan_segments(store.storage)  # a round killed between a trash rename and the segment's removal
    store.refresh()
    cat = store.catalog
    table = cat.shard_table()
    hidden = set(cat.hidden_shards())
    damaged = set(cat.damaged_shards())
    sizes = [(s, int(m)) for s, m in zip(table.column("shard_id").to_pylist(), table.column("num_moves").to_pylist())
             if s not in hidden and s not in damaged]
    faults.point("tier.planned")
    for group in plan_tiers(sizes, policy):
        if stop is not None and stop.is_set():
            break
        parts, ids = [], []
        picks = indexed_picks(store)
        for sid in group:
            reader = cat.find_reader(sid)
            problems = ["unreadable"] if reader is None else reader.check_files()
            if problems:
                result.damaged_shards[sid] = problems
                continue
            assert reader is not None
            parts.append(Part(reader, pick_of(picks, reader)))
            ids.append(sid)
        if len(ids) < 2:
            continue
        write_parts(store, parts, fsync=fsync, replaces=ids)
        faults.point("tier.merged")
        result.merges += 1
        result.shards_merged += len(ids)
        hidden.update(ids)
    now = time.monotonic()
    if hidden_since is not None:
        for sid in hidden:
            hidden_since.setdefault(sid, now)
        due = [s for s in hidden if now - hidden_since[s] >= policy.retain_seconds]
    else:
        due = sorted(hidden)
    if due:
        trash_shards(store.storage, due, fsync=fsync)
        result.shards_removed = len(due)
        if hidden_since is not None:
            for s in due:
                hidden_since.pop(s, None)
    if result.merges or due:
        store.refresh()
        cat.write_checkpoint()


class AutoCompactor:
    """A background thread that runs :func:`compact_round` every ``interval`` seconds until stopped."""

    def __init__(self, store: GameStore, policy: TierPolicy = TierPolicy(), *, interval: float = 1.0,
                 fsync: bool = True, on_round: Callable[[RoundResult], None] | None = None) -> None:
        self.store = store
        self.policy = policy
        self.interval = interval
        self.fsync = fsync
        self.on_round = on_round
        self.rounds = 0
        self.errors = 0
        self.last_error: BaseException | None = None
        self._stop = threading.Event()
        self._hidden_since: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="gamestore-auto-compact", daemon=True)

    def start(self) -> "AutoCompactor":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = compact_round(self.store, self.policy, fsync=self.fsync, hidden_since=self._hidden_since,
                                  stop=self._stop)
                self.rounds += 1
                if self.on_round is not None:
                    self.on_round(r)
            except Exception as exc:  # noqa: BLE001 - a failed round is retried; the store stays usable
                self.errors += 1
                self.last_error = exc
                _log.warning("auto-compaction round failed on %s: %s", self.store.path, exc)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        """Stop after the merge in progress (if any) and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()


def watch(store: GameStore, policy: TierPolicy = TierPolicy(), *, interval: float = 1.0, fsync: bool = True,
          stop: threading.Event, on_round: Callable[[RoundResult], None] | None = None) -> int:
    """Run compaction rounds in this thread until ``stop`` is set; returns the number of merges."""
    hidden_since: dict[str, float] = {}
    merges = 0
    while not stop.is_set():
        r = compact_round(store, policy, fsync=fsync, hidden_since=hidden_since, stop=stop)
        merges += r.merges
        if on_round is not None:
            on_round(r)
        stop.wait(interval)
    return merges
