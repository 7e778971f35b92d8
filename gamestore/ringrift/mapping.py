"""Lossless mapping between the rows of one game in a GameReplayDB and a gamestore record.

:func:`rows_to_record` turns the rows of one game (every per-game table,
``GameRows``: table name -> list of row tuples in :data:`tables.COLUMNS`
order) into a game record (``docs/format.md`` section 1);
:func:`record_to_rows` turns the record (as written, or as ``get_game``
returns it) back into the same rows: text equal, blobs byte-equal, floats
bit-equal.  ``docs/ringrift.md`` lists where each column goes.

Record keys this module adds (all optional, present only when needed):

game: the RingRift-only ``games`` columns (``schema_version``,
``parity_status``, ``parity_checked_at``, ``parity_divergence_move``) under
their own names; ``rr_cells`` (cells whose SQLite type does not fit the
typed field, tagged); ``rr_metadata`` (style or raw text of
``metadata_json``); ``rr_initial`` (how ``initial_state`` is rebuilt).
move: the rare non-null ``move_json`` keys under their JSON names
(``placedOnStack``, ``formedLines``, ...); ``rr_json`` (``move_json`` values
that differ from what the typed fields imply); ``rr_json_keys`` (key order
when not the RingRift default); ``rr_search_keys``; ``rr_style``;
``rr_text`` (JSON text kept verbatim); ``rr_cells``.
snapshot: ``rr`` (how ``state_json`` is rebuilt); the side tables
(``game_choices``, ``game_history_entries``, ``game_nnue_features``) are
entries of ``snapshots`` with ``rr_table`` set (kept out of the catalog).
"""
from __future__ import annotations

import json
import math
import operator
from typing import Any, Mapping, Sequence, cast

import numpy as np

from ..errors import RecordError
from ..records import INT_RANGES
from ..schema import GAME_SCALAR_FIELDS, MOVE_KNOWN_KEYS, MOVE_SCALAR_FIELDS, PLAYER_FIELDS
from .jsontext import (
    MoveTexts,
    dumps,
    encode_state,
    fast_loads,
    gzip_apply,
    gzip_params,
    parse_styled,
    render_state,
    tag,
    text_matches,
    untag,
)
from .compare import compare_rows
from .tables import COLUMNS, GAME_TABLES, SCHEMA_VERSION, SIDE_TABLES

__all__ = [
    "GameRows",
    "HEURISTIC_FEATURES",
    "MOVE_JSON_KEYS",
    "RINGRIFT_VECTORS",
    "rows_to_record",
    "record_to_rows",
    "compare_rows",
    "render_move_json",
]

GameRows = dict  # table name -> list of row tuples (columns of tables.COLUMNS)

HEURISTIC_FEATURES = "heuristic_features"
#: The vector declaration an import store needs.
RINGRIFT_VECTORS = {HEURISTIC_FEATURES: {"shape": [49], "dtype": "float32"}}
_HF_BYTES = 49 * 4

#: ``move_json`` keys in the order pydantic's ``Move`` dumps them.
MOVE_JSON_KEYS: tuple[str, ...] = (
    "id", "type", "player", "from", "to", "captureTarget", "capturedStacks", "captureChain",
    "overtakenRings", "placedOnStack", "placementCount", "stackMoved", "minimumDistance",
    "actualDistance", "markerLeft", "lineIndex", "formedLines", "collapsedMarkers", "claimedTerritory",
    "disconnectedRegions", "recoveryOption", "recoveryMode", "collapsePositions", "extractionStacks",
    "eliminatedRings", "eliminationContext", "timestamp", "thinkTime", "moveNumber", "phase",
)  # fmt: skip
_POSITION_JSON = {"from": "from", "to": "to", "captureTarget": "capture_target"}
_DIRECT_JSON = {"id": "move_id", "placementCount": "placement_count", **_POSITION_JSON}
_IMPLIED_JSON = ("type", "player", "timestamp", "thinkTime", "moveNumber", "phase")
_JSON_RESERVED = set(MOVE_KNOWN_KEYS) | set(_DIRECT_JSON) | set(_IMPLIED_JSON)

