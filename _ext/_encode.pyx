# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: language = c++
"""Encoding hot loops of the compiled moves backend (``gamestore._encode``).

:class:`MoveEncoder` walks move dicts and fills preallocated numpy buffers
(values, validity, dictionary codes, list offsets); ``gamestore/_backend_cython.py``
assembles the Arrow arrays from them.

Validation: the fast path accepts only inputs it checks completely.  Any
other move (a bad one, or an unusual but valid one such as a tuple
position) is rolled back and handed to ``records.normalize_move``, which
raises the reference ``RecordError`` or returns the canonical move that is
then encoded by the fast path.  Errors are therefore identical to the
reference backend's by construction.
"""
from libc.math cimport isfinite
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint64_t, uintptr_t
from libc.string cimport memcpy
from libcpp.vector cimport vector
from cpython.dict cimport PyDict_GetItemWithError, PyDict_Next, PyDict_Size
from cpython.list cimport PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_AsDouble
from cpython.unicode cimport PyUnicode_GET_LENGTH, PyUnicode_KIND, PyUnicode_DATA
from libc.string cimport memcmp

cimport cython
cimport numpy as cnp
from _common cimport (
    ColsHead, Layout, load_layout, MAX_FIELDS, PyDict_CheckExact, PyUnicode_Check, PyUnicode_CheckExact, PyBool_Check,
    PyList_CheckExact, PyTuple_CheckExact, PyLong_CheckExact, PyFloat_CheckExact, PyFloat_AS_DOUBLE, yield_gil,
)
import json

import numpy as np

from gamestore.errors import RecordError
from gamestore.records import dump_json, normalize_move, normalize_vector
from gamestore.schema import MOVE_KNOWN_KEYS

cnp.import_array()

# ---------------------------------------------------------------------------
# Layout, derived from gamestore.schema at import (_common.pxd)
# ---------------------------------------------------------------------------
cdef enum:
    K_MOVE_NUMBER = 1
    K_INT = 2
    K_FLOAT = 3
    K_DSTR = 4
    K_STR = 5
    K_POS = 6
    K_POLICY = 7
    K_SEARCH = 8
    K_VECTORS = 9
    S_MAP = 1
    S_FLOAT = 2
    S_INT = 3
    # return codes of the fast path
    OK = 0
    SLOW = 1
    FULL = 2

cdef Layout L
_layout = load_layout(&L)

INT_KEYS = _layout["int_keys"]
FLOAT_KEYS = _layout["float_keys"]
DSTR_KEYS = _layout["dstr_keys"]
DSTR_LIMITS = _layout["dstr_limits"]
STR_KEYS = _layout["str_keys"]
POS_KEYS = _layout["pos_keys"]
SEARCH_MAP_KEYS = _layout["map_keys"]
SEARCH_FLOAT_KEYS = _layout["sfloat_keys"]
SEARCH_INT_KEYS = _layout["sint_keys"]
KEY_LIMIT = 2 ** 31  # policy/search key dictionaries are dictionary<int32, string>

cdef int NI = L.ni
cdef int NF = L.nf
cdef int ND = L.nd
cdef int NS = L.ns
cdef int NP = L.np
cdef int NSF = L.nsf
cdef int NSI = L.nsi


def _codes():
    codes = {"move_number": (K_MOVE_NUMBER << 8), "policy": (K_POLICY << 8), "search": (K_SEARCH << 8),
             "vectors": (K_VECTORS << 8)}
    for kind, keys in ((K_INT, INT_KEYS), (K_FLOAT, FLOAT_KEYS), (K_DSTR, DSTR_KEYS), (K_STR, STR_KEYS),
                       (K_POS, POS_KEYS)):
        for j, k in enumerate(keys):
            codes[k] = (kind << 8) | j
    if set(codes) != set(MOVE_KNOWN_KEYS):
        raise ImportError("gamestore._encode is out of date with gamestore.schema: rebuild it")
    scodes = {}
    for j, k in enumerate(SEARCH_MAP_KEYS):
        scodes[k] = (S_MAP << 8) | j
    for j, k in enumerate(SEARCH_FLOAT_KEYS):
        scodes[k] = (S_FLOAT << 8) | j
    for j, k in enumerate(SEARCH_INT_KEYS):
        scodes[k] = (S_INT << 8) | j
    return codes, scodes


cdef dict MOVE_CODES
cdef dict SEARCH_CODES
MOVE_CODES, SEARCH_CODES = _codes()
cdef type NDARRAY = np.ndarray
cdef tuple NP_INTEGER = (np.integer,)
cdef tuple NP_NUMBER = (np.integer, np.floating)
cdef str EMPTY_JSON = "{}"
cdef str S_X = "x", S_Y = "y", S_Z = "z"
cdef int32_t INT32_MIN = -2147483648
cdef int32_t INT32_MAX = 2147483647


cdef inline int as_int(object v, int64_t* out) except -1:
    """0 and ``out`` set when ``v`` is an int check_scalar accepts and fits int64; 1 otherwise."""
    cdef int overflow = 0
    if not PyLong_CheckExact(v):
        if isinstance(v, NP_INTEGER):
            v = int(v)
        else:
            return SLOW
    out[0] = PyLong_AsLongLongAndOverflow(v, &overflow)
    return SLOW if overflow else OK


cdef inline int as_float(object v, double* out) except -1:
    if PyFloat_CheckExact(v):
        out[0] = PyFloat_AS_DOUBLE(v)
        return OK
    if PyLong_CheckExact(v):
        out[0] = PyLong_AsDouble(v)
        return OK
    if isinstance(v, NP_NUMBER):
        out[0] = float(v)
        return OK
    return SLOW


