"""Export games for other tools: Parquet (DuckDB, Spark, pandas) and JSONL in RingRift's GameRecord shape.

Both exports stream shard by shard, so memory stays bounded by one shard's
games table and one moves batch whatever the size of the store.
"""
from __future__ import annotations

import base64
import builtins
import gzip
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import codec
from .errors import GamestoreError
from .fsutil import atomic_path
from .schema import GAMES_SCHEMA, VectorSpec, moves_schema
from .store import GameStore

__all__ = [
    "ExportResult",
    "export_parquet",
    "export_jsonl",
    "iter_games",
    "game_record",
    "plain_moves_schema",
    "plain_games_schema",
    "to_plain_moves",
]

#: ``progress(iterable, total)`` wraps an iterable (e.g. in a progress bar).
Progress = Callable[[Iterable, "int | None"], Iterable]
GAMES_PARQUET = "games.parquet"
MOVES_PARQUET = "moves.parquet"


@dataclass
class ExportResult:
    """What an export wrote."""

    games: int = 0
    moves: int = 0
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------
# Selection: the indexed copy of every matching game, shard by shard
# ---------------------------------------------------------------------------
def _selection(store: GameStore, where: str | None) -> list[tuple[str, list[int]]]:
    """(shard id, games.arrow rows in move order) of every matching game."""
    locs = store.game_locations(where)
    cat = store.catalog
    by_shard: dict[str, list[int]] = {}
    for gid, sid in zip(locs.column("game_id").to_pylist(), locs.column("shard_id").to_pylist()):
        loc = cat.locate(gid)
        if loc is None or loc.shard_id != sid:
            continue  # changed under us (a compaction committed); it is exported from its new home
        by_shard.setdefault(sid, []).append(loc.row)
    return [(sid, sorted(rows)) for sid, rows in sorted(by_shard.items())]


def _row_mask(games: pa.Table, rows: list[int], total: int) -> np.ndarray:
    offsets = games.column("move_offset").to_numpy()
    counts = games.column("move_count").to_numpy()
    mask = np.zeros(total, dtype=bool)
    for r in rows:
        mask[offsets[r] : offsets[r] + counts[r]] = True
    return mask


# ---------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------
def _plain(t: pa.DataType) -> pa.DataType:
    """A Spark-friendly type: no dictionaries, no unsigned or half floats, no fixed-size lists."""
    if pa.types.is_dictionary(t):
        return _plain(t.value_type)
    if pa.types.is_uint8(t):
        return pa.int16()
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(pa.field("element", _plain(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain(f.type)) for f in t])
    return t


#: Entry structs of the exported policy and search lists: exact doubles, plain keys.
PLAIN_POLICY_ENTRY = pa.struct([("key", pa.string()), ("action", pa.int32()), ("prob", pa.float64())])
PLAIN_SEARCH_ENTRY = pa.struct(
    [("key", pa.string()), ("action", pa.int32()), ("q", pa.float64()), ("visits", pa.int32()), ("prior", pa.float64())]
)


def plain_moves_schema(vectors: Mapping[str, VectorSpec]) -> pa.Schema:
    """Schema of ``moves.parquet``: the moves-file columns with plain types and exact probabilities."""
    fields = []
    for f in moves_schema(vectors):
        if f.name == "policy":
            fields.append(pa.field("policy", pa.list_(pa.field("element", PLAIN_POLICY_ENTRY))))
        elif f.name == "search":
            fields.append(pa.field("search", pa.list_(pa.field("element", PLAIN_SEARCH_ENTRY))))
        else:
            fields.append(pa.field(f.name, _plain(f.type), metadata=f.metadata))
    return pa.schema(fields)


def plain_games_schema() -> pa.Schema:
    """Schema of ``games.parquet``: games-file columns, plain types, ``num_moves`` instead of the location."""
    fields = [pa.field(f.name, _plain(f.type)) for f in GAMES_SCHEMA if f.name not in ("move_offset", "move_count")]
    return pa.schema(fields + [pa.field("num_moves", pa.int32())])


def _exact(f32: pa.Array, f64: pa.Array) -> pa.Array:
    return pc.coalesce(f64, f32.cast(pa.float64()))


