# cython: language_level=3, boundscheck=False, wraparound=False
"""xxh3-64 of many byte ranges of one buffer in one call, without the GIL (``gamestore/checksum.py``).

The hash function is libxxhash's ``XXH3_64bits``, found by ``checksum.py`` through ctypes and passed
as an address (checked there against ``xxhash.xxh3_64_intdigest``, the spec); without it
``checksum.py`` hashes range by range with ``xxhash``, a GIL release and re-take per range.
"""
from libc.stdint cimport int64_t, uint64_t, uintptr_t

import numpy as np

ctypedef uint64_t (*xxh3_fn)(const void*, size_t) noexcept nogil


def hash_ranges(const unsigned char[::1] data, const int64_t[::1] starts, const int64_t[::1] ends, uintptr_t fn):
    """uint64 array: the hash (``fn``, an ``XXH3_64bits`` address) of ``data[starts[i]:ends[i]]`` for each i."""
    cdef Py_ssize_t i, n = starts.shape[0], size = data.shape[0]
    if ends.shape[0] != n:
        raise ValueError("starts and ends differ in length")
    if fn == 0:
        raise ValueError("no hash function")
    for i in range(n):
        if not 0 <= starts[i] <= ends[i] <= size:
            raise ValueError(f"range {starts[i]}:{ends[i]} outside a buffer of {size} bytes")
    out = np.empty(n, np.uint64)
    cdef uint64_t[::1] o = out
    cdef const unsigned char* p = &data[0] if size else NULL
    cdef xxh3_fn f = <xxh3_fn>fn
    with nogil:
        for i in range(n):
            o[i] = f(p + starts[i] if size else NULL, <size_t>(ends[i] - starts[i]))
    return out
