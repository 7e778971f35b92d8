# cython: language_level=3
"""The per-move loop of the RingRift import: a ``game_moves`` row's typed columns and its
``move_json`` spread over the move record, in C.

Compiled twins of ``gamestore.ringrift.mapping._py_move_fields`` and
``gamestore.ringrift.cells.decompose_move_json`` (the references: same record, same key order,
same objects; ``tests/test_ringrift_rrmove.py`` proves it), and :func:`move_json_fields`, which
parses a ``move_json`` text straight into the record: it takes the text only when it proves it is
exactly what the reference path accepts (``json.dumps`` of its value in the compact style, keys in
pydantic's order), else it leaves the record alone and the reference (orjson parse, style check,
``decompose_move_json``) decides.  Anything unusual (another key order, a float where the row has
one) is handed to the reference.  :func:`move_record` is ``mapping._move_to_record`` (its reference)
over a whole row.
"""
from cpython.dict cimport PyDict_Next
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_SIZE, PyTuple_GET_ITEM
from cpython.float cimport PyFloat_FromDouble
from cpython.long cimport PyLong_FromLongLong
from libc.stdlib cimport free
from libc.string cimport memcmp, memchr

from gamestore.ringrift.cells import MOVE_JSON_KEYS, RARE_JSON, same, _decompose_any_keys
from gamestore.ringrift.jsontext import loads as _loads, tag

include "_rrfloat.pxi"
include "_rrcanon.pxi"

cdef extern from "Python.h":
    object PyUnicode_DecodeASCII(const char* s, Py_ssize_t size, const char* errors)

cdef tuple _KEYS = MOVE_JSON_KEYS
cdef Py_ssize_t _NKEYS = len(MOVE_JSON_KEYS)
cdef long long _I16_LO = -32768, _I16_HI = 32767
# (index in MOVE_JSON_KEYS, json key, record field) of the keys compared with the row's typed columns,
# of the positions and of the overflow keys
cdef tuple _IMPLIED = tuple((MOVE_JSON_KEYS.index(k), k, f) for k, f in (
    ("type", "move_type"), ("player", "player"), ("timestamp", "timestamp"), ("thinkTime", "think_time_ms"),
    ("phase", "phase")))
cdef tuple _POSITIONS = tuple((MOVE_JSON_KEYS.index(k), k, f) for k, f in (
    ("from", "from"), ("to", "to"), ("captureTarget", "capture_target")))
cdef tuple _RARE_AT = tuple((MOVE_JSON_KEYS.index(k), k) for k in RARE_JSON)
cdef Py_ssize_t _ID = MOVE_JSON_KEYS.index("id")
cdef Py_ssize_t _PLACEMENT = MOVE_JSON_KEYS.index("placementCount")
cdef Py_ssize_t _MOVE_NUMBER = MOVE_JSON_KEYS.index("moveNumber")


cdef inline bint _int16(object v):
    if type(v) is not int:
        return False
    try:
        return _I16_LO <= <long long>v <= _I16_HI
    except OverflowError:
        return False


cdef bint _valid_position(object v):
    """``{"x": int16, "y": int16, "z": int16 or None}``, keys in that order."""
    cdef Py_ssize_t pos = 0
    cdef PyObject* pk
    cdef PyObject* pv
    cdef int k = 0
    if type(v) is not dict or len(<dict>v) != 3:
        return False
    while PyDict_Next(<dict>v, &pos, &pk, &pv):
        key = <object>pk
        val = <object>pv
        if k == 0:
            if key != "x" or not _int16(val):
                return False
        elif k == 1:
            if key != "y" or not _int16(val):
                return False
        else:
            if key != "z" or not (val is None or _int16(val)):
                return False
        k += 1
    return True


def move_fields(tuple row, dict m, tuple typed):
    """Put the typed columns of ``row`` that fit into ``m``; return the others tagged (or None).

    ``typed``: ``(column index, field, Python type, int low or None, int high)`` per column.
    """
    return _fields(row, m, typed)


cdef dict _fields(tuple row, dict m, tuple typed):
    cdef dict cells = None
    cdef tuple spec
    cdef Py_ssize_t j, n = PyTuple_GET_SIZE(typed)
    for j in range(n):
        spec = <tuple>PyTuple_GET_ITEM(typed, j)
        v = row[<Py_ssize_t>spec[0]]
        if v is None:
            continue
        lo = spec[3]
        if type(v) is spec[2] and (lo is None or lo <= v <= spec[4]):
            m[spec[1]] = v
        else:
            if cells is None:
                cells = {}
            cells[spec[1]] = tag(v)
    return cells


