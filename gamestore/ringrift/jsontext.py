"""Lossless codecs for GameReplayDB cells: JSON text styles, gzip, tagged SQLite values.

A JSON text column is kept as its parsed value plus the name of the
serialisation *style* that reproduces the text exactly; text no style
reproduces is kept verbatim.  States (snapshots, history entries) are kept
without their embedded ``moveHistory``, which is re-inserted from the
game's move texts when the text is rebuilt.
"""
from __future__ import annotations

import base64
import gzip
import json
import math
from typing import Any, Callable, Mapping, Sequence

from ..rawjson import JSONText
from ..records import dump_json

__all__ = [
    "STYLES",
    "dumps",
    "parse_styled",
    "tag",
    "untag",
    "gzip_params",
    "gzip_apply",
    "encode_state",
    "render_state",
    "MoveTexts",
]

#: Serialisation styles: name -> json.JSONEncoder options.
#: ``c``: pydantic ``model_dump_json`` (compact, UTF-8); ``d``: ``json.dumps``
#: defaults; ``s``: ``json.dumps(..., sort_keys=True)``; the rest are variants.
STYLES: dict[str, dict] = {
    "c": {"separators": (",", ":"), "ensure_ascii": False},
    "d": {},
    "s": {"sort_keys": True},
    "ca": {"separators": (",", ":")},
    "du": {"ensure_ascii": False},
    "cs": {"separators": (",", ":"), "sort_keys": True, "ensure_ascii": False},
    "csa": {"separators": (",", ":"), "sort_keys": True},
    "su": {"sort_keys": True, "ensure_ascii": False},
}
_ENCODERS: dict[str, Callable[[Any], str]] = {name: json.JSONEncoder(**kw).encode for name, kw in STYLES.items()}
_COMPACT = ("c", "ca")
_json_default = _ENCODERS["d"]

try:  # orjson parses about 3x faster; values are the same as json.loads gives
    import orjson as _orjson

    def loads(text: str) -> Any:
        """``json.loads`` (through orjson when installed; json for what orjson refuses, e.g. NaN)."""
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            return json.loads(text)

    _FLOAT_ONLY = {float}
    _INT_ONLY = {int}

    def _float_tokens(values: list) -> list[str]:
        """``repr``-style JSON texts of floats; orjson formats them (both give the shortest round-trip digits)."""
        raw = _orjson.dumps(values)
        toks = raw[1:-1].decode("ascii").split(",")
        mags = list(map(abs, values))
        if b"null" in raw or min(mags) < 1e-4 or max(mags) >= 1e16:
            for i, v in enumerate(values):
                if not 1e-4 <= abs(v) < 1e16 and (v != 0.0 or v != v):  # exponent notation differs; NaN/inf
                    toks[i] = _json_default(v)
        return toks

    def _dumps_default(value: Any) -> str:
        """``json.dumps(value)``, formatted through orjson (json's float repr is slow)."""
        try:
            compact = _orjson.dumps(value).decode("utf-8")
        except (TypeError, _orjson.JSONEncodeError):
            return _json_default(value)
        # orjson's compact text is json.dumps' with the separators tightened, as long as no string needs
        # escaping and no number is written in exponent form (or below 1e-4, where orjson writes 0.0000...)
        if compact.isascii() and "\\" not in compact and "\x7f" not in compact:
            parts = compact.split('"')
            outside = parts[0::2]
            joined = "".join(outside)
            # ("null" may be a NaN or infinity orjson could not write: json writes NaN/Infinity)
            if "e" not in joined and "0.0000" not in joined and "null" not in joined:
                parts[0::2] = [p.replace(",", ", ").replace(":", ": ") for p in outside]
                return '"'.join(parts)
        return _dumps_items(value)

    def _dumps_items(value: Any) -> str:
        t = type(value)
        if t is dict:
            if not value:
                return "{}"
            keys = list(value)
            try:
                joined = "".join(keys)
            except TypeError:  # non-str keys
                return _json_default(value)
            if joined.isascii() and joined.isprintable() and '"' not in joined and "\\" not in joined:
                ks = ['"' + k + '": ' for k in keys]
            else:
                ks = [_json_default(k) + ": " for k in keys]
            vals = list(value.values())
            types = set(map(type, vals))
            if types == _FLOAT_ONLY:
                vs = _float_tokens(vals)
            elif types == _INT_ONLY:
                vs = list(map(str, vals))
            else:
                vs = [_dumps_items(v) for v in vals]
            return "{" + ", ".join([k + v for k, v in zip(ks, vs)]) + "}"
        if t is float:
            return _float_tokens([value])[0]
        if t is list:
            return "[" + ", ".join([_dumps_items(v) for v in value]) + "]"
        return _json_default(value)

    _ENCODERS["d"] = _dumps_default

