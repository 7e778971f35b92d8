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


def _check_same(mine, theirs, *, raw: bool = True, extra: int = 0) -> None:
    """``mine`` reads as ``theirs`` (Arrow's writer); same size up to padding and, with ``raw``, the buffers kept
    uncompressed (each at most 1/RAW_BELOW of its bytes larger than its frame) and ``extra`` bytes more."""
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
    slack += extra
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


def _prefixes(path, index: int) -> list[int]:
    """The int64 length prefix of each non-empty body buffer of record batch ``index`` (-1: stored raw)."""
    fast = fast_reader(str(path), ipc.open_file(str(path)))
    assert fast is not None
    _, _, bufs, body = fast.point_layout(index)
    got = [int(np.frombuffer(fast.view, "<i8", 1, body + off)[0]) if size else 0 for off, size in bufs.reshape(-1, 2)]
    fast.close()
    return got


def test_category_indices_are_stored_raw(tmp_path, monkeypatch):
    """The index buffer of an int16-indexed dictionary column (phase, move_type: format version 5) is stored
    uncompressed unless zstd shrinks it 16x (a constant column); int32-indexed dictionaries (ids, keys) and other
    columns keep their frames; with RAW_INDICES_BELOW = 0 the rule is off.  Read back equal by Arrow and the
    project's readers either way."""
    cats = pa.array(["ring_placement", "movement", "capture", "line_processing", "territory_processing"])
    schema = pa.schema([("phase", pa.dictionary(pa.int16(), pa.string())), ("same", pa.dictionary(pa.int16(), pa.string())),
                        ("id", pa.dictionary(pa.int32(), pa.string())), ("n", pa.int16())])  # fmt: skip
    rng = np.random.default_rng(5)
    batches = []
    for rows in (1000, 0, 700):
        codes = rng.integers(0, 5, rows).astype(np.int16)
        batches.append(pa.RecordBatch.from_arrays([
            pa.DictionaryArray.from_arrays(pa.array(codes), cats),
            pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int16)), cats),
            pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), cats),
            pa.array(codes),
        ], schema=schema))  # fmt: skip
    assert ipc_write._category_indices(schema) == {1, 3}  # (validity, indices) per dictionary column
    for below in (16, 0):
        monkeypatch.setattr(ipc_write, "RAW_INDICES_BELOW", below)
        path = tmp_path / f"c{below}.arrow"
        ipc_write.write_ipc_file(path, schema, batches)
        for i in (0, 2):
            got = _prefixes(path, i)
            assert (got[1] == -1) == bool(below)  # phase's indices
            assert got[3] > 0 and got[5] > 0 and got[7] > 0  # constant indices, int32 indices, int16 values: frames
        _arrow_file(tmp_path / "a.arrow", schema, batches)
        _check_same(path, tmp_path / "a.arrow", extra=2 * sum(b.num_rows for b in batches) if below else 0)


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
    plain, backing = ipc_write._write_plain(schema, batches)
    assert plain.size > 0 and plain.equals(ipc_write._write_arrow(schema, batches, ipc_write._PLAIN))
    assert backing.size >= plain.size and backing.is_mutable
    assert ipc_write._write_plain(schema, [])[0].equals(ipc_write._write_arrow(schema, [], ipc_write._PLAIN))


def test_the_plain_layout_reuses_a_spare_buffer_and_overwrites_every_byte():
    """A spare buffer large enough holds the next file at its front (no fresh memory); whatever it held
    before (here 0xAB everywhere) is not left in the file; a smaller one is not used."""
    schema, batches = _mixed_batches()
    expected = ipc_write._write_arrow(schema, batches, ipc_write._PLAIN)
    spare = pa.py_buffer(bytearray(b"\xab" * (expected.size + 100)))
    plain, backing = ipc_write._write_plain(schema, batches, spare)
    assert backing is spare and plain.address == spare.address and plain.equals(expected)
    small = pa.py_buffer(bytearray(expected.size - 1))
    plain, backing = ipc_write._write_plain(schema, batches, small)
    assert backing is not small and plain.address != small.address and plain.equals(expected)


def test_files_through_the_shared_spare_equal_fresh_ones(monkeypatch):
    """ipc_file_bytes keeps one spare buffer between files: files of growing and shrinking sizes, written one
    after another and from several threads at once, are the bytes a fresh buffer gives; a spare over the
    limit is not kept, release_spare() drops it."""
    import threading

    monkeypatch.setattr(ipc_write, "_spare", ipc_write._Spare())
    schema, batches = _mixed_batches()
    cases = [batches, batches[:1], batches + [batches[2].slice(3, 500)], batches[2:], []]

    def fresh(b):
        return pa.py_buffer(b"".join(ipc_write._recompress(ipc_write._write_plain(schema, b)[0])))

    expected = [fresh(b) for b in cases]
    for _ in range(2):
        for b, e in zip(cases, expected):
            assert ipc_write.ipc_file_bytes(schema, b).equals(e)
    kept = ipc_write._spare.take()
    assert kept is not None and kept.size >= max(e.size for e in expected)
    ipc_write._spare.give(kept)
    results: dict[int, bool] = {}

    def run(i: int) -> None:
        results[i] = all(ipc_write.ipc_file_bytes(schema, cases[(i + k) % len(cases)]).equals(expected[(i + k) % len(cases)])
                         for k in range(10))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: True for i in range(4)}
    ipc_write.release_spare()
    assert ipc_write._spare.take() is None
    monkeypatch.setattr(ipc_write._Spare, "LIMIT", 10)
    ipc_write.ipc_file_bytes(schema, batches)
    assert ipc_write._spare.take() is None


@pytest.mark.parametrize("batch_rows", [1, 300, 1024, 10**6])
def test_move_batches_of_several_parts_equal_the_combined_tables(batch_rows):
    """A shard of several encoded parts is cut without copying it whole (dictionaries unified, only a batch
    that spans two parts combined): the batches are those of the combined table, one dictionary per field,
    and the file reads back as the combined table."""
    from gamestore import codec, sealing, shardwrite

    specs = {n: VectorSpec.coerce(n, d) for n, d in synth.VECTORS.items()}
    records = synth.games(9, board_type="square8", num_players=2, seed=7)
    records[4]["moves"] = []  # a part boundary next to a game without moves
    parts = [codec.encode_games(records[i:j], vectors=specs) for i, j in ((0, 3), (3, 4), (4, 5), (5, 9))]
    games, moves = sealing.concat_parts(parts, specs)
    assert moves.column("phase").num_chunks == 4
    combined = moves.combine_chunks()
    batches = list(shardwrite._move_batches(games, moves, batch_rows))
    assert all(b.num_rows for b in batches) and sum(b.num_rows for b in batches) == moves.num_rows
    start = 0
    for b in batches:
        assert b.equals(combined.slice(start, b.num_rows).to_batches()[0])
        start += b.num_rows
    schema = moves_schema(specs)
    back = ipc.open_file(ipc_write.ipc_file_bytes(schema, batches)).read_all()
    assert back.equals(combined.cast(schema))
