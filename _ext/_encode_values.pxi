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


cdef void split_float32(const double* d, Py_ssize_t n, float* f, uint8_t* exact) noexcept nogil:
    """float32 values of ``d`` and whether each widens back bit-exactly."""
    cdef Py_ssize_t i
    cdef double w
    cdef uint64_t a, b
    for i in range(n):
        f[i] = <float>d[i]
        w = <double>f[i]
        memcpy(&a, &w, 8)
        memcpy(&b, &d[i], 8)
        exact[i] = a == b


cdef object vec_to_numpy(const void* data, Py_ssize_t n, Py_ssize_t itemsize, object dtype):
    out = np.empty(n, dtype=dtype)
    cdef char* dst = <char*>cnp.PyArray_DATA(out)
    with nogil:
        if n:
            memcpy(dst, data, n * itemsize)
    return out


COLS_POLICY = 0x100  # ColsHead.flags of a policy (a search's flags are search_flags bits, below 0x100)
