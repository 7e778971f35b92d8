"""Writing zstd-compressed Arrow IPC files with reused zstd contexts, all buffers in one call.

Arrow's IPC writer compresses every body buffer with a new zstd context,
and setting one up costs about as much as compressing a small buffer: a
moves batch of ~1,000 rows has about 80 buffers, and the set-ups were
~45% of the file's compression time (``benchmarks/README.md``, write
path).  :func:`write_ipc_file` lets Arrow lay the file out *uncompressed*
(in memory), then re-emits it compressed: each dictionary and record
batch message gets a new header (the same field nodes, the compressed
buffers' offsets and lengths, ``BodyCompression{ZSTD, BUFFER}``; the
flatbuffers written by hand) and a body of ``int64 uncompressed length +
zstd frame`` buffers, 8-byte aligned, exactly what Arrow's writer
produces; the schema message is copied, the footer copied with its blocks
patched.  Every buffer of the file is compressed by one zstandard call
(``multi_compress_to_buffer``, in its own threads, as Arrow's writer
compresses in its thread pool) that keeps the GIL released throughout, and
the file is written with one write: a seal in a helper thread
(``gamestore/sealing.py``) then rarely needs the GIL back while the
writer's thread encodes.  A buffer whose frame saves less than
1/``RAW_BELOW`` of its bytes is stored uncompressed (length prefix -1, as
the Arrow IPC format allows: format version 4, docs/format.md section 8):
a point read copies it instead of decoding a frame of nearly incompressible
float32 values.  So is the index buffer of an int16-indexed dictionary column
(``phase``, ``move_type``: format version 5) unless zstd shrinks it 16x: a scan
grouping by those columns copies them instead of decoding ~2 us frames.
Otherwise the bytes differ from Arrow's writer only in where frames end;
every reader sees the same file (docs/format.md section 2).
Messages it does not expect (custom metadata, variadic buffers) make it
hand the batches to Arrow's writer instead.
"""
from __future__ import annotations

import os
import struct
import threading
from typing import Any, Iterable, Sequence

import pyarrow as pa
import pyarrow.ipc as ipc
import zstandard as _zstd


__all__ = ["write_ipc_file", "write_buffer", "ipc_file_bytes", "release_spare", "ZSTD_LEVEL"]

ZSTD_LEVEL = 1  # Arrow's default for IPC zstd; level -1 saves ~0.25 us/move for ~15% more bytes
_ARROW_OPTIONS = ipc.IpcWriteOptions(compression=pa.Codec("zstd", ZSTD_LEVEL))
_PLAIN = ipc.IpcWriteOptions(compression=None)
_MAGIC = b"ARROW1"
_CONTINUATION = b"\xff\xff\xff\xff"
_RECORD_BATCH, _DICTIONARY_BATCH = 3, 2  # MessageHeader
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
_I64 = struct.Struct("<q")
_PAIR = struct.Struct("<qq")
_BLOCK = struct.Struct("<qi4xq")
_ZEROS = bytes(8)
_RAW = _I64.pack(-1)  # Arrow's "stored uncompressed" length prefix
#: a buffer whose zstd frame saves less than 1/RAW_BELOW of its bytes is stored uncompressed (0: never)
RAW_BELOW = 8
#: the index buffer of a column dictionary-coded with int16 indices (the schema's low-cardinality categorical
#: columns: ``phase``, ``move_type``, ...) is stored uncompressed unless its frame is under 1/RAW_INDICES_BELOW of
#: its bytes (a column nearly always null or constant); 0: never (format version 5, docs/format.md section 8)
RAW_INDICES_BELOW = 16
_local = threading.local()
_THREADS = min(4, os.cpu_count() or 1)


class _Fallback(Exception):
    """The file holds a message this writer does not re-emit: Arrow's writer does it."""


def _cctx() -> Any:
    c = getattr(_local, "cctx", None)
    if c is None:
        c = _local.cctx = _zstd.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
    return c


def _table(buf: Any, pos: int) -> tuple[int, int, int]:
    """(table position, vtable position, vtable length) of the flatbuffers table at ``pos``."""
    vt = pos - _I32.unpack_from(buf, pos)[0]
    return pos, vt, _U16.unpack_from(buf, vt)[0]


def _field(buf: Any, t: tuple[int, int, int], i: int) -> int:
    """Absolute position of field ``i`` of table ``t``; 0 when absent."""
    pos, vt, vtlen = t
    o = 4 + 2 * i
    off = _U16.unpack_from(buf, vt + o)[0] if o < vtlen else 0
    return pos + off if off else 0


def _deref(buf: Any, p: int) -> int:
    return p + _U32.unpack_from(buf, p)[0]


