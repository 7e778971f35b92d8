# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""RingRift's ``move_probs`` / ``search_stats_json`` text parsed straight into the encoder's columns
(``gamestore.ringrift.textcols``; the column layout: ``ColsHead`` in ``_ext/_common.pxd``).

A text is taken only when ``json.dumps`` of the value ``json.loads`` reads gives it back byte for
byte: the default style (``", "``, ``": "``, ASCII), every key printable ASCII without escapes, no key
twice in a map, every number an int's or float's ``repr``.  The float check is a proof, in integer
arithmetic, that the text is what ``repr`` writes for the double it reads as (:c:func:`rr_float_exact`);
anything not proven returns None and takes the reference path (``cells.parse_policy`` /
``cells.parse_search``), which keeps it verbatim or splits it in Python.
"""
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.string cimport memcpy, memset
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from _common cimport ColsHead, MAX_FIELDS

include "_rrfloat.pxi"


def float_text(str text):
    """``float(text)`` when ``repr`` of it is ``text`` exactly (proven), else None (not proven)."""
    cdef Py_ssize_t n
    cdef double d
    cdef const char* s = _ascii(text, &n)
    return d if s != NULL and rr_float_exact(s, n, &d) else None


def int_text(str text):
    """``int(text)`` when ``repr`` of it is ``text`` exactly and it fits int64, else None."""
    cdef Py_ssize_t n
    cdef int64_t v
    cdef const char* s = _ascii(text, &n)
    return v if s != NULL and rr_int_exact(s, n, &v) else None


cdef extern from *:
    """
    /* Candidate columns of the text being parsed (grown as needed; the GIL serialises their use). */
    static double *rr_a = NULL, *rr_b = NULL;
    static int32_t *rr_v = NULL;
    static Py_ssize_t *rr_ks = NULL, *rr_kl = NULL;
    static int32_t *rr_tab = NULL;
    static Py_ssize_t rr_cap = 0, rr_tabcap = 0;

    static int rr_reserve(Py_ssize_t n) {
        Py_ssize_t cap;
        if (n <= rr_cap) return 1;
        if (n > (1 << 24)) return 0;
        cap = rr_cap ? rr_cap : 256;
        while (cap < n) cap *= 2;
        rr_a = (double*)realloc(rr_a, cap * sizeof(double));
        rr_b = (double*)realloc(rr_b, cap * sizeof(double));
        rr_v = (int32_t*)realloc(rr_v, cap * sizeof(int32_t));
        rr_ks = (Py_ssize_t*)realloc(rr_ks, cap * sizeof(Py_ssize_t));
        rr_kl = (Py_ssize_t*)realloc(rr_kl, cap * sizeof(Py_ssize_t));
        if (!rr_a || !rr_b || !rr_v || !rr_ks || !rr_kl) { rr_cap = 0; return 0; }
        rr_cap = cap;
        return 1;
    }

    /* A key as json.dumps writes it with ensure_ascii (printable ASCII, nothing escaped): its span. */
    static int rr_key(const char* s, Py_ssize_t len, Py_ssize_t* pi, Py_ssize_t* start, Py_ssize_t* klen) {
        Py_ssize_t i = *pi;
        unsigned char c;
        if (i >= len || s[i] != '"') return 0;
        *start = ++i;
        while (i < len) {
            c = (unsigned char)s[i];
            if (c == '"') { *klen = i - *start; *pi = i + 1; return 1; }
            if (c < 0x20 || c > 0x7e || c == '\\\\') return 0;
            i++;
        }
        return 0;
    }

    static Py_ssize_t rr_numend(const char* s, Py_ssize_t len, Py_ssize_t i) {
        while (i < len && ((s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '+' || s[i] == '.' || s[i] == 'e' || s[i] == 'E')) i++;
        return i;
    }

    /* No key of the n recorded twice. */
    static int rr_distinct(const char* s, Py_ssize_t n) {
        Py_ssize_t size = 16, i, j;
        uint64_t h, mask;
        const unsigned char* p;
        while (size < 2 * n) size *= 2;
        if (size > rr_tabcap) {
            rr_tab = (int32_t*)realloc(rr_tab, size * sizeof(int32_t));
            if (!rr_tab) { rr_tabcap = 0; return 0; }
            rr_tabcap = size;
        }
        memset(rr_tab, 0, size * sizeof(int32_t));
        mask = (uint64_t)size - 1;
        for (i = 0; i < n; i++) {
            p = (const unsigned char*)s + rr_ks[i];
            h = 1469598103934665603ULL;
            for (j = 0; j < rr_kl[i]; j++) h = (h ^ p[j]) * 1099511628211ULL;
            h ^= h >> 29;
            for (j = (Py_ssize_t)(h & mask); rr_tab[j]; j = (j + 1) & (Py_ssize_t)mask) {
                Py_ssize_t o = rr_tab[j] - 1;
                if (rr_kl[o] == rr_kl[i] && memcmp(s + rr_ks[o], s + rr_ks[i], rr_kl[i]) == 0) return 0;
            }
            rr_tab[j] = (int32_t)(i + 1);
        }
        return 1;
    }

    /* A map {"key": number, ...} in json.dumps' default style at s[*pi]: the first one records its keys
       (first != 0), the others must have the same keys in the same order.  Values into column `col`:
       0 rr_a, 1 rr_b (floats), 2 rr_v (int32 ints).  Its entry count, or -1 when not proven exact. */
    static Py_ssize_t rr_map(const char* s, Py_ssize_t len, Py_ssize_t* pi, int col, int first, Py_ssize_t expect) {
        Py_ssize_t i = *pi, n = 0, ks, kl, e;
        int64_t iv;
        if (i >= len || s[i] != '{') return -1;
        i++;
        if (i < len && s[i] == '}') return -1;  /* empty: the reference's generic path */
        for (;;) {
            if (first) {
                if (!rr_key(s, len, &i, &ks, &kl) || !rr_reserve(n + 1)) return -1;
                rr_ks[n] = ks; rr_kl[n] = kl;
            } else {  /* the first map's key n, quoted: the same bytes rr_key would have taken */
                if (n >= expect) return -1;
                kl = rr_kl[n];
                if (i + kl + 2 > len || s[i] != '"' || memcmp(s + i + 1, s + rr_ks[n], kl) != 0 || s[i + 1 + kl] != '"')
                    return -1;
                i += kl + 2;
            }
            if (i + 2 > len || s[i] != ':' || s[i + 1] != ' ') return -1;
            i += 2;
            if (col != 2) {  /* the number's end: what follows must be "}" or ", " (no number character) */
                e = rr_float_prefix(s + i, len - i, col == 0 ? &rr_a[n] : &rr_b[n]);
                if (!e) return -1;
                e += i;
            } else {
                e = rr_numend(s, len, i);
                if (!rr_int_exact(s + i, e - i, &iv) || iv < -2147483648LL || iv > 2147483647LL) return -1;
                rr_v[n] = (int32_t)iv;
            }
            n++;
            i = e;
            if (i < len && s[i] == '}') { i++; break; }
            if (i + 2 > len || s[i] != ',' || s[i + 1] != ' ') return -1;
            i += 2;
        }
        if (!first && n != expect) return -1;
        if (first && !rr_distinct(s, n)) return -1;
        *pi = i;
        return n;
    }

    /* search_stats_json: top-level keys, RingRift's order; what each holds (set up from Python). */
    static const char* rr_skeys[8] = {"q_values", "visit_counts", "search_depth", "uncertainty", "prior_policy",
                                      "root_value", "nodes_explored", "total_simulations"};
    static int rr_skind[8];  /* 0 q map, 1 visits map, 2 prior map, 3 float scalar, 4 int scalar */
    static int rr_sj[8];     /* map: its flag bit; scalar: its Layout index */
    static int rr_sbit[8];
    static int64_t rr_slo[8], rr_shi[8];

    /* The text of search statistics the usual shape (three maps with one key list, scalars; keys in
       RingRift's order, none unknown, none null) into the columns; candidate count or -1. */
    static Py_ssize_t rr_search(const char* s, Py_ssize_t len, int64_t* flags, double* sfloat, int64_t* sint) {
        Py_ssize_t i = 1, n = -1, ks, kl, e, m;
        int next = 0, j, seen = 0;
        double dv;
        int64_t iv;
        if (len < 2 || s[0] != '{' || s[len - 1] != '}') return -1;
        for (;;) {
            if (!rr_key(s, len, &i, &ks, &kl)) return -1;
            for (j = next; j < 8; j++)
                if ((Py_ssize_t)strlen(rr_skeys[j]) == kl && memcmp(rr_skeys[j], s + ks, kl) == 0) break;
            if (j == 8) return -1;
            next = j + 1;
            if (i + 2 > len || s[i] != ':' || s[i + 1] != ' ') return -1;
            i += 2;
            switch (rr_skind[j]) {
            case 0:
                n = rr_map(s, len, &i, 0, 1, 0);
                if (n < 0) return -1;
                *flags |= rr_sbit[j];
                seen |= 1;
                break;
            case 1: case 2:
                if (!(seen & 1)) return -1;
                m = rr_map(s, len, &i, rr_skind[j] == 1 ? 2 : 1, 0, n);
                if (m < 0) return -1;
                *flags |= rr_sbit[j];
                seen |= rr_skind[j] == 1 ? 2 : 4;
                break;
            case 3:  /* followed by "}" or ", ": checked below */
                e = rr_float_prefix(s + i, len - i, &dv);
                if (!e) return -1;
                e += i;
                sfloat[rr_sj[j]] = dv;
                *flags |= rr_sbit[j];
                i = e;
                break;
            default:
                e = rr_numend(s, len, i);
                if (!rr_int_exact(s + i, e - i, &iv) || iv < rr_slo[j] || iv > rr_shi[j]) return -1;
                sint[rr_sj[j]] = iv;
                *flags |= rr_sbit[j];
                i = e;
            }
            if (i == len - 1 && s[i] == '}') break;
            if (i + 2 > len || s[i] != ',' || s[i + 1] != ' ') return -1;
            i += 2;
        }
        return seen == 7 ? n : -1;
    }

    /* move_probs: a nonempty map candidate -> float in json.dumps' default style; candidate count or -1. */
    static Py_ssize_t rr_policy(const char* s, Py_ssize_t len) {
        Py_ssize_t i = 0, n = rr_map(s, len, &i, 0, 1, 0);
        return (n < 0 || i != len) ? -1 : n;
    }
    """
    Py_ssize_t rr_search(const char* s, Py_ssize_t n, int64_t* flags, double* sfloat, int64_t* sint) noexcept
    Py_ssize_t rr_policy(const char* s, Py_ssize_t n) noexcept
    double* rr_a
    double* rr_b
    int32_t* rr_v
    Py_ssize_t* rr_ks
    Py_ssize_t* rr_kl
    int rr_skind[8]
    int rr_sj[8]
    int rr_sbit[8]
    int64_t rr_slo[8]
    int64_t rr_shi[8]


def _setup_search_layout():
    """What each search_stats_json key fills: gamestore.schema's maps and scalars (as _common.load_layout orders them)."""
    from gamestore.schema import SEARCH_MAPS, SEARCH_SCALARS

    names = ("q_values", "visit_counts", "search_depth", "uncertainty", "prior_policy", "root_value",
             "nodes_explored", "total_simulations")
    maps = dict(SEARCH_MAPS)
    sfloats = [k for k, _c, _t, kind, _b in SEARCH_SCALARS if kind == "float"]
    sints = [k for k, _c, _t, kind, _b in SEARCH_SCALARS if kind == "int"]
    scalars = {k: (kind, str(t), b) for k, _c, t, kind, b in SEARCH_SCALARS}
    if set(names) != set(maps) | set(scalars) or [k for k, _b in SEARCH_MAPS] != ["q_values", "visit_counts", "prior_policy"]:
        raise ImportError("gamestore.schema's search statistics differ from _rrjson's: rebuild")
    for j, name in enumerate(names):
        if name in maps:
            rr_skind[j] = ("q_values", "visit_counts", "prior_policy").index(name)
            rr_sbit[j] = maps[name]
        else:
            kind, atype, bit = scalars[name]
            rr_sbit[j] = bit
            if kind == "float":
                rr_skind[j] = 3
                rr_sj[j] = sfloats.index(name)
            else:
                rr_skind[j] = 4
                rr_sj[j] = sints.index(name)
                bits = {"int32": 31, "int64": 63}[atype]
                rr_slo[j] = -(2 ** bits)
                rr_shi[j] = 2 ** bits - 1


_setup_search_layout()

cdef enum:
    COLS_POLICY = 0x100  # ColsHead.flags of a policy (gamestore._encode.COLS_POLICY)


cdef bytes _pack(ColsHead* head, Py_ssize_t n, const char* text):
    """``head`` and the parsed columns in ``gamestore._encode.Columns``' layout."""
    cdef Py_ssize_t i, keybytes = 0, off = 0
    head.n = n
    for i in range(n):
        keybytes += rr_kl[i]
    out = PyBytes_FromStringAndSize(NULL, sizeof(ColsHead) + 24 * n + keybytes)
    cdef char* p = PyBytes_AS_STRING(out)
    memcpy(p, head, sizeof(ColsHead))
    p += sizeof(ColsHead)
    memcpy(p, rr_a, 8 * n)
    p += 8 * n
    if head.flags == COLS_POLICY:
        memset(p, 0, 12 * n)
    else:
        memcpy(p, rr_b, 8 * n)
        memcpy(p + 8 * n, rr_v, 4 * n)
    p += 12 * n
    cdef int32_t* ends = <int32_t*>p
    cdef char* keys = p + 4 * n
    for i in range(n):
        memcpy(keys + off, text + rr_ks[i], rr_kl[i])
        off += rr_kl[i]
        ends[i] = <int32_t>off
    return out


def search_columns(str text):
    """The columns (``gamestore._encode.Columns`` data) of search statistics whose JSON text is exactly
    ``json.dumps`` of its value, in RingRift's key order and the usual shape; None when that is not proven."""
    cdef Py_ssize_t n, cnt
    cdef ColsHead head
    cdef const char* s = _ascii(text, &n)
    if s == NULL or n > 0x7fffffff:
        return None
    memset(&head, 0, sizeof(ColsHead))
    cnt = rr_search(s, n, &head.flags, head.sfloat, head.sint)
    return None if cnt < 0 else _pack(&head, cnt, s)


def policy_columns(str text):
    """The columns of a policy (candidate -> finite float) whose JSON text is exactly ``json.dumps`` of its
    value; None when that is not proven."""
    cdef Py_ssize_t n, cnt
    cdef ColsHead head
    cdef const char* s = _ascii(text, &n)
    if s == NULL or n > 0x7fffffff:
        return None
    cnt = rr_policy(s, n)
    if cnt < 0:
        return None
    memset(&head, 0, sizeof(ColsHead))
    head.flags = COLS_POLICY
    return _pack(&head, cnt, s)
