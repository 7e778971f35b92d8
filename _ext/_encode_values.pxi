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
cdef object _orjson_dumps = orjson.dumps


cdef inline bint is_digit(unsigned char c) noexcept nogil:
    return c >= 48 and c <= 57


cdef bint orjson_spells_json(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    """``records._orjson_text_is_json`` of the text ``s[0:n]`` of an object (it starts with ``{``), in one pass:
    no exponent after a digit, no run of more than 16 digits before a ".", no "0.0000"."""
    cdef Py_ssize_t i, j
    for i in range(1, n):
        if s[i] == 101:  # "e"
            if i + 1 < n and (s[i + 1] == 43 or s[i + 1] == 45) and is_digit(s[i - 1]):  # "+", "-"
                return False
        elif s[i] == 46:  # "."
            j = i
            while j > 0 and is_digit(s[j - 1]):
                j -= 1
            if i - j > 16 or (n - j >= 6 and memcmp(s + j, b"0.0000", 6) == 0):
                return False
    return True


cdef object json_text(dict value):
    """``records.dump_json(value)`` of a dict ``json_ok`` accepted: orjson's text (~10x faster than json's)
    where it is provably the same text, else json's (as ``records.dump_canonical_json`` decides)."""
    cdef bytes ob
    try:
        ob = _orjson_dumps(value)
    except (TypeError, ValueError):  # big ints, lone surrogates, ...: json decides
        return _dumps(value)
    if orjson_spells_json(<const unsigned char*>PyBytes_AS_STRING(ob), PyBytes_GET_SIZE(ob)):
        return PyUnicode_DecodeUTF8(PyBytes_AS_STRING(ob), PyBytes_GET_SIZE(ob), NULL)
    return _dumps(value)


def json_text_of(dict value):
    """The text the fast path stores for an unknown-keys dict ``value`` (tests compare it with ``dump_json``)."""
    return json_text(value)


def orjson_text_is_json(bytes text):
    """The compiled ``records._orjson_text_is_json`` (tests compare the two)."""
    return orjson_spells_json(<const unsigned char*>PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text))


_SAMPLE = {"a": [1.5, "\u00e9\n", None, True, -0.0, 1e308, 10**30, 1e-7, 0.5], "b": {"c": {}}}
if _dumps(_SAMPLE) != dump_json(_SAMPLE) or json_text(_SAMPLE) != dump_json(_SAMPLE) or \
        json_text(_SAMPLE["b"]) != dump_json(_SAMPLE["b"]):
    raise ImportError("gamestore._encode: JSON text differs from records.dump_json: rebuild it")


cdef bint text_ok(object s) noexcept:
    """False when the str ``s`` holds a lone surrogate (not storable as UTF-8: the reference's ``check_text`` refuses it)."""
    cdef Py_ssize_t i, n
    cdef int kind = PyUnicode_KIND(s)
    cdef Py_UCS4 c
    if kind == 1:  # Latin-1 storage: no surrogates
        return True
    if kind != 2 and kind != 4:  # a legacy string not yet in canonical form: the reference decides
        return False
    n = PyUnicode_GET_LENGTH(s)
    for i in range(n):
        c = PyUnicode_READ(kind, PyUnicode_DATA(s), i)
        if c >= 0xD800 and c <= 0xDFFF:
            return False
    return True


cdef bint json_ok(object value, int depth) except -1:
    """True when ``json_canonical(value)`` succeeds and ``dump_json`` of it equals ``dump_json(value)``.

    Accepts plain JSON trees (exact dict with str keys, list, tuple, str, int, finite float, bool, None; no lone
    surrogate in a str);
    anything else (NaN, infinities, other types, deep nesting) is left to the reference (False).
    """
    cdef Py_ssize_t pos = 0, i
    cdef PyObject* pk
    cdef PyObject* pv
    if PyFloat_CheckExact(value):
        return isfinite(PyFloat_AS_DOUBLE(value))
    if PyUnicode_CheckExact(value):
        return text_ok(value)
    if value is None or PyLong_CheckExact(value) or PyBool_Check(value):
        return True
    if depth > 100:
        return False
    if PyDict_CheckExact(value):
        while PyDict_Next(value, &pos, &pk, &pv):
            if not PyUnicode_CheckExact(<object>pk) or not text_ok(<object>pk) or not json_ok(<object>pv, depth + 1):
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
