"""A shard's manifest (``MANIFEST.json``): its file names, how it is built, parsed and checked for shape.

The manifest is a shard's commit point on every storage (docs/format.md): it
names the shard's games, its move batches and each file's size, sha256 and
per-batch checksums.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import orjson  # a core dependency: a manifest parses in ~60% of json's time (a first statement reads one per shard)
import pyarrow as pa

from .errors import FormatError, ShardCorruptError
from .fsutil import utc_now
from .schema import FORMAT_VERSION, READABLE_FORMAT_VERSIONS
from .storage import Storage

__all__ = ["MANIFEST", "MOVES_FILE", "GAMES_FILE", "build_manifest", "parse_manifest", "read_manifest"]

MOVES_FILE = "moves.arrow"
GAMES_FILE = "games.arrow"
MANIFEST = "MANIFEST.json"


def build_manifest(shard_id: str, games: pa.Table, moves: pa.Table, batches: list, vectors: dict, files: dict,
              replaces: Sequence[str] = ()) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "shard_id": shard_id,
        "created_at": utc_now(),
        "num_games": games.num_rows,
        "num_moves": moves.num_rows,
        "game_ids": games.column("game_id").to_pylist(),
        "batch_rows": [b.num_rows for b in batches],
        "vectors": {name: spec.to_json() for name, spec in sorted(vectors.items())},
        "files": files,
        **({"replaces": sorted(replaces)} if replaces else {}),
    }


def parse_manifest(data: bytes, shard_id: str) -> dict:
    """A manifest's JSON, checked for a supported format version."""
    try:
        manifest = orjson.loads(data)  # stricter than json (no NaN, no integers beyond 64 bits): never in a manifest
    except (ValueError, RecursionError) as exc:
        raise ShardCorruptError(f"manifest unreadable: {exc}", shard_id=shard_id) from None
    if not isinstance(manifest, dict):
        raise ShardCorruptError(f"manifest is a JSON {type(manifest).__name__}, not an object", shard_id=shard_id)
    version = manifest.get("format_version")
    if version not in READABLE_FORMAT_VERSIONS:
        raise FormatError(f"shard {shard_id}: format version {version!r} is not supported (this reader: {FORMAT_VERSION})")
    problem = _manifest_problem(manifest)
    if problem:
        raise ShardCorruptError(f"{MANIFEST}: {problem}", shard_id=shard_id)
    return manifest


def read_manifest(storage: Storage | str | os.PathLike, rel: str | None = None) -> dict:
    """The manifest of the shard directory ``rel`` of ``storage``, or of a local shard directory
    ``read_manifest(path)`` (ShardCorruptError when missing or unreadable)."""
    if not isinstance(storage, Storage):
        path = Path(storage).absolute()
        storage, rel = Storage(None, str(path.parent)), path.name
    assert rel is not None, "read_manifest(storage, rel)"
    shard_id = rel.rsplit("/", 1)[-1]
    try:
        data = storage.read_bytes(f"{rel}/{MANIFEST}")
    except FileNotFoundError:
        raise ShardCorruptError("manifest missing", shard_id=shard_id) from None
    except OSError as exc:
        raise ShardCorruptError(f"manifest unreadable: {exc}", shard_id=shard_id) from None
    return parse_manifest(data, shard_id)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _all_counts(values: list) -> bool:
    """Every item of ``values`` an ``int`` (not a bool) >= 0: one C-level pass over their types, then the
    minimum (a first statement checks every shard's manifest; a genexpr of ``_is_count`` cost more than parsing)."""
    return set(map(type, values)) <= {int} and (not values or min(values) >= 0)


def _manifest_problem(m: dict) -> str | None:
    """What is wrong with the shape of a manifest (None when it is well formed)."""
    ids, rows, files = m.get("game_ids"), m.get("batch_rows"), m.get("files")
    if not _is_count(m.get("num_games")) or not _is_count(m.get("num_moves")):
        return "num_games/num_moves missing or not counts"
    if not isinstance(ids, list) or not set(map(type, ids)) <= {str} or len(ids) != m["num_games"]:
        return "game_ids missing, not a list of str, or not num_games long"
    if len(set(ids)) != len(ids):
        return "game_ids repeat"
    if not isinstance(rows, list) or not _all_counts(rows) or sum(rows) != m["num_moves"]:
        return "batch_rows missing, not counts, or not adding up to num_moves"
    # file names are confined to the shard directory: exactly the shard's two files, nothing else
    if not isinstance(files, dict) or set(files) != {MOVES_FILE, GAMES_FILE}:
        return f"files must name exactly {MOVES_FILE} and {GAMES_FILE}"
    for entry in files.values():
        if not isinstance(entry, dict) or not _is_count(entry.get("bytes")) or not isinstance(entry.get("sha256"), str):
            return "files entries need bytes and sha256"
    if not isinstance(m.get("created_at", ""), str) or not isinstance(m.get("vectors", {}), dict):
        return "created_at/vectors malformed"
    return None
