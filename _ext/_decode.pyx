# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, infer_types=False
# (infer_types=False: Cython 3.3 loops forever inferring the types of this module's locals; all hot locals are typed)
"""Decoding hot loops of the compiled moves backend (``gamestore._decode``).

:class:`BatchDecoder` reads one moves record batch straight from its Arrow
buffers, exported without a copy through the Arrow C data interface
(``__arrow_c_array__``), and builds the canonical move dicts of any range of
its rows.  Dictionary strings are decoded once per :class:`StrTable`; a
caller that keeps a ``strings`` dict across batches of one file (a shard
reader) decodes each move key once per file.

Bounds: the batch passes Arrow's structural validation first (buffer sizes
against lengths, first and last offsets, cheap); every offset, dictionary
index and child length the loops follow is then checked against those
bounds before it is used, so a damaged batch (a format-1 shard has no
checksums; a crafted one may carry valid ones) raises
:class:`~gamestore.errors.ShardCorruptError` and never reads outside its
buffers.
"""
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, strcmp
from cpython.list cimport PyList_GET_ITEM
from cpython.tuple cimport PyTuple_GET_ITEM
from cpython.pycapsule cimport PyCapsule_GetPointer
from cpython.object cimport PyObject

cimport numpy as cnp
from _common cimport Layout, load_layout, MAX_FIELDS, NUM_MAPS, EMPTY_BITS, _PyDict_NewPresized, \
    PyUnicode_DecodeUTF8, PyGC_Enable, PyGC_Disable, yield_gil
import json
import json.decoder

import numpy as np
import pyarrow as pa

from gamestore.errors import ShardCorruptError
from gamestore.ipc_batch import Unsupported

cnp.import_array()

include "_decode_dict.pxi"

cdef extern from *:
    """
    #ifndef ARROW_C_DATA_INTERFACE
    #define ARROW_C_DATA_INTERFACE
    #include <stdint.h>
    struct ArrowSchema {
      const char* format; const char* name; const char* metadata; int64_t flags; int64_t n_children;
      struct ArrowSchema** children; struct ArrowSchema* dictionary;
      void (*release)(struct ArrowSchema*); void* private_data;
    };
    struct ArrowArray {
      int64_t length; int64_t null_count; int64_t offset; int64_t n_buffers; int64_t n_children;
      const void** buffers; struct ArrowArray** children; struct ArrowArray* dictionary;
      void (*release)(struct ArrowArray*); void* private_data;
    };
    #endif
    """
    struct ArrowSchema:
        const char* format
        const char* name
        int64_t n_children
        ArrowSchema** children
        ArrowSchema* dictionary

    struct ArrowArray:
        int64_t length
        int64_t null_count
        int64_t offset
        int64_t n_buffers
        int64_t n_children
        const void** buffers
        ArrowArray** children
        ArrowArray* dictionary

cdef Layout L
_layout = load_layout(&L)

# the Python key strings of each kind, borrowed from these module-level tuples
cdef tuple INT_KEYS = _layout["int_keys"]
cdef tuple FLOAT_KEYS = _layout["float_keys"]
cdef tuple DSTR_KEYS = _layout["dstr_keys"]
cdef tuple STR_KEYS = _layout["str_keys"]
cdef tuple POS_KEYS = _layout["pos_keys"]
cdef tuple MAP_KEYS = _layout["map_keys"]
cdef tuple SFLOAT_KEYS = _layout["sfloat_keys"]
cdef tuple SINT_KEYS = _layout["sint_keys"]

# Column slots: every base column of the moves schema has one, found by name
cdef enum:
    C_MOVE_NUMBER = 0
    C_POLICY = 1
    C_SEARCH = 2
    C_FLAGS = 3
    C_SEARCH_EXTRA = 4
    C_EXTRA = 5
    C_INT = 6
    C_FLOAT = C_INT + MAX_FIELDS
    C_DSTR = C_FLOAT + MAX_FIELDS
    C_STR = C_DSTR + MAX_FIELDS
    C_SFLOAT = C_STR + MAX_FIELDS
    C_SINT = C_SFLOAT + MAX_FIELDS
    C_POS = C_SINT + MAX_FIELDS
    N_SLOTS = C_POS + 3 * MAX_FIELDS
    # entry fields of the policy / search structs
    E_KEY = 0
    E_ACTION = 1
    E_PROB = 2
    E_PROB64 = 3
    E_Q = 2
    E_Q64 = 3
    E_VISITS = 4
    E_PRIOR = 5
    E_PRIOR64 = 6
    MAX_DIMS = 32


