"""The catalog checkpoint: written, read, rebuilt when damaged or missing; bounded refresh; many shards."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

import gamestore
from gamestore.storage import Storage
from gamestore import catalog as catalog_mod
from gamestore import checkpoint as ckpt
from gamestore.ops.integrity import verify_store
from gamestore.manyshards import make_store_of_shards

pytestmark = pytest.mark.single_backend


def _pointer(root: Path) -> dict:
    return json.loads((root / "catalog" / ckpt.LAST_CHECKPOINT).read_text())


def _game_ids(store) -> list[str]:
    return sorted(store.query_games(columns=["game_id"]).column("game_id").to_pylist())


@pytest.fixture
def many(tmp_path) -> Path:
    root = tmp_path / "store"
    make_store_of_shards(root, 150, games_per_shard=2)
    return root


def test_open_writes_checkpoint_and_next_open_reads_only_it(many, monkeypatch):
    with gamestore.open(many, create=False) as s:
        assert s.count_games() == 300
    pointer = _pointer(many)
    assert pointer["shards"] == 150 and pointer["games"] == 300
    # a second open reads no segment and no manifest: only the checkpoint and the listing
    calls = []
    monkeypatch.setattr(catalog_mod.Catalog, "_load", lambda self, sid: calls.append(sid))
    with gamestore.open(many, create=False) as s:
        assert s.count_games() == 300
        assert s.count_moves() == 1200
        assert s.get_game("g00000123-0001")["game_id"] == "g00000123-0001"
    assert calls == []


def test_tail_after_checkpoint_and_removed_shards(many):
    with gamestore.open(many, create=False) as s:
        assert s.count_games() == 300
    new = make_store_of_shards(many, 5, games_per_shard=2, prefix="t", first=1000)
    gone = sorted(os.listdir(many / "shards"))[:3]
    for sid in gone:
        shutil.rmtree(many / "shards" / sid)
    with gamestore.open(many, create=False) as s:
        assert s.count_games() == 300 + 10 - 6
        ids = set(_game_ids(s))
        assert {f"t{1000 + i:08d}-0000" for i in range(5)} <= ids
        assert not any(sid in s.catalog.shard_ids() for sid in gone)
        assert all(sid in s.catalog.shard_ids() for sid in new)
        assert s.sql("SELECT count(*) FROM shards").fetchall()[0][0] == 152


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete_file", "delete_pointer", "bad_pointer"])
def test_damaged_or_missing_checkpoint_is_rebuilt(many, damage):
    with gamestore.open(many, create=False) as s:
        expect = _game_ids(s)
    pointer = _pointer(many)
    games_file = many / "catalog" / ckpt.CHECKPOINT_DIR / f"{pointer['name']}.games.parquet"
    if damage == "flip":
        data = bytearray(games_file.read_bytes())
        data[len(data) // 2] ^= 0xFF
        games_file.write_bytes(bytes(data))
    elif damage == "truncate":
        games_file.write_bytes(games_file.read_bytes()[:100])
    elif damage == "delete_file":
        games_file.unlink()
    elif damage == "delete_pointer":
        (many / "catalog" / ckpt.LAST_CHECKPOINT).unlink()
    else:
        (many / "catalog" / ckpt.LAST_CHECKPOINT).write_text("{not json")
    assert ckpt.read_checkpoint(Storage.from_location(many), catalog_mod.SEGMENT_SCHEMA) is None
    assert verify_store(many).ok == (damage == "delete_pointer")
    with gamestore.open(many, create=False) as s:
        assert _game_ids(s) == expect
    rebuilt = ckpt.read_checkpoint(Storage.from_location(many), catalog_mod.SEGMENT_SCHEMA)
    assert rebuilt is not None and rebuilt.name != pointer["name"] and rebuilt.games.num_rows == 300


def test_missing_segments_rebuilt_from_shards(many):
    for seg in (many / "catalog").glob("*.parquet"):
        seg.unlink()
    with gamestore.open(many, create=False) as s:
        assert s.count_games() == 300
    assert len(list((many / "catalog").glob("*.parquet"))) == 150
    assert verify_store(many).ok


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "other_shard"])
def test_damaged_segment_of_a_tail_shard_is_rebuilt(many, damage):
    """A segment read at open (a shard after the checkpoint) that is damaged or another shard's is rebuilt."""
    with gamestore.open(many, create=False) as s:
        assert s.count_games() == 300
    new = make_store_of_shards(many, 4, games_per_shard=2, prefix="t", first=1000)
    seg = many / "catalog" / f"{new[1]}.parquet"
    data = seg.read_bytes()
    if damage == "flip":
        # a byte of a value: verify checks a segment by what it holds (schema and every value against the
        # shard), so a flip in bytes no reader uses (statistics, page header sizes) is harmless and not reported
        at = data.find(b"t00001001-0001")
        assert at > 0
        seg.write_bytes(data[:at + 5] + bytes([data[at + 5] ^ 0x01]) + data[at + 6:])
    elif damage == "truncate":
        seg.write_bytes(data[:100])
    elif damage == "empty":
        seg.write_bytes(b"")
    else:
        seg.write_bytes((many / "catalog" / f"{new[2]}.parquet").read_bytes())
    assert not verify_store(many).ok
    with gamestore.open(many, create=False) as s:
        assert s.count_games() == 308
        assert s.get_game("t00001001-0001")["game_id"] == "t00001001-0001"
        assert s.sql(f"SELECT count(*) FROM games WHERE shard_id = '{new[1]}'").fetchall()[0][0] == 2
    assert verify_store(many).ok  # rewritten from the shard


