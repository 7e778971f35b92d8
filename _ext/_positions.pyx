# cython: boundscheck=False, wraparound=False, cdivision=True
"""Hot loops of PositionDataset's batch assembly (``gamestore/positions/gather.py`` is the spec).

A batch's positions come from several *sources* (decoded moves record
batches).  Each loop takes, per source, the address of one numpy array
(an ``int64`` table indexed by the position's ``part``) and copies every
position's data straight into the padded output: one copy, no GIL.
Arrays are passed as ndarrays (their data pointers read directly: cheaper
than buffer acquisition on a call per batch); the types and shapes are
checked here, the addresses' arrays are kept alive by the caller.
"""
cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, intptr_t, uint8_t, uintptr_t
from libc.string cimport memcpy, memset

cnp.import_array()

cdef extern from *:
    void __builtin_prefetch(const void* addr) nogil

#: positions ahead whose source rows a loop prefetches (the rows lie at random in a window's ~20 moves batches: each
#: read is a cache miss, and several in flight overlap their latency)
DEF AHEAD = 8


def address(a):
    """The data address of ndarray ``a`` (0 for None)."""
    if a is None:
        return 0
    if not isinstance(a, cnp.ndarray):
        raise TypeError("address: expected an ndarray")
    return <intptr_t> cnp.PyArray_DATA(<cnp.ndarray> a)


cdef inline void _check(cnp.ndarray a, int typenum, int ndim, str name) except *:
    if cnp.PyArray_TYPE(a) != typenum or cnp.PyArray_NDIM(a) != ndim or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise TypeError(f"{name}: expected a C-contiguous {ndim}-d array of numpy type {typenum}")


cdef inline void _check_parts(cnp.ndarray part, Py_ssize_t nsrc) except *:
    cdef const int32_t* p = <const int32_t*> cnp.PyArray_DATA(part)
    cdef Py_ssize_t i
    for i in range(cnp.PyArray_DIM(part, 0)):
        if p[i] < 0 or p[i] >= nsrc:
            raise IndexError(f"position {i}: part {p[i]} out of range")


