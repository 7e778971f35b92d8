# cython: language_level=3
"""The buffers of an Arrow string column from a list of str/None, in C (``gamestore.arrays`` is the spec).

pyarrow's own conversion (``pa.array``) imports pandas on first use; ``arrays.string_array`` builds
the column from these buffers instead, at the speed of ``pa.array``.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport int64_t, uint8_t
from libc.string cimport memcpy

import numpy as np


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL


def utf8_buffers(list values, bint large):
    """``(offsets, data, null)`` of ``values`` (str or None): int32 (``large``: int64) offsets, the UTF-8
    bytes, a bool array (True: null) or None when no value is None.  TypeError for anything else."""
    cdef Py_ssize_t n = len(values), i, size, total = 0, nulls = 0
    cdef const char* p
    cdef object v
    offsets = np.empty(n + 1, dtype=np.int64 if large else np.int32)
    cdef int64_t[::1] o64
    cdef int[::1] o32
    if large:
        o64 = offsets
        o64[0] = 0
    else:
        o32 = offsets
        o32[0] = 0
    for i in range(n):
        v = values[i]
        if v is None:
            nulls += 1
        elif PyUnicode_Check(v):
            PyUnicode_AsUTF8AndSize(v, &size)
            total += size
        else:
            raise TypeError(f"expected str or None, got {type(v).__name__}")
        if large:
            o64[i + 1] = total
        elif total > 2147483647:
            raise OverflowError("string column over 2 GiB: use a large_string column")
        else:
            o32[i + 1] = <int>total
    data = PyBytes_FromStringAndSize(NULL, total)
    cdef char* out = PyBytes_AS_STRING(data)
    cdef Py_ssize_t at = 0
    null = np.zeros(n, dtype=np.bool_) if nulls else None
    cdef uint8_t[::1] nv
    if nulls:
        nv = null.view(np.uint8)
    for i in range(n):
        v = values[i]
        if v is None:
            nv[i] = 1
            continue
        p = PyUnicode_AsUTF8AndSize(v, &size)
        memcpy(out + at, p, size)
        at += size
    return offsets, data, null