def test_checkpoint_and_every_segment_lost_rebuilt_from_shards(many):
    with gamestore.open(many, create=False) as s:
        expect = _game_ids(s)
    shutil.rmtree(many / "catalog")
    with gamestore.open(many, create=False) as s:
        assert _game_ids(s) == expect
        assert s.count_moves() == 1200
    assert ckpt.read_checkpoint(Storage.from_location(many), catalog_mod.SEGMENT_SCHEMA).shards.num_rows == 150
    assert verify_store(many).ok


def test_refresh_is_bounded_and_catches_up_in_background(many, monkeypatch):
    monkeypatch.setattr(catalog_mod, "CHECKPOINT_TAIL", 10**9)
    with gamestore.open(many, create=False) as reader:
        assert reader.count_games() == 300
        make_store_of_shards(many, 250, games_per_shard=1, prefix="n", first=5000)
        loaded = []
        orig = catalog_mod.Catalog._load

        def counting(self, sid):
            loaded.append(sid)
            time.sleep(0.002)  # slow the background thread so the first step is observable
            return orig(self, sid)

        monkeypatch.setattr(catalog_mod.Catalog, "_load", counting)
        first = reader.count_games()
        # the call waited for at most one step; it answered from a consistent snapshot
        assert len(loaded) <= 2 * catalog_mod.REFRESH_STEP_SHARDS
        assert 300 <= first <= 550
        deadline = time.monotonic() + 60
        counts = [first]
        while reader.count_games() < 550 and time.monotonic() < deadline:
            counts.append(reader.count_games())
            time.sleep(0.01)
        assert reader.count_games() == 550
        assert counts == sorted(counts)  # never goes down
        assert len(set(loaded)) == 250


def test_forced_refresh_and_unknown_game_catch_up_fully(many):
    with gamestore.open(many, create=False) as reader:
        make_store_of_shards(many, 200, games_per_shard=1, prefix="f", first=7000)
        assert reader.get_game("f00007199-0000")["game_id"] == "f00007199-0000"
        make_store_of_shards(many, 200, games_per_shard=1, prefix="h", first=9000)
        reader.refresh()
        assert len(reader) == 700


def test_checkpoint_written_when_tail_long(many, monkeypatch):
    monkeypatch.setattr(catalog_mod, "CHECKPOINT_TAIL", 20)
    with gamestore.open(many, create=False):
        pass
    first = _pointer(many)["name"]
    with gamestore.open(many, create=False) as s:
        make_store_of_shards(many, 30, prefix="c", first=3000)
        s.refresh()
        assert s.count_games() == 330
    pointer = _pointer(many)  # close() waited for the checkpoint thread
    assert pointer["name"] != first and pointer["shards"] == 180


def test_thousands_of_shards(tmp_path, monkeypatch):
    root = tmp_path / "big"
    make_store_of_shards(root, 2000)
    with gamestore.open(root, create=False) as s:
        assert s.count_games() == 2000
    loaded = []
    monkeypatch.setattr(catalog_mod.Catalog, "_load", lambda self, sid: loaded.append(sid))
    with gamestore.open(root, create=False) as s:  # from the checkpoint: no per-shard work at open
        assert s.count_games() == 2000
        assert s.get_game("g00001999-0000")["game_id"] == "g00001999-0000"
        assert s.sql("SELECT count(DISTINCT game_id), count(*) FROM moves").fetchall()[0] == (2000, 8000)
        assert s.info()["shards"] == 2000
    assert loaded == []


def test_made_checkpoint_equals_the_one_an_open_writes(tmp_path):
    """``make_store_of_shards(checkpoint=True)`` (what the 100,000-shard benchmark opens) writes what an open would."""
    root = tmp_path / "made"
    make_store_of_shards(root, 30, games_per_shard=3, checkpoint=True)
    made = ckpt.read_checkpoint(Storage.from_location(root), catalog_mod.SEGMENT_SCHEMA)
    assert made is not None and made.shards.num_rows == 30
    shutil.rmtree(root / "catalog" / ckpt.CHECKPOINT_DIR)
    (root / "catalog" / ckpt.LAST_CHECKPOINT).unlink()
    gamestore.open(root, create=False).close()  # rebuilt from the segments
    opened = ckpt.read_checkpoint(Storage.from_location(root), catalog_mod.SEGMENT_SCHEMA)
    assert opened is not None
    assert made.games.sort_by("game_id").equals(opened.games.sort_by("game_id"))
    assert made.shards.sort_by("shard_id").equals(opened.shards.sort_by("shard_id"))
    with pytest.raises(ValueError, match="new store"):
        make_store_of_shards(root, 1, checkpoint=True)