#: ``search_stats_json`` keys in RingRift's order.
SEARCH_KEYS: tuple[str, ...] = (
    "q_values", "visit_counts", "search_depth", "uncertainty", "prior_policy", "root_value",
    "nodes_explored", "total_simulations",
)  # fmt: skip
_SEARCH_FLOAT_MAPS = ("q_values", "prior_policy")
_SEARCH_SCALAR_TYPES = {
    "root_value": (float, None),
    "uncertainty": (float, None),
    "search_depth": (int, "int32"),
    "nodes_explored": (int, "int64"),
    "total_simulations": (int, "int64"),
}

# default styles of the JSON text columns
_STYLE = {"move_json": "c", "move_probs": "d", "search_stats_json": "d", "metadata_json": "s"}

_INT16 = INT_RANGES["int16"]
_GAME_KINDS = {n: (k, str(t)) for n, t, k in GAME_SCALAR_FIELDS}
_PLAYER_KINDS = {n: (k, str(t)) for n, t, k in PLAYER_FIELDS}
_MOVE_KINDS = {key: (kind, str(t)) for key, _c, t, kind in MOVE_SCALAR_FIELDS}

_GAME_COLS = COLUMNS["games"]
_GAME_TYPED = tuple((i, c) + _GAME_KINDS[c] for i, c in enumerate(_GAME_COLS) if c in _GAME_KINDS and c != "game_id")
_GAME_RR_ONLY = ("schema_version", "parity_status", "parity_checked_at", "parity_divergence_move")
_GAME_RR_IDX = tuple((_GAME_COLS.index(c), c) for c in _GAME_RR_ONLY)
_GAME_META_IDX = _GAME_COLS.index("metadata_json")
_GAME_DEFAULTS = {"game_status": "unknown", "total_turns": 0, "schema_version": SCHEMA_VERSION}

_PLAYER_COLS = COLUMNS["game_players"]
_PLAYER_TYPED = tuple((i, c) + _PLAYER_KINDS[c] for i, c in enumerate(_PLAYER_COLS) if c in _PLAYER_KINDS)

_MOVE_COLS = COLUMNS["game_moves"]
_MOVE_TYPED = tuple((i, c) + _MOVE_KINDS[c] for i, c in enumerate(_MOVE_COLS) if c in _MOVE_KINDS)
_MI = {c: i for i, c in enumerate(_MOVE_COLS)}
_MOVE_DEFAULTS = {"turn_number": 0, "player": 0, "phase": "", "move_type": ""}

_SNAP_COLS = COLUMNS["game_state_snapshots"]
_HIST_COLS = COLUMNS["game_history_entries"]
_HIST_STATE_COLS = ("state_before_json", "state_after_json")


def _fits(value: Any, kind: str, atype: str | None) -> bool:
    if kind == "str":
        return type(value) is str
    if kind == "float":
        return type(value) is float
    if type(value) is not int or atype is None:
        return False
    lo, hi = INT_RANGES[atype]
    return lo <= value <= hi