def _json_text_encoder():
    """``records.dump_json`` with the C encoder object built once (it is stateless without circular checks)."""
    from json.encoder import c_make_encoder, encode_basestring

    plain = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if c_make_encoder is None:
        return plain.encode
    encoder = c_make_encoder(None, plain.default, encode_basestring, None, ":", ",", False, False, False)
    return lambda obj: "".join(encoder(obj, 0))


cdef object _dumps = _json_text_encoder()
_SAMPLE = {"a": [1.5, "\u00e9\n", None, True, -0.0, 1e308, 10**30], "b": {"c": {}}}
if _dumps(_SAMPLE) != dump_json(_SAMPLE):
    raise ImportError("gamestore._encode: JSON text differs from records.dump_json: rebuild it")


cdef bint json_ok(object value, int depth) except -1:
    """True when ``json_canonical(value)`` succeeds and ``dump_json`` of it equals ``dump_json(value)``.

    Accepts plain JSON trees (exact dict with str keys, list, tuple, str, int, finite float, bool, None);
    anything else (NaN, infinities, other types, deep nesting) is left to the reference (False).
    """
    cdef Py_ssize_t pos = 0, i
    cdef PyObject* pk
    cdef PyObject* pv
    if PyFloat_CheckExact(value):
        return isfinite(PyFloat_AS_DOUBLE(value))
    if value is None or PyUnicode_CheckExact(value) or PyLong_CheckExact(value) or PyBool_Check(value):
        return True
    if depth > 100:
        return False
    if PyDict_CheckExact(value):
        while PyDict_Next(value, &pos, &pk, &pv):
            if not PyUnicode_CheckExact(<object>pk) or not json_ok(<object>pv, depth + 1):
                return False
        return True
    if PyList_CheckExact(value) or PyTuple_CheckExact(value):
        for item in value:
            if not json_ok(item, depth + 1):
                return False
        return True
    return False


cdef extern from "Python.h":
    int PyUnicode_READY(object) except -1
    object PyUnicode_DecodeASCII(const char*, Py_ssize_t, const char*)


cdef inline uint64_t str_hash(const unsigned char* p, Py_ssize_t n, uint64_t seed) noexcept nogil:
    """A fast 64-bit hash of ``n`` bytes (word-wise multiply-xorshift; not for untrusted keys' DoS resistance)."""
    cdef uint64_t h = seed ^ (<uint64_t>n * 0x9E3779B97F4A7C15ULL)
    cdef uint64_t w
    while n >= 8:
        memcpy(&w, p, 8)
        h = (h ^ w) * 0xff51afd7ed558ccdULL
        h ^= h >> 32
        p += 8
        n -= 8
    if n:
        w = 0
        memcpy(&w, p, n)
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL
    h ^= h >> 33
    h *= 0xff51afd7ed558ccdULL
    h ^= h >> 33
    return h


cdef struct Slot:
    uint64_t h     # the key's hash (compared before the key: one cache line per probe)
    int32_t code   # -1: empty


