# Included by _decode.pyx: point reads of a game's moves straight from a zstd Arrow IPC file's bytes.
#
# get_game used to decompress a whole moves batch into pyarrow buffers, assemble arrays with ``from_buffers``,
# validate them and export them through the C data interface before BatchDecoder read the game's rows: two
# thirds of the read was that Python-level assembly.  A PointReader knows, from the file's schema, which field
# node and body buffers hold each column; per read it decompresses only the buffers of the columns it decodes,
# none of a column null in the whole batch, and of each only the prefix that rows ``[0, stop)`` use (validity
# and offsets up to the game's last row, then values up to its last offset): a frame is decoded block by block
# (libzstd's buffer-less streaming API) straight into scratch memory and decoding stops at the first block
# boundary past that prefix; a buffer stored uncompressed is copied up to it.  The scratch memory is kept for
# the next read of the batch; a later game further down the batch decodes the missing part then.  One zstd
# context per thread, through the C API.  The decoder's columns point at the buffers and build the move dicts
# as a full-batch decode does.
#
# Bounds: every buffer lies inside the file and decompresses to at most the size its prefix gives (exactly
# that size once its frame is decoded to the end); every buffer a column is read through holds the bytes rows
# ``[0, stop)`` need, and its field node the slots its parent needs (Arrow's cheap validation, on the prefix);
# the offsets of list and string rows are checked by the decoder (``span``) against the first offset and the
# one at ``stop``, which the children's nodes and buffers are checked to hold.

from libc.string cimport memset

cdef extern from *:
    """
    typedef size_t (*gs_zdecompress_fn)(void*, void*, size_t, const void*, size_t);
    typedef void* (*gs_zcreate_fn)(void);
    typedef size_t (*gs_zfree_fn)(void*);
    """
    ctypedef size_t (*gs_zdecompress_fn)(void*, void*, size_t, const void*, size_t) noexcept nogil
    ctypedef void* (*gs_zcreate_fn)() noexcept nogil
    ctypedef size_t (*gs_zfree_fn)(void*) noexcept nogil

cdef gs_zdecompress_fn ZSTD_decompressDCtx = NULL
cdef gs_zcreate_fn ZSTD_createDCtx = NULL
cdef gs_zfree_fn ZSTD_freeDCtx = NULL
# buffer-less streaming installed (optional: without it every needed buffer is decompressed whole, gsh_inflate)
cdef bint _streaming = False
cdef object _zstd_local = None


def set_zstd(uintptr_t create, uintptr_t free_, uintptr_t decompress, uintptr_t is_error, uintptr_t begin=0,
             uintptr_t next_size=0, uintptr_t decompress_continue=0):
    """Install libzstd's ``ZSTD_createDCtx``, ``ZSTD_freeDCtx``, ``ZSTD_decompressDCtx``, ``ZSTD_isError`` and,
    when all three are given, ``ZSTD_decompressBegin``, ``ZSTD_nextSrcSizeToDecompress``,
    ``ZSTD_decompressContinue`` (addresses; gamestore/pointread.py finds them).  Point reads are available
    from then on; with the last three, they decompress only the prefix of a buffer a game needs."""
    global ZSTD_createDCtx, ZSTD_freeDCtx, ZSTD_decompressDCtx, _zstd_local
    global _streaming
    import threading
    ZSTD_createDCtx = <gs_zcreate_fn>create
    ZSTD_freeDCtx = <gs_zfree_fn>free_
    ZSTD_decompressDCtx = <gs_zdecompress_fn>decompress
    _streaming = begin != 0 and next_size != 0 and decompress_continue != 0
    _zstd_local = threading.local()
    gsh_install(<void*>create, <void*>decompress, <void*>is_error, <void*>begin if _streaming else NULL,
                <void*>next_size if _streaming else NULL, <void*>decompress_continue if _streaming else NULL)


def prefix_reads():
    """True when point reads decompress only the prefix of a buffer a game needs (the streaming API is installed)."""
    return _streaming


