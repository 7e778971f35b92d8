"""gamestore.ipc_write: the re-emitted zstd IPC file reads back as Arrow's own writer's does."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from gamestore import ipc_write
from gamestore.ipc_batch import fast_reader
from gamestore.schema import GAMES_SCHEMA, VectorSpec, moves_schema
from gamestore.testing import synth

pytestmark = pytest.mark.single_backend


def _mixed_batches() -> tuple[pa.Schema, list[pa.RecordBatch]]:
    entry = pa.struct([("key", pa.dictionary(pa.int32(), pa.string())), ("p", pa.float32())])
    schema = pa.schema([
        ("id", pa.dictionary(pa.int32(), pa.string())),
        ("n", pa.int64()),
        ("s", pa.string()),
        ("pol", pa.list_(entry)),
        ("vec", pa.list_(pa.float32(), 3)),
        ("none", pa.int16()),
    ], metadata={b"k": b"v"})  # fmt: skip
    keys = pa.array(["a", "b", "c"])
    batches = []
    for k, rows in enumerate((5, 0, 1000)):
        rng = np.random.default_rng(k)
        idx = pa.array(rng.integers(0, 3, rows, dtype=np.int32))
        ents = pa.StructArray.from_arrays(
            [pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 3, 2 * rows, dtype=np.int32)), keys),
             pa.array(rng.random(2 * rows, dtype=np.float32))], fields=list(entry))  # fmt: skip
        offsets = pa.array(np.arange(0, 2 * rows + 1, 2, dtype=np.int32))
        mask = rng.random(rows) < 0.3
        batches.append(pa.RecordBatch.from_arrays([
            pa.DictionaryArray.from_arrays(idx, keys),
            pa.array(rng.integers(-5, 5, rows), mask=mask),
            pa.array([None if m else f"t{i}" for i, m in enumerate(mask)], pa.string()),
            pa.ListArray.from_arrays(offsets, ents, mask=pa.array(mask)),
            pa.FixedSizeListArray.from_arrays(pa.array(rng.random(3 * rows, dtype=np.float32)), 3),
            pa.nulls(rows, pa.int16()),
        ], schema=schema))  # fmt: skip
    return schema, batches


def _arrow_file(path, schema, batches) -> None:
    with pa.OSFile(str(path), "wb") as f, ipc.new_file(f, schema, options=ipc.IpcWriteOptions(compression="zstd")) as w:
        for b in batches:
            w.write_batch(b)


def _check_same(mine, theirs, *, raw: bool = True) -> None:
    """``mine`` reads as ``theirs`` (Arrow's writer); same size up to padding and, with ``raw``, the buffers kept
    uncompressed (each at most 1/RAW_BELOW of its bytes larger than its frame)."""
    a, b = ipc.open_file(str(mine)), ipc.open_file(str(theirs))
    assert a.schema.equals(b.schema, check_metadata=True)
    assert a.num_record_batches == b.num_record_batches
    for i in range(a.num_record_batches):
        got = a.get_record_batch(i)
        got.validate(full=True)
        assert got.equals(b.get_record_batch(i))
        fast = fast_reader(str(mine), a)  # the project's own reader of compressed batches
        assert fast is not None and fast.read(i).equals(got)
        fast.close()
    slack = 64 * (a.num_record_batches + 2)
    if raw and ipc_write.RAW_BELOW:
        slack += mine.stat().st_size // ipc_write.RAW_BELOW
    assert abs(mine.stat().st_size - theirs.stat().st_size) < slack


def test_mixed_types_nulls_empty_batch(tmp_path):
    schema, batches = _mixed_batches()
    ipc_write.write_ipc_file(tmp_path / "m.arrow", schema, batches)
    _arrow_file(tmp_path / "a.arrow", schema, batches)
    _check_same(tmp_path / "m.arrow", tmp_path / "a.arrow")


def test_buffers_zstd_barely_shrinks_are_stored_raw(tmp_path, monkeypatch):
    """Random float32 values save < 1/8 under zstd: stored uncompressed (length prefix -1, format version 4), read
    back equal by Arrow and the project's readers; with RAW_BELOW = 0 every buffer is a frame, as Arrow writes."""
    schema, batches = _mixed_batches()
    sizes = {}
    for raw_below in (8, 0):
        monkeypatch.setattr(ipc_write, "RAW_BELOW", raw_below)
        path = tmp_path / f"m{raw_below}.arrow"
        ipc_write.write_ipc_file(path, schema, batches)
        reader = ipc.open_file(str(path))
        fast = fast_reader(str(path), reader)
        assert fast is not None
        _, _, bufs, body = fast.point_layout(2)
        prefixes = [np.frombuffer(fast.view, "<i8", 1, body + off)[0] for off, size in bufs.reshape(-1, 2) if size]
        fast.close()
        assert (-1 in prefixes) == bool(raw_below)
        _arrow_file(tmp_path / "a.arrow", schema, batches)
        _check_same(path, tmp_path / "a.arrow", raw=bool(raw_below))
        sizes[raw_below] = path.stat().st_size
    assert sizes[0] < sizes[8] < sizes[0] * 1.125


def test_shard_tables_and_no_batches(tmp_path):
    from gamestore import codec

    specs = {n: VectorSpec.coerce(n, d) for n, d in synth.VECTORS.items()}
    enc = codec.encode_games(synth.games(6, board_type="hex8", num_players=3, seed=4), vectors=specs)
    for name, schema, batches in (
        ("moves", moves_schema(specs), enc.moves.combine_chunks().to_batches(max_chunksize=300)),
        ("games", GAMES_SCHEMA, enc.games.combine_chunks().to_batches()),
        ("empty", GAMES_SCHEMA, []),
    ):
        ipc_write.write_ipc_file(tmp_path / f"{name}.m", schema, batches)
        _arrow_file(tmp_path / f"{name}.a", schema, batches)
        _check_same(tmp_path / f"{name}.m", tmp_path / f"{name}.a")


def test_message_it_does_not_know_goes_to_arrows_writer(tmp_path):
    schema, batches = _mixed_batches()
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, schema) as w:
        w.write_batch(batches[0], custom_metadata={b"m": b"1"})
    with pytest.raises(ipc_write._Fallback):
        ipc_write._recompress(sink.getvalue())
    with pytest.raises(ipc_write._Fallback):
        ipc_write._recompress(pa.py_buffer(b"not an arrow file at all"))


def test_the_plain_layout_in_an_exact_buffer_equals_arrows_growing_stream():
    """_write_plain sizes the uncompressed file first (MockOutputStream) and writes it into a buffer of that
    size: byte for byte what Arrow's writer puts in a BufferOutputStream, slices and empty batches included."""
    schema, batches = _mixed_batches()
    batches = batches + [batches[2].slice(17, 300)]
    plain = ipc_write._write_plain(schema, batches)
    assert plain.size > 0 and plain.equals(ipc_write._write_arrow(schema, batches, ipc_write._PLAIN))
    assert ipc_write._write_plain(schema, []).equals(ipc_write._write_arrow(schema, [], ipc_write._PLAIN))
