# Included by _rrjson.pyx and _rrmove.pyx (after _rrfloat.pxi): the proof that a JSON text is spelled exactly
# as records.dump_json (json.dumps with separators (",", ":") and ensure_ascii=False) spells its value.
cdef extern from *:
    """
    #include <stdlib.h>
    typedef struct { uint64_t h; Py_ssize_t at, len; } rrj_key;
    /* int64_only: an int beyond int64 is not proven (its reader parses the text with orjson, which reads such an
       int as a float: -2**63 - 1 -> -9.223372036854776e+18) */
    typedef struct { const char* s; Py_ssize_t n; rrj_key* keys; Py_ssize_t nkeys, cap; int int64_only; } rrj_ctx;
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
        int64_t iv;
        char ch;
        while (j < c->n) {
            ch = c->s[j];
            if (ch == '.' || ch == 'e' || ch == 'E') isfloat = 1;
            else if (!((ch >= '0' && ch <= '9') || ch == '-' || ch == '+')) break;
            j++;
        }
        if (isfloat) return rr_float_exact(c->s + i, j - i, &d) ? j : -1;
        if (c->int64_only) return rr_int_exact(c->s + i, j - i, &iv) ? j : -1;
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
        rrj_ctx c = {s, n, NULL, 0, 0, 0};
        Py_ssize_t e;
        out[0] = out[1] = out[2] = -1;
        e = (n > 0 && s[0] == '{') ? rrj_object(&c, 0, 0, want, wn, out, out + 1, out + 2) : -1;
        free(c.keys);
        return e == n;
    }
    """
    int rrj_canonical_object(const char* s, Py_ssize_t n, const char* want, Py_ssize_t wn, Py_ssize_t* out) noexcept nogil
    ctypedef struct rrj_ctx:
        const char* s
        Py_ssize_t n
        void* keys
        Py_ssize_t nkeys, cap
        int int64_only
    Py_ssize_t rrj_value(rrj_ctx* c, Py_ssize_t i, int depth) noexcept nogil
    Py_ssize_t rrj_string(const rrj_ctx* c, Py_ssize_t i) noexcept nogil