def _same(a: Any, b: Any) -> bool:
    """Equality that also requires the same type (True is not 1) and the same float bits."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b) or (a != a and b != b)
    if type(a) is dict:
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _required_int(value: Any, atype: str, game_id: Any, field: str) -> int:
    if not _fits(value, "int", atype):
        raise RecordError(f"{value!r} is not an {atype}", game_id=game_id, field=field)
    return value


# ---------------------------------------------------------------------------
# rows -> record
# ---------------------------------------------------------------------------
def rows_to_record(rows: Mapping[str, Sequence[tuple]]) -> dict:
    """The game record of one game's rows (``rows["games"]`` holds exactly one row)."""
    (grow,) = rows["games"]
    game_id = grow[0]
    if type(game_id) is not str or not game_id:
        raise RecordError(f"game_id must be a non-empty text, got {game_id!r}", field="game_id")
    rec: dict[str, Any] = {"game_id": game_id}
    cells: dict[str, Any] = {}
    for i, col, kind, atype in _GAME_TYPED:
        v = grow[i]
        if v is None:
            continue
        if _fits(v, kind, atype):
            rec[col] = v
        else:
            cells[col] = tag(v)
    for required in ("board_type", "num_players"):
        if required not in rec:
            raise RecordError(f"unusable {required} {grow[_GAME_COLS.index(required)]!r}", game_id=game_id, field=required)
    for i, col in _GAME_RR_IDX:
        if grow[i] is not None:
            rec[col] = tag(grow[i])
    meta_text = grow[_GAME_META_IDX]
    if meta_text is not None:
        parsed = parse_styled(meta_text, _STYLE["metadata_json"]) if type(meta_text) is str else None
        if parsed is None or parsed[0] is None:
            rec["rr_metadata"] = {"raw": tag(meta_text)}
        else:
            rec["metadata"] = parsed[0]
            if parsed[1] != _STYLE["metadata_json"]:
                rec["rr_metadata"] = {"st": parsed[1]}
            mv = parsed[0].get("model_version") if type(parsed[0]) is dict else None
            if type(mv) is str and "model_version" not in rec:
                rec["model_version"] = mv  # derived for queries; not a games column
    if cells:
        rec["rr_cells"] = cells

    players = [_player_to_record(r, game_id) for r in rows.get("game_players", ())]
    if players:
        rec["players"] = players

    moves = []
    move_texts = MoveTexts()
    for r in rows.get("game_moves", ()):
        m, text = _move_to_record(r, game_id)
        moves.append(m)
        move_texts.append(text)
    rec["moves"] = moves

    init_rows = rows.get("game_initial_state", ())
    if len(init_rows) > 1:
        raise RecordError("more than one initial state", game_id=game_id, field="initial_state")
    if init_rows:
        _, text, compressed = init_rows[0]
        value, meta = _encode_state_cell(text, compressed, move_texts, strip=False)
        if value is None and type(meta.get("raw")) is dict:  # verbatim bytes: keep them as the blob
            value = untag(meta.pop("raw"))
        if value is not None:
            rec["initial_state"] = value
        if meta or value is None:
            rec["rr_initial"] = meta

    snaps = [_snapshot_to_record(r, move_texts, game_id) for r in rows.get("game_state_snapshots", ())]
    snaps += [_choice_or_nnue(t, r, game_id) for t in ("game_choices", "game_nnue_features") for r in rows.get(t, ())]
    snaps += _history_to_records(rows.get("game_history_entries", ()), move_texts, game_id)
    if snaps:
        rec["snapshots"] = snaps
    return rec


def _player_to_record(row: tuple, game_id: str) -> dict:
    p: dict[str, Any] = {}
    cells = {}
    for i, col, kind, atype in _PLAYER_TYPED:
        v = row[i]
        if v is None:
            continue
        if _fits(v, kind, atype):
            p[col] = v
        elif col == "player_number":
            raise RecordError(f"player_number {v!r} is not an int8", game_id=game_id, field="players.player_number")
        else:
            cells[col] = tag(v)
    if "player_number" not in p:
        raise RecordError("player_number is NULL", game_id=game_id, field="players.player_number")
    if cells:
        p["rr_cells"] = cells
    return p


