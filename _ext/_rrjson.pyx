# cython: language_level=3, boundscheck=False, wraparound=False
"""Fast exact checks of JSON text styles for the RingRift import (``gamestore.ringrift.jsontext``).

:func:`styled_equal` proves, in one linear scan, that a JSON text is what
Python's ``json`` module writes for a value, given orjson's compact dump of
that value (orjson is ~10x faster than ``json.dumps``; the two differ only in
separators, float exponent forms and, with ``ensure_ascii``, non-ASCII text).
"""
from libc.string cimport memcmp

cdef inline bint _numchar(unsigned char c) noexcept nogil:
    return (c >= 48 and c <= 57) or c == 45 or c == 43 or c == 46 or c == 101 or c == 69  # 0-9 - + . e E


cdef bint _plain_float(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    """A float token orjson and Python's repr spell alike: has a '.', no exponent, not below 1e-4."""
    cdef Py_ssize_t k
    cdef bint dot = False
    for k in range(n):
        if s[k] == 101 or s[k] == 69:  # e E
            return False
        if s[k] == 46:
            dot = True
    if not dot:
        return False
    if s[0] == 45:  # '-'
        s += 1
        n -= 1
    if n >= 6 and memcmp(s, b"0.0000", 6) == 0:  # below 1e-4: orjson keeps the decimal form, Python does not
        return False
    return True


def styled_equal(bytes ob, bytes text, bint spaced, bint ascii_only) -> bool:
    """True when ``text`` is ``json.dumps(value, separators=..., ensure_ascii=...)``, ``ob`` being ``orjson.dumps(value)``.

    ``spaced``: separators ``", "``/``": "`` (else ``","``/``":"``); ``ascii_only``: ``ensure_ascii=True``.
    ``value`` must hold no NaN or infinity (orjson writes them as null).  False means "not proven".
    """
    cdef const unsigned char* a = <const unsigned char*>ob
    cdef const unsigned char* b = <const unsigned char*>text
    cdef Py_ssize_t n = len(ob), m = len(text), i = 0, j = 0, i0, j0, k
    cdef unsigned char c
    cdef bint has_float
    while i < n:
        c = a[i]
        if c == 34:  # '"': a string, byte-equal up to its closing quote
            if j >= m or b[j] != 34:
                return False
            i += 1
            j += 1
            while True:
                if i >= n or j >= m:
                    return False
                c = a[i]
                if c != b[j] or (ascii_only and c >= 127):
                    return False
                i += 1
                j += 1
                if c == 92:  # backslash: the escaped byte too
                    if i >= n or j >= m or a[i] != b[j]:
                        return False
                    i += 1
                    j += 1
                elif c == 34:
                    break
        elif c == 44 or c == 58:  # , :
            if j >= m or b[j] != c:
                return False
            j += 1
            if spaced:
                if j >= m or b[j] != 32:
                    return False
                j += 1
            i += 1
        elif c == 45 or (c >= 48 and c <= 57):  # a number
            i0 = i
            j0 = j
            while i < n and _numchar(a[i]):
                i += 1
            while j < m and _numchar(b[j]):
                j += 1
            if i - i0 == j - j0 and memcmp(a + i0, b + j0, i - i0) == 0:
                if _plain_float(a + i0, i - i0):
                    continue
                has_float = False
                for k in range(i0, i):
                    if a[k] == 46 or a[k] == 101 or a[k] == 69:
                        has_float = True
                        break
                if not has_float:  # an int: Python and orjson write the same digits
                    continue
            # the spellings differ (or orjson's may not be Python's): Python's repr decides
            tok = ob[i0:i]
            if b"." not in tok and b"e" not in tok and b"E" not in tok:
                return False
            if repr(float(tok)).encode("ascii") != text[j0:j]:
                return False
        else:  # { } [ ] true false null
            if j >= m or b[j] != c:
                return False
            i += 1
            j += 1
    return j == m


# ---------------------------------------------------------------------------
# Shape checks of parsed RingRift cells (the reference: gamestore.ringrift.cells._py_search_maps / _py_finite_floats)
# ---------------------------------------------------------------------------
from cpython.dict cimport PyDict_Next
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject_RichCompareBool, Py_EQ
from cpython.ref cimport PyObject
from libc.math cimport isfinite


cdef inline bint _same_key(PyObject* a, PyObject* b) except -1:
    return a == b or PyObject_RichCompareBool(<object>a, <object>b, Py_EQ) == 1


def search_maps(dict q, dict vc, dict pp) -> bool:
    """True when ``q``, ``vc``, ``pp`` have one key list (same keys, same order; ``q`` not empty), ``q`` and ``pp``
    only floats, ``vc`` only ints in int32 range."""
    cdef Py_ssize_t n = len(q), i = 0, j = 0, k = 0
    cdef PyObject* k1
    cdef PyObject* v1
    cdef PyObject* k2
    cdef PyObject* v2
    cdef PyObject* k3
    cdef PyObject* v3
    cdef long long iv
    cdef int overflow = 0
    if n == 0 or len(vc) != n or len(pp) != n:
        return False
    while PyDict_Next(q, &i, &k1, &v1):
        PyDict_Next(vc, &j, &k2, &v2)
        PyDict_Next(pp, &k, &k3, &v3)
        if type(<object>v1) is not float or type(<object>v3) is not float or type(<object>v2) is not int:
            return False
        if not _same_key(k1, k2) or not _same_key(k1, k3):
            return False
        iv = PyLong_AsLongLongAndOverflow(<object>v2, &overflow)
        if overflow or iv < -2147483648 or iv > 2147483647:
            return False
    return True


def finite_floats(dict d) -> bool:
    """True when every value of ``d`` is a finite float (exactly ``float``)."""
    cdef Py_ssize_t i = 0
    cdef PyObject* k
    cdef PyObject* v
    while PyDict_Next(d, &i, &k, &v):
        if type(<object>v) is not float or not isfinite(<double>(<object>v)):
            return False
    return True


# ---------------------------------------------------------------------------
# Canonical JSON text (the reference: gamestore.ringrift.jsontext._py_canonical_object)
# ---------------------------------------------------------------------------
include "_rrfloat.pxi"
include "_rrcanon.pxi"


def canonical_object(str text, str key):
    """``(index, key start, value end)`` of the top-level item ``key`` ((-1, -1, -1) when there is none) when
    ``text`` (ASCII) is an object spelled exactly as ``records.dump_json(json.loads(text))`` spells it; None
    when that is not proven (not ASCII, nesting deeper than 150, an int beyond int64, ...)."""
    cdef Py_ssize_t n, wn
    cdef Py_ssize_t out[3]
    cdef const char* s = _ascii(text, &n)
    cdef const char* w = _ascii(key, &wn)
    if s == NULL or w == NULL:
        return None
    with nogil:
        ok = rrj_canonical_object(s, n, w, wn, out)
    return (out[0], out[1], out[2]) if ok else None


# ---------------------------------------------------------------------------
# Comparing spans of two texts in place (the reference: gamestore.ringrift.jsontext._py_span_equal)
# ---------------------------------------------------------------------------
cdef extern from "Python.h":
    int PyUnicode_KIND(object)
    void* PyUnicode_DATA(object)


def span_equal(str a, Py_ssize_t i, str b, Py_ssize_t j, Py_ssize_t n) -> bool:
    """``a[i:i + n] == b[j:j + n]`` with both spans inside their texts, without copying them."""
    cdef int ka, kb
    if i < 0 or j < 0 or n < 0 or n > len(a) - i or n > len(b) - j:
        return False
    ka = PyUnicode_KIND(a)
    kb = PyUnicode_KIND(b)
    if ka != kb:  # stored in different widths: the texts decide
        return a[i:i + n] == b[j:j + n]
    return memcmp(<const char*>PyUnicode_DATA(a) + i * ka, <const char*>PyUnicode_DATA(b) + j * kb, n * ka) == 0