def decompose_move_json(dict d, dict m):
    """Spread the parsed ``move_json`` ``d`` over the move record ``m`` (see ``cells.decompose_move_json``)."""
    cdef Py_ssize_t pos = 0, k = 0
    cdef PyObject* pk
    cdef PyObject* pv
    if len(d) != _NKEYS:
        _decompose_any_keys(d, m)
        return
    while PyDict_Next(d, &pos, &pk, &pv):
        if <object>pk is not <object>PyTuple_GET_ITEM(_KEYS, k) and <object>pk != <object>PyTuple_GET_ITEM(_KEYS, k):
            _decompose_any_keys(d, m)
            return
        k += 1
    _spread(list(d.values()), m)


cdef void _spread(list vals, dict m) except *:
    """``decompose_move_json`` of the move_json object whose values, in MOVE_JSON_KEYS order, are ``vals``."""
    cdef dict over = {}
    cdef Py_ssize_t at
    for at, key in _RARE_AT:
        v = vals[at]
        if v is not None:
            m[key] = v
    v = vals[_ID]
    if v is not None:
        if type(v) is str:
            m["move_id"] = v
        else:
            over["id"] = v
    for at, key, field in _POSITIONS:
        v = vals[at]
        if v is not None:
            if _valid_position(v):
                m[field] = v
            else:
                over[key] = v
    v = vals[_PLACEMENT]
    if v is not None:
        if _int16(v):
            m["placement_count"] = v
        else:
            over["placementCount"] = v
    for at, key, field in _IMPLIED:
        v = vals[at]
        w = m.get(field)
        if type(v) is not type(w):
            over[key] = v
        elif type(v) is float:
            if not same(v, w):
                over[key] = v
        elif v != w:
            over[key] = v
    v = vals[_MOVE_NUMBER]
    if type(v) is not int or v != m["move_number"] + 1:
        over["moveNumber"] = v
    if over:
        m["rr_json"] = over


# ---------------------------------------------------------------------------
# move_json text straight into the record
# ---------------------------------------------------------------------------
cdef object _NOT = object()  # a value not proven canonical
# '"key":' of each MOVE_JSON_KEYS key, as the compact style writes it
cdef tuple _KEYTEXT = tuple(('"' + k + '":').encode("ascii") for k in MOVE_JSON_KEYS)
cdef str _X = "x", _Y = "y", _Z = "z"


cdef inline Py_ssize_t _numend(const char* s, Py_ssize_t n, Py_ssize_t i, bint* isfloat) noexcept:
    cdef char ch
    while i < n:
        ch = s[i]
        if ch == b'.' or ch == b'e' or ch == b'E':
            isfloat[0] = True
        elif not ((ch >= b'0' and ch <= b'9') or ch == b'-' or ch == b'+'):
            break
        i += 1
    return i


cdef object _int_at(const char* s, Py_ssize_t n, Py_ssize_t* pi):
    """The int whose ``repr`` is the text at ``s[*pi]`` (int64), or _NOT."""
    cdef bint isfloat = False
    cdef Py_ssize_t e = _numend(s, n, pi[0], &isfloat)
    cdef int64_t v
    if isfloat or not rr_int_exact(s + pi[0], e - pi[0], &v):
        return _NOT
    pi[0] = e
    return PyLong_FromLongLong(v)


cdef object _position(const char* s, Py_ssize_t n, Py_ssize_t* pi):
    """``{"x":int,"y":int,"z":int or null}`` at ``s[*pi]`` as its dict, or _NOT (``*pi`` unchanged)."""
    cdef Py_ssize_t i = pi[0]
    if n - i < 5 or memcmp(s + i, b'{"x":', 5) != 0:
        return _NOT
    i += 5
    x = _int_at(s, n, &i)
    if x is _NOT or n - i < 5 or memcmp(s + i, b',"y":', 5) != 0:
        return _NOT
    i += 5
    y = _int_at(s, n, &i)
    if y is _NOT or n - i < 5 or memcmp(s + i, b',"z":', 5) != 0:
        return _NOT
    i += 5
    if n - i >= 4 and memcmp(s + i, b"null", 4) == 0:
        z = None
        i += 4
    else:
        z = _int_at(s, n, &i)
        if z is _NOT:
            return _NOT
    if i >= n or s[i] != b'}':
        return _NOT
    pi[0] = i + 1
    return {_X: x, _Y: y, _Z: z}


