# cython: language_level=3
"""Declarations shared by ``_encode.pyx`` and ``_decode.pyx`` (no code of its own).

The column layout (which move keys are ints, floats, dictionary strings...)
is derived from ``gamestore.schema`` at import by :func:`load_layout`, so
both modules agree with the schema and with each other.
"""
from libc.stdint cimport int64_t, uint8_t

cdef extern from "Python.h":
    bint PyDict_CheckExact(object)
    bint PyUnicode_Check(object)
    bint PyUnicode_CheckExact(object)
    bint PyBool_Check(object)
    dict _PyDict_NewPresized(Py_ssize_t)
    bint PyList_CheckExact(object)
    bint PyTuple_CheckExact(object)
    object PyUnicode_DecodeUTF8(const char*, Py_ssize_t, const char*)
    bint PyLong_CheckExact(object)
    bint PyFloat_CheckExact(object)
    double PyFloat_AS_DOUBLE(object)
    int PyGC_Enable()
    int PyGC_Disable()

cdef enum:
    MAX_FIELDS = 16   # most fields of one kind (ints, floats, ...) the layout arrays hold
    NUM_MAPS = 3      # search maps: q_values, visit_counts, prior_policy
    EMPTY_BITS = 7    # search_flags bits of the three maps


ctypedef struct ColsHead:
    # A policy or search statistics in column form (``gamestore._encode.Columns``): this head, then
    # double a[n] (q values, or a policy's probabilities), double b[n] (priors), int32 visits[n],
    # int32 key_end[n] and the candidates' ASCII key text (key i is text[key_end[i - 1]:key_end[i]]).
    int64_t n
    int64_t flags          # search_flags: the maps and scalars present (a policy: 0)
    double sfloat[MAX_FIELDS]  # search float scalars, by Layout index
    int64_t sint[MAX_FIELDS]   # search int scalars, by Layout index


ctypedef struct Layout:
    int ni, nf, nd, ns, np, nsf, nsi
    int64_t int_lo[MAX_FIELDS]
    int64_t int_hi[MAX_FIELDS]
    int64_t sint_lo[MAX_FIELDS]
    int64_t sint_hi[MAX_FIELDS]
    uint8_t sfloat_bit[MAX_FIELDS]
    uint8_t sint_bit[MAX_FIELDS]
    uint8_t map_bit[NUM_MAPS]


cdef inline dict load_layout(Layout* L):
    """Fill ``L`` from ``gamestore.schema``; returns the key and column name tuples of each kind.

    (List comprehensions only: Cython 3.3 cannot compile a generator inside an inline .pxd function.)
    """
    from gamestore.schema import MOVE_SCALAR_FIELDS, POSITION_FIELDS, SEARCH_MAPS, SEARCH_SCALARS

    int_bits = {"int8": 7, "int16": 15, "int32": 31, "int64": 63}
    scalar = [(k, c, t, kind) for k, c, t, kind in MOVE_SCALAR_FIELDS]
    ints = [(k, c, str(t)) for k, c, t, kind in scalar if kind == "int"]
    floats = [(k, c) for k, c, t, kind in scalar if kind == "float"]
    dstrs = [(k, c, t) for k, c, t, kind in scalar if kind == "str" and str(t).startswith("dictionary")]
    strs = [(k, c) for k, c, t, kind in scalar if kind == "str" and not str(t).startswith("dictionary")]
    sfloats = [(k, c, b) for k, c, t, kind, b in SEARCH_SCALARS if kind == "float"]
    sints = [(k, c, str(t), b) for k, c, t, kind, b in SEARCH_SCALARS if kind == "int"]
    if max(len(ints), len(floats), len(dstrs), len(strs), len(sfloats), len(sints), len(POSITION_FIELDS)) > MAX_FIELDS:
        raise ImportError("gamestore.schema has more fields of one kind than the compiled layout holds: rebuild")
    if len(SEARCH_MAPS) != NUM_MAPS or sum([b for _, b in SEARCH_MAPS]) != EMPTY_BITS:
        raise ImportError("gamestore.schema search maps differ from the compiled layout: rebuild")
    L.ni, L.nf, L.nd, L.ns = len(ints), len(floats), len(dstrs), len(strs)
    L.np, L.nsf, L.nsi = len(POSITION_FIELDS), len(sfloats), len(sints)
    for j, (_k, _c, t) in enumerate(ints):
        L.int_lo[j] = -(2 ** int_bits[t])
        L.int_hi[j] = 2 ** int_bits[t] - 1
    for j, (_k, _c, t, b) in enumerate(sints):
        L.sint_lo[j] = -(2 ** int_bits[t])
        L.sint_hi[j] = 2 ** int_bits[t] - 1
        L.sint_bit[j] = b
    for j, (_k, _c, b) in enumerate(sfloats):
        L.sfloat_bit[j] = b
    for j, (_k, b) in enumerate(SEARCH_MAPS):
        L.map_bit[j] = b
    return {
        "int_keys": tuple([k for k, _c, _t in ints]),
        "int_cols": tuple([c for _k, c, _t in ints]),
        "float_keys": tuple([k for k, _c in floats]),
        "float_cols": tuple([c for _k, c in floats]),
        "dstr_keys": tuple([k for k, _c, _t in dstrs]),
        "dstr_cols": tuple([c for _k, c, _t in dstrs]),
        "dstr_limits": tuple([2 ** (t.index_type.bit_width - 1) for _k, _c, t in dstrs]),
        "str_keys": tuple([k for k, _c in strs]),
        "str_cols": tuple([c for _k, c in strs]),
        "pos_keys": tuple([k for k, _p in POSITION_FIELDS]),
        "pos_prefixes": tuple([p for _k, p in POSITION_FIELDS]),
        "map_keys": tuple([k for k, _b in SEARCH_MAPS]),
        "sfloat_keys": tuple([k for k, _c, _b in sfloats]),
        "sfloat_cols": tuple([c for _k, c, _b in sfloats]),
        "sint_keys": tuple([k for k, _c, _t, _b in sints]),
        "sint_cols": tuple([c for _k, c, _t, _b in sints]),
    }


