"""Operator jobs over whole stores: compact, merge, prune, verify, reindex, export.

Every job that removes or rewrites shards follows one rule, so that a crash
at any point leaves every game readable exactly once: new shards are
committed first, and only then are the old ones renamed into ``trash/``
(see :mod:`gamestore.ops.rewrite` and docs/format.md).

One module per job; this package re-exports their public functions.
"""
from __future__ import annotations

from ..errors import StoreBusyError
from .common import DEFAULT_TARGET_MOVES, maintenance_lock, opened, trash_shards
from .export import ExportResult, export_parquet, iter_games
from .integrity import VerifyReport, reindex_store, verify_store
from .merging import MergeResult, merge
from .repair import RepairResult, repair_store
from .rewrite import CompactResult, PruneResult, compact, prune

__all__ = [
    "StoreBusyError",
    "CompactResult",
    "MergeResult",
    "PruneResult",
    "VerifyReport",
    "RepairResult",
    "ExportResult",
    "compact",
    "merge",
    "prune",
    "verify_store",
    "reindex_store",
    "repair_store",
    "export_parquet",
    "iter_games",
    "opened",
    "maintenance_lock",
    "trash_shards",
    "DEFAULT_TARGET_MOVES",
]