cdef object _value(rrj_ctx* c, str text, Py_ssize_t* pi):
    """The JSON value at ``c.s[*pi]`` when its text is spelled as the compact style spells it (``*pi`` moved past
    it), else _NOT."""
    cdef const char* s = c.s
    cdef Py_ssize_t n = c.n, i = pi[0], e
    cdef bint isfloat = False
    cdef double d
    cdef int64_t iv
    cdef char ch = s[i]
    if ch == b'n':
        if n - i >= 4 and memcmp(s + i, b"null", 4) == 0:
            pi[0] = i + 4
            return None
        return _NOT
    if ch == b'"':
        e = rrj_string(c, i)
        if e < 0:
            return _NOT
        pi[0] = e
        if memchr(s + i + 1, b'\\', e - i - 2) == NULL:
            return PyUnicode_DecodeASCII(s + i + 1, e - i - 2, NULL)
        return _loads(text[i:e])
    if ch == b'-' or (ch >= b'0' and ch <= b'9'):
        e = _numend(s, n, i, &isfloat)
        if isfloat:
            if not rr_float_exact(s + i, e - i, &d):
                return _NOT
            pi[0] = e
            return PyFloat_FromDouble(d)
        if not rr_int_exact(s + i, e - i, &iv):
            return _NOT  # beyond int64 (or not an int's repr): the reference decides
        pi[0] = e
        return PyLong_FromLongLong(iv)
    if ch == b't' and n - i >= 4 and memcmp(s + i, b"true", 4) == 0:
        pi[0] = i + 4
        return True
    if ch == b'f' and n - i >= 5 and memcmp(s + i, b"false", 5) == 0:
        pi[0] = i + 5
        return False
    if ch == b'{':
        v = _position(s, n, pi)
        if v is not _NOT:
            return v
    if ch == b'{' or ch == b'[':  # anything else nested: proven canonical in C, parsed by orjson
        e = rrj_value(c, i, 1)
        if e < 0:
            return _NOT
        pi[0] = e
        return _loads(text[i:e])
    return _NOT


def move_json_fields(str text, dict m):
    """Spread the ``move_json`` ``text`` over ``m`` (see :func:`_json_fields`): True, or False with ``m`` untouched."""
    return _json_fields(text, m)


cdef bint _json_fields(str text, dict m) except -1:
    """Spread the ``move_json`` ``text`` over the move record ``m`` as ``decompose_move_json`` spreads
    ``json.loads(text)``, when ``text`` is proven to be ``json.dumps`` of that value in the compact style
    (``separators=(",", ":")``, ``ensure_ascii=False``) with the keys in ``MOVE_JSON_KEYS`` order: True.
    False (``m`` untouched) when that is not proven (another key order, non-ASCII text, a NaN, an int
    beyond int64, spacing, ...): the reference path decides."""
    cdef Py_ssize_t n, i = 0, k, kl
    cdef const char* s = _ascii(text, &n)
    cdef rrj_ctx c
    cdef bytes kt
    cdef list vals
    if s == NULL or n < 2 or s[0] != b'{':
        return False
    c.s = s
    c.n = n
    c.keys = NULL
    c.nkeys = 0
    c.cap = 0
    c.int64_only = 1  # nested values are read by orjson (see _value)
    vals = [None] * _NKEYS
    try:
        for k in range(_NKEYS):
            if k:
                if i >= n or s[i] != b',':
                    return False
            i += 1
            kt = <bytes>PyTuple_GET_ITEM(_KEYTEXT, k)
            kl = len(kt)
            if n - i < kl or memcmp(s + i, <const char*>kt, kl) != 0:
                return False
            i += kl
            if i >= n:
                return False
            v = _value(&c, text, &i)
            if v is _NOT:
                return False
            if v is not None:
                vals[k] = v
    finally:
        free(c.keys)
    if i != n - 1 or s[i] != b'}':
        return False
    _spread(vals, m)
    return True


