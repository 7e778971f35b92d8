# Included by _decode.pyx: filling the fresh dicts a decode builds without PyDict_SetItem's general path.
#
# A point read builds ~16,000 dict entries per game (policy, search maps, move fields); PyDict_SetItem spent
# ~110 instructions on each (a full lookup, a probe for a free slot, version and tracking upkeep): the largest
# part of get_game's CPU after zstd (benchmarks/README.md, getgame).  ``dict_put`` inserts into a dict this
# module just created and still holds alone, with a str key (its hash cached) and a value of a type outside the
# collector (int, float, str, None, numpy array) or a dict: on CPython 3.11 it writes the hash-table slot and the entry directly, with the probe sequence and
# table layout of CPython's own ``insertdict``, so every later lookup finds the key as if PyDict_SetItem had put
# it there.  Anything else (another CPython, a dict without room, a key whose hash is not cached, an equal key
# already present, a container value other than a dict) takes PyDict_SetItem.  Skipped on the fast path, and
# why that is safe for a dict nobody else has seen yet: bumping the dict's version tag (it was taken when the
# dict was created; no cache can hold an older one).  GC tracking is kept as insertdict keeps it: a dict value
# makes the dict tracked, values outside the collector leave it as it is.
# tests/test_decode_dict.py checks the result against PyDict_SetItem's for many key sets and table sizes.

cdef extern from *:
    """
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 && !defined(Py_LIMITED_API) && !defined(Py_GIL_DISABLED)
    #define GS_DICT_FAST 1
    /* CPython 3.11's dict keys object (Include/internal/pycore_dict.h) */
    typedef struct {
        Py_ssize_t dk_refcnt;
        uint8_t dk_log2_size;
        uint8_t dk_log2_index_bytes;
        uint8_t dk_kind;
        uint32_t dk_version;
        Py_ssize_t dk_usable;
        Py_ssize_t dk_nentries;
        char dk_indices[];
    } gs_dictkeys;
    typedef struct { Py_hash_t me_hash; PyObject *me_key; PyObject *me_value; } gs_entry;
    typedef struct { PyObject *me_key; PyObject *me_value; } gs_uentry;

    static inline Py_ssize_t gs_get_index(const gs_dictkeys *k, size_t i) {
        uint8_t log2 = k->dk_log2_size;
        if (log2 < 8) return ((const int8_t *)k->dk_indices)[i];
        if (log2 < 16) return ((const int16_t *)k->dk_indices)[i];
        if (log2 >= 32) return ((const int64_t *)k->dk_indices)[i];
        return ((const int32_t *)k->dk_indices)[i];
    }

    static inline void gs_set_index(gs_dictkeys *k, size_t i, Py_ssize_t ix) {
        uint8_t log2 = k->dk_log2_size;
        if (log2 < 8) ((int8_t *)k->dk_indices)[i] = (int8_t)ix;
        else if (log2 < 16) ((int16_t *)k->dk_indices)[i] = (int16_t)ix;
        else if (log2 >= 32) ((int64_t *)k->dk_indices)[i] = (int64_t)ix;
        else ((int32_t *)k->dk_indices)[i] = (int32_t)ix;
    }
    #else
    #define GS_DICT_FAST 0
    #endif

    /* d[key] = value for a dict the caller created and alone holds (see above); borrows both. */
    static int gs_dict_put(PyObject *d, PyObject *key, PyObject *value) {
    #if GS_DICT_FAST
        PyDictObject *mp = (PyDictObject *)d;
        gs_dictkeys *k = (gs_dictkeys *)mp->ma_keys;
        PyTypeObject *vt = Py_TYPE(value);
        Py_hash_t hash;
        size_t mask, i, perturb;
        Py_ssize_t ix;
        if (mp->ma_values != NULL || k->dk_usable <= 0 || k->dk_kind > 1 || !PyUnicode_CheckExact(key)
                || (PyType_IS_GC(vt) && vt != &PyDict_Type))
            return PyDict_SetItem(d, key, value);
        hash = ((PyASCIIObject *)key)->hash;
        if (hash == -1)
            return PyDict_SetItem(d, key, value);
        mask = ((size_t)1 << k->dk_log2_size) - 1;
        i = (size_t)hash & mask;
        perturb = (size_t)hash;
        for (;;) {
            ix = gs_get_index(k, i);
            if (ix == -1)
                break;
            if (ix < 0)
                return PyDict_SetItem(d, key, value);
            {
                PyObject *other;
                Py_hash_t other_hash;
                if (k->dk_kind) {  /* unicode keys only: their hashes are cached */
                    other = ((gs_uentry *)(&k->dk_indices[(size_t)1 << k->dk_log2_index_bytes]))[ix].me_key;
                    other_hash = ((PyASCIIObject *)other)->hash;
                } else {
                    gs_entry *oe = &((gs_entry *)(&k->dk_indices[(size_t)1 << k->dk_log2_index_bytes]))[ix];
                    other = oe->me_key;
                    other_hash = oe->me_hash;
                }
                if (other == key || other_hash == hash)
                    return PyDict_SetItem(d, key, value);  /* the key, or maybe an equal one, is there */
            }
            perturb >>= 5;
            i = mask & (i * 5 + perturb + 1);
        }
        Py_INCREF(key);
        Py_INCREF(value);
        gs_set_index(k, i, k->dk_nentries);
        if (k->dk_kind) {
            gs_uentry *e = &((gs_uentry *)(&k->dk_indices[(size_t)1 << k->dk_log2_index_bytes]))[k->dk_nentries];
            e->me_key = key;
            e->me_value = value;
        } else {
            gs_entry *e = &((gs_entry *)(&k->dk_indices[(size_t)1 << k->dk_log2_index_bytes]))[k->dk_nentries];
            e->me_hash = hash;
            e->me_key = key;
            e->me_value = value;
        }
        if (vt == &PyDict_Type && !PyObject_GC_IsTracked(d))
            PyObject_GC_Track(d);  /* as insertdict's MAINTAIN_TRACKING: a dict holding a dict is tracked */
        k->dk_version = 0;
        k->dk_usable--;
        k->dk_nentries++;
        mp->ma_used++;
        return 0;
    #else
        return PyDict_SetItem(d, key, value);
    #endif
    }
    """
    int gs_dict_put(object d, object key, object value) except -1
    const int GS_DICT_FAST


cdef inline int dict_put(dict d, object key, object value) except -1:
    """``d[key] = value`` for a dict created here and not yet handed out (see above)."""
    return gs_dict_put(d, key, value)


def _filled(pairs, Py_ssize_t presize=-1):
    """For tests: a dict filled through ``dict_put`` from ``(key, value)`` pairs, presized (``_PyDict_NewPresized``)
    for ``presize`` entries, or made by ``{}`` when ``presize`` is negative."""
    cdef dict d = {} if presize < 0 else _PyDict_NewPresized(presize)
    for k, v in pairs:
        dict_put(d, k, v)
    return d


def dict_fast() -> bool:
    """True when ``dict_put`` writes entries directly (CPython 3.11)."""
    return bool(GS_DICT_FAST)
