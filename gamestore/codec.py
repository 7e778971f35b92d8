"""Game records <-> the Arrow tables of a shard (``docs/format.md`` sections 3 and 4).

Game-level columns (``games.arrow``) are built here, in Python, for both
backends; the per-move hot loops (``moves.arrow``) are delegated to the
backend chosen in :mod:`gamestore.backend`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pyarrow as pa

from . import backend as _backend_mod
from . import gcpause
from .arrays import from_pylist
from .errors import DuplicateGameError, RecordError
from .fsutil import utc_now
from .records import dump_canonical_json, normalize_header, normalize_move
from .schema import (
    GAME_SCALAR_FIELDS,
    GAME_STRUCTURED_KEYS,
    GAMES_SCHEMA,
    PLAYER_FIELDS,
    VectorSpec,
    vectors_from_schema,
)

__all__ = ["EncodedGames", "encode_games", "decode_games", "decode_game", "header_from_row", "utc_now"]

_GAME_SCALAR_NAMES = tuple(n for n, _, _ in GAME_SCALAR_FIELDS)
_GAME_KNOWN = frozenset(_GAME_SCALAR_NAMES) | GAME_STRUCTURED_KEYS
_PLAYER_NAMES = tuple(n for n, _, _ in PLAYER_FIELDS)
_PLAYER_KNOWN = frozenset(_PLAYER_NAMES)
_SNAPSHOT_KNOWN = frozenset({"move_number", "state", "state_hash"})


@dataclass
class EncodedGames:
    """A batch of games as Arrow tables, ready to be written as one shard."""

    games: pa.Table  #: schema GAMES_SCHEMA; ``move_offset`` relative to row 0 of ``moves``
    moves: pa.Table  #: schema ``moves_schema(vectors)``
    game_ids: list[str]


def _coerce_vectors(vectors: Mapping[str, Any]) -> dict[str, VectorSpec]:
    return {name: VectorSpec.coerce(name, decl) for name, decl in vectors.items()}


def encode_games(
    records: Sequence[Mapping[str, Any]],
    *,
    vectors: Mapping[str, VectorSpec],
    board_types: frozenset[str] | None = None,
    now: str | None = None,
) -> EncodedGames:
    """Validate and encode ``records``.

    Raises :class:`RecordError` (or :class:`DuplicateGameError` for an id
    repeated inside ``records``) for the first malformed record; the error's
    ``game_index`` is that record's index, so ``records[:game_index]``
    are valid.

    With the compiled backend the cyclic collector is paused during the call (``gcpause``: its state restored,
    also after an error), as in ``readpath.read_game``: the game-level fields' dicts and lists made a young collection run
    every ~25 games (39 young and 3 middle ones per 1,000 synthetic games), each walking the chunk's headers
    and promoting them; they are freed by reference counting when the call returns, and encoding took ~12%
    less CPU (benchmarks/README.md, write path).  The reference backend keeps it on, as the spec of the cost
    per move.
    """
    if _backend_mod.selected().name != "cython":
        return _encode_games(records, specs=_coerce_vectors(vectors), board_types=board_types, now=now)
    began = gcpause.pause()  # counted: another thread's pause (the async get_game's) is not cut short
    try:
        return _encode_games(records, specs=_coerce_vectors(vectors), board_types=board_types, now=now)
    finally:
        gcpause.resume(began)


def _encode_games(
    records: Sequence[Mapping[str, Any]],
    *,
    specs: dict[str, VectorSpec],
    board_types: frozenset[str] | None,
    now: str | None,
) -> EncodedGames:
    headers: list[dict[str, Any]] = []
    moves_lists: list[Any] = []
    seen: dict[str, int] = {}
    header_error: RecordError | None = None
    for index, record in enumerate(records):
        try:
            header = normalize_header(record, board_types=board_types)
            game_id = header["game_id"]
            if game_id in seen:
                raise DuplicateGameError(
                    f"game id repeated in the batch (first at index {seen[game_id]})",
                    game_id=game_id,
                    field="game_id",
                )
            moves = record.get("moves")
            if moves is None:
                moves = []
            elif not isinstance(moves, (list, tuple)):
                raise RecordError("moves must be a list", game_id=game_id, field="moves")
        except RecordError as exc:
            header_error = exc.at_index(index).with_traceback(exc.__traceback__)
            break
        seen[game_id] = index
        headers.append(header)
        moves_lists.append(moves)
    game_ids = [h["game_id"] for h in headers]
    try:
        moves_table, counts = _backend_mod.selected().encode_moves(game_ids, moves_lists, specs)
    except RecordError as exc:
        raise exc.at_index(seen[str(exc.game_id)]).with_traceback(exc.__traceback__) from exc.__cause__
    except Exception as exc:  # noqa: BLE001 - whatever slipped past the checks is still a bad record
        raise _first_bad_game(game_ids, moves_lists, specs, exc) from exc
    if header_error is not None:
        raise header_error
    created = now if now is not None else utc_now()
    for h in headers:
        if "created_at" not in h:
            h["created_at"] = created
    try:
        games = _games_table(headers, counts)
    except Exception as exc:  # noqa: BLE001
        raise _first_bad_header(headers, counts, exc) from exc
    return EncodedGames(games=games, moves=moves_table, game_ids=game_ids)


def _first_bad_game(game_ids: list[str], moves_lists: list[Any], specs: Mapping[str, VectorSpec], exc: Exception) -> RecordError:
    """The :class:`RecordError` of the first game whose moves the encoder could not take (``exc``).

    The reference validation names the field; failing that, the game that fails to encode on its own.
    """
    for index, (gid, moves) in enumerate(zip(game_ids, moves_lists)):
        try:
            prev = None
            for i, m in enumerate(moves):
                prev = normalize_move(m, i, game_id=gid, vectors=specs, previous_number=prev)["move_number"]
            _backend_mod.selected().encode_moves([gid], [moves], specs)
        except RecordError as err:
            return err.at_index(index)
        except Exception as err:  # noqa: BLE001
            return RecordError(f"cannot be encoded: {type(err).__name__}: {err}", game_id=gid, field="moves",
                               game_index=index)
    return RecordError(f"the batch cannot be encoded: {type(exc).__name__}: {exc}",
                       game_id=game_ids[0] if game_ids else None, game_index=0)


def _first_bad_header(headers: list[dict[str, Any]], counts: list[int], exc: Exception) -> RecordError:
    """The :class:`RecordError` of the first game whose game-level fields Arrow could not take (``exc``)."""
    for index, (h, n) in enumerate(zip(headers, counts)):
        try:
            _games_table([h], [n])
        except Exception as err:  # noqa: BLE001
            return RecordError(f"cannot be encoded: {type(err).__name__}: {err}", game_id=h.get("game_id"),
                               game_index=index)
    return RecordError(f"the batch cannot be encoded: {type(exc).__name__}: {exc}",
                       game_id=headers[0].get("game_id"), game_index=0)


def _json_or_none(obj: dict[str, Any]) -> str | None:
    return dump_canonical_json(obj) if obj else None


def _player_row(p: Mapping[str, Any]) -> dict[str, Any]:
    row = {k: p.get(k) for k in _PLAYER_NAMES}
    row["extra_json"] = _json_or_none({k: v for k, v in p.items() if k not in _PLAYER_KNOWN})
    return row


def _snapshot_row(s: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "move_number": s["move_number"],
        "state_json": dump_canonical_json(s["state"]),
        "state_hash": s.get("state_hash"),
        "extra_json": _json_or_none({k: v for k, v in s.items() if k not in _SNAPSHOT_KNOWN}),
    }


def _games_table(headers: list[dict[str, Any]], counts: list[int]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [h.get(name) for h in headers] for name in _GAME_SCALAR_NAMES}
    players, metadata, state_json, state_blob, snapshots, extra, offsets = [], [], [], [], [], [], []
    offset = 0
    for h, count in zip(headers, counts):
        ps = h.get("players")
        players.append(None if ps is None else [_player_row(p) for p in ps])
        metadata.append(dump_canonical_json(h["metadata"]) if "metadata" in h else None)
        state = h.get("initial_state")
        state_blob.append(state if isinstance(state, bytes) else None)
        state_json.append(dump_canonical_json(state) if "initial_state" in h and not isinstance(state, bytes) else None)
        snaps = h.get("snapshots")
        snapshots.append(None if snaps is None else [_snapshot_row(s) for s in snaps])
        extra.append(_json_or_none({k: v for k, v in h.items() if k not in _GAME_KNOWN}))
        offsets.append(offset)
        offset += count
    columns.update(
        players=players,
        metadata_json=metadata,
        initial_state_json=state_json,
        initial_state_blob=state_blob,
        snapshots=snapshots,
        extra_json=extra,
        move_offset=offsets,
        move_count=list(counts),
    )
    arrays = [from_pylist(columns[f.name], f.type) for f in GAMES_SCHEMA]  # pa.array would import pandas
    return pa.Table.from_arrays(arrays, schema=GAMES_SCHEMA)


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------
def _merge_extra(out: dict[str, Any], text: str | None) -> None:
    if text is not None:
        out.update(json.loads(text))


def header_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The game-level fields of a canonical record from one ``games.arrow`` row (Python values)."""
    out = {k: row[k] for k in _GAME_SCALAR_NAMES if row.get(k) is not None}
    if row.get("players") is not None:
        players = []
        for p in row["players"]:
            d = {k: p[k] for k in _PLAYER_NAMES if p.get(k) is not None}
            _merge_extra(d, p.get("extra_json"))
            players.append(d)
        out["players"] = players
    if row.get("metadata_json") is not None:
        out["metadata"] = json.loads(row["metadata_json"])
    if row.get("initial_state_blob") is not None:
        out["initial_state"] = bytes(row["initial_state_blob"])
    elif row.get("initial_state_json") is not None:
        out["initial_state"] = json.loads(row["initial_state_json"])
    if row.get("snapshots") is not None:
        snaps = []
        for s in row["snapshots"]:
            d = {"move_number": s["move_number"], "state": json.loads(s["state_json"])}
            if s.get("state_hash") is not None:
                d["state_hash"] = s["state_hash"]
            _merge_extra(d, s.get("extra_json"))
            snaps.append(d)
        out["snapshots"] = snaps
    _merge_extra(out, row.get("extra_json"))
    return out


