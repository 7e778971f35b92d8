# Part of gamestore._encode (included by _encode.pyx): the structured fields of one move on the fast
# path (position, policy, search statistics, vectors), filling a MoveEncoder's buffers for one row.
# Each returns OK, SLOW (roll back: the reference decides) or FULL (a dictionary is full).

cdef int add_position(MoveEncoder enc, object value, int j, Py_ssize_t row) except -1:
    cdef PyObject* px
    cdef PyObject* py
    cdef PyObject* pz
    cdef PyObject* pk
    cdef PyObject* pv
    cdef int64_t x, y, z
    cdef Py_ssize_t pos = 0
    if not PyDict_CheckExact(value):
        return SLOW
    px = py = pz = NULL
    # one walk over the (two or three) entries instead of three lookups; keys "x", "y", "z" only
    while PyDict_Next(value, &pos, &pk, &pv):
        if pk != <PyObject*>S_X and pk != <PyObject*>S_Y and pk != <PyObject*>S_Z:
            if not PyUnicode_CheckExact(<object>pk):
                return SLOW
            k = <object>pk
            pk = <PyObject*>S_X if k == S_X else (<PyObject*>S_Y if k == S_Y else (<PyObject*>S_Z if k == S_Z else NULL))
        if pk == <PyObject*>S_X:
            px = pv
        elif pk == <PyObject*>S_Y:
            py = pv
        elif pk == <PyObject*>S_Z:
            pz = pv
        else:
            return SLOW
    if px == NULL or py == NULL:
        return SLOW
    if as_int(<object>px, &x) or as_int(<object>py, &y) or x < -32768 or x > 32767 or y < -32768 or y > 32767:
        return SLOW
    enc.pos[3 * j, row] = <int16_t>x
    enc.pos[3 * j + 1, row] = <int16_t>y
    enc.pos_ok[j, row] = 1
    if pz != NULL and <object>pz is not None:
        if as_int(<object>pz, &z) or z < -32768 or z > 32767:
            return SLOW
        enc.pos[3 * j + 2, row] = <int16_t>z
        enc.z_ok[j, row] = 1
    return OK

cdef int add_policy(MoveEncoder enc, object value, Py_ssize_t row) except -1:
    cdef Py_ssize_t pos = 0
    cdef PyObject* pk
    cdef PyObject* pv
    cdef int r
    cdef double dv
    if not PyDict_CheckExact(value):
        return SLOW
    while PyDict_Next(value, &pos, &pk, &pv):
        r = code_candidate(<object>pk, enc.p_codes, enc.p_is_key, enc.p_cand)
        if r != OK:
            return r
        if as_float(<object>pv, &dv) or not isfinite(dv):
            return SLOW
        enc.p_prob.push_back(dv)
    enc.pol_ok[row] = 1
    return OK

