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
from libc.stdint cimport int32_t, int64_t, intptr_t, uint8_t
from libc.string cimport memcpy, memset

cnp.import_array()


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
    with nogil:
        for i in range(n):
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
    with nogil:
        for i in range(n):
            p = p_part[i]
            v = <intptr_t> valids[p]
            if v != 0 and (<const uint8_t*> v)[p_row[i]] == 0:
                memset(dst + i * width, 0, width)
                p_mask[i] = 0
            else:
                memcpy(dst + i * width, (<const uint8_t*> <intptr_t> bases[p]) + p_row[i] * width, width)
                p_mask[i] = 1
