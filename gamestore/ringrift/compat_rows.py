"""Exact GameReplayDB values from game records, for the compat reader.

Game-level values come from the shard's game row alone (no moves decoded);
per-move values from the decoded moves, without rendering the JSON texts a
caller does not ask for.  Everything equals what RingRift's SQLite file holds
(the same functions :mod:`.mapping` uses for ``export-sqlite``).
"""
from __future__ import annotations

import base64
import gzip
import json
from typing import Any, Mapping, Sequence

import numpy as np

from .jsontext import untag
from .cells import DIRECT_JSON, JSON_RESERVED
from .mapping import HEURISTIC_FEATURES, MOVE_JSON_KEYS, move_json_value, record_to_rows
from .tables import COLUMNS

__all__ = [
    "game_row", "player_rows", "initial_state", "snapshot_states", "move_json", "move_cells", "move_probs",
    "heuristics", "table_rows", "state_from_cell", "in_range", "game_moves_batch", "decode_partial",
    "heuristics_of_rows",
]  # fmt: skip

_GAME_COLS = COLUMNS["games"]
_MOVE_SCALARS = ("turn_number", "player", "phase", "move_type", "timestamp", "think_time_ms", "time_remaining_ms",
                 "engine_eval", "engine_eval_type", "engine_depth", "engine_nodes", "engine_pv", "engine_time_ms")  # fmt: skip


_MN = object()  # placeholder of moveNumber (move_number + 1)
_IMPLIED_SRC = {"type": "move_type", "player": "player", "timestamp": "timestamp", "thinkTime": "think_time_ms",
                "phase": "phase", "moveNumber": _MN}  # fmt: skip
_PLAN = tuple((k, DIRECT_JSON.get(k, _IMPLIED_SRC.get(k, k))) for k in MOVE_JSON_KEYS)
_NOT_EXTRA = frozenset(MOVE_JSON_KEYS) | JSON_RESERVED
_SLOW_KEYS = ("rr_text", "rr_json_keys", "rr_json")


def move_json(m: Mapping) -> dict:
    """:func:`.mapping.move_json_value`, about 3x faster for the usual records (no key order or overrides kept)."""
    for k in _SLOW_KEYS:
        if k in m:
            return move_json_value(m)
    get = m.get
    d = {k: (m["move_number"] + 1 if src is _MN else get(src)) for k, src in _PLAN}
    extra = m.keys() - _NOT_EXTRA
    if extra:  # records not imported from SQLite: their unknown keys join the move JSON, in record order
        for k, v in m.items():
            if k in extra and not k.startswith("rr_"):
                d[k] = v
    return d


def in_range(n: int, start: int, end: int | None) -> bool:
    return n >= start and (end is None or n < end)


def state_from_cell(cell: Any, compressed: Any, *, b64: bool = False) -> dict | None:
    """The JSON object of a state cell as RingRift decodes it (gzip / base64-gzip when compressed)."""
    if cell is None:
        return None
    if compressed:
        blob = base64.b64decode(cell) if (b64 or isinstance(cell, str)) else cell
        cell = gzip.decompress(blob).decode("utf-8")
    if isinstance(cell, bytes):
        cell = cell.decode("utf-8")
    return json.loads(cell)


def _header_rows(header: Mapping) -> dict[str, list[tuple]]:
    return record_to_rows({**header, "moves": [], "snapshots": []})


def game_row(header: Mapping) -> dict:
    """The ``games`` row (``dict(sqlite3.Row)`` of ``SELECT * FROM games``)."""
    return dict(zip(_GAME_COLS, _header_rows(header)["games"][0]))


def player_rows(header: Mapping) -> list[dict]:
    cols = COLUMNS["game_players"]
    rows = [dict(zip(cols, r)) for r in _header_rows(header)["game_players"]]
    return sorted(rows, key=lambda r: (r["player_number"] is None, r["player_number"]))


def initial_state(header: Mapping) -> dict | None:
    """The stored initial state object, or None when the game has none."""
    meta = header.get("rr_initial")
    state = header.get("initial_state")
    if not meta and isinstance(state, dict):
        return state
    if state is None and not meta:
        return None
    rows = _header_rows(header)["game_initial_state"]
    return state_from_cell(rows[0][1], rows[0][2]) if rows else None


def snapshot_states(rec: Mapping, moves: Sequence[Mapping]) -> dict[int, dict]:
    """move_number -> full state (``moveHistory`` rebuilt) of the ``game_state_snapshots`` rows."""
    out: dict[int, dict] = {}
    plain = []
    for s in rec.get("snapshots") or ():
        if s.get("rr_table") is not None:
            continue
        meta = s.get("rr") or {}
        state = s.get("state")
        if isinstance(state, dict) and set(meta) <= {"mh", "st"}:
            mh = meta.get("mh")
            if mh is None:
                out[s["move_number"]] = state
            else:
                index, n = mh
                items = list(state.items())
                items.insert(index, ("moveHistory", [move_json(m) for m in moves[:n]]))
                out[s["move_number"]] = dict(items)
        else:
            plain.append(s)
    if plain:  # compressed or verbatim cells: render them as the SQLite file holds them
        rows = record_to_rows({**rec, "moves": list(moves), "snapshots": plain})["game_state_snapshots"]
        for _, mn, cell, compressed, _ in rows:
            out[mn] = state_from_cell(cell, compressed)  # type: ignore[assignment]
    return out