@cython.final
cdef class Codes:
    """A first-appearance string dictionary: ``code(s)`` is the index of ``s`` in ``values``, added when new.

    The same codes as a ``dict`` from str to index (string equality), without hashing each fresh key
    object with Python's SipHash nor boxing the codes: an open-addressing table (linear probing) over
    the strings' canonical storage (same content, same kind and bytes), codes as C ints.  ``truncate``
    removes the newest codes (the rollback of a move), newest first, which leaves the table exactly as
    if they had never been added (growing re-inserts in code order, so the layout is always that of
    inserting the codes in order).
    """

    cdef readonly list values
    cdef vector[PyObject*] keys  # borrowed: ``values`` holds the references
    cdef vector[uint64_t] hashes
    cdef vector[Slot] slots
    cdef uint64_t mask
    cdef Py_ssize_t limit

    def __cinit__(self, Py_ssize_t limit):
        self.values = []
        self.limit = limit
        cdef Slot empty
        empty.h = 0
        empty.code = -1
        self.slots.assign(64, empty)
        self.mask = 63

    def __len__(self):
        return PyList_GET_SIZE(self.values)

    def add(self, object s):
        """``code(s)`` for Python callers (tests): the code of the str ``s``, -1 when full."""
        if not PyUnicode_Check(s):
            raise TypeError("Codes holds str values")
        return self.code(s)

    def rollback(self, Py_ssize_t mark):
        """``truncate(mark)`` for Python callers (tests)."""
        if mark < 0:
            raise ValueError("mark must be >= 0")
        self.truncate(mark)

    def __contains__(self, object s):
        cdef uint64_t h
        cdef bint found = False
        if PyUnicode_Check(s):
            self._find(s, &h, &found)
        return found

    cdef inline Py_ssize_t _find(self, object s, uint64_t* hout, bint* found) except -1:
        """The slot holding the str ``s`` (``found``), or the empty slot where it would go; ``hout``: its hash."""
        PyUnicode_READY(s)
        cdef unsigned int kind = PyUnicode_KIND(s)
        return self._probe(<PyObject*>s, <const unsigned char*>PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s) * kind,
                           kind, hout, found)

    cdef inline Py_ssize_t _probe(self, PyObject* s, const unsigned char* data, Py_ssize_t nbytes, unsigned int kind,
                                  uint64_t* hout, bint* found) noexcept:
        """``_find`` of the str whose canonical storage is ``data`` (``nbytes`` bytes of ``kind``; ``s``: the str, or NULL)."""
        cdef uint64_t h = str_hash(data, nbytes, kind)
        cdef uint64_t i = h & self.mask
        cdef int32_t c
        cdef PyObject* k
        hout[0] = h
        while True:
            c = self.slots[i].code
            if c < 0:
                found[0] = False
                return <Py_ssize_t>i
            if self.slots[i].h == h:
                k = self.keys[c]
                if k == s or (
                    PyUnicode_KIND(<object>k) == kind and PyUnicode_GET_LENGTH(<object>k) * kind == nbytes
                    and memcmp(PyUnicode_DATA(<object>k), data, nbytes) == 0
                ):
                    found[0] = True
                    return <Py_ssize_t>i
            i = (i + 1) & self.mask

    cdef inline int32_t code(self, object s) except -2:
        """The code of the str ``s``, added when new; -1 when the dictionary is full."""
        cdef uint64_t h
        cdef bint found
        cdef Py_ssize_t at = self._find(s, &h, &found)
        if found:
            return self.slots[at].code
        return self._insert(s, at, h)

    cdef inline int32_t code_ascii(self, const unsigned char* data, Py_ssize_t n) except -2:
        """``code(data[:n].decode("ascii"))`` without making the str unless it is new (``data`` is ASCII)."""
        cdef uint64_t h
        cdef bint found
        cdef Py_ssize_t at = self._probe(NULL, data, n, 1, &h, &found)
        if found:
            return self.slots[at].code
        return self._insert(PyUnicode_DecodeASCII(<const char*>data, n, NULL), at, h)

    cdef inline int32_t _insert(self, object s, Py_ssize_t at, uint64_t h) except -2:
        """Add the str ``s`` (hash ``h``) at the empty slot ``at``; its code, -1 when the dictionary is full."""
        cdef Py_ssize_t n = PyList_GET_SIZE(self.values)
        if n >= self.limit:
            return -1
        self.values.append(s)
        self.keys.push_back(<PyObject*>s)
        self.hashes.push_back(h)
        self.slots[at].h = h
        self.slots[at].code = <int32_t>n
        if 2 * (n + 1) > <Py_ssize_t>self.mask:
            self._grow()
        return <int32_t>n

    cdef void _grow(self) noexcept:
        cdef Py_ssize_t c, n = self.keys.size()
        cdef uint64_t i
        cdef Slot empty
        empty.h = 0
        empty.code = -1
        self.mask = 2 * self.mask + 1
        self.slots.assign(self.mask + 1, empty)
        for c in range(n):
            i = self.hashes[c] & self.mask
            while self.slots[i].code >= 0:
                i = (i + 1) & self.mask
            self.slots[i].h = self.hashes[c]
            self.slots[i].code = <int32_t>c

    cdef truncate(self, Py_ssize_t mark):
        """Remove the codes from ``mark`` on (newest first)."""
        cdef Py_ssize_t c
        cdef uint64_t i
        for c in range(<Py_ssize_t>self.keys.size() - 1, mark - 1, -1):
            i = self.hashes[c] & self.mask
            while self.slots[i].code != c:
                i = (i + 1) & self.mask
            self.slots[i].code = -1
        if <Py_ssize_t>self.keys.size() > mark:
            self.keys.resize(mark)
            self.hashes.resize(mark)
            del self.values[mark:]


cdef enum:
    KEY_CACHE = 128  # slots of a MoveEncoder's key caches (a power of 2)


cdef struct KeySlot:
    PyObject* key  # a strong reference: the key stays alive, so no other object can appear at its address
    int code       # the key's code in the dict the cache fronts; -1: not a key of it


cdef inline int cached_code(KeySlot* cache, PyObject* pk, dict codes) except -2:
    """``codes[key]`` (-1 when absent) for the str ``key`` at ``pk``, remembered by the key object's address.

    Records built in one process (and JSON documents, whose decoder reuses key objects) repeat the same
    few key objects in every move: a hit costs a pointer comparison instead of a dict lookup.
    """
    cdef KeySlot* slot = &cache[((<uintptr_t>pk >> 4) * <uintptr_t>0x9E3779B97F4A7C15ULL) >> (64 - 7)]
    if slot.key == pk:
        return slot.code
    cdef PyObject* pc = PyDict_GetItemWithError(codes, <object>pk)
    cdef int code = -1 if pc == NULL else <int>(<object>pc)
    Py_INCREF(<object>pk)
    Py_XDECREF(slot.key)
    slot.key = pk
    slot.code = code
    return code


cdef inline int code_candidate(object k, Codes codes, vector[uint8_t]& is_key, vector[int32_t]& cand) except -1:
    """Append a policy/search candidate: a str key by its dictionary code, an int as an action id."""
    cdef int64_t iv
    cdef int32_t c
    if PyUnicode_Check(k):
        c = codes.code(k)
        if c < 0:
            return FULL
        is_key.push_back(1)
    elif PyLong_CheckExact(k):
        if as_int(k, &iv) or iv < INT32_MIN or iv > INT32_MAX:
            return SLOW
        c = <int32_t>iv
        is_key.push_back(0)
    else:
        return SLOW
    cand.push_back(c)
    return OK


cdef void split_float32(const double* d, Py_ssize_t n, float* f, uint8_t* exact) noexcept nogil:
    """float32 values of ``d`` and whether each widens back bit-exactly."""
    cdef Py_ssize_t i
    cdef double w
    cdef uint64_t a, b
    for i in range(n):
        f[i] = <float>d[i]
        w = <double>f[i]
        memcpy(&a, &w, 8)
        memcpy(&b, &d[i], 8)
        exact[i] = a == b


cdef object vec_to_numpy(const void* data, Py_ssize_t n, Py_ssize_t itemsize, object dtype):
    out = np.empty(n, dtype=dtype)
    cdef char* dst = <char*>cnp.PyArray_DATA(out)
    with nogil:
        if n:
            memcpy(dst, data, n * itemsize)
    return out


