# cython: language_level=3
"""The per-move loop of the RingRift import: a ``game_moves`` row's typed columns and its parsed
``move_json`` spread over the move record, in C.

Compiled twins of ``gamestore.ringrift.mapping._py_move_fields`` and
``gamestore.ringrift.cells.decompose_move_json`` (the references: same record, same key order,
same objects; ``tests/test_ringrift_rrmove.py`` proves it).  Anything unusual (another key
order, a float where the row has one) is handed to the reference.
"""
from cpython.dict cimport PyDict_Next, PyDict_SetItem, PyDict_GetItem
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_SIZE, PyTuple_GET_ITEM

from gamestore.ringrift.cells import MOVE_JSON_KEYS, RARE_JSON, same, _decompose_any_keys
from gamestore.ringrift.jsontext import tag

cdef tuple _KEYS = MOVE_JSON_KEYS
cdef tuple _RARE = RARE_JSON
cdef Py_ssize_t _NKEYS = len(MOVE_JSON_KEYS)
cdef long long _I16_LO = -32768, _I16_HI = 32767
# (json key, record field) pairs compared with the row's typed columns
cdef tuple _IMPLIED = (("type", "move_type"), ("player", "player"), ("timestamp", "timestamp"),
                       ("thinkTime", "think_time_ms"), ("phase", "phase"))
cdef tuple _POSITIONS = (("from", "from"), ("to", "to"), ("captureTarget", "capture_target"))


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
    cdef dict over
    if len(d) != _NKEYS:
        _decompose_any_keys(d, m)
        return
    while PyDict_Next(d, &pos, &pk, &pv):
        if <object>pk is not <object>PyTuple_GET_ITEM(_KEYS, k) and <object>pk != <object>PyTuple_GET_ITEM(_KEYS, k):
            _decompose_any_keys(d, m)
            return
        k += 1
    over = {}
    for key in _RARE:
        v = d[key]
        if v is not None:
            m[key] = v
    v = d["id"]
    if v is not None:
        if type(v) is str:
            m["move_id"] = v
        else:
            over["id"] = v
    for key, field in _POSITIONS:
        v = d[key]
        if v is not None:
            if _valid_position(v):
                m[field] = v
            else:
                over[key] = v
    v = d["placementCount"]
    if v is not None:
        if _int16(v):
            m["placement_count"] = v
        else:
            over["placementCount"] = v
    for key, field in _IMPLIED:
        v = d[key]
        w = m.get(field)
        if type(v) is not type(w):
            over[key] = v
        elif type(v) is float:
            if not same(v, w):
                over[key] = v
        elif v != w:
            over[key] = v
    v = d["moveNumber"]
    if type(v) is not int or v != m["move_number"] + 1:
        over["moveNumber"] = v
    if over:
        m["rr_json"] = over
