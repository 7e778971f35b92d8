"""The one read path (gamestore/readpath.py): selection -> picks -> batches, typed errors, layering."""
from __future__ import annotations

import ast
import gc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import gamestore
from gamestore import ipc_batch, pointread, readpath, shard
from gamestore.testing import synth
from gamestore.errors import QueryError, ShardCorruptError
from gamestore.records import games_equal

from helpers.crafted import CRAFTS, reseal

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def store(tmp_path):
    with gamestore.open(tmp_path / "s", profile="ringrift", vectors=synth.VECTORS, batch_rows=64, shard_games=6) as s:
        s.write_games(synth.games(20, seed=3))
        s.flush()
        yield s


def _fresh_caches(monkeypatch):
    monkeypatch.setattr(shard, "BATCH_CACHE", shard.LRUCache(64 << 20))
    monkeypatch.setattr(shard, "ROW_CACHE", shard.LRUCache(1000))


def test_selection_matches_the_catalog(store):
    sel = store.select_games("num_moves > 30", columns=["game_id"])
    expect = store.game_locations("num_moves > 30")
    assert len(sel) == expect.num_rows > 0
    assert sorted(sel.columns["game_id"].tolist()) == sorted(expect.column("game_id").to_pylist())
    picks = sel.picks()
    assert [p.shard_id for p in picks] == sel.shard_ids == sorted(set(expect.column("shard_id").to_pylist()))
    for p in picks:
        reader = store.catalog.reader(p.shard_id)
        assert (np.diff(p.offsets) >= 0).all()
        for gid, row, off, cnt in zip(p.columns["game_id"], p.rows, p.offsets, p.counts):
            loc = store.catalog.locate(gid)
            assert (loc.shard_id, loc.row, loc.move_offset, loc.num_moves) == (p.shard_id, row, off, cnt)
            assert reader.game_row(int(row))["game_id"] == gid


def test_selection_from_rows_in_any_order(tmp_path):
    """Catalog tables are in indexing order, not shard id order (a shard with a lower id may be indexed later):
    a selection cut from such rows still picks every game, each in its own shard, in move order."""
    with gamestore.open(tmp_path / "s", vectors=synth.VECTORS, batch_rows=64) as store:
        for k in range(3):
            store.write_games(synth.games(6, seed=10 + k))
            store.flush()
        locs = store.catalog.select_games(columns=["game_id"])
    assert len(set(locs.column("shard_id").to_pylist())) >= 3
    expect = readpath.selection_from_table(locs.sort_by([("shard_id", "ascending"), ("move_offset", "ascending")]),
                                           ["game_id"])
    shuffled = locs.take(pa.array(np.random.default_rng(5).permutation(locs.num_rows)))
    for table in (shuffled, locs.sort_by([("shard_id", "descending"), ("move_offset", "descending")])):
        got = readpath.selection_from_table(table, ["game_id"])
        assert [p.shard_id for p in got.picks()] == [p.shard_id for p in expect.picks()]
        for p, q in zip(got.picks(), expect.picks()):
            assert p.rows.tolist() == q.rows.tolist() and p.offsets.tolist() == q.offsets.tolist()
            assert p.counts.tolist() == q.counts.tolist() and p.columns["game_id"].tolist() == q.columns["game_id"].tolist()
        assert sum(p.num_games for p in got.picks()) == locs.num_rows


def test_shard_batches_hold_exactly_the_picked_moves(store):
    sel = store.select_games("winner = 1", columns=["game_id"])
    for pick in sel.picks():
        reader = store.catalog.reader(pick.shard_id)
        batches = list(readpath.shard_batches(reader, pick, columns=["game_id", "move_number"]))
        got = pa.Table.from_batches(batches) if batches else None
        assert got is not None and got.num_rows == pick.num_moves
        assert set(got.column("game_id").to_pylist()) == set(pick.columns["game_id"].tolist())
    total = sum(b.num_rows for b in store.scan_moves("winner = 1", columns=["move_number"], batch_size=7))
    assert total == store.count_moves("winner = 1")


def test_iter_games_decodes_the_picked_games(store):
    sel = store.select_games("num_players = 2", columns=["game_id"])
    got = {}
    for pick in sel.picks():
        for g in readpath.iter_games(store.catalog.reader(pick.shard_id), pick):
            got[g["game_id"]] = g
    assert len(got) == len(sel)
    for gid, g in got.items():
        assert games_equal(g, store.get_game(gid))


