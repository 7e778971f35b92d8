"""The compiled scan of fixed-width columns (``_ext/_scan.pyx``) against its reference in gamestore/sqlscan.py:
the same columns from real shards, and every kind of damaged body buffer named, never read past."""
from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pytest
import zstandard

import gamestore
from gamestore import _scan, sqlscan, zstdlib
from gamestore.testing import synth

pytestmark = pytest.mark.single_backend


def _body(parts: list[bytes | None]) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Arrow IPC compressed buffers: an int64 length (-1: stored raw) then a zstd frame; None: a zero-size buffer."""
    blob, pos, size = b"", [], []
    for p in parts:
        if p is None:
            pos.append(len(blob))
            size.append(0)
            continue
        frame = struct.pack("<q", len(p)) + zstandard.ZstdCompressor().compress(p) if len(p) % 3 else \
            struct.pack("<q", -1) + p
        pos.append(len(blob))
        size.append(len(frame))
        blob += frame + b"\0" * 5  # buffers need not be adjacent
    return blob, np.array(pos, dtype=np.int64), np.array(size, dtype=np.int64)


def _joined(blob, pos, size, take):
    return _scan.joined(memoryview(blob), pos, size, np.array(take, dtype=np.int64))


def test_frames_land_back_to_back_cut_to_their_rows():
    assert zstdlib.addresses() is not None and sqlscan._scan is _scan
    parts = [bytes(range(i, i + 40)) for i in range(5)] + [b"x" * 48]
    blob, pos, size = _body(parts[:3] + [None] + parts[3:])
    take = [40, 33, 8, 0, 40, 17, 48]
    out, length = _joined(blob, pos, size, take)
    want = b"".join(p[:n] for p, n in zip(parts[:3] + [b""] + parts[3:], take))
    assert bytes(memoryview(out)[:length]) == want and length == len(want)


@pytest.mark.parametrize("damage", ["short", "outside", "prefix", "frame", "zero size with rows", "negative"])
def test_a_damaged_buffer_is_named(damage):
    parts = [b"a" * 64, b"b" * 64, b"c" * 64]  # 64 % 3 == 1: zstd frames
    blob, pos, size = _body(parts)
    take = [64, 64, 64]
    if damage == "short":
        take[1] = 72
    elif damage == "outside":
        size[1] = len(blob)
    elif damage == "prefix":
        blob = blob[:pos[1]] + struct.pack("<q", 1 << 40) + blob[pos[1] + 8:]
    elif damage == "frame":
        blob = blob[:pos[1] + 12] + b"\xff\xff\xff" + blob[pos[1] + 15:]
    elif damage == "zero size with rows":
        size[1] = 0
    else:
        pos[1] = -3
    assert _joined(blob, pos, size, take) == (None, 1)


def test_compiled_and_reference_scans_equal(tmp_path, monkeypatch):
    with gamestore.open(tmp_path / "s", fsync=False, batch_rows=300) as s:
        s.write_games(synth.iter_games(20, seed=5))
        s.flush()
        q = "SELECT phase, move_type, count(*), sum(think_time_ms), max(move_number) FROM moves GROUP BY 1, 2 ORDER BY 1, 2"
        sqlscan.COLUMN_CACHE.clear()
        compiled = s.sql(q).fetchall()
        monkeypatch.setattr(sqlscan, "_scan", None)
        sqlscan.COLUMN_CACHE.clear()
        reference = s.sql(q).fetchall()
        sqlscan.COLUMN_CACHE.clear()
    assert compiled == reference and sum(r[2] for r in compiled) > 1000


@pytest.mark.parametrize("compiled", [True, False])
def test_a_second_uncached_scan_reads_by_the_kept_plans_equal(tmp_path, monkeypatch, compiled):
    """With the column cache off every statement decompresses again: the second one by the plans the first kept
    on the shard's reader (nothing parsed or checked again), equal to the first and to a plain Arrow read."""
    if not compiled:
        monkeypatch.setattr(sqlscan, "_scan", None)
    monkeypatch.setattr(sqlscan.COLUMN_CACHE, "max_size", 0)
    with gamestore.open(tmp_path / "s", fsync=False, batch_rows=300) as s:
        for seed in (3, 4):  # two shards
            s.write_games(synth.iter_games(10, seed=seed))
            s.flush()
        q = "SELECT game_id, move_number, phase, move_type, think_time_ms FROM moves ORDER BY game_id, move_number"
        first = s.sql(q).fetchall()
        readers = s._catalog.readers()
        assert len(readers) == 2
        for r in readers:
            assert {"phase", "move_type", "think_time_ms", "move_number"} <= set(r.fast_reader().scan_plans)
        calls = []
        monkeypatch.setattr(sqlscan, "_field_starts", lambda schema: calls.append(schema))  # parsing: not again
        second = s.sql(q).fetchall()
        assert not calls
        plain = pa.concat_tables(
            [pa.Table.from_batches([r.batch(i) for i in range(r.num_batches)]) for r in readers])
    want = sorted(zip(*(plain.column(n).to_pylist() for n in ("game_id", "move_number", "phase", "move_type",
                                                              "think_time_ms"))))
    assert first == second == want and len(want) > 1000


