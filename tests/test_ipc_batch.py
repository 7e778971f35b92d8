"""The point-read path of moves batches (gamestore/ipc_batch.py) when one batch of a file is damaged."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import gamestore
from gamestore import readpath
from gamestore.errors import DamagedShardWarning, ShardCorruptError
from gamestore.records import games_equal
from gamestore.shard import MANIFEST, MOVES_FILE, ShardReader
from gamestore.testing import synth


def _store_one_game_per_batch(path: Path) -> tuple[Path, list[dict]]:
    games = synth.games(4, seed=5, board_type="square8")
    for g in games:
        g["moves"] = g["moves"][:40]
    with gamestore.open(path, fsync=False, batch_rows=40) as s:
        s.write_games(games)
    (shard_dir,) = (path / "shards").iterdir()
    return shard_dir, games


def flip_in_batch(shard_dir: Path, index: int, *, name: str = MOVES_FILE) -> None:
    """Flip one byte inside the compressed body of record batch ``index`` of ``name``."""
    manifest = json.loads((shard_dir / MANIFEST).read_text())
    off, length, _ = manifest["files"][name]["checksums"]["batches"][index]
    data = bytearray((shard_dir / name).read_bytes())
    data[off + length - 24] ^= 0x5A
    (shard_dir / name).write_bytes(bytes(data))


@pytest.mark.parametrize("first", ["damaged", "intact"])
def test_a_damaged_batch_costs_only_its_games(backend, tmp_path, first):
    """Batch 0 damaged: its game is a ShardCorruptError naming shard and file, on every try; the games of the other
    batches of the same file read back equal, whichever is read first (the dictionaries used to come from batch 0,
    so they raised Arrow's untyped OSError "ZSTD decompression failed")."""
    shard_dir, games = _store_one_game_per_batch(tmp_path / "s")
    flip_in_batch(shard_dir, 0)
    order = games if first == "damaged" else games[1:] + games[:1]
    with gamestore.open(tmp_path / "s", create=False) as s:
        rows = {g["game_id"]: s.catalog.locate(g["game_id"]) for g in games}
    reader = ShardReader.at(shard_dir)  # the storage layer alone (a store quarantines the shard: next test)
    for _ in range(2):
        for g in order:
            loc = rows[g["game_id"]]
            if g is games[0]:
                with pytest.raises(ShardCorruptError, match=f"{shard_dir.name}.*moves.arrow.*batch 0") as err:
                    readpath.read_game(reader, loc.row, loc.move_offset, loc.num_moves)
                assert err.value.shard_id == shard_dir.name
            else:
                assert games_equal(readpath.read_game(reader, loc.row, loc.move_offset, loc.num_moves), g)
    reader.close()


def test_through_the_store_every_game_of_the_damaged_shard_is_typed(tmp_path):
    """Through a store the first failure quarantines the shard: every later read of its games is a typed error
    naming it (never Arrow's OSError), the warning says so once."""
    shard_dir, games = _store_one_game_per_batch(tmp_path / "s")
    flip_in_batch(shard_dir, 0)
    with gamestore.open(tmp_path / "s", create=False) as s:
        with pytest.warns(DamagedShardWarning, match=shard_dir.name):
            with pytest.raises(ShardCorruptError, match="moves.arrow.*batch 0"):
                s.get_game(games[0]["game_id"])
        for g in games * 2:
            with pytest.raises(ShardCorruptError) as err:
                s.get_game(g["game_id"])
            assert err.value.shard_id == shard_dir.name
        assert s.info()["games_in_damaged_shards"] == len(games)


def test_first_reads_from_many_threads_at_once(backend, tmp_path):
    """Arrow's file reader loads the dictionaries on its first read: threads racing to it take turns."""
    from concurrent.futures import ThreadPoolExecutor

    from gamestore.shard import ShardReader

    shard_dir, games = _store_one_game_per_batch(tmp_path / "s")
    n = len(games)
    expect = [ShardReader.at(shard_dir).batch(i) for i in range(n)]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(20):
            fresh = ShardReader.at(shard_dir)
            got = list(pool.map(lambda i: (fresh.batch(i % n), fresh.point_read(i % n)[0]), range(16)))
            for i, (batch, point) in enumerate(got):
                assert batch.equals(expect[i % n])
                assert point.num_rows == batch.num_rows


def _reopened_with_a_lying_prefix(shard_dir: Path, fast, pos: int):
    """Close ``fast``, make the uncompressed-length prefix at byte ``pos`` of the shard's moves file 64 bytes larger
    than its frame holds, and open the file's fast reader again."""
    import struct

    fast.close()
    data = bytearray((shard_dir / MOVES_FILE).read_bytes())
    (raw,) = struct.unpack_from("<q", data, pos)
    struct.pack_into("<q", data, pos, raw + 64)
    (shard_dir / MOVES_FILE).write_bytes(bytes(data))
    fast = ShardReader.at(shard_dir).fast_reader()
    assert fast is not None
    return fast


def test_a_buffer_whose_length_prefix_lies_is_damage(tmp_path):
    """A compressed buffer whose uncompressed-length prefix differs from what its frame holds (a crafted file can carry
    valid checksums over it) is :class:`Damaged`, never a short buffer handed to the decoder; other batches read."""
    import struct

    from gamestore.ipc_batch import Damaged

    shard_dir, _ = _store_one_game_per_batch(tmp_path / "s")
    fast = ShardReader.at(shard_dir).fast_reader()
    assert fast is not None
    _, _, bufs, body = fast.layout(0)
    intact = [fast.read(i) for i in (1, 2)]
    k = next(k for k, (off, size) in enumerate(bufs) if size and struct.unpack_from("<q", fast._map, body + off)[0] > 0)
    pos = body + bufs[k][0]
    fast = _reopened_with_a_lying_prefix(shard_dir, fast, pos)
    with pytest.raises(Damaged):
        fast.read(0)
    assert [fast.read(i).equals(b) for i, b in zip((1, 2), intact)] == [True, True]
    fast.close()


def test_decompress_of_a_few_frames_equals_one_multi_frame_call_and_names_a_lying_prefix(tmp_path):
    """``FastBatchReader.decompress`` of at most ``_FEW_FRAMES`` frames (one call each: a column's dictionary) gives
    the bytes one multi-frame call gives; a frame whose uncompressed-length prefix lies is :class:`Damaged` on
    both paths."""
    import struct

    import numpy as np

    from gamestore import ipc_batch
    from gamestore.ipc_batch import Damaged

    shard_dir, _ = _store_one_game_per_batch(tmp_path / "s")
    fast = ShardReader.at(shard_dir).fast_reader()
    assert fast is not None
    lay = fast.layouts([0])
    body, bufs = lay.body[[0] * lay.bufs.shape[1]], lay.bufs[0]
    packed = [k for k, (off, size) in enumerate(bufs.tolist())
              if size and struct.unpack_from("<q", fast._map, int(lay.body[0]) + off)[0] > 0]
    assert len(packed) > ipc_batch._FEW_FRAMES  # the whole batch: one multi-frame call
    whole = [None if g is None else bytes(g) for g in fast.decompress(body, bufs)]
    for a in range(0, len(bufs), 3):
        few = fast.decompress(body[a:a + 3], bufs[a:a + 3])
        assert [None if g is None else bytes(g) for g in few] == whole[a:a + 3]
    k = packed[0]
    pos = int(lay.body[0]) + int(bufs[k][0])
    fast = _reopened_with_a_lying_prefix(shard_dir, fast, pos)
    with pytest.raises(Damaged):
        fast.decompress(body[k:k + 1], bufs[k:k + 1])
    with pytest.raises(Damaged):
        fast.decompress(body, bufs)
    assert np.array_equal(fast.layouts([0]).bufs[0], bufs)
    fast.close()


def _fast_readers(tmp_path: Path, fixture: str, *, games: int, seed: int, **options):
    """(shard directory, ShardReader, FastBatchReader) of each shard with moves of a store written now
    (``fixture == "written"``) or of a frozen fixture store."""
    if fixture == "written":
        with gamestore.open(tmp_path / "s", vectors=synth.VECTORS, **options) as s:
            s.write_games(synth.games(games, seed=seed))
            s.flush()
        root = tmp_path / "s"
    else:
        root = Path(__file__).parent / "fixtures" / fixture / "store"
    for shard_dir in sorted((root / "shards").iterdir()):
        reader = ShardReader.at(shard_dir)
        fast = reader.fast_reader()
        if fast is not None and reader.num_batches:
            yield shard_dir, reader, fast


@pytest.mark.parametrize("fixture", ["written", "format_v1", "format_v2", "format_v3", "format_v4", "format_v5"])
def test_column_dictionaries_from_the_dictionary_messages_equal_arrows(tmp_path, fixture):
    """FastBatchReader.column_dictionaries parses the file's dictionary messages itself (SQL scans: ~0.2 ms
    against ~1 ms for an Arrow reader per column): equal to what Arrow's reader reads, for every column."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from gamestore.ipc_batch import _dictionaries

    checked = 0
    for shard_dir, reader, fast in _fast_readers(tmp_path, fixture, games=3, seed=5):
        arrow = ipc.open_file(pa.memory_map(str(shard_dir / MOVES_FILE)))
        expected: list = []
        for col in arrow.get_record_batch(0).columns:
            got: list = []
            _dictionaries(col, got)
            expected.append(got)
        for k, want in enumerate(expected):
            have = fast.column_dictionaries(k)
            assert len(have) == len(want) and all(a.equals(b) for a, b in zip(have, want)), reader.moves_schema.field(k)
            checked += len(have)
        reader.close()
    assert checked >= 4


@pytest.mark.parametrize("fixture", ["written", "format_v1", "format_v2", "format_v3", "format_v4", "format_v5"])
def test_layouts_parsed_at_once_equal_the_messages(tmp_path, fixture):
    """FastBatchReader.layouts parses every batch message with numpy gathers (SQL scans): row counts, field nodes,
    body buffers and body positions equal what the per-message flatbuffers walk (``layout``) reads; a message
    pointing outside the file is Damaged, not a read out of bounds."""
    import numpy as np

    from gamestore.ipc_messages import Damaged, parse_messages

    checked = 0
    for _, reader, fast in _fast_readers(tmp_path, fixture, games=6, seed=7, batch_rows=64):
        n = reader.num_batches
        for indices in (list(range(n)), [n - 1], list(range(n))[::2]):
            got = fast.layouts(indices)
            for j, i in enumerate(indices):
                rows, nodes, bufs, body = fast.layout(i)
                assert got.rows[j] == rows and got.body[j] == body
                assert [tuple(x) for x in got.nodes[j].tolist()] == list(nodes)
                assert [tuple(x) for x in got.bufs[j].tolist()] == list(bufs)
                checked += 1
        blocks = np.asarray(fast._blocks, dtype=np.int64).reshape(-1, 3)
        blocks[:, 0] = len(fast._map) - 2  # every message "starts" two bytes before the end of the file
        with pytest.raises(Damaged):
            parse_messages(np.frombuffer(fast._map, dtype=np.uint8), blocks)
        reader.close()
    assert checked >= 3


def test_dictionaries_are_shared_between_shards_only_when_their_messages_match(tmp_path):
    """A store's shards repeat the same small dictionaries: a scan decodes a dictionary message once per process
    and hands the same array to every shard whose message has the same bytes; a shard with other values gets its
    own, equal to what Arrow's reader reads (a wrong share would show as wrong strings in SQL)."""
    import duckdb
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from gamestore.ipc_batch import _dictionaries

    def copy(suffix: str, move_type: str | None = None) -> list[dict]:
        out = synth.games(2, seed=11)
        for g in out:
            g["game_id"] += suffix
            if move_type is not None:
                g["moves"][0]["move_type"] = move_type
        return out

    with gamestore.open(tmp_path / "s", fsync=False) as s:
        for games in (copy("-a"), copy("-b", "a_move_type_only_here"), copy("-c")):
            s.write_games(games)
            s.flush()
        got = s.sql("SELECT move_type, count(*) FROM moves GROUP BY 1 ORDER BY 1").fetchall()
    shards = sorted((tmp_path / "s" / "shards").iterdir())
    readers = [ShardReader.at(d) for d in shards]
    k = readers[0].moves_schema.get_field_index("move_type")
    dicts = [r.fast_reader().column_dictionaries(k) for r in readers]
    for d, r in zip(shards, dicts):
        want: list = []
        _dictionaries(ipc.open_file(pa.memory_map(str(d / MOVES_FILE))).get_record_batch(0).column(k), want)
        assert len(r) == len(want) and all(a.equals(b) for a, b in zip(r, want))
    assert dicts[0][0] is dicts[2][0]  # the same message bytes: decoded once
    assert "a_move_type_only_here" in dicts[1][0].to_pylist() and not dicts[1][0].equals(dicts[0][0])
    tables = [ipc.open_file(pa.memory_map(str(d / MOVES_FILE))).read_all().select(["move_type"]) for d in shards]
    plain = duckdb.connect()
    plain.register("arrow_moves", pa.concat_tables([t.cast(pa.schema([pa.field("move_type", pa.string())]))
                                                    for t in tables]))
    assert got == plain.sql("SELECT move_type, count(*) FROM arrow_moves GROUP BY 1 ORDER BY 1").fetchall()
    for r in readers:
        r.close()
