# Included by _decode.pyx: a BatchDecoder's columns pointed at the buffers of a record batch exported through
# the Arrow C data interface (``__arrow_c_array__``), each checked to be the type the decoder reads and to hold
# the slots its parent needs.


cdef int set_col(Col* c, const ArrowSchema* s, const ArrowArray* a, int64_t parent_off, int64_t rows, str kind,
                 str name) except -1:
    """Point ``c`` at array ``a``; ``kind`` is what the column must hold ('i', 'f', 'C', 'u', 'd', '+l').

    ``rows``: the parent's offset plus its length (the child must hold that many slots).
    """
    fmt = s.format.decode("ascii")
    if kind == "d":  # dictionary<int, string>: the indices here, the strings in a StrTable
        if s.dictionary == NULL or a.dictionary == NULL or strcmp(s.dictionary.format, b"u") != 0:
            raise ValueError(f"moves column {name!r}: expected dictionary<int, string>, got format {fmt!r}")
        kind = "i"
    if kind == "+l":
        if fmt != "+l" or a.n_buffers != 2:
            raise ValueError(f"moves column {name!r}: expected a list, got format {fmt!r}")
        c.width = 4
    else:
        got = WIDTHS.get(fmt)
        if got is None or got[0] != kind or a.n_buffers != (3 if kind == "u" else 2):
            raise ValueError(f"moves column {name!r}: unexpected Arrow format {fmt!r}")
        c.width = got[1]
    c.off = parent_off + a.offset
    c.valid = NULL if a.null_count == 0 else <const uint8_t*>a.buffers[0]
    c.absent = a.length > 0 and a.null_count == a.length
    c.data = <const uint8_t*>a.buffers[1]
    c.chars = <const uint8_t*>a.buffers[2] if kind == "u" else NULL
    if c.data == NULL and not c.absent and a.length > 0:
        raise ValueError(f"moves column {name!r}: no data buffer")
    if a.length < rows or a.offset < 0 or parent_off < 0:
        damaged(f"column {name!r} has {a.length} slots, its parent needs {rows}")
    c.lo = c.hi = 0
    if (kind == "u" or kind == "+l") and c.data != NULL:
        c.lo = (<const int32_t*>c.data)[a.offset]
        c.hi = (<const int32_t*>c.data)[a.offset + a.length]
        if c.lo < 0 or c.hi < c.lo:
            damaged(f"column {name!r}: offsets run from {c.lo} to {c.hi}")
    return 0


cdef StrTable _table(dict strings, str name, const ArrowArray* a):
    """The StrTable of dictionary array ``a.dictionary`` (shared through ``strings`` while its buffers are the same)."""
    cdef const ArrowArray* dic = a.dictionary
    key = (name, <uintptr_t>dic.buffers[1], <uintptr_t>dic.buffers[2], dic.offset, dic.length)
    t = strings.get(key)
    if t is None:
        t = StrTable.of(dic)
        strings[key] = t
    return <StrTable>t


cdef StrTable _entries(Entries* en, const ArrowSchema* s, const ArrowArray* a, int64_t parent_off, int64_t rows,
                       dict fields, str name, dict strings):
    """Point ``en`` at a list<struct> column; returns the StrTable of its ``key`` dictionary."""
    cdef const ArrowSchema* ss = s.children[0]
    cdef const ArrowArray* sa = a.children[0]
    cdef int64_t k, slot
    cdef StrTable keys = None
    set_col(&en.list, s, a, parent_off, rows, "+l", name)
    if strcmp(ss.format, b"+s") != 0:
        raise ValueError(f"moves column {name!r}: expected list<struct>, got {ss.format.decode()!r}")
    if en.list.hi > sa.length:
        damaged(f"column {name!r}: offsets reach {en.list.hi}, its entries are {sa.length}")
    found = set()
    for k in range(sa.n_children):
        fname = ss.children[k].name.decode("utf-8")
        entry = fields.get(fname)
        if entry is None:
            continue
        slot, kind = entry
        set_col(&en.f[slot], ss.children[k], sa.children[k], sa.offset, sa.offset + sa.length, kind, f"{name}.{fname}")
        if kind == "d":
            keys = _table(strings, f"{name}.{fname}", sa.children[k])
        found.add(fname)
    if found != set(fields):
        raise ValueError(f"moves column {name!r} lacks field(s) {', '.join(sorted(set(fields) - found))}")
    return keys


cdef int _vector(Vec* v, const ArrowSchema* s, const ArrowArray* a, int64_t parent_off, int64_t rows, str name,
                 tuple shape, object dtype) except -1:
    fmt = s.format.decode("ascii")
    cdef int64_t size = 1
    cdef int j
    for d in shape:
        size *= d
    if not fmt.startswith("+w:") or int(fmt[3:]) != size or a.n_children != 1:
        raise ValueError(f"vector column {name!r}: expected a fixed-size list of {size}, got format {fmt!r}")
    child_fmt = s.children[0].format.decode("ascii")
    typenum = VECTOR_TYPES.get(child_fmt)
    if typenum is None or typenum != dtype.num:
        raise ValueError(f"vector column {name!r}: values of format {child_fmt!r}, declared {dtype}")
    if len(shape) > MAX_DIMS:
        raise ValueError(f"vector column {name!r}: more than {MAX_DIMS} dimensions")
    if a.length < rows or (a.offset + a.length) * size > a.children[0].length:
        damaged(f"vector column {name!r}: {a.children[0].length} values for {a.length} rows of {size}")
    v.col.off = parent_off + a.offset
    v.col.valid = NULL if a.null_count == 0 else <const uint8_t*>a.buffers[0]
    v.col.absent = a.length > 0 and a.null_count == a.length
    v.col.width = 0
    v.col.data = NULL
    v.col.chars = NULL
    v.nbytes = size * dtype.itemsize
    v.values = <const uint8_t*>a.children[0].buffers[1]
    if v.values != NULL:
        v.values += a.children[0].offset * dtype.itemsize
    elif not v.col.absent and a.length > 0:
        raise ValueError(f"vector column {name!r}: no data buffer")
    v.typenum = typenum
    v.nd = len(shape)
    for j in range(v.nd):
        v.dims[j] = shape[j]
    return 0
