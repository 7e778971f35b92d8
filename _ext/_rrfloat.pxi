# Included by _rrcols.pyx and _rrjson.pyx: the proof that a JSON number's text is what repr/str writes
# for the value it reads as (every module gets its own static copy).
from libc.stdint cimport int64_t

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object, Py_ssize_t*) except NULL
    bint PyUnicode_IS_ASCII(object)

cdef extern from *:
    """
    #include <math.h>
    #include <string.h>
    #include <stdint.h>
    typedef unsigned __int128 rr_u128;
    static rr_u128 rr_pow5[56];
    static long double rr_p10l[28];
    static double rr_p10[23];

    static void rr_init(void) {
        int i;
        rr_pow5[0] = 1;
        for (i = 1; i < 56; i++) rr_pow5[i] = rr_pow5[i - 1] * 5;
        rr_p10l[0] = 1.0L;
        for (i = 1; i < 28; i++) rr_p10l[i] = rr_p10l[i - 1] * 10.0L;  /* exact: 5^27 < 2^64 */
        rr_p10[0] = 1.0;
        for (i = 1; i < 23; i++) rr_p10[i] = rr_p10[i - 1] * 10.0;  /* exact: 5^22 < 2^53 */
    }

    static int rr_bitlen(uint64_t x) { return x ? 64 - __builtin_clzll(x) : 0; }

    /* 1 when d (> 0, finite) is the double nearest to T = t * 10^k (n digits, t % 10 != 0) and
       T is what repr(d) writes: no decimal with fewer digits rounds to d and T is the n-digit
       decimal nearest to d (of two as near, the one with an even last digit: dtoa's rule).  Exact
       integer arithmetic; 0 whenever that is not proven (a boundary case, numbers out of range). */
    static int rr_proof(uint64_t t, int n, int k, double d) {
        uint64_t bits, m;
        int be, e, S, R, a2, a5, b2;
        rr_u128 Tq, Dq, Hup, Hlo, Half, Unit, diff, Lq, Uq;
        memcpy(&bits, &d, 8);
        be = (int)((bits >> 52) & 0x7ff);
        if (be == 0 || be == 0x7ff) return 0;
        m = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
        e = be - 1075;                           /* d = m * 2^e */
        S = 1 - k;                                /* scale by 2^S * 5^R: every quantity an integer */
        if (2 - e > S) S = 2 - e;
        if (S < 0) S = 0;
        R = k < 0 ? -k : 0;
        a2 = k + S; a5 = k + R; b2 = e + S;       /* Tq = t 2^a2 5^a5, Dq = m 2^b2 5^R */
        if (a5 > 55 || R > 55) return 0;
        if (rr_bitlen(t) + a2 + (a5 * 2322 + 999) / 1000 > 124) return 0;
        if (53 + b2 + (R * 2322 + 999) / 1000 > 124) return 0;
        Tq = ((rr_u128)t * rr_pow5[a5]) << a2;
        Dq = ((rr_u128)m * rr_pow5[R]) << b2;
        Hup = rr_pow5[R] << (b2 - 1);             /* half the gap to the next double up */
        Hlo = (m == (1ULL << 52) && be > 1) ? rr_pow5[R] << (b2 - 2) : Hup;
        Unit = rr_pow5[a5] << a2;                 /* 10^k */
        Half = rr_pow5[a5] << (a2 - 1);
        if (!(Tq + Hlo > Dq && Tq < Dq + Hup)) return 0;          /* T rounds to d, strictly */
        diff = Tq > Dq ? Tq - Dq : Dq - Tq;
        if (diff > Half) return 0;                                 /* T is the n-digit decimal nearest d, */
        if (diff == Half && (Hlo != Hup || (t & 1))) return 0;     /* or of two as near, the even one */
        if (n >= 2) {                                              /* the (n-1)-digit decimals around T */
            Lq = Tq - (rr_u128)(t % 10) * Unit;
            Uq = Lq + 10 * Unit;
            if (!(Lq + Hlo < Dq) || !(Uq > Dq + Hup)) return 0;
        }
        return 1;
    }

    /* 8 ASCII digits at p (little-endian load) as their value, or -1 (fast_float's SWAR parse). */
    static inline int64_t rr_eight(const char* p) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        uint64_t x;
        memcpy(&x, p, 8);
        if (((x & 0xF0F0F0F0F0F0F0F0ULL) | (((x + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4))
                != 0x3333333333333333ULL) return -1;
        x -= 0x3030303030303030ULL;
        x = (x * 10) + (x >> 8);
        x = (((x & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32)))
             + (((x >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >> 32;
        return (int64_t)x;
    #else
        (void)p;
        return -1;
    #endif
    }

    static inline int rr_ndig8(uint64_t v) {  /* digits of 1 <= v < 10^8 */
        return v >= 10000000 ? 8 : v >= 1000000 ? 7 : v >= 100000 ? 6 : v >= 10000 ? 5 : v >= 1000 ? 4 : v >= 100 ? 3 : v >= 10 ? 2 : 1;
    }

    /* The length of the number at s[0:len] (at most 40 characters read) when it is a JSON number that
       float() reads as *out and repr() writes back exactly as that text; 0 when not proven.  What follows
       the number is the caller's to check (a separator: no number character).  repr's layout
       (format_float_short, mode 'r'): digits D (n of them, no trailing zero), decimal point
       position decpt; "D[0].D[1:]e+XX" when decpt <= -4 or decpt > 16, else positional with at
       least one digit after the point ("0.000D", "D000.0", "DD.DD"). */
    static Py_ssize_t rr_float_prefix(const char* s, Py_ssize_t len, double* out) {
        Py_ssize_t i = 0, i0, f0, e0, ilen, flen = -1, elen = 0;
        int neg = 0, nd = 0, z = 0, k = 0, x = 0, xneg = 0, n, decpt, ax;
        uint64_t t = 0;
        double d;
        long double v;
        int64_t v8;
        if (len < 1) return 0;
        if (len > 40) len = 40;
        if (s[0] == '-') { neg = 1; i = 1; }
        i0 = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (t || s[i] != '0') { if (nd >= 19) return 0; t = t * 10 + (uint64_t)(s[i] - '0'); nd++; }
            i++;
        }
        ilen = i - i0;
        if (ilen == 0 || (ilen > 1 && s[i0] == '0')) return 0;
        if (i < len && s[i] == '.') {
            f0 = ++i;
            while (i + 8 <= len && (v8 = rr_eight(s + i)) >= 0) {  /* 8 digits at a time: as the loop below */
                if (t) { if (nd + 8 > 19) return 0; t = t * 100000000ULL + (uint64_t)v8; nd += 8; }
                else if (v8) { t = (uint64_t)v8; nd = rr_ndig8(t); }
                k -= 8; i += 8;
            }
            while (i < len && s[i] >= '0' && s[i] <= '9') {
                if (t || s[i] != '0') { if (nd >= 19) return 0; t = t * 10 + (uint64_t)(s[i] - '0'); nd++; }
                k--; i++;
            }
            flen = i - f0;
            if (flen == 0) return 0;
        }
        if (i < len && s[i] == 'e') {
            i++;
            if (i >= len || (s[i] != '-' && s[i] != '+')) return 0;  /* repr always signs the exponent */
            xneg = s[i] == '-';
            e0 = ++i;
            while (i < len && s[i] >= '0' && s[i] <= '9') { if (i - e0 >= 3) return 0; x = x * 10 + (s[i] - '0'); i++; }
            elen = i - e0;
            if (elen == 0) return 0;
            k += xneg ? -x : x;
        }
        if (t == 0) {
            if (i == 3 + neg && memcmp(s + neg, "0.0", 3) == 0) { *out = neg ? -0.0 : 0.0; return i; }
            return 0;
        }
        while (t % 10 == 0) { t /= 10; k++; z++; }
        n = nd - z;
        if (n > 17) return 0;
        decpt = k + n;
        if (decpt <= -4 || decpt > 16) {          /* exponent form: one nonzero digit before the point */
            ax = decpt - 1 < 0 ? 1 - decpt : decpt - 1;
            if (!elen || ilen != 1 || s[i0] == '0' || elen != (ax >= 100 ? 3 : 2)) return 0;
            if (n > 1 ? flen != n - 1 : flen >= 0) return 0;
        } else {                                   /* positional */
            if (elen || flen < 0) return 0;
            if (decpt <= 0) {
                if (ilen != 1 || s[i0] != '0' || flen != n - decpt) return 0;
            } else if (decpt >= n) {
                if (s[i0] == '0' || ilen != decpt || flen != 1) return 0;
            } else {
                if (s[i0] == '0' || ilen != decpt || flen != n - decpt) return 0;
            }
        }
        if (n <= 15 && k >= -22 && k <= 22) {
            /* exact operands, one rounding: d is the double nearest T; and decimals of <= 15
               digits round to distinct doubles (DBL_DIG), so no other of <= n digits gives d */
            d = k < 0 ? (double)t / rr_p10[-k] : (double)t * rr_p10[k];
            if (isinf(d)) return 0;
            *out = neg ? -d : d;
            return i;
        }
        if (k > 27 || k < -54) return 0;
        if (t < (1ULL << 53) && k >= -22 && k <= 0) {
            d = (double)t / rr_p10[-k];  /* correctly rounded (one rounding of exact operands) */
        } else {
            if (k >= 0) v = (long double)t * rr_p10l[k];
            else if (k >= -27) v = (long double)t / rr_p10l[-k];
            else v = (long double)t / rr_p10l[27] / rr_p10l[-k - 27];
            d = (double)v;
        }
        if (!rr_proof(t, n, k, d)) {
            double up = nextafter(d, INFINITY), down = nextafter(d, 0.0);
            if (rr_proof(t, n, k, up)) d = up;
            else if (rr_proof(t, n, k, down)) d = down;
            else return 0;
        }
        *out = neg ? -d : d;
        return i;
    }

    /* 1 and *out when s[0:len] is a JSON number that float() reads as *out and repr() writes back
       exactly as s (so json.dumps gives back the same text); 0 when not proven. */
    static int rr_float_exact(const char* s, Py_ssize_t len, double* out) {
        return len >= 1 && len <= 40 && rr_float_prefix(s, len, out) == len;
    }

    /* 1 and *out when s[0:len] is an int's repr (json.dumps writes it back the same) within int64. */
    static int rr_int_exact(const char* s, Py_ssize_t len, int64_t* out) {
        Py_ssize_t i = 0;
        int neg = 0;
        uint64_t v = 0, lim;
        if (len >= 1 && s[0] == '-') { neg = 1; i = 1; }
        if (i >= len || len - i > 19) return 0;
        if (s[i] == '0' && (len - i > 1 || neg)) return 0;  /* leading zero, "-0" */
        for (; i < len; i++) {
            if (s[i] < '0' || s[i] > '9') return 0;
            v = v * 10 + (uint64_t)(s[i] - '0');
        }
        lim = neg ? (1ULL << 63) : (1ULL << 63) - 1;
        if (v > lim) return 0;
        *out = neg ? (int64_t)(0 - v) : (int64_t)v;
        return 1;
    }
    """
    void rr_init()
    int rr_float_exact(const char* s, Py_ssize_t n, double* out) noexcept nogil
    Py_ssize_t rr_float_prefix(const char* s, Py_ssize_t n, double* out) noexcept nogil
    int rr_int_exact(const char* s, Py_ssize_t n, int64_t* out) noexcept nogil

rr_init()


cdef const char* _ascii(str text, Py_ssize_t* n) except? NULL:
    """The bytes of an ASCII ``text`` (its own storage); NULL when it is not ASCII (never a ``json.dumps`` text with ``ensure_ascii``)."""
    if not PyUnicode_IS_ASCII(text):
        return NULL
    return PyUnicode_AsUTF8AndSize(text, n)
