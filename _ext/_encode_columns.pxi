# Part of gamestore._encode (included by _encode.pyx): policies and search statistics in column form
# (``Columns``, built by parsers such as gamestore.ringrift.cells) and their fast path.



cdef class Columns:
    """A policy or search statistics in column form, for parsers that build one without a Python object
    per candidate (``gamestore.ringrift.cells`` does, from RingRift's JSON text).

    ``data`` holds a ``ColsHead`` (``_common.pxd``) and the columns after it; the compiled encoder
    reads them.  A subclass is also the Mapping they stand for, which every other consumer (the
    reference backend, ``normalize_move``) reads instead: its parser proves the two equal.
    """
    cdef readonly bytes data
    cdef readonly object source  # what the columns were parsed from (the subclass's business)
    cdef Py_ssize_t n
    cdef const ColsHead* head
    cdef const double* a
    cdef const double* b
    cdef const int32_t* visits
    cdef const int32_t* key_end
    cdef const unsigned char* keys

    def __cinit__(self, bytes data, object source=None, *args, **kwargs):
        cdef Py_ssize_t size = len(data), n, i, end = 0
        cdef const char* p = <const char*>data
        if size < <Py_ssize_t>sizeof(ColsHead):
            raise ValueError("column data too short")
        self.head = <const ColsHead*>p
        n = self.head.n
        if n < 0 or n > (size - <Py_ssize_t>sizeof(ColsHead)) // 24:
            raise ValueError("bad candidate count")
        self.a = <const double*>(p + sizeof(ColsHead))
        self.b = self.a + n
        self.visits = <const int32_t*>(self.b + n)
        self.key_end = self.visits + n
        self.keys = <const unsigned char*>(self.key_end + n)
        for i in range(n):
            if self.key_end[i] < end:
                raise ValueError("bad key offsets")
            end = self.key_end[i]
        if size != <Py_ssize_t>sizeof(ColsHead) + 24 * n + end:
            raise ValueError("column data size does not match its head")
        for i in range(end):
            if self.keys[i] >= 128:
                raise ValueError("candidate keys must be ASCII")
        self.data = data
        self.source = source
        self.n = n


cdef int add_policy_cols(MoveEncoder enc, Columns value, Py_ssize_t row) except -1:
    """``add_policy`` of a policy in column form."""
    cdef Py_ssize_t i, start = 0
    cdef int32_t c
    if value.head.flags != COLS_POLICY:
        return SLOW
    for i in range(value.n):
        if not isfinite(value.a[i]):
            return SLOW
        c = enc.p_codes.code_ascii(value.keys + start, value.key_end[i] - start)
        if c < 0:
            return FULL
        start = value.key_end[i]
        enc.p_cand.push_back(c)
        enc.p_is_key.push_back(1)
        enc.p_prob.push_back(value.a[i])
    enc.pol_ok[row] = 1
    return OK

cdef int add_search_cols(MoveEncoder enc, Columns value, Py_ssize_t row) except -1:
    """``add_search`` of search statistics in column form (one candidate list for the maps present)."""
    cdef const ColsHead* h = value.head
    cdef Py_ssize_t i, start = 0
    cdef int j
    cdef int32_t c
    cdef uint8_t q_ok, v_ok, p_ok
    if h.flags < 0 or h.flags >= 0x100:
        return SLOW
    for j in range(NSI):
        if h.flags & L.sint_bit[j] and (h.sint[j] < L.sint_lo[j] or h.sint[j] > L.sint_hi[j]):
            return SLOW
    for j in range(NSF):
        if h.flags & L.sfloat_bit[j]:
            enc.sfloat[j, row] = h.sfloat[j]
    for j in range(NSI):
        if h.flags & L.sint_bit[j]:
            enc.sint[j, row] = h.sint[j]
    enc.flags[row] = <uint8_t>h.flags
    put_text(enc, NS, row, EMPTY_JSON)
    if not (h.flags & 7):
        return OK
    enc.srch_ok[row] = 1
    q_ok = (h.flags & L.map_bit[0]) != 0
    v_ok = (h.flags & L.map_bit[1]) != 0
    p_ok = (h.flags & L.map_bit[2]) != 0
    for i in range(value.n):
        c = enc.s_codes.code_ascii(value.keys + start, value.key_end[i] - start)
        if c < 0:
            return FULL
        start = value.key_end[i]
        enc.s_cand.push_back(c)
        enc.s_is_key.push_back(1)
        enc.s_q.push_back(value.a[i] if q_ok else 0.0)
        enc.s_q_ok.push_back(q_ok)
        enc.s_visits.push_back(value.visits[i] if v_ok else 0)
        enc.s_v_ok.push_back(v_ok)
        enc.s_prior.push_back(value.b[i] if p_ok else 0.0)
        enc.s_p_ok.push_back(p_ok)
    return OK