def _move_to_record(row: tuple, game_id: str) -> tuple[dict, str]:
    """The move record of a ``game_moves`` row, and its ``move_json`` text as export renders it."""
    m: dict[str, Any] = {"move_number": _required_int(row[1], "int32", game_id, "moves.move_number")}
    cells: dict[str, Any] = {}
    for i, col, typ, lo, hi in _MOVE_TYPED_FAST:  # _fits, inlined
        v = row[i]
        if v is None:
            continue
        if type(v) is typ and (lo is None or lo <= v <= hi):
            m[col] = v
        else:
            cells[col] = tag(v)
    if cells:
        m["rr_cells"] = cells
    texts: dict[str, Any] = {}
    styles: dict[str, str] = {}

    mj = row[_MI["move_json"]]
    if mj is None:
        texts["move_json"] = None
    else:
        nan_free = False
        try:
            parsed, nan_free = fast_loads(mj) if type(mj) is str and mj[:1] == "{" else (None, False)
        except ValueError:
            parsed = None
        if type(parsed) is dict:
            _decompose_move_json(parsed, m)
        # the decomposition is exact (move_json_value(m) gives ``parsed`` back, same objects in the same
        # order: see _decompose_move_json), so checking the text against ``parsed`` checks the record
        if type(parsed) is not dict or not text_matches(parsed, mj, _STYLE["move_json"], nan_free=nan_free):
            for k in [k for k in m if k not in _MOVE_BASE_KEYS]:
                del m[k]  # undo the decomposition: keep the text verbatim
            texts["move_json"] = tag(mj)
    move_text = mj if type(mj) is str else ""

    mp = row[_MI["move_probs"]]
    if mp is not None:
        policy = _parse_policy(mp)
        if policy is None:
            texts["move_probs"] = tag(mp)
        else:
            m["policy"], style = policy
            if style != _STYLE["move_probs"]:
                styles["move_probs"] = style

    ss = row[_MI["search_stats_json"]]
    if ss is not None:
        search = _parse_search(ss)
        if search is None:
            texts["search_stats_json"] = tag(ss)
        else:
            m["search"], keys, style = search
            if keys is not None:
                m["rr_search_keys"] = keys
            if style != _STYLE["search_stats_json"]:
                styles["search_stats_json"] = style

    hf = row[_MI["heuristic_features"]]
    if hf is not None:
        if type(hf) is bytes and len(hf) == _HF_BYTES:
            m["vectors"] = {HEURISTIC_FEATURES: np.frombuffer(hf, dtype="<f4").astype(np.float32)}
        else:
            cells["heuristic_features"] = tag(hf)
            m["rr_cells"] = cells
    if texts:
        m["rr_text"] = texts
    if styles:
        m["rr_style"] = styles
    return m, move_text


_MOVE_BASE_KEYS = {"move_number", "rr_cells"} | {c for _, c, _, _ in _MOVE_TYPED}
_PYTYPES = {"str": str, "float": float, "int": int}
#: (column index, column, Python type, int low, int high) of each typed move column
_MOVE_TYPED_FAST = cast(
    "tuple[tuple[int, str, type, Any, Any], ...]",
    tuple((i, c, _PYTYPES[k]) + ((None, None) if k != "int" else INT_RANGES[a]) for i, c, k, a in _MOVE_TYPED),
)


def _valid_position(v: Any) -> bool:
    """``{"x": int16, "y": int16, "z": int16 or None}``, keys in that order."""
    if type(v) is not dict or len(v) != 3 or tuple(v) != _XYZ:
        return False
    x, y, z = v.values()
    lo, hi = _INT16
    return (
        type(x) is int and lo <= x <= hi and type(y) is int and lo <= y <= hi
        and (z is None or (type(z) is int and lo <= z <= hi))
    )  # fmt: skip


_XYZ = ("x", "y", "z")


def _implied(m: Mapping, key: str) -> Any:
    if key == "type":
        return m.get("move_type")
    if key == "player":
        return m.get("player")
    if key == "timestamp":
        return m.get("timestamp")
    if key == "thinkTime":
        return m.get("think_time_ms")
    if key == "moveNumber":
        return m["move_number"] + 1
    return m.get("phase")


#: move_json keys that are neither typed record fields nor implied by the row: overflow keys of the record
_RARE_JSON = tuple(k for k in MOVE_JSON_KEYS if k not in _DIRECT_JSON and k not in _IMPLIED_JSON)
_rare_values = operator.itemgetter(*_RARE_JSON)
_RARE_NONE = (None,) * len(_RARE_JSON)
_POSITION_ITEMS = tuple(_POSITION_JSON.items())
# What makes the decomposition exact: the rebuilt move_json takes every key from where it was put, and no
# typed field of a move record is mistaken for an unknown move_json key (nor an overflow key for a reserved one).
assert not set(_RARE_JSON) & _JSON_RESERVED
assert {c for _, c, _, _ in _MOVE_TYPED} | set(_DIRECT_JSON.values()) <= _JSON_RESERVED


