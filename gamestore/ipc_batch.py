"""Point reads of one record batch of a zstd-compressed Arrow IPC file, with a reused zstd context.

Arrow's IPC reader decompresses every buffer with a new zstd context, and
setting one up costs more than decompressing a small buffer: for a moves
batch of ~1,000 rows (about 80 buffers) that is two thirds of the read.
:class:`FastBatchReader` parses the file footer and the batch's message
itself (the Arrow IPC format, flatbuffers read by hand), decompresses each
body buffer with one ``zstandard`` decompressor per thread and assembles
the arrays with ``from_buffers``, taking dictionaries from Arrow's own
reader.  It reads only what gamestore writes (the types of the shard
schemas); for anything else, or without ``zstandard``, :func:`fast_reader`
returns None and callers use Arrow's reader.
"""
from __future__ import annotations

import mmap
import struct
import threading
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

import zstandard as _zstd  # a core dependency: the fast path reuses one zstd context per thread

from .ipc_messages import (
    BLOCK, DICTIONARY_BATCH, I32, I64, MAGIC, RECORD_BATCH, ZSTD, Damaged, Layouts, Table, Unsupported, element,
    field_spans, field_starts, parse_messages, root,
)

_ZstdError: type[Exception] = _zstd.ZstdError

__all__ = ["FastBatchReader", "Layouts", "Unsupported", "Damaged", "fast_reader", "build", "field_spans", "field_starts"]

_local = threading.local()
#: a batch's row count, field nodes (length, null count), body buffers (offset, size), body position
Layout = tuple[int, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...], int]


def _dctx() -> Any:
    d = getattr(_local, "dctx", None)
    if d is None:
        d = _local.dctx = _zstd.ZstdDecompressor()
    return d


def _check_type(t: pa.DataType) -> None:
    if pa.types.is_dictionary(t):
        if not (pa.types.is_string(t.value_type) and pa.types.is_integer(t.index_type)):
            raise Unsupported(str(t))
    elif pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        _check_type(t.value_type)
    elif pa.types.is_struct(t):
        for f in t:
            _check_type(f.type)
    elif not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t)
              or pa.types.is_large_string(t) or pa.types.is_large_binary(t) or pa.types.is_binary(t)):
        raise Unsupported(str(t))


#: Work that depends only on a schema, by kind: [(schema, result)], at most _PER_SCHEMA_KEPT each (see per_schema).
_PER_SCHEMA: dict[str, list[tuple[pa.Schema, Any]]] = {}
_PER_SCHEMA_KEPT = 64


def per_schema(kind: str, schema: pa.Schema, compute: Callable[[pa.Schema], Any]) -> Any:
    """``compute(schema)``, computed once per distinct schema (compared by value) and ``kind``.

    Every shard's reader has a schema object of its own, and a store's shards
    mostly share one schema: a first statement walked the same nested types once
    per shard (``_check_type``, ``field_starts``).  An exception is not kept."""
    seen = _PER_SCHEMA.setdefault(kind, [])
    for known, value in seen:
        if known is schema or known.equals(schema):
            return value
    value = compute(schema)
    if len(seen) >= _PER_SCHEMA_KEPT:
        seen.clear()
    seen.append((schema, value))
    return value


def _check_schema(schema: pa.Schema) -> bool:
    for f in schema:
        _check_type(f.type)
    return True


#: Decoded dictionaries by (value type, the bytes of their message): the shards of a store repeat the same small
#: dictionaries (move types, phases), which a scan decoded and validated again for every shard it opened.
_DICTS: dict[tuple[pa.DataType, bytes], pa.Array] = {}
_DICTS_KEPT = 1024
#: Dictionary messages longer than this are decoded every time (their bytes would be the key).
_DICT_KEY_BYTES = 1 << 16
#: Most frames :meth:`FastBatchReader.decompress` decompresses one call each (more: one multi-frame call).
_FEW_FRAMES = 8


def _dictionary_ids(field: Table, out: list) -> None:
    """The dictionary ids of a schema ``Field`` table and its children, depth-first (as :func:`_dictionaries`)."""
    encoding = field.table(4)
    if encoding is not None:
        out.append(encoding.scalar(0, I64))
        return
    start, count = field.vector(5)
    for k in range(count):
        _dictionary_ids(element(field.buf, start, k), out)


