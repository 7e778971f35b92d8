"""Operator jobs that rewrite shards: compact, merge, prune.

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
import shutil
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import FormatError, GamestoreError, QueryError, StoreBusyError, StoreNotFoundError
from .schema import VectorSpec, moves_schema
from .fsutil import copy_file, file_lock, fsync_dir, sha256_file
from .shard import GAMES_FILE, MANIFEST, MOVES_FILE, ShardReader, new_shard_id, write_shard
from .store import GameStore
from .store import open as open_store

__all__ = [
    "StoreBusyError",
    "CompactResult",
    "MergeResult",
    "PruneResult",
    "compact",
    "merge",
    "prune",
    "opened",
    "maintenance_lock",
    "trash_shards",
    "DEFAULT_TARGET_MOVES",
]

#: Moves per shard that compaction and merge aim for (the store's default seal size).
DEFAULT_TARGET_MOVES = 65536
_LOCK_FILE = ".maintenance.lock"

Progress = Callable[[Iterable], Iterable]


# ---------------------------------------------------------------------------
# Plumbing shared by the jobs
# ---------------------------------------------------------------------------
@contextmanager
def opened(store: GameStore | str | os.PathLike, *, create: bool = False) -> Iterator[GameStore]:
    """Yield ``store`` as an open GameStore, closing it afterwards only if it was opened here."""
    if isinstance(store, GameStore):
        yield store
        return
    s = open_store(store, create=create)
    try:
        yield s
    finally:
        s.close()


@contextmanager
def maintenance_lock(root: Path) -> Iterator[None]:
    """Exclusive lock held by one shard-rewriting job per store; writers and readers are not blocked."""
    with ExitStack() as stack:
        try:
            stack.enter_context(file_lock(Path(root) / _LOCK_FILE, blocking=False))
        except BlockingIOError:
            raise StoreBusyError(f"another compact/prune/merge is running on {root}") from None
        yield


def _each(items: Sequence, progress: Progress | None) -> Iterable:
    return items if progress is None else progress(items)


def _files_intact(path: Path, manifest: dict) -> list[str]:
    """Checksum problems of a shard's files against its manifest (empty when intact)."""
    problems = []
    for name, expect in manifest.get("files", {}).items():
        try:
            digest = sha256_file(path / name)
        except OSError as exc:
            problems.append(f"{name}: {exc.strerror or exc}")
            continue
        if digest != expect.get("sha256"):
            problems.append(f"{name}: checksum mismatch")
    return problems


def indexed_rows(store: GameStore, reader: ShardReader) -> list[int]:
    """Rows of ``reader``'s games.arrow that the catalog indexes (the first copy of each game id)."""
    cat = store.catalog
    out = []
    for i, gid in enumerate(reader.manifest["game_ids"]):
        loc = cat.locate(gid)
        if loc is not None and loc.shard_id == reader.shard_id:
            out.append(i)
    return out


def union_vectors(specs: Iterable[dict[str, VectorSpec]], *, what: str = "shards") -> dict[str, VectorSpec]:
    """Union of vector declarations; the same name declared two ways is an error."""
    out: dict[str, VectorSpec] = {}
    for vectors in specs:
        for name, spec in vectors.items():
            if name in out and out[name] != spec:
                raise FormatError(
                    f"vector {name!r} is declared as {out[name].to_json()} and as {spec.to_json()} in these {what}"
                )
            out.setdefault(name, spec)
    return out


def _conform(moves: pa.Table, schema: pa.Schema) -> pa.Table:
    """``moves`` with the columns of ``schema`` (null columns for vectors it lacks)."""
    cols = []
    for f in schema:
        if f.name in moves.column_names:
            col = moves.column(f.name)
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(moves.num_rows, f.type))
    return pa.table(cols, schema=schema)


def _recode_dictionary(arr: pa.Array, type_: pa.DataType) -> pa.Array:
    """Re-encode a dictionary array so its dictionary lists used values in order of first appearance."""
    return arr.cast(type_.value_type).cast(type_)