def _decompose_move_json(d: dict, m: dict) -> None:
    """Spread the parsed ``move_json`` over the move record ``m`` (typed fields, overflow keys, ``rr_json``).

    Exact: :func:`move_json_value` of the result rebuilds ``d`` with the same values in the same key order.
    """
    if tuple(d) != MOVE_JSON_KEYS:
        _decompose_any_keys(d, m)
        return
    over: dict[str, Any] = {}
    rare = _rare_values(d)
    if rare != _RARE_NONE:
        for k, v in zip(_RARE_JSON, rare):
            if v is not None:
                m[k] = v
    v = d["id"]
    if v is not None:
        if type(v) is str:
            m["move_id"] = v
        else:
            over["id"] = v
    for k, field in _POSITION_ITEMS:
        v = d[k]
        if v is not None:
            if _valid_position(v):
                m[field] = v
            else:
                over[k] = v
    v = d["placementCount"]
    if v is not None:
        if type(v) is int and _INT16[0] <= v <= _INT16[1]:
            m["placement_count"] = v
        else:
            over["placementCount"] = v
    get = m.get
    for k, field in (("type", "move_type"), ("player", "player"), ("timestamp", "timestamp"),
                     ("thinkTime", "think_time_ms"), ("phase", "phase")):  # fmt: skip
        v = d[k]
        w = get(field)
        if type(v) is not type(w) or (v != w if type(v) is not float else not _same(v, w)):
            over[k] = v
    v = d["moveNumber"]
    if type(v) is not int or v != m["move_number"] + 1:
        over["moveNumber"] = v
    if over:
        m["rr_json"] = over


def _decompose_any_keys(d: dict, m: dict) -> None:
    over: dict[str, Any] = {}
    if tuple(d) != MOVE_JSON_KEYS:
        m["rr_json_keys"] = list(d)
    for k, v in d.items():
        if k in _DIRECT_JSON:
            if v is None:
                continue
            if k in _POSITION_JSON:
                ok = _valid_position(v)
            elif k == "id":
                ok = type(v) is str
            else:
                ok = type(v) is int and _INT16[0] <= v <= _INT16[1]
            if ok:
                m[_DIRECT_JSON[k]] = v
            else:
                over[k] = v
        elif k in _IMPLIED_JSON:
            if not _same(v, _implied(m, k)):
                over[k] = v
        elif k in _JSON_RESERVED or k.startswith("rr_"):
            over[k] = v
        elif v is not None:
            m[k] = v
    if over:
        m["rr_json"] = over


def render_move_json(m: Mapping) -> str:
    """The ``move_json`` text of a move record."""
    texts = m.get("rr_text")
    if texts and "move_json" in texts:
        return untag(texts["move_json"])
    return dumps(move_json_value(m), _STYLE["move_json"])


def move_json_value(m: Mapping) -> dict:
    """The ``move_json`` object of a move record (as ``json.loads`` of the stored text gives it)."""
    texts = m.get("rr_text")
    if texts and "move_json" in texts:
        return json.loads(untag(texts["move_json"]))
    keys = m.get("rr_json_keys")
    over = m.get("rr_json") or {}
    d: dict[str, Any] = {}
    for k in MOVE_JSON_KEYS if keys is None else keys:
        if k in over:
            d[k] = over[k]
        elif k in _DIRECT_JSON:
            d[k] = m.get(_DIRECT_JSON[k])
        elif k in _IMPLIED_JSON:
            d[k] = _implied(m, k)
        else:
            d[k] = m.get(k)
    if keys is None:  # records not imported from SQLite: their unknown keys join the move JSON
        for k, v in m.items():
            if k not in d and k not in _JSON_RESERVED and not k.startswith("rr_"):
                d[k] = v
    return d


def _parse_policy(text: Any) -> tuple[dict, str] | None:
    if type(text) is not str:
        return None
    parsed = parse_styled(text, _STYLE["move_probs"])
    if parsed is None or type(parsed[0]) is not dict or not parsed[0]:
        return None
    vals = list(parsed[0].values())
    if set(map(type, vals)) != _FLOAT_ONLY or not all(map(math.isfinite, vals)):
        return None
    return parsed