def _dictionary_types(t: pa.DataType, out: list) -> None:
    """The value types of the dictionaries of a column of type ``t``, depth-first (as :func:`_dictionaries`)."""
    if pa.types.is_dictionary(t):
        out.append(t.value_type)
    elif pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        _dictionary_types(t.value_type, out)
    elif pa.types.is_struct(t):
        for f in t:
            _dictionary_types(f.type, out)


def _dictionaries(arr: pa.Array, out: list) -> None:
    """The dictionaries of ``arr`` in the depth-first order of its fields."""
    t = arr.type
    if pa.types.is_dictionary(t):
        out.append(arr.dictionary)
    elif pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        _dictionaries(arr.values, out)
    elif pa.types.is_struct(t):
        for i in range(t.num_fields):
            _dictionaries(arr.field(i), out)


class FastBatchReader:
    """Reads record batch ``i`` of one zstd Arrow IPC file (see the module docstring)."""

    def __init__(self, path: str | pa.Buffer,
                 reader: ipc.RecordBatchFileReader | Callable[[], ipc.RecordBatchFileReader],
                 *, reader_lock: threading.Lock | None = None, schema: pa.Schema | None = None) -> None:
        """``reader``: Arrow's reader of the file, or a call that opens it (when a point read first needs its
        dictionaries); ``schema``: the file's schema (default: the reader's)."""
        self._mmap: mmap.mmap | None = None
        if isinstance(path, pa.Buffer):  # a file read whole from object storage
            self._map: mmap.mmap | memoryview = memoryview(path)
        else:
            with open(path, "rb") as f:
                self._map = self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._view = memoryview(self._map)
        buf = self._map
        n = len(buf)
        if n < 10 or buf[n - 6:] != MAGIC:
            raise Unsupported("not an Arrow IPC file")
        flen = I32.unpack_from(buf, n - 10)[0]
        footer = root(buf, n - 10 - flen)
        start, count = footer.vector(3)
        self._blocks = [BLOCK.unpack_from(buf, start + 24 * k) for k in range(count)]
        self._footer = footer
        #: dictionary id -> its message (length, node vector, buffer vector, body position, block start, block end)
        self._dict_messages: dict[int, tuple[int, int, int, int, int, int, int, int]] | None = None
        if schema is None:
            reader = reader() if callable(reader) else reader
            schema = reader.schema
        self.schema = schema
        per_schema("check_type", self.schema, _check_schema)
        self._dicts: list | None = None
        # Arrow's file reader reads its dictionaries on a first read: not thread-safe; shared with its other users
        self._dicts_lock = reader_lock or threading.Lock()
        self._reader: Any = reader  # or the call that opens it (_dictionary_list)
        self._layouts: dict[int, tuple] = {}
        self._full_layouts: Layouts | None = None
        self._column_dicts: dict[int, list] = {}
        self._path = path
        self._point_layouts: dict[int, tuple[int, np.ndarray, np.ndarray, int]] = {}
        #: the compiled point reader of this file (gamestore/pointread.py), once set up; ``point_tried``: set up once
        self.point: Any = None
        self.point_tried = False
        #: a scan's plans for reading whole columns of this file again (gamestore/sqlscan.py), by column name
        self.scan_plans: dict[str, Any] = {}

    @property
    def num_batches(self) -> int:
        """The file's record batch count (its footer's)."""
        return len(self._blocks)

    @property
    def view(self) -> memoryview:
        """The file's bytes (unsigned)."""
        return self._view if self._view.format == "B" else self._view.cast("B")

    def point_layout(self, index: int) -> tuple[int, np.ndarray, np.ndarray, int]:
        """Record batch ``index``'s row count, field nodes and body buffers (flat int64 arrays: length, null count /
        offset, size pairs) and body position, for :class:`gamestore._decode.PointReader` (kept per batch)."""
        got = self._point_layouts.get(index)
        if got is None:
            if not 0 <= index < len(self._blocks):
                raise IndexError(f"no record batch {index} (the file has {len(self._blocks)})")
            try:
                length, nodes, bufs, body = self._array_layout(index)
            except (struct.error, IndexError, ValueError) as exc:
                raise Damaged(f"batch {index}'s message: {type(exc).__name__}: {exc}") from exc
            got = self._point_layouts[index] = (int(length), nodes.reshape(-1), bufs.reshape(-1), int(body))
        return got

    def _array_layout(self, index: int) -> tuple[Any, ...]:
        length, nstart, ncount, bstart, bcount, body = self._message(index)
        buf = self._map
        nodes = np.frombuffer(buf, dtype="<i8", count=2 * ncount, offset=nstart).reshape(-1, 2).copy()
        bufs = np.frombuffer(buf, dtype="<i8", count=2 * bcount, offset=bstart).reshape(-1, 2).copy()
        return np.int64(length), nodes, bufs, np.int64(body)

    def _dictionary_list(self, index: int) -> list:
        if self._dicts is None:
            # the file's dictionaries never change (the IPC file format allows no replacement): take them once,
            # through the batch being read (its checksum was checked; another batch may be the damaged one)
            with self._dicts_lock:
                if self._dicts is None:
                    if callable(self._reader):
                        self._reader = self._reader()
                    batch = self._reader.get_record_batch(index)
                    out: list = []
                    for col in batch.columns:
                        _dictionaries(col, out)
                    self._dicts = out
        return self._dicts

    def read(self, index: int) -> pa.RecordBatch:
        """Record batch ``index``; :class:`Unsupported` (or a decompression error) where Arrow's reader must do it."""
        return self.read_sized(index)[0]

    def read_sized(self, index: int) -> tuple[pa.RecordBatch, int]:
        """Record batch ``index`` and the bytes of its buffers (without the dictionaries).

        :class:`Unsupported` where Arrow's reader must do it; :class:`Damaged`
        when the bytes cannot be a valid batch.
        """
        if not 0 <= index < len(self._blocks):
            raise IndexError(f"no record batch {index} (the file has {len(self._blocks)})")
        try:
            return self._read(index)
        except Unsupported:
            raise
        except (struct.error, IndexError, ValueError, OSError, pa.ArrowException, _ZstdError) as exc:
            raise Damaged(f"{type(exc).__name__}: {exc}") from exc

    def layout(self, index: int) -> Layout:
        """Record batch ``index``'s row count, field nodes (length, nulls), body buffers (offset, size) and the
        file position of its body (read from the message, nothing decompressed; kept for the next call).

        Tuples of ints, which the garbage collector stops tracking: kept as lists of lists, the layouts of a
        10,000-game store's batches were 250,000 tracked lists that every full collection walked (50-200 ms).
        """
        got = self._layouts.get(index)
        if got is None:
            got = self._layouts[index] = self._layout(index)
        return got

    def _message(self, index: int) -> tuple[int, int, int, int, int, int]:
        """Record batch ``index``'s row count, field node vector (position, count), buffer vector (position,
        count) and the file position of its body, read from the message's flatbuffers."""
        offset, meta_len, body_len = self._blocks[index]
        buf = self._map
        if I32.unpack_from(buf, offset)[0] == -1:
            fb_start = offset + 8
        else:  # pre-0.15 message framing
            fb_start = offset + 4
        msg = root(buf, fb_start)
        if msg.byte(1) != RECORD_BATCH:
            raise Unsupported("not a record batch message")
        rb = msg.table(2)
        if rb is None:
            raise Unsupported("record batch message without a header")
        comp = rb.table(3)
        if comp is None or comp.byte(0) != ZSTD:
            raise Unsupported("not zstd-compressed")
        return (rb.scalar(0, I64), *rb.vector(1), *rb.vector(2), offset + meta_len)

    def _layout(self, index: int) -> Layout:
        length, nstart, ncount, bstart, bcount, body = self._message(index)
        buf = self._map
        nodes = np.frombuffer(buf, dtype="<i8", count=2 * ncount, offset=nstart).tolist()
        bufs = np.frombuffer(buf, dtype="<i8", count=2 * bcount, offset=bstart).tolist()
        return length, tuple(zip(nodes[0::2], nodes[1::2])), tuple(zip(bufs[0::2], bufs[1::2])), body

    def layouts(self, indices: Sequence[int]) -> Layouts:
        """The messages of record batches ``indices`` as arrays, one row per batch.  A scan reads its frames'
        places from them without a Python object per buffer.  The messages are parsed all at once with numpy
        gathers (:func:`parse_messages`: ~50 us for a shard's 80 batches, against ~15 us per batch walking the
        flatbuffers in Python); the layouts of every batch are kept once all were asked for.  :class:`Unsupported`
        when batches differ in layout, :class:`Damaged` when a message points outside the file."""
        full = self._full_layouts
        pick = np.asarray(indices, dtype=np.int64)
        if full is not None:
            return Layouts(*(a[pick] for a in full))
        if len(pick) and (pick.min() < 0 or pick.max() >= len(self._blocks)):
            raise IndexError(f"no such record batch (the file has {len(self._blocks)})")
        blocks = np.asarray(self._blocks, dtype=np.int64).reshape(-1, 3)[pick]
        got = parse_messages(np.frombuffer(self._map, dtype=np.uint8), blocks)
        if len(pick) == len(self._blocks) and (pick == np.arange(len(pick))).all():
            self._full_layouts = got
        return got

    def decompress(self, body: np.ndarray, bufs: np.ndarray) -> list[Any]:
        """Body buffers given as arrays (their batch's body position, (offset, size) in the body: :meth:`layouts`),
        decompressed in one call without the GIL; None for absent (zero-size) buffers.

        Each is a buffer-protocol object (``pa.py_buffer`` wraps it without a copy).  :class:`Damaged` when a
        buffer lies outside the file or does not decompress to the size its prefix says."""
        out: list[Any] = [None] * len(bufs)
        pos = body + bufs[:, 0]
        size = bufs[:, 1]
        present = np.flatnonzero(size)
        if not len(present):
            return out
        pos, size = pos[present], size[present]
        if size.min() < 8 or pos.min() < 0 or (pos + size).max() > len(self._map):
            raise Damaged("body buffers outside the file")
        whole = np.frombuffer(self._map, dtype=np.uint8)
        raw = whole[pos[:, None] + np.arange(8)].view("<i8")[:, 0]  # each buffer's decompressed size; -1: stored raw
        del whole
        if raw.min() < -1 or raw.max() > 1 << 31:
            raise Damaged("a body buffer's size prefix is out of range")
        packed = np.flatnonzero(raw > 0)
        if 0 < len(packed) <= _FEW_FRAMES:
            # a few frames (a column's dictionary: 2-3): one call each; multi_decompress_to_buffer's set-up cost
            # ~60-120 us a call against ~8 us for three frames this way (44 dictionaries of a first group-by)
            dctx, view = _dctx(), self._view
            for k, p, n, r in zip(present[packed].tolist(), pos[packed].tolist(), size[packed].tolist(),
                                  raw[packed].tolist()):
                try:
                    data = dctx.decompress(view[p + 8:p + n], max_output_size=r)
                except _ZstdError as exc:
                    raise Damaged(f"{type(exc).__name__}: {exc}") from exc
                if len(data) != r:
                    raise Damaged(f"a body buffer decompresses to {len(data)} bytes, its prefix says {r}")
                out[k] = data
        elif len(packed):
            seg = np.empty((len(packed), 2), dtype="<u8")
            seg[:, 0] = pos[packed] + 8
            seg[:, 1] = size[packed] - 8
            frames = _zstd.BufferWithSegments(self._view, seg.tobytes())
            try:
                got = _dctx().multi_decompress_to_buffer(
                    frames, decompressed_sizes=raw[packed].astype("<u8").tobytes(), threads=1)
            except _ZstdError as exc:
                raise Damaged(f"{type(exc).__name__}: {exc}") from exc
            finally:
                del frames
            for j, k in enumerate(present[packed].tolist()):
                out[k] = got[j]
        for j in np.flatnonzero(raw <= 0).tolist():
            p, n = int(pos[j]), int(size[j])
            out[present[j]] = bytes(self._view[p + 8:p + n]) if raw[j] == -1 else b""
        return out

    def buffers(self, bufs: Sequence[tuple[int, int]], body: int, wanted: Iterable[int]) -> list[pa.Buffer | None]:
        """Body buffers ``wanted`` of a batch (``bufs``, ``body`` from :meth:`layout`), decompressed; the others None.

        Each frame is decompressed straight into a buffer of its own (aligned, no copy; zstd runs without the GIL):
        0.56 ms against 0.98 ms for one ``multi_decompress_to_buffer`` whose segments were then copied out
        (a 1,000-row batch, benchmarks/bench_get_game.py).
        """
        out: list[pa.Buffer | None] = [None] * len(bufs)
        view, raw_at, dctx = self._view, I64.unpack_from, _dctx()
        for k in wanted:
            off, size = bufs[k]
            if size == 0:
                continue
            p = body + off
            raw = raw_at(self._map, p)[0]
            if raw > 0:
                data = dctx.decompress(view[p + 8:p + size], max_output_size=raw)
                if len(data) != raw:
                    raise Damaged(f"buffer {k} decompresses to {len(data)} bytes, its prefix says {raw}")
                out[k] = pa.py_buffer(data)
            else:  # -1: stored uncompressed; 0: empty
                out[k] = pa.py_buffer(bytes(view[p + 8:p + size]) if raw == -1 else b"")
        return out

    def column_dictionaries(self, k: int) -> list:
        """The dictionaries of column ``k``, depth-first, read from the file's dictionary messages (covered by
        the head checksum the caller checked): only their buffers are decompressed.  Where this reader does
        not handle the messages, Arrow's reader with only column ``k``'s buffers of batch 0 (the caller checks
        batch 0's checksum first)."""
        got = self._column_dicts.get(k)
        if got is None:
            try:
                got = self._own_dictionaries(k)
            except Unsupported:
                source = pa.BufferReader(self._path) if isinstance(self._path, pa.Buffer) else pa.memory_map(self._path)
                reader = ipc.open_file(source, options=ipc.IpcReadOptions(included_fields=[k], use_threads=False))
                got = []
                _dictionaries(reader.get_record_batch(0).column(0), got)
            except (struct.error, IndexError, ValueError, pa.ArrowException) as exc:
                raise Damaged(f"dictionaries of column {k}: {type(exc).__name__}: {exc}") from exc
            self._column_dicts[k] = got
        return got

    def _own_dictionaries(self, k: int) -> list:
        buf = self._map
        schema = self._footer.table(1)
        if schema is None:
            raise Unsupported("footer without a schema")
        start, count = schema.vector(1)
        if count != len(self.schema):
            raise Unsupported("footer schema differs from the reader's")
        ids: list[int] = []
        _dictionary_ids(element(buf, start, k), ids)
        types: list[pa.DataType] = []
        _dictionary_types(self.schema.field(k).type, types)
        if len(ids) != len(types):
            raise Unsupported("dictionary fields differ from the schema")
        if self._dict_messages is None:
            self._dict_messages = self._dictionary_messages()
        out = []
        for i, t in zip(ids, types):
            msg = self._dict_messages.get(i)
            if msg is None:
                raise Damaged(f"no dictionary message for dictionary {i}")
            length, nstart, ncount, bstart, bcount, body, block_start, block_end = msg
            # the same message bytes (id, lengths, buffers' places and compressed data) decode to the same array
            key = (t, bytes(buf[block_start:block_end])) if block_end - block_start <= _DICT_KEY_BYTES else None
            arr = _DICTS.get(key) if key is not None else None
            if arr is None:
                nodes = np.frombuffer(buf, dtype="<i8", count=2 * ncount, offset=nstart).tolist()
                bufs = np.frombuffer(buf, dtype="<i8", count=2 * bcount, offset=bstart).reshape(-1, 2)
                got = self.decompress(np.full(bcount, body, dtype=np.int64), bufs)
                buffers = [None if g is None else pa.py_buffer(g) for g in got]
                arr = build(t, list(zip(nodes[0::2], nodes[1::2])), buffers, [], [0, 0, 0])
                if len(arr) != length:
                    raise Damaged(f"dictionary {i} has {len(arr)} values, its message says {length}")
                arr.validate(full=True)
                if key is not None:
                    if len(_DICTS) >= _DICTS_KEPT:
                        _DICTS.clear()
                    _DICTS[key] = arr
            out.append(arr)
        return out

    def _dictionary_messages(self) -> dict[int, tuple[int, int, int, int, int, int, int, int]]:
        """Each dictionary message of the footer: id -> (length, node vector, buffer vector, body position, the
        message's block start and end in the file)."""
        buf = self._map
        start, count = self._footer.vector(2)
        out = {}
        for k in range(count):
            offset, meta_len, body_len = BLOCK.unpack_from(buf, start + 24 * k)
            if offset < 0 or meta_len < 0 or body_len < 0 or offset + meta_len + body_len > len(buf):
                raise Damaged("a dictionary message lies outside the file")
            msg = root(buf, offset + 8 if I32.unpack_from(buf, offset)[0] == -1 else offset + 4)
            db = msg.table(2)
            if msg.byte(1) != DICTIONARY_BATCH or db is None:
                raise Unsupported("not a dictionary batch message")
            rb = db.table(1)
            if db.byte(2) or rb is None:
                raise Unsupported("a delta dictionary, or one without data")
            comp = rb.table(3)
            if comp is None or comp.byte(0) != ZSTD:
                raise Unsupported("dictionary not zstd-compressed")
            out[db.scalar(0, I64)] = (rb.scalar(0, I64), *rb.vector(1), *rb.vector(2), offset + meta_len,
                                      offset, offset + meta_len + body_len)
        return out

    def _read(self, index: int) -> tuple[pa.RecordBatch, int]:
        length, nodes, bufs, body = self.layout(index)
        ncount, bcount = len(nodes), len(bufs)
        buffers = self.buffers(bufs, body, range(bcount))
        total = sum(b.size for b in buffers if b is not None)
        state = [0, 0, 0]  # next node, next buffer, next dictionary
        dicts = self._dictionary_list(index)
        arrays = [build(f.type, nodes, buffers, dicts, state) for f in self.schema]
        if state[0] != ncount or state[1] != bcount:
            raise Unsupported("message layout differs from the schema")
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        if batch.num_rows != length:
            raise Unsupported("batch length differs from its message")
        batch.validate()
        return batch, total

    def close(self) -> None:
        if self.point is not None:
            self.point.close()  # releases its export of the file's bytes
            self.point = None
        self._view.release()
        if self._mmap is not None:
            self._mmap.close()
        else:
            self._map.release()  # type: ignore[union-attr]
        self._path = ""  # a buffer over another's mapping (ShardReader.fast_reader): let its owner unmap it


