# Part of gamestore._encode (included by _encode.pyx): prefetching the moves ahead of the one being encoded.
#
# A batch's moves are ~6 KB of Python objects each (the move dict, its values, the policy and search dicts and
# their entries), far beyond the caches: the move loop waits for memory a good part of its time (2.5 us per
# move on 1,000 synthetic games, 1.4-1.6 on 3 games encoded again and again).  So while move i is encoded, the
# loads it will need later are started a few moves ahead, one level of the object tree per move: move i+3's
# dict object, move i+2's entry table, move i+1's value objects, move i's nested dicts' entry tables (policy,
# search, positions): ~10% less CPU per move on 1,000 games (benchmarks/README.md, write path).  Going two
# levels deeper (the search maps' tables) cost more in walks than it saved.

cdef extern from *:
    """
    static inline void gs_prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }

    /* the entry table of the exact dict d (its header must be cached): the first `lines` cache lines */
    static inline void gs_prefetch_table(PyObject* d, int lines) {
        const char* k = (const char*)((PyDictObject*)d)->ma_keys;
        for (int i = 0; i < lines; i++) __builtin_prefetch(k + 64 * i, 0, 3);
    }
    """
    void gs_prefetch(const void* p) noexcept nogil
    void gs_prefetch_table(PyObject* d, int lines) noexcept


cdef inline void prefetch_moves(list moves, Py_ssize_t i) noexcept:
    """Start the loads of moves i+1 .. i+3 and of move i's nested dicts (see above)."""
    cdef Py_ssize_t n = PyList_GET_SIZE(moves), pos
    cdef PyObject* m
    cdef PyObject* pk
    cdef PyObject* pv
    if i + 3 < n:
        gs_prefetch(PyList_GET_ITEM(moves, i + 3))
    if i + 2 < n:
        m = PyList_GET_ITEM(moves, i + 2)
        if PyDict_CheckExact(<object>m):
            gs_prefetch_table(m, 8)
    if i + 1 < n:
        m = PyList_GET_ITEM(moves, i + 1)
        if PyDict_CheckExact(<object>m):
            pos = 0
            while PyDict_Next(<object>m, &pos, &pk, &pv):
                gs_prefetch(pv)
    m = PyList_GET_ITEM(moves, i)
    if PyDict_CheckExact(<object>m):
        pos = 0
        while PyDict_Next(<object>m, &pos, &pk, &pv):
            if PyDict_CheckExact(<object>pv):
                gs_prefetch_table(pv, 8)
