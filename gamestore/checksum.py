"""Per-record-batch checksums of a shard's Arrow IPC files (format version 2, docs/format.md).

A file is covered piecewise by xxh3-64 hashes of byte ranges recorded in the
manifest: ``head`` (magic, schema and dictionary messages), one range per
record batch (its metadata and compressed body), and ``tail`` (the footer
with the block offsets Arrow's reader follows).  A reader checks the head and
tail when it opens a file and each batch's range before it decodes that batch,
so a point read hashes only the ~100 KB it decompresses anyway, and a scan
hashes each batch once.  Any mismatch raises :class:`ShardCorruptError`
naming shard and file; damaged bytes never reach a decoder.
"""
from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import xxhash

from .errors import ShardCorruptError
from .ipc_batch import _BLOCK, _I32, _MAGIC, _root

__all__ = ["ALGORITHM", "file_checksums", "FileVerifier", "VERIFY"]

ALGORITHM = "xxh3_64"
#: Switch for benchmarks (benchmarks/bench_checksum.py): False skips verification.
VERIFY = True


def _h(data: Any) -> str:
    return xxhash.xxh3_64_hexdigest(data)


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
        if n < 10 or buf[n - 6:] != _MAGIC:
            raise ValueError(f"{path} is not an Arrow IPC file")
        flen = _I32.unpack_from(buf, n - 10)[0]
        footer = _root(buf, n - 10 - flen)
        start, count = footer.vector(3)
        blocks = [_BLOCK.unpack_from(buf, start + 24 * k) for k in range(count)]
        view = memoryview(buf)
        batches = [[off, meta + body, _h(view[off : off + meta + body])] for off, meta, body in blocks]
        head_len = blocks[0][0] if blocks else n - 10 - flen
        tail_start = (blocks[-1][0] + blocks[-1][1] + blocks[-1][2]) if blocks else head_len
        out = {
            "algorithm": ALGORITHM,
            "head": [head_len, _h(view[:head_len])],
            "tail": [tail_start, _h(view[tail_start:])],
            "batches": batches,
        }
        view.release()
        return out
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()


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
    return None


class FileVerifier:
    """Checks one file of a shard against its checksum record (head and tail at once, batches on demand)."""

    def __init__(self, path: "Path | pa.Buffer", record: dict, *, shard_id: str, name: str, size: int) -> None:
        self.shard_id = shard_id
        self.name = name
        self._record = record
        self._ok: set[int] = set()
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
            if _h(self._view[:head_len]) != head:
                self._fail("schema/dictionaries fail their checksum")
            if _h(self._view[tail_start:]) != tail:
                self._fail("footer fails its checksum")

    @property
    def num_batches(self) -> int:
        return len(self._record["batches"])

    def _fail(self, what: str) -> None:
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