def _slots():
    """Column name -> (slot, kind): 'i' integer, 'f' float, 'd' dictionary string, 'u' string, ..."""
    s = {"move_number": (C_MOVE_NUMBER, "i"), "policy": (C_POLICY, "+l"), "search": (C_SEARCH, "+l"),
         "search_flags": (C_FLAGS, "C"), "search_extra_json": (C_SEARCH_EXTRA, "u"), "extra_json": (C_EXTRA, "u")}
    for base, kind, cols in ((C_INT, "i", "int_cols"), (C_FLOAT, "f", "float_cols"), (C_DSTR, "d", "dstr_cols"),
                             (C_STR, "u", "str_cols"), (C_SFLOAT, "f", "sfloat_cols"), (C_SINT, "i", "sint_cols")):
        for j, c in enumerate(_layout[cols]):
            s[c] = (base + j, kind)
    for j, p in enumerate(_layout["pos_prefixes"]):
        for a, axis in enumerate("xyz"):
            s[f"{p}_{axis}"] = (C_POS + 3 * j + a, "i")
    return s


cdef dict SLOTS = _slots()
cdef dict POLICY_FIELDS = {"key": (E_KEY, "d"), "action": (E_ACTION, "i"), "prob": (E_PROB, "f"),
                           "prob64": (E_PROB64, "f")}
cdef dict SEARCH_FIELDS = {"key": (E_KEY, "d"), "action": (E_ACTION, "i"), "q": (E_Q, "f"), "q64": (E_Q64, "f"),
                           "visits": (E_VISITS, "i"), "prior": (E_PRIOR, "f"), "prior64": (E_PRIOR64, "f")}
cdef dict WIDTHS = {"c": ("i", 1), "s": ("i", 2), "i": ("i", 4), "l": ("i", 8), "C": ("C", 1),
                    "e": ("e", 2), "f": ("f", 4), "g": ("f", 8), "u": ("u", 4)}
cdef dict VECTOR_TYPES = {"e": np.dtype(np.float16).num, "f": np.dtype(np.float32).num, "g": np.dtype(np.float64).num}


# ---------------------------------------------------------------------------
# Columns: raw pointers into the Arrow buffers of one array
# ---------------------------------------------------------------------------
cdef struct Col:
    const uint8_t* valid   # validity bitmap; NULL when there are no nulls
    const uint8_t* data    # values; int32 offsets for strings and lists
    const uint8_t* chars   # string bytes
    int64_t off            # the array's offset (plus its parents'), added to every index
    int64_t lo, hi         # offsets and lists: the first and last offset of the array (every offset lies within)
    int width              # bytes per value
    bint absent            # every slot null


cdef inline bint ok(const Col* c, int64_t i) noexcept nogil:
    cdef int64_t k
    if c.absent:
        return False
    if c.valid == NULL:
        return True
    k = c.off + i
    return (c.valid[k >> 3] >> (k & 7)) & 1


cdef inline int64_t ival(const Col* c, int64_t i) noexcept nogil:
    cdef int64_t k = c.off + i
    if c.width == 4:
        return (<const int32_t*>c.data)[k]
    if c.width == 8:
        return (<const int64_t*>c.data)[k]
    if c.width == 2:
        return (<const int16_t*>c.data)[k]
    return (<const int8_t*>c.data)[k]


cdef inline double fval(const Col* c, int64_t i) noexcept nogil:
    cdef int64_t k = c.off + i
    if c.width == 8:
        return (<const double*>c.data)[k]
    return (<const float*>c.data)[k]


cdef inline int32_t offset_at(const Col* c, int64_t i) noexcept nogil:
    return (<const int32_t*>c.data)[c.off + i]


