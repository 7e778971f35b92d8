"""Lossless mapping between the rows of one game in a GameReplayDB and a gamestore record.

:func:`rows_to_record` turns the rows of one game (every per-game table,
``GameRows``: table name -> list of row tuples in :data:`tables.COLUMNS`
order) into a game record (``docs/format.md`` section 1);
:func:`record_to_rows` turns the record (as written, or as ``get_game``
returns it) back into the same rows: text equal, blobs byte-equal, floats
bit-equal.  ``docs/ringrift.md`` lists where each column goes; the JSON and
state cells are decomposed and rebuilt in :mod:`gamestore.ringrift.cells`.

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

from typing import Any, Callable, Mapping, Sequence, cast

import numpy as np

from ..errors import RecordError
from ..records import INT_RANGES
from ..schema import GAME_SCALAR_FIELDS, MOVE_SCALAR_FIELDS, PLAYER_FIELDS
from .jsontext import (
    MoveTexts,
    dumps,
    fast_loads,
    parse_styled,
    tag,
    text_matches,
    untag,
)
from .cells import (
    DIRECT_JSON,
    JSON_RESERVED,
    MOVE_JSON_KEYS,
    RARE_JSON,
    STYLE,
    choice_or_nnue,
    decompose_move_json,
    encode_state_cell,
    fits,
    history_row,
    history_to_records,
    move_json_value,
    parse_policy,
    parse_search,
    render_move_json,
    render_state_cell,
    required_int,
    search_key_order,
    snapshot_to_record,
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
    "verbatim_cells",
    "compare_rows",
    "render_move_json",
    "move_json_value",
]

GameRows = dict  # table name -> list of row tuples (columns of tables.COLUMNS)

HEURISTIC_FEATURES = "heuristic_features"
#: The vector declaration an import store needs.
RINGRIFT_VECTORS = {HEURISTIC_FEATURES: {"shape": [49], "dtype": "float32"}}
_HF_BYTES = 49 * 4
_F32_LE = np.dtype("<f4")


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
        if fits(v, kind, atype):
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
        parsed = parse_styled(meta_text, STYLE["metadata_json"]) if type(meta_text) is str else None
        if parsed is None or parsed[0] is None:
            rec["rr_metadata"] = {"raw": tag(meta_text)}
        else:
            rec["metadata"] = parsed[0]
            if parsed[1] != STYLE["metadata_json"]:
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
    features: list[tuple[dict, bytes]] = []
    for r in rows.get("game_moves", ()):
        m, text = _move_record(r, game_id, features)
        moves.append(m)
        move_texts.append(text)
    if features:
        _fill_features(features)
    rec["moves"] = moves

    init_rows = rows.get("game_initial_state", ())
    if len(init_rows) > 1:
        raise RecordError("more than one initial state", game_id=game_id, field="initial_state")
    if init_rows:
        _, text, compressed = init_rows[0]
        value, meta = encode_state_cell(text, compressed, move_texts, strip=False)
        if value is None and type(meta.get("raw")) is dict:  # verbatim bytes: keep them as the blob
            value = untag(meta.pop("raw"))
        if value is not None:
            rec["initial_state"] = value
        if meta or value is None:
            rec["rr_initial"] = meta

    snaps = [snapshot_to_record(r, move_texts, game_id) for r in rows.get("game_state_snapshots", ())]
    snaps += [choice_or_nnue(t, r, game_id) for t in ("game_choices", "game_nnue_features") for r in rows.get(t, ())]
    snaps += history_to_records(rows.get("game_history_entries", ()), move_texts, game_id)
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
        if fits(v, kind, atype):
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


def _py_move_fields(row: tuple, m: dict, typed: tuple) -> dict | None:
    """Put the typed columns of ``row`` that fit into ``m``; return the others tagged, or None (the reference
    of ``_rrmove.move_fields``).  ``typed``: :data:`_MOVE_TYPED_FAST`."""
    cells = None
    for i, col, typ, lo, hi in typed:  # fits, inlined
        v = row[i]
        if v is None:
            continue
        if type(v) is typ and (lo is None or lo <= v <= hi):
            m[col] = v
        else:
            if cells is None:
                cells = {}
            cells[col] = tag(v)
    return cells


_move_json_fields: Callable[[str, dict], bool] | None
try:  # the same in C (tests/test_ringrift_rrmove.py)
    from ._rrmove import (
        decompose_move_json as _decompose_move_json,
        move_fields as _move_fields,
        move_json_fields as _move_json_fields,
    )
except ImportError:  # pragma: no cover - extension not built: the references
    _decompose_move_json, _move_fields, _move_json_fields = decompose_move_json, _py_move_fields, None


def _fill_features(features: list[tuple[dict, bytes]]) -> None:
    """Put each ``heuristic_features`` blob into its (empty) vectors dict as a float32 array: one array for the
    game, one row of it per move (an array per move cost ~2 us: a ~2% of an import's CPU)."""
    block = np.frombuffer(bytearray(b"".join([blob for _, blob in features])), dtype=_F32_LE)
    block = block.astype(np.float32, copy=False).reshape(len(features), _HF_BYTES // 4)
    for (vectors, _), vec in zip(features, block):
        vectors[HEURISTIC_FEATURES] = vec


def _move_to_record(row: tuple, game_id: str, features: list[tuple[dict, bytes]]) -> tuple[dict, str]:
    """The move record of a ``game_moves`` row, and its ``move_json`` text as export renders it (the reference
    of ``_rrmove.move_record``).

    A ``heuristic_features`` blob of the declared size goes to ``features`` with the move's vectors dict,
    for :func:`_fill_features`."""
    m: dict[str, Any] = {"move_number": required_int(row[1], "int32", game_id, "moves.move_number")}
    cells = _move_fields(row, m, _MOVE_TYPED_FAST) or {}
    if cells:
        m["rr_cells"] = cells
    texts: dict[str, Any] = {}
    styles: dict[str, str] = {}

    mj = row[_MI["move_json"]]
    if mj is None:
        texts["move_json"] = None
    elif _move_json_fields is not None and type(mj) is str and _move_json_fields(mj, m):
        pass  # parsed straight into the record, proven exact (the same record as the reference below)
    else:
        _split_move_json(mj, m, texts)
    move_text = mj if type(mj) is str else ""

    mp = row[_MI["move_probs"]]
    if mp is not None:
        policy = parse_policy(mp)
        if policy is None:
            texts["move_probs"] = tag(mp)
        else:
            m["policy"], style = policy
            if style != STYLE["move_probs"]:
                styles["move_probs"] = style

    ss = row[_MI["search_stats_json"]]
    if ss is not None:
        search = parse_search(ss)
        if search is None:
            texts["search_stats_json"] = tag(ss)
        else:
            m["search"], keys, style = search
            if keys is not None:
                m["rr_search_keys"] = keys
            if style != STYLE["search_stats_json"]:
                styles["search_stats_json"] = style

    hf = row[_MI["heuristic_features"]]
    if hf is not None:
        if type(hf) is bytes and len(hf) == _HF_BYTES:
            vectors: dict[str, Any] = {}
            m["vectors"] = vectors
            features.append((vectors, hf))
        else:
            cells["heuristic_features"] = tag(hf)
            m["rr_cells"] = cells
    if texts:
        m["rr_text"] = texts
    if styles:
        m["rr_style"] = styles
    return m, move_text


def _split_move_json(mj: Any, m: dict, texts: dict) -> None:
    """Split a ``move_json`` cell into ``m`` through orjson, the style check and ``decompose_move_json``; keep it
    verbatim in ``texts`` when that is not exact."""
    nan_free = False
    try:
        parsed, nan_free = fast_loads(mj) if type(mj) is str and mj[:1] == "{" else (None, False)
    except ValueError:
        parsed = None
    if type(parsed) is dict:
        _decompose_move_json(parsed, m)
    # the decomposition is exact (move_json_value(m) gives ``parsed`` back, same objects in the same
    # order: see decompose_move_json), so checking the text against ``parsed`` checks the record
    if type(parsed) is not dict or not text_matches(parsed, mj, STYLE["move_json"], nan_free=nan_free):
        for k in [k for k in m if k not in _MOVE_BASE_KEYS]:
            del m[k]  # undo the decomposition: keep the text verbatim
        texts["move_json"] = tag(mj)


def verbatim_cells(rec: Mapping) -> int:
    """How many JSON/state cells of a record are kept as verbatim text (their split could not be proven exact)."""
    n = sum(len(m["rr_text"]) for m in rec.get("moves") or () if "rr_text" in m)
    n += sum(1 for s in rec.get("snapshots") or () if "raw" in (s.get("rr") or {}))
    n += "raw" in (rec.get("rr_initial") or {})
    return n + ("raw" in (rec.get("rr_metadata") or {}))


_MOVE_BASE_KEYS = {"move_number", "rr_cells"} | {c for _, c, _, _ in _MOVE_TYPED}
_PYTYPES = {"str": str, "float": float, "int": int}
#: (column index, column, Python type, int low, int high) of each typed move column
_MOVE_TYPED_FAST = cast(
    "tuple[tuple[int, str, type, Any, Any], ...]",
    tuple((i, c, _PYTYPES[k]) + ((None, None) if k != "int" else INT_RANGES[a]) for i, c, k, a in _MOVE_TYPED),
)


_move_record: Callable[[tuple, str, list], tuple[dict, str]] = _move_to_record
if _move_json_fields is not None:  # the whole row in C (tests/test_ringrift_fastpath.py)
    from . import _rrmove
    from .textcols import COLUMN_PARSERS

    _rrmove.configure(_MOVE_TYPED_FAST, _MI, _HF_BYTES, required_int, _split_move_json, parse_policy, parse_search,
                      STYLE, COLUMN_PARSERS)
    _move_record = _rrmove.move_record


# What makes the decomposition exact: the rebuilt move_json takes every key from where it was put, and no
# typed field of a move record is mistaken for an unknown move_json key (nor an overflow key for a reserved one).
assert not set(RARE_JSON) & JSON_RESERVED
assert {c for _, c, _, _ in _MOVE_TYPED} | set(DIRECT_JSON.values()) <= JSON_RESERVED


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
            cell = render_state_cell(state, meta, move_texts)
        out["game_initial_state"].append((game_id, cell, untag(meta["c"]) if "c" in meta else 0))
    prev_after: Any = None
    for s in rec.get("snapshots") or ():
        table = s.get("rr_table")
        if table is None:
            meta = s.get("rr") or {}
            cell = render_state_cell(s.get("state"), meta, move_texts)
            state_hash = s.get("state_hash", untag(meta["h"]) if "h" in meta else None)
            out["game_state_snapshots"].append(
                (game_id, s["move_number"], cell, untag(meta["c"]) if "c" in meta else 0, state_hash)
            )
        elif table == "game_history_entries":
            row, prev_after = history_row(game_id, s, move_texts, prev_after)
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
        vals["metadata_json"] = dumps(rec["metadata"], meta.get("st", STYLE["metadata_json"]))
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
        vals["move_probs"] = dumps(m["policy"], styles.get("move_probs", STYLE["move_probs"]))
    if "search_stats_json" in texts:
        vals["search_stats_json"] = untag(texts["search_stats_json"])
    elif m.get("search") is not None:
        s = m["search"]
        keys = m.get("rr_search_keys") or search_key_order(s)
        vals["search_stats_json"] = dumps(
            {k: s[k] for k in keys}, styles.get("search_stats_json", STYLE["search_stats_json"])
        )
    if "heuristic_features" in cells:
        vals["heuristic_features"] = untag(cells["heuristic_features"])
    else:
        vec = (m.get("vectors") or {}).get(HEURISTIC_FEATURES)
        if vec is not None:
            vals["heuristic_features"] = np.asarray(vec, dtype="<f4").tobytes()
    return tuple(vals.get(c) for c in _MOVE_COLS), move_json


