"""The cells of a GameReplayDB game whose text gamestore rebuilds exactly: ``move_json``,
``move_probs``, ``search_stats_json``, state JSON (snapshots, history entries), side tables.

The decomposition of each into record fields and back; :mod:`gamestore.ringrift.mapping` puts
them together into whole rows and records.
"""
from __future__ import annotations

import json
import math
import operator
from typing import Any, Mapping, Sequence

from ..errors import RecordError
from ..rawjson import JSONText
from ..records import INT_RANGES
from ..schema import MOVE_KNOWN_KEYS
from .jsontext import (
    dumps,
    encode_state,
    gzip_apply,
    gzip_params,
    parse_styled,
    render_state,
    tag,
    untag,
)
from .tables import COLUMNS
from .textcols import policy_text, search_text

__all__ = [
    "MOVE_JSON_KEYS",
    "DIRECT_JSON",
    "JSON_RESERVED",
    "SEARCH_KEYS",
    "STYLE",
    "fits",
    "same",
    "required_int",
    "decompose_move_json",
    "move_json_value",
    "render_move_json",
    "parse_policy",
    "parse_search",
    "search_key_order",
    "encode_state_cell",
    "render_state_cell",
    "snapshot_to_record",
    "choice_or_nnue",
    "history_to_records",
    "history_row",
]


#: ``move_json`` keys in the order pydantic's ``Move`` dumps them.
MOVE_JSON_KEYS: tuple[str, ...] = (
    "id", "type", "player", "from", "to", "captureTarget", "capturedStacks", "captureChain",
    "overtakenRings", "placedOnStack", "placementCount", "stackMoved", "minimumDistance",
    "actualDistance", "markerLeft", "lineIndex", "formedLines", "collapsedMarkers", "claimedTerritory",
    "disconnectedRegions", "recoveryOption", "recoveryMode", "collapsePositions", "extractionStacks",
    "eliminatedRings", "eliminationContext", "timestamp", "thinkTime", "moveNumber", "phase",
)  # fmt: skip


_POSITION_JSON = {"from": "from", "to": "to", "captureTarget": "capture_target"}


DIRECT_JSON = {"id": "move_id", "placementCount": "placement_count", **_POSITION_JSON}


_IMPLIED_JSON = ("type", "player", "timestamp", "thinkTime", "moveNumber", "phase")


JSON_RESERVED = set(MOVE_KNOWN_KEYS) | set(DIRECT_JSON) | set(_IMPLIED_JSON)


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
STYLE = {"move_json": "c", "move_probs": "d", "search_stats_json": "d", "metadata_json": "s"}


_INT16 = INT_RANGES["int16"]


_HIST_COLS = COLUMNS["game_history_entries"]


_HIST_STATE_COLS = ("state_before_json", "state_after_json")


def fits(value: Any, kind: str, atype: str | None) -> bool:
    if kind == "str":
        return type(value) is str
    if kind == "float":
        return type(value) is float
    if type(value) is not int or atype is None:
        return False
    lo, hi = INT_RANGES[atype]
    return lo <= value <= hi


