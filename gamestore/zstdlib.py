"""libzstd's C functions for the compiled readers (get_game's point reader, a scan's fixed-width columns).

The compiled modules call libzstd directly, without the GIL and without a
Python object per frame; they are handed the addresses of its functions,
found here: the system's ``libzstd``, else the copy inside zstandard's cffi
backend.  Without either, the callers fall back to zstandard's Python API.
"""
from __future__ import annotations

import ctypes

__all__ = ["FUNCTIONS", "STREAMING", "addresses"]

FUNCTIONS = ("ZSTD_createDCtx", "ZSTD_freeDCtx", "ZSTD_decompressDCtx", "ZSTD_isError")
#: libzstd's buffer-less streaming API (its "static linking only" section, exported by the shared library):
#: with it a point read decompresses only the prefix of a buffer its game needs; without it, whole buffers
STREAMING = ("ZSTD_decompressBegin", "ZSTD_nextSrcSizeToDecompress", "ZSTD_decompressContinue")


def addresses() -> tuple[int, ...] | None:
    """The addresses of :data:`FUNCTIONS` and, where all are exported, :data:`STREAMING`: the system's
    libzstd, else the copy inside zstandard's cffi backend."""
    for name in ("libzstd.so.1", "libzstd.so", "libzstd.1.dylib", "libzstd.dylib"):
        try:
            lib = ctypes.CDLL(name)
            got = tuple(ctypes.cast(getattr(lib, f), ctypes.c_void_p).value for f in FUNCTIONS)
        except (OSError, AttributeError):
            continue
        if all(got) and lib.ZSTD_versionNumber() >= 10400:
            try:
                more = tuple(ctypes.cast(getattr(lib, f), ctypes.c_void_p).value for f in STREAMING)
            except AttributeError:
                more = ()
            return got + more if all(more) else got  # type: ignore[return-value]
    try:
        from zstandard import _cffi  # type: ignore[attr-defined]
        return tuple(int(_cffi.ffi.cast("uintptr_t", _cffi.ffi.addressof(_cffi.lib, f))) for f in FUNCTIONS)
    except Exception:  # no cffi, or a zstandard without that backend
        return None