def _parse_search(text: Any) -> tuple[dict, list | None, str] | None:
    if type(text) is not str:
        return None
    parsed = parse_styled(text, _STYLE["search_stats_json"])
    if parsed is None or type(parsed[0]) is not dict:
        return None
    s, style = parsed
    q, vc, pp = s.get("q_values"), s.get("visit_counts"), s.get("prior_policy")
    if type(q) is dict and type(vc) is dict and type(pp) is dict and q:  # the usual shape: one key list
        keys = list(q)
        lo, hi = INT_RANGES["int32"]
        vcs = list(vc.values())
        if (
            list(vc) == keys and list(pp) == keys
            and set(map(type, q.values())) == _FLOAT_ONLY and set(map(type, pp.values())) == _FLOAT_ONLY
            and set(map(type, vcs)) == _INT_ONLY and lo <= min(vcs) and max(vcs) <= hi
        ):  # fmt: skip
            return _search_scalars(s, style)
    union: dict[str, None] = {}
    maps = []
    for name in ("q_values", "visit_counts", "prior_policy"):
        mp = s.get(name)
        if mp is None:
            continue
        if type(mp) is not dict:
            return None
        if mp:
            vals = list(mp.values())
            if name == "visit_counts":
                lo, hi = INT_RANGES["int32"]
                if set(map(type, vals)) != _INT_ONLY or min(vals) < lo or max(vals) > hi:
                    return None
            elif set(map(type, vals)) != _FLOAT_ONLY:
                return None
        maps.append(mp)
        union.update(dict.fromkeys(mp))
    for mp in maps:  # the store keeps one candidate order (first seen): each map must follow it
        if list(mp) != [k for k in union if k in mp]:
            return None
    return _search_scalars(s, style)


def _search_scalars(s: dict, style: str) -> tuple[dict, list | None, str] | None:
    """Check the scalar statistics; ``(s, key order when not RingRift's, style)``."""
    for name, (typ, atype) in _SEARCH_SCALAR_TYPES.items():
        v = s.get(name)
        if v is not None and (type(v) is not typ or (atype and not _fits(v, "int", atype))):
            return None
    if tuple(s) == SEARCH_KEYS:
        return s, None, style
    keys = list(s)
    return s, (None if keys == _search_key_order(s) else keys), style


_INT_ONLY = {int}
_FLOAT_ONLY = {float}


def _search_key_order(s: Mapping) -> list[str]:
    return [k for k in SEARCH_KEYS if k in s] + [k for k in s if k not in SEARCH_KEYS]


def _encode_state_cell(
    cell: Any, compressed: Any, move_texts: Sequence[str], *, strip: bool, hint: int | None = None
) -> tuple[Any, dict]:
    """Split a state cell into (state or None, meta); None with meta["raw"] when kept verbatim."""
    meta: dict[str, Any] = {}
    if compressed != 0:
        meta["c"] = tag(compressed)
    text = cell
    if compressed and cell is not None:
        blob = cell
        if type(cell) is str:
            try:
                import base64

                blob = base64.b64decode(cell.encode("ascii"), validate=True)
                meta["b64"] = 1
            except (ValueError, UnicodeEncodeError):
                blob = None
        gz = gzip_params(blob) if type(blob) is bytes else None
        if gz is None:
            meta.pop("b64", None)
            meta["raw"] = tag(cell)
            return None, meta
        text, meta["gz"] = gz
    if type(text) is not str:
        meta["raw"] = tag(cell)
        return None, meta
    enc = encode_state(text, move_texts if strip else (), hint=hint)
    if enc is None:
        meta.pop("gz", None)
        meta.pop("b64", None)
        meta["raw"] = tag(cell)
        return None, meta
    meta.update(enc[1])
    return enc[0], meta


def _render_state_cell(state: Any, meta: Mapping, move_texts: Sequence[str]) -> Any:
    if "raw" in meta:
        return untag(meta["raw"])
    text = render_state(state, meta.get("mh"), meta.get("st", "c"), move_texts)
    if "gz" in meta:
        blob = gzip_apply(text, meta["gz"])
        if meta.get("b64"):
            import base64

            return base64.b64encode(blob).decode("ascii")
        return blob
    return text


def _hint(move_number: Any, plus: int) -> int | None:
    """The usual length of the history embedded in a state stored at ``move_number``."""
    return move_number + plus if type(move_number) is int and move_number >= 0 else None