cdef class _DCtx:
    """One zstd decompression context (one per thread: a context is not thread-safe; setting one up costs more
    than decompressing a small buffer)."""
    cdef void* ctx

    def __cinit__(self):
        self.ctx = ZSTD_createDCtx()
        if self.ctx == NULL:
            raise MemoryError()

    def __dealloc__(self):
        if self.ctx != NULL:
            ZSTD_freeDCtx(self.ctx)


cdef _DCtx _dctx():
    d = getattr(_zstd_local, "d", None)
    if d is None:
        d = _zstd_local.d = _DCtx()
    return <_DCtx>d


cdef enum:
    K_FIXED = 1   # validity, values
    K_STR = 2     # validity, int32 offsets, chars
    K_LIST = 3    # validity, int32 offsets (then the child)
    K_VALID = 4   # validity only (a fixed-size list: then the child)
    MAX_BUFS = 512


cdef struct Place:
    int node       # field node index in the batch message; -1: none
    int buf        # its first body buffer
    int kind       # K_*
    int width      # bytes per value (K_FIXED)


cdef class Scratch:
    """The decompressed body buffers of one batch, by buffer index (freed with it), each allocated at its whole
    size and valid up to ``have``: a read fills the prefixes its rows need; a later read of the same batch
    (kept in ``shard.BATCH_CACHE``) uses them, and decodes further where its game lies further down.  Decoding
    a frame again from its start rewrites the valid prefix with the same bytes, under the GIL: a read of
    another thread paused in the same batch sees no change."""
    cdef uint8_t* by_buf[MAX_BUFS]
    cdef int64_t sizes[MAX_BUFS]
    cdef int64_t have[MAX_BUFS]
    cdef readonly int64_t nbytes

    def __dealloc__(self):
        cdef int i
        for i in range(MAX_BUFS):
            free(self.by_buf[i])

    @property
    def decoded(self):
        """Bytes decompressed (or copied) so far, over all buffers."""
        cdef int i
        cdef int64_t n = 0
        for i in range(MAX_BUFS):
            n += self.have[i]
        return n


cdef struct Read:
    const uint8_t* base    # the file's bytes
    int64_t size           # their length
    int64_t body           # file position of the batch's body
    const int64_t* nodes   # (length, null count) per field node
    const int64_t* bufs    # (offset in the body, stored size) per body buffer
    void* dctx


cdef const uint8_t* _buffer(Read* r, Scratch s, int k, int64_t need) except NULL:
    """Body buffer ``k`` in ``s``, decompressed (or copied when stored raw) at least up to ``need`` bytes."""
    cdef int64_t off, size, p, raw
    cdef uint8_t* dst
    if k >= MAX_BUFS:
        raise Unsupported("too many buffers")
    if s.by_buf[k] != NULL and s.have[k] >= need:
        return s.by_buf[k]
    off = r.bufs[2 * k]
    size = r.bufs[2 * k + 1]
    if size == 0:
        if need > 0:
            damaged(f"body buffer {k} is absent, {need} bytes are needed")
        return <const uint8_t*>""
    p = r.body + off
    if off < 0 or size < 8 or p < 0 or p + size > r.size:
        damaged(f"body buffer {k} lies outside the file")
    memcpy(&raw, r.base + p, 8)
    if raw == -1:  # stored uncompressed: copied (a cached batch outlives the file's mapping)
        raw = size - 8
    if raw < need or raw > (<int64_t>1 << 40) or (s.by_buf[k] != NULL and raw != s.sizes[k]):
        damaged(f"body buffer {k} holds {raw} bytes, {need} are needed")
    dst = s.by_buf[k]
    if dst == NULL:
        dst = <uint8_t*>malloc(raw if raw > 0 else 1)
        if dst == NULL:
            raise MemoryError()
        s.by_buf[k] = dst
        s.sizes[k] = raw
        s.nbytes += raw
    if raw == 0:
        return dst
    if raw == size - 8 and (<const int64_t*>(r.base + p))[0] == -1:
        memcpy(dst + s.have[k], r.base + p + 8 + s.have[k], need - s.have[k])
        s.have[k] = need
    else:
        yield_gil()  # a switch point between buffers: zstd runs with the GIL held (~0.1 ms per 128 KB buffer)
        s.have[k] = _inflate(r.dctx, dst, raw, r.base + p + 8, size - 8, need, k)
    return dst