def fill_policy(cnp.ndarray off_ptr, cnp.ndarray idx_ptr, cnp.ndarray prob_ptr, cnp.ndarray part, cnp.ndarray row,
                cnp.ndarray lens, cnp.ndarray index, cnp.ndarray prob, cnp.ndarray mask, int64_t unknown):
    """Row ``i`` of ``index``/``prob``/``mask``: the first ``lens[i]`` policy entries of source row ``row[i]``, then padding.

    Per source: ``off`` (int32 list offsets), ``idx`` (int64 per entry), ``prob`` (per entry, float32 or
    float64 as ``prob``).  Returns the first flat position of ``index`` equal to ``unknown``, or -1.
    """
    cdef Py_ssize_t n = cnp.PyArray_DIM(part, 0)
    for a, name in ((off_ptr, "off"), (idx_ptr, "idx"), (prob_ptr, "prob_ptr")):
        _check(a, cnp.NPY_INT64, 1, name)
    if cnp.PyArray_DIM(off_ptr, 0) != cnp.PyArray_DIM(idx_ptr, 0) or cnp.PyArray_DIM(off_ptr, 0) != cnp.PyArray_DIM(prob_ptr, 0):
        raise ValueError("address tables differ in length")
    _check(part, cnp.NPY_INT32, 1, "part")
    _check(row, cnp.NPY_INT64, 1, "row")
    _check(lens, cnp.NPY_INT32, 1, "lens")
    _check(index, cnp.NPY_INT64, 2, "index")
    _check(mask, cnp.NPY_BOOL, 2, "mask")
    cdef bint wide = cnp.PyArray_TYPE(prob) == cnp.NPY_FLOAT64
    _check(prob, cnp.NPY_FLOAT64 if wide else cnp.NPY_FLOAT32, 2, "prob")
    if (cnp.PyArray_DIM(row, 0) != n or cnp.PyArray_DIM(lens, 0) != n or cnp.PyArray_DIM(index, 0) != n
            or cnp.PyArray_DIM(prob, 0) != n or cnp.PyArray_DIM(mask, 0) != n
            or cnp.PyArray_DIM(prob, 1) != cnp.PyArray_DIM(index, 1) or cnp.PyArray_DIM(mask, 1) != cnp.PyArray_DIM(index, 1)):
        raise ValueError("output shapes do not match the positions")
    cdef Py_ssize_t width = cnp.PyArray_DIM(index, 1), nsrc = cnp.PyArray_DIM(off_ptr, 0)
    cdef const int64_t* offs = <const int64_t*> cnp.PyArray_DATA(off_ptr)
    cdef const int64_t* idxs = <const int64_t*> cnp.PyArray_DATA(idx_ptr)
    cdef const int64_t* probs = <const int64_t*> cnp.PyArray_DATA(prob_ptr)
    cdef const int32_t* p_part = <const int32_t*> cnp.PyArray_DATA(part)
    cdef const int64_t* p_row = <const int64_t*> cnp.PyArray_DATA(row)
    cdef const int32_t* p_lens = <const int32_t*> cnp.PyArray_DATA(lens)
    cdef int64_t* out_idx = <int64_t*> cnp.PyArray_DATA(index)
    cdef uint8_t* out_mask = <uint8_t*> cnp.PyArray_DATA(mask)
    cdef float* out_f = <float*> cnp.PyArray_DATA(prob)
    cdef double* out_d = <double*> cnp.PyArray_DATA(prob)
    cdef Py_ssize_t i, k, at
    cdef int64_t start, p, first = -1
    cdef int32_t ln
    cdef const int32_t* off
    cdef const int64_t* src_idx
    cdef const float* src_f
    cdef const double* src_d
    _check_parts(part, nsrc)
    cdef Py_ssize_t j
    with nogil:
        for i in range(min(n, AHEAD)):
            __builtin_prefetch((<const int32_t*> <intptr_t> offs[p_part[i]]) + p_row[i])
        for i in range(n):
            j = i + AHEAD
            if j < n:  # the offset of the position AHEAD on, and the entries of the one half-way
                __builtin_prefetch((<const int32_t*> <intptr_t> offs[p_part[j]]) + p_row[j])
            j = i + AHEAD // 2
            if j < n:
                p = p_part[j]
                start = (<const int32_t*> <intptr_t> offs[p])[p_row[j]]
                __builtin_prefetch((<const int64_t*> <intptr_t> idxs[p]) + start)
                if wide:
                    __builtin_prefetch((<const double*> <intptr_t> probs[p]) + start)
                else:
                    __builtin_prefetch((<const float*> <intptr_t> probs[p]) + start)
            p = p_part[i]
            off = <const int32_t*> <intptr_t> offs[p]
            src_idx = <const int64_t*> <intptr_t> idxs[p]
            start = off[p_row[i]]
            ln = p_lens[i]
            if ln > width:
                ln = <int32_t> width
            at = i * width
            memcpy(out_idx + at, src_idx + start, ln * sizeof(int64_t))
            if first < 0:
                for k in range(ln):
                    if src_idx[start + k] == unknown:
                        first = at + k
                        break
            for k in range(ln, width):
                out_idx[at + k] = -1
            memset(out_mask + at, 1, ln)
            memset(out_mask + at + ln, 0, width - ln)
            if wide:
                src_d = <const double*> <intptr_t> probs[p]
                memcpy(out_d + at, src_d + start, ln * sizeof(double))
                memset(out_d + at + ln, 0, (width - ln) * sizeof(double))
            else:
                src_f = <const float*> <intptr_t> probs[p]
                memcpy(out_f + at, src_f + start, ln * sizeof(float))
                memset(out_f + at + ln, 0, (width - ln) * sizeof(float))
    return first