def _recode_list_keys(arr: pa.Array, type_: pa.ListType) -> pa.Array:
    """Re-encode the ``key`` dictionary inside a ``list<struct<key: dictionary, ...>>`` array."""
    values = arr.flatten()
    struct_type = type_.value_type
    children = []
    for i in range(struct_type.num_fields):
        f = struct_type.field(i)
        child = values.field(i)
        children.append(_recode_dictionary(child, f.type) if pa.types.is_dictionary(f.type) else child)
    struct = pa.StructArray.from_arrays(children, fields=list(struct_type))
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int32)
    offsets = np.zeros(len(arr) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    mask = arr.is_null() if arr.null_count else None
    return pa.ListArray.from_arrays(pa.array(offsets), struct, type=type_, mask=mask)


def _recode(moves: pa.Table, game_ids: list[str], counts: list[int]) -> pa.Table:
    """One chunk per column, ``game_id`` dictionary = the shard's game ids, other dictionaries minimal."""
    n = len(game_ids)
    cols = []
    for f in moves.schema:
        if f.name == "game_id":
            idx = np.repeat(np.arange(n, dtype=np.int32), np.asarray(counts, dtype=np.int64))
            col = pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32()), pa.array(game_ids, pa.string()))
        else:
            col = moves.column(f.name).combine_chunks()
            if isinstance(col, pa.ChunkedArray):  # empty table
                col = pa.concat_arrays(col.chunks) if col.num_chunks else pa.array([], f.type)
            if pa.types.is_dictionary(f.type):
                col = _recode_dictionary(col, f.type)
            elif pa.types.is_list(f.type) and pa.types.is_struct(f.type.value_type):
                st = f.type.value_type
                if any(pa.types.is_dictionary(st.field(i).type) for i in range(st.num_fields)):
                    col = _recode_list_keys(col, f.type)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=moves.schema)


@dataclass
class _Part:
    """Some game rows of one committed shard, to be carried into a new shard."""

    reader: ShardReader
    rows: list[int]


def _part_tables(part: _Part) -> tuple[pa.Table, pa.Table]:
    """The games rows and their move rows of one part (move_offset relative to the part)."""
    reader = part.reader
    games = reader.games
    moves = pa.Table.from_batches([b for _, b in reader.iter_batches()], schema=reader.moves_schema)
    if len(part.rows) == games.num_rows and part.rows == list(range(games.num_rows)):
        return games, moves
    sel = games.take(pa.array(part.rows, pa.int64()))
    offsets = sel.column("move_offset").to_numpy()
    counts = sel.column("move_count").to_numpy().astype(np.int64)
    if len(offsets):
        take = np.concatenate([np.arange(o, o + c, dtype=np.int64) for o, c in zip(offsets, counts)])
    else:
        take = np.zeros(0, dtype=np.int64)
    moves = moves.take(pa.array(take, pa.int64()))
    new_offsets = np.zeros(len(counts), dtype=np.int64)
    if len(counts):
        np.cumsum(counts[:-1], out=new_offsets[1:])
    i = sel.schema.get_field_index("move_offset")
    sel = sel.set_column(i, sel.schema.field(i), pa.array(new_offsets, pa.int64()))
    return sel, moves


def build_shard_tables(parts: Sequence[_Part], vectors: dict[str, VectorSpec]) -> tuple[pa.Table, pa.Table]:
    """Concatenate parts into the games and moves tables of one new shard (no re-encoding)."""
    mschema = moves_schema(vectors)
    games_parts, moves_parts, base = [], [], 0
    for part in parts:
        g, m = _part_tables(part)
        i = g.schema.get_field_index("move_offset")
        g = g.set_column(i, g.schema.field(i), pc.add(g.column(i), pa.scalar(base, pa.int64())))
        games_parts.append(g.replace_schema_metadata(None))
        moves_parts.append(_conform(m.replace_schema_metadata(None), mschema))
        base += m.num_rows
    games = pa.concat_tables(games_parts).combine_chunks()
    moves = pa.concat_tables(moves_parts)
    moves = _recode(moves, games.column("game_id").to_pylist(), games.column("move_count").to_pylist())
    return games, moves


def _write_parts(store: GameStore, parts: Sequence[_Part], *, fsync: bool, batch_rows: int = 2048) -> str | None:
    """Write and commit one shard holding ``parts``; returns its id (None when the parts are empty)."""
    parts = [p for p in parts if p.rows]
    if not parts:
        return None
    vectors = union_vectors([p.reader.vectors for p in parts])
    games, moves = build_shard_tables(parts, vectors)
    info = write_shard(store.path, games, moves, vectors=vectors, batch_rows=batch_rows, fsync=fsync)
    store.catalog.add_committed(info.shard_id)
    return info.shard_id


def trash_shards(root: Path, shard_ids: Iterable[str], *, fsync: bool = True) -> None:
    """Remove committed shards: each is renamed into ``trash/`` (its games vanish at once), then deleted.

    Shards go in descending id order, so a game stored in several of them
    stays visible until its first-indexed copy goes.
    """
    root = Path(root)
    for sid in sorted(shard_ids, reverse=True):
        src = root / "shards" / sid
        dst = root / "trash" / sid
        try:
            os.rename(src, dst)
        except FileNotFoundError:
            continue  # already removed by someone else
        if fsync:
            fsync_dir(root / "shards")
        (root / "catalog" / f"{sid}.parquet").unlink(missing_ok=True)
        shutil.rmtree(dst, ignore_errors=True)


