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

``checkpoint=True`` also writes the catalog checkpoint of a new store (what
its first open would write after reading every segment): the same tables,
built at once from the template, so that 100,000 shards need no 100,000
segment reads before they can be opened.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import secrets
from pathlib import Path

import numpy as np
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


class _Template:
    """A file's bytes with placeholders at known places: filled with same-length values in one pass."""

    def __init__(self, data: bytes, placeholders: list[bytes]) -> None:
        spots = []
        for k, old in enumerate(placeholders):
            at = data.find(old)
            while at >= 0:
                spots.append((at, k, len(old)))
                at = data.find(old, at + len(old))
        spots.sort()
        self.pieces = []
        self.slots = []
        pos = 0
        for at, k, n in spots:
            self.pieces.append(data[pos:at])
            self.slots.append(k)
            pos = at + n
        self.tail = data[pos:]

    def fill(self, values: list[bytes]) -> bytes:
        out = []
        for piece, k in zip(self.pieces, self.slots):
            out.append(piece)
            out.append(values[k])
        out.append(self.tail)
        return b"".join(out)


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
    checkpoint: bool = False,
) -> list[str]:
    """Create (or add to) the store at ``path``: ``shards`` new shards of ``games_per_shard`` games each.

    Returns the new shard ids (in commit order).  Game ids are
    ``f"{prefix}{shard:08d}-{game:04d}"`` with ``shard`` counted from ``first``.
    ``checkpoint``: also write the catalog checkpoint (a store with no shard before only).
    """
    from . import synth
    from .catalog import SEGMENT_SCHEMA, segment_from_games
    from .store import open as open_store

    root = Path(path)
    open_store(root).close()
    if checkpoint and os.listdir(root / "shards"):
        raise ValueError(f"checkpoint=True makes the checkpoint of a new store; {root} has shards")
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
    olds = [holder_sid.encode()] + [h.encode() for h in holders]
    moves = _Template(_ipc_bytes(enc.moves, moves_schema({}).with_metadata(_meta("moves", holder_sid))), olds)
    games = _Template(_ipc_bytes(enc.games, GAMES_SCHEMA.with_metadata(_meta("games", holder_sid))), olds)
    seg_sink = pa.BufferOutputStream()
    template = segment_from_games(holder_sid, enc.games).cast(SEGMENT_SCHEMA)
    pq.write_table(template, seg_sink, compression="none", use_dictionary=False, write_statistics=False)
    segment = _Template(seg_sink.getvalue().to_pybytes(), olds)
    created = codec.utc_now()
    out = []
    game_ids: list[str] = []
    for i in range(shards):
        sid = _shard_id(base + i)
        ids = [f"{prefix}{first + i:08d}-{j:04d}" for j in range(games_per_shard)]
        news = [sid.encode()] + [g.encode() for g in ids]

        def patch(template: _Template) -> bytes:
            return template.fill(news)

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
        game_ids.extend(ids)
    if checkpoint and out:
        _write_checkpoint(root, template, out, game_ids, manifest)
    return out


def _write_checkpoint(root: Path, template: pa.Table, shard_ids: list[str], game_ids: list[str], manifest: dict) -> None:
    """The checkpoint of ``shard_ids`` (all made from ``template``; ``manifest``: the last one's, sizes alike)."""
    from .catalog_snapshot import shard_row
    from .checkpoint import SHARDS_SCHEMA, write_checkpoint
    from .storage import Storage

    per = template.num_rows
    games = template.take(pa.array(np.tile(np.arange(per), len(shard_ids))))
    games = games.set_column(games.schema.get_field_index("game_id"), "game_id", pa.array(game_ids, pa.string()))
    games = games.set_column(games.schema.get_field_index("shard_id"), "shard_id",
                             pa.array(np.repeat(np.array(shard_ids, dtype=object), per), pa.string()))
    row = shard_row(shard_ids[0], manifest)
    shards = pa.table({f.name: pa.array([row[f.name]] * len(shard_ids), f.type) for f in SHARDS_SCHEMA},
                      schema=SHARDS_SCHEMA)
    shards = shards.set_column(0, "shard_id", pa.array(shard_ids, pa.string()))
    write_checkpoint(Storage.from_location(root), games, shards)