cdef int64_t _inflate(void* dctx, uint8_t* dst, int64_t raw, const uint8_t* src, int64_t n, int64_t need,
                      int k) except -1:
    """Decompress the zstd frame ``src[:n]`` (``raw`` bytes once whole) into ``dst`` at least up to ``need``
    bytes: block by block from its start, stopping at the first block boundary at or past ``need``; the bytes
    decoded are returned.  The whole buffer (checked to give exactly ``raw`` bytes) where ``need`` is all of
    it, where the streaming API is not installed, or where the frame ends before ``need``.  (The helper
    thread's ``gsh_inflate``, with its failures raised.)"""
    cdef int64_t got = gsh_inflate(dctx, dst, raw, src, n, need)
    if got == -2:
        raise MemoryError()
    if got < 0:
        damaged(f"body buffer {k} does not decompress to the {raw} bytes its prefix gives")
    return got


cdef void _plan_add(Read* r, Scratch s, int k, int64_t need, gsh_job* jobs, int* nj) noexcept:
    """Add body buffer ``k`` (at least ``need`` bytes; negative: all of it) of a fresh ``s`` to ``jobs``, its memory
    allocated; a buffer that looks wrong in any way is left out (the sequential pass then names the damage)."""
    cdef int64_t off, size, p, raw
    cdef uint8_t* dst
    cdef gsh_job* j
    cdef bint copy
    if k < 0 or k >= MAX_BUFS or s.by_buf[k] != NULL:
        return
    off = r.bufs[2 * k]
    size = r.bufs[2 * k + 1]
    p = r.body + off
    if off < 0 or size < 8 or p < 0 or p + size > r.size:
        return
    memcpy(&raw, r.base + p, 8)
    copy = raw == -1
    if copy:
        raw = size - 8
    if raw <= 0 or raw > (<int64_t>1 << 40):
        return
    if need < 0 or need > raw:
        need = raw
    dst = <uint8_t*>malloc(raw)
    if dst == NULL:
        return
    s.by_buf[k] = dst
    s.sizes[k] = raw
    s.nbytes += raw
    j = &jobs[nj[0]]
    nj[0] += 1
    j.src = r.base + p + 8
    j.n = size - 8
    j.dst = dst
    j.raw = raw
    j.need = need
    j.done = -1
    j.k = k
    j.copy = copy


cdef void _plan(const Place* pl, Read* r, Scratch s, int64_t slots, int64_t rows, gsh_job* jobs, int* nj) noexcept:
    """The buffers :func:`_fill` reads for the column at ``pl`` (``rows`` < 0: a child whose rows are not known
    yet: its buffers whole)."""
    cdef int64_t length, nulls
    cdef int n = pl.node, k = pl.buf
    if n < 0:
        return
    length = r.nodes[2 * n]
    nulls = r.nodes[2 * n + 1]
    if nulls < 0 or nulls > length or (rows >= 0 and (length < slots or rows > length)):
        return
    if length > 0 and nulls == length:
        return  # absent: nothing read
    if nulls:
        _plan_add(r, s, k, (rows + 7) >> 3 if rows >= 0 else -1, jobs, nj)
    if pl.kind == K_VALID:
        return
    if pl.kind == K_FIXED:
        _plan_add(r, s, k + 1, rows * pl.width if rows >= 0 else -1, jobs, nj)
        return
    _plan_add(r, s, k + 1, (rows + 1) * 4 if rows >= 0 else -1, jobs, nj)
    if pl.kind == K_STR:
        _plan_add(r, s, k + 2, -1, jobs, nj)