def clean_orphan_segments(root: Path) -> int:
    """Delete catalog segments whose shard is gone (a crash between trash and unlink leaves them)."""
    root = Path(root)
    # segments first: a writer commits its shard before its segment, so every segment
    # listed here whose shard is missing from the later listing really has no shard
    segments = list((root / "catalog").glob("*.parquet"))
    shards = set(os.listdir(root / "shards"))
    removed = 0
    for seg in segments:
        if seg.stem not in shards:
            seg.unlink(missing_ok=True)
            removed += 1
    return removed


# ---------------------------------------------------------------------------
# compact
# ---------------------------------------------------------------------------
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
    rows: list[int]
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
    with opened(store) as s, maintenance_lock(s.path):
        if not dry_run:
            clean_orphan_segments(s.path)
        s.refresh()
        cat = s.catalog
        result.damaged_shards = {sid: ["unreadable"] for sid in cat.damaged_shards()}
        plans = []
        for reader in cat.readers():
            rows = indexed_rows(s, reader)
            counts = reader.games.column("move_count").to_numpy()
            plans.append(_ShardPlan(reader, rows, int(counts[rows].sum()) if rows else 0,
                                    reader.manifest["num_games"] - len(rows)))
        result.shards_before = len(plans) + len(result.damaged_shards)
        groups = _plan_groups(plans, target_moves)
        if dry_run:
            result.shards_rewritten = sum(len(g) for g in groups)
            result.duplicates_dropped = sum(p.shadowed for g in groups for p in g)
            result.shards_written = sum(1 for g in groups if any(p.rows for p in g))
        else:
            for group in _each(groups, progress):
                intact = []
                for p in group:
                    problems = _files_intact(p.reader.path, p.reader.manifest)
                    if problems:
                        result.damaged_shards[p.reader.shard_id] = problems
                    else:
                        intact.append(p)
                if not intact or (len(intact) == 1 and not intact[0].shadowed):
                    continue
                if _write_parts(s, [_Part(p.reader, p.rows) for p in intact], fsync=fsync) is not None:
                    result.shards_written += 1
                trash_shards(s.path, [p.reader.shard_id for p in intact], fsync=fsync)
                s.refresh()
                result.shards_rewritten += len(intact)
                result.duplicates_dropped += sum(p.shadowed for p in intact)
            s.refresh()
        result.games = s.count_games()
        result.moves = s.count_moves()
        result.shards_after = (
            result.shards_before - result.shards_rewritten + result.shards_written
            if dry_run
            else len(cat.shard_ids()) + len(cat.damaged_shards())
        )
    return result


# ---------------------------------------------------------------------------
# prune
# ---------------------------------------------------------------------------
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
    with opened(store) as s, maintenance_lock(s.path):
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
        clean_orphan_segments(s.path)
        for reader, _ in affected:
            problems = _files_intact(reader.path, reader.manifest)
            if problems:
                raise FormatError(f"shard {reader.shard_id} is damaged ({'; '.join(problems)}); nothing was pruned")
        for reader, keep in _each(affected, progress):
            if keep:
                _write_parts(s, [_Part(reader, keep)], fsync=fsync)
        trash_shards(s.path, [r.shard_id for r, _ in affected], fsync=fsync)
        s.refresh()
    return result


# ---------------------------------------------------------------------------
# merge
# ---------------------------------------------------------------------------
@dataclass
class MergeResult:
    """What :func:`merge` brought into the destination store."""

    games_added: int = 0
    moves_added: int = 0
    games_skipped: int = 0
    shards_copied: int = 0
    shards_written: int = 0
    damaged_shards: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _copy_shard(src: Path, root: Path, shard_id: str, manifest: dict, *, fsync: bool) -> bool:
    """Copy a committed shard byte for byte into store ``root`` under its own id (commit protocol).

    Returns False when a shard of that id is already there.  The copy is
    checked against the manifest checksums before it is committed.
    """
    final = root / "shards" / shard_id
    if final.exists():
        return False
    staging = root / "tmp" / new_shard_id()  # our pid: never mistaken for a dead writer's leftovers
    staging.mkdir(parents=True)
    try:
        for name in (MOVES_FILE, GAMES_FILE, MANIFEST):
            digest = copy_file(src / name, staging / name, fsync=fsync)
            expect = manifest["files"].get(name)
            if expect is not None and digest != expect["sha256"]:
                raise FormatError(f"shard {shard_id}: {name} changed while it was copied (checksum mismatch)")
        if fsync:
            fsync_dir(staging)
        try:
            os.rename(staging, final)
        except OSError:
            if final.exists():
                shutil.rmtree(staging, ignore_errors=True)
                return False
            raise
        if fsync:
            fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return True