cdef extern from *:
    """
    /* The Python function called by gs_yield_gil: gamestore.gil.switch_point (a bytecode ``lambda: None``
       if that cannot be imported). */
    static PyObject *gs_switch_point = NULL;

    static PyObject *gs_lambda_none(void) {
        PyObject *code, *globals, *fn;
        code = Py_CompileString("lambda: None", "<gamestore switch point>", Py_eval_input);
        if (code == NULL) return NULL;
        globals = PyDict_New();
        if (globals == NULL) { Py_DECREF(code); return NULL; }
        if (PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0) {
            Py_DECREF(code); Py_DECREF(globals); return NULL;
        }
        fn = PyEval_EvalCode(code, globals, globals);
        Py_DECREF(code);
        Py_DECREF(globals);
        return fn;
    }

    static int gs_yield_gil(void) {
        PyObject *r;
        if (gs_switch_point == NULL) {
            PyObject *mod = PyImport_ImportModule("gamestore.gil");
            if (mod != NULL) {
                gs_switch_point = PyObject_GetAttrString(mod, "switch_point");
                Py_DECREF(mod);
            }
            if (gs_switch_point == NULL) {
                PyErr_Clear();
                gs_switch_point = gs_lambda_none();
                if (gs_switch_point == NULL) return -1;
            }
        }
        r = PyObject_CallNoArgs(gs_switch_point);
        if (r == NULL) return -1;
        Py_DECREF(r);
        return 0;
    }
    """
    int gs_yield_gil() except -1


cdef inline int yield_gil() except -1:
    """A switch point of a compiled loop: hand the GIL to a thread that asked for it.

    Compiled loops never reach the interpreter's switch check, so a long one
    holds the GIL (and stalls an asyncio loop in another thread) until it
    returns.  This calls a bytecode function, ``gamestore.gil.switch_point``,
    whose entry runs the interpreter's eval-breaker check: when another
    thread has waited for the GIL longer than the switch interval, it is
    handed over there, exactly as Python code does (and pending signal
    handlers run: Ctrl-C interrupts the loop); in a thread marked by
    ``gamestore.gil.handing_over`` (the async API's pool calls) it is also
    released for a moment at least every ~0.5 ms of work, so a waiting event
    loop gets it without waiting the interval.  Costs ~0.2 us otherwise.

    Not ``with nogil: pass``: releasing and retaking the GIL wakes a waiting
    thread, which nearly always loses the race for it to the releasing thread
    and then restarts its switch-interval wait; a loop releasing every few
    hundred microseconds kept a waiting thread out for 30-300 ms at a time
    (measured: /benchmarks/README.md, "Event-loop lag").
    """
    return gs_yield_gil()