def test_locate_batches():
    idx, first, straddles = readpath.locate_batches([3, 3, 4], np.array([0, 3, 5, 6, 10]), np.array([3, 2, 2, 4, 0]))
    assert idx.tolist() == [0, 1, 1, 2, 2]
    assert first.tolist() == [0, 3, 3, 6, 6]
    assert straddles.tolist() == [False, False, True, False, False]


def test_unknown_move_column_is_a_query_error(store):
    with pytest.raises(QueryError, match="unknown move columns"):
        next(store.scan_moves(columns=["no_such_column"]))


def _batch_reads_only(monkeypatch):
    """get_game reads whole batches (the path of the pure-Python backend, and of the compiled one where the point
    reader does not apply)."""
    monkeypatch.setattr(pointread, "decode", lambda *args, **kwargs: None)


def test_fast_reader_unsupported_falls_back_to_arrow(store, monkeypatch):
    _fresh_caches(monkeypatch)
    _batch_reads_only(monkeypatch)

    def unsupported(self, index):
        raise ipc_batch.Unsupported("a layout this reader does not handle")

    monkeypatch.setattr(ipc_batch.FastBatchReader, "_read", unsupported)
    gid = store.query_games(columns=["game_id"], limit=1).column("game_id")[0].as_py()
    assert store.get_game(gid)["game_id"] == gid


def test_fast_reader_damage_is_a_typed_error_not_swallowed(store, monkeypatch):
    """A failure of the hand-written reader is not hidden behind Arrow's reader (which would read this batch)."""
    pytest.importorskip("zstandard")
    _fresh_caches(monkeypatch)
    _batch_reads_only(monkeypatch)

    def damaged(self, index):
        raise ipc_batch._ZstdError("Corrupted block detected")

    monkeypatch.setattr(ipc_batch.FastBatchReader, "_read", damaged)
    gid = store.query_games(columns=["game_id"], limit=1).column("game_id")[0].as_py()
    with pytest.raises(ShardCorruptError, match="moves.arrow batch") as info:
        store.get_game(gid)
    assert isinstance(info.value.__cause__, ipc_batch.Damaged)


def test_damaged_moves_file_gives_typed_errors(store, monkeypatch):
    """Garbage in the middle of moves.arrow: every read of an affected game is a ShardCorruptError."""
    _fresh_caches(monkeypatch)
    sid = store.catalog.shard_ids()[0]
    path = store.path / "shards" / sid / shard.MOVES_FILE
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 256] = bytes(range(256))
    path.write_bytes(bytes(data))
    reader = store.catalog.reader(sid)
    ids = reader.manifest["game_ids"]
    failures = 0
    for gid in ids:
        try:
            store.get_game(gid)
        except ShardCorruptError as exc:
            assert exc.shard_id == sid
            failures += 1
    assert failures > 0
    assert sid in store.catalog.damage() and store.catalog.find_reader(sid) is None  # quarantined
    pick = readpath.pick_rows(reader, range(len(ids)))
    with pytest.raises(ShardCorruptError):
        for _ in readpath.shard_batches(reader, pick):
            pass


@pytest.mark.parametrize("craft", ["dictionary index past the dictionary", "list offsets decreasing",
                                   "JSON text that does not parse"])
def test_crafted_shard_with_valid_checksums_is_typed(backend, tmp_path, monkeypatch, craft):
    """A moves.arrow whose checksums were computed over damaged batches (a crafted shard): get_game and the decoding
    iterator raise ShardCorruptError naming shard and file; the other shard's games read back equal."""
    _fresh_caches(monkeypatch)
    games = synth.games(4, seed=11)
    with gamestore.open(tmp_path / "s", vectors=synth.VECTORS) as s:
        for pair in (games[:2], games[2:]):
            s.write_games(pair)
            s.flush()
        sid = s.catalog.locate(games[0]["game_id"]).shard_id
    victim = tmp_path / "s" / "shards" / sid
    reader = shard.ShardReader.at(victim)
    reseal(victim, [CRAFTS[craft](reader.batch(i)) for i in range(reader.num_batches)])
    reader.close()
    with gamestore.open(tmp_path / "s", create=False) as s:
        locations = {g["game_id"]: s.catalog.locate(g["game_id"]) for g in games}
        for g in games:
            loc = locations[g["game_id"]]
            if loc.shard_id != sid:
                assert games_equal(s.get_game(g["game_id"]), g)
            elif loc.move_offset == 0:  # the damage is in the first rows of batch 0: this game's
                with pytest.raises(ShardCorruptError, match="moves.arrow batch 0: damaged moves batch") as err:
                    s.get_game(g["game_id"])
                assert err.value.shard_id == sid
            else:  # the reference validates the whole batch at once, the compiled decoder each row it reads
                try:
                    assert games_equal(s.get_game(g["game_id"]), g)
                except ShardCorruptError as exc:
                    assert exc.shard_id == sid
        assert sid in s.catalog.damage()  # quarantined by the first failed read
    r = shard.ShardReader.at(victim)
    with pytest.raises(ShardCorruptError, match="moves.arrow batch 0") as err:
        list(readpath.iter_games(r, readpath.pick_rows(r, [0, 1])))
    assert err.value.shard_id == sid


