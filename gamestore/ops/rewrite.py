"""Jobs that rewrite a store's shards in place: ``compact`` (small shards into full ones, shadowed
duplicate copies dropped) and ``prune`` (remove the games matching a predicate).

Every job that removes or rewrites shards follows one rule, so that a crash
at any point leaves every game readable exactly once: new shards are
committed first (the usual tmp -> shards rename), and only then are the old
shards renamed into ``trash/`` (docs/format.md).  In between, a game may sit
in two shards; the catalog indexes the first copy by shard id, so readers
see it once.  Old shards are trashed in descending id order, so a game whose
copies are all going away stays visible until the last (first-indexed) copy
goes.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import faults
from ..readpath import ShardPick, intact_reader
from ..errors import QueryError
from ..shard import ShardReader
from ..store import GameStore
from .common import (
    DEFAULT_TARGET_MOVES,
    Progress,
    indexed_readers,
    known_damage,
    maintenance_lock,
    opened,
    finish_interrupted,
    trash_shards,
    with_progress,
)
from .shardbuild import Part, write_parts

__all__ = ["CompactResult", "compact", "PruneResult", "prune"]


@dataclass
class CompactResult:
    """What :func:`compact` did (or would do, with ``dry_run``)."""

    shards_before: int = 0
    shards_after: int = 0
    shards_rewritten: int = 0
    shards_written: int = 0
    games: int = 0
    moves: int = 0
    duplicates_dropped: int = 0
    damaged_shards: dict[str, list[str]] = field(default_factory=dict)
    dry_run: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _ShardPlan:
    reader: ShardReader
    pick: ShardPick
    moves: int
    shadowed: int


def _plan_groups(plans: list[_ShardPlan], target_moves: int) -> list[list[_ShardPlan]]:
    groups: list[list[_ShardPlan]] = []
    current: list[_ShardPlan] = []
    total = 0
    for p in plans:
        if p.moves >= target_moves and not p.shadowed:
            continue
        if current and total + p.moves > target_moves:
            groups.append(current)
            current, total = [], 0
        current.append(p)
        total += p.moves
    if current:
        groups.append(current)
    return [g for g in groups if len(g) > 1 or g[0].shadowed]


def compact(
    store: GameStore | str | os.PathLike,
    *,
    target_moves: int = DEFAULT_TARGET_MOVES,
    dry_run: bool = False,
    fsync: bool = True,
    progress: Progress | None = None,
) -> CompactResult:
    """Merge shards smaller than ``target_moves`` into full ones; drop shadowed duplicate copies.

    The set of visible games is the same before and after, and at every
    instant in between (see the module docstring).  Damaged shards are left
    alone and reported.
    """
    if target_moves < 1:
        raise ValueError("target_moves must be positive")
    result = CompactResult(dry_run=dry_run)
    with opened(store) as s, maintenance_lock(s):
        s.refresh()
        cat = s.catalog
        known_damage(s)  # before anything reads: a missing file would fail the SQL over the shards
        if not dry_run:
            finish_interrupted(s, fsync=fsync)
        plans = []
        for reader, pick in indexed_readers(s):
            plans.append(_ShardPlan(reader, pick, pick.num_moves, reader.manifest["num_games"] - pick.num_games))
        result.damaged_shards = known_damage(s)  # (reading the manifests above may have found more)
        result.shards_before = len(plans) + len(result.damaged_shards)
        groups = _plan_groups(plans, target_moves)
        if dry_run:
            result.shards_rewritten = sum(len(g) for g in groups)
            result.duplicates_dropped = sum(p.shadowed for g in groups for p in g)
            result.shards_written = sum(1 for g in groups if any(p.pick.num_games for p in g))
        else:
            faults.point("compact.planned")
            for group in with_progress(groups, progress):
                intact = []
                for p in group:
                    if intact_reader(cat, p.reader.shard_id) is None:  # quarantined now: skipped, named
                        result.damaged_shards[p.reader.shard_id] = [cat.damage().get(p.reader.shard_id, "unreadable")]
                    else:
                        intact.append(p)
                if not intact or (len(intact) == 1 and not intact[0].shadowed):
                    continue
                ids = [p.reader.shard_id for p in intact]
                if write_parts(s, [Part(p.reader, p.pick) for p in intact], fsync=fsync, replaces=ids) is not None:
                    result.shards_written += 1
                trash_shards(s.storage, ids, fsync=fsync)
                s.refresh()
                faults.point("compact.group_done")
                result.shards_rewritten += len(intact)
                result.duplicates_dropped += sum(p.shadowed for p in intact)
            s.refresh()
            if groups:
                cat.write_checkpoint()  # removed shards leave the checkpoint now, not at the next long tail
        result.games = s.count_games()
        result.moves = s.count_moves()
        result.shards_after = (
            result.shards_before - result.shards_rewritten + result.shards_written
            if dry_run
            else len(cat.shard_ids()) + len(cat.damaged_shards())
        )
    return result


@dataclass
class PruneResult:
    """What :func:`prune` removed (or would remove, with ``dry_run``)."""

    games_removed: int = 0
    moves_removed: int = 0
    shards_rewritten: int = 0
    shards_removed: int = 0
    dry_run: bool = False
    #: damaged shards (id -> what is wrong): skipped, their games untouched (a matching game there is not removed)
    damaged_shards: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def prune(
    store: GameStore | str | os.PathLike,
    *,
    where: str,
    dry_run: bool = False,
    fsync: bool = True,
    progress: Progress | None = None,
) -> PruneResult:
    """Remove every game matching the SQL predicate ``where`` (over the ``games`` view).

    Affected shards are rewritten without those games and committed first;
    then the old shards are trashed.  Each game disappears at once; a crash
    part-way leaves some of the matching games removed and all others intact,
    and re-running finishes the job.  Damaged shards are skipped and named in
    ``damaged_shards`` (their games, matching or not, stay where they are).
    """
    if not where or not where.strip():
        raise QueryError("prune needs a non-empty --where predicate")
    result = PruneResult(dry_run=dry_run)
    with opened(store) as s, maintenance_lock(s):
        s.refresh()
        if not dry_run:
            finish_interrupted(s, fsync=fsync)
        result.damaged_shards = known_damage(s)
        victims = set(s.query_games(where, columns=["game_id"]).column("game_id").to_pylist())
        if not victims:
            return result
        indexed = indexed_readers(s, columns=["game_id"])
        picks = {r.shard_id: pick for r, pick in indexed}
        doomed = list(victims)
        affected: list[tuple[ShardReader, ShardPick]] = []
        for reader, pick in indexed:
            if not any(g in victims for g in reader.manifest["game_ids"]):
                continue
            keep = pick.subset(~np.isin(pick.columns.get("game_id", np.zeros(0, object)), doomed))
            affected.append((reader, keep))
        if not dry_run:  # a damaged affected shard is skipped (its games stay), the others are pruned
            damaged = {r.shard_id for r, _ in affected if intact_reader(s.catalog, r.shard_id) is None}
            affected = [(r, keep) for r, keep in affected if r.shard_id not in damaged]
        result.damaged_shards.update(known_damage(s))
        before = [picks[r.shard_id] for r, _ in affected]
        result.games_removed = sum(p.num_games - k.num_games for p, (_, k) in zip(before, affected))
        result.moves_removed = sum(p.num_moves - k.num_moves for p, (_, k) in zip(before, affected))
        result.shards_rewritten = sum(1 for _, keep in affected if keep.num_games)
        result.shards_removed = sum(1 for _, keep in affected if not keep.num_games)
        if dry_run:
            return result
        faults.point("prune.planned")
        # highest shard id first: of a pruned game's copies the indexed one (lowest id) goes last, so no
        # other copy of it ever shows in between; a shard keeping nothing is removed at its turn
        for reader, keep in with_progress(sorted(affected, key=lambda a: a[0].shard_id, reverse=True), progress):
            if keep.num_games:
                write_parts(s, [Part(reader, keep)], fsync=fsync, replaces=[reader.shard_id])
            else:
                trash_shards(s.storage, [reader.shard_id], fsync=fsync)
        faults.point("prune.rewritten")
        trash_shards(s.storage, [r.shard_id for r, _ in affected], fsync=fsync)
        s.refresh()
    return result
