"""The record model: validation and the canonical form of game records.

A game record is a plain ``dict`` (see ``docs/format.md`` for every key).
:func:`normalize_game` validates one and returns its *canonical form*:
known fields whose value is ``None`` are dropped, numbers are coerced to
the kind of their field (an int probability becomes a float), positions
become ``{"x", "y", "z"}`` dicts, JSON values become what ``json`` parses
back, vectors become numpy arrays of the declared dtype and shape, and keys
gamestore does not know are kept as they are.  ``store.get_game(id)``
returns exactly the canonical form of what was written.

This module is the Python layer that validates; the pure-Python encoder
uses it move by move, the Cython encoder performs the same checks inline
and the test-suite proves both raise the same errors.
"""
from __future__ import annotations

import json
import math
from typing import AbstractSet, Any, Iterable, Mapping

import numpy as np
import orjson  # a core dependency: speeds json_canonical up; json stays the reference
import pyarrow as pa

from .errors import RecordError
from .rawjson import JSONText
from .schema import (
    GAME_SCALAR_FIELDS,
    MOVE_SCALAR_FIELDS,
    PLAYER_FIELDS,
    POSITION_FIELDS,
    SEARCH_MAPS,
    SEARCH_SCALARS,
    VectorSpec,
)

__all__ = [
    "normalize_game",
    "normalize_header",
    "normalize_move",
    "check_scalar",
    "json_canonical",
    "dump_json",
    "dump_canonical_json",
    "games_equal",
]

INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


def _int_range(arrow_type: pa.DataType) -> tuple[int, int]:
    return INT_RANGES[str(arrow_type)]


#: JSON values nested deeper than this are rejected (a reader must be able to parse them back).
MAX_JSON_DEPTH = 200


def dump_json(value: Any) -> str:
    """The one JSON text encoding used for every JSON column (valid JSON: NaN and infinities are refused)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_DIGITS = frozenset(b"0123456789")


def _orjson_text_is_json(ob: bytes) -> bool:
    """True when orjson's text ``ob`` is provably what ``dump_json`` writes for the same value.

    The two differ only in float spellings: exponents (orjson 1e-7 / Python 1e-07; every float orjson writes
    has a "." or an "e+"/"e-"), decimals below 1e-4 (orjson 0.00001, Python 1e-05) and 17+ integer digits
    (Python switches to 1e+16).  Ints and strings are spelled and escaped alike (every code point checked in
    tests/test_ringrift_jsonfast.py); a float-like run inside a string only costs the slow path.
    """
    for mark in (b"e+", b"e-"):
        i = ob.find(mark)
        while i > 0:
            if ob[i - 1] in _DIGITS:
                return False
            i = ob.find(mark, i + 1)
    i = ob.find(b".")
    while i >= 0:
        j = i
        while j > 0 and ob[j - 1] in _DIGITS:
            j -= 1
        if i - j > 16 or ob.startswith(b"0.0000", j):
            return False
        i = ob.find(b".", i + 1)
    return True


def dump_canonical_json(value: Any) -> str:
    """``dump_json(value)`` of a value :func:`json_canonical` returned (no NaN or infinity: orjson writes them as null).

    orjson's text (~10x faster) whenever it is provably the same text, else ``dump_json``'s.
    A :class:`~gamestore.rawjson.JSONText` is its own text.
    """
    if type(value) is JSONText:
        return value.text
    try:
        ob = orjson.dumps(value)
    except (TypeError, ValueError):  # big ints, non-str keys, ...: json decides
        return dump_json(value)
    return ob.decode() if _orjson_text_is_json(ob) else dump_json(value)


def check_text(value: str, *, game_id: object, field: str) -> str:
    """``value`` when it can be stored as UTF-8 (no lone surrogates)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RecordError(f"not valid Unicode text: {exc.reason} at {exc.start}", game_id=game_id, field=field) from None
    return value


def json_canonical(value: Any, *, game_id: object, field: str) -> Any:
    """Validate that ``value`` is JSON (string keys only) and return it as JSON parses it back.

    NaN and infinities are rejected (JSON has no such numbers), as are lone
    surrogates in strings and nesting deeper than :data:`MAX_JSON_DEPTH`.
    A :class:`~gamestore.rawjson.JSONText` is returned as it is (its text is canonical by construction).
    """
    if type(value) is JSONText:
        return value
    # fast path (orjson): same result whenever orjson's round trip gives back an equal value
    try:
        back = orjson.loads(orjson.dumps(value))
    except (TypeError, ValueError):  # non-str keys, big ints, unsupported types: the json path decides
        pass
    else:
        if back == value and _plain_json(value):
            return back
    try:
        text = dump_json(_check_json_keys(value, game_id, field, 0))
    except (TypeError, ValueError, RecursionError) as exc:
        raise RecordError(f"not JSON-serialisable: {exc}", game_id=game_id, field=field) from None
    check_text(text, game_id=game_id, field=field)
    return json.loads(text)