def _data(buf: pa.Buffer | None, nbytes: int) -> pa.Buffer:
    """A data buffer of at least ``nbytes`` (Arrow omits those of all-null or empty arrays: zeros then)."""
    if buf is None:
        return pa.py_buffer(bytes(nbytes))
    if buf.size < nbytes:
        raise Unsupported("buffer shorter than its array")
    return buf


def build(t: pa.DataType, nodes: Sequence[tuple[int, int]], buffers: list, dicts: list, state: list) -> pa.Array:
    length, nulls = nodes[state[0]]
    state[0] += 1
    b = state[1]
    validity = buffers[b] if nulls else None
    if nulls and (validity is None or validity.size * 8 < length):
        raise Unsupported("validity bitmap missing or short")
    if pa.types.is_dictionary(t):
        state[1] += 2
        dictionary = dicts[state[2]]
        state[2] += 1
        indices = _data(buffers[b + 1], length * t.index_type.bit_width // 8)
        return pa.DictionaryArray.from_buffers(t, length, [validity, indices], dictionary, null_count=nulls)
    if pa.types.is_fixed_size_list(t):
        state[1] += 1
        child = build(t.value_type, nodes, buffers, dicts, state)
        if len(child) < length * t.list_size:
            raise Unsupported("fixed-size list values shorter than the list")
        return pa.Array.from_buffers(t, length, [validity], null_count=nulls, children=[child])
    if pa.types.is_list(t):
        state[1] += 2
        offsets = _data(buffers[b + 1], (length + 1) * 4)
        child = build(t.value_type, nodes, buffers, dicts, state)
        return pa.Array.from_buffers(t, length, [validity, offsets], null_count=nulls, children=[child])
    if pa.types.is_struct(t):
        state[1] += 1
        children = [build(f.type, nodes, buffers, dicts, state) for f in t]
        return pa.Array.from_buffers(t, length, [validity], null_count=nulls, children=children)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        state[1] += 3
        width = 8 if pa.types.is_large_string(t) or pa.types.is_large_binary(t) else 4
        offsets = _data(buffers[b + 1], (length + 1) * width)
        data = _data(buffers[b + 2], 0)
        return pa.Array.from_buffers(t, length, [validity, offsets, data], null_count=nulls)
    state[1] += 2
    values = _data(buffers[b + 1], length * t.bit_width // 8)
    return pa.Array.from_buffers(t, length, [validity, values], null_count=nulls)


def fast_reader(path: str | pa.Buffer, reader: ipc.RecordBatchFileReader | Callable[[], ipc.RecordBatchFileReader], *,
                reader_lock: threading.Lock | None = None, schema: pa.Schema | None = None) -> FastBatchReader | None:
    """A :class:`FastBatchReader` for ``path`` (or a file's whole content), or None where Arrow's reader must be used.

    ``reader_lock``: the lock its other users hold around reads of ``reader`` (Arrow's file reader is not thread-safe);
    ``reader`` and ``schema``: see :class:`FastBatchReader`.
    """
    try:
        return FastBatchReader(path, reader, reader_lock=reader_lock, schema=schema)
    except (Unsupported, OSError, ValueError, struct.error, IndexError):
        return None
