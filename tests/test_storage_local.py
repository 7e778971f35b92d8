"""A local store's Storage works through ``os`` and makes its ``pyarrow.fs`` filesystem only when asked for it
(``pyarrow.fs`` costs ~10 ms to import: gamestore/storage.py); catalog Parquet read without ``pyarrow.parquet``."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from gamestore.checkpoint import read_parquet_bytes
from gamestore.storage import Storage

pytestmark = pytest.mark.single_backend


def test_local_storage_answers_as_the_local_filesystem_does(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"12345")
    lazy = Storage.from_location(tmp_path)
    explicit = Storage(pafs.LocalFileSystem(), str(tmp_path))
    assert lazy.local and explicit.local and lazy._fs is None
    for rel in ("d/f", "d", "missing", "d/missing"):
        info = explicit.info(rel)
        assert lazy.exists(rel) == explicit.exists(rel) == (info.type != pafs.FileType.NotFound), rel
        if info.type == pafs.FileType.File:
            assert lazy.size(rel) == explicit.size(rel) == info.size == 5
    assert lazy.size("missing") is None and explicit.size("missing") is None
    assert lazy.read_bytes("d/f") == b"12345"
    assert lazy == explicit and hash(lazy) == hash(explicit) and lazy.uri == explicit.uri == str(tmp_path)
    assert isinstance(lazy.fs, pafs.LocalFileSystem) and lazy.fs is lazy.fs  # made once, when asked for
    assert [e.path for e in lazy.list_files("d")] == ["d/f"]


def test_parquet_bytes_read_as_pyarrow_parquet_reads_them(tmp_path):
    table = pa.table({"a": list(range(1000)), "s": [f"x{i}" for i in range(1000)],
                      "l": [[i, i + 1] for i in range(1000)]})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_page_checksum=True)
    data = sink.getvalue().to_pybytes()
    assert read_parquet_bytes(data).equals(pq.read_table(pa.BufferReader(data)))
    assert read_parquet_bytes(data, page_checksums=True).equals(table)
    damaged = bytearray(data)
    damaged[len(data) // 3] ^= 0xFF  # inside a data page
    with pytest.raises((pa.ArrowException, OSError)):
        read_parquet_bytes(bytes(damaged), page_checksums=True)
