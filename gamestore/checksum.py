"""Per-record-batch checksums of a shard's Arrow IPC files (format version 2, docs/format.md).

A file is covered piecewise by xxh3-64 hashes of byte ranges recorded in the
manifest: ``head`` (magic, schema and dictionary messages), one range per
record batch (its metadata and compressed body), and ``tail`` (the footer
with the block offsets Arrow's reader follows).  A reader checks the head and
tail when it opens a file and each batch's range before it decodes that batch,
so a point read hashes only the ~100 KB it decompresses anyway, and a scan
hashes each batch once.  Any mismatch raises :class:`ShardCorruptError`
naming shard and file; damaged bytes never reach a decoder.

Format version 3 adds, per record batch, a hash of its message (metadata) and
one per top-level column (the column's body buffers, padding included: the
ranges split the batch's body at each column's first buffer), so a scan of a
few columns hashes only their bytes: a first statement over three columns of
a 500 MB store hashed (and faulted in) every byte of it.  The batch hashes
stay (point reads, ``verify``); ``verify`` checks the column hashes as well.
"""
from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path
from typing import Any, NoReturn, Sequence


import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import xxhash

from .errors import ShardCorruptError
from .ipc_messages import BLOCK, I32, MAGIC, Damaged, Unsupported, field_starts, parse_messages, root

__all__ = ["ALGORITHM", "file_checksums", "FileVerifier", "VERIFY"]

ALGORITHM = "xxh3_64"
#: Switch for benchmarks (benchmarks/bench_checksum.py): False skips verification.
VERIFY = True


def _h(data: Any) -> str:
    return xxhash.xxh3_64_hexdigest(data)


_i = xxhash.xxh3_64_intdigest


def _xxh3_address() -> int:
    """The address of libxxhash's ``XXH3_64bits`` when the extension is built, the system has the library
    and it agrees with ``xxhash`` (the spec); 0 otherwise (hashed range by range)."""
    try:
        from . import _xxh
    except ImportError:
        return 0
    sample = bytes(range(256)) * 9
    ranges = np.array([(0, 0), (5, 6), (0, 16), (1, 130), (3, 240), (7, 241), (0, len(sample))], dtype=np.int64)
    starts, ends = np.ascontiguousarray(ranges[:, 0]), np.ascontiguousarray(ranges[:, 1])
    for name in ("libxxhash.so.0", "libxxhash.so", "libxxhash.0.dylib", "libxxhash.dylib"):
        try:
            fn = ctypes.CDLL(name).XXH3_64bits
        except (OSError, AttributeError):
            continue
        addr = ctypes.cast(fn, ctypes.c_void_p).value or 0
        if addr and _xxh.hash_ranges(sample, starts, ends, addr).tolist() == [_i(sample[a:b]) for a, b in ranges.tolist()]:
            return addr
    return 0


_XXH3 = _xxh3_address()


def int_ranges(view: Any, starts: Any, ends: Any) -> np.ndarray:
    """uint64 array: the xxh3-64 of ``view[starts[i]:ends[i]]`` for each i (ranges within ``view``, checked by the
    caller): one compiled call without the GIL when libxxhash is found (``_XXH3``), else one ``xxhash`` call per
    range (a GIL release each)."""
    a = np.ascontiguousarray(starts, dtype=np.int64).reshape(-1)
    b = np.ascontiguousarray(ends, dtype=np.int64).reshape(-1)
    if _XXH3 and len(a):
        from . import _xxh

        data = view.cast("B") if isinstance(view, memoryview) and view.format != "B" else view
        return _xxh.hash_ranges(data, a, b, _XXH3)
    return np.array([_i(view[x:y]) for x, y in zip(a.tolist(), b.tolist())], dtype=np.uint64)


def hex_ranges(view: Any, ranges: Sequence[tuple[int, int]]) -> list[str]:
    """The hex xxh3-64 digests of ``view[a:b]`` for each ``(a, b)`` in ``ranges`` (:func:`int_ranges`)."""
    r = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
    return [f"{v:016x}" for v in int_ranges(view, r[:, 0], r[:, 1]).tolist()]


