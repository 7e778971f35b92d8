"""Crafted moves batches: valid Arrow structure on the surface (Arrow's cheap validation passes), damaged inside.

Each ``CRAFTS`` entry turns a real moves record batch into one whose
offsets, dictionary indices or JSON texts are out of range or malformed,
the damage a checksum cannot catch when the checksum was computed over the
damaged bytes (a crafted shard) or when there is none (format 1).  Used by
tests/test_batch_decoder.py (the decoders) and tests/test_readpath.py (a
re-sealed shard read through the store).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa

from gamestore import shard
from gamestore.checksum import file_checksums
from gamestore.fsutil import sha256_file


def _patched(arr: pa.Array, k: int, dtype: type, change: Callable[[np.ndarray], None]) -> list:
    """``arr``'s buffers with buffer ``k`` (read as ``dtype``) changed in a copy."""
    bufs = arr.buffers()
    values = np.frombuffer(bufs[k], dtype=dtype).copy()
    change(values)
    bufs[k] = pa.py_buffer(values.tobytes())
    return bufs


def _replace(batch: pa.RecordBatch, name: str, arr: pa.Array) -> pa.RecordBatch:
    cols = list(batch.columns)
    cols[batch.schema.get_field_index(name)] = arr
    return pa.RecordBatch.from_arrays(cols, schema=batch.schema)


def _string_offsets(name: str, change: Callable[[np.ndarray], None]) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    def craft(batch: pa.RecordBatch) -> pa.RecordBatch:
        a = batch.column(name)
        return _replace(batch, name, pa.Array.from_buffers(a.type, len(a), _patched(a, 1, np.int32, change), offset=a.offset))
    return craft


def _dict_index(name: str, row: int, value: int) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    def craft(batch: pa.RecordBatch) -> pa.RecordBatch:
        a = batch.column(name)
        dtype = np.dtype(a.type.index_type.to_pandas_dtype())

        def change(v: np.ndarray) -> None:
            v[row] = value

        bufs = _patched(a, 1, dtype, change)
        return _replace(batch, name, pa.DictionaryArray.from_buffers(a.type, len(a), bufs[:2], a.dictionary, offset=a.offset))
    return craft


def _list_offsets(name: str, change: Callable[[np.ndarray], None]) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    def craft(batch: pa.RecordBatch) -> pa.RecordBatch:
        a = batch.column(name)
        bufs = _patched(a, 1, np.int32, change)
        return _replace(batch, name, pa.Array.from_buffers(a.type, len(a), bufs[:2], offset=a.offset, children=[a.values]))
    return craft


def _entry_key(name: str, entry: int, value: int) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    def craft(batch: pa.RecordBatch) -> pa.RecordBatch:
        a = batch.column(name)
        entries = a.values
        key = entries.field("key")

        def change(v: np.ndarray) -> None:
            v[entry] = value

        new_key = pa.DictionaryArray.from_buffers(key.type, len(key), _patched(key, 1, np.int32, change)[:2], key.dictionary,
                                                  offset=key.offset)
        fields = [new_key] + [entries.field(i) for i in range(1, entries.type.num_fields)]
        new_entries = pa.StructArray.from_arrays(fields, fields=list(entries.type))
        return _replace(batch, name, pa.Array.from_buffers(a.type, len(a), a.buffers()[:2], offset=a.offset, children=[new_entries]))
    return craft


def _dictionary_offsets(name: str) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    def craft(batch: pa.RecordBatch) -> pa.RecordBatch:
        a = batch.column(name)
        d = a.dictionary

        def change(v: np.ndarray) -> None:  # a middle offset past its successor; first and last stay valid
            v[1], v[2] = v[2] + 1, v[1]

        strings = pa.Array.from_buffers(d.type, len(d), _patched(d, 1, np.int32, change))
        return _replace(batch, name, pa.DictionaryArray.from_buffers(a.type, len(a), a.buffers()[:2], strings))
    return craft


def _texts(name: str, text: bytes) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    def craft(batch: pa.RecordBatch) -> pa.RecordBatch:
        n = batch.num_rows
        offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * len(text)).tobytes())
        return _replace(batch, name, pa.Array.from_buffers(pa.string(), n, [None, offsets, pa.py_buffer(text * n)]))
    return craft


def _swap(i: int, j: int) -> Callable[[np.ndarray], None]:
    def change(v: np.ndarray) -> None:
        v[i], v[j] = v[j], v[i]
    return change


def _set(i: int, value: Callable[[np.ndarray], int]) -> Callable[[np.ndarray], None]:
    def change(v: np.ndarray) -> None:
        v[i] = value(v)
    return change


#: name -> function(batch) -> crafted batch (a moves batch of at least 3 rows, each with a policy and a timestamp)
CRAFTS: dict[str, Callable[[pa.RecordBatch], pa.RecordBatch]] = {
    "string offsets decreasing": _string_offsets("timestamp", _swap(2, 3)),
    "string offset past the data": _string_offsets("timestamp", _set(2, lambda v: int(v[-1]) + 100_000)),
    "string offset negative": _string_offsets("timestamp", _set(1, lambda v: -7)),
    "dictionary index past the dictionary": _dict_index("phase", 1, 30_000),
    "dictionary index negative": _dict_index("move_type", 0, -5),
    "list offsets decreasing": _list_offsets("policy", _set(2, lambda v: int(v[1]) - 3)),
    "list offset past the entries": _list_offsets("policy", _set(2, lambda v: int(v[-1]) + 1_000)),
    "entry key past the dictionary": _entry_key("policy", 3, 1 << 30),
    "dictionary strings offsets decreasing": _dictionary_offsets("phase"),
    "invalid UTF-8": _texts("timestamp", b"\xff\xfe"),
    "JSON text that does not parse": _texts("extra_json", b"{not json"),
    "JSON text that is not an object": _texts("extra_json", b"[1,2]"),
}


def reseal(shard_dir: Path, batches: list[pa.RecordBatch]) -> None:
    """Rewrite ``moves.arrow`` of a committed shard from ``batches`` and record the new file's checksums in its
    manifest: a crafted shard whose checksums pass."""
    path = shard_dir / shard.MOVES_FILE
    schema = batches[0].schema
    tmp = path.with_suffix(".crafted")
    with pa.OSFile(str(tmp), "wb") as f:
        with pa.ipc.new_file(f, schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
            for b in batches:
                w.write_batch(b)
    tmp.replace(path)
    record_checksums(shard_dir)


def record_checksums(shard_dir: Path) -> None:
    """Record the size, digest and batch checksums of ``moves.arrow`` as it is now in its shard's manifest: bytes
    changed in place pass the checksums (a crafted shard)."""
    path = shard_dir / shard.MOVES_FILE
    manifest_path = shard_dir / shard.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][shard.MOVES_FILE] = {
        "bytes": path.stat().st_size, "sha256": sha256_file(path), "checksums": file_checksums(path),
    }
    manifest_path.write_text(json.dumps(manifest))