def copy_rows(cnp.ndarray base_ptr, cnp.ndarray valid_ptr, cnp.ndarray part, cnp.ndarray row, cnp.ndarray out,
              cnp.ndarray mask):
    """Row ``i`` of ``out``: row ``row[i]`` of its source's fixed-size rows (same bytes per row), zeros where not valid.

    Per source: ``base`` (C-contiguous rows of ``out``'s row size) and ``valid`` (uint8 per row; 0 = all valid).
    """
    cdef Py_ssize_t n = cnp.PyArray_DIM(part, 0)
    _check(base_ptr, cnp.NPY_INT64, 1, "base")
    _check(valid_ptr, cnp.NPY_INT64, 1, "valid")
    if cnp.PyArray_DIM(base_ptr, 0) != cnp.PyArray_DIM(valid_ptr, 0):
        raise ValueError("address tables differ in length")
    _check(part, cnp.NPY_INT32, 1, "part")
    _check(row, cnp.NPY_INT64, 1, "row")
    _check(mask, cnp.NPY_BOOL, 1, "mask")
    if not cnp.PyArray_IS_C_CONTIGUOUS(out) or cnp.PyArray_NDIM(out) < 1:
        raise TypeError("out: expected a C-contiguous array")
    if cnp.PyArray_DIM(row, 0) != n or cnp.PyArray_DIM(out, 0) != n or cnp.PyArray_DIM(mask, 0) != n:
        raise ValueError("output shapes do not match the positions")
    cdef Py_ssize_t width = (cnp.PyArray_NBYTES(out) // n) if n else 0, nsrc = cnp.PyArray_DIM(base_ptr, 0)
    cdef const int64_t* bases = <const int64_t*> cnp.PyArray_DATA(base_ptr)
    cdef const int64_t* valids = <const int64_t*> cnp.PyArray_DATA(valid_ptr)
    cdef const int32_t* p_part = <const int32_t*> cnp.PyArray_DATA(part)
    cdef const int64_t* p_row = <const int64_t*> cnp.PyArray_DATA(row)
    cdef uint8_t* dst = <uint8_t*> cnp.PyArray_DATA(out)
    cdef uint8_t* p_mask = <uint8_t*> cnp.PyArray_DATA(mask)
    cdef Py_ssize_t i
    cdef int64_t p
    cdef intptr_t v
    _check_parts(part, nsrc)
    cdef Py_ssize_t j, k
    cdef const uint8_t* ahead
    with nogil:
        for i in range(n):
            j = i + AHEAD
            if j < n:
                ahead = (<const uint8_t*> <intptr_t> bases[p_part[j]]) + p_row[j] * width
                for k in range(0, width, 64):
                    __builtin_prefetch(ahead + k)
            p = p_part[i]
            v = <intptr_t> valids[p]
            if v != 0 and (<const uint8_t*> v)[p_row[i]] == 0:
                memset(dst + i * width, 0, width)
                p_mask[i] = 0
            else:
                memcpy(dst + i * width, (<const uint8_t*> <intptr_t> bases[p]) + p_row[i] * width, width)
                p_mask[i] = 1


def fill_head(cnp.ndarray number_ptr, cnp.ndarray player_ptr, cnp.ndarray lens_ptr, cnp.ndarray part, cnp.ndarray row,
              cnp.ndarray game, cnp.ndarray game_players, cnp.ndarray game_winner, cnp.ndarray game_value,
              cnp.ndarray game_present, int64_t first_player, cnp.ndarray head, cnp.ndarray value,
              cnp.ndarray value_mask, cnp.ndarray mover, cnp.ndarray has_policy, cnp.ndarray lens):
    """The per-position columns of a batch in one pass; returns the widest policy (0 for none).

    Per source: ``number`` (int32), ``player`` (int64, -1 when null), ``lens`` (int32 policy entries) per row.
    Per game: ``game_players``/``game_winner`` (int64), ``game_value`` (float32 [G, P]), ``game_present``
    (bool [G, P]).  Out: ``head`` int64 [4, n] (move number, player, players, winner), ``value``/``value_mask``
    [n, P] (the game's rows), ``mover`` float32 [n] (the value of slot ``player - first_player``, 0 outside),
    ``has_policy`` bool [n], ``lens`` int32 [n].
    """
    cdef Py_ssize_t n = cnp.PyArray_DIM(part, 0)
    for a, name in ((number_ptr, "number"), (player_ptr, "player"), (lens_ptr, "lens")):
        _check(a, cnp.NPY_INT64, 1, name)
    cdef Py_ssize_t nsrc = cnp.PyArray_DIM(number_ptr, 0)
    if cnp.PyArray_DIM(player_ptr, 0) != nsrc or cnp.PyArray_DIM(lens_ptr, 0) != nsrc:
        raise ValueError("address tables differ in length")
    _check(part, cnp.NPY_INT32, 1, "part")
    _check(row, cnp.NPY_INT64, 1, "row")
    _check(game, cnp.NPY_INT64, 1, "game")
    _check(game_players, cnp.NPY_INT64, 1, "game_players")
    _check(game_winner, cnp.NPY_INT64, 1, "game_winner")
    _check(game_value, cnp.NPY_FLOAT32, 2, "game_value")
    _check(game_present, cnp.NPY_BOOL, 2, "game_present")
    _check(head, cnp.NPY_INT64, 2, "head")
    _check(value, cnp.NPY_FLOAT32, 2, "value")
    _check(value_mask, cnp.NPY_BOOL, 2, "value_mask")
    _check(mover, cnp.NPY_FLOAT32, 1, "mover")
    _check(has_policy, cnp.NPY_BOOL, 1, "has_policy")
    _check(lens, cnp.NPY_INT32, 1, "lens")
    cdef Py_ssize_t ngames = cnp.PyArray_DIM(game_players, 0), width = cnp.PyArray_DIM(game_value, 1)
    if (cnp.PyArray_DIM(game_winner, 0) != ngames or cnp.PyArray_DIM(game_value, 0) != ngames
            or cnp.PyArray_DIM(game_present, 0) != ngames or cnp.PyArray_DIM(game_present, 1) != width):
        raise ValueError("game tables differ in shape")
    if (cnp.PyArray_DIM(row, 0) != n or cnp.PyArray_DIM(game, 0) != n or cnp.PyArray_DIM(head, 0) != 4
            or cnp.PyArray_DIM(head, 1) != n or cnp.PyArray_DIM(value, 0) != n or cnp.PyArray_DIM(value, 1) != width
            or cnp.PyArray_DIM(value_mask, 0) != n or cnp.PyArray_DIM(value_mask, 1) != width
            or cnp.PyArray_DIM(mover, 0) != n or cnp.PyArray_DIM(has_policy, 0) != n or cnp.PyArray_DIM(lens, 0) != n):
        raise ValueError("output shapes do not match the positions")
    _check_parts(part, nsrc)
    cdef const int64_t* p_game = <const int64_t*> cnp.PyArray_DATA(game)
    cdef Py_ssize_t i
    for i in range(n):
        if p_game[i] < 0 or p_game[i] >= ngames:
            raise IndexError(f"position {i}: game {p_game[i]} out of range")
    cdef const int64_t* numbers = <const int64_t*> cnp.PyArray_DATA(number_ptr)
    cdef const int64_t* players = <const int64_t*> cnp.PyArray_DATA(player_ptr)
    cdef const int64_t* lenss = <const int64_t*> cnp.PyArray_DATA(lens_ptr)
    cdef const int32_t* p_part = <const int32_t*> cnp.PyArray_DATA(part)
    cdef const int64_t* p_row = <const int64_t*> cnp.PyArray_DATA(row)
    cdef const int64_t* g_players = <const int64_t*> cnp.PyArray_DATA(game_players)
    cdef const int64_t* g_winner = <const int64_t*> cnp.PyArray_DATA(game_winner)
    cdef const float* g_value = <const float*> cnp.PyArray_DATA(game_value)
    cdef const uint8_t* g_present = <const uint8_t*> cnp.PyArray_DATA(game_present)
    cdef int64_t* out = <int64_t*> cnp.PyArray_DATA(head)
    cdef float* out_value = <float*> cnp.PyArray_DATA(value)
    cdef uint8_t* out_mask = <uint8_t*> cnp.PyArray_DATA(value_mask)
    cdef float* out_mover = <float*> cnp.PyArray_DATA(mover)
    cdef uint8_t* out_has = <uint8_t*> cnp.PyArray_DATA(has_policy)
    cdef int32_t* out_lens = <int32_t*> cnp.PyArray_DATA(lens)
    cdef int64_t p, r, g, player, slot
    cdef int32_t ln, widest = 0
    cdef Py_ssize_t j
    with nogil:
        for i in range(n):
            j = i + AHEAD
            if j < n:
                p = p_part[j]
                r = p_row[j]
                __builtin_prefetch((<const int64_t*> <intptr_t> players[p]) + r)
                __builtin_prefetch((<const int32_t*> <intptr_t> lenss[p]) + r)
                __builtin_prefetch((<const int32_t*> <intptr_t> numbers[p]) + r)
            p = p_part[i]
            r = p_row[i]
            g = p_game[i]
            player = (<const int64_t*> <intptr_t> players[p])[r]
            ln = (<const int32_t*> <intptr_t> lenss[p])[r]
            out[i] = (<const int32_t*> <intptr_t> numbers[p])[r]
            out[n + i] = player
            out[2 * n + i] = g_players[g]
            out[3 * n + i] = g_winner[g]
            memcpy(out_value + i * width, g_value + g * width, width * sizeof(float))
            memcpy(out_mask + i * width, g_present + g * width, width)
            slot = player - first_player
            out_mover[i] = g_value[g * width + slot] if 0 <= slot < width else 0.0
            out_has[i] = ln > 0
            out_lens[i] = ln
            if ln > widest:
                widest = ln
    return widest


# -- decompressing a moves batch's body buffers into a reused buffer (gamestore/positions/direct.py) ----------
include "_zstd_fns.pxi"


def unpack(const uint8_t[::1] src, const int64_t[:, ::1] frames, uint8_t[::1] out, Decompressor dctx):
    """Body buffers of ``src`` into ``out``: row ``j`` of ``frames`` is ``(position, size, decompressed size or
    -1 for a buffer stored uncompressed, place in out)``.  Returns -1, or the first row that is outside ``src``
    or ``out``, or does not decompress to its size (checked before anything is written; one call without the GIL)."""
    cdef Py_ssize_t n = frames.shape[0], j
    cdef int64_t p, sz, raw, at, length = src.shape[0], cap = out.shape[0]
    cdef size_t got
    cdef Py_ssize_t bad = -1
    if frames.shape[1] != 4:
        raise ValueError("frames: expected 4 columns")
    if ZSTD_decompressDCtx == NULL:
        raise RuntimeError("libzstd not installed (set_zstd)")
    for j in range(n):
        p, sz, raw, at = frames[j, 0], frames[j, 1], frames[j, 2], frames[j, 3]
        if p < 0 or sz < 0 or p > length - sz or at < 0 or raw < -1:
            return j
        if (sz if raw == -1 else raw) > cap - at:
            return j
    if dctx.ctx == NULL:
        dctx.ctx = ZSTD_createDCtx()
        if dctx.ctx == NULL:
            raise MemoryError("ZSTD_createDCtx")
    cdef void* ctx = dctx.ctx
    cdef const uint8_t* base = &src[0] if length else NULL
    cdef uint8_t* dst = &out[0] if cap else NULL
    with nogil:
        for j in range(n):
            p, sz, raw, at = frames[j, 0], frames[j, 1], frames[j, 2], frames[j, 3]
            if raw == -1:
                if sz:
                    memcpy(dst + at, base + p, <size_t>sz)
            elif raw > 0:
                got = ZSTD_decompressDCtx(ctx, dst + at, <size_t>raw, base + p, <size_t>sz)
                if ZSTD_isError(got) or <int64_t>got != raw:
                    bad = j
                    break
    return bad