def _snapshot_to_record(row: tuple, move_texts: Sequence[str], game_id: str) -> dict:
    _, move_number, state_json, compressed, state_hash = row
    snap: dict[str, Any] = {"move_number": _required_int(move_number, "int32", game_id, "snapshots.move_number")}
    state, meta = _encode_state_cell(state_json, compressed, move_texts, strip=True, hint=_hint(move_number, 1))
    snap["state"] = state
    if state_hash is not None:
        if type(state_hash) is str:
            snap["state_hash"] = state_hash
        else:
            meta["h"] = tag(state_hash)
    if meta:
        snap["rr"] = meta
    return snap


def _choice_or_nnue(table: str, row: tuple, game_id: str) -> dict:
    cols = COLUMNS[table]
    mn = row[1]
    return {
        "move_number": mn if _fits(mn, "int", "int32") else 0,
        "state": None,
        "rr_table": table,
        "rr_row": {c: tag(v) for c, v in zip(cols[1:], row[1:]) if v is not None},
    }


def _history_to_records(rows: Sequence[tuple], move_texts: Sequence[str], game_id: str) -> list[dict]:
    out = []
    prev_after: Any = None
    ib, ia, ic = (_HIST_COLS.index(c) for c in (*_HIST_STATE_COLS, "compressed_states"))
    for row in rows:
        mn = row[1]
        entry: dict[str, Any] = {
            "move_number": mn if _fits(mn, "int", "int32") else 0,
            "rr_table": "game_history_entries",
            "rr_row": {c: tag(v) for c, v in zip(_HIST_COLS[1:], row[1:]) if v is not None and c not in _HIST_STATE_COLS},
        }
        before, after = row[ib], row[ia]
        state, meta = (
            (None, {})
            if after is None
            else _encode_state_cell(after, row[ic], move_texts, strip=True, hint=_hint(mn, 1))
        )
        meta.pop("c", None)
        entry["state"] = state
        if after is not None:
            entry["rr_after"] = meta
        if before is not None:
            if prev_after is not None and before == prev_after and type(before) is type(prev_after):
                entry["rr_before"] = {"ref": "prev_after"}
            else:
                bstate, bmeta = _encode_state_cell(before, row[ic], move_texts, strip=True, hint=_hint(mn, 0))
                bmeta.pop("c", None)
                bmeta["state"] = bstate
                entry["rr_before"] = bmeta
        prev_after = after
        out.append(entry)
    return out


# ---------------------------------------------------------------------------
# record -> rows
# ---------------------------------------------------------------------------
def record_to_rows(rec: Mapping) -> GameRows:
    """The GameReplayDB rows of a game record (inverse of :func:`rows_to_record`)."""
    game_id = rec["game_id"]
    moves = rec.get("moves") or []
    move_rows = []
    move_texts = MoveTexts()
    for m in moves:
        row, text = _move_row(game_id, m)
        move_rows.append(row)
        move_texts.append(text if type(text) is str else "")
    out: GameRows = {t: [] for t in GAME_TABLES}
    out["games"].append(_game_row(rec, len(moves)))
    out["game_players"] = [_player_row(game_id, p) for p in rec.get("players") or ()]
    out["game_moves"] = move_rows
    if "initial_state" in rec or "rr_initial" in rec:
        meta = rec.get("rr_initial") or {}
        state = rec.get("initial_state")
        if isinstance(state, (bytes, bytearray)) and "raw" not in meta:
            cell = bytes(state)
        else:
            cell = _render_state_cell(state, meta, move_texts)
        out["game_initial_state"].append((game_id, cell, untag(meta["c"]) if "c" in meta else 0))
    prev_after: Any = None
    for s in rec.get("snapshots") or ():
        table = s.get("rr_table")
        if table is None:
            meta = s.get("rr") or {}
            cell = _render_state_cell(s.get("state"), meta, move_texts)
            state_hash = s.get("state_hash", untag(meta["h"]) if "h" in meta else None)
            out["game_state_snapshots"].append(
                (game_id, s["move_number"], cell, untag(meta["c"]) if "c" in meta else 0, state_hash)
            )
        elif table == "game_history_entries":
            row, prev_after = _history_row(game_id, s, move_texts, prev_after)
            out[table].append(row)
        elif table in SIDE_TABLES:
            rr = s.get("rr_row") or {}
            out[table].append((game_id,) + tuple(untag(rr.get(c)) for c in COLUMNS[table][1:]))
    return out


