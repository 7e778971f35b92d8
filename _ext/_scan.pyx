# cython: language_level=3
"""A scan's fixed-width column: the column's body buffers of many record batches decompressed back to back
(and a file's record batch messages parsed in one pass).

``gamestore/sqlscan.py`` is the caller and the reference (its Python path:
``FastBatchReader.decompress`` then a join of each part cut to its rows).
Here every frame is decompressed by libzstd (``ZSTD_decompressDCtx``, the
functions ``gamestore/zstdlib.py`` finds) straight to its place in one
output buffer, without the GIL, with no Python object per frame and no copy.
"""
from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize
from libc.stdint cimport int32_t, int64_t, uint8_t, uintptr_t

import numpy as np
from libc.string cimport memcpy

include "_zstd_fns.pxi"

#: Largest decompressed size a body buffer may claim (a damaged prefix must not allocate gigabytes).
cdef int64_t _MAX_RAW = 1 << 31


cdef inline int64_t _le64(const uint8_t* p) noexcept nogil:
    cdef int64_t v = 0
    cdef int k
    for k in range(8):
        v |= (<int64_t>p[k]) << (8 * k)
    return v


def joined(const uint8_t[::1] src, const int64_t[::1] pos, const int64_t[::1] size, const int64_t[::1] take,
           Decompressor dctx=None, alloc=None):
    """Body buffers ``src[pos[j]:pos[j] + size[j]]`` (Arrow IPC compressed buffers: an int64 little-endian
    decompressed length, -1 when stored raw, then the zstd frame), the first ``take[j]`` bytes of each back to
    back: ``(bytearray, length)``, the bytearray possibly longer than ``length`` (room for the last frame's
    padding).  ``(None, j)`` for the first buffer ``j`` that is damaged (outside ``src``, shorter than
    ``take[j]``, or not decompressing to its length); a zero-size buffer holds nothing.  ``dctx``: the calling
    thread's context to use (default: one made and freed for this call).  ``alloc``: called with the size
    needed, returns the writable buffer to fill and return instead of a bytearray (e.g. ``pa.allocate_buffer``:
    Arrow's pool hands out pages already mapped, where a fresh bytearray of a few hundred KB is a new mapping
    whose every page faults on first touch)."""
    cdef Py_ssize_t n = pos.shape[0], j
    cdef int64_t p, sz, raw, off = 0, cap = 0, length = src.shape[0]
    if size.shape[0] != n or take.shape[0] != n:
        raise ValueError("pos, size and take differ in length")
    if ZSTD_decompressDCtx == NULL:
        raise RuntimeError("libzstd not installed (set_zstd)")
    for j in range(n):  # check every buffer and size the output first
        p, sz = pos[j], size[j]
        if sz == 0:
            if take[j] != 0:
                return None, j
            continue
        if sz < 8 or p < 0 or p > length - sz or take[j] < 0:
            return None, j
        raw = _le64(&src[p])
        if raw == -1:
            raw = sz - 8
        if raw < take[j] or raw > _MAX_RAW:
            return None, j
        if off + raw > cap:
            cap = off + raw
        off += take[j]
    cdef Py_buffer target
    cdef uint8_t* dst
    if alloc is None:
        out = PyByteArray_FromStringAndSize(NULL, cap)
        dst = <uint8_t*>PyByteArray_AS_STRING(out)
    else:
        out = alloc(cap)
        PyObject_GetBuffer(out, &target, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS)
        dst = <uint8_t*>target.buf
        got_len = target.len
        PyBuffer_Release(&target)  # ``out`` (returned) keeps the memory
        if got_len < cap:
            raise ValueError(f"alloc({cap}) returned {got_len} bytes")
    cdef const uint8_t* base = &src[0] if length else NULL
    cdef void* ctx = NULL
    cdef bint own = dctx is None
    cdef size_t got
    cdef Py_ssize_t bad = -1
    off = 0
    if not own:
        if dctx.ctx == NULL:
            dctx.ctx = ZSTD_createDCtx()
        ctx = dctx.ctx
    with nogil:
        if own:
            ctx = ZSTD_createDCtx()
        if ctx == NULL:
            bad = -2
        else:
            for j in range(n):
                p, sz = pos[j], size[j]
                if sz == 0:
                    continue
                raw = _le64(base + p)
                if raw == -1:
                    memcpy(dst + off, base + p + 8, <size_t>take[j])
                elif raw > 0:
                    # the frame's padding past take[j] lands where the next frame starts, and is overwritten
                    got = ZSTD_decompressDCtx(ctx, dst + off, <size_t>raw, base + p + 8, <size_t>(sz - 8))
                    if ZSTD_isError(got) or <int64_t>got != raw:
                        bad = j
                        break
                off += take[j]
            if own:
                ZSTD_freeDCtx(ctx)
    if bad == -2:
        raise MemoryError("ZSTD_createDCtx")
    if bad >= 0:
        return None, bad
    return out, off