except ImportError:  # pragma: no cover - depends on the environment

    def loads(text: str) -> Any:
        return json.loads(text)


def dumps(value: Any, style: str) -> str:
    """``value`` as JSON text in ``style`` (a Mapping other than a dict as the dict of its items)."""
    if type(value) is not dict and isinstance(value, Mapping):
        value = dict(value)
    return _ENCODERS[style](value)


# ---------------------------------------------------------------------------
# Fast exact style checks: orjson's dump of the value, compared with the text by _rrjson.styled_equal
# ---------------------------------------------------------------------------
#: style -> (spaced separators, ensure_ascii) for the styles the fast check handles (no sort_keys)
_FAST_STYLES = {"c": (False, False), "ca": (False, True), "d": (True, True), "du": (True, False)}

_styled_equal: Callable[[bytes, bytes, bool, bool], bool] | None
try:
    import orjson as _orj

    from ._rrjson import styled_equal as _styled_equal
except ImportError:  # pragma: no cover - extension not built: every check takes the json path
    _styled_equal = None


def fast_loads(text: str) -> tuple[Any, bool]:
    """``(json.loads(text), nan_free)``: ``nan_free`` when orjson parsed it (orjson refuses NaN/Infinity)."""
    if _styled_equal is not None:
        try:
            return _orj.loads(text), True
        except _orj.JSONDecodeError:
            pass
    return json.loads(text), False


def text_matches(value: Any, text: str, style: str, *, nan_free: bool) -> bool:
    """``dumps(value, style) == text``, proven fast when possible (``nan_free``: ``value`` holds no NaN/infinity)."""
    if nan_free and _styled_equal is not None and style in _FAST_STYLES:
        try:
            ob = _orj.dumps(value)
            tb = text.encode("utf-8")
        except (TypeError, ValueError):  # big ints, lone surrogates, ...: the json path decides
            pass
        else:
            if _styled_equal(ob, tb, *_FAST_STYLES[style]):
                return True
    return type(text) is str and _ENCODERS[style](value) == text


def parse_styled(text: str, default: str) -> tuple[Any, str] | None:
    """Parse ``text``; return ``(value, style)`` for the first style that reproduces it exactly, else None."""
    try:
        value, nan_free = fast_loads(text)
    except ValueError:
        return None
    if text_matches(value, text, default, nan_free=nan_free):
        return value, default
    for style, enc in _ENCODERS.items():
        if style != default and enc(value) == text:
            return value, style
    return None


# ---------------------------------------------------------------------------
# SQLite cells as JSON values
# ---------------------------------------------------------------------------
def tag(value: Any) -> Any:
    """A SQLite cell (None, int, float, str, bytes) as a JSON value that :func:`untag` reverses."""
    if type(value) is bytes:
        return {"$b64": base64.b64encode(value).decode("ascii")}
    if type(value) is float and not math.isfinite(value):
        return {"$f": repr(value)}
    return value


def untag(value: Any) -> Any:
    if type(value) is dict:
        if "$b64" in value:
            return base64.b64decode(value["$b64"])
        if "$f" in value:
            return float(value["$f"])
    return value


# ---------------------------------------------------------------------------
# gzip-compressed cells
# ---------------------------------------------------------------------------
def gzip_params(blob: bytes) -> tuple[str, list[int]] | None:
    """Decompress a gzip member; return ``(text, [level, mtime])`` if recompressing reproduces it byte for byte."""
    if len(blob) < 18 or blob[:3] != b"\x1f\x8b\x08":
        return None
    try:
        data = gzip.decompress(blob)
        text = data.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError, ValueError):
        return None
    mtime = int.from_bytes(blob[4:8], "little")
    for level in (9, 6, 1, 2, 3, 4, 5, 7, 8, 0):
        if gzip.compress(data, compresslevel=level, mtime=mtime) == blob:
            return text, [level, mtime]
    return None


def gzip_apply(text: str, params: Sequence[int]) -> bytes:
    level, mtime = params
    return gzip.compress(text.encode("utf-8"), compresslevel=level, mtime=mtime)


# ---------------------------------------------------------------------------
# Game states without their move history
# ---------------------------------------------------------------------------
_SENTINEL = "\x00rr-move-history\x00"
_SENTINEL_TOKEN = json.dumps(_SENTINEL)  # the same in every style: control chars are always escaped