def _plain_entries(arr: pa.Array, kind: str) -> pa.Array:
    values = arr.flatten()
    key = values.field("key").cast(pa.string())
    action = values.field("action")
    if kind == "policy":
        children = [key, action, _exact(values.field("prob"), values.field("prob64"))]
        struct_type = PLAIN_POLICY_ENTRY
    else:
        children = [
            key,
            action,
            _exact(values.field("q"), values.field("q64")),
            values.field("visits"),
            _exact(values.field("prior"), values.field("prior64")),
        ]
        struct_type = PLAIN_SEARCH_ENTRY
    struct = pa.StructArray.from_arrays(children, fields=list(struct_type))
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int32)
    offsets = np.zeros(len(arr) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    mask = arr.is_null() if arr.null_count else None
    return pa.ListArray.from_arrays(pa.array(offsets), struct, type=pa.list_(pa.field("element", struct_type)), mask=mask)


def _cast_plain(arr: pa.Array, type_: pa.DataType) -> pa.Array:
    if arr.type == type_:
        return arr
    if pa.types.is_fixed_size_list(arr.type):
        values = arr.flatten().cast(type_.value_type)
        size = arr.type.list_size
        offsets = np.arange(len(arr) + 1, dtype=np.int32) * size
        # null vectors keep their (null-padded) slots out of the plain list
        lengths = np.where(arr.is_null().to_numpy(zero_copy_only=False), 0, size).astype(np.int32)
        if arr.null_count:
            keep = np.repeat(lengths > 0, size)
            values = values.filter(pa.array(keep))
            offsets = np.zeros(len(arr) + 1, dtype=np.int32)
            np.cumsum(lengths, out=offsets[1:])
        mask = arr.is_null() if arr.null_count else None
        return pa.ListArray.from_arrays(pa.array(offsets), values, type=type_, mask=mask)
    return arr.cast(type_)


def to_plain_moves(batch: pa.RecordBatch | pa.Table, schema: pa.Schema) -> pa.Table:
    """Convert moves-file rows to ``schema`` (from :func:`plain_moves_schema`); missing vectors become nulls."""
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    table = table.combine_chunks()
    cols = []
    for f in schema:
        if f.name not in table.column_names:
            cols.append(pa.nulls(table.num_rows, f.type))
            continue
        col = table.column(f.name)
        arr = col.chunk(0) if col.num_chunks else pa.array([], col.type)
        if f.name in ("policy", "search"):
            cols.append(_plain_entries(arr, f.name))
        else:
            cols.append(_cast_plain(arr, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _plain_games(games: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = []
    for f in schema:
        src = "move_count" if f.name == "num_moves" else f.name
        cols.append(games.column(src).cast(f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def export_parquet(
    store: GameStore,
    dest: str | os.PathLike,
    *,
    where: str | None = None,
    compression: str = "zstd",
    overwrite: bool = False,
    row_group_rows: int = 65536,
    progress: Progress | None = None,
) -> ExportResult:
    """Write ``DEST/games.parquet`` (one row per game) and ``DEST/moves.parquet`` (one row per move).

    Types are plain (strings, not dictionaries; lists, not fixed-size
    lists; no unsigned or half-precision numbers) so DuckDB, Spark and
    pandas read them alike; policy and search values are exact doubles.
    Both files are written under temporary names and renamed at the end.
    """
    dest = Path(dest)
    targets = [dest / GAMES_PARQUET, dest / MOVES_PARQUET]
    if not overwrite and any(t.exists() for t in targets):
        raise GamestoreError(f"{dest} already holds an export (use --overwrite to replace it)")
    dest.mkdir(parents=True, exist_ok=True)
    store.refresh()
    selection = _selection(store, where)
    vectors = store.catalog.vectors()
    gschema, mschema = plain_games_schema(), plain_moves_schema(vectors)
    result = ExportResult()
    with atomic_path(targets[0]) as gtmp, atomic_path(targets[1]) as mtmp:
        with pq.ParquetWriter(str(gtmp), gschema, compression=compression) as gw, \
                pq.ParquetWriter(str(mtmp), mschema, compression=compression) as mw:
            pending: list[pa.Table] = []
            pending_rows = 0
            for sid, rows in (selection if progress is None else progress(selection, len(selection))):
                reader = store.catalog.reader(sid)
                games = reader.games
                gw.write_table(_plain_games(games.take(pa.array(rows, pa.int64())), gschema))
                result.games += len(rows)
                mask = _row_mask(games, rows, sum(reader.manifest["batch_rows"]))
                for start, batch in reader.iter_batches():
                    m = mask[start : start + batch.num_rows]
                    if not m.any():
                        continue
                    if not m.all():
                        batch = batch.filter(pa.array(m))
                    pending.append(to_plain_moves(batch, mschema))
                    pending_rows += batch.num_rows
                    if pending_rows >= row_group_rows:
                        mw.write_table(pa.concat_tables(pending), row_group_size=row_group_rows)
                        result.moves += pending_rows
                        pending, pending_rows = [], 0
            if pending:
                mw.write_table(pa.concat_tables(pending), row_group_size=row_group_rows)
                result.moves += pending_rows
    result.files = [str(t) for t in targets]
    return result


# ---------------------------------------------------------------------------
# Decoded games, streaming
# ---------------------------------------------------------------------------
def iter_games(store: GameStore, where: str | None = None) -> Iterator[dict]:
    """Canonical records of the matching games, decoded one moves batch at a time (bounded memory)."""
    store.refresh()
    for sid, rows in _selection(store, where):
        reader = store.catalog.reader(sid)
        games = reader.games
        offsets = games.column("move_offset").to_numpy()
        counts = games.column("move_count").to_numpy()
        starts = reader.batch_starts
        pending = list(rows)  # ascending move offset
        for i, start in enumerate(starts):
            if not pending:
                break
            end = start + reader.manifest["batch_rows"][i]
            inside = [r for r in pending if offsets[r] >= start and offsets[r] + counts[r] <= end]
            if not inside:
                continue
            batch = reader.batch(i)
            yield from codec.decode_games(games.take(pa.array(inside, pa.int64())), batch, base_offset=start)
            done = set(inside)
            pending = [r for r in pending if r not in done]
        for r in pending:  # a game straddling batches (not written by gamestore, but readable)
            row = games.slice(r, 1)
            yield codec.decode_game(row, reader.game_moves(int(offsets[r]), int(counts[r])))


# ---------------------------------------------------------------------------
# JSONL in RingRift's GameRecord shape
# ---------------------------------------------------------------------------
_OUTCOMES = {
    "ring_elimination": "ring_elimination",
    "elimination": "ring_elimination",
    "territory_control": "territory_control",
    "territory": "territory_control",
    "last_player_standing": "last_player_standing",
    "lps": "last_player_standing",
    "timeout": "timeout",
    "resignation": "resignation",
    "resign": "resignation",
    "draw": "draw",
    "stalemate": "draw",
    "abandonment": "abandonment",
    "abandoned": "abandonment",
}
_SOURCES = {
    "selfplay": "self_play",
    "self_play": "self_play",
    "online_game": "online_game",
    "cmaes_optimization": "cmaes_optimization",
    "cmaes": "cmaes_optimization",
    "tournament": "tournament",
    "soak_test": "soak_test",
    "manual_import": "manual_import",
}
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def move_record(move: Mapping, *, training_data: bool = True) -> dict:
    """One move in RingRift's shapes: the ``Move`` JSON (as ``game_moves.move_json`` holds it: camelCase
    keys, positions ``{x, y, z}``) plus the ``MoveRecord`` fields ``thinkTimeMs``, ``rrn``, ``mctsPolicy``.

    With ``training_data``, the policy (``mctsPolicy`` for int action ids,
    else ``moveProbs``, as RingRift's ``move_probs``), ``searchStats`` (as
    ``search_stats_json``) and the vectors (camelCase names, lists) are added.
    """
    from .ringrift.mapping import move_json_value

    out = move_json_value(move)
    out["thinkTimeMs"] = move.get("think_time_ms", out.get("thinkTime") or 0)
    out.setdefault("rrn", None)
    out["mctsPolicy"] = None
    if training_data:
        # maps are shared, not copied: json.dumps writes int candidate ids as string keys
        policy = move.get("policy")
        if policy is not None:
            if policy and all(type(k) is int for k in policy):
                out["mctsPolicy"] = policy
            else:
                out["moveProbs"] = policy
        if move.get("search") is not None:
            out["searchStats"] = move["search"]
        for name, vec in (move.get("vectors") or {}).items():
            out[_camel(name)] = np.asarray(vec).tolist()
    return out


_GAME_RECORD_KEYS = frozenset({
    "game_id", "board_type", "num_players", "rng_seed", "players", "winner", "created_at", "completed_at",
    "total_moves", "duration_ms", "moves", "initial_state", "snapshots"})


def game_record(game: Mapping, *, training_data: bool = True) -> dict:
    """A canonical game record as a RingRift ``GameRecord`` dict (``GameRecord.model_validate`` shape).

    Termination reasons and sources are mapped onto RingRift's enums where
    they have an equivalent and passed through unchanged otherwise; the
    game fields GameRecord has no place for go into ``metadata.gamestore``.
    """
    players = game.get("players") or []
    moves = game.get("moves") or []
    by_player = {p.get("player_number"): p for p in players}

    def per_player(key: str) -> dict:
        return {str(n): (p.get(key) or 0) for n, p in sorted(by_player.items()) if n is not None}

    reason = game.get("termination_reason")
    source = game.get("source")
    created = game.get("created_at")
    rest = {k: v for k, v in game.items() if k not in _GAME_RECORD_KEYS and not k.startswith("rr_")}
    if isinstance(rest.get("metadata"), Mapping):
        rest["metadata"] = dict(rest["metadata"])
    return {
        "id": game["game_id"],
        "boardType": game.get("board_type"),
        "numPlayers": game.get("num_players"),
        "rngSeed": game.get("rng_seed"),
        "isRated": bool(game.get("is_rated", False)),
        "players": [
            {
                "playerNumber": p.get("player_number"),
                "username": p.get("username") or p.get("ai_profile_id") or f"player{p.get('player_number')}",
                "playerType": p.get("player_type") or "ai",
                "ratingBefore": p.get("rating_before"),
                "ratingAfter": p.get("rating_after"),
                "aiDifficulty": p.get("ai_difficulty"),
                "aiType": p.get("ai_type"),
            }
            for p in players
        ],
        "winner": game.get("winner"),
        "outcome": _OUTCOMES.get(reason, reason),
        "finalScore": {
            "ringsEliminated": per_player("final_eliminated_rings"),
            "territorySpaces": per_player("final_territory_spaces"),
            "ringsRemaining": per_player("final_rings_in_hand"),
        },
        "startedAt": created,
        "endedAt": game.get("completed_at", created),
        "totalMoves": game.get("total_moves", len(moves)),
        "totalDurationMs": game.get("duration_ms", 0),
        "moves": [move_record(m, training_data=training_data) for m in moves],
        "metadata": {
            "recordVersion": "1.0",
            "createdAt": created,
            "source": _SOURCES.get(source, source),
            "sourceId": None,
            "generation": None,
            "candidateId": None,
            "tags": [],
            "fsmValidated": None,
            "gamestore": rest,
        },
        "initialStateHash": None,
        "finalStateHash": None,
        "progressSnapshots": None,
    }


def _json_default(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode("ascii")
    raise TypeError(f"cannot export {type(v).__name__} as JSON")


def export_jsonl(
    store: GameStore,
    dest: str | os.PathLike,
    *,
    where: str | None = None,
    training_data: bool = True,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ExportResult:
    """Write one RingRift GameRecord JSON object per line to ``dest`` (``-`` is stdout, ``.gz`` is gzipped).

    Streams game by game; a file is written under a temporary name and
    renamed when complete.
    """
    result = ExportResult()
    to_stdout = str(dest) == "-"
    target = Path(dest)
    if not to_stdout and target.exists() and not overwrite:
        raise GamestoreError(f"{target} exists (use --overwrite to replace it)")
    total = store.count_games(where)
    games = iter_games(store, where)
    if progress is not None:
        games = progress(games, total)
    if to_stdout:
        _write_lines(sys.stdout, games, result, training_data)
        sys.stdout.flush()
        return result
    if target.parent != Path(""):
        target.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if target.suffix == ".gz" else builtins.open
    with atomic_path(target) as tmp, opener(tmp, "wt", encoding="utf-8") as out:
        _write_lines(out, games, result, training_data)
    result.files = [str(target)]
    return result


def _write_lines(out, games: Iterable[dict], result: ExportResult, training_data: bool) -> None:
    for game in games:
        out.write(json.dumps(game_record(game, training_data=training_data), default=_json_default,
                             ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
        result.games += 1
        result.moves += len(game.get("moves") or ())

