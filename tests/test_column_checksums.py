"""Per-column checksums of format 3 (gamestore/checksum.py): a scan hashes only the columns it reads, and a
damaged byte in any column's data is still found by the scans that read it and by ``gamestore verify``."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import gamestore
from gamestore.errors import QueryError
from gamestore.ipc_messages import field_starts, parse_messages
from gamestore.ops import verify_store
from gamestore.shard import MANIFEST, MOVES_FILE, ShardReader
from gamestore.testing import synth

pytestmark = pytest.mark.single_backend  # the checksums and the scan do not depend on the encoder backend


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colsums") / "store"
    with gamestore.open(root, fsync=False, vectors=synth.VECTORS, batch_rows=256) as s:
        s.write_games(synth.iter_games(8, seed=4))
        s.flush()
    return root


def _column_ranges(shard: Path, batch: int) -> dict[str, tuple[int, int]]:
    """Each moves column's byte range in record batch ``batch`` (from the file's own message and the manifest)."""
    reader = ShardReader.at(shard)
    fast = reader.fast_reader()
    schema = reader.moves_schema
    lay = fast.layouts([batch])
    off, length, _ = reader.manifest["files"][MOVES_FILE]["checksums"]["batches"][batch]
    body = int(lay.body[0])
    firsts = [b for _, b, _ in field_starts(schema)]
    bounds = [0, *lay.bufs[0, firsts[1:], 0].tolist(), off + length - body]
    reader.close()
    return {name: (body + a, body + b) for name, a, b in zip(schema.names, bounds, bounds[1:])}


def _flip(path: Path, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x41]))


def test_written_shards_carry_column_checksums_that_verify(written):
    shard = next((written / "shards").iterdir())
    manifest = json.loads((shard / MANIFEST).read_text())
    assert manifest["format_version"] == gamestore.FORMAT_VERSION >= 3
    for name in ("moves.arrow", "games.arrow"):
        sums = manifest["files"][name]["checksums"]
        assert len(sums["columns"]) == len(sums["batches"]) >= 1
    assert len(manifest["files"][MOVES_FILE]["checksums"]["batches"]) >= 2
    assert verify_store(written).ok


def test_a_flipped_byte_in_any_column_is_found_by_the_scan_reading_it_and_by_verify(written, tmp_path):
    shard = next((written / "shards").iterdir())
    ranges = _column_ranges(shard, 1)
    tried = 0
    for k, (name, (a, b)) in enumerate(ranges.items()):
        if a == b:
            continue  # no bytes (every buffer of the column empty in this batch)
        root = tmp_path / f"s{k}"
        shutil.copytree(written, root)
        victim = root / "shards" / shard.name
        _flip(victim / MOVES_FILE, (a + b) // 2)
        with gamestore.open(root, create=False) as s:
            expected = s.count_games()
            with pytest.raises(QueryError) as info:
                s.sql(f'SELECT count("{name}") FROM moves').fetchall()
            text = str(info.value)
            assert shard.name in text and MOVES_FILE in text, name
            assert shard.name in s.catalog.damage(), name  # quarantined: the next statements run without it
            assert s.sql("SELECT count(*) FROM moves").fetchall() == [(0,)] and expected == 8
        report = verify_store(root)
        assert not report.ok and shard.name in report.damaged_shards, name
        tried += 1
    assert tried >= 30


def test_a_scan_hashes_only_the_columns_it_reads(written, tmp_path):
    """A byte flipped in a column the statement does not read costs nothing to that statement (the column's
    bytes are never hashed nor decompressed); a statement reading it fails; verify names it."""
    root = tmp_path / "s"
    shutil.copytree(written, root)
    shard = root / "shards" / next((written / "shards").iterdir()).name
    a, b = _column_ranges(shard, 0)["engine_pv"]
    assert b > a
    _flip(shard / MOVES_FILE, (a + b) // 2)
    with gamestore.open(root, create=False) as s:
        ok = s.sql("SELECT phase, count(*), sum(think_time_ms) FROM moves GROUP BY 1 ORDER BY 1").fetchall()
        assert sum(r[1] for r in ok) == s.count_moves()
        with pytest.raises(QueryError, match="engine_pv"):
            s.sql("SELECT count(engine_pv) FROM moves").fetchall()


def test_verify_checks_the_column_checksums_themselves(written, tmp_path):
    """A column checksum that does not match its bytes (here: the manifest's, the files intact) is damage for
    verify, named by column and batch."""
    root = tmp_path / "s"
    shutil.copytree(written, root)
    shard = root / "shards" / next((written / "shards").iterdir()).name
    manifest = json.loads((shard / MANIFEST).read_text())
    meta, digests = manifest["files"][MOVES_FILE]["checksums"]["columns"][1]
    k = 1 + ShardReader.at(shard).moves_schema.get_field_index("move_type")
    wrong = digests[:16 * k] + ("0" if digests[16 * k] != "0" else "1") + digests[16 * k + 1:]
    manifest["files"][MOVES_FILE]["checksums"]["columns"][1] = [meta, wrong]
    (shard / MANIFEST).write_text(json.dumps(manifest))
    report = verify_store(root)
    assert not report.ok
    assert any("move_type" in p and "batch 1" in p for p in report.damaged_shards[shard.name])


def test_messages_outside_the_file_are_damage_not_reads(written):
    shard = next((written / "shards").iterdir())
    reader = ShardReader.at(shard)
    fast = reader.fast_reader()
    blocks = np.asarray(fast._blocks, dtype=np.int64).reshape(-1, 3)
    blocks[:, 0] += 1 << 40
    from gamestore.ipc_batch import Damaged

    with pytest.raises(Damaged):
        parse_messages(np.frombuffer(fast._map, dtype=np.uint8), blocks)
    reader.close()


def test_the_fast_reader_reads_through_the_verifiers_mapping_and_close_unmaps_it(written):
    """One mapping of moves.arrow per local shard: the checks' pages are the fast reader's (a first scan faulted
    every message and column in twice, once per mapping), and ``close`` still unmaps the file."""
    import mmap

    shard = next((written / "shards").iterdir())
    reader = ShardReader.at(shard)
    verifier = reader.verifier(MOVES_FILE)
    fast = reader.fast_reader()
    assert verifier is not None and fast is not None
    mapping = verifier._map
    assert isinstance(mapping, mmap.mmap)
    address = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
    assert np.frombuffer(fast.view, dtype=np.uint8).ctypes.data == address
    assert fast.read(0).num_rows == reader.manifest["batch_rows"][0]
    reader.close()
    assert mapping.closed