class MoveTexts(list):
    """A game's ``move_json`` texts, in move order, with the joined history prefix cached."""

    _joined: str = ""
    _ends: list[int] | None = None

    def history(self, n: int) -> str:
        """``",".join(self[:n])`` (cached after the first call; do not append afterwards)."""
        ends = self._history_ends()
        return self._joined[: ends[n - 1]] if n > 0 else ""

    def history_at(self, text: str, pos: int, n: int) -> int:
        """The end of ``history(n)`` in ``text`` when ``text`` holds it at ``pos``, else -1 (compared in place)."""
        size = self._history_ends()[n - 1] if n > 0 else 0
        return pos + size if _span_equal(text, pos, self._joined, 0, size) else -1

    def _history_ends(self) -> list[int]:
        if self._ends is None or len(self._ends) != len(self):
            self._joined = ",".join(self)
            ends, e = [], 0
            for t in self:
                e += len(t)
                ends.append(e)
                e += 1
            self._ends = ends
        return self._ends


def _py_span_equal(a: str, i: int, b: str, j: int, n: int) -> bool:
    """``a[i:i + n] == b[j:j + n]`` with both spans inside their texts (the reference of ``_rrjson.span_equal``)."""
    return 0 <= i and 0 <= j and 0 <= n and i + n <= len(a) and j + n <= len(b) and a[i : i + n] == b[j : j + n]


try:
    from ._rrjson import span_equal as _span_equal
except ImportError:  # pragma: no cover - extension not built: the reference
    _span_equal = _py_span_equal


def _history(move_texts: Sequence[str], n: int) -> str:
    if isinstance(move_texts, MoveTexts):
        return move_texts.history(n)
    return ",".join(move_texts[:n])


def render_state(state: Any, mh: Sequence[int] | None, style: str, move_texts: Sequence[str]) -> str:
    """Rebuild a state's JSON text; ``mh = [at, n]`` re-inserts the first ``n`` move texts as ``moveHistory`` at key index ``at``."""
    if mh is None:
        return _ENCODERS[style](state)
    at, n = mh
    items = list(state.items())
    items.insert(at, ("moveHistory", _SENTINEL))
    text = _ENCODERS[style](dict(items))
    history = "[" + _history(move_texts, n) + "]"
    return text.replace(_SENTINEL_TOKEN, history, 1)


_MH_KEY = '"moveHistory":['


def _strip_history_text(text: str, move_texts: Sequence[str], hint: int | None = None) -> tuple[str, int] | None:
    """``text`` with an embedded history made of the first ``n`` move texts emptied, and ``n`` (a fast path).

    ``hint`` is the likely ``n`` (checked with one comparison before walking move by move).
    """
    i = text.find(_MH_KEY)
    if i < 0:
        return None
    start = pos = i + len(_MH_KEY)
    if hint:  # RingRift stores move_number + 1 moves; some writers move_number
        for guess in (hint, hint - 1):
            if 0 < guess <= len(move_texts):
                if isinstance(move_texts, MoveTexts):
                    end = move_texts.history_at(text, pos, guess)
                else:
                    h = _history(move_texts, guess)
                    end = pos + len(h) if text.startswith(h, pos) else -1
                if end >= 0 and text[end : end + 1] == "]":
                    return text[:start] + text[end:], guess
    n = 0
    while n < len(move_texts):
        mt = move_texts[n]
        if not text.startswith(mt, pos):
            return None
        pos += len(mt)
        n += 1
        c = text[pos : pos + 1]
        if c == "]":
            return text[:start] + text[pos:], n
        if c != ",":
            return None
        pos += 1
    return None


def _history_in_place(value: dict, short: str, text: str, cut: int) -> bool:
    """True when ``render_state`` in style ``c`` of ``value`` (whose ``moveHistory`` is ``[]``) with the cut history is ``text``.

    ``short`` is ``text`` with ``cut`` characters of history removed after the first ``"moveHistory":[``.
    Proven without rendering: ``value`` with the sentinel in place of the empty history dumps (style ``c``)
    to ``short`` with the sentinel token there, and that token is the first one in it.
    """
    i = short.find(_MH_KEY)
    if i < 0 or _SENTINEL_TOKEN in short:
        return False
    at = i + len(_MH_KEY) - 1  # the "[" of the emptied history
    with_sentinel = short[:at] + _SENTINEL_TOKEN + short[at + 2 :]
    probe = dict(value)
    probe["moveHistory"] = _SENTINEL
    return short[at : at + 2] == "[]" and text_matches(probe, with_sentinel, "c", nan_free=True)


