"""Arrow IPC file messages read by hand (the flatbuffers of the Arrow IPC format, little-endian).

One table at a time (:class:`Table`, :func:`root`, :func:`element`: the
footer, a schema, one message), or every record batch message of a file at
once (:func:`parse_messages`: each flatbuffers step taken for all messages
with numpy gathers, bounds-checked).  Used by :mod:`gamestore.ipc_batch`
(point reads and scans) and :mod:`gamestore.checksum` (per-column hashes).
"""
from __future__ import annotations

import struct
import sys
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

__all__ = [
    "MAGIC", "BLOCK", "I32", "U32", "U16", "I64", "DICTIONARY_BATCH", "RECORD_BATCH", "ZSTD",
    "Layouts", "Unsupported", "Damaged", "Table", "root", "element", "field_spans", "field_starts", "parse_messages",
]

MAGIC = b"ARROW1"
DICTIONARY_BATCH = 2  # MessageHeader.DictionaryBatch
RECORD_BATCH = 3  # MessageHeader.RecordBatch
ZSTD = 1  # CompressionType.ZSTD
I32 = struct.Struct("<i")
U32 = struct.Struct("<I")
U16 = struct.Struct("<H")
I64 = struct.Struct("<q")
BLOCK = struct.Struct("<qi4xq")


class Layouts(NamedTuple):
    """Some record batches' messages of one file (:meth:`FastBatchReader.layouts`), one row per batch."""

    rows: np.ndarray  #: (batches,) row counts
    nodes: np.ndarray  #: (batches, field nodes, 2): length, null count
    bufs: np.ndarray  #: (batches, body buffers, 2): offset in the body, stored size (with the 8-byte size prefix)
    body: np.ndarray  #: (batches,) file position of each batch's body


class Unsupported(Exception):
    """The file uses something this reader does not handle (use Arrow's reader)."""


class Damaged(Exception):
    """The batch's bytes are not a valid batch (bad compressed data, offsets out of range, invalid arrays)."""