def move_cells(m: Mapping) -> dict[str, Any]:
    """The scalar ``game_moves`` columns of a move (SQLite cells where the import kept them)."""
    cells = m.get("rr_cells") or {}
    out = {"move_number": m["move_number"]}
    for c in _MOVE_SCALARS:
        out[c] = untag(cells[c]) if c in cells else m.get(c)
    if "rr_json_keys" not in m and "rr_text" not in m:  # records not imported from SQLite: NOT NULL defaults
        for c, default in (("turn_number", 0), ("player", 0), ("phase", ""), ("move_type", "")):
            if out[c] is None and c not in cells:
                out[c] = default
    return out


def move_probs(m: Mapping) -> dict | None:
    """``json.loads(move_probs)`` of a move, or None."""
    texts = m.get("rr_text")
    if texts and "move_probs" in texts:
        text = untag(texts["move_probs"])
        return json.loads(text) if text else None
    policy = m.get("policy")
    return None if policy is None else dict(policy)


def heuristics(m: Mapping) -> np.ndarray | None:
    """The ``heuristic_features`` blob as RingRift reads it (float32 array), or None."""
    cells = m.get("rr_cells") or {}
    if "heuristic_features" in cells:
        blob = untag(cells["heuristic_features"])
        return np.frombuffer(blob, dtype=np.float32) if blob else None
    vec = (m.get("vectors") or {}).get(HEURISTIC_FEATURES)
    if vec is None:
        return None
    arr = np.asarray(vec, dtype=np.float32)
    return np.frombuffer(arr.tobytes(), dtype=np.float32) if arr.size else None


def table_rows(rec: Mapping, table: str) -> list[dict]:
    """The rows of one GameReplayDB table of a game as dicts (column -> SQLite value), in key order."""
    rows = record_to_rows(rec)[table]
    cols = COLUMNS[table]
    out = [dict(zip(cols, r)) for r in rows]
    if table in ("game_history_entries", "game_state_snapshots", "game_moves"):
        out.sort(key=lambda r: r["move_number"])
    return out


# ---------------------------------------------------------------------------------------------
# partial move decoding: only the columns a read needs
# ---------------------------------------------------------------------------------------------
#: column groups a partial decode may leave out (read as absent)
_POLICY_COLS = ("policy",)
_SEARCH_COLS = ("search", "search_extra_json")


def game_moves_batch(store: Any, game_id: str) -> tuple[Any, Any] | None:
    """``(shard reader, the game's rows of its cached moves batch)``; None when not a plain point read."""
    catalog = store.catalog
    loc = catalog.locate(game_id)
    if loc is None:
        return None
    reader = catalog.find_reader(loc.shard_id)
    if reader is None or loc.num_moves == 0:
        return None
    i = reader.batch_index(loc.move_offset)
    start = loc.move_offset - reader.batch_starts[i]
    batch = reader.cached_batch(i).batch
    if start < 0 or start + loc.num_moves > batch.num_rows:
        return None
    return reader, batch.slice(start, loc.num_moves)


def decode_partial(reader: Any, rows: Any, *, policy: bool = False, search: bool = False, vectors: bool = False) -> list[dict]:
    """Move records of ``rows`` with the heavy per-move data left out unless asked for."""
    import pyarrow as pa

    from ..backend import selected

    drop = set(() if policy else _POLICY_COLS) | set(() if search else _SEARCH_COLS)
    specs = reader.vectors if vectors else {}
    if not vectors:
        drop |= {s.column for s in reader.vectors.values()}
    cols = [pa.nulls(rows.num_rows, f.type) if f.name in drop else c for f, c in zip(rows.schema, rows.columns)]
    return selected().decode_moves(pa.RecordBatch.from_arrays(cols, schema=rows.schema), specs)


def heuristics_of_rows(reader: Any, rows: Any) -> list[np.ndarray | None] | None:
    """The heuristic features of each row straight from the vector column (None: decode the moves instead)."""
    spec = reader.vectors.get(HEURISTIC_FEATURES)
    extra = rows.column("extra_json")
    if spec is None or extra.null_count < len(extra) and any("heuristic_features" in (e or "") for e in extra.to_pylist()):
        return None
    col = rows.column(spec.column)
    values = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    width = col.type.list_size
    out: list[np.ndarray | None] = []
    valid = col.is_valid().to_numpy(zero_copy_only=False)
    pos = 0
    for ok in valid:
        if ok:
            out.append(np.frombuffer(values[pos : pos + width].tobytes(), dtype=np.float32))
            pos += width
        else:
            out.append(None)
    return out