def same(a: Any, b: Any) -> bool:
    """Equality that also requires the same type (True is not 1) and the same float bits."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b) or (a != a and b != b)
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def required_int(value: Any, atype: str, game_id: Any, field: str) -> int:
    if not fits(value, "int", atype):
        raise RecordError(f"{value!r} is not an {atype}", game_id=game_id, field=field)
    return value


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
RARE_JSON = tuple(k for k in MOVE_JSON_KEYS if k not in DIRECT_JSON and k not in _IMPLIED_JSON)


_rare_values = operator.itemgetter(*RARE_JSON)


_RARE_NONE = (None,) * len(RARE_JSON)


_POSITION_ITEMS = tuple(_POSITION_JSON.items())


def decompose_move_json(d: dict, m: dict) -> None:
    """Spread the parsed ``move_json`` over the move record ``m`` (typed fields, overflow keys, ``rr_json``).

    Exact: :func:`move_json_value` of the result rebuilds ``d`` with the same values in the same key order.
    """
    if tuple(d) != MOVE_JSON_KEYS:
        _decompose_any_keys(d, m)
        return
    over: dict[str, Any] = {}
    rare = _rare_values(d)
    if rare != _RARE_NONE:
        for k, v in zip(RARE_JSON, rare):
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
        if type(v) is not type(w) or (v != w if type(v) is not float else not same(v, w)):
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
        if k in DIRECT_JSON:
            if v is None:
                continue
            if k in _POSITION_JSON:
                ok = _valid_position(v)
            elif k == "id":
                ok = type(v) is str
            else:
                ok = type(v) is int and _INT16[0] <= v <= _INT16[1]
            if ok:
                m[DIRECT_JSON[k]] = v
            else:
                over[k] = v
        elif k in _IMPLIED_JSON:
            if not same(v, _implied(m, k)):
                over[k] = v
        elif k in JSON_RESERVED or k.startswith("rr_"):
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
    return dumps(move_json_value(m), STYLE["move_json"])


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
        elif k in DIRECT_JSON:
            d[k] = m.get(DIRECT_JSON[k])
        elif k in _IMPLIED_JSON:
            d[k] = _implied(m, k)
        else:
            d[k] = m.get(k)
    if keys is None:  # records not imported from SQLite: their unknown keys join the move JSON
        for k, v in m.items():
            if k not in d and k not in JSON_RESERVED and not k.startswith("rr_"):
                d[k] = v
    return d


def _py_finite_floats(d: dict) -> bool:
    """Every value of ``d`` is a finite float (the reference of ``_rrjson.finite_floats``)."""
    vals = list(d.values())
    return all(type(v) is float for v in vals) and all(map(math.isfinite, vals))


def _py_search_maps(q: dict, vc: dict, pp: dict) -> bool:
    """The usual search statistics: one key list, float q and prior, int32 visits (the reference of ``_rrjson.search_maps``)."""
    if not q:
        return False
    keys = list(q)
    lo, hi = INT_RANGES["int32"]
    vcs = list(vc.values())
    return (
        list(vc) == keys and list(pp) == keys
        and set(map(type, q.values())) == _FLOAT_ONLY and set(map(type, pp.values())) == _FLOAT_ONLY
        and set(map(type, vcs)) == _INT_ONLY and lo <= min(vcs) and max(vcs) <= hi
    )  # fmt: skip


_policy_text, _search_text = policy_text, search_text  # None: the reference path only (tests switch them off)

try:
    from ._rrjson import finite_floats as _finite_floats, search_maps as _search_maps
except ImportError:  # pragma: no cover - extension not built: the reference checks
    _finite_floats, _search_maps = _py_finite_floats, _py_search_maps


def parse_policy(text: Any) -> tuple[Mapping, str] | None:
    if type(text) is not str:
        return None
    if _policy_text is not None:  # compiled: straight into the encoder's columns when proven exact
        cols = _policy_text(text)
        if cols is not None:
            return cols, STYLE["move_probs"]
    parsed = parse_styled(text, STYLE["move_probs"])
    if parsed is None or type(parsed[0]) is not dict or not parsed[0] or not _finite_floats(parsed[0]):
        return None
    return parsed


def parse_search(text: Any) -> tuple[Mapping, list | None, str] | None:
    if type(text) is not str:
        return None
    if _search_text is not None:
        cols = _search_text(text)
        if cols is not None:  # RingRift's key order (no rr_search_keys), the default style
            return cols, None, STYLE["search_stats_json"]
    parsed = parse_styled(text, STYLE["search_stats_json"])
    if parsed is None or type(parsed[0]) is not dict:
        return None
    s, style = parsed
    q, vc, pp = s.get("q_values"), s.get("visit_counts"), s.get("prior_policy")
    if type(q) is dict and type(vc) is dict and type(pp) is dict and _search_maps(q, vc, pp):  # the usual shape
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
        if v is not None and (type(v) is not typ or (atype and not fits(v, "int", atype))):
            return None
    if tuple(s) == SEARCH_KEYS:
        return s, None, style
    keys = list(s)
    return s, (None if keys == search_key_order(s) else keys), style


_INT_ONLY = {int}


_FLOAT_ONLY = {float}


def search_key_order(s: Mapping) -> list[str]:
    return [k for k in SEARCH_KEYS if k in s] + [k for k in s if k not in SEARCH_KEYS]


def encode_state_cell(
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


def render_state_cell(state: Any, meta: Mapping, move_texts: Sequence[str]) -> Any:
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


def snapshot_to_record(row: tuple, move_texts: Sequence[str], game_id: str) -> dict:
    _, move_number, state_json, compressed, state_hash = row
    snap: dict[str, Any] = {"move_number": required_int(move_number, "int32", game_id, "snapshots.move_number")}
    state, meta = encode_state_cell(state_json, compressed, move_texts, strip=True, hint=_hint(move_number, 1))
    snap["state"] = state
    if state_hash is not None:
        if type(state_hash) is str:
            snap["state_hash"] = state_hash
        else:
            meta["h"] = tag(state_hash)
    if meta:
        snap["rr"] = meta
    return snap


def choice_or_nnue(table: str, row: tuple, game_id: str) -> dict:
    cols = COLUMNS[table]
    mn = row[1]
    return {
        "move_number": mn if fits(mn, "int", "int32") else 0,
        "state": None,
        "rr_table": table,
        "rr_row": {c: tag(v) for c, v in zip(cols[1:], row[1:]) if v is not None},
    }


def history_to_records(rows: Sequence[tuple], move_texts: Sequence[str], game_id: str) -> list[dict]:
    out = []
    prev_after: Any = None
    ib, ia, ic = (_HIST_COLS.index(c) for c in (*_HIST_STATE_COLS, "compressed_states"))
    for row in rows:
        mn = row[1]
        entry: dict[str, Any] = {
            "move_number": mn if fits(mn, "int", "int32") else 0,
            "rr_table": "game_history_entries",
            "rr_row": {c: tag(v) for c, v in zip(_HIST_COLS[1:], row[1:]) if v is not None and c not in _HIST_STATE_COLS},
        }
        before, after = row[ib], row[ia]
        state, meta = (
            (None, {})
            if after is None
            else encode_state_cell(after, row[ic], move_texts, strip=True, hint=_hint(mn, 1))
        )
        meta.pop("c", None)
        entry["state"] = state
        if after is not None:
            entry["rr_after"] = meta
        if before is not None:
            if prev_after is not None and before == prev_after and type(before) is type(prev_after):
                entry["rr_before"] = {"ref": "prev_after"}
            else:
                bstate, bmeta = encode_state_cell(before, row[ic], move_texts, strip=True, hint=_hint(mn, 0))
                bmeta.pop("c", None)
                bmeta["state"] = dict(bstate) if isinstance(bstate, JSONText) else bstate  # nested: a plain value
                entry["rr_before"] = bmeta
        prev_after = after
        out.append(entry)
    return out


def history_row(game_id: str, s: Mapping, move_texts: Sequence[str], prev_after: Any) -> tuple[tuple, Any]:
    rr = s.get("rr_row") or {}
    vals = {c: untag(v) for c, v in rr.items()}
    vals["game_id"] = game_id
    if "rr_after" in s:
        vals["state_after_json"] = render_state_cell(s.get("state"), s["rr_after"], move_texts)
    before = s.get("rr_before")
    if before is not None:
        if before.get("ref") == "prev_after":
            vals["state_before_json"] = prev_after
        else:
            vals["state_before_json"] = render_state_cell(before.get("state"), before, move_texts)
    return tuple(vals.get(c) for c in _HIST_COLS), vals.get("state_after_json")
