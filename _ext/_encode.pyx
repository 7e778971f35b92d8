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

The module is split by concept into includes: ``_encode_values.pxi`` (scalar
checks, JSON text, float32 split), ``_encode_codes.pxi`` (string dictionaries,
key caches), ``_encode_fields.pxi`` (a move's position, policy, search and
vector fields) and ``_encode_columns.pxi`` (policies and search statistics in
column form).  This file holds the layout and the ``MoveEncoder`` driver.
"""
from libc.math cimport isfinite
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport memcpy
from libcpp.vector cimport vector
from cpython.dict cimport PyDict_GetItemWithError, PyDict_Next, PyDict_Size
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_AsDouble
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_GET_LENGTH, PyUnicode_KIND, PyUnicode_DATA, PyUnicode_READ
from libc.string cimport memcmp

cimport cython
cimport numpy as cnp
from _common cimport (
    ColsHead, Layout, load_layout, MAX_FIELDS, PyDict_CheckExact, PyUnicode_Check, PyUnicode_CheckExact, PyBool_Check,
    PyList_CheckExact, PyTuple_CheckExact, PyLong_CheckExact, PyFloat_CheckExact, PyFloat_AS_DOUBLE, yield_gil,
    PyUnicode_DecodeUTF8,
)
import json

import orjson

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

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
cdef str S_X = "x", S_Y = "y", S_Z = "z"
cdef int32_t INT32_MIN = -2147483648
cdef int32_t INT32_MAX = 2147483647


# policy and search entries per move of the last finished batch (what the next batch reserves room for)
cdef double _entries_per_move[2]
_entries_per_move[0] = _entries_per_move[1] = 0.0
cdef double MAX_RESERVE_PER_MOVE = 256.0


include "_encode_values.pxi"
include "_encode_codes.pxi"
include "_encode_prefetch.pxi"


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
    # text columns (the plain str fields, then search_extra_json, extra_json): UTF-8 bytes appended while the move's
    # objects are in cache, int32 offsets and a validity flag per row (no list of str objects walked again later)
    cdef vector[vector[char]] txt
    cdef int32_t[:, ::1] txt_off
    cdef uint8_t[:, ::1] txt_ok
    cdef vector[size_t] mark_txt
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
    cdef bint finished  # finish() handed out views of the entry vectors: no more moves
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
        self.txt.resize(NS + 2)
        self.mark_txt.resize(NS + 2)
        self.txt_off = np.zeros((NS + 2, n + 1), np.int32)
        self.txt_ok = np.zeros((NS + 2, n), np.uint8)
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
        self._reserve_entries()

    cdef void _reserve_entries(self):
        """Room for the policy and search entries this batch will likely hold (the last batch's entries per
        move, 1/16 more): growing by doubling would copy them and touch twice the fresh memory."""
        cdef size_t np_ = <size_t>(self.n * _entries_per_move[0] * 1.0625) + 16
        cdef size_t ns = <size_t>(self.n * _entries_per_move[1] * 1.0625) + 16
        self.p_cand.reserve(np_)
        self.p_is_key.reserve(np_)
        self.p_prob.reserve(np_)
        self.s_cand.reserve(ns)
        self.s_is_key.reserve(ns)
        self.s_q.reserve(ns)
        self.s_q_ok.reserve(ns)
        self.s_visits.reserve(ns)
        self.s_v_ok.reserve(ns)
        self.s_prior.reserve(ns)
        self.s_p_ok.reserve(ns)

    # -- driver ---------------------------------------------------------------
    def encode(self, list game_ids, games_moves):
        """Encode every move; returns the move count per game. Raises RecordError."""
        cdef Py_ssize_t row = 0, i, gi
        cdef int rc
        cdef bint has_prev, is_list
        cdef int64_t prev
        if self.finished:
            raise ValueError("this encoder's buffers were handed out by finish()")
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
            is_list = PyList_CheckExact(moves)
            for i in range(len(moves)):
                if row >= self.n:
                    raise ValueError("more moves than the encoder was sized for")
                move = moves[i]
                if is_list:
                    prefetch_moves(moves, i)
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
            self.mark_dstr[j] = PyList_GET_SIZE((<Codes>PyList_GET_ITEM(self.dstr_codes, j)).values)
        self.mark_pv = PyList_GET_SIZE(self.p_codes.values)
        self.mark_sv = PyList_GET_SIZE(self.s_codes.values)
        for j in range(NS + 2):
            self.mark_txt[j] = self.txt[j].size()

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
        for j in range(NS + 2):
            self.txt[j].resize(self.mark_txt[j])
            self.txt_ok[j, row] = 0
        for j in range(NP):
            self.pos_ok[j, row] = 0
            self.z_ok[j, row] = 0
        for j in range(self.NV):
            self.vec_ok[j, row] = 0
        self.pol_ok[row] = 0
        self.srch_ok[row] = 0
        self.flags[row] = 0

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
        # borrowed references only (no object locals, so no reference count written to every key and value object
        # of the batch): ~7% less CPU per move on 1,000 synthetic games (benchmarks/README.md, write path)
        while PyDict_Next(move, &pos, &pk, &pv):
            if not PyUnicode_Check(<object>pk):
                return SLOW
            code = cached_code(self.move_keys, pk, MOVE_CODES)
            if code < 0:
                if not text_ok(<object>pk) or not json_ok(<object>pv, 0):
                    return SLOW
                if extra is None:
                    extra = {}
                extra[<object>pk] = <object>pv
                continue
            if pv == <PyObject*>None:
                continue
            kind = code >> 8
            j = code & 0xFF
            if kind == K_INT:
                if as_int(<object>pv, &iv) or iv < L.int_lo[j] or iv > L.int_hi[j]:
                    return SLOW
                self.ints[j, row] = iv
                self.ints_ok[j, row] = 1
            elif kind == K_DSTR:
                if not PyUnicode_Check(<object>pv):
                    return SLOW
                c = (<Codes>PyList_GET_ITEM(self.dstr_codes, j)).code(<object>pv)
                if c < 0:
                    return FULL
                self.dstr[j, row] = c
                self.dstr_ok[j, row] = 1
            elif kind == K_POS:
                rc = add_position(self, <object>pv, j, row)
                if rc:
                    return rc
            elif kind == K_POLICY:
                if PyDict_CheckExact(<object>pv):
                    rc = add_policy(self, <object>pv, row)
                elif isinstance(<object>pv, Columns):
                    rc = add_policy_cols(self, <Columns>pv, row)
                else:
                    rc = SLOW
                if rc:
                    return rc
            elif kind == K_SEARCH:
                if PyDict_CheckExact(<object>pv):
                    rc = add_search(self, <object>pv, row)
                elif isinstance(<object>pv, Columns):
                    rc = add_search_cols(self, <Columns>pv, row)
                else:
                    rc = SLOW
                if rc:
                    return rc
            elif kind == K_VECTORS:
                rc = add_vectors(self, <object>pv, row)
                if rc:
                    return rc
            elif kind == K_STR:
                if not PyUnicode_Check(<object>pv):
                    return SLOW
                put_text(self, j, row, <object>pv)  # a lone surrogate raises: the reference's RecordError
            elif kind == K_FLOAT:
                if as_float(<object>pv, &dv):
                    return SLOW
                self.floats[j, row] = dv
                self.floats_ok[j, row] = 1
        self.pol_off[row + 1] = <int32_t>self.p_cand.size()
        self.srch_off[row + 1] = <int32_t>self.s_cand.size()
        if extra is not None:
            put_text(self, NS + 1, row, json_text(extra))
        for j in range(NS + 2):
            if self.txt[j].size() > <size_t>INT32_MAX:
                raise OverflowError("string column over 2 GiB: use a large_string column")
            self.txt_off[j, row + 1] = <int32_t>self.txt[j].size()
        return OK

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
            "strs": [self._text(j) for j in range(NS)],
            "pos": np.asarray(self.pos), "pos_ok": np.asarray(self.pos_ok).view(np.bool_),
            "z_ok": np.asarray(self.z_ok).view(np.bool_),
            "pol_off": np.asarray(self.pol_off), "pol_ok": np.asarray(self.pol_ok).view(np.bool_),
            "srch_off": np.asarray(self.srch_off), "srch_ok": np.asarray(self.srch_ok).view(np.bool_),
            "flags": np.asarray(self.flags),
            "sfloat": np.asarray(self.sfloat), "sint": np.asarray(self.sint),
            "search_extra": self._text(NS), "extra": self._text(NS + 1),
            "vec_bufs": self.vec_bufs, "vec_ok": np.asarray(self.vec_ok).view(np.bool_),
            "p_values": self.p_codes.values, "s_values": self.s_codes.values,
        }
        # views of the entry vectors and texts (this encoder stays alive as their base; nothing is added after finish)
        self.finished = True
        if self.n:
            _entries_per_move[0] = min(<double>np_ / self.n, MAX_RESERVE_PER_MOVE)
            _entries_per_move[1] = min(<double>ns / self.n, MAX_RESERVE_PER_MOVE)
        out["p_cand"] = vec_view(self, self.p_cand.data(), np_, cnp.NPY_INT32)
        out["p_is_key"] = vec_view(self, self.p_is_key.data(), np_, cnp.NPY_BOOL)
        out["p_prob"] = vec_view(self, self.p_prob.data(), np_, cnp.NPY_FLOAT64)
        out["s_cand"] = vec_view(self, self.s_cand.data(), ns, cnp.NPY_INT32)
        out["s_is_key"] = vec_view(self, self.s_is_key.data(), ns, cnp.NPY_BOOL)
        out["s_q"] = vec_view(self, self.s_q.data(), ns, cnp.NPY_FLOAT64)
        out["s_q_ok"] = vec_view(self, self.s_q_ok.data(), ns, cnp.NPY_BOOL)
        out["s_visits"] = vec_view(self, self.s_visits.data(), ns, cnp.NPY_INT32)
        out["s_v_ok"] = vec_view(self, self.s_v_ok.data(), ns, cnp.NPY_BOOL)
        out["s_prior"] = vec_view(self, self.s_prior.data(), ns, cnp.NPY_FLOAT64)
        out["s_p_ok"] = vec_view(self, self.s_p_ok.data(), ns, cnp.NPY_BOOL)
        return out


    cdef tuple _text(self, int j):
        """(int32 offsets, UTF-8 bytes as a uint8 view, validity as bool) of text column ``j``."""
        return (np.asarray(self.txt_off[j]), vec_view(self, self.txt[j].data(), self.txt[j].size(), cnp.NPY_UINT8),
                np.asarray(self.txt_ok[j]).view(np.bool_))


cdef inline int put_text(MoveEncoder enc, int j, Py_ssize_t row, object s) except -1:
    """Append the UTF-8 bytes of the str ``s`` as row ``row`` of text column ``j`` (its offset is set once the row is
    done, in ``_add``); UnicodeEncodeError for a lone surrogate."""
    cdef Py_ssize_t size
    cdef const char* p = PyUnicode_AsUTF8AndSize(s, &size)
    cdef vector[char]* d = &enc.txt[j]
    cdef size_t at = d.size()
    d.resize(at + <size_t>size)
    if size:
        memcpy(d.data() + at, p, <size_t>size)
    enc.txt_ok[j, row] = 1
    return 0


include "_encode_fields.pxi"
include "_encode_columns.pxi"
