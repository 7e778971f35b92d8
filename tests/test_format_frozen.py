"""Frozen shards of every published format version (tests/fixtures/format_v1 ... format_v5) keep reading, equal to what was written."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.ipc as ipc
import pytest

import gamestore
from gamestore.ops import verify_store
from gamestore.records import games_equal
from gamestore.schema import FORMAT_VERSION, GAMES_SCHEMA, moves_schema, VectorSpec

from fixtures.make_format_v1 import from_json, records

FIXTURES = Path(__file__).parent / "fixtures"
VERSIONS = (1, 2, 3, 4, 5)


@pytest.fixture(params=VERSIONS)
def version(request):
    return request.param


@pytest.fixture()
def FIXTURE(version):
    return FIXTURES / f"format_v{version}"


@pytest.fixture()
def frozen_store(tmp_path, FIXTURE):
    dst = tmp_path / "store"
    shutil.copytree(FIXTURE / "store", dst)
    return dst


def test_every_published_version_has_a_fixture():
    assert FORMAT_VERSION == max(VERSIONS), "a new format version needs its own frozen fixture and a reader for the old ones"


def test_frozen_shards_read_back_equal(frozen_store, FIXTURE):
    expected = from_json(json.loads((FIXTURE / "expected.json").read_text()))
    with gamestore.open(frozen_store, create=False) as store:
        assert store.count_games() == len(expected)
        for rec in expected:
            assert games_equal(store.get_game(rec["game_id"]), rec)


def test_expected_is_still_the_canonical_form_of_the_inputs(FIXTURE):
    vectors = {"heuristic_features": VectorSpec("heuristic_features", (49,))}
    expected = from_json(json.loads((FIXTURE / "expected.json").read_text()))
    assert all(games_equal(gamestore.normalize_game(r, vectors=vectors), e) for r, e in zip(records(), expected))


def test_frozen_schema_matches_the_current_writer(frozen_store, version):
    shard = next((frozen_store / "shards").iterdir())
    moves = ipc.open_file(shard / "moves.arrow").schema
    games = ipc.open_file(shard / "games.arrow").schema
    vectors = {"heuristic_features": VectorSpec("heuristic_features", (49,))}
    assert moves.remove_metadata().equals(moves_schema(vectors).remove_metadata(), check_metadata=False)
    assert games.remove_metadata().equals(GAMES_SCHEMA.remove_metadata(), check_metadata=False)
    assert moves.metadata[b"gamestore.format_version"] == str(version).encode()


def test_frozen_store_verifies(frozen_store):
    assert verify_store(frozen_store).ok


def _raw_buffers(path: Path, only: frozenset[int] | None = None) -> tuple[int, int]:
    """(buffers stored uncompressed, buffers) over the record batches of an IPC file (``only``: at these positions
    among a batch's body buffers)."""
    import struct

    from gamestore.ipc_batch import fast_reader

    reader = ipc.open_file(path)
    fast = fast_reader(str(path), reader)
    assert fast is not None
    raw = total = 0
    try:
        for i in range(reader.num_record_batches):
            _, _, bufs, body = fast.point_layout(i)
            for k, (off, size) in enumerate(bufs.reshape(-1, 2).tolist()):
                if size and (only is None or k in only):
                    total += 1
                    raw += struct.unpack_from("<q", fast.view, body + off)[0] == -1
    finally:
        fast.close()
    return raw, total


def test_uncompressed_buffers_only_from_version_4(frozen_store, version):
    shard = next((frozen_store / "shards").iterdir())
    raw, total = _raw_buffers(shard / "moves.arrow")
    assert total > 0
    if version >= 4:  # the random float32 values (probabilities, features) do not shrink under zstd
        assert 0 < raw < total
    else:
        assert raw == 0


def test_category_indices_uncompressed_only_from_version_5(frozen_store, version):
    """phase's and move_type's int16 dictionary indices are stored raw from version 5 on (ipc_write.RAW_INDICES_BELOW)."""
    from gamestore.ipc_messages import field_starts

    path = next((frozen_store / "shards").iterdir()) / "moves.arrow"
    schema = ipc.open_file(path).schema
    starts = field_starts(schema)
    at = frozenset(starts[schema.get_field_index(n)][1] + 1 for n in ("phase", "move_type"))  # (validity, indices)
    raw, total = _raw_buffers(path, at)
    assert total > 0
    assert raw == (total if version >= 5 else 0)