cdef int _fill(Col* c, const Place* pl, Read* r, Scratch s, int64_t slots, int64_t rows, str name) except -1:
    """Point ``c`` at the decompressed buffers of the column placed at ``pl``, holding at least rows
    ``[0, rows)``; ``slots``: the slots its node must have."""
    cdef int64_t length, nulls
    cdef int n = pl.node, k = pl.buf
    length = r.nodes[2 * n]
    nulls = r.nodes[2 * n + 1]
    if length < slots or rows > length or nulls < 0 or nulls > length:
        damaged(f"column {name!r} has {length} slots ({nulls} null), {max(slots, rows)} are needed")
    c.off = 0
    c.lo = c.hi = 0
    c.chars = NULL
    c.valid = NULL
    c.absent = length > 0 and nulls == length
    c.width = 4 if pl.kind != K_FIXED else pl.width
    c.data = <const uint8_t*>""
    if c.absent:
        return 0
    if nulls:
        c.valid = _buffer(r, s, k, (rows + 7) >> 3)
    if pl.kind == K_VALID:
        return 0
    if pl.kind == K_FIXED:
        c.data = _buffer(r, s, k + 1, rows * pl.width)
        return 0
    c.data = _buffer(r, s, k + 1, (rows + 1) * 4)
    c.lo = (<const int32_t*>c.data)[0]
    c.hi = (<const int32_t*>c.data)[rows]
    if c.lo < 0 or c.hi < c.lo:
        damaged(f"column {name!r}: offsets run from {c.lo} to {c.hi}")
    if pl.kind == K_STR:
        c.chars = _buffer(r, s, k + 2, c.hi)
    return 0


cdef struct Pipe:
    gsh_job* jobs    # the buffers handed to the helper thread (NULL: none)
    int n
    int ends[4]      # jobs[:ends[p]] are the buffers parts 0..p of _rows read (part 4, extra_json: in part 0's)
    int col_end[N_SLOTS]  # part 0, column by column: jobs[:col_end[slot]] hold the buffers up to that column's
    int applied      # jobs[:applied] are done and recorded in the scratch's ``have``
    bint on          # the helper has them (gsh_start); gsh_end before they are freed


cdef int _slot_part(int slot) noexcept nogil:
    """The part of BatchDecoder._row that reads column slot ``slot``: 0 base fields, 2 search, 4 extra."""
    if slot == C_FLAGS or slot == C_SEARCH_EXTRA or (slot >= C_SFLOAT and slot < C_POS):
        return 2
    if slot == C_EXTRA:
        return 4
    return 0


cdef int _pipe_until(Pipe* pipe, int part, Scratch s, Read* r) except -1:
    """Wait until the buffers of parts ``0..part`` are decompressed (this thread takes those the helper has not
    started), and record them in ``s``."""
    if not pipe.on:
        return 0
    return _pipe_upto(pipe, pipe.ends[part], s, r)


cdef int _pipe_upto(Pipe* pipe, int upto, Scratch s, Read* r) except -1:
    """Wait until ``pipe.jobs[:upto]`` are decompressed, and record them in ``s``."""
    cdef int j
    if upto <= pipe.applied:
        return 0
    with nogil:  # the GIL is free meanwhile (an event loop in another thread runs)
        gsh_until(upto, r.dctx)
    for j in range(pipe.applied, upto):
        if pipe.jobs[j].done >= pipe.jobs[j].need:
            s.have[pipe.jobs[j].k] = pipe.jobs[j].done
    pipe.applied = upto
    return 0