def _py_canonical_object(text: str, key: str) -> tuple[int, int, int] | None:
    """``(index, key start, value end)`` of the top-level item ``key`` ((-1, -1, -1) when absent) when ``text`` is
    ASCII and exactly ``records.dump_json`` of the object ``json.loads`` reads from it, else None (the reference
    of ``_rrjson.canonical_object``, which may also answer None for what it cannot prove: see there)."""
    if not (text.isascii() and key.isascii()):
        return None
    try:
        value = json.loads(text)
        same = type(value) is dict and dump_json(value) == text
    except (ValueError, RecursionError):
        return None
    if not same:
        return None
    if key not in value:
        return -1, -1, -1
    items = list(value.items())
    at = list(value).index(key)
    start = len(dump_json(dict(items[:at]))) - 1 + (at > 0)
    return at, start, start + len(dump_json(key)) + 1 + len(dump_json(value[key]))


try:
    from ._rrjson import canonical_object as _canonical_object
except ImportError:  # pragma: no cover - extension not built: the reference
    _canonical_object = _py_canonical_object


def _proven_text(text: str) -> JSONText | None:
    """``text`` as a :class:`~gamestore.rawjson.JSONText` when it is the canonical text of an object without a
    ``moveHistory`` key (the store then writes it as it is), else None."""
    found = _canonical_object(text, "moveHistory")
    return JSONText.proven(text) if found is not None and found[0] < 0 else None


def _without_history(short: str) -> tuple[JSONText, int] | None:
    """The state of ``short`` (a state text whose first ``"moveHistory":[`` opens an emptied history) without that
    key, as canonical text, and the key's index: None when not proven.

    Proven: ``short`` is ``dump_json`` of its object, that first ``"moveHistory":[]`` is its top-level item and
    the sentinel of :func:`render_state` occurs nowhere else, so rendering the state with the history gives back
    the text the history was cut from; the item and one comma removed, the rest is ``dump_json`` of the state.
    """
    found = _canonical_object(short, "moveHistory")
    if found is None:
        return None
    at, ks, ve = found
    i = short.find(_MH_KEY)
    if ks != i or ve != i + len(_MH_KEY) + 1 or _SENTINEL_TOKEN in short:
        return None
    if at == 0:
        stripped = "{" + (short[ve + 1 :] if short[ve] == "," else short[ve:])
    else:
        stripped = short[: ks - 1] + short[ve:]
    return JSONText.proven(stripped), at


def encode_state(
    text: str, move_texts: Sequence[str], *, default: str = "c", hint: int | None = None
) -> tuple[Any, dict] | None:
    """Split a state's JSON text into ``(state, meta)`` such that ``render_state(state, meta.get("mh"), meta.get("st", default), move_texts)`` is ``text``.

    The embedded ``moveHistory`` is dropped when it is the text of the game's
    first moves; returns None when the text cannot be reproduced.  A state
    whose text is canonical (``records.dump_json``: RingRift's compact style)
    comes back as a :class:`~gamestore.rawjson.JSONText` (never parsed here,
    stored as it is).
    """
    canonical = default == "c"
    if move_texts:
        fast = _strip_history_text(text, move_texts, hint)
        if fast is not None:
            short, n = fast
            if canonical:
                proven = _without_history(short)
                if proven is not None:
                    return proven[0], {"mh": [proven[1], n]}
            try:
                value, nan_free = fast_loads(short)
            except ValueError:
                value = None
            if type(value) is dict and value.get("moveHistory") == []:
                keys = list(value)
                at = keys.index("moveHistory")
                stripped = {k: v for k, v in value.items() if k != "moveHistory"}
                if nan_free and _history_in_place(value, short, text, len(text) - len(short)):
                    return stripped, ({"mh": [at, n]} if default == "c" else {"mh": [at, n], "st": "c"})
                for style in _COMPACT:
                    if render_state(stripped, (at, n), style, move_texts) == text:
                        return stripped, ({"mh": [at, n]} if style == default else {"mh": [at, n], "st": style})
    if canonical:
        whole = _proven_text(text)
        if whole is not None:
            return whole, {}
    try:
        value = loads(text)
    except ValueError:
        return None
    if type(value) is dict and type(value.get("moveHistory")) is list and value["moveHistory"]:
        n = len(value["moveHistory"])
        if n <= len(move_texts):
            at = list(value).index("moveHistory")
            stripped = {k: v for k, v in value.items() if k != "moveHistory"}
            for style in (default, *(s for s in _COMPACT if s != default)):
                if style in _COMPACT and render_state(stripped, (at, n), style, move_texts) == text:
                    meta: dict = {"mh": [at, n]}
                    if style != default:
                        meta["st"] = style
                    return stripped, meta
    if value is None:  # a JSON null state would read as "absent"
        return None
    for style, enc in _ENCODERS.items():
        if enc(value) == text:
            return value, ({} if style == default else {"st": style})
    return None