def test_checkpoint_read_with_some_columns_reads_the_others_on_call(many):
    with gamestore.open(many, create=False) as s:
        assert s.count_games() == 300
    storage = Storage.from_location(many)
    whole = ckpt.read_checkpoint(storage, catalog_mod.SEGMENT_SCHEMA)
    some = ckpt.read_checkpoint(storage, catalog_mod.SEGMENT_SCHEMA, columns=catalog_mod.KEY_COLUMNS)
    assert whole is not None and some is not None and whole.all_games is None and some.all_games is not None
    assert some.games.column_names == list(catalog_mod.KEY_COLUMNS)
    assert some.games.equals(whole.games.select(list(catalog_mod.KEY_COLUMNS)))
    assert some.all_games().equals(whole.games) and some.shards.equals(whole.shards)


def test_open_reads_the_checkpoints_other_game_columns_when_a_statement_needs_them(many):
    """Opening from a checkpoint reads only the key columns of the games (where their moves are); statements over
    ``moves``, counts and point reads need no other; the first statement over ``games`` reads them, and every
    answer equals a handle's whose columns were all read at open."""
    statements = [
        "SELECT * FROM games ORDER BY game_id",
        "SELECT * FROM players ORDER BY game_id, player_number",
        "SELECT g.board_type, g.winner, count(*) FROM moves m JOIN games g USING (game_id) GROUP BY 1, 2 ORDER BY 1, 2",
    ]
    with gamestore.open(many, create=False) as s:
        s.catalog._snap.rows  # every column read
        expect = [s.sql(q).fetchall() for q in statements]
        expect_game = s.get_game("g00000123-0001")
    with gamestore.open(many, create=False) as s:
        snap = s.catalog._snap
        assert not snap.loaded and snap.visible_keys.column_names == list(catalog_mod.KEY_COLUMNS)
        assert s.sql("SELECT count(*), sum(move_number) FROM moves").fetchall()[0][0] == 1200
        assert s.count_games() == 300 and s.count_moves() == 1200 and len(s.catalog) == 300
        assert s.get_game("g00000123-0001") == expect_game
        assert s.sql("SELECT count(*) FROM moves WHERE game_id = 'g00000123-0001'").fetchall() == [(4,)]
        assert not snap.loaded
        assert [s.sql(q).fetchall() for q in statements] == expect
        assert snap.loaded and s.catalog._snap is snap and snap.visible is snap.rows
        assert snap.rows.schema.equals(catalog_mod.SEGMENT_SCHEMA) and snap.rows.num_rows == 300


def test_a_checkpoint_with_a_game_twice_is_read_whole_at_open(many):
    """Where a game id has two rows (a copy in a second shard) the visible copies are chosen at open from every
    column, as before: nothing is deferred."""
    with gamestore.open(many, create=False) as s:
        moves = s.count_moves()
    original = sorted((many / "shards").iterdir())[1]
    shutil.copytree(original, many / "shards" / "20000101T000000000000-1-00000000")
    with gamestore.open(many, create=False) as s:
        assert s.catalog.write_checkpoint() is not None
    with gamestore.open(many, create=False) as s:
        snap = s.catalog._snap
        assert snap.covered == 151 and snap.loaded and snap.rows.num_rows == 302 and snap.visible.num_rows == 300
        assert s.count_games() == 300 and s.sql("SELECT count(*) FROM moves").fetchall() == [(moves,)]
        assert s.sql("SELECT count(DISTINCT game_id), count(*) FROM games").fetchall() == [(300, 300)]


def test_game_ids_are_told_distinct_by_their_hashes_and_a_repeat_by_the_set():
    import pyarrow as pa

    from gamestore import catalog_snapshot
    from gamestore.checksum import _XXH3

    ids = pa.array([f"g{i:08d}-0001" for i in range(1000)] + ["x"], pa.string())
    assert (catalog_snapshot._id_hashes(pa.chunked_array([ids])) is not None) == bool(_XXH3)
    cases = {
        "distinct": (pa.chunked_array([ids]), True),
        "slices of chunks": (pa.chunked_array([ids.slice(3, 500), ids.slice(503, 400)]), True),
        "a repeat across chunks": (pa.chunked_array([ids.slice(0, 600), ids.slice(599, 10)]), False),
        "a repeat in a slice": (pa.chunked_array([ids.slice(500, 10), ids.slice(505, 1)]), False),
        "a repeat in a chunk": (pa.chunked_array([pa.concat_arrays([ids, ids.slice(7, 1)])]), False),
        "large strings": (pa.chunked_array([ids.cast(pa.large_string())]), True),
        "empty chunks": (pa.chunked_array([ids.slice(0, 0), ids], pa.string()), True),
        "a null": (pa.chunked_array([pa.array(["a", None, "b"], pa.string())]), True),
    }
    for name, (column, distinct) in cases.items():
        assert catalog_snapshot._all_distinct(column) is distinct, name
        assert (len(set(column.to_pylist())) == len(column)) is distinct, name