cdef class PointReader:
    """Move dicts of any game of one zstd Arrow IPC moves file, read from the file's bytes (see above).

    ``view``: the file's bytes (kept exported while this reader lives: :meth:`close` first);
    ``places``: field path (``policy``, ``policy.item``, ``policy.item.key``...) -> (node, first buffer),
    in the batch messages of this file (``gamestore.ipc_batch.field_places``); ``kinds``: path -> the
    decoder kind and value width of each column; ``tables``: path -> the StrTable of each dictionary
    field; ``vectors``: ``(name, column, shape, dtype)`` of each vector column present.
    """
    cdef const uint8_t[::1] view
    cdef readonly int num_nodes, num_bufs
    cdef Place places[N_SLOTS]
    cdef Place pol_list, pol_f[7], srch_list, srch_f[7]
    cdef Place vec_col[MAX_FIELDS]
    cdef Place vec_values[MAX_FIELDS]
    cdef list dstr_tables
    cdef StrTable p_keys, s_keys
    cdef list vec_names
    cdef Vec vecs[MAX_FIELDS]
    cdef int64_t vsize[MAX_FIELDS]
    cdef int fill[N_SLOTS]
    cdef int nfill
    cdef list fill_names
    cdef list slot_names
    cdef int nv
    cdef bint ready

    def __init__(self, view, dict places, dict kinds, dict tables, vectors, int num_nodes, int num_bufs):
        cdef int slot, j
        if ZSTD_decompressDCtx == NULL:
            raise Unsupported("libzstd not found")
        self.view = view
        self.num_nodes = num_nodes
        self.num_bufs = num_bufs
        for slot in range(N_SLOTS):
            self.places[slot].node = -1
        self.dstr_tables = [None] * L.nd
        self.nfill = 0
        self.fill_names = []
        self.slot_names = [None] * N_SLOTS
        for name, (slot, kind) in SLOTS.items():
            if slot == C_POLICY or slot == C_SEARCH:
                continue
            self.places[slot] = _place(places, kinds, name, kind)
            self.fill[self.nfill] = slot
            self.fill_names.append(name)
            self.slot_names[slot] = name
            self.nfill += 1
            if kind == "d":
                self.dstr_tables[slot - C_DSTR] = tables[name]
        self.pol_list = _place(places, kinds, "policy", "+l")
        self.srch_list = _place(places, kinds, "search", "+l")
        for fname, (j, kind) in POLICY_FIELDS.items():
            self.pol_f[j] = _place(places, kinds, f"policy.item.{fname}", kind)
        for fname, (j, kind) in SEARCH_FIELDS.items():
            self.srch_f[j] = _place(places, kinds, f"search.item.{fname}", kind)
        self.p_keys = tables["policy.item.key"]
        self.s_keys = tables["search.item.key"]
        self.vec_names = []
        self.nv = 0
        for vname, col, shape, dtype in vectors:
            if self.nv == MAX_FIELDS:
                raise Unsupported("too many vector columns")
            j = self.nv
            memset(&self.vecs[j], 0, sizeof(Vec))
            size = 1
            for d in shape:
                size *= d
            if kinds.get(col) != ("v", size) or kinds.get(f"{col}.item") != (_vkind(dtype), dtype.itemsize) \
                    or len(shape) > MAX_DIMS:
                raise Unsupported(f"vector column {col!r} is not a fixed-size list of {size} {dtype}")
            self.vec_col[j] = _place(places, kinds, col, "v")
            self.vec_values[j] = _place(places, kinds, f"{col}.item", _vkind(dtype))
            self.vecs[j].nbytes = size * dtype.itemsize
            self.vsize[j] = size
            self.vecs[j].typenum = dtype.num
            self.vecs[j].nd = len(shape)
            for d in range(len(shape)):
                self.vecs[j].dims[d] = shape[d]
            self.vec_names.append(vname)
            self.nv += 1
        self.ready = True

    def close(self):
        """Release the file's bytes."""
        self.ready = False
        self.view = None

    def decode(self, const int64_t[::1] nodes, const int64_t[::1] bufs, int64_t length, int64_t body,
               Py_ssize_t start, Py_ssize_t stop, Scratch cached=None):
        """The move dicts of rows ``[start, stop)`` of the batch whose message gave ``length`` rows, field
        nodes ``nodes`` (length, null count pairs), body buffers ``bufs`` (offset, size pairs) and body
        position ``body``; and the batch's decompressed buffers (``cached``, when given: a former return's,
        of the same batch, decoded further where these rows need it; else new ones), to cache.  Only the
        prefix of each buffer that rows ``[0, stop)`` use is decompressed (see above)."""
        cdef Read r
        cdef Scratch s = cached if cached is not None else Scratch.__new__(Scratch)
        cdef BatchDecoder bd
        cdef Pipe pipe
        if not self.ready:
            raise ValueError("point reader closed")
        if nodes.shape[0] != 2 * self.num_nodes or bufs.shape[0] != 2 * self.num_bufs:
            raise Unsupported("batch message layout differs from the schema")
        if start < 0 or stop > length or start > stop:
            raise IndexError(f"rows [{start}, {stop}) outside the batch of {length}")
        r.base = &self.view[0]
        r.size = self.view.shape[0]
        r.body = body
        r.nodes = &nodes[0]
        r.bufs = &bufs[0]
        r.dctx = _dctx().ctx
        pipe.jobs = NULL
        pipe.on = False
        pipe.applied = 0
        bd = BatchDecoder.__new__(BatchDecoder)
        bd._keep = s
        bd.num_rows = length
        bd.dstr_tables = self.dstr_tables
        bd.p_keys = self.p_keys
        bd.s_keys = self.s_keys
        bd.vec_names = self.vec_names
        try:
            if cached is None and _helper_on:
                self._start(&r, s, length, stop, &pipe)
            return self._rows(bd, &r, s, &pipe, length, start, stop), s
        finally:
            if pipe.on:
                with nogil:
                    gsh_end()  # the helper no longer touches the jobs or the scratch memory
            free(pipe.jobs)

    cdef list _rows(self, BatchDecoder bd, Read* r, Scratch s, Pipe* pipe, int64_t length, Py_ssize_t start,
                    Py_ssize_t stop):
        """The dicts, built part by part (BatchDecoder._row's order: base fields, policy, search, vectors,
        extra), each part over all rows once the buffers it reads are decompressed (``pipe``: by the helper
        thread meanwhile, see _start)."""
        cdef int j, slot
        cdef Py_ssize_t i = start
        cdef list out = []
        cdef dict m, d
        cdef const Col* c
        cdef const Col* x
        cdef StrTable table
        was_enabled = PyGC_Disable()  # the dicts built here hold no cycles: collecting only costs time
        try:
            # part 0, the base fields, column by column in BatchDecoder._base's order (each dict gets its keys
            # in that order), each column once its buffers are decompressed
            self._col(bd, C_MOVE_NUMBER, pipe, r, s, length, stop)
            c = &bd.cols[C_MOVE_NUMBER]
            for i in range(start, stop):
                m = _PyDict_NewPresized(16)
                dict_put(m, "move_number", ival(c, i))
                out.append(m)
            for j in range(L.ni):
                self._col(bd, C_INT + j, pipe, r, s, length, stop)
                c = &bd.cols[C_INT + j]
                key = <object>PyTuple_GET_ITEM(INT_KEYS, j)
                for i in range(start, stop):
                    if ok(c, i):
                        dict_put(<dict>PyList_GET_ITEM(out, i - start), key, ival(c, i))
            for j in range(L.nf):
                self._col(bd, C_FLOAT + j, pipe, r, s, length, stop)
                c = &bd.cols[C_FLOAT + j]
                key = <object>PyTuple_GET_ITEM(FLOAT_KEYS, j)
                for i in range(start, stop):
                    if ok(c, i):
                        dict_put(<dict>PyList_GET_ITEM(out, i - start), key, fval(c, i))
            yield_gil()
            for j in range(L.nd):
                self._col(bd, C_DSTR + j, pipe, r, s, length, stop)
                c = &bd.cols[C_DSTR + j]
                key = <object>PyTuple_GET_ITEM(DSTR_KEYS, j)
                table = <StrTable>PyList_GET_ITEM(bd.dstr_tables, j)
                for i in range(start, stop):
                    if ok(c, i):
                        dict_put(<dict>PyList_GET_ITEM(out, i - start), key, table.get(ival(c, i)))
            for j in range(L.ns):
                self._col(bd, C_STR + j, pipe, r, s, length, stop)
                c = &bd.cols[C_STR + j]
                key = <object>PyTuple_GET_ITEM(STR_KEYS, j)
                for i in range(start, stop):
                    if ok(c, i):
                        dict_put(<dict>PyList_GET_ITEM(out, i - start), key, string_again(c, i, bd.last_str, j))
            yield_gil()
            for j in range(L.np):
                self._col(bd, C_POS + 3 * j, pipe, r, s, length, stop)
                self._col(bd, C_POS + 3 * j + 1, pipe, r, s, length, stop)
                self._col(bd, C_POS + 3 * j + 2, pipe, r, s, length, stop)
                x = &bd.cols[C_POS + 3 * j]
                c = &bd.cols[C_POS + 3 * j + 2]
                key = <object>PyTuple_GET_ITEM(POS_KEYS, j)
                for i in range(start, stop):
                    if ok(x, i):
                        d = _PyDict_NewPresized(3)  # as BatchDecoder._base builds it
                        dict_put(d, "x", ival(x, i))
                        dict_put(d, "y", ival(&bd.cols[C_POS + 3 * j + 1], i))
                        dict_put(d, "z", ival(c, i) if ok(c, i) else None)
                        dict_put(<dict>PyList_GET_ITEM(out, i - start), key, d)
            _pipe_until(pipe, 1, s, r)
            _entries_at(&bd.pol, &self.pol_list, self.pol_f, 4, r, s, length, stop, "policy")
            for i in range(start, stop):
                bd._policy(<dict>PyList_GET_ITEM(out, i - start), i)
            _pipe_until(pipe, 2, s, r)
            for j in range(self.nfill):
                slot = self.fill[j]
                if _slot_part(slot) == 2:
                    _fill(&bd.cols[slot], &self.places[slot], r, s, length, stop,
                          <object>PyList_GET_ITEM(self.fill_names, j))
            _entries_at(&bd.srch, &self.srch_list, self.srch_f, 7, r, s, length, stop, "search")
            for i in range(start, stop):
                bd._search(<dict>PyList_GET_ITEM(out, i - start), i)
                if ((i - start) & 15) == 15:
                    yield_gil()
            _pipe_until(pipe, 3, s, r)
            if self.nv:
                self._fill_vectors(bd, r, s, length, stop)
                for i in range(start, stop):
                    bd._vectors(<dict>PyList_GET_ITEM(out, i - start), i)
            for j in range(self.nfill):
                slot = self.fill[j]
                if _slot_part(slot) == 4:
                    _fill(&bd.cols[slot], &self.places[slot], r, s, length, stop,
                          <object>PyList_GET_ITEM(self.fill_names, j))
            for i in range(start, stop):
                bd._extra(<dict>PyList_GET_ITEM(out, i - start), i)
        except (ValueError, TypeError, OverflowError) as exc:  # bad UTF-8 or JSON, JSON not an object
            if isinstance(exc, ShardCorruptError):
                raise
            raise ShardCorruptError(f"damaged moves batch: row {i}: {type(exc).__name__}: {exc}") from None
        finally:
            if was_enabled:
                PyGC_Enable()
        return out

    cdef int _col(self, BatchDecoder bd, int slot, Pipe* pipe, Read* r, Scratch s, int64_t length,
                  int64_t stop) except -1:
        """Base column ``slot`` pointed at its buffers, once they are decompressed (part 0 of :meth:`_rows`)."""
        if pipe.on:
            _pipe_upto(pipe, pipe.col_end[slot], s, r)
        _fill(&bd.cols[slot], &self.places[slot], r, s, length, stop, <object>PyList_GET_ITEM(self.slot_names, slot))
        return 0

    cdef int _fill_vectors(self, BatchDecoder bd, Read* r, Scratch s, int64_t length, int64_t stop) except -1:
        cdef int j
        bd.vecs = <Vec*>malloc(self.nv * sizeof(Vec))
        if bd.vecs == NULL:
            raise MemoryError()
        bd.nv = self.nv
        for j in range(self.nv):
            memcpy(&bd.vecs[j], &self.vecs[j], sizeof(Vec))
            _fill(&bd.vecs[j].col, &self.vec_col[j], r, s, length, stop, self.vec_names[j])
            bd.vecs[j].col.data = NULL
            bd.vecs[j].values = NULL
            if not bd.vecs[j].col.absent:
                if r.nodes[2 * self.vec_values[j].node] < length * self.vsize[j]:
                    damaged(f"vector column {self.vec_names[j]!r} holds fewer values than its rows")
                bd.vecs[j].values = _buffer(r, s, self.vec_values[j].buf + 1, stop * bd.vecs[j].nbytes)
        return 0

    cdef int _start(self, Read* r, Scratch s, int64_t length, int64_t stop, Pipe* pipe) except -1:
        """Hand the buffers the parts of :meth:`_rows` read (fresh ``s``) to the helper thread
        (_decode_helper.pxi), in the order the parts read them; this thread takes the first part's with it,
        then builds each part's dicts while the helper decompresses the next parts'.  What fails or is not
        handed over, the fill decodes itself."""
        cdef gsh_job* jobs = <gsh_job*>malloc(MAX_BUFS * sizeof(gsh_job))
        cdef int nj = 0, j
        cdef int64_t total = 0
        if jobs == NULL:
            return 0
        pipe.jobs = jobs
        for j in range(N_SLOTS):  # base fields column by column, in the order _rows reads them (slot order)
            if _slot_part(j) == 0 and self.places[j].node >= 0:
                _plan(&self.places[j], r, s, length, stop, jobs, &nj)
            pipe.col_end[j] = nj
        for j in range(self.nfill):  # extra_json's few bytes (read last)
            if _slot_part(self.fill[j]) == 4:
                _plan(&self.places[self.fill[j]], r, s, length, stop, jobs, &nj)
        pipe.ends[0] = nj
        _plan(&self.pol_list, r, s, length, stop, jobs, &nj)
        for j in range(4):
            _plan(&self.pol_f[j], r, s, 0, -1, jobs, &nj)
        pipe.ends[1] = nj
        for j in range(self.nfill):
            if _slot_part(self.fill[j]) == 2:
                _plan(&self.places[self.fill[j]], r, s, length, stop, jobs, &nj)
        _plan(&self.srch_list, r, s, length, stop, jobs, &nj)
        for j in range(7):
            _plan(&self.srch_f[j], r, s, 0, -1, jobs, &nj)
        pipe.ends[2] = nj
        for j in range(self.nv):
            _plan(&self.vec_col[j], r, s, length, stop, jobs, &nj)
            if not (r.nodes[2 * self.vec_col[j].node] > 0
                    and r.nodes[2 * self.vec_col[j].node + 1] == r.nodes[2 * self.vec_col[j].node]):
                _plan_add(r, s, self.vec_values[j].buf + 1, stop * self.vecs[j].nbytes, jobs, &nj)
        pipe.ends[3] = nj
        for j in range(nj):
            if not jobs[j].copy:
                total += jobs[j].n
        if nj < 2 or total < HELPER_MIN_BYTES:
            return 0
        pipe.n = nj
        pipe.on = gsh_start(jobs, nj) == 0
        return 0