def _vector(buf: Any, t: tuple[int, int, int], i: int) -> tuple[int, int]:
    p = _field(buf, t, i)
    if not p:
        return 0, 0
    v = _deref(buf, p)
    return v + 4, _U32.unpack_from(buf, v)[0]


def _record_batch(buf: Any, rb: tuple[int, int, int]) -> tuple[int, bytes, list[tuple[int, int]]]:
    """(length, the field nodes' bytes, the buffers) of a RecordBatch table; _Fallback for anything unusual."""
    if _field(buf, rb, 3) or _field(buf, rb, 4):  # already compressed, or variadic buffer counts
        raise _Fallback("record batch with compression or variadic buffers")
    p = _field(buf, rb, 0)
    length = _I64.unpack_from(buf, p)[0] if p else 0
    nstart, ncount = _vector(buf, rb, 1)
    bstart, bcount = _vector(buf, rb, 2)
    nodes = bytes(buf[nstart : nstart + 16 * ncount])
    return length, nodes, [_PAIR.unpack_from(buf, bstart + 16 * k) for k in range(bcount)]


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def _header(kind: int, length: int, nodes: bytes, buffers: bytes, body_len: int, dict_id: int | None) -> bytes:
    """The flatbuffers ``Message`` of a compressed record batch (``dict_id`` None) or dictionary batch.

    Laid out front to back, every offset pointing forward, every table after its vtable, 8-byte
    fields 8-byte aligned: root offset | Message | [DictionaryBatch] | RecordBatch | BodyCompression
    | nodes vector | buffers vector.
    """
    out = bytearray()

    def align(n: int, extra: int = 0) -> None:  # pad so that len(out) + extra is a multiple of n
        out.extend(bytes(-(len(out) + extra) % n))

    def table(vtable: list[int], size: int) -> int:
        """Write a vtable (field offsets) and reserve an 8-aligned table of ``size`` bytes after it."""
        vt_bytes = struct.pack(f"<{2 + len(vtable)}H", 4 + 2 * len(vtable), size, *vtable)
        align(8, len(vt_bytes))
        vt = len(out)
        out.extend(vt_bytes)
        pos = len(out)
        out.extend(bytes(size))
        _I32.pack_into(out, pos, pos - vt)
        return pos

    def link(at: int, target: int) -> None:
        _U32.pack_into(out, at, target - at)

    out.extend(bytes(4))  # root offset
    # Message: version @16 (i16), header_type @18 (u8), header @4 (offset), bodyLength @8 (i64)
    msg = table([16, 18, 4, 8], 24)
    link(0, msg)
    struct.pack_into("<hB", out, msg + 16, 4, kind)  # MetadataVersion V5
    _I64.pack_into(out, msg + 8, body_len)
    parent = msg + 4
    if dict_id is not None:  # DictionaryBatch: id @8 (i64), data @4 (offset); isDelta absent (false)
        db = table([8, 4], 16)
        link(parent, db)
        _I64.pack_into(out, db + 8, dict_id)
        parent = db + 4
    # RecordBatch: length @16, nodes @4, buffers @8, compression @12
    rb = table([16, 4, 8, 12], 24)
    link(parent, rb)
    _I64.pack_into(out, rb + 16, length)
    comp = table([4, 5], 8)  # BodyCompression: codec @4 (ZSTD = 1), method @5 (BUFFER = 0)
    link(rb + 12, comp)
    out[comp + 4] = 1
    for field_at, data in ((rb + 4, nodes), (rb + 8, buffers)):
        align(8, 4)
        link(field_at, len(out))
        out.extend(_U32.pack(len(data) // 16))
        out.extend(data)
    align(8)
    return bytes(out)


def _parse_message(src: memoryview, offset: int, meta_len: int) -> tuple[int, int, bytes, list[tuple[int, int]], int | None]:
    """(kind, length, field nodes, buffers, dictionary id or None) of the plain file's message at ``offset``."""
    fb = offset + 8 if _I32.unpack_from(src, offset)[0] == -1 else offset + 4
    msg = _table(src, _deref(src, fb))
    if _field(src, msg, 4):
        raise _Fallback("message with custom metadata")
    p = _field(src, msg, 1)
    kind = src[p] if p else 0
    header = _table(src, _deref(src, _field(src, msg, 2)))
    dict_id: int | None = None
    if kind == _DICTIONARY_BATCH:
        p = _field(src, header, 0)
        dict_id = _I64.unpack_from(src, p)[0] if p else 0
        if _field(src, header, 2) and src[_field(src, header, 2)]:
            raise _Fallback("dictionary delta")
        header = _table(src, _deref(src, _field(src, header, 1)))
    elif kind != _RECORD_BATCH:
        raise _Fallback(f"message type {kind}")
    return (kind, *_record_batch(src, header), dict_id)


def _compress_all(slices: list[memoryview]) -> Sequence[Any]:
    """The zstd frames of ``slices``, in order.

    One ``multi_compress_to_buffer`` call compresses them all in zstandard's own threads without
    taking the GIL back in between (a call per buffer released and re-took it ~6,000 times per
    shard, each time waiting for the encoder in the writer's thread to let go of it); zstandard's
    cffi backend has no such call: one ``compress`` per buffer there.  The frames are the same.
    """
    if not slices:
        return []
    cctx = _cctx()
    try:
        return cctx.multi_compress_to_buffer(slices, threads=min(_THREADS, len(slices)))
    except (AttributeError, NotImplementedError):
        return [cctx.compress(s) for s in slices]


def _category_indices(schema: pa.Schema) -> frozenset[int]:
    """The positions, among a record batch's body buffers, of the index buffers of ``schema``'s top-level columns
    dictionary-coded with int16 indices (see :data:`RAW_INDICES_BELOW`)."""
    from .ipc_messages import field_starts

    return frozenset(buf + 1 for f, (_, buf, _) in zip(schema, field_starts(schema))
                     if pa.types.is_dictionary(f.type) and f.type.index_type == pa.int16())


def _recompress(plain: pa.Buffer, categories: frozenset[int] = frozenset()) -> list[Any]:
    """The zstd-compressed form of an uncompressed Arrow IPC file (the module docstring), in pieces;
    ``categories``: body buffer positions of record batches that :data:`RAW_INDICES_BELOW` applies to."""
    src = memoryview(plain)
    n = len(src)
    if n < 18 or bytes(src[:6]) != _MAGIC or bytes(src[n - 6 :]) != _MAGIC:
        raise _Fallback("not an Arrow IPC file")
    flen = _I32.unpack_from(src, n - 10)[0]
    footer_start = n - 10 - flen
    footer = _table(src, _deref(src, footer_start))
    blocks = []  # (position of the Block struct in the footer, offset, metaDataLength, bodyLength)
    for i in (2, 3):  # dictionaries, recordBatches
        start, count = _vector(src, footer, i)
        blocks += [(start + 24 * k, *_BLOCK.unpack_from(src, start + 24 * k)) for k in range(count)]
    blocks.sort(key=lambda b: b[1])
    first = blocks[0][1] if blocks else footer_start
    messages = [_parse_message(src, offset, meta_len) for _, offset, meta_len, _ in blocks]
    slices = [
        src[offset + meta_len + off : offset + meta_len + off + size]
        for (_, offset, meta_len, _), (_, _, _, buffers, _) in zip(blocks, messages)
        for off, size in buffers if size
    ]
    frames = iter(zip(slices, _compress_all(slices)))
    out: list[Any] = [src[:first]]  # magic and the schema message, as they are
    written = first
    new_footer = bytearray(src[footer_start : n - 10])
    for (at, _, _, _), (kind, length, nodes, buffers, dict_id) in zip(blocks, messages):
        layout = bytearray()
        body: list[Any] = []
        pos = 0
        indices = categories if kind == _RECORD_BATCH and RAW_INDICES_BELOW else frozenset()
        for b, (_, size) in enumerate(buffers):
            if size == 0:
                layout += _PAIR.pack(pos, 0)
                continue
            data, frame = next(frames)
            if ((RAW_BELOW and len(frame) * RAW_BELOW > size * (RAW_BELOW - 1))  # zstd saves < 1/RAW_BELOW: kept raw
                    or (b in indices and len(frame) * RAW_INDICES_BELOW >= size)):  # category indices: kept raw
                k = 8 + size
                body += (_RAW, data, _ZEROS[: _pad8(k) - k])
            else:
                k = 8 + len(frame)
                body += (_I64.pack(size), frame, _ZEROS[: _pad8(k) - k])
            layout += _PAIR.pack(pos, k)
            pos += _pad8(k)
        fb_bytes = _header(kind, length, nodes, bytes(layout), pos, dict_id)
        _BLOCK.pack_into(new_footer, at - footer_start, written, 8 + len(fb_bytes), pos)
        out += (_CONTINUATION, _I32.pack(len(fb_bytes)), fb_bytes, *body)
        written += 8 + len(fb_bytes) + pos
    out += (bytes(new_footer), _I32.pack(len(new_footer)), _MAGIC)
    return out


def _write_arrow(schema: pa.Schema, batches: list[pa.RecordBatch], options: ipc.IpcWriteOptions) -> pa.Buffer:
    """The Arrow IPC file of ``batches`` written by Arrow's writer with ``options``, in memory: one ``write_table``
    call (one GIL release for the whole file, where a ``write_batch`` per batch released and re-took it each time)."""
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, schema, options=options) as writer:
        writer.write_table(pa.Table.from_batches(batches, schema=schema))
    return sink.getvalue()


def _write_plain(schema: pa.Schema, batches: list[pa.RecordBatch],
                 spare: pa.Buffer | None = None) -> tuple[pa.Buffer, pa.Buffer]:
    """The uncompressed Arrow IPC file of ``batches`` laid out by Arrow's writer, in memory (one ``write_table``),
    and the buffer it lies at the front of.

    The file is first laid out into a ``MockOutputStream`` (sizes only, no bytes copied) and then written
    into a buffer of exactly that size: a growing ``BufferOutputStream`` re-allocated and copied it at each
    doubling, and those copies and the fresh pages they touched cost ~0.15 us of CPU per move (``benchmarks/README.md``).
    That buffer is the front of ``spare`` when it is large enough, else of a new buffer 1/8 larger than the file
    (room for the next, slightly larger file: ``_Spare``).  Arrow's writer writes every byte of the file,
    padding included, so nothing of what ``spare`` held before is left in it."""
    table = pa.Table.from_batches(batches, schema=schema)
    mock = pa.MockOutputStream()
    with ipc.new_file(mock, schema, options=_PLAIN) as writer:
        writer.write_table(table)
    size = mock.size()
    backing = spare if spare is not None and spare.is_mutable and spare.size >= size else pa.allocate_buffer(size + size // 8)
    out = pa.py_buffer(memoryview(backing)[:size])
    sink = pa.FixedSizeBufferWriter(out)
    with ipc.new_file(sink, schema, options=_PLAIN) as writer:
        writer.write_table(table)
    if sink.tell() != out.size:  # Arrow laid the same table out differently twice: never seen; not trusted
        raise _Fallback("the IPC file's size changed between two layouts")
    return out, backing


class _Spare:
    """One buffer kept between files for their uncompressed layout (the largest so far, up to ``LIMIT`` bytes).

    A shard's plain moves file is ~1.2 KB per move.  A new buffer of that size for every seal came from the
    memory pool as fresh (transparent huge) pages that the kernel zeroes on first touch: with the buffer kept,
    ``_write_plain`` took 0.19-0.25 instead of 0.47-0.58 us of CPU per move in a store's write + flush
    (benchmarks/README.md, write path).  A file takes the spare (or makes a buffer) and gives it back once its
    compressed bytes are joined; files written at the same time in other threads make their own.  The
    process keeps it (at most ``LIMIT`` bytes) until :func:`release_spare`.
    """

    LIMIT = 128 << 20

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buf: pa.Buffer | None = None

    def take(self) -> pa.Buffer | None:
        with self._lock:
            buf, self._buf = self._buf, None
        return buf

    def give(self, buf: pa.Buffer) -> None:
        if buf.size > self.LIMIT:
            return
        with self._lock:
            if self._buf is None or self._buf.size < buf.size:
                self._buf = buf

    def release(self) -> None:
        """Drop the kept buffer (its memory goes back to the pool)."""
        with self._lock:
            self._buf = None


_spare = _Spare()


def release_spare() -> None:
    """Free the buffer kept for the next file's uncompressed layout (up to ``_Spare.LIMIT`` bytes, held by the
    process from its first shard on); the next file then takes fresh memory again."""
    _spare.release()


def ipc_file_bytes(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> pa.Buffer:
    """The zstd-compressed Arrow IPC file of ``batches``, in memory (the module docstring)."""
    # a batch whose schema is ``schema``'s (metadata aside) as it is: the file carries ``schema``'s metadata; a
    # ``RecordBatch.from_arrays`` for every batch wrapped each of its columns in a Python object, the seal's largest
    # piece of GIL-held time (benchmarks/README.md, write path); a batch that differs (say, in nullability) is rebuilt
    batches = [b if b.schema.equals(schema) else pa.RecordBatch.from_arrays(b.columns, schema=schema) for b in batches]
    spare = _spare.take()
    try:
        plain, spare = _write_plain(schema, batches, spare)
        pieces = _recompress(plain, _category_indices(schema))
        return pa.py_buffer(b"".join(pieces))  # the pieces' views of the plain file end here
    except _Fallback:
        return _write_arrow(schema, batches, _ARROW_OPTIONS)
    finally:
        if spare is not None:
            _spare.give(spare)


def write_buffer(path: str | os.PathLike, data: pa.Buffer) -> None:
    """Write ``data`` as the file at ``path`` in one native write (it runs without the GIL)."""
    with pa.OSFile(str(path), "wb") as f:
        f.write(data)


def write_ipc_file(path: str | os.PathLike, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
    """Write ``batches`` as a zstd-compressed Arrow IPC file at ``path`` (:func:`ipc_file_bytes`, one write)."""
    write_buffer(path, ipc_file_bytes(schema, batches))