cdef int add_search(MoveEncoder enc, object value, Py_ssize_t row) except -1:
    cdef Py_ssize_t pos = 0
    cdef PyObject* pk
    cdef PyObject* pv
    cdef PyObject* pc
    cdef int code, kind, j, m, r
    cdef int64_t iv
    cdef double dv
    cdef uint8_t flags = 0
    cdef dict extra = None
    cdef PyObject* maps[3]  # the q / visits / prior maps, borrowed from value (NULL: absent)
    cdef PyObject* mp
    if not PyDict_CheckExact(value):
        return SLOW
    maps[0] = maps[1] = maps[2] = NULL
    while PyDict_Next(value, &pos, &pk, &pv):  # borrowed references only, as in MoveEncoder._add
        if not PyUnicode_Check(<object>pk):
            return SLOW
        code = cached_code(enc.search_keys, pk, SEARCH_CODES)
        if code < 0 or pv == <PyObject*>None:
            if not text_ok(<object>pk) or not json_ok(<object>pv, 0):
                return SLOW
            if extra is None:
                extra = {}
            extra[<object>pk] = <object>pv
            continue
        kind = code >> 8
        j = code & 0xFF
        if kind == S_MAP:
            if not PyDict_CheckExact(<object>pv):
                return SLOW
            maps[j] = pv
            flags |= L.map_bit[j]
        elif kind == S_FLOAT:
            if as_float(<object>pv, &dv):
                return SLOW
            enc.sfloat[j, row] = dv
            flags |= L.sfloat_bit[j]
        else:
            if as_int(<object>pv, &iv) or iv < L.sint_lo[j] or iv > L.sint_hi[j]:
                return SLOW
            enc.sint[j, row] = iv
            flags |= L.sint_bit[j]
    enc.flags[row] = flags
    put_text(enc, NS, row, EMPTY_JSON if extra is None else json_text(extra))
    if not (flags & 7):
        return OK
    enc.srch_ok[row] = 1
    cdef size_t base = enc.s_cand.size()
    enc.cands.clear()
    cdef vector[PyObject*]* cands = &enc.cands  # candidates in first-seen order (borrowed from the maps)
    cdef dict seen = None     # candidate -> local index, built on the first out-of-step key
    cdef Py_ssize_t t, idx, ncands, nstart
    cdef PyObject* ps
    cdef size_t e
    for m in range(3):
        mp = maps[m]
        if mp == NULL:
            continue
        pos = 0
        t = 0
        nstart = cands.size()  # the candidates of the earlier maps: a map's own keys are distinct
        while PyDict_Next(<object>mp, &pos, &pk, &pv):
            ncands = cands.size()
            if t < ncands and cands[0][t] == pk:
                idx = t  # the same key object at the same place as in an earlier map
            else:
                idx = -1
                if nstart:
                    if seen is None:
                        seen = {<object>cands[0][u]: u for u in range(ncands)}
                    ps = PyDict_GetItemWithError(seen, <object>pk)
                    if ps != NULL:
                        idx = <object>ps
                if idx < 0:
                    r = code_candidate(<object>pk, enc.s_codes, enc.s_is_key, enc.s_cand)
                    if r != OK:
                        return r
                    idx = ncands
                    cands.push_back(pk)
                    if seen is not None:
                        seen[<object>pk] = idx
                    enc.s_q.push_back(0.0)
                    enc.s_q_ok.push_back(0)
                    enc.s_visits.push_back(0)
                    enc.s_v_ok.push_back(0)
                    enc.s_prior.push_back(0.0)
                    enc.s_p_ok.push_back(0)
            e = base + idx
            if m == 1:
                if as_int(<object>pv, &iv) or iv < INT32_MIN or iv > INT32_MAX:
                    return SLOW
                enc.s_visits[e] = <int32_t>iv
                enc.s_v_ok[e] = 1
            else:
                if as_float(<object>pv, &dv):
                    return SLOW
                if m == 0:
                    enc.s_q[e] = dv
                    enc.s_q_ok[e] = 1
                else:
                    enc.s_prior[e] = dv
                    enc.s_p_ok[e] = 1
            t += 1
    return OK

cdef int add_vectors(MoveEncoder enc, object value, Py_ssize_t row) except -1:
    cdef Py_ssize_t pos = 0
    cdef PyObject* pk
    cdef PyObject* pv
    cdef PyObject* pj
    cdef int j
    cdef cnp.ndarray arr
    if not value:
        return OK
    if not PyDict_CheckExact(value):
        return SLOW
    while PyDict_Next(value, &pos, &pk, &pv):
        if <object>pv is None:
            continue
        pj = PyDict_GetItemWithError(enc.vec_index, <object>pk)
        if pj == NULL:
            return SLOW
        j = <object>pj
        obj = <object>pv
        if not (isinstance(obj, NDARRAY) and fast_vector(enc, obj, j)):
            obj = normalize_vector(obj, enc.spec_list[j], game_id=None, field="")
        arr = obj
        memcpy(enc.vec_ptr[j] + row * enc.vec_nbytes[j], cnp.PyArray_DATA(arr), enc.vec_nbytes[j])
        enc.vec_ok[j, row] = 1
    return OK

cdef bint fast_vector(MoveEncoder enc, cnp.ndarray arr, int j):
    return (
        cnp.PyArray_TYPE(arr) == enc.vec_typenum[j]
        and cnp.PyArray_ISNOTSWAPPED(arr)
        and cnp.PyArray_IS_C_CONTIGUOUS(arr)
        and cnp.PyArray_NBYTES(arr) == enc.vec_nbytes[j]
    )
