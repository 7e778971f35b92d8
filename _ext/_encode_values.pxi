# Part of gamestore._encode (included by _encode.pyx): scalar checks of the fast path, the JSON text of
# unknown keys, and float32 / numpy helpers of the output.

cdef inline int as_int(object v, int64_t* out) except -1:
    """0 and ``out`` set when ``v`` is an int check_scalar accepts and fits int64; 1 otherwise."""
    cdef int overflow = 0
    if not PyLong_CheckExact(v):
        if isinstance(v, NP_INTEGER):
            v = int(v)
        else:
            return SLOW
    out[0] = PyLong_AsLongLongAndOverflow(v, &overflow)
    return SLOW if overflow else OK


cdef inline int as_float(object v, double* out) except -1:
    if PyFloat_CheckExact(v):
        out[0] = PyFloat_AS_DOUBLE(v)
        return OK
    if PyLong_CheckExact(v):
        out[0] = PyLong_AsDouble(v)
        return OK
    if isinstance(v, NP_NUMBER):
        out[0] = float(v)
        return OK
    return SLOW


def _json_text_encoder():
    """``records.dump_json`` with the C encoder object built once (it is stateless without circular checks)."""
    from json.encoder import c_make_encoder, encode_basestring

    plain = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if c_make_encoder is None:
        return plain.encode
    encoder = c_make_encoder(None, plain.default, encode_basestring, None, ":", ",", False, False, False)
    return lambda obj: "".join(encoder(obj, 0))


cdef object _dumps = _json_text_encoder()
_SAMPLE = {"a": [1.5, "\u00e9\n", None, True, -0.0, 1e308, 10**30], "b": {"c": {}}}
if _dumps(_SAMPLE) != dump_json(_SAMPLE):
    raise ImportError("gamestore._encode: JSON text differs from records.dump_json: rebuild it")


cdef bint json_ok(object value, int depth) except -1:
    """True when ``json_canonical(value)`` succeeds and ``dump_json`` of it equals ``dump_json(value)``.

    Accepts plain JSON trees (exact dict with str keys, list, tuple, str, int, finite float, bool, None);
    anything else (NaN, infinities, other types, deep nesting) is left to the reference (False).
    """
    cdef Py_ssize_t pos = 0, i
    cdef PyObject* pk
    cdef PyObject* pv
    if PyFloat_CheckExact(value):
        return isfinite(PyFloat_AS_DOUBLE(value))
    if value is None or PyUnicode_CheckExact(value) or PyLong_CheckExact(value) or PyBool_Check(value):
        return True
    if depth > 100:
        return False
    if PyDict_CheckExact(value):
        while PyDict_Next(value, &pos, &pk, &pv):
            if not PyUnicode_CheckExact(<object>pk) or not json_ok(<object>pv, depth + 1):
                return False
        return True
    if PyList_CheckExact(value) or PyTuple_CheckExact(value):
        for item in value:
            if not json_ok(item, depth + 1):
                return False
        return True
    return False


cdef object vec_view(object owner, void* data, Py_ssize_t n, int typenum):
    """A 1-d numpy array over ``n`` items at ``data`` (a std::vector of ``owner``, which it keeps alive), no copy."""
    cdef cnp.npy_intp dims[1]
    if n == 0:
        return cnp.PyArray_EMPTY(1, [0], typenum, 0)
    dims[0] = n
    arr = cnp.PyArray_SimpleNewFromData(1, dims, typenum, data)
    Py_INCREF(owner)
    cnp.PyArray_SetBaseObject(<cnp.ndarray>arr, owner)  # steals the reference
    return arr


def entries_split(cnp.ndarray[cnp.float64_t, ndim=1, mode="c"] d, cnp.ndarray ok):
    """``(f32, f64, valid64)`` of the float entries ``d`` (0.0 under a null slot) with validity ``ok`` (bool, or
    None: all valid), in one pass: the float32 values (0 under nulls), the float64 values where the float32 does
    not widen back to them bit for bit (0 elsewhere), and where those are (their validity)."""
    cdef Py_ssize_t i, n = d.shape[0]
    f = np.empty(n, np.float32)
    d64 = np.empty(n, np.float64)
    v64 = np.empty(n, np.bool_)
    cdef const double* dp = <const double*>cnp.PyArray_DATA(d)
    cdef const uint8_t* okp = NULL
    cdef float* fp = <float*>cnp.PyArray_DATA(f)
    cdef double* gp = <double*>cnp.PyArray_DATA(d64)
    cdef uint8_t* vp = <uint8_t*>cnp.PyArray_DATA(v64)
    cdef double w, x
    cdef uint64_t a, b
    if ok is not None and (ok.dtype != np.bool_ or ok.ndim != 1 or ok.shape[0] != n or not ok.flags.c_contiguous):
        raise ValueError("ok must be a contiguous bool array as long as d")
    if ok is not None:
        okp = <const uint8_t*>cnp.PyArray_DATA(ok)
    with nogil:
        for i in range(n):
            x = dp[i]
            fp[i] = <float>x
            w = <double>fp[i]
            memcpy(&a, &w, 8)
            memcpy(&b, &x, 8)
            if a != b and (okp == NULL or okp[i]):
                gp[i] = x
                vp[i] = 1
            else:
                gp[i] = 0.0
                vp[i] = 0
    return f, d64, v64


def key_action(cnp.ndarray[cnp.int32_t, ndim=1, mode="c"] cand, cnp.ndarray is_key):
    """``(key codes, action ids)`` of candidates ``cand`` (``is_key``: a key's code, else an action id), each 0
    where it does not apply, in one pass."""
    cdef Py_ssize_t i, n = cand.shape[0]
    if is_key.dtype != np.bool_ or is_key.ndim != 1 or is_key.shape[0] != n or not is_key.flags.c_contiguous:
        raise ValueError("is_key must be a contiguous bool array as long as cand")
    key = np.empty(n, np.int32)
    action = np.empty(n, np.int32)
    cdef const int32_t* cp = <const int32_t*>cnp.PyArray_DATA(cand)
    cdef const uint8_t* kp = <const uint8_t*>cnp.PyArray_DATA(is_key)
    cdef int32_t* kout = <int32_t*>cnp.PyArray_DATA(key)
    cdef int32_t* aout = <int32_t*>cnp.PyArray_DATA(action)
    with nogil:
        for i in range(n):
            if kp[i]:
                kout[i] = cp[i]
                aout[i] = 0
            else:
                kout[i] = 0
                aout[i] = cp[i]
    return key, action


COLS_POLICY = 0x100  # ColsHead.flags of a policy (a search's flags are search_flags bits, below 0x100)