def test_open_ipc_checks_the_format_version(tmp_path):
    d = tmp_path / "shard-x"
    d.mkdir()
    table = pa.table({"a": [1]}).replace_schema_metadata({b"gamestore.format_version": b"999"})
    with pa.ipc.new_file(str(d / "moves.arrow"), table.schema) as w:
        w.write_table(table)
    with pytest.raises(gamestore.errors.FormatError, match="unsupported format version"):
        shard.open_ipc(d / "moves.arrow")
    with pytest.raises(ShardCorruptError, match="gone"):
        shard.open_ipc(d / "games.arrow")


# -- layering -------------------------------------------------------------------------------------
#: modules of the storage layer and what they may never import (decoding and everything above it)
_STORAGE = ["fsutil.py", "schema.py", "ipc_batch.py", "shard.py", "errors.py", "layout.py", "profiles.py", "catalog.py"]
_ABOVE = {"codec", "backend", "store", "readpath", "ops", "cli", "ringrift", "positions", "aio", "game_writer", "testing", "ray", "report"}


def _parse(path: Path) -> ast.Module:
    # CPython 3.11 keeps the AST constructor's recursion depth in state shared by all threads (gh-106905): a GC
    # pass during the construction can run Python code, switch threads and interleave another thread's AST
    # construction, and the parse fails with "SystemError: AST constructor recursion depth mismatch" (seen once
    # in this test under load). Without GC passes no Python code runs inside the construction.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(path.read_text())
    finally:
        if enabled:
            gc.enable()


def _imports(path: Path) -> set[str]:
    tree = _parse(path)
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            mod = (node.module or "").split(".")[0]
            out.update([mod] if mod else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gamestore"):
            out.add((node.module or "").split(".")[1] if "." in (node.module or "") else "")
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("gamestore."))
    return out


@pytest.mark.parametrize("name", _STORAGE)
def test_storage_layer_never_imports_upwards(name):
    assert not (_imports(ROOT / "gamestore" / name) & _ABOVE)


def test_selection_where_may_use_profile_columns_of_the_games_view(store):
    # parity_status is computed by the games view (RingRift profile) from extra_json, not stored in the index
    assert len(store.select_games("parity_status IS NULL")) == store.count_games() == 20


def test_read_game_runs_no_collection_and_restores_the_collector(store, monkeypatch):
    """read_game builds the record with the collector off (a young collection would only walk the fresh,
    acyclic record), puts its state back as it was, also after an error, and loses no game."""
    _fresh_caches(monkeypatch)
    started: list[int] = []

    def watch(phase, info):
        if phase == "start":
            started.append(info["generation"])

    gid = store.select_games(columns=["game_id"]).columns["game_id"][0]
    loc = store.catalog.locate(gid)
    reader = store.catalog.reader(loc.shard_id)
    args = (reader, loc.row, loc.move_offset, loc.num_moves)
    old = gc.get_threshold()
    gc.callbacks.append(watch)
    try:
        gc.set_threshold(1)  # without the window, every allocation of the record would start a collection
        assert gc.isenabled()
        game = readpath.read_game(*args)
        during = len(started)  # read before anything else allocates (the collector is on again)
        gc.set_threshold(*old)
        assert during == 0 and gc.isenabled()
        gc.disable()
        assert games_equal(readpath.read_game(*args), game) and not gc.isenabled()  # left off
        gc.enable()
        with pytest.raises(ShardCorruptError):
            readpath.read_game(reader, loc.row, loc.move_offset, loc.num_moves + 1)  # not the catalog's row
        assert gc.isenabled()
    finally:
        gc.set_threshold(*old)
        gc.callbacks.remove(watch)
        gc.enable()
    assert game["game_id"] == gid and len(game["moves"]) == loc.num_moves