cdef Place _place(dict places, dict kinds, str path, str kind) except *:
    """Where column ``path`` is, checked to hold what the decoder reads as ``kind`` (``kinds``: path -> (kind,
    value width), with kind 'i' signed integer, 'C' uint8, 'f' float32/64, 'u' utf8, 'd' dictionary<int, utf8>,
    '+l' list, 'v' fixed-size list)."""
    cdef Place p
    got = kinds.get(path)
    if path not in places or got is None:
        raise Unsupported(f"moves column {path!r} is missing")
    k, width = got
    if k != kind:
        raise Unsupported(f"moves column {path!r}: {k!r} where {kind!r} is read")
    p.node, p.buf = places[path]
    p.kind = K_STR if kind == "u" else (K_LIST if kind == "+l" else (K_VALID if kind == "v" else K_FIXED))
    p.width = width
    return p


cdef int _entries_at(Entries* en, const Place* lst, const Place* f, int nf, Read* r, Scratch s, int64_t length,
                     int64_t rows, str name) except -1:
    """Point ``en`` at a list<struct> column of ``length`` rows, read up to row ``rows``, and its entries."""
    cdef int j
    cdef int64_t eb
    _fill(&en.list, lst, r, s, length, rows, name)
    eb = en.list.hi
    for j in range(nf):
        _fill(&en.f[j], &f[j], r, s, eb, eb, name)
    return 0


cdef str _vkind(dtype):
    return "e" if dtype.itemsize == 2 else "f"


def str_table(arr):
    """The :class:`StrTable` of a pyarrow string array."""
    cdef tuple caps = arr.__arrow_c_array__()
    cdef const ArrowSchema* sch = <const ArrowSchema*>PyCapsule_GetPointer(caps[0], b"arrow_schema")
    cdef const ArrowArray* a = <const ArrowArray*>PyCapsule_GetPointer(caps[1], b"arrow_array")
    if strcmp(sch.format, b"u") != 0 or a.n_buffers != 3:
        raise Unsupported("a dictionary that is not utf8")
    return StrTable.of(a)