# ---------------------------------------------------------------------------------------------------------------
# Record batch messages (gamestore/ipc_messages.py's parse_messages is the spec)
# ---------------------------------------------------------------------------------------------------------------
cdef inline bint _in(int64_t pos, int64_t width, int64_t size) noexcept nogil:
    return pos >= 0 and pos <= size - width


cdef inline int64_t _u(const uint8_t* b, int64_t pos, int width) noexcept nogil:
    cdef int64_t v = 0
    cdef int k
    for k in range(width):
        v |= (<int64_t>b[pos + k]) << (8 * k)
    return v


cdef inline int64_t _field(const uint8_t* b, int64_t size, int64_t table, int i, bint* ok) noexcept nogil:
    """Offset of field ``i`` of the flatbuffers table at ``table`` (0: absent); ``ok[0]`` cleared when the table or
    its vtable lies outside the buffer."""
    cdef int64_t vt, vtlen, o = 4 + 2 * i
    if not _in(table, 4, size):
        ok[0] = False
        return 0
    vt = table - <int32_t>_u(b, table, 4)
    if not _in(vt, 2, size):
        ok[0] = False
        return 0
    vtlen = _u(b, vt, 2)
    if o >= vtlen:
        return 0
    if not _in(vt + o, 2, size):
        ok[0] = False
        return 0
    return _u(b, vt + o, 2)


cdef inline int64_t _child(const uint8_t* b, int64_t size, int64_t pos, bint* ok) noexcept nogil:
    """The table or vector an offset field at ``pos`` points to."""
    if not _in(pos, 4, size):
        ok[0] = False
        return 0
    return pos + _u(b, pos, 4)


def parse_messages(const uint8_t[::1] buf, const int64_t[:, ::1] blocks, int record_batch, int zstd):
    """The record batch messages of file ``blocks`` ((offset, metadata length, body length) rows) as
    ``(rows, nodes, bufs, body)`` arrays, as gamestore.ipc_messages.parse_messages returns them; None when a
    message is not a zstd record batch, the batches' layouts differ or a message points outside the file (the
    caller then runs the reference, which names the problem)."""
    cdef Py_ssize_t n = blocks.shape[0], j, f
    cdef int64_t size = buf.shape[0], start, msg, off, rb, comp, vec, k
    cdef int64_t counts[2]
    cdef int64_t firsts_k[2]
    cdef const uint8_t* b = &buf[0] if size else NULL
    cdef bint ok = True
    if n == 0 or size == 0 or blocks.shape[1] != 3:
        return None
    rows = np.zeros(n, dtype=np.int64)
    firsts = np.zeros((n, 2), dtype=np.int64)
    cdef int64_t[::1] rows_v = rows
    cdef int64_t[:, ::1] first_v = firsts
    counts[0] = counts[1] = -1
    with nogil:
        for j in range(n):
            off = blocks[j, 0]
            if not _in(off, 4, size):
                ok = False
                break
            start = off + (8 if <int32_t>_u(b, off, 4) == -1 else 4)
            msg = _child(b, size, start, &ok)
            off = _field(b, size, msg, 1, &ok)  # header type
            if not ok or off == 0 or not _in(msg + off, 1, size) or b[msg + off] != record_batch:
                ok = False
                break
            off = _field(b, size, msg, 2, &ok)  # header
            if not ok or off == 0:
                ok = False
                break
            rb = _child(b, size, msg + off, &ok)
            off = _field(b, size, rb, 3, &ok)  # compression
            if not ok or off == 0:
                ok = False
                break
            comp = _child(b, size, rb + off, &ok)
            off = _field(b, size, comp, 0, &ok)  # codec
            if not ok or off == 0 or not _in(comp + off, 1, size) or b[comp + off] != zstd:
                ok = False
                break
            off = _field(b, size, rb, 0, &ok)  # length
            if not ok or (off and not _in(rb + off, 8, size)):
                ok = False
                break
            rows_v[j] = _u(b, rb + off, 8) if off else 0
            for f in range(2):  # field nodes, body buffers: vectors of 16-byte structs
                off = _field(b, size, rb, 1 + f, &ok)
                if not ok or off == 0:
                    ok = False
                    break
                vec = _child(b, size, rb + off, &ok)
                if not ok or not _in(vec, 4, size):
                    ok = False
                    break
                k = _u(b, vec, 4)
                if counts[f] == -1:
                    counts[f] = k
                if k != counts[f] or vec + 4 + 16 * k > size:
                    ok = False
                    break
                first_v[j, f] = vec + 4
            if not ok:
                break
    if not ok:
        return None
    out = []
    cdef int64_t[:, :, ::1] v
    for f in range(2):
        k = counts[f]
        arr = np.empty((n, k, 2), dtype=np.int64)
        v = arr
        if k:
            with nogil:
                for j in range(n):
                    memcpy(&v[j, 0, 0], b + first_v[j, f], <size_t>(16 * k))  # little-endian (the caller checks)
        out.append(arr)
    body = np.asarray(blocks[:, 0]) + np.asarray(blocks[:, 1])
    return rows, out[0], out[1], body