class Table:
    """One flatbuffers table (read-only, little-endian)."""

    __slots__ = ("buf", "pos", "vt", "vtlen")

    def __init__(self, buf: Any, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self.vt = pos - I32.unpack_from(buf, pos)[0]
        self.vtlen = U16.unpack_from(buf, self.vt)[0]

    def _off(self, i: int) -> int:
        o = 4 + 2 * i
        return U16.unpack_from(self.buf, self.vt + o)[0] if o < self.vtlen else 0

    def scalar(self, i: int, fmt: struct.Struct, default: int = 0) -> int:
        off = self._off(i)
        return fmt.unpack_from(self.buf, self.pos + off)[0] if off else default

    def byte(self, i: int, default: int = 0) -> int:
        off = self._off(i)
        return self.buf[self.pos + off] if off else default

    def table(self, i: int) -> "Table | None":
        off = self._off(i)
        if not off:
            return None
        p = self.pos + off
        return Table(self.buf, p + U32.unpack_from(self.buf, p)[0])

    def vector(self, i: int) -> tuple[int, int]:
        """(position of the first element, length) of a vector field; (0, 0) when absent."""
        off = self._off(i)
        if not off:
            return 0, 0
        p = self.pos + off
        v = p + U32.unpack_from(self.buf, p)[0]
        return v + 4, U32.unpack_from(self.buf, v)[0]


def root(buf: Any, start: int) -> Table:
    return Table(buf, start + U32.unpack_from(buf, start)[0])


def element(buf: Any, start: int, k: int) -> Table:
    """Table ``k`` of a flatbuffers vector of tables starting at ``start``."""
    p = start + 4 * k
    return Table(buf, p + U32.unpack_from(buf, p)[0])


def field_spans(t: pa.DataType) -> tuple[int, int, int]:
    """(field nodes, body buffers, dictionaries) one column of type ``t`` takes in a record batch message."""
    if pa.types.is_dictionary(t):
        return 1, 2, 1
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_struct(t):
        n, b, d = 1, 1 if pa.types.is_fixed_size_list(t) or pa.types.is_struct(t) else 2, 0
        for child in ([t.value_type] if not pa.types.is_struct(t) else [f.type for f in t]):
            cn, cb, cd = field_spans(child)
            n, b, d = n + cn, b + cb, d + cd
        return n, b, d
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return 1, 3, 0
    return 1, 2, 0


def field_starts(schema: pa.Schema) -> list[tuple[int, int, int]]:
    """Per column of ``schema``: its first field node, body buffer and dictionary."""
    out, n, b, d = [], 0, 0, 0
    for f in schema:
        out.append((n, b, d))
        dn, db, dd = field_spans(f.type)
        n, b, d = n + dn, b + db, d + dd
    return out


_WIDTH = {"<u1": 1, "<u2": 2, "<i4": 4, "<u4": 4, "<i8": 8}


def _gather(buf: np.ndarray, pos: np.ndarray, dtype: str) -> np.ndarray:
    """The little-endian values of type ``dtype`` at byte positions ``pos`` of ``buf`` (bounds-checked)."""
    width = _WIDTH[dtype]
    if len(pos) and (pos.min() < 0 or pos.max() > len(buf) - width):
        raise Damaged("a message points outside the file")
    if width == 1:
        return buf[pos].astype(np.int64)
    return buf[pos[:, None] + np.arange(width)].view(dtype)[:, 0].astype(np.int64)


def _field(buf: np.ndarray, table: np.ndarray, vt: np.ndarray, vtlen: np.ndarray, i: int) -> np.ndarray:
    """Offsets of field ``i`` of flatbuffers tables at ``table`` (vtables at ``vt``); 0 where absent."""
    o = 4 + 2 * i
    has = o < vtlen
    off = np.zeros(len(table), dtype=np.int64)
    if has.any():
        off[has] = _gather(buf, vt[has] + o, "<u2")
    return off


def _tables(buf: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vtable positions and lengths of the flatbuffers tables at ``pos``."""
    vt = pos - _gather(buf, pos, "<i4")
    return vt, _gather(buf, vt, "<u2")


def _child(buf: np.ndarray, pos: np.ndarray, off: np.ndarray) -> np.ndarray:
    """The tables (or vectors) that offset fields at ``pos + off`` point to."""
    p = pos + off
    return p + _gather(buf, p, "<u4")


def _compiled_parser() -> Any:
    """``gamestore._scan.parse_messages`` (the messages of a shard in one compiled pass, ~1 us against ~5 us per
    message here: 14 ms of a first statement over 41 shards' 2,870 batches), where built; little-endian only."""
    if sys.byteorder != "little":
        return None
    try:
        from ._scan import parse_messages as compiled
    except ImportError:
        return None
    return compiled


_compiled = _compiled_parser()


def parse_messages(buf: np.ndarray, blocks: np.ndarray) -> "Layouts":
    """The record batch messages of file blocks ``blocks`` ((offset, metadata length, body length) rows, the footer's
    Block entries) as :class:`Layouts`, every flatbuffers step taken for all messages at once (numpy gathers).
    :class:`Unsupported` when one is not a zstd-compressed record batch or the batches' layouts differ."""
    n = len(blocks)
    if not n:
        return Layouts(*(np.zeros((0,) * d, dtype=np.int64) for d in (1, 3, 3, 1)))
    if _compiled is not None:  # every message in one compiled pass; a problem: this reference names it
        got = _compiled(buf, np.ascontiguousarray(blocks, dtype=np.int64), RECORD_BATCH, ZSTD)
        if got is not None:
            return Layouts(*got)
    offset, meta_len = blocks[:, 0], blocks[:, 1]
    start = offset + np.where(_gather(buf, offset, "<i4") == -1, 8, 4)  # pre-0.15 framing has no continuation marker
    msg = start + _gather(buf, start, "<u4")
    vt, vtlen = _tables(buf, msg)
    kind_off = _field(buf, msg, vt, vtlen, 1)
    if not kind_off.all() or (_gather(buf, msg + kind_off, "<u1") != RECORD_BATCH).any():
        raise Unsupported("not a record batch message")
    head_off = _field(buf, msg, vt, vtlen, 2)
    if not head_off.all():
        raise Unsupported("record batch message without a header")
    rb = _child(buf, msg, head_off)
    vt, vtlen = _tables(buf, rb)
    comp_off = _field(buf, rb, vt, vtlen, 3)
    if not comp_off.all():
        raise Unsupported("not zstd-compressed")
    comp = _child(buf, rb, comp_off)
    cvt, cvtlen = _tables(buf, comp)
    codec_off = _field(buf, comp, cvt, cvtlen, 0)
    if not codec_off.all() or (_gather(buf, comp + codec_off, "<u1") != ZSTD).any():
        raise Unsupported("not zstd-compressed")
    len_off = _field(buf, rb, vt, vtlen, 0)
    rows = np.where(len_off > 0, _gather(buf, rb + len_off, "<i8"), 0)
    out = []
    for field in (1, 2):  # field nodes (length, null count), body buffers (offset, size): 16-byte structs
        off = _field(buf, rb, vt, vtlen, field)
        vec = _child(buf, rb, off)
        count = np.where(off > 0, _gather(buf, vec, "<u4"), 0)
        if (count != count[0]).any():
            raise Unsupported("record batches with different layouts")
        k = int(count[0])
        first = np.where(off > 0, vec + 4, 0)
        if k and (first.min() < 0 or (first + 16 * k).max() > len(buf)):
            raise Damaged("a message points outside the file")
        if not (first % 8).any():  # flatbuffers align these vectors, Arrow the messages: gather whole int64s
            words = np.frombuffer(buf, dtype="<i8", count=len(buf) // 8)
            out.append(words[(first // 8)[:, None] + np.arange(2 * k)].reshape(n, k, 2).astype(np.int64))
        else:
            out.append(buf[first[:, None] + np.arange(16 * k)].view("<i8").reshape(n, k, 2).astype(np.int64))
    return Layouts(rows, out[0], out[1], offset + meta_len)