def _plain_json(value: Any) -> bool:
    """True for a dict/list/str/int/float/bool/None (top level): NaN and tuples never compare equal after a round trip."""
    return type(value) in (dict, list, str, int, float, bool) or value is None


def _check_json_keys(value: Any, game_id: object, field: str, depth: int) -> Any:
    if isinstance(value, (dict, list, tuple)) and depth >= MAX_JSON_DEPTH:
        raise RecordError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", game_id=game_id, field=field)
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise RecordError(f"JSON object keys must be str, got {k!r}", game_id=game_id, field=field)
            _check_json_keys(v, game_id, f"{field}.{k}", depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json_keys(v, game_id, f"{field}[{i}]", depth + 1)
    return value


def check_scalar(value: Any, kind: str, arrow_type: pa.DataType, *, game_id: object, field: str) -> Any:
    """Check one typed scalar (not None) and return it coerced to its kind."""
    if kind == "str":
        if not isinstance(value, str):
            raise RecordError(f"expected str, got {type(value).__name__}", game_id=game_id, field=field)
        return check_text(value, game_id=game_id, field=field)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise RecordError(f"expected int, got {type(value).__name__}", game_id=game_id, field=field)
        lo, hi = _int_range(arrow_type)
        value = int(value)
        if not lo <= value <= hi:
            raise RecordError(f"{value} out of range for {arrow_type}", game_id=game_id, field=field)
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise RecordError(f"expected a number, got {type(value).__name__}", game_id=game_id, field=field)
        return float(value)
    raise AssertionError(kind)


def _check_string_key(d: Mapping[str, Any], key: str, game_id: object, field: str) -> None:
    if not isinstance(key, str):
        raise RecordError(f"keys must be str, got {key!r}", game_id=game_id, field=field)


# ---------------------------------------------------------------------------
# Game level
# ---------------------------------------------------------------------------


def _fast_scalars(fields: Iterable[tuple[str, pa.DataType, str]]) -> dict[str, tuple[Any, int, int, pa.DataType, str]]:
    """Per field: (the exact type ``check_scalar`` returns unchanged, int bounds, arrow type, kind).

    The header loops take a value of exactly that type (an int within its bounds, an ASCII str) as it is, which is
    what ``check_scalar`` returns for it, without the call (~1 us a field, ~30 fields a game); anything else
    goes through ``check_scalar``.
    """
    out = {}
    for name, atype, kind in fields:
        lo, hi = _int_range(atype) if kind == "int" else (0, 0)
        out[name] = ({"str": str, "int": int, "float": float}[kind], lo, hi, atype, kind)
    return out


_GAME_FAST = _fast_scalars(GAME_SCALAR_FIELDS)
_PLAYER_FAST = _fast_scalars(PLAYER_FIELDS)


def normalize_header(record: Any, *, board_types: frozenset[str] | None = None) -> dict[str, Any]:
    """Validate and canonicalise every game-level field (everything but ``moves``).

    Returns the canonical dict without the ``moves`` key.
    """
    if not isinstance(record, Mapping):
        raise RecordError(f"a game record must be a mapping, got {type(record).__name__}")
    game_id = record.get("game_id")
    if game_id is None:
        raise RecordError("missing game_id", field="game_id")
    if not isinstance(game_id, str) or not game_id:
        raise RecordError("game_id must be a non-empty str", game_id=game_id, field="game_id")
    check_text(game_id, game_id=game_id, field="game_id")
    out: dict[str, Any] = {}
    for key, value in record.items():
        if not isinstance(key, str):
            raise RecordError(f"record keys must be str, got {key!r}", game_id=game_id)
        if key == "moves":
            continue
        spec = _GAME_FAST.get(key)
        if spec is not None:
            if value is not None:
                t, x = spec[0], value
                if type(x) is t and (x.isascii() if t is str else t is float or spec[1] <= x <= spec[2]):
                    out[key] = x  # what check_scalar returns for it
                else:
                    out[key] = check_scalar(value, spec[4], spec[3], game_id=game_id, field=key)
        elif key == "players":
            if value is not None:
                players = _normalize_players(value, game_id)
                if players:
                    out["players"] = players
        elif key == "snapshots":
            if value is not None:
                snaps = _normalize_snapshots(value, game_id)
                if snaps:
                    out["snapshots"] = snaps
        elif key == "initial_state":
            if isinstance(value, (bytes, bytearray, memoryview)):
                out[key] = bytes(value)
            elif value is not None:
                out[key] = json_canonical(value, game_id=game_id, field=key)
        elif key == "metadata":
            if value is not None:
                out[key] = json_canonical(value, game_id=game_id, field=key)
        else:  # unknown keys are kept verbatim (as JSON)
            check_text(key, game_id=game_id, field=repr(key))
            out[key] = json_canonical(value, game_id=game_id, field=key)
    for required in ("board_type", "num_players"):
        if required not in out:
            raise RecordError(f"missing {required}", game_id=game_id, field=required)
    if not out["board_type"]:
        raise RecordError("board_type must be non-empty", game_id=game_id, field="board_type")
    if board_types is not None and out["board_type"] not in board_types:
        raise RecordError(
            f"unknown board type {out['board_type']!r} (known: {', '.join(sorted(board_types))})",
            game_id=game_id,
            field="board_type",
        )
    if out["num_players"] < 1:
        raise RecordError("num_players must be >= 1", game_id=game_id, field="num_players")
    return out


def _normalize_players(value: Any, game_id: object) -> list[dict[str, Any]]:
    if not isinstance(value, (list, tuple)):
        raise RecordError("players must be a list of dicts", game_id=game_id, field="players")
    players = []
    for i, p in enumerate(value):
        field = f"players[{i}]"
        if not isinstance(p, Mapping):
            raise RecordError("a player must be a dict", game_id=game_id, field=field)
        out = {}
        for k, v in p.items():
            _check_string_key(p, k, game_id, field)
            spec = _PLAYER_FAST.get(k)
            if spec is not None:
                if v is not None:
                    t, x = spec[0], v
                    if type(x) is t and (x.isascii() if t is str else t is float or spec[1] <= x <= spec[2]):
                        out[k] = x  # what check_scalar returns for it (normalize_header)
                    else:
                        out[k] = check_scalar(v, spec[4], spec[3], game_id=game_id, field=f"{field}.{k}")
            else:
                check_text(k, game_id=game_id, field=f"{field}.{k!r}")
                out[k] = json_canonical(v, game_id=game_id, field=f"{field}.{k}")
        if "player_number" not in out:
            raise RecordError("missing player_number", game_id=game_id, field=f"{field}.player_number")
        players.append(out)
    return players


def _normalize_snapshots(value: Any, game_id: object) -> list[dict[str, Any]]:
    if not isinstance(value, (list, tuple)):
        raise RecordError("snapshots must be a list of dicts", game_id=game_id, field="snapshots")
    snaps = []
    for i, s in enumerate(value):
        field = f"snapshots[{i}]"
        if not isinstance(s, Mapping):
            raise RecordError("a snapshot must be a dict", game_id=game_id, field=field)
        if "move_number" not in s or "state" not in s:
            raise RecordError("a snapshot needs move_number and state", game_id=game_id, field=field)
        out = {}
        for k, v in s.items():
            _check_string_key(s, k, game_id, field)
            if k == "move_number":
                out[k] = check_scalar(v, "int", "int32", game_id=game_id, field=f"{field}.move_number")
            elif k == "state_hash":
                if v is not None:
                    out[k] = check_scalar(v, "str", None, game_id=game_id, field=f"{field}.state_hash")
            else:
                check_text(k, game_id=game_id, field=f"{field}.{k!r}")
                out[k] = json_canonical(v, game_id=game_id, field=f"{field}.{k}")
        snaps.append(out)
    return snaps


# ---------------------------------------------------------------------------
# Move level
# ---------------------------------------------------------------------------
_MOVE_SCALARS = {k: (t, kind) for k, _, t, kind in MOVE_SCALAR_FIELDS}
_POSITION_KEYS = {k for k, _ in POSITION_FIELDS}
_SEARCH_MAP_KEYS = {k for k, _ in SEARCH_MAPS}
_SEARCH_SCALAR_KEYS = {k: (t, kind) for k, _, t, kind, _ in SEARCH_SCALARS}


def normalize_position(value: Any, *, game_id: object, field: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        if set(value) - {"x", "y", "z"} or "x" not in value or "y" not in value:
            raise RecordError("a position is {x, y[, z]}", game_id=game_id, field=field)
        x, y, z = value["x"], value["y"], value.get("z")
    elif isinstance(value, (tuple, list)) and len(value) in (2, 3):
        x, y = value[0], value[1]
        z = value[2] if len(value) == 3 else None
    else:
        raise RecordError("a position is {x, y[, z]} or (x, y[, z])", game_id=game_id, field=field)
    out = {
        "x": check_scalar(x, "int", "int16", game_id=game_id, field=f"{field}.x"),
        "y": check_scalar(y, "int", "int16", game_id=game_id, field=f"{field}.y"),
        "z": None if z is None else check_scalar(z, "int", "int16", game_id=game_id, field=f"{field}.z"),
    }
    return out


def _check_candidate_key(k: Any, game_id: object, field: str) -> Any:
    if isinstance(k, str):
        return check_text(k, game_id=game_id, field=field)
    if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
        return check_scalar(k, "int", "int32", game_id=game_id, field=f"{field}[{k!r}]")
    raise RecordError(f"candidate keys are str or int, got {k!r}", game_id=game_id, field=field)


def normalize_policy(value: Any, *, game_id: object, field: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise RecordError("a policy is a mapping candidate -> probability", game_id=game_id, field=field)
    out = {}
    for k, p in value.items():
        k = _check_candidate_key(k, game_id, field)
        if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
            raise RecordError(f"probability of {k!r} is not a number: {p!r}", game_id=game_id, field=field)
        p = float(p)
        if not math.isfinite(p):
            raise RecordError(f"probability of {k!r} is not finite: {p!r}", game_id=game_id, field=field)
        out[k] = p
    return out


def normalize_search(value: Any, *, game_id: object, field: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise RecordError("search statistics must be a mapping", game_id=game_id, field=field)
    out: dict[str, Any] = {}
    for key, v in value.items():
        if not isinstance(key, str):
            raise RecordError(f"keys must be str, got {key!r}", game_id=game_id, field=field)
        sub = f"{field}.{key}"
        if key in _SEARCH_MAP_KEYS and v is not None:
            if not isinstance(v, Mapping):
                raise RecordError("must be a mapping candidate -> number", game_id=game_id, field=sub)
            kind, atype = ("int", "int32") if key == "visit_counts" else ("float", None)
            out[key] = {
                _check_candidate_key(k, game_id, sub): check_scalar(x, kind, atype, game_id=game_id, field=f"{sub}[{k!r}]")
                for k, x in v.items()
            }
        elif key in _SEARCH_SCALAR_KEYS and v is not None:
            atype, kind = _SEARCH_SCALAR_KEYS[key]
            out[key] = check_scalar(v, kind, atype, game_id=game_id, field=sub)
        else:
            check_text(key, game_id=game_id, field=f"{field}.{key!r}")
            out[key] = json_canonical(v, game_id=game_id, field=sub)
    return out


def normalize_vector(value: Any, spec: VectorSpec, *, game_id: object, field: str) -> np.ndarray:
    try:
        with np.errstate(over="ignore"):  # a narrower declared dtype is the caller's request
            arr = np.asarray(value, dtype=spec.numpy_dtype)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"not a numeric array: {exc}", game_id=game_id, field=field) from None
    if arr.size != spec.size:
        raise RecordError(
            f"expected {spec.size} values (shape {spec.shape}), got {arr.size}", game_id=game_id, field=field
        )
    return np.ascontiguousarray(arr.reshape(spec.shape))


def normalize_move(
    move: Any,
    index: int,
    *,
    game_id: object,
    vectors: Mapping[str, VectorSpec],
    previous_number: int | None = None,
) -> dict[str, Any]:
    """Validate and canonicalise one move (``index`` is its position in the game)."""
    field = f"moves[{index}]"
    if not isinstance(move, Mapping):
        raise RecordError(f"a move must be a mapping, got {type(move).__name__}", game_id=game_id, field=field)
    out: dict[str, Any] = {}
    number = move.get("move_number")
    if number is None:
        number = index if previous_number is None else previous_number + 1
    out["move_number"] = check_scalar(number, "int", "int32", game_id=game_id, field=f"{field}.move_number")
    if previous_number is not None and out["move_number"] <= previous_number:
        raise RecordError(
            f"move_number {out['move_number']} does not increase (previous {previous_number})",
            game_id=game_id,
            field=f"{field}.move_number",
        )
    for key, value in move.items():
        if not isinstance(key, str):
            raise RecordError(f"move keys must be str, got {key!r}", game_id=game_id, field=field)
        sub = f"{field}.{key}"
        if key == "move_number":
            continue
        if key in _MOVE_SCALARS:
            if value is not None:
                atype, kind = _MOVE_SCALARS[key]
                out[key] = check_scalar(value, kind, atype, game_id=game_id, field=sub)
        elif key in _POSITION_KEYS:
            if value is not None:
                out[key] = normalize_position(value, game_id=game_id, field=sub)
        elif key == "policy":
            if value is not None:
                out[key] = normalize_policy(value, game_id=game_id, field=sub)
        elif key == "search":
            if value is not None:
                out[key] = normalize_search(value, game_id=game_id, field=sub)
        elif key == "vectors":
            if value:
                if not isinstance(value, Mapping):
                    raise RecordError("vectors must be a mapping name -> array", game_id=game_id, field=sub)
                vecs = {}
                for name, arr in value.items():
                    if arr is None:
                        continue
                    if name not in vectors:
                        raise RecordError(f"vector {name!r} is not declared", game_id=game_id, field=f"{sub}.{name}")
                    vecs[name] = normalize_vector(arr, vectors[name], game_id=game_id, field=f"{sub}.{name}")
                if vecs:
                    out[key] = vecs
        else:
            check_text(key, game_id=game_id, field=f"{field}.{key!r}")
            out[key] = json_canonical(value, game_id=game_id, field=sub)
    return out


def normalize_game(
    record: Any,
    *,
    vectors: Mapping[str, VectorSpec] | None = None,
    board_types: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Validate a whole game record and return its canonical form."""
    out = normalize_header(record, board_types=board_types)
    game_id = out["game_id"]
    moves = record.get("moves")
    if moves is None:
        moves = []
    if not isinstance(moves, (list, tuple)):
        raise RecordError("moves must be a list", game_id=game_id, field="moves")
    vectors = vectors or {}
    norm = []
    prev = None
    for i, m in enumerate(moves):
        nm = normalize_move(m, i, game_id=game_id, vectors=vectors, previous_number=prev)
        prev = nm["move_number"]
        norm.append(nm)
    out["moves"] = norm
    return out


def undeclared_vectors(moves: Iterable[Any], declared: AbstractSet[str]) -> dict[str, Any]:
    """The first value seen for each vector name in ``moves`` not in ``declared`` (for auto-declaration)."""
    seen: dict[str, Any] = {}
    for m in moves:
        if type(m) is dict or isinstance(m, Mapping):
            vecs = m.get("vectors")
            if not vecs:
                continue
            if type(vecs) is dict and vecs.keys() <= declared:  # the common case, without a Python loop
                continue
            if isinstance(vecs, Mapping):
                for name, arr in vecs.items():
                    if arr is not None and name not in declared and name not in seen:
                        seen[name] = arr
    return seen


def new_vector_specs(records: Iterable[Any], declared: AbstractSet[str]) -> tuple[dict[str, VectorSpec], RecordError | None]:
    """Specs for the vectors ``records`` use that are not in ``declared`` (shape and float dtype of the first value).

    Also returns the error of the first record with an unusable new vector (its ``game_index``
    set); the specs are those of the records before it.
    """
    new: dict[str, VectorSpec] = {}
    for index, rec in enumerate(records):
        moves = rec.get("moves") if isinstance(rec, Mapping) else None
        if not isinstance(moves, (list, tuple)):
            continue
        mine: dict[str, VectorSpec] = {}
        for name, sample in undeclared_vectors(moves, declared).items():
            if name in new:
                continue
            try:
                if not isinstance(name, str):
                    raise TypeError(f"vector names are str, got {type(name).__name__}")
                arr = np.asarray(sample)
                if arr.dtype == object:
                    raise ValueError("not a rectangular numeric array")
                dtype = arr.dtype.name if arr.dtype.name in ("float16", "float32", "float64") else "float32"
                mine[name] = VectorSpec(name, tuple(arr.shape) or (1,), dtype)
            except (TypeError, ValueError) as exc:
                field = f"vectors.{name!r}" if not isinstance(name, str) else f"vectors.{name}"
                err = RecordError(f"cannot declare a vector from it: {exc}", game_id=rec.get("game_id"), field=field)
                return new, err.at_index(index)
        new.update(mine)
    return new, None


def games_equal(a: Any, b: Any) -> bool:
    """Deep equality that compares numpy arrays by dtype, shape and bytes and floats bit for bit."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )
    if isinstance(a, float) and isinstance(b, float):
        return np.float64(a).tobytes() == np.float64(b).tobytes()
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(games_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(games_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b