def file_checksums(path: "Path | pa.Buffer") -> dict:
    """The checksum record of a freshly written Arrow IPC file, or of its content (stored in the manifest)."""
    buf: Any
    if isinstance(path, pa.Buffer):
        buf = memoryview(path)
    else:
        with open(path, "rb") as f:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(f.fileno()).st_size else b""
    try:
        n = len(buf)
        if n < 10 or buf[n - 6:] != MAGIC:
            raise ValueError(f"{path} is not an Arrow IPC file")
        flen = I32.unpack_from(buf, n - 10)[0]
        footer = root(buf, n - 10 - flen)
        start, count = footer.vector(3)
        blocks = [BLOCK.unpack_from(buf, start + 24 * k) for k in range(count)]
        view = memoryview(buf)
        head_len = blocks[0][0] if blocks else n - 10 - flen
        tail_start = (blocks[-1][0] + blocks[-1][1] + blocks[-1][2]) if blocks else head_len
        ranges = [(0, head_len), (tail_start, n)] + [(off, off + meta + body) for off, meta, body in blocks]
        columns = _column_ranges(view, blocks, head_len)
        sums = hex_ranges(view, ranges + [r for _, rs in columns or () for r in rs])
        out: dict[str, Any] = {
            "algorithm": ALGORITHM,
            "head": [head_len, sums[0]],
            "tail": [tail_start, sums[1]],
            "batches": [[off, meta + body, sums[2 + k]] for k, (off, meta, body) in enumerate(blocks)],
        }
        if columns is not None:
            at = 2 + len(blocks)
            column_sums = []
            for meta, rs in columns:
                column_sums.append([meta, "".join(sums[at : at + len(rs)])])
                at += len(rs)
            out["columns"] = column_sums
        view.release()
        return out
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()


def _column_ranges(view: memoryview, blocks: list[tuple[int, int, int]], head_len: int) -> list | None:
    """Per record batch ``(metadata length, the ranges of its metadata and of each top-level column)``, whose
    hashes the record stores (format 3); None where the file's messages are not what this reader parses
    (e.g. uncompressed): batch hashes only."""
    if not blocks:
        return []
    try:
        schema = ipc.read_schema(pa.BufferReader(bytes(view[8:head_len])))  # the schema message follows the magic
        lay = parse_messages(np.frombuffer(view, dtype=np.uint8), np.asarray(blocks, dtype=np.int64))
    except (Unsupported, Damaged, pa.ArrowException, ValueError):
        return None
    first = [b for _, b, _ in field_starts(schema)]
    out = []
    for (off, meta, body_len), bufs in zip(blocks, lay.bufs):
        body = off + meta
        bounds = [0, *bufs[first[1:], 0].tolist(), body_len]
        if any(b > c for b, c in zip(bounds, bounds[1:])) or bounds[-2] > body_len:
            return None
        out.append((meta, [(off, body)] + [(body + a, body + b) for a, b in zip(bounds, bounds[1:])]))
    return out


def _problem(record: Any) -> str | None:
    """What is wrong with the shape of a checksum record (None when well formed)."""
    if not isinstance(record, dict) or record.get("algorithm") != ALGORITHM:
        return "checksum record malformed"
    for key in ("head", "tail"):
        v = record.get(key)
        if not (isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) and isinstance(v[1], str)):
            return f"checksum {key} malformed"
    b = record.get("batches")
    if not isinstance(b, list) or not all(
        isinstance(e, list) and len(e) == 3 and isinstance(e[0], int) and isinstance(e[1], int) and isinstance(e[2], str)
        for e in b
    ):
        return "checksum batches malformed"
    c = record.get("columns")
    if c is not None and (not isinstance(c, list) or len(c) != len(b) or not all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], int) and isinstance(e[1], str)
            and len(e[1]) % 16 == 0 and len(e[1]) >= 32 for e in c)):
        return "checksum columns malformed"
    return None


