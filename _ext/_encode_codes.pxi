# Part of gamestore._encode (included by _encode.pyx): the first-appearance string dictionaries
# (``Codes``), the key caches by object address, and the coding of one policy/search candidate.

cdef extern from "Python.h":
    int PyUnicode_READY(object) except -1
    object PyUnicode_DecodeASCII(const char*, Py_ssize_t, const char*)


cdef inline uint64_t str_hash(const unsigned char* p, Py_ssize_t n, uint64_t seed) noexcept nogil:
    """A fast 64-bit hash of ``n`` bytes (word-wise multiply-xorshift; not for untrusted keys' DoS resistance).

    The last word is read as the 8 bytes ending at ``p + n`` (overlapping the one before) and a shorter text
    byte by byte: a variable-length ``memcpy`` of the tail was a library call whose 8-byte reload stalled on
    store forwarding (a fifth of the candidate coding's samples under perf).
    """
    cdef uint64_t h = seed ^ (<uint64_t>n * 0x9E3779B97F4A7C15ULL)
    cdef uint64_t w = 0
    cdef Py_ssize_t i
    if n >= 8:
        while n > 8:
            memcpy(&w, p, 8)
            h = (h ^ w) * 0xff51afd7ed558ccdULL
            h ^= h >> 32
            p += 8
            n -= 8
        memcpy(&w, p + n - 8, 8)  # the last 8 bytes: with n == 8 exactly the remaining word
    else:
        for i in range(n):
            w |= (<uint64_t>p[i]) << (8 * i)
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL
    h ^= h >> 33
    h *= 0xff51afd7ed558ccdULL
    h ^= h >> 33
    return h


cdef struct Slot:
    uint32_t tag   # the high half of the key's hash (compared before the key; the low bits pick the slot)
    int32_t code   # -1: empty


@cython.final
cdef class Codes:
    """A first-appearance string dictionary: ``code(s)`` is the index of ``s`` in ``values``, added when new.

    The same codes as a ``dict`` from str to index (string equality), without hashing each fresh key
    object with Python's SipHash nor boxing the codes: an open-addressing table (linear probing) over
    the strings' canonical storage (same content, same kind and bytes), codes as C ints.  ``truncate``
    removes the newest codes (the rollback of a move), newest first, which leaves the table exactly as
    if they had never been added (growing re-inserts in code order, so the layout is always that of
    inserting the codes in order).
    """

    cdef readonly list values
    cdef vector[PyObject*] keys  # borrowed: ``values`` holds the references
    cdef vector[uint64_t] hashes
    cdef vector[Slot] slots
    cdef uint64_t mask
    cdef Py_ssize_t limit

    def __cinit__(self, Py_ssize_t limit):
        self.values = []
        self.limit = limit
        cdef Slot empty
        empty.tag = 0
        empty.code = -1
        self.slots.assign(64, empty)
        self.mask = 63

    def __len__(self):
        return PyList_GET_SIZE(self.values)

    def add(self, object s):
        """``code(s)`` for Python callers (tests): the code of the str ``s``, -1 when full."""
        if not PyUnicode_Check(s):
            raise TypeError("Codes holds str values")
        return self.code(s)

    def rollback(self, Py_ssize_t mark):
        """``truncate(mark)`` for Python callers (tests)."""
        if mark < 0:
            raise ValueError("mark must be >= 0")
        self.truncate(mark)

    def __contains__(self, object s):
        cdef uint64_t h
        cdef bint found = False
        if PyUnicode_Check(s):
            self._find(s, &h, &found)
        return found

    cdef inline Py_ssize_t _find(self, object s, uint64_t* hout, bint* found) except -1:
        """The slot holding the str ``s`` (``found``), or the empty slot where it would go; ``hout``: its hash."""
        PyUnicode_READY(s)
        cdef unsigned int kind = PyUnicode_KIND(s)
        return self._probe(<PyObject*>s, <const unsigned char*>PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s) * kind,
                           kind, hout, found)

    cdef inline Py_ssize_t _probe(self, PyObject* s, const unsigned char* data, Py_ssize_t nbytes, unsigned int kind,
                                  uint64_t* hout, bint* found) noexcept:
        """``_find`` of the str whose canonical storage is ``data`` (``nbytes`` bytes of ``kind``; ``s``: the str, or NULL)."""
        cdef uint64_t h = str_hash(data, nbytes, kind)
        cdef uint64_t i = h & self.mask
        cdef uint32_t tag = <uint32_t>(h >> 32)
        cdef int32_t c
        cdef PyObject* k
        hout[0] = h
        while True:
            c = self.slots[i].code
            if c < 0:
                found[0] = False
                return <Py_ssize_t>i
            if self.slots[i].tag == tag:
                k = self.keys[c]
                if k == s or (
                    PyUnicode_KIND(<object>k) == kind and PyUnicode_GET_LENGTH(<object>k) * kind == nbytes
                    and memcmp(PyUnicode_DATA(<object>k), data, nbytes) == 0
                ):
                    found[0] = True
                    return <Py_ssize_t>i
            i = (i + 1) & self.mask

    cdef inline int32_t code(self, object s) except -2:
        """The code of the str ``s``, added when new; -1 when the dictionary is full."""
        cdef uint64_t h
        cdef bint found
        cdef Py_ssize_t at = self._find(s, &h, &found)
        if found:
            return self.slots[at].code
        return self._insert(s, at, h)

    cdef inline int32_t code_ascii(self, const unsigned char* data, Py_ssize_t n) except -2:
        """``code(data[:n].decode("ascii"))`` without making the str unless it is new (``data`` is ASCII)."""
        cdef uint64_t h
        cdef bint found
        cdef Py_ssize_t at = self._probe(NULL, data, n, 1, &h, &found)
        if found:
            return self.slots[at].code
        return self._insert(PyUnicode_DecodeASCII(<const char*>data, n, NULL), at, h)

    cdef inline int32_t _insert(self, object s, Py_ssize_t at, uint64_t h) except -2:
        """Add the str ``s`` (hash ``h``) at the empty slot ``at``; its code, -1 when the dictionary is full."""
        cdef Py_ssize_t n = PyList_GET_SIZE(self.values)
        if n >= self.limit:
            return -1
        self.values.append(s)
        self.keys.push_back(<PyObject*>s)
        self.hashes.push_back(h)
        self.slots[at].tag = <uint32_t>(h >> 32)
        self.slots[at].code = <int32_t>n
        if 2 * (n + 1) > <Py_ssize_t>self.mask:
            self._grow()
        return <int32_t>n

    cdef void _grow(self) noexcept:
        cdef Py_ssize_t c, n = self.keys.size()
        cdef uint64_t i
        cdef Slot empty
        empty.tag = 0
        empty.code = -1
        self.mask = 2 * self.mask + 1
        self.slots.assign(self.mask + 1, empty)
        for c in range(n):
            i = self.hashes[c] & self.mask
            while self.slots[i].code >= 0:
                i = (i + 1) & self.mask
            self.slots[i].tag = <uint32_t>(self.hashes[c] >> 32)
            self.slots[i].code = <int32_t>c

    cdef truncate(self, Py_ssize_t mark):
        """Remove the codes from ``mark`` on (newest first)."""
        cdef Py_ssize_t c
        cdef uint64_t i
        for c in range(<Py_ssize_t>self.keys.size() - 1, mark - 1, -1):
            i = self.hashes[c] & self.mask
            while self.slots[i].code != c:
                i = (i + 1) & self.mask
            self.slots[i].code = -1
        if <Py_ssize_t>self.keys.size() > mark:
            self.keys.resize(mark)
            self.hashes.resize(mark)
            del self.values[mark:]