COLS_POLICY = 0x100  # ColsHead.flags of a policy (a search's flags are search_flags bits, below 0x100)


cdef class Columns:
    """A policy or search statistics in column form, for parsers that build one without a Python object
    per candidate (``gamestore.ringrift.cells`` does, from RingRift's JSON text).

    ``data`` holds a ``ColsHead`` (``_common.pxd``) and the columns after it; the compiled encoder
    reads them.  A subclass is also the Mapping they stand for, which every other consumer (the
    reference backend, ``normalize_move``) reads instead: its parser proves the two equal.
    """
    cdef readonly bytes data
    cdef readonly object source  # what the columns were parsed from (the subclass's business)
    cdef Py_ssize_t n
    cdef const ColsHead* head
    cdef const double* a
    cdef const double* b
    cdef const int32_t* visits
    cdef const int32_t* key_end
    cdef const unsigned char* keys

    def __cinit__(self, bytes data, object source=None, *args, **kwargs):
        cdef Py_ssize_t size = len(data), n, i, end = 0
        cdef const char* p = <const char*>data
        if size < <Py_ssize_t>sizeof(ColsHead):
            raise ValueError("column data too short")
        self.head = <const ColsHead*>p
        n = self.head.n
        if n < 0 or n > (size - <Py_ssize_t>sizeof(ColsHead)) // 24:
            raise ValueError("bad candidate count")
        self.a = <const double*>(p + sizeof(ColsHead))
        self.b = self.a + n
        self.visits = <const int32_t*>(self.b + n)
        self.key_end = self.visits + n
        self.keys = <const unsigned char*>(self.key_end + n)
        for i in range(n):
            if self.key_end[i] < end:
                raise ValueError("bad key offsets")
            end = self.key_end[i]
        if size != <Py_ssize_t>sizeof(ColsHead) + 24 * n + end:
            raise ValueError("column data size does not match its head")
        for i in range(end):
            if self.keys[i] >= 128:
                raise ValueError("candidate keys must be ASCII")
        self.data = data
        self.source = source
        self.n = n