def _board_types(s: GameStore) -> set[str]:
    return {r[0] for r in s.sql("SELECT DISTINCT board_type FROM games").fetchall()}


def merge(
    sources: Sequence[GameStore | str | os.PathLike],
    dest: str | os.PathLike,
    *,
    target_moves: int = DEFAULT_TARGET_MOVES,
    fsync: bool = True,
    progress: Progress | None = None,
) -> MergeResult:
    """Bring the games of ``sources`` into the store at ``dest`` (created if needed), once per game id.

    A source shard whose games are all new is copied as is (same bytes, same
    shard id); from the others only new games are taken and written into new
    shards of about ``target_moves`` moves.  Every shard is committed
    atomically and games already in ``dest`` are skipped, so an interrupted
    merge is finished by running it again.  The first source wins when
    several hold the same game id.
    """
    dest_path = Path(dest)
    result = MergeResult()
    srcs: list[GameStore] = []
    owned: list[GameStore] = []
    try:
        for src in sources:
            if isinstance(src, GameStore):
                srcs.append(src)
            else:
                if not (Path(src) / "gamestore.json").exists():
                    raise StoreNotFoundError(f"no gamestore at {src}")
                st = open_store(src, create=False)
                owned.append(st)
                srcs.append(st)
        for st in srcs:
            if dest_path.exists() and st.path.resolve() == dest_path.resolve():
                raise GamestoreError(f"{st.path} is both a source and the destination")
        vectors = union_vectors([st.vectors for st in srcs] + [st.catalog.vectors() for st in srcs], what="sources")
        allowed = [st.board_types for st in srcs]
        board_types = None if any(b is None for b in allowed) else sorted(set().union(*allowed))
        used = set().union(*(_board_types(st) for st in srcs)) if srcs else set()
        with open_store(dest_path, create=True, board_types=board_types, fsync=fsync) as d, maintenance_lock(d.path):
            if d.board_types is not None and not used <= d.board_types:
                raise FormatError(
                    f"{d.path} accepts board types {sorted(d.board_types)}; the sources hold {sorted(used - d.board_types)}"
                )
            if vectors:
                union_vectors([d.vectors, vectors], what="stores")
                d.declare_vectors(vectors)
            clean_orphan_segments(d.path)
            d.refresh()
            _merge_into(d, srcs, result, target_moves=target_moves, fsync=fsync, progress=progress)
            d.refresh()
    finally:
        for st in owned:
            st.close()
    return result


def _merge_into(d: GameStore, srcs: list[GameStore], result: MergeResult, *, target_moves: int, fsync: bool,
                progress: Progress | None) -> None:
    dcat = d.catalog
    taken: set[str] = set()
    pending: list[_Part] = []
    pending_moves = 0

    def flush() -> None:
        nonlocal pending, pending_moves
        if pending:
            _write_parts(d, pending, fsync=fsync)
            result.shards_written += 1
        pending, pending_moves = [], 0

    work = []
    for st in srcs:
        st.refresh()
        result.damaged_shards.update({f"{st.path}:{sid}": ["unreadable"] for sid in st.catalog.damaged_shards()})
        work.extend((st, r) for r in st.catalog.readers())
    for st, reader in _each(work, progress):
        ids = reader.manifest["game_ids"]
        indexed = indexed_rows(st, reader)
        new = [i for i in indexed if ids[i] not in dcat and ids[i] not in taken]
        result.games_skipped += len(indexed) - len(new)
        if not new:
            continue
        problems = _files_intact(reader.path, reader.manifest)
        if problems:
            result.damaged_shards[f"{st.path}:{reader.shard_id}"] = problems
            continue
        counts = reader.games.column("move_count").to_numpy()
        moves = int(counts[new].sum())
        if len(new) == len(ids) and _copy_shard(reader.path, d.path, reader.shard_id, reader.manifest, fsync=fsync):
            dcat.add_committed(reader.shard_id)
            result.shards_copied += 1
        else:
            if pending and pending_moves + moves > target_moves:
                flush()
            pending.append(_Part(reader, new))
            pending_moves += moves
        taken.update(ids[i] for i in new)
        result.games_added += len(new)
        result.moves_added += moves
    flush()