cdef enum:
    KEY_CACHE = 128  # slots of a MoveEncoder's key caches (a power of 2)


cdef struct KeySlot:
    PyObject* key  # a strong reference: the key stays alive, so no other object can appear at its address
    int code       # the key's code in the dict the cache fronts; -1: not a key of it


cdef inline int cached_code(KeySlot* cache, PyObject* pk, dict codes) except -2:
    """``codes[key]`` (-1 when absent) for the str ``key`` at ``pk``, remembered by the key object's address.

    Records built in one process (and JSON documents, whose decoder reuses key objects) repeat the same
    few key objects in every move: a hit costs a pointer comparison instead of a dict lookup.
    """
    cdef KeySlot* slot = &cache[((<uintptr_t>pk >> 4) * <uintptr_t>0x9E3779B97F4A7C15ULL) >> (64 - 7)]
    if slot.key == pk:
        return slot.code
    cdef PyObject* pc = PyDict_GetItemWithError(codes, <object>pk)
    cdef int code = -1 if pc == NULL else <int>(<object>pc)
    Py_INCREF(<object>pk)
    Py_XDECREF(slot.key)
    slot.key = pk
    slot.code = code
    return code


cdef inline int code_candidate(object k, Codes codes, vector[uint8_t]& is_key, vector[int32_t]& cand) except -1:
    """Append a policy/search candidate: a str key by its dictionary code, an int as an action id."""
    cdef int64_t iv
    cdef int32_t c
    if PyUnicode_Check(k):
        c = codes.code(k)
        if c < 0:
            return FULL
        is_key.push_back(1)
    elif PyLong_CheckExact(k):
        if as_int(k, &iv) or iv < INT32_MIN or iv > INT32_MAX:
            return SLOW
        c = <int32_t>iv
        is_key.push_back(0)
    else:
        return SLOW
    cand.push_back(c)
    return OK
