"""Integrity checks and catalog rebuilds: ``gamestore verify`` and ``gamestore reindex``."""
from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..catalog import SEGMENT_SCHEMA, segment_from_games
from ..checkpoint import LAST_CHECKPOINT, read_checkpoint
from ..errors import FormatError, ShardCorruptError
from ..records import games_equal
from ..shard import ShardReader, verify_shard
from ..store import require_store

__all__ = ["VerifyReport", "verify_store", "reindex_store"]


@dataclass
class VerifyReport:
    """What ``verify_store`` found; ``ok`` is False when anything is damaged."""

    shards_checked: int = 0
    games: int = 0
    moves: int = 0
    damaged_shards: dict[str, list[str]] = field(default_factory=dict)
    catalog_problems: list[str] = field(default_factory=list)
    duplicate_games: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.damaged_shards and not self.catalog_problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, **asdict(self)}

    def lines(self) -> list[str]:
        out = [f"{self.shards_checked} shards, {self.games} games, {self.moves} moves checked"]
        for sid, problems in sorted(self.damaged_shards.items()):
            out.extend(f"DAMAGED shard {sid}: {p}" for p in problems)
        out.extend(f"CATALOG {p}" for p in self.catalog_problems)
        if self.duplicate_games:
            sample = ", ".join(sorted(self.duplicate_games)[:5])
            out.append(
                f"note: {len(self.duplicate_games)} games are stored in more than one shard (e.g. {sample});"
                " readers use the first copy, `gamestore compact` drops the others"
            )
        out.append("OK" if self.ok else "DAMAGED")
        return out


def _shard_dirs(root: Path) -> list[Path]:
    d = root / "shards"
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def verify_store(path: str | os.PathLike, *, progress=None) -> VerifyReport:
    """Check every shard's checksums and structure, and the catalog against the shards."""
    root = require_store(path)
    report = VerifyReport()
    owners: dict[str, list[str]] = {}
    replaced: set[str] = set()
    shards = _shard_dirs(root)
    for shard_dir in shards if progress is None else progress(shards):
        report.shards_checked += 1
        problems = verify_shard(shard_dir)
        if problems:
            report.damaged_shards[shard_dir.name] = problems
            continue
        reader = ShardReader(shard_dir)
        m = reader.manifest
        replaced.update(m.get("replaces") or [])
        report.games += m["num_games"]
        report.moves += m["num_moves"]
        for gid in m["game_ids"]:
            owners.setdefault(gid, []).append(shard_dir.name)
        seg_path = root / "catalog" / f"{shard_dir.name}.parquet"
        if seg_path.exists():
            try:
                seg = pq.read_table(seg_path, page_checksum_verification=True)
                expect = segment_from_games(shard_dir.name, reader.games)
                # compared as values, NaN equal to NaN bit for bit (Table.equals calls a NaN score a difference)
                if not seg.schema.equals(SEGMENT_SCHEMA) or not games_equal(seg.to_pylist(), expect.to_pylist()):
                    report.catalog_problems.append(f"segment {seg_path.name} differs from its shard (run reindex)")
            except (OSError, pa.ArrowException) as exc:
                report.catalog_problems.append(f"segment {seg_path.name} unreadable: {exc} (run reindex)")
    names = {p.name for p in shards}
    for seg_path in sorted((root / "catalog").glob("*.parquet")):
        if seg_path.stem not in names:
            report.catalog_problems.append(f"segment {seg_path.name} has no shard (run reindex)")
    if (root / "catalog" / LAST_CHECKPOINT).exists() and read_checkpoint(root / "catalog", SEGMENT_SCHEMA) is None:
        report.catalog_problems.append("checkpoint damaged (the next open rebuilds it; or run reindex)")
    # a shard that a committed compaction or prune output replaces is hidden from readers and removed after
    # a retention period (docs/format.md, "replaces"): its copies are not duplicates
    live = {g: [sid for sid in sids if sid not in replaced] for g, sids in owners.items()}
    report.duplicate_games = {g: sids for g, sids in live.items() if len(sids) > 1}
    return report


def reindex_store(path: str | os.PathLike, *, progress=None) -> tuple[int, list[str]]:
    """Rebuild the catalog from nothing; returns (games indexed, damaged shard ids skipped)."""
    root = require_store(path)
    catalog = root / "catalog"
    staging = root / "tmp" / f"catalog-{os.getpid()}-{secrets.token_hex(4)}"  # <name>-<pid>-<hex>: see layout.clean_leftovers
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    games, damaged = 0, []
    shards = _shard_dirs(root)
    for shard_dir in shards if progress is None else progress(shards):
        if verify_shard(shard_dir):
            damaged.append(shard_dir.name)
            continue
        try:
            reader = ShardReader(shard_dir)
            seg = segment_from_games(shard_dir.name, reader.games)
        except (ShardCorruptError, FormatError, pa.ArrowException, OSError):
            damaged.append(shard_dir.name)
            continue
        pq.write_table(seg, staging / f"{shard_dir.name}.parquet", compression="zstd", write_page_checksum=True)
        games += seg.num_rows
    old = root / "trash" / staging.name
    shutil.rmtree(old, ignore_errors=True)
    if catalog.exists():
        os.rename(catalog, old)
    os.rename(staging, catalog)
    shutil.rmtree(old, ignore_errors=True)
    return games, damaged
