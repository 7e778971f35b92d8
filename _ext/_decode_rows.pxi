# Included by _decode.pyx: rows of a games table as Python values, read in place (get_game's game row).
#
# ``{name: column[row].as_py()}`` made a pyarrow scalar per column (~30 per game, ~5 us each: most of a
# game row's cost).  A RowReader exports the table once (C data interface) and builds the same values
# straight from its buffers: ints, floats, strings, bytes, lists and structs (dicts of every field), None for
# nulls.  The table was fully validated when the shard opened it (``ShardReader.games``); offsets are
# still checked against the child's length.


cdef inline bint _valid(const ArrowArray* a, int64_t k) noexcept nogil:
    cdef const uint8_t* bits
    if a.null_count == 0 or a.n_buffers == 0 or a.buffers[0] == NULL:
        return True
    bits = <const uint8_t*>a.buffers[0]
    return (bits[k >> 3] >> (k & 7)) & 1


cdef object _value(const ArrowSchema* s, const ArrowArray* a, object tree, int64_t j):
    """The Python value (as ``as_py()`` gives it) of logical slot ``j`` of array ``a``; ``tree``: the field
    names of structs below (a tuple of (name, subtree) for a struct, the child's subtree for a list)."""
    cdef int64_t k = a.offset + j, lo, hi, e
    cdef const char* f = s.format
    cdef char c = f[0]
    cdef list out
    cdef dict d
    cdef Py_ssize_t n
    if j < 0 or j >= a.length:
        damaged(f"row {j} outside an array of {a.length}")
    if not _valid(a, k):
        return None
    if f[1] == 0:
        if c == b"l":
            return (<const int64_t*>a.buffers[1])[k]
        if c == b"i":
            return (<const int32_t*>a.buffers[1])[k]
        if c == b"s":
            return (<const int16_t*>a.buffers[1])[k]
        if c == b"c":
            return (<const int8_t*>a.buffers[1])[k]
        if c == b"C":
            return (<const uint8_t*>a.buffers[1])[k]
        if c == b"g":
            return (<const double*>a.buffers[1])[k]
        if c == b"f":
            return <double>(<const float*>a.buffers[1])[k]
        if c == b"u" or c == b"z":
            lo = (<const int32_t*>a.buffers[1])[k]
            hi = (<const int32_t*>a.buffers[1])[k + 1]
        elif c == b"U" or c == b"Z":
            lo = (<const int64_t*>a.buffers[1])[k]
            hi = (<const int64_t*>a.buffers[1])[k + 1]
        else:
            raise Unsupported(f"games column format {f.decode()!r}")
        if lo < 0 or hi < lo:
            damaged(f"string offsets [{lo}, {hi})")
        if c == b"u" or c == b"U":
            return PyUnicode_DecodeUTF8(<const char*>a.buffers[2] + lo, hi - lo, NULL) if hi > lo else ""
        return (<const char*>a.buffers[2])[lo:hi] if hi > lo else b""
    if c == b"+" and f[1] == b"s":
        n = a.n_children
        d = _PyDict_NewPresized(n)
        for e in range(n):
            name, sub = <tuple>PyTuple_GET_ITEM(tree, e)
            d[name] = _value(s.children[e], a.children[e], sub, k)
        return d
    if c == b"+" and f[1] == b"l" and f[2] == 0:
        lo = (<const int32_t*>a.buffers[1])[k]
        hi = (<const int32_t*>a.buffers[1])[k + 1]
        if lo < 0 or hi < lo or hi > a.children[0].length:
            damaged(f"list offsets [{lo}, {hi}) outside a child of {a.children[0].length}")
        out = []
        for e in range(lo, hi):
            out.append(_value(s.children[0], a.children[0], tree, e))
        return out
    raise Unsupported(f"games column format {f.decode()!r}")


cdef object _names(t):
    """The subtree of field names :func:`_value` takes for a value of pyarrow type ``t``."""
    if pa.types.is_struct(t):
        return tuple([(f.name, _names(f.type)) for f in t])
    if pa.types.is_list(t):
        return _names(t.value_type)
    return None


cdef class RowReader:
    """Rows of one record batch as dicts of Python values (``{name: column[row].as_py()}``), read in place."""

    cdef object _keep
    cdef const ArrowSchema* s
    cdef const ArrowArray* a
    cdef tuple names
    cdef readonly Py_ssize_t num_rows

    def __init__(self, batch):
        cdef tuple caps = batch.__arrow_c_array__()
        self.s = <const ArrowSchema*>PyCapsule_GetPointer(caps[0], b"arrow_schema")
        self.a = <const ArrowArray*>PyCapsule_GetPointer(caps[1], b"arrow_array")
        self._keep = caps
        if strcmp(self.s.format, b"+s") != 0 or self.a.n_children != batch.num_columns:
            raise ValueError("a record batch is expected")
        self.names = _names(pa.struct(list(batch.schema)))
        self.num_rows = self.a.length

    def row(self, Py_ssize_t i):
        """Row ``i``: ``{column name: value}`` in column order."""
        if i < 0 or i >= self.num_rows:
            raise IndexError(f"no row {i} (the batch has {self.num_rows})")
        return _value(self.s, self.a, self.names, i)
