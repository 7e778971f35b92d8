"""``prune``: remove the games matching a predicate (rewrite, commit, then trash the old shards)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from ..errors import FormatError, QueryError
from ..shard import ShardReader
from ..store import GameStore
from .common import Progress, clean_orphan_segments, indexed_rows, maintenance_lock, opened, trash_shards, with_progress
from .shardbuild import Part, write_parts

__all__ = ["PruneResult", "prune"]


@dataclass
class PruneResult:
    """What :func:`prune` removed (or would remove, with ``dry_run``)."""

    games_removed: int = 0
    moves_removed: int = 0
    shards_rewritten: int = 0
    shards_removed: int = 0
    dry_run: bool = False

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
    and re-running finishes the job.  A damaged affected shard aborts the job
    before anything is removed.
    """
    if not where or not where.strip():
        raise QueryError("prune needs a non-empty --where predicate")
    result = PruneResult(dry_run=dry_run)
    with opened(store) as s, maintenance_lock(s):
        s.refresh()
        victims = set(s.query_games(where, columns=["game_id"]).column("game_id").to_pylist())
        result.games_removed = len(victims)
        result.moves_removed = s.count_moves(where) if victims else 0
        if not victims:
            return result
        cat = s.catalog
        affected: list[tuple[ShardReader, list[int]]] = []
        for reader in cat.readers():
            ids = reader.manifest["game_ids"]
            if not any(g in victims for g in ids):
                continue
            keep = [i for i in indexed_rows(s, reader) if ids[i] not in victims]
            affected.append((reader, keep))
        result.shards_rewritten = sum(1 for _, keep in affected if keep)
        result.shards_removed = sum(1 for _, keep in affected if not keep)
        if dry_run:
            return result
        clean_orphan_segments(s.storage)
        for reader, _ in affected:
            problems = reader.check_files()
            if problems:
                raise FormatError(f"shard {reader.shard_id} is damaged ({'; '.join(problems)}); nothing was pruned")
        for reader, keep in with_progress(affected, progress):
            if keep:
                write_parts(s, [Part(reader, keep)], fsync=fsync, replaces=[reader.shard_id])
        trash_shards(s.storage, [r.shard_id for r, _ in affected], fsync=fsync)
        s.refresh()
    return result