def _as_table(data: pa.Table | pa.RecordBatch) -> pa.Table:
    return pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data


def decode_games(
    games: pa.Table | pa.RecordBatch,
    moves: pa.Table | pa.RecordBatch,
    *,
    base_offset: int = 0,
) -> list[dict[str, Any]]:
    """Canonical records of every row of ``games``.

    Each game's moves are the rows ``[move_offset - base_offset, +move_count)``
    of ``moves``.
    """
    rows = games.to_pylist()
    moves = _as_table(moves)
    specs = vectors_from_schema(moves.schema)
    starts = [r["move_offset"] - base_offset for r in rows]
    counts = [r["move_count"] for r in rows]
    for start, count in zip(starts, counts):
        if start < 0 or count < 0 or start + count > moves.num_rows:
            raise ValueError(f"moves rows [{start}, {start + count}) outside the {moves.num_rows} given")
    out = []
    backend = _backend_mod.selected()
    # decode contiguous runs of games with one backend call each
    i = 0
    while i < len(rows):
        j = i + 1
        while j < len(rows) and starts[j] == starts[j - 1] + counts[j - 1]:
            j += 1
        total = sum(counts[i:j])
        decoded = backend.decode_moves(moves.slice(starts[i], total), specs) if total else []
        pos = 0
        for k in range(i, j):
            game = header_from_row(rows[k])
            game["moves"] = decoded[pos:pos + counts[k]]
            pos += counts[k]
            out.append(game)
        i = j
    return out


def decode_game(game_row: pa.Table | pa.RecordBatch, moves: pa.Table | pa.RecordBatch) -> dict[str, Any]:
    """One game: ``game_row`` holds exactly one row, ``moves`` exactly its moves."""
    if game_row.num_rows != 1:
        raise ValueError(f"expected one game row, got {game_row.num_rows}")
    row = game_row.to_pylist()[0]
    moves = _as_table(moves)
    if moves.num_rows != row["move_count"]:
        raise ValueError(f"game has {row['move_count']} moves, {moves.num_rows} rows given")
    game = header_from_row(row)
    if moves.num_rows:
        game["moves"] = _backend_mod.selected().decode_moves(moves, vectors_from_schema(moves.schema))
    else:
        game["moves"] = []
    return game