class FileVerifier:
    """Checks one file of a shard against its checksum record (head and tail at once, batches on demand)."""

    def __init__(self, path: "Path | pa.Buffer", record: dict, *, shard_id: str, name: str, size: int) -> None:
        self.shard_id = shard_id
        self.name = name
        self._record = record
        self._ok: set[int] = set()
        # format 3: the record as arrays, batches whose message matched, (batch, column) pairs that matched
        self._parsed: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._meta_ok = np.zeros(0, dtype=bool)
        self._col_ok = np.zeros((0, 0), dtype=bool)
        self._all_meta = False  # every message matched
        self._all_col: set[int] = set()  # columns matched in every batch (a repeated scan checks nothing)
        problem = _problem(record)
        if problem:
            self._fail(problem)
        self._map: mmap.mmap | memoryview
        self._view: memoryview | None = None
        if isinstance(path, pa.Buffer):  # a file read whole from object storage
            self._map = memoryview(path)
            if path.size != size:
                self._fail(f"size {path.size} != {size}")
        else:
            try:
                with open(path, "rb") as f:
                    actual = os.fstat(f.fileno()).st_size
                    if actual != size:
                        self._fail(f"size {actual} != {size}")
                    self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except OSError as exc:
                self._fail(f"unreadable: {exc}")
        # ranges are hashed through a view: slicing the mmap itself copied every byte checked (a whole scan's
        # files, ~40 ms of memmove and fresh pages for a 500 MB store)
        self._view = memoryview(self._map)
        if VERIFY:
            head_len, head = record["head"]
            tail_start, tail = record["tail"]
            if not 0 <= head_len <= size or not 0 <= tail_start <= size:
                self._fail("checksum ranges outside the file")
            got_head, got_tail = int_ranges(self._view, [0, tail_start], [head_len, size]).tolist()
            if f"{got_head:016x}" != head:
                self._fail("schema/dictionaries fail their checksum")
            if f"{got_tail:016x}" != tail:
                self._fail("footer fails its checksum")

    @property
    def num_batches(self) -> int:
        return len(self._record["batches"])

    def head_schema(self) -> pa.Schema:
        """The file's schema, from the schema message its head starts with (the head was checked against its
        checksum when this verifier was made).  ``pyarrow.ArrowInvalid`` when it is not one."""
        assert self._view is not None
        head_len = self._record["head"][0]
        if head_len < 8:
            raise pa.ArrowInvalid("no schema message in the file's head")
        return ipc.read_schema(pa.py_buffer(self._view[8:head_len]))  # after the magic and its padding

    def buffer(self) -> pa.Buffer:
        """The file's bytes this verifier checks, as a buffer over its mapping (no copy).  Readers of the file
        that read through it touch the pages the checks already mapped: a first scan through a mapping of its
        own faulted in every message and column again (~6,000 page faults, ~15-25 ms, for 41 shards)."""
        return pa.py_buffer(self._map)

    def _fail(self, what: str) -> NoReturn:
        raise ShardCorruptError(f"{self.name}: {what}", shard_id=self.shard_id)

    def check(self, index: int) -> None:
        """Raise :class:`ShardCorruptError` unless record batch ``index`` matches its checksum."""
        if not VERIFY or index in self._ok:
            return
        batches = self._record["batches"]
        if not 0 <= index < len(batches):
            self._fail(f"no record batch {index} (the file has {len(batches)})")
        off, length, digest = batches[index]
        if off < 0 or off + length > len(self._map):
            self._fail(f"record batch {index} lies outside the file")
        assert self._view is not None
        if _h(self._view[off : off + length]) != digest:
            self._fail(f"record batch {index} fails its checksum")
        self._ok.add(index)

    def check_all(self) -> None:
        for i in range(self.num_batches):
            self.check(i)

    @property
    def has_columns(self) -> bool:
        """Whether the file has per-column hashes (format 3): scans then check only the columns they read."""
        return "columns" in self._record

    def _columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A format-3 record as arrays: per batch its block start, body start and block end, and the digests
        (batches x (1 + columns), the message's first) as integers; parsed once."""
        got = self._parsed
        if got is None:
            batches, columns = self._record["batches"], self._record["columns"]
            width = len(columns[0][1]) if columns else 32
            if any(len(d) != width for _, d in columns):
                self._fail("column checksums of different lengths")
            try:
                digests = np.frombuffer(bytes.fromhex("".join(d for _, d in columns)), dtype=">u8")
            except ValueError:
                self._fail("column checksums are not hex digits")
            off = np.array([e[0] for e in batches], dtype=np.int64)
            end = off + np.array([e[1] for e in batches], dtype=np.int64)
            body = off + np.array([m for m, _ in columns], dtype=np.int64)
            if len(off) and (off.min() < 0 or (body < off).any() or (end < body).any() or end.max() > len(self._map)):
                self._fail("a record batch lies outside the file")
            got = self._parsed = (off, body, end, digests.reshape(len(batches), width // 16).astype(np.uint64))
            self._meta_ok = np.zeros(len(batches), dtype=bool)
            self._col_ok = np.zeros((len(batches), width // 16 - 1), dtype=bool)
        return got

    def _indices(self, indices: Sequence[int]) -> np.ndarray:
        pick = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(pick) and (pick.min() < 0 or pick.max() >= self.num_batches):
            self._fail(f"no such record batch (the file has {self.num_batches})")
        return pick

    def check_messages(self, indices: Sequence[int]) -> None:
        """Raise :class:`ShardCorruptError` unless the messages (metadata) of batches ``indices`` match their hashes
        (format 3; before their layouts are parsed)."""
        if not VERIFY or self._all_meta:
            return
        off, body, _, digests = self._columns()
        pick = self._indices(indices)
        pick = pick[~self._meta_ok[pick]]
        view = self._view
        assert view is not None
        got = int_ranges(view, off[pick], body[pick])
        bad = np.flatnonzero(got != digests[pick, 0])
        if len(bad):
            self._fail(f"record batch {int(pick[bad[0]])}'s message fails its checksum")
        self._meta_ok[pick] = True
        self._all_meta = bool(self._meta_ok.all())

    def check_columns(self, indices: Sequence[int], starts: np.ndarray, columns: Sequence[tuple[int, str]]) -> None:
        """Raise :class:`ShardCorruptError` unless ``columns`` ((index, name) pairs) of batches ``indices`` match
        their hashes (format 3).  ``starts``: per batch (row), each top-level column's first body buffer offset
        (from the batch's message, checked with :meth:`check_messages`): a column's bytes run from its first
        buffer to the next column's (the first from the body's start, the last to the batch's end)."""
        if not VERIFY:
            return
        _, body, end, digests = self._columns()
        pick = self._indices(indices)
        starts = np.asarray(starts, dtype=np.int64).reshape(len(pick), -1)
        ncols = starts.shape[1]
        if ncols != digests.shape[1] - 1:
            self._fail(f"the batches have {digests.shape[1] - 1} column checksums, not {ncols}")
        view = self._view
        assert view is not None
        for c, name in columns:
            if c in self._all_col:
                continue
            todo = np.flatnonzero(~self._col_ok[pick, c])
            if not len(todo):
                continue
            rows = pick[todo]
            a = body[rows] + (starts[todo, c] if c else 0)
            b = end[rows] if c + 1 == ncols else body[rows] + starts[todo, c + 1]
            bad = np.flatnonzero((a < body[rows]) | (a > b) | (b > end[rows]))
            if len(bad):
                self._fail(f"column {name} of record batch {int(rows[bad[0]])} lies outside the batch")
            got = int_ranges(view, a, b)
            bad = np.flatnonzero(got != digests[rows, c + 1])
            if len(bad):
                self._fail(f"column {name} of record batch {int(rows[bad[0]])} fails its checksum")
            self._col_ok[rows, c] = True
            if self._col_ok[:, c].all():
                self._all_col.add(c)

    def check_all_columns(self) -> None:
        """Every batch's message and column hashes (``verify``; nothing for files without them)."""
        if not self.has_columns or not self.num_batches:
            return
        assert self._view is not None
        head_len = self._record["head"][0]
        n = self.num_batches
        self.check_messages(range(n))
        off, body, end, _ = self._columns()
        blocks = np.stack([off, body - off, end - body], axis=1)
        try:
            schema = ipc.read_schema(pa.BufferReader(bytes(self._view[8:head_len])))
            lay = parse_messages(np.frombuffer(self._view, dtype=np.uint8), blocks)
        except (Unsupported, Damaged, pa.ArrowException, ValueError) as exc:
            self._fail(f"batch messages unreadable: {type(exc).__name__}: {exc}")
        first = [b for _, b, _ in field_starts(schema)]
        if lay.bufs.shape[1] < max(first, default=0) + 1:
            self._fail("batch messages have fewer buffers than the schema's columns")
        self.check_columns(range(n), lay.bufs[:, first, 0], list(enumerate(schema.names)))

    def close(self) -> None:
        m = getattr(self, "_map", None)
        view = getattr(self, "_view", None)
        if view is not None:
            view.release()
            self._view = None
        try:
            if isinstance(m, mmap.mmap):
                m.close()
            elif m is not None:
                m.release()
        except BufferError:
            pass
