# cython: boundscheck=False, wraparound=False, cdivision=True
"""Hot loops of PositionDataset's batch assembly (``gamestore/positions/gather.py`` is the spec).

A batch's positions come from several *sources* (decoded moves record
batches).  Each loop takes, per source, the address of one numpy array
(an ``int64`` table indexed by the position's ``part``) and copies every
position's data straight into the padded output: one copy, no GIL.
The caller keeps the arrays alive and checks dtypes and sizes.
"""
from libc.stdint cimport int32_t, int64_t, intptr_t, uint8_t
from libc.string cimport memcpy, memset

ctypedef fused prob_t:
    float
    double


def fill_policy(const int64_t[::1] off_ptr, const int64_t[::1] idx_ptr, const int64_t[::1] prob_ptr,
                const int32_t[::1] part, const int64_t[::1] row, const int32_t[::1] lens,
                int64_t[:, ::1] index, prob_t[:, ::1] prob, uint8_t[:, ::1] mask):
    """Row ``i`` of ``index``/``prob``/``mask``: the ``lens[i]`` policy entries of source row ``row[i]``, then padding.

    Per source: ``off`` (int32 list offsets), ``idx`` (int64 per entry), ``prob`` (per entry, ``prob_t``).
    """
    cdef Py_ssize_t i, k, n = part.shape[0], width = index.shape[1]
    cdef int64_t start, p
    cdef int32_t ln
    cdef const int32_t* off
    cdef const int64_t* src_idx
    cdef const prob_t* src_prob
    with nogil:
        for i in range(n):
            p = part[i]
            off = <const int32_t*> <intptr_t> off_ptr[p]
            src_idx = <const int64_t*> <intptr_t> idx_ptr[p]
            src_prob = <const prob_t*> <intptr_t> prob_ptr[p]
            start = off[row[i]]
            ln = lens[i]
            if ln > width:
                ln = <int32_t> width
            for k in range(ln):
                index[i, k] = src_idx[start + k]
                prob[i, k] = src_prob[start + k]
                mask[i, k] = 1
            for k in range(ln, width):
                index[i, k] = -1
                prob[i, k] = 0
                mask[i, k] = 0


def copy_rows(const int64_t[::1] base_ptr, const int64_t[::1] valid_ptr,
              const int32_t[::1] part, const int64_t[::1] row, uint8_t[:, ::1] out, uint8_t[::1] mask):
    """Row ``i`` of ``out`` (bytes): row ``row[i]`` of its source's fixed-size rows, zeros where not valid.

    Per source: ``base`` (rows of ``out.shape[1]`` bytes) and ``valid`` (uint8 per row, 0 = all valid).
    """
    cdef Py_ssize_t i, n = part.shape[0], width = out.shape[1]
    cdef int64_t p
    cdef intptr_t v
    cdef const uint8_t* base
    with nogil:
        for i in range(n):
            p = part[i]
            v = <intptr_t> valid_ptr[p]
            if v != 0 and (<const uint8_t*> v)[row[i]] == 0:
                if width:
                    memset(&out[i, 0], 0, width)
                mask[i] = 0
            else:
                if width:
                    base = <const uint8_t*> <intptr_t> base_ptr[p]
                    memcpy(&out[i, 0], base + row[i] * width, width)
                mask[i] = 1
