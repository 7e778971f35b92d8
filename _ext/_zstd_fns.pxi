# Included by _scan.pyx and _positions.pyx: libzstd's decompression functions through pointers installed at
# import (gamestore/zstdlib.py finds the library and its functions), and one thread's reusable context.

cdef extern from *:
    """
    typedef size_t (*gs_zdecompress_fn)(void*, void*, size_t, const void*, size_t);
    typedef unsigned (*gs_ziserror_fn)(size_t);
    typedef void* (*gs_zcreate_fn)(void);
    typedef size_t (*gs_zfree_fn)(void*);
    """
    ctypedef size_t (*gs_zdecompress_fn)(void*, void*, size_t, const void*, size_t) noexcept nogil
    ctypedef unsigned (*gs_ziserror_fn)(size_t) noexcept nogil
    ctypedef void* (*gs_zcreate_fn)() noexcept nogil
    ctypedef size_t (*gs_zfree_fn)(void*) noexcept nogil

cdef gs_zdecompress_fn ZSTD_decompressDCtx = NULL
cdef gs_ziserror_fn ZSTD_isError = NULL
cdef gs_zcreate_fn ZSTD_createDCtx = NULL
cdef gs_zfree_fn ZSTD_freeDCtx = NULL


def set_zstd(uintptr_t create, uintptr_t free_, uintptr_t decompress, uintptr_t is_error):
    """Install libzstd's ``ZSTD_createDCtx``, ``ZSTD_freeDCtx``, ``ZSTD_decompressDCtx``, ``ZSTD_isError``
    (``gamestore/zstdlib.py`` finds them)."""
    global ZSTD_createDCtx, ZSTD_freeDCtx, ZSTD_decompressDCtx, ZSTD_isError
    ZSTD_createDCtx = <gs_zcreate_fn>create
    ZSTD_freeDCtx = <gs_zfree_fn>free_
    ZSTD_decompressDCtx = <gs_zdecompress_fn>decompress
    ZSTD_isError = <gs_ziserror_fn>is_error


cdef class Decompressor:
    """One libzstd decompression context, kept for many calls of one thread (creating one costs ~1 us and
    ~100 KB of fresh memory).  Not thread-safe: one per thread."""
    cdef void* ctx

    def __cinit__(self):
        self.ctx = NULL

    def __dealloc__(self):
        if self.ctx != NULL and ZSTD_freeDCtx != NULL:
            ZSTD_freeDCtx(self.ctx)
            self.ctx = NULL