# ---------------------------------------------------------------------------
# A whole game_moves row into its move record (the reference: mapping._move_to_record)
# ---------------------------------------------------------------------------
cdef tuple _TYPED = None
cdef Py_ssize_t _C_MJ, _C_MP, _C_SS, _C_HF, _HF_BYTES
cdef object _required_int, _split_move_json, _parse_policy, _parse_search
cdef object _ST_MP, _ST_SS
cdef object _policy_columns = None, _search_columns = None, _TextColumns = None


def configure(tuple typed, dict columns, Py_ssize_t hf_bytes, required_int, split_move_json, parse_policy,
              parse_search, dict style, tuple column_parsers=None):
    """What :func:`move_record` needs of ``mapping``, ``cells`` and ``textcols`` (set once, when ``mapping`` is
    imported).  ``column_parsers``: ``textcols.COLUMN_PARSERS`` (None: every policy and search text through
    ``parse_policy`` / ``parse_search``)."""
    global _TYPED, _C_MJ, _C_MP, _C_SS, _C_HF, _HF_BYTES, _required_int, _split_move_json, _parse_policy
    global _parse_search, _ST_MP, _ST_SS, _policy_columns, _search_columns, _TextColumns
    _policy_columns, _search_columns, _TextColumns = column_parsers or (None, None, None)
    _TYPED = typed
    _C_MJ, _C_MP, _C_SS, _C_HF = (columns["move_json"], columns["move_probs"], columns["search_stats_json"],
                                  columns["heuristic_features"])
    _HF_BYTES = hf_bytes
    _required_int, _split_move_json, _parse_policy, _parse_search = required_int, split_move_json, parse_policy, parse_search
    _ST_MP, _ST_SS = style["move_probs"], style["search_stats_json"]


def move_record(tuple row, game_id, list features):
    """``mapping._move_to_record(row, game_id, features)``: the move record of a ``game_moves`` row and its
    ``move_json`` text, the same record (keys in the same order, the same objects); what the compiled paths do
    not prove goes to the same Python functions."""
    cdef dict m, cells, texts = None, styles = None, vectors
    if _TYPED is None:
        raise RuntimeError("_rrmove.configure was not called")
    mn = row[1]
    if type(mn) is not int or not (-2147483648 <= mn <= 2147483647):
        mn = _required_int(mn, "int32", game_id, "moves.move_number")
    m = {"move_number": mn}
    cells = _fields(row, m, _TYPED)
    if cells is not None and not cells:
        cells = None
    if cells is not None:
        m["rr_cells"] = cells
    mj = row[_C_MJ]
    if mj is None:
        texts = {"move_json": None}
    elif type(mj) is not str or not _json_fields(<str>mj, m):
        texts = {}
        _split_move_json(mj, m, texts)
    move_text = mj if type(mj) is str else ""
    mp = row[_C_MP]
    data = None
    if mp is not None and _policy_columns is not None and type(mp) is str:
        data = _policy_columns(mp)  # what parse_policy takes first (textcols.policy_text), without its calls
    if data is not None:
        m["policy"] = _TextColumns(data, mp)
    elif mp is not None:
        policy = _parse_policy(mp)
        if policy is None:
            if texts is None:
                texts = {}
            texts["move_probs"] = tag(mp)
        else:
            m["policy"] = policy[0]
            if policy[1] != _ST_MP:
                styles = {"move_probs": policy[1]}
    ss = row[_C_SS]
    data = None
    if ss is not None and _search_columns is not None and type(ss) is str:
        data = _search_columns(ss)  # what parse_search takes first (textcols.search_text)
    if data is not None:
        m["search"] = _TextColumns(data, ss)
    elif ss is not None:
        search = _parse_search(ss)
        if search is None:
            if texts is None:
                texts = {}
            texts["search_stats_json"] = tag(ss)
        else:
            m["search"] = search[0]
            if search[1] is not None:
                m["rr_search_keys"] = search[1]
            if search[2] != _ST_SS:
                if styles is None:
                    styles = {}
                styles["search_stats_json"] = search[2]
    hf = row[_C_HF]
    if hf is not None:
        if type(hf) is bytes and len(<bytes>hf) == _HF_BYTES:
            vectors = {}
            m["vectors"] = vectors
            features.append((vectors, hf))
        else:
            if cells is None:
                cells = {}
            cells["heuristic_features"] = tag(hf)
            m["rr_cells"] = cells
    if texts:
        m["rr_text"] = texts
    if styles:
        m["rr_style"] = styles
    return m, move_text
