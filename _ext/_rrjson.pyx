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

cdef extern from *:
    """
    #include <stdlib.h>
    typedef struct { uint64_t h; Py_ssize_t at, len; } rrj_key;
    typedef struct { const char* s; Py_ssize_t n; rrj_key* keys; Py_ssize_t nkeys, cap; } rrj_ctx;
    #define RRJ_MAX_DEPTH 150

    static Py_ssize_t rrj_value(rrj_ctx* c, Py_ssize_t i, int depth);

    /* end of the string at s[i] == '"' when every character is spelled as json.dumps(ensure_ascii=False)
       spells it (escapes \\" \\\\ \\b \\f \\n \\r \\t, other control characters as lowercase \\u00xx, the rest
       as they are), else -1 */
    static Py_ssize_t rrj_string(const rrj_ctx* c, Py_ssize_t i) {
        const unsigned char* s = (const unsigned char*)c->s;
        Py_ssize_t n = c->n;
        unsigned char ch, h;
        int v;
        for (i++; i < n; i++) {
            ch = s[i];
            if (ch == '"') return i + 1;
            if (ch < 0x20) return -1;
            if (ch != '\\\\') continue;
            if (i + 1 >= n) return -1;
            ch = s[i + 1];
            if (ch == '"' || ch == '\\\\' || ch == 'b' || ch == 'f' || ch == 'n' || ch == 'r' || ch == 't') { i++; continue; }
            if (ch != 'u' || i + 5 >= n || s[i + 2] != '0' || s[i + 3] != '0' || (s[i + 4] != '0' && s[i + 4] != '1')) return -1;
            h = s[i + 5];
            if (h >= '0' && h <= '9') v = h - '0';
            else if (h >= 'a' && h <= 'f') v = h - 'a' + 10;
            else return -1;
            v += (s[i + 4] - '0') * 16;
            if (v == 8 || v == 9 || v == 10 || v == 12 || v == 13) return -1;  /* these have short escapes */
            i += 5;
        }
        return -1;
    }

    static int rrj_keycmp(const void* a, const void* b) {
        uint64_t x = ((const rrj_key*)a)->h, y = ((const rrj_key*)b)->h;
        return x < y ? -1 : x > y;
    }

    /* 1 when the keys[first:] spans are pairwise different texts (canonical spellings: different values) */
    static int rrj_distinct(rrj_ctx* c, Py_ssize_t first) {
        Py_ssize_t m = c->nkeys - first, a, b;
        rrj_key* k = c->keys + first;
        if (m < 2) return 1;
        if (m > 16) qsort(k, (size_t)m, sizeof(rrj_key), rrj_keycmp);
        for (a = 0; a < m; a++) {
            for (b = a + 1; b < m; b++) {
                if (k[b].h != k[a].h) { if (m > 16) break; continue; }
                if (k[b].len == k[a].len && memcmp(c->s + k[a].at, c->s + k[b].at, (size_t)k[a].len) == 0) return 0;
            }
        }
        return 1;
    }

    static int rrj_push(rrj_ctx* c, Py_ssize_t at, Py_ssize_t end) {
        uint64_t h = 1469598103934665603ULL;
        Py_ssize_t j;
        if (c->nkeys == c->cap) {
            Py_ssize_t cap = c->cap ? 2 * c->cap : 64;
            rrj_key* k = (rrj_key*)realloc(c->keys, (size_t)cap * sizeof(rrj_key));
            if (!k) return 0;
            c->keys = k;
            c->cap = cap;
        }
        for (j = at; j < end; j++) h = (h ^ (unsigned char)c->s[j]) * 1099511628211ULL;
        c->keys[c->nkeys].h = h;
        c->keys[c->nkeys].at = at;
        c->keys[c->nkeys].len = end - at;
        c->nkeys++;
        return 1;
    }

    /* the object at s[i] == '{'; *found_* locate the item whose key text is want[0:wn] (depth 0 only) */
    static Py_ssize_t rrj_object(rrj_ctx* c, Py_ssize_t i, int depth, const char* want, Py_ssize_t wn,
                                 Py_ssize_t* found_index, Py_ssize_t* found_at, Py_ssize_t* found_end) {
        Py_ssize_t first = c->nkeys, e, index = 0, k0;
        i++;
        if (i < c->n && c->s[i] == '}') return i + 1;
        for (;;) {
            if (i >= c->n || c->s[i] != '"') return -1;
            k0 = i;
            e = rrj_string(c, i);
            if (e < 0 || e >= c->n || c->s[e] != ':' || !rrj_push(c, k0 + 1, e - 1)) return -1;
            i = rrj_value(c, e + 1, depth + 1);
            if (i < 0) return -1;
            if (want && e - k0 - 2 == wn && memcmp(c->s + k0 + 1, want, (size_t)wn) == 0) {
                *found_index = index; *found_at = k0; *found_end = i;
            }
            index++;
            if (i >= c->n) return -1;
            if (c->s[i] == '}') break;
            if (c->s[i] != ',') return -1;
            i++;
        }
        if (!rrj_distinct(c, first)) return -1;
        c->nkeys = first;
        return i + 1;
    }

    static Py_ssize_t rrj_number(const rrj_ctx* c, Py_ssize_t i) {
        Py_ssize_t j = i, k;
        int isfloat = 0;
        double d;
        char ch;
        while (j < c->n) {
            ch = c->s[j];
            if (ch == '.' || ch == 'e' || ch == 'E') isfloat = 1;
            else if (!((ch >= '0' && ch <= '9') || ch == '-' || ch == '+')) break;
            j++;
        }
        if (isfloat) return rr_float_exact(c->s + i, j - i, &d) ? j : -1;
        /* an int: -?(0|[1-9][0-9]*), str() writes back any (within Python's 4300-digit conversion limit) */
        k = i + (c->s[i] == '-');
        if (k >= j || j - k > 4000 || (c->s[k] == '0' && (j - k > 1 || k > i))) return -1;
        for (; k < j; k++) if (c->s[k] < '0' || c->s[k] > '9') return -1;
        return j;
    }

    static Py_ssize_t rrj_value(rrj_ctx* c, Py_ssize_t i, int depth) {
        Py_ssize_t dummy;
        char ch;
        if (i >= c->n || depth > RRJ_MAX_DEPTH) return -1;
        ch = c->s[i];
        if (ch == '"') return rrj_string(c, i);
        if (ch == '{') return rrj_object(c, i, depth, NULL, 0, &dummy, &dummy, &dummy);
        if (ch == '[') {
            i++;
            if (i < c->n && c->s[i] == ']') return i + 1;
            for (;;) {
                i = rrj_value(c, i, depth + 1);
                if (i < 0 || i >= c->n) return -1;
                if (c->s[i] == ']') return i + 1;
                if (c->s[i] != ',') return -1;
                i++;
            }
        }
        if (ch == '-' || (ch >= '0' && ch <= '9')) return rrj_number(c, i);
        if (ch == 'n' && c->n - i >= 4 && memcmp(c->s + i, "null", 4) == 0) return i + 4;
        if (ch == 't' && c->n - i >= 4 && memcmp(c->s + i, "true", 4) == 0) return i + 4;
        if (ch == 'f' && c->n - i >= 5 && memcmp(c->s + i, "false", 5) == 0) return i + 5;
        return -1;
    }

    /* 1 when s[0:n] is records.dump_json(json.loads(s)) and an object; out[0:3] = index, start of the key,
       end of the value of the top-level item whose key is want (-1s when absent) */
    static int rrj_canonical_object(const char* s, Py_ssize_t n, const char* want, Py_ssize_t wn, Py_ssize_t* out) {
        rrj_ctx c = {s, n, NULL, 0, 0};
        Py_ssize_t e;
        out[0] = out[1] = out[2] = -1;
        e = (n > 0 && s[0] == '{') ? rrj_object(&c, 0, 0, want, wn, out, out + 1, out + 2) : -1;
        free(c.keys);
        return e == n;
    }
    """
    int rrj_canonical_object(const char* s, Py_ssize_t n, const char* want, Py_ssize_t wn, Py_ssize_t* out) noexcept nogil


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
