"""Integrity checks and catalog rebuilds: ``gamestore verify`` and ``gamestore reindex``."""
from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from ..catalog import SEGMENT_SCHEMA, segment_from_games
from ..checkpoint import LAST_CHECKPOINT, read_checkpoint
from ..errors import FormatError, ShardCorruptError
from ..records import games_equal
from ..shard import MANIFEST, ShardReader, verify_shard
from ..storage import Storage
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
    #: object storage: shard prefixes without a manifest (uploads in progress, or orphans of dead writers)
    uncommitted: list[str] = field(default_factory=list)

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
        if self.uncommitted:
            out.append(f"note: {len(self.uncommitted)} shard uploads without a manifest (not committed; never read)")
        out.append("OK" if self.ok else "DAMAGED")
        return out


def _shard_ids(storage: Storage) -> list[str]:
    return sorted(n for n in storage.list_dir("shards") if not n.startswith("."))


def _segment_names(storage: Storage) -> list[str]:
    return sorted(n for n in storage.list_dir("catalog") if n.endswith(".parquet") and not n.startswith("."))


def _read_table(storage: Storage, rel: str) -> pa.Table:
    if storage.local:
        return pq.read_table(storage.path(rel))
    # no Arrow worker threads over a buffer Python owns (Storage.read_bytes)
    return pq.read_table(pa.BufferReader(storage.read_bytes(rel)), use_threads=False)


def _write_table(storage: Storage, rel: str, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    storage.put_new(rel, sink.getvalue(), fsync=False)


def verify_store(path: str | os.PathLike | Storage, *, progress=None, filesystem=None) -> VerifyReport:
    """Check every shard's checksums and structure, and the catalog against the shards."""
    storage = require_store(path, filesystem=filesystem)
    report = VerifyReport()
    owners: dict[str, list[str]] = {}
    replaced: set[str] = set()
    shards = _shard_ids(storage)
    committed = set()
    for sid in shards if progress is None else progress(shards):
        if not storage.local and not storage.exists(f"shards/{sid}/{MANIFEST}"):
            report.uncommitted.append(sid)  # object storage: an upload in progress, or a dead writer's orphan
            continue
        committed.add(sid)
        report.shards_checked += 1
        problems = verify_shard(storage, sid)
        if problems:
            report.damaged_shards[sid] = problems
            continue
        reader = ShardReader(storage, sid)
        m = reader.manifest
        replaced.update(m.get("replaces") or [])
        report.games += m["num_games"]
        report.moves += m["num_moves"]
        for gid in m["game_ids"]:
            owners.setdefault(gid, []).append(sid)
        seg_rel = f"catalog/{sid}.parquet"
        try:
            seg = _read_table(storage, seg_rel)
        except FileNotFoundError:
            continue
        except (OSError, pa.ArrowException) as exc:
            report.catalog_problems.append(f"segment {sid}.parquet unreadable: {exc} (run reindex)")
            continue
        expect = segment_from_games(sid, reader.games)
        # compared as values, NaN equal to NaN bit for bit (Table.equals calls a NaN score a difference)
        if not seg.schema.equals(SEGMENT_SCHEMA) or not games_equal(seg.to_pylist(), expect.to_pylist()):
            report.catalog_problems.append(f"segment {sid}.parquet differs from its shard (run reindex)")
    for name in _segment_names(storage):
        if name[: -len(".parquet")] not in committed and name[: -len(".parquet")] not in report.uncommitted:
            report.catalog_problems.append(f"segment {name} has no shard (run reindex)")
    if storage.exists(f"catalog/{LAST_CHECKPOINT}") and read_checkpoint(storage, SEGMENT_SCHEMA) is None:
        report.catalog_problems.append("checkpoint damaged (the next open rebuilds it; or run reindex)")
    # a shard that a committed compaction or prune output replaces is hidden from readers and removed after
    # a retention period (docs/format.md, "replaces"): its copies are not duplicates
    live = {g: [sid for sid in sids if sid not in replaced] for g, sids in owners.items()}
    report.duplicate_games = {g: sids for g, sids in live.items() if len(sids) > 1}
    return report


def reindex_store(path: str | os.PathLike | Storage, *, progress=None, filesystem=None) -> tuple[int, list[str]]:
    """Rebuild the catalog from nothing; returns (games indexed, damaged shard ids skipped)."""
    storage = require_store(path, filesystem=filesystem)
    if not storage.local:
        return _reindex_objects(storage, progress)
    root = storage.local_path()
    catalog = root / "catalog"
    staging = root / "tmp" / f"catalog-{os.getpid()}-{secrets.token_hex(4)}"  # <name>-<pid>-<hex>: see layout.clean_leftovers
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    games, damaged = 0, []
    shards = _shard_ids(storage)
    for sid in shards if progress is None else progress(shards):
        seg = _segment_or_none(storage, sid)
        if seg is None:
            damaged.append(sid)
            continue
        pq.write_table(seg, staging / f"{sid}.parquet", compression="zstd", write_page_checksum=True)
        games += seg.num_rows
    old = root / "trash" / staging.name
    shutil.rmtree(old, ignore_errors=True)
    if catalog.exists():
        os.rename(catalog, old)
    os.rename(staging, catalog)
    shutil.rmtree(old, ignore_errors=True)
    return games, damaged


def _segment_or_none(storage: Storage, sid: str) -> pa.Table | None:
    if verify_shard(storage, sid):
        return None
    try:
        return segment_from_games(sid, ShardReader(storage, sid).games)
    except (ShardCorruptError, FormatError, pa.ArrowException, OSError):
        return None


def _reindex_objects(storage: Storage, progress) -> tuple[int, list[str]]:
    """Object storage (no directory rename): rewrite every committed shard's segment, then drop the others."""
    games, damaged, keep = 0, [], set()
    shards = [sid for sid in _shard_ids(storage) if storage.exists(f"shards/{sid}/{MANIFEST}")]
    for sid in shards if progress is None else progress(shards):
        seg = _segment_or_none(storage, sid)
        if seg is None:
            damaged.append(sid)
            continue
        _write_table(storage, f"catalog/{sid}.parquet", seg)
        keep.add(f"{sid}.parquet")
        games += seg.num_rows
    for name in _segment_names(storage):
        if name not in keep:
            storage.delete_file(f"catalog/{name}")
    storage.delete_file(f"catalog/{LAST_CHECKPOINT}")  # the next open writes a new one from the segments
    return games, damaged