cdef class MoveEncoder:
    """Buffers of one batch of moves; ``encode`` fills them, ``finish`` hands them out."""

    cdef Py_ssize_t n
    cdef dict specs
    cdef list spec_list
    cdef dict vec_index
    cdef int NV
    # row-level buffers
    cdef int32_t[::1] move_number
    cdef int64_t[:, ::1] ints
    cdef uint8_t[:, ::1] ints_ok
    cdef double[:, ::1] floats
    cdef uint8_t[:, ::1] floats_ok
    cdef int32_t[:, ::1] dstr
    cdef uint8_t[:, ::1] dstr_ok
    cdef list dstr_codes  # a Codes per dictionary-string field
    cdef list strs
    cdef int16_t[:, ::1] pos
    cdef uint8_t[:, ::1] pos_ok
    cdef uint8_t[:, ::1] z_ok
    cdef int32_t[::1] pol_off
    cdef uint8_t[::1] pol_ok
    cdef int32_t[::1] srch_off
    cdef uint8_t[::1] srch_ok
    cdef uint8_t[::1] flags
    cdef double[:, ::1] sfloat
    cdef int64_t[:, ::1] sint
    cdef list search_extra
    cdef list extra
    cdef list vec_bufs
    cdef uint8_t[:, ::1] vec_ok
    cdef vector[char*] vec_ptr
    cdef vector[Py_ssize_t] vec_nbytes
    cdef vector[int] vec_typenum
    # policy / search entries
    cdef vector[int32_t] p_cand
    cdef vector[uint8_t] p_is_key
    cdef vector[double] p_prob
    cdef Codes p_codes
    cdef Codes s_codes
    cdef vector[int32_t] s_cand
    cdef vector[uint8_t] s_is_key
    cdef vector[double] s_q
    cdef vector[uint8_t] s_q_ok
    cdef vector[int32_t] s_visits
    cdef vector[uint8_t] s_v_ok
    cdef vector[double] s_prior
    cdef vector[uint8_t] s_p_ok
    cdef vector[PyObject*] cands
    # rollback marks of the move being added
    cdef size_t mark_p, mark_s
    cdef Py_ssize_t mark_dstr[MAX_FIELDS]
    cdef Py_ssize_t mark_pv, mark_sv
    # move and search keys by object address (zeroed with the object)
    cdef KeySlot move_keys[KEY_CACHE]
    cdef KeySlot search_keys[KEY_CACHE]

    def __dealloc__(self):
        cdef int i
        for i in range(KEY_CACHE):
            Py_XDECREF(self.move_keys[i].key)
            Py_XDECREF(self.search_keys[i].key)

    def __init__(self, list specs, Py_ssize_t n):
        """``specs``: the declared VectorSpecs sorted by name; ``n``: total moves of the batch."""
        cdef int j
        self.n = n
        self.spec_list = specs
        self.specs = {s.name: s for s in specs}
        self.vec_index = {s.name: j for j, s in enumerate(specs)}
        self.NV = len(specs)
        self.move_number = np.zeros(n, np.int32)
        self.ints = np.zeros((NI, n), np.int64)
        self.ints_ok = np.zeros((NI, n), np.uint8)
        self.floats = np.zeros((NF, n), np.float64)
        self.floats_ok = np.zeros((NF, n), np.uint8)
        self.dstr = np.zeros((ND, n), np.int32)
        self.dstr_ok = np.zeros((ND, n), np.uint8)
        self.dstr_codes = [Codes(DSTR_LIMITS[j]) for j in range(ND)]
        self.strs = [[None] * n for _ in range(NS)]
        self.pos = np.zeros((3 * NP, n), np.int16)
        self.pos_ok = np.zeros((NP, n), np.uint8)
        self.z_ok = np.zeros((NP, n), np.uint8)
        self.pol_off = np.zeros(n + 1, np.int32)
        self.pol_ok = np.zeros(n, np.uint8)
        self.srch_off = np.zeros(n + 1, np.int32)
        self.srch_ok = np.zeros(n, np.uint8)
        self.flags = np.zeros(n, np.uint8)
        self.sfloat = np.zeros((NSF, n), np.float64)
        self.sint = np.zeros((NSI, n), np.int64)
        self.search_extra = [None] * n
        self.extra = [None] * n
        self.vec_bufs = []
        self.vec_ok = np.zeros((len(specs), n), np.uint8)
        for s in specs:
            buf = np.zeros((n, s.size * s.numpy_dtype.itemsize), np.uint8)
            self.vec_bufs.append(buf)
            self.vec_ptr.push_back(<char*>cnp.PyArray_DATA(buf))
            self.vec_nbytes.push_back(s.size * s.numpy_dtype.itemsize)
            self.vec_typenum.push_back(s.numpy_dtype.num)
        self.p_codes = Codes(KEY_LIMIT)
        self.s_codes = Codes(KEY_LIMIT)

    # -- driver ---------------------------------------------------------------
    def encode(self, list game_ids, games_moves):
        """Encode every move; returns the move count per game. Raises RecordError."""
        cdef Py_ssize_t row = 0, i, gi
        cdef int rc
        cdef bint has_prev
        cdef int64_t prev
        counts = []
        for gi in range(len(game_ids)):
            game_id = game_ids[gi]
            moves = games_moves[gi]
            if moves is None:
                moves = ()
            if not isinstance(moves, (list, tuple)):
                raise RecordError("moves must be a list", game_id=game_id, field="moves")
            has_prev = False
            prev = 0
            for i in range(len(moves)):
                if row >= self.n:
                    raise ValueError("more moves than the encoder was sized for")
                move = moves[i]
                self._mark()
                try:
                    rc = self._add(move, row, i, has_prev, prev)
                except Exception:
                    rc = SLOW
                if rc != OK:
                    self._rollback(row)
                    norm = normalize_move(move, i, game_id=game_id, vectors=self.specs,
                                          previous_number=prev if has_prev else None)
                    if rc == SLOW:
                        rc = self._add(norm, row, i, has_prev, prev)
                        if rc == SLOW:
                            raise AssertionError(f"canonical move rejected: game {game_id!r} moves[{i}]")
                    if rc == FULL:
                        self._rollback(row)
                        raise RecordError(
                            "too many distinct values in one batch",
                            game_id=game_id, field=f"moves[{i}]{self._first_full(norm)}",
                        )
                prev = self.move_number[row]
                has_prev = True
                row += 1
                if (row & 31) == 0:
                    yield_gil()  # an asyncio loop in another thread keeps running while a big chunk encodes
            counts.append(len(moves))
        if row != self.n:
            raise ValueError(f"encoder sized for {self.n} moves, got {row}")
        return counts

    cdef void _mark(self):
        cdef int j
        self.mark_p = self.p_cand.size()
        self.mark_s = self.s_cand.size()
        for j in range(ND):
            self.mark_dstr[j] = len(<Codes>self.dstr_codes[j])
        self.mark_pv = len(self.p_codes)
        self.mark_sv = len(self.s_codes)

    cdef _rollback(self, Py_ssize_t row):
        cdef int j
        self.p_cand.resize(self.mark_p)
        self.p_is_key.resize(self.mark_p)
        self.p_prob.resize(self.mark_p)
        self.s_cand.resize(self.mark_s)
        self.s_is_key.resize(self.mark_s)
        self.s_q.resize(self.mark_s)
        self.s_q_ok.resize(self.mark_s)
        self.s_visits.resize(self.mark_s)
        self.s_v_ok.resize(self.mark_s)
        self.s_prior.resize(self.mark_s)
        self.s_p_ok.resize(self.mark_s)
        for j in range(ND):
            (<Codes>self.dstr_codes[j]).truncate(self.mark_dstr[j])
        self.p_codes.truncate(self.mark_pv)
        self.s_codes.truncate(self.mark_sv)
        for j in range(NI):
            self.ints_ok[j, row] = 0
        for j in range(NF):
            self.floats_ok[j, row] = 0
        for j in range(ND):
            self.dstr_ok[j, row] = 0
        for j in range(NS):
            self.strs[j][row] = None
        for j in range(NP):
            self.pos_ok[j, row] = 0
            self.z_ok[j, row] = 0
        for j in range(self.NV):
            self.vec_ok[j, row] = 0
        self.pol_ok[row] = 0
        self.srch_ok[row] = 0
        self.flags[row] = 0
        self.search_extra[row] = None
        self.extra[row] = None

    def _first_full(self, dict move):
        """The field (as ``.key``) where the reference backend meets a full dictionary in ``move``."""
        for j, key in enumerate(DSTR_KEYS):
            value = move.get(key)
            if value is not None and value not in self.dstr_codes[j] and len(self.dstr_codes[j]) >= DSTR_LIMITS[j]:
                return f".{key}"
        new = set()
        for cand in (move.get("policy") or {}):
            if isinstance(cand, str) and cand not in self.p_codes and cand not in new:
                if len(self.p_codes) + len(new) >= KEY_LIMIT:
                    return ".policy"
                new.add(cand)
        new = set()
        search = move.get("search") or {}
        for key in SEARCH_MAP_KEYS:
            for cand in (search.get(key) or {}):
                if isinstance(cand, str) and cand not in self.s_codes and cand not in new:
                    if len(self.s_codes) + len(new) >= KEY_LIMIT:
                        return f".search.{key}"
                    new.add(cand)
        return ""

    # -- fast path --------------------------------------------------------------
    cdef int _add(self, object move, Py_ssize_t row, Py_ssize_t index, bint has_prev, int64_t prev) except -1:
        cdef Py_ssize_t pos = 0
        cdef PyObject* pk
        cdef PyObject* pv
        cdef PyObject* pc
        cdef int code, kind, j, rc
        cdef int32_t c
        cdef int64_t iv
        cdef double dv
        cdef dict extra = None
        if not PyDict_CheckExact(move):
            return SLOW
        pv = PyDict_GetItemWithError(move, "move_number")
        if pv == NULL or <object>pv is None:
            iv = prev + 1 if has_prev else index
        elif as_int(<object>pv, &iv):
            return SLOW
        if iv < INT32_MIN or iv > INT32_MAX or (has_prev and iv <= prev):
            return SLOW
        self.move_number[row] = <int32_t>iv
        while PyDict_Next(move, &pos, &pk, &pv):
            key = <object>pk
            value = <object>pv
            if not PyUnicode_Check(key):
                return SLOW
            code = cached_code(self.move_keys, pk, MOVE_CODES)
            if code < 0:
                if not json_ok(value, 0):
                    return SLOW
                if extra is None:
                    extra = {}
                extra[key] = value
                continue
            if value is None:
                continue
            kind = code >> 8
            j = code & 0xFF
            if kind == K_INT:
                if as_int(value, &iv) or iv < L.int_lo[j] or iv > L.int_hi[j]:
                    return SLOW
                self.ints[j, row] = iv
                self.ints_ok[j, row] = 1
            elif kind == K_DSTR:
                if not PyUnicode_Check(value):
                    return SLOW
                c = (<Codes>self.dstr_codes[j]).code(value)
                if c < 0:
                    return FULL
                self.dstr[j, row] = c
                self.dstr_ok[j, row] = 1
            elif kind == K_POS:
                rc = self._position(value, j, row)
                if rc:
                    return rc
            elif kind == K_POLICY:
                rc = self._policy_cols(<Columns>value, row) if isinstance(value, Columns) else self._policy(value, row)
                if rc:
                    return rc
            elif kind == K_SEARCH:
                rc = self._search_cols(<Columns>value, row) if isinstance(value, Columns) else self._search(value, row)
                if rc:
                    return rc
            elif kind == K_VECTORS:
                rc = self._vectors(value, row)
                if rc:
                    return rc
            elif kind == K_STR:
                if not PyUnicode_Check(value):
                    return SLOW
                self.strs[j][row] = value
            elif kind == K_FLOAT:
                if as_float(value, &dv):
                    return SLOW
                self.floats[j, row] = dv
                self.floats_ok[j, row] = 1
        self.pol_off[row + 1] = <int32_t>self.p_cand.size()
        self.srch_off[row + 1] = <int32_t>self.s_cand.size()
        if extra is not None:
            self.extra[row] = _dumps(extra)
        return OK

    cdef int _position(self, object value, int j, Py_ssize_t row) except -1:
        cdef PyObject* px
        cdef PyObject* py
        cdef PyObject* pz
        cdef PyObject* pk
        cdef PyObject* pv
        cdef int64_t x, y, z
        cdef Py_ssize_t pos = 0
        if not PyDict_CheckExact(value):
            return SLOW
        px = py = pz = NULL
        # one walk over the (two or three) entries instead of three lookups; keys "x", "y", "z" only
        while PyDict_Next(value, &pos, &pk, &pv):
            if pk != <PyObject*>S_X and pk != <PyObject*>S_Y and pk != <PyObject*>S_Z:
                if not PyUnicode_CheckExact(<object>pk):
                    return SLOW
                k = <object>pk
                pk = <PyObject*>S_X if k == S_X else (<PyObject*>S_Y if k == S_Y else (<PyObject*>S_Z if k == S_Z else NULL))
            if pk == <PyObject*>S_X:
                px = pv
            elif pk == <PyObject*>S_Y:
                py = pv
            elif pk == <PyObject*>S_Z:
                pz = pv
            else:
                return SLOW
        if px == NULL or py == NULL:
            return SLOW
        if as_int(<object>px, &x) or as_int(<object>py, &y) or x < -32768 or x > 32767 or y < -32768 or y > 32767:
            return SLOW
        self.pos[3 * j, row] = <int16_t>x
        self.pos[3 * j + 1, row] = <int16_t>y
        self.pos_ok[j, row] = 1
        if pz != NULL and <object>pz is not None:
            if as_int(<object>pz, &z) or z < -32768 or z > 32767:
                return SLOW
            self.pos[3 * j + 2, row] = <int16_t>z
            self.z_ok[j, row] = 1
        return OK

    cdef int _policy(self, object value, Py_ssize_t row) except -1:
        cdef Py_ssize_t pos = 0
        cdef PyObject* pk
        cdef PyObject* pv
        cdef int r
        cdef double dv
        if not PyDict_CheckExact(value):
            return SLOW
        while PyDict_Next(value, &pos, &pk, &pv):
            r = code_candidate(<object>pk, self.p_codes, self.p_is_key, self.p_cand)
            if r != OK:
                return r
            if as_float(<object>pv, &dv) or not isfinite(dv):
                return SLOW
            self.p_prob.push_back(dv)
        self.pol_ok[row] = 1
        return OK

    cdef int _policy_cols(self, Columns value, Py_ssize_t row) except -1:
        """``_policy`` of a policy in column form."""
        cdef Py_ssize_t i, start = 0
        cdef int32_t c
        if value.head.flags != COLS_POLICY:
            return SLOW
        for i in range(value.n):
            if not isfinite(value.a[i]):
                return SLOW
            c = self.p_codes.code_ascii(value.keys + start, value.key_end[i] - start)
            if c < 0:
                return FULL
            start = value.key_end[i]
            self.p_cand.push_back(c)
            self.p_is_key.push_back(1)
            self.p_prob.push_back(value.a[i])
        self.pol_ok[row] = 1
        return OK

    cdef int _search_cols(self, Columns value, Py_ssize_t row) except -1:
        """``_search`` of search statistics in column form (one candidate list for the maps present)."""
        cdef const ColsHead* h = value.head
        cdef Py_ssize_t i, start = 0
        cdef int j
        cdef int32_t c
        cdef uint8_t q_ok, v_ok, p_ok
        if h.flags < 0 or h.flags >= 0x100:
            return SLOW
        for j in range(NSI):
            if h.flags & L.sint_bit[j] and (h.sint[j] < L.sint_lo[j] or h.sint[j] > L.sint_hi[j]):
                return SLOW
        for j in range(NSF):
            if h.flags & L.sfloat_bit[j]:
                self.sfloat[j, row] = h.sfloat[j]
        for j in range(NSI):
            if h.flags & L.sint_bit[j]:
                self.sint[j, row] = h.sint[j]
        self.flags[row] = <uint8_t>h.flags
        self.search_extra[row] = EMPTY_JSON
        if not (h.flags & 7):
            return OK
        self.srch_ok[row] = 1
        q_ok = (h.flags & L.map_bit[0]) != 0
        v_ok = (h.flags & L.map_bit[1]) != 0
        p_ok = (h.flags & L.map_bit[2]) != 0
        for i in range(value.n):
            c = self.s_codes.code_ascii(value.keys + start, value.key_end[i] - start)
            if c < 0:
                return FULL
            start = value.key_end[i]
            self.s_cand.push_back(c)
            self.s_is_key.push_back(1)
            self.s_q.push_back(value.a[i] if q_ok else 0.0)
            self.s_q_ok.push_back(q_ok)
            self.s_visits.push_back(value.visits[i] if v_ok else 0)
            self.s_v_ok.push_back(v_ok)
            self.s_prior.push_back(value.b[i] if p_ok else 0.0)
            self.s_p_ok.push_back(p_ok)
        return OK

    cdef int _search(self, object value, Py_ssize_t row) except -1:
        cdef Py_ssize_t pos = 0
        cdef PyObject* pk
        cdef PyObject* pv
        cdef PyObject* pc
        cdef int code, kind, j, m, r
        cdef int64_t iv
        cdef double dv
        cdef uint8_t flags = 0
        cdef dict extra = None
        cdef object maps0 = None, maps1 = None, maps2 = None, mp
        if not PyDict_CheckExact(value):
            return SLOW
        while PyDict_Next(value, &pos, &pk, &pv):
            key = <object>pk
            v = <object>pv
            if not PyUnicode_Check(key):
                return SLOW
            code = cached_code(self.search_keys, pk, SEARCH_CODES)
            if code < 0 or v is None:
                if not json_ok(v, 0):
                    return SLOW
                if extra is None:
                    extra = {}
                extra[key] = v
                continue
            kind = code >> 8
            j = code & 0xFF
            if kind == S_MAP:
                if not PyDict_CheckExact(v):
                    return SLOW
                if j == 0:
                    maps0 = v
                elif j == 1:
                    maps1 = v
                else:
                    maps2 = v
                flags |= L.map_bit[j]
            elif kind == S_FLOAT:
                if as_float(v, &dv):
                    return SLOW
                self.sfloat[j, row] = dv
                flags |= L.sfloat_bit[j]
            else:
                if as_int(v, &iv) or iv < L.sint_lo[j] or iv > L.sint_hi[j]:
                    return SLOW
                self.sint[j, row] = iv
                flags |= L.sint_bit[j]
        self.flags[row] = flags
        self.search_extra[row] = EMPTY_JSON if extra is None else _dumps(extra)
        if not (flags & 7):
            return OK
        self.srch_ok[row] = 1
        cdef size_t base = self.s_cand.size()
        self.cands.clear()
        cdef vector[PyObject*]* cands = &self.cands  # candidates in first-seen order (borrowed from the maps)
        cdef dict seen = None     # candidate -> local index, built on the first out-of-step key
        cdef Py_ssize_t t, idx, ncands, nstart
        cdef PyObject* ps
        cdef size_t e
        for m in range(3):
            mp = maps0 if m == 0 else (maps1 if m == 1 else maps2)
            if mp is None:
                continue
            pos = 0
            t = 0
            nstart = cands.size()  # the candidates of the earlier maps: a map's own keys are distinct
            while PyDict_Next(mp, &pos, &pk, &pv):
                ncands = cands.size()
                if t < ncands and cands[0][t] == pk:
                    idx = t  # the same key object at the same place as in an earlier map
                else:
                    k = <object>pk
                    idx = -1
                    if nstart:
                        if seen is None:
                            seen = {<object>cands[0][u]: u for u in range(ncands)}
                        ps = PyDict_GetItemWithError(seen, k)
                        if ps != NULL:
                            idx = <object>ps
                    if idx < 0:
                        r = code_candidate(k, self.s_codes, self.s_is_key, self.s_cand)
                        if r != OK:
                            return r
                        idx = ncands
                        cands.push_back(pk)
                        if seen is not None:
                            seen[k] = idx
                        self.s_q.push_back(0.0)
                        self.s_q_ok.push_back(0)
                        self.s_visits.push_back(0)
                        self.s_v_ok.push_back(0)
                        self.s_prior.push_back(0.0)
                        self.s_p_ok.push_back(0)
                e = base + idx
                if m == 1:
                    if as_int(<object>pv, &iv) or iv < INT32_MIN or iv > INT32_MAX:
                        return SLOW
                    self.s_visits[e] = <int32_t>iv
                    self.s_v_ok[e] = 1
                else:
                    if as_float(<object>pv, &dv):
                        return SLOW
                    if m == 0:
                        self.s_q[e] = dv
                        self.s_q_ok[e] = 1
                    else:
                        self.s_prior[e] = dv
                        self.s_p_ok[e] = 1
                t += 1
        return OK

    cdef int _vectors(self, object value, Py_ssize_t row) except -1:
        cdef Py_ssize_t pos = 0
        cdef PyObject* pk
        cdef PyObject* pv
        cdef PyObject* pj
        cdef int j
        cdef cnp.ndarray arr
        if not value:
            return OK
        if not PyDict_CheckExact(value):
            return SLOW
        while PyDict_Next(value, &pos, &pk, &pv):
            if <object>pv is None:
                continue
            pj = PyDict_GetItemWithError(self.vec_index, <object>pk)
            if pj == NULL:
                return SLOW
            j = <object>pj
            obj = <object>pv
            if not (isinstance(obj, NDARRAY) and self._fast_vector(obj, j)):
                obj = normalize_vector(obj, self.spec_list[j], game_id=None, field="")
            arr = obj
            memcpy(self.vec_ptr[j] + row * self.vec_nbytes[j], cnp.PyArray_DATA(arr), self.vec_nbytes[j])
            self.vec_ok[j, row] = 1
        return OK

    cdef bint _fast_vector(self, cnp.ndarray arr, int j):
        return (
            cnp.PyArray_TYPE(arr) == self.vec_typenum[j]
            and cnp.PyArray_ISNOTSWAPPED(arr)
            and cnp.PyArray_IS_C_CONTIGUOUS(arr)
            and cnp.PyArray_NBYTES(arr) == self.vec_nbytes[j]
        )

    # -- output -----------------------------------------------------------------
    def finish(self):
        """The filled buffers, as a dict of numpy arrays and lists (see _backend_cython.py)."""
        cdef Py_ssize_t np_ = self.p_cand.size(), ns = self.s_cand.size()
        out = {
            "n": self.n,
            "move_number": np.asarray(self.move_number),
            "ints": np.asarray(self.ints), "ints_ok": np.asarray(self.ints_ok).view(np.bool_),
            "floats": np.asarray(self.floats), "floats_ok": np.asarray(self.floats_ok).view(np.bool_),
            "dstr": np.asarray(self.dstr), "dstr_ok": np.asarray(self.dstr_ok).view(np.bool_),
            "dstr_values": [(<Codes>c).values for c in self.dstr_codes],
            "strs": self.strs,
            "pos": np.asarray(self.pos), "pos_ok": np.asarray(self.pos_ok).view(np.bool_),
            "z_ok": np.asarray(self.z_ok).view(np.bool_),
            "pol_off": np.asarray(self.pol_off), "pol_ok": np.asarray(self.pol_ok).view(np.bool_),
            "srch_off": np.asarray(self.srch_off), "srch_ok": np.asarray(self.srch_ok).view(np.bool_),
            "flags": np.asarray(self.flags),
            "sfloat": np.asarray(self.sfloat), "sint": np.asarray(self.sint),
            "search_extra": self.search_extra, "extra": self.extra,
            "vec_bufs": self.vec_bufs, "vec_ok": np.asarray(self.vec_ok).view(np.bool_),
            "p_values": self.p_codes.values, "s_values": self.s_codes.values,
        }
        out["p_cand"] = vec_to_numpy(self.p_cand.data(), np_, 4, np.int32)
        out["p_is_key"] = vec_to_numpy(self.p_is_key.data(), np_, 1, np.bool_)
        out["p_prob"] = vec_to_numpy(self.p_prob.data(), np_, 8, np.float64)
        out["s_cand"] = vec_to_numpy(self.s_cand.data(), ns, 4, np.int32)
        out["s_is_key"] = vec_to_numpy(self.s_is_key.data(), ns, 1, np.bool_)
        out["s_q"] = vec_to_numpy(self.s_q.data(), ns, 8, np.float64)
        out["s_q_ok"] = vec_to_numpy(self.s_q_ok.data(), ns, 1, np.bool_)
        out["s_visits"] = vec_to_numpy(self.s_visits.data(), ns, 4, np.int32)
        out["s_v_ok"] = vec_to_numpy(self.s_v_ok.data(), ns, 1, np.bool_)
        out["s_prior"] = vec_to_numpy(self.s_prior.data(), ns, 8, np.float64)
        out["s_p_ok"] = vec_to_numpy(self.s_p_ok.data(), ns, 1, np.bool_)
        for name in ("p_prob", "s_q", "s_prior"):
            f32, exact = float32_split(out[name])
            out[name + "32"] = f32
            out[name + "_exact"] = exact
        return out


def float32_split(cnp.ndarray[cnp.float64_t, ndim=1, mode="c"] d):
    """``(float32 values, exact)``: exact when the float32 widens back to ``d`` bit for bit."""
    cdef Py_ssize_t n = d.shape[0]
    f = np.empty(n, np.float32)
    exact = np.empty(n, np.bool_)
    cdef const double* dp = <const double*>cnp.PyArray_DATA(d)
    cdef float* fp = <float*>cnp.PyArray_DATA(f)
    cdef uint8_t* ep = <uint8_t*>cnp.PyArray_DATA(exact)
    with nogil:
        split_float32(dp, n, fp, ep)
    return f, exact