cdef inline double wide(const Col* f32, const Col* f64, int64_t e) noexcept nogil:
    """The exact value of a float32 entry field with its float64 override."""
    if ok(f64, e):
        return fval(f64, e)
    return fval(f32, e)


cdef int damaged(str what) except -1:
    raise ShardCorruptError(f"damaged moves batch: {what}")


cdef inline int span(const Col* c, int64_t i, int64_t* a, int64_t* b) except -1:
    """The offsets ``[a, b)`` of row ``i`` of a string or list column, checked to lie within the array."""
    a[0] = offset_at(c, i)
    b[0] = offset_at(c, i + 1)
    if a[0] < c.lo or b[0] < a[0] or b[0] > c.hi:
        damaged(f"offsets [{a[0]}, {b[0]}) of row {i} outside [{c.lo}, {c.hi}] or decreasing")
    return 0


cdef inline object string_at(const Col* c, int64_t i):
    cdef int64_t a, b
    span(c, i, &a, &b)
    if b == a:
        return ""
    return PyUnicode_DecodeUTF8(<const char*>c.chars + a, b - a, NULL)


cdef extern from "Python.h":
    bint PyUnicode_IS_COMPACT_ASCII(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    void* PyUnicode_DATA(object)


cdef inline object string_again(const Col* c, int64_t i, list last, Py_ssize_t j):
    """``string_at(c, i)``, or the str ``last[j]`` (this column's string of an earlier row, kept there) when it
    holds the same ASCII text: a column such as move_id repeats one value row after row; str is immutable."""
    cdef int64_t a, b
    cdef object s = <object>PyList_GET_ITEM(last, j)
    span(c, i, &a, &b)
    if s is not None and PyUnicode_IS_COMPACT_ASCII(s) and PyUnicode_GET_LENGTH(s) == b - a \
            and memcmp(PyUnicode_DATA(s), c.chars + a, b - a) == 0:
        return s
    s = PyUnicode_DecodeUTF8(<const char*>c.chars + a, b - a, NULL) if b > a else ""
    last[j] = s
    return s


cdef class StrTable:
    """The strings of an Arrow string array, copied once and decoded lazily, each entry once."""

    cdef int32_t* off
    cdef char* chars
    cdef Py_ssize_t n
    cdef list cache

    def __cinit__(self):
        self.off = NULL
        self.chars = NULL

    def __dealloc__(self):
        free(self.off)
        free(self.chars)

    @staticmethod
    cdef StrTable of(const ArrowArray* a):
        cdef StrTable t = StrTable.__new__(StrTable)
        cdef const int32_t* src = NULL
        cdef int32_t first = 0, last = 0
        cdef Py_ssize_t i, n = a.length
        cdef bint bad = False
        if n:
            src = (<const int32_t*>a.buffers[1]) + a.offset
            first = src[0]
            last = src[n]
        if first < 0 or last < first:
            damaged(f"dictionary offsets run from {first} to {last}")
        t.off = <int32_t*>malloc(4 * (n + 1))
        t.chars = <char*>malloc(last - first + 1)
        if t.off == NULL or t.chars == NULL:
            raise MemoryError()
        t.off[0] = 0
        with nogil:
            for i in range(1, n + 1):
                t.off[i] = src[i] - first
                bad |= src[i] < src[i - 1] or src[i] > last
            if last > first and not bad:
                memcpy(t.chars, (<const char*>a.buffers[2]) + first, last - first)
        if bad:
            damaged("dictionary offsets decrease or run past the last one")
        t.n = n
        t.cache = [None] * n
        return t

    def __len__(self):
        return self.n

    cdef inline object get(self, int64_t i):
        cdef object s
        cdef int32_t a, b
        if i < 0 or i >= self.n:
            damaged(f"dictionary index {i} outside the {self.n} strings")
        s = <object>PyList_GET_ITEM(self.cache, i)
        if s is None:
            a = self.off[i]
            b = self.off[i + 1]
            s = PyUnicode_DecodeUTF8(self.chars + a, b - a, NULL) if b > a else ""
            self.cache[i] = s
        return s


cdef object _scan_once = json.decoder.JSONDecoder().scan_once


cdef object json_load(object text):
    """``json.loads(text)`` for the compact texts gamestore writes, without the wrapper's overhead."""
    try:
        obj, end = _scan_once(text, 0)
    except StopIteration:
        return json.loads(text)  # raises the proper error
    if end != len(text):
        return json.loads(text)
    return obj


cdef struct Entries:
    Col list          # the list column (validity, int32 offsets)
    Col f[7]          # the struct's fields (E_*)


cdef struct Vec:
    Col col           # validity of the fixed-size list column
    const uint8_t* values
    Py_ssize_t nbytes
    int typenum
    int nd
    cnp.npy_intp dims[MAX_DIMS]


cdef class BatchDecoder:
    """Canonical move dicts of the rows of one moves record batch, read in place.

    ``vectors`` is a sequence of ``(name, column, shape, numpy dtype)``;
    ``strings`` (optional) maps dictionary ids to StrTables and may be shared
    by every batch of one IPC file, whose dictionaries do not change.
    """

    cdef object _keep            # the exported capsules: the batch's buffers live while they do
    cdef readonly Py_ssize_t num_rows
    cdef Col cols[N_SLOTS]
    cdef Entries pol
    cdef Entries srch
    cdef list dstr_tables
    cdef StrTable p_keys
    cdef StrTable s_keys
    cdef list vec_names
    cdef Vec* vecs
    cdef int nv
    cdef list last_str           # per string column: its string of the last row decoded (string_again)

    def __cinit__(self):
        self.vecs = NULL
        self.nv = 0
        self.last_str = [None] * L.ns

    def __dealloc__(self):
        free(self.vecs)

    def __init__(self, batch, vectors=(), dict strings=None):
        try:
            batch.validate()  # buffer sizes against lengths, first/last offsets, dictionaries: microseconds
        except pa.ArrowException as exc:
            raise ShardCorruptError(f"damaged moves batch: {exc}") from None
        cdef tuple caps = batch.__arrow_c_array__()
        cdef const ArrowSchema* top_s = <const ArrowSchema*>PyCapsule_GetPointer(caps[0], b"arrow_schema")
        cdef const ArrowArray* top = <const ArrowArray*>PyCapsule_GetPointer(caps[1], b"arrow_array")
        cdef const ArrowSchema* cs
        cdef const ArrowArray* ca
        cdef int64_t i, slot, rows
        cdef Vec* v
        self._keep = caps
        if strcmp(top_s.format, b"+s") != 0 or top.n_children != top_s.n_children:
            raise ValueError("a moves record batch is expected")
        self.num_rows = top.length
        rows = top.offset + top.length
        if strings is None:
            strings = {}
        found = set()
        vec_cols = {spec[1]: spec for spec in vectors}
        vec_found = []
        self.dstr_tables = [None] * L.nd
        for i in range(top.n_children):
            cs = top_s.children[i]
            ca = top.children[i]
            name = cs.name.decode("utf-8")
            entry = SLOTS.get(name)
            if entry is not None:
                slot, kind = entry
                set_col(&self.cols[slot], cs, ca, top.offset, rows, kind, name)
                if kind == "d":
                    self.dstr_tables[slot - C_DSTR] = _table(strings, name, ca)
                elif slot == C_POLICY:
                    self.p_keys = _entries(&self.pol, cs, ca, top.offset, rows, POLICY_FIELDS, name, strings)
                elif slot == C_SEARCH:
                    self.s_keys = _entries(&self.srch, cs, ca, top.offset, rows, SEARCH_FIELDS, name, strings)
                found.add(name)
            elif name in vec_cols:
                vec_found.append((i, vec_cols[name]))
        missing = set(SLOTS) - found
        if missing:
            raise ValueError(f"moves batch lacks column(s) {', '.join(sorted(missing))}")
        self.nv = len(vec_found)
        self.vec_names = []
        if self.nv:
            self.vecs = <Vec*>malloc(self.nv * sizeof(Vec))
            if self.vecs == NULL:
                raise MemoryError()
        for j, (i, spec) in enumerate(vec_found):
            vname, col, shape, dtype = spec
            _vector(&self.vecs[j], top_s.children[i], top.children[i], top.offset, rows, col, tuple(shape), dtype)
            self.vec_names.append(vname)

    def decode(self, Py_ssize_t start, Py_ssize_t stop):
        """The move dicts of rows ``[start, stop)``."""
        cdef Py_ssize_t i
        cdef list out
        if start < 0 or stop > self.num_rows or start > stop:
            raise IndexError(f"rows [{start}, {stop}) outside the batch of {self.num_rows}")
        out = []
        i = start
        was_enabled = PyGC_Disable()  # the dicts built here hold no cycles: collecting only costs time
        try:
            for i in range(start, stop):
                out.append(self._row(i))
                if ((i - start) & 15) == 15:  # a row with its maps is ~4 us: a switch point every ~0.1 ms
                    yield_gil()
        except (ValueError, TypeError, OverflowError) as exc:  # bad UTF-8 or JSON, JSON not an object
            if isinstance(exc, ShardCorruptError):
                raise
            raise ShardCorruptError(f"damaged moves batch: row {i}: {type(exc).__name__}: {exc}") from None
        finally:
            if was_enabled:
                PyGC_Enable()
        return out

    cdef dict _row(self, int64_t i):
        cdef dict m = self._base(i)
        self._policy(m, i)
        self._search(m, i)
        self._vectors(m, i)
        self._extra(m, i)
        return m

    # A row's dict is built in five parts, in this order (its keys' order); a point read (_decode_point.pxi) runs
    # each part over all its rows before the next, as the helper thread decompresses the next part's buffers.
    cdef dict _base(self, int64_t i):
        """The move dict of row ``i`` with its scalar and position fields."""
        cdef dict m = _PyDict_NewPresized(16)
        cdef dict d
        cdef int j
        cdef const Col* c
        cdef const Col* x
        dict_put(m, "move_number", ival(&self.cols[C_MOVE_NUMBER], i))
        for j in range(L.ni):
            c = &self.cols[C_INT + j]
            if ok(c, i):
                dict_put(m, <object>PyTuple_GET_ITEM(INT_KEYS, j), ival(c, i))
        for j in range(L.nf):
            c = &self.cols[C_FLOAT + j]
            if ok(c, i):
                dict_put(m, <object>PyTuple_GET_ITEM(FLOAT_KEYS, j), fval(c, i))
        for j in range(L.nd):
            c = &self.cols[C_DSTR + j]
            if ok(c, i):
                dict_put(m, <object>PyTuple_GET_ITEM(DSTR_KEYS, j), (<StrTable>PyList_GET_ITEM(self.dstr_tables, j)).get(ival(c, i)))
        for j in range(L.ns):
            c = &self.cols[C_STR + j]
            if ok(c, i):
                dict_put(m, <object>PyTuple_GET_ITEM(STR_KEYS, j), string_again(c, i, self.last_str, j))
        for j in range(L.np):
            x = &self.cols[C_POS + 3 * j]
            if ok(x, i):
                c = &self.cols[C_POS + 3 * j + 2]
                d = _PyDict_NewPresized(3)  # {"x": .., "y": .., "z": ..}: the 2nd and 3rd key through dict_put
                dict_put(d, "x", ival(x, i))
                dict_put(d, "y", ival(&self.cols[C_POS + 3 * j + 1], i))
                dict_put(d, "z", ival(c, i) if ok(c, i) else None)
                dict_put(m, <object>PyTuple_GET_ITEM(POS_KEYS, j), d)
        return m

    cdef int _policy(self, dict m, int64_t i) except -1:
        cdef dict d
        cdef const Col* c = &self.pol.list
        cdef int64_t e, a, b
        cdef StrTable keys
        if ok(c, i):
            span(c, i, &a, &b)
            d = _PyDict_NewPresized(b - a)
            keys = self.p_keys
            for e in range(a, b):
                dict_put(d, _cand(&self.pol, keys, e), wide(&self.pol.f[E_PROB], &self.pol.f[E_PROB64], e))
            dict_put(m, "policy", d)
        return 0

    cdef int _search(self, dict m, int64_t i) except -1:
        cdef dict d
        cdef int j
        cdef const Col* c = &self.cols[C_SEARCH_EXTRA]
        cdef int64_t a, b
        cdef uint8_t fl
        if ok(c, i):
            span(c, i, &a, &b)
            if b - a == 2 and c.chars[a] == b"{" and c.chars[a + 1] == b"}":
                d = {}
            else:
                d = json_load(string_at(c, i))
            fl = (<const uint8_t*>self.cols[C_FLAGS].data)[self.cols[C_FLAGS].off + i]
            if fl & EMPTY_BITS:
                self._search_maps(d, i, fl)
            for j in range(L.nsf):
                if fl & L.sfloat_bit[j]:
                    dict_put(d, <object>PyTuple_GET_ITEM(SFLOAT_KEYS, j), fval(&self.cols[C_SFLOAT + j], i))
            for j in range(L.nsi):
                if fl & L.sint_bit[j]:
                    dict_put(d, <object>PyTuple_GET_ITEM(SINT_KEYS, j), ival(&self.cols[C_SINT + j], i))
            dict_put(m, "search", d)
        return 0

    cdef int _vectors(self, dict m, int64_t i) except -1:
        cdef dict d = None
        cdef int j
        cdef Vec* v
        if self.nv:
            for j in range(self.nv):
                v = &self.vecs[j]
                if ok(&v.col, i):
                    if d is None:
                        d = {}
                    arr = cnp.PyArray_SimpleNew(v.nd, v.dims, v.typenum)
                    memcpy(cnp.PyArray_DATA(arr), v.values + (v.col.off + i) * v.nbytes, v.nbytes)
                    dict_put(d, <object>PyList_GET_ITEM(self.vec_names, j), arr)
            if d is not None:
                dict_put(m, "vectors", d)
        return 0

    cdef int _extra(self, dict m, int64_t i) except -1:
        cdef const Col* c = &self.cols[C_EXTRA]
        if ok(c, i):
            m.update(json_load(string_at(c, i)))
        return 0

    cdef int _search_maps(self, dict d, int64_t i, uint8_t fl) except -1:
        cdef const Col* c = &self.srch.list
        cdef int64_t a = 0, b = 0, e
        cdef Py_ssize_t size
        cdef dict q = None, vis = None, p = None
        cdef StrTable keys = self.s_keys
        if ok(c, i):
            span(c, i, &a, &b)
        size = b - a
        if fl & L.map_bit[0]:
            q = _PyDict_NewPresized(size)
        if fl & L.map_bit[1]:
            vis = _PyDict_NewPresized(size)
        if fl & L.map_bit[2]:
            p = _PyDict_NewPresized(size)
        for e in range(a, b):
            k = _cand(&self.srch, keys, e)
            if q is not None and ok(&self.srch.f[E_Q], e):
                dict_put(q, k, wide(&self.srch.f[E_Q], &self.srch.f[E_Q64], e))
            if vis is not None and ok(&self.srch.f[E_VISITS], e):
                dict_put(vis, k, ival(&self.srch.f[E_VISITS], e))
            if p is not None and ok(&self.srch.f[E_PRIOR], e):
                dict_put(p, k, wide(&self.srch.f[E_PRIOR], &self.srch.f[E_PRIOR64], e))
        if q is not None:
            dict_put(d, <object>PyTuple_GET_ITEM(MAP_KEYS, 0), q)
        if vis is not None:
            dict_put(d, <object>PyTuple_GET_ITEM(MAP_KEYS, 1), vis)
        if p is not None:
            dict_put(d, <object>PyTuple_GET_ITEM(MAP_KEYS, 2), p)
        return 0


cdef inline object _cand(const Entries* en, StrTable keys, int64_t e):
    """The candidate of entry ``e``: its key string, or its action id."""
    cdef int64_t k
    cdef PyObject* o
    if ok(&en.f[E_KEY], e):
        k = ival(&en.f[E_KEY], e)
        if 0 <= k < keys.n:
            o = PyList_GET_ITEM(keys.cache, k)
            if o != <PyObject*>None:
                return <object>o
        return keys.get(k)
    if ok(&en.f[E_ACTION], e):
        return ival(&en.f[E_ACTION], e)
    return None


include "_decode_cdata.pxi"
include "_decode_helper.pxi"
include "_decode_point.pxi"
include "_decode_rows.pxi"