def _game_row(rec: Mapping, num_moves: int) -> tuple:
    cells = rec.get("rr_cells") or {}
    vals: dict[str, Any] = {"game_id": rec["game_id"]}
    for _, col, _, _ in _GAME_TYPED:
        vals[col] = untag(cells[col]) if col in cells else rec.get(col)
    for col in _GAME_RR_ONLY:
        vals[col] = untag(rec.get(col))
    meta = rec.get("rr_metadata") or {}
    if "raw" in meta:
        vals["metadata_json"] = untag(meta["raw"])
    elif "metadata" in rec:
        vals["metadata_json"] = dumps(rec["metadata"], meta.get("st", _STYLE["metadata_json"]))
    if "rr_cells" not in rec and "schema_version" not in rec:  # a record not imported from SQLite
        for col, default in _GAME_DEFAULTS.items():
            if vals.get(col) is None:
                vals[col] = default
        if vals.get("total_moves") is None:
            vals["total_moves"] = num_moves
    return tuple(vals.get(c) for c in _GAME_COLS)


def _player_row(game_id: str, p: Mapping) -> tuple:
    cells = p.get("rr_cells") or {}
    return (game_id,) + tuple(untag(cells[c]) if c in cells else p.get(c) for c in _PLAYER_COLS[1:])


def _move_row(game_id: str, m: Mapping) -> tuple[tuple, str]:
    cells = m.get("rr_cells") or {}
    texts = m.get("rr_text") or {}
    styles = m.get("rr_style") or {}
    vals: dict[str, Any] = {"game_id": game_id, "move_number": m["move_number"]}
    for _, col, _, _ in _MOVE_TYPED:
        vals[col] = untag(cells[col]) if col in cells else m.get(col)
    if "rr_json_keys" not in m and "rr_text" not in m:
        for col, default in _MOVE_DEFAULTS.items():  # NOT NULL columns of records not imported from SQLite
            if vals[col] is None and col not in cells:
                vals[col] = default
    move_json = render_move_json(m)
    vals["move_json"] = move_json
    if "move_probs" in texts:
        vals["move_probs"] = untag(texts["move_probs"])
    elif m.get("policy") is not None:
        vals["move_probs"] = dumps(m["policy"], styles.get("move_probs", _STYLE["move_probs"]))
    if "search_stats_json" in texts:
        vals["search_stats_json"] = untag(texts["search_stats_json"])
    elif m.get("search") is not None:
        s = m["search"]
        keys = m.get("rr_search_keys") or _search_key_order(s)
        vals["search_stats_json"] = dumps(
            {k: s[k] for k in keys}, styles.get("search_stats_json", _STYLE["search_stats_json"])
        )
    if "heuristic_features" in cells:
        vals["heuristic_features"] = untag(cells["heuristic_features"])
    else:
        vec = (m.get("vectors") or {}).get(HEURISTIC_FEATURES)
        if vec is not None:
            vals["heuristic_features"] = np.asarray(vec, dtype="<f4").tobytes()
    return tuple(vals.get(c) for c in _MOVE_COLS), move_json


def _history_row(game_id: str, s: Mapping, move_texts: Sequence[str], prev_after: Any) -> tuple[tuple, Any]:
    rr = s.get("rr_row") or {}
    vals = {c: untag(v) for c, v in rr.items()}
    vals["game_id"] = game_id
    if "rr_after" in s:
        vals["state_after_json"] = _render_state_cell(s.get("state"), s["rr_after"], move_texts)
    before = s.get("rr_before")
    if before is not None:
        if before.get("ref") == "prev_after":
            vals["state_before_json"] = prev_after
        else:
            vals["state_before_json"] = _render_state_cell(before.get("state"), before, move_texts)
    return tuple(vals.get(c) for c in _HIST_COLS), vals.get("state_after_json")