def _messages_of(path):
    import pyarrow.ipc as ipc

    from gamestore.ipc_batch import fast_reader
    fr = fast_reader(str(path), ipc.open_file(str(path)))
    return bytes(fr.view), np.asarray(fr._blocks, dtype=np.int64).reshape(-1, 3)


def _parse(buf, blocks, compiled, monkeypatch):
    from gamestore import ipc_messages
    monkeypatch.setattr(ipc_messages, "_compiled", ipc_messages._compiled_parser() if compiled else None)
    try:
        return ipc_messages.parse_messages(np.frombuffer(buf, dtype=np.uint8), blocks)
    except Exception as exc:  # the reference's error, named the same way by both
        return type(exc), str(exc)


def test_compiled_message_parsing_equals_the_reference(tmp_path, monkeypatch):
    """Every batch's layout from the compiled pass equals ipc_messages' numpy reference, whole files and subsets;
    a damaged message (pointing outside the file, another kind, another codec) gets the reference's error."""
    from gamestore import ipc_messages
    assert ipc_messages._compiled_parser() is not None
    with gamestore.open(tmp_path / "s", fsync=False, batch_rows=200) as s:
        s.write_games(synth.iter_games(12, seed=9))
        s.flush()
        (reader,) = s._catalog.readers()
        path = reader.file_path("moves.arrow")
    buf, blocks = _messages_of(path)
    assert len(blocks) > 5
    for pick in (blocks, blocks[::2], blocks[-1:]):
        got, want = _parse(buf, pick, True, monkeypatch), _parse(buf, pick, False, monkeypatch)
        assert isinstance(got, ipc_messages.Layouts) and len(got) == len(want)
        assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(got, want))
    rng = np.random.default_rng(3)
    offset, meta = int(blocks[2, 0]), int(blocks[2, 1])
    errors = 0
    for trial in range(60):
        damaged = bytearray(buf)
        at = offset + int(rng.integers(0, min(meta, 96)))  # the framing, root table and vtables
        damaged[at:at + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        got, want = _parse(bytes(damaged), blocks, True, monkeypatch), _parse(bytes(damaged), blocks, False, monkeypatch)
        if not isinstance(want, ipc_messages.Layouts):
            errors += 1
            assert not isinstance(got, ipc_messages.Layouts) and got == want, (want, type(got))
        else:
            assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert errors > 5
    short = buf[:offset + 16]  # the file cut inside a message
    assert _parse(short, blocks, True, monkeypatch) == _parse(short, blocks, False, monkeypatch)


def test_only_a_whole_shards_read_keeps_plans(tmp_path, monkeypatch):
    """Batches repeated or out of order are read as asked and never taken for the whole shard."""
    monkeypatch.setattr(sqlscan.COLUMN_CACHE, "max_size", 0)
    with gamestore.open(tmp_path / "s", fsync=False, batch_rows=300) as s:
        s.write_games(synth.iter_games(10, seed=6))
        s.flush()
        (reader,) = s._catalog.readers()
        n = reader.num_batches
        assert n >= 3
        odd = [0, 0] + list(range(2, n))  # as long as the shard, batch 1 missing
        got = sqlscan.read_columns(reader, ["think_time_ms"], odd).column(0).to_pylist()
        assert not reader.fast_reader().scan_plans
        want = [v for i in odd for v in reader.batch(i).column("think_time_ms").to_pylist()]
        assert got == want
        whole = sqlscan.read_columns(reader, ["think_time_ms"], list(range(n))).column(0).to_pylist()
        assert "think_time_ms" in reader.fast_reader().scan_plans
        assert whole == [v for i in range(n) for v in reader.batch(i).column("think_time_ms").to_pylist()]


def test_frames_land_in_the_buffer_alloc_makes():
    """``alloc``: the output is the buffer it returns (Arrow's pool: no fresh mapping to fault in), equal to the
    bytearray's; one too short is refused before a byte is written."""
    blob, pos, size = _body([b"abcdefgh" * 3, None, b"0123456789" * 50, b"xy" * 40])
    take = np.array([20, 0, 497, 80], dtype=np.int64)
    want, length = _joined(blob, pos, size, take)
    asked = []

    def alloc(n):
        asked.append(n)
        return pa.allocate_buffer(n)

    out, got = _scan.joined(memoryview(blob), pos, size, take, None, alloc)
    assert isinstance(out, pa.Buffer) and asked == [len(want)]
    assert (got, out.to_pybytes()[:got]) == (length, bytes(want[:length]))
    with pytest.raises(ValueError, match="returned"):
        _scan.joined(memoryview(blob), pos, size, take, None, lambda n: pa.allocate_buffer(n - 1))
