"""Stores of many real, tiny shards, made cheaply (for tests and benchmarks of the catalog).

A few short games are encoded once, under placeholder ids, into one
template shard whose files are written *without* buffer compression (valid
Arrow IPC and Parquet files that every reader reads; compression is
optional per file in both formats).  Every new shard is then the template
with the placeholder game ids and shard id replaced byte for byte (the
replacements have the same length), committed with the ordinary protocol
(``tmp/<id>`` renamed into ``shards/``) with a manifest whose checksums
match, plus its catalog segment, as a writer's flush leaves it.  That costs
a few file writes per shard instead of an encode and two zstd IPC writes,
so tests and benchmarks can make thousands of shards in seconds.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import secrets
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from . import codec
from .schema import FORMAT_VERSION, GAMES_SCHEMA, moves_schema
from .shard import GAMES_FILE, MANIFEST, MOVES_FILE

__all__ = ["make_store_of_shards"]

_MOVES_PER_GAME = 4


def _ipc_bytes(table: pa.Table, schema: pa.Schema) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, schema) as writer:
        for batch in table.combine_chunks().to_batches():
            writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
    return sink.getvalue().to_pybytes()


def _meta(kind: str, shard_id: str) -> dict[bytes, bytes]:
    return {b"gamestore.format_version": str(FORMAT_VERSION).encode(), b"gamestore.kind": kind.encode(),
            b"gamestore.shard_id": shard_id.encode()}


def _shard_id(n: int) -> str:
    stamp = (_dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(microseconds=n)).strftime("%Y%m%dT%H%M%S%f")
    return f"{stamp}-{os.getpid()}-{secrets.token_hex(4)}"


def make_store_of_shards(
    path: str | os.PathLike,
    shards: int,
    *,
    games_per_shard: int = 1,
    prefix: str = "g",
    segments: bool = True,
    first: int = 0,
) -> list[str]:
    """Create (or add to) the store at ``path``: ``shards`` new shards of ``games_per_shard`` games each.

    Returns the new shard ids (in commit order).  Game ids are
    ``f"{prefix}{shard:08d}-{game:04d}"`` with ``shard`` counted from ``first``.
    """
    from . import synth
    from .catalog import SEGMENT_SCHEMA, segment_from_games
    from .store import open as open_store

    root = Path(path)
    open_store(root).close()
    width = len(f"{prefix}{0:08d}-{0:04d}")
    holders = [f"~{j:04d}".ljust(width, "~") for j in range(games_per_shard)]
    records = synth.games(games_per_shard, seed=7)
    for rec, gid in zip(records, holders):
        rec["game_id"] = gid
        rec["moves"] = rec["moves"][:_MOVES_PER_GAME]
        for key in ("initial_state", "snapshots", "metadata"):
            rec.pop(key, None)
        for move in rec["moves"]:
            move.pop("vectors", None)
    enc = codec.encode_games(records, vectors={}, board_types=None, now=codec.utc_now())
    base = first * 1000 + 1
    holder_sid = _shard_id(base).replace(f"-{os.getpid()}-", "-" + "~" * len(str(os.getpid())) + "-")
    holder_sid = holder_sid[:-8] + "~" * 8
    moves = _ipc_bytes(enc.moves, moves_schema({}).with_metadata(_meta("moves", holder_sid)))
    games = _ipc_bytes(enc.games, GAMES_SCHEMA.with_metadata(_meta("games", holder_sid)))
    seg_sink = pa.BufferOutputStream()
    pq.write_table(segment_from_games(holder_sid, enc.games).cast(SEGMENT_SCHEMA), seg_sink, compression="none",
                   use_dictionary=False, write_statistics=False)
    segment = seg_sink.getvalue().to_pybytes()
    created = codec.utc_now()
    out = []
    for i in range(shards):
        sid = _shard_id(base + i)
        ids = [f"{prefix}{first + i:08d}-{j:04d}" for j in range(games_per_shard)]
        subs = [(holder_sid.encode(), sid.encode())] + [(h.encode(), g.encode()) for h, g in zip(holders, ids)]

        def patch(data: bytes) -> bytes:
            for old, new in subs:
                data = data.replace(old, new)
            return data

        staging = root / "tmp" / sid
        staging.mkdir()
        files = {}
        for name, data in ((MOVES_FILE, patch(moves)), (GAMES_FILE, patch(games))):
            (staging / name).write_bytes(data)
            files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        manifest = {
            "format_version": FORMAT_VERSION, "shard_id": sid, "created_at": created,
            "num_games": games_per_shard, "num_moves": enc.moves.num_rows, "game_ids": ids,
            "batch_rows": [enc.moves.num_rows] if enc.moves.num_rows else [], "vectors": {}, "files": files,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, separators=(",", ":")))
        os.rename(staging, root / "shards" / sid)
        if segments:
            (root / "catalog" / f"{sid}.parquet").write_bytes(patch(segment))
        out.append(sid)
    return out
