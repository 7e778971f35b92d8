"""The moves view's source (gamestore/sqlscan.py): projection and game_id pushdown, the same rows as a plain
scan of the shard files, only the needed batches read, checksums checked, damage named."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

import gamestore
from gamestore import sqlscan
from gamestore.errors import QueryError
from gamestore.schema import moves_schema
from gamestore.testing import synth

FIXTURES = Path(__file__).parent / "fixtures"


def _norm(v):
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    return v


def _plain(store, root: Path, query: str) -> list:
    """``query`` over Arrow's own IPC dataset of every shard's moves.arrow (the reference scan)."""
    files = sorted(str(p / "moves.arrow") for p in (root / "shards").iterdir())
    con = duckdb.connect()
    con.register("moves", ds.dataset(files, format="ipc", schema=moves_schema(store.vectors)))
    return _norm(con.sql(query).fetchall())


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("sqlscan") / "store"
    with gamestore.open(root, fsync=False) as s:
        for k in range(3):  # three shards
            s.write_games(synth.iter_games(12, seed=k + 1))
            s.flush()
    return root


@pytest.fixture(params=["written", "format_v1", "format_v2", "format_v3", "format_v4", "format_v5"])
def store_root(request, written, tmp_path):
    if request.param == "written":
        return written
    dst = tmp_path / "store"
    shutil.copytree(FIXTURES / request.param / "store", dst)
    return dst


def test_every_column_equals_a_plain_scan(store_root):
    with gamestore.open(store_root, create=False) as s:
        q = "SELECT * FROM moves ORDER BY game_id, move_number"
        got = _norm(s.sql(q).fetchall())
        assert got and got == _plain(s, store_root, q)
        # projections of single columns (the concatenated and the per-batch paths) and nested columns
        for col in ("phase", "think_time_ms", "engine_eval", "timestamp", "policy", "search", "from_x"):
            q = f"SELECT game_id, move_number, {col} FROM moves ORDER BY 1, 2"
            assert _norm(s.sql(q).fetchall()) == _plain(s, store_root, q), col


def test_game_id_filters_are_pushed_down_and_exact(written, monkeypatch):
    read: list[tuple[str, list[int]]] = []
    real = sqlscan.read_columns

    def spy(reader, names, batches):
        read.append((reader.shard_id, list(batches)))
        return real(reader, names, batches)

    monkeypatch.setattr(sqlscan, "read_columns", spy)
    with gamestore.open(written, create=False) as s:
        counts = dict(s.sql("SELECT game_id, num_moves FROM games").fetchall())
        a, b, c = sorted(counts)[:3]
        read.clear()
        assert s.sql(f"SELECT count(*) FROM moves WHERE game_id = '{a}'").fetchall() == [(counts[a],)]
        assert len(read) == 1 and len(read[0][1]) == 1  # one batch of one shard
        for where, ids in [(f"game_id IN ('{a}', '{b}', 'nope')", {a, b}),
                           (f"game_id = '{a}' OR game_id = '{c}'", {a, c}),
                           (f"game_id = '{a}' AND move_number >= 2", None),
                           (f"game_id = 'nope'", set())]:
            got = s.sql(f"SELECT game_id, count(*) FROM moves WHERE {where} GROUP BY 1").fetchall()
            if ids is None:
                assert got == [(a, counts[a] - 2)]
            else:
                assert dict(got) == {g: counts[g] for g in ids}
        # not pushable: still right
        assert s.sql(f"SELECT count(*) FROM moves WHERE game_id LIKE '{a}%'").fetchall()[0][0] >= counts[a]
        joined = s.sql("SELECT count(*) FROM moves m JOIN games g USING (game_id) WHERE g.winner = 1").fetchall()
        assert joined == s.sql("SELECT sum(num_moves) FROM games WHERE winner = 1").fetchall()


def test_a_damaged_batch_is_named_and_other_games_still_read(tmp_path):
    root = tmp_path / "store"
    with gamestore.open(root, fsync=False) as s:
        s.write_games(synth.iter_games(40, seed=3))
        s.flush()
    shard = next((root / "shards").iterdir())
    manifest = json.loads((shard / "MANIFEST.json").read_text())
    sums = manifest["files"]["moves.arrow"]["checksums"]["batches"]
    assert len(sums) >= 2
    off, length, _ = sums[1]
    with open(shard / "moves.arrow", "r+b") as f:  # one byte in the middle of batch 1's compressed body
        f.seek(off + length // 2)
        byte = f.read(1)
        f.seek(off + length // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    with gamestore.open(root, create=False) as s:
        first = s.sql("SELECT game_id, num_moves FROM games ORDER BY game_id").fetchall()
        with pytest.raises(QueryError) as info:
            s.sql("SELECT * FROM moves").fetchall()  # every column: the flipped byte is in one of them
        assert shard.name in str(info.value) and "moves.arrow" in str(info.value)
        # the damage found by the scan quarantines the shard (docs/operations.md, "Damaged shards"): the next
        # statements run without its games instead of failing again
        assert "moves.arrow" in s.catalog.damage()[shard.name]
        assert s.sql("SELECT count(*) FROM games").fetchall() == [(0,)] and len(first) == 40
        assert s.sql("SELECT count(*) FROM moves").fetchall() == [(0,)]


def test_whole_shard_columns_come_from_the_cache_equal(written):
    sqlscan.COLUMN_CACHE.clear()
    with gamestore.open(written, create=False) as s:
        q = "SELECT game_id, phase, think_time_ms, policy FROM moves ORDER BY game_id, move_number"
        first = _norm(s.sql(q).fetchall())
        assert len(sqlscan.COLUMN_CACHE) > 0
        assert _norm(s.sql(q).fetchall()) == first == _plain(s, written, q)


def test_scan_columns_are_decompressed_into_the_system_pool(written):
    """A whole-shard scan's fixed-width columns live in the system allocator's Arrow pool, not pyarrow's default
    (mimalloc, which takes transparent huge pages: sqlscan._allocate), and stay there while cached."""
    if sqlscan._scan is None:
        pytest.skip("the compiled scan (_ext/_scan.pyx) is not built")
    sqlscan.COLUMN_CACHE.clear()
    pool = pa.system_memory_pool()
    with gamestore.open(written, create=False) as s:
        before = pool.bytes_allocated()
        got = s.sql("SELECT sum(think_time_ms), count(*) FROM moves").fetchall()
        grown = pool.bytes_allocated() - before
        assert _norm(got) == _plain(s, written, "SELECT sum(think_time_ms), count(*) FROM moves")
        assert grown >= 4 * s.count_moves()  # think_time_ms: int32 per move, every shard's column cached
    sqlscan.COLUMN_CACHE.clear()


def test_a_relation_keeps_its_snapshot_while_connections_are_reused(tmp_path):
    with gamestore.open(tmp_path / "store", fsync=False) as s:
        s.write_games(synth.iter_games(5, seed=1))
        s.flush()
        old = s.sql("SELECT count(*) FROM moves")
        derived = s.sql("SELECT game_id FROM games").order("game_id").limit(2)  # a relation made from another
        before = old.fetchall()
        for _ in range(20):  # connections handed back and reused
            assert s.sql("SELECT count(*) FROM games").fetchall() == [(5,)]
        s.write_games(synth.iter_games(3, seed=9))
        s.flush()
        assert s.sql("SELECT count(*) FROM games").fetchall() == [(8,)]
        assert old.fetchall() == before  # still the snapshot it was made on
        assert len(derived.fetchall()) == 2
        assert s.sql("SELECT count(*) FROM moves").fetchall()[0][0] == s.count_moves() > before[0][0]


@pytest.mark.parametrize("craft, column", [("dictionary index past the dictionary", "phase"),
                                           ("dictionary index negative", "move_type"),
                                           ("list offsets decreasing", "policy"),
                                           ("string offsets decreasing", "timestamp"),
                                           ("entry key past the dictionary", "policy")])
def test_a_crafted_shard_is_a_typed_error_and_quarantined(tmp_path, craft, column):
    """Batches whose checksums pass but whose offsets or dictionary indices are out of range (a crafted shard):
    the scan names shard and file, never hands DuckDB out-of-range data; the shard is quarantined."""
    from helpers.crafted import CRAFTS, reseal

    from gamestore.shard import ShardReader

    root = tmp_path / "store"
    with gamestore.open(root, fsync=False) as s:
        for seed in (1, 2):
            s.write_games(synth.iter_games(3, seed=seed))
            s.flush()
    victim = sorted((root / "shards").iterdir())[0]
    reader = ShardReader.at(victim)
    reseal(victim, [CRAFTS[craft](reader.batch(i)) for i in range(reader.num_batches)])
    reader.close()
    with gamestore.open(root, create=False) as s:
        with pytest.raises(QueryError) as info:
            s.sql(f"SELECT count(*), max(length(CAST({column} AS VARCHAR))) FROM moves").fetchall()
        assert victim.name in str(info.value) and "moves.arrow" in str(info.value)
        assert victim.name in s.catalog.damage()
        assert s.sql("SELECT count(*) FROM moves").fetchall() == [(s.count_moves(),)]


def test_open_and_first_statements_do_not_import_pandas(written):
    """pyarrow's ``to_numpy``/``pa.array`` import pandas on first use (0.25 s of CPU, as much as DuckDB's whole
    statement over Parquet): a fresh process opening a store and running statements over ``moves`` (whole shards,
    a game_id filter, a join with ``games``) never does (gamestore/arrays.py); the results equal this process's."""
    import subprocess
    import sys

    from helpers import subprocess_env

    with gamestore.open(written, create=False) as s:
        gid = s.sql("SELECT min(game_id) FROM games").fetchall()[0][0]
        queries = ["SELECT phase, move_type, count(*), avg(think_time_ms) FROM moves GROUP BY 1, 2 ORDER BY 1, 2",
                   f"SELECT count(*), max(move_number) FROM moves WHERE game_id = '{gid}'",
                   "SELECT g.winner, count(*) FROM moves m JOIN games g USING (game_id) GROUP BY 1 ORDER BY 1"]
        expected = [[list(r) for r in s.sql(q).fetchall()] for q in queries]
    child = ("import json, sys, gamestore\n"
             "s = gamestore.open(sys.argv[1], create=False)\n"
             "rows = [[list(r) for r in s.sql(q).fetchall()] for q in json.loads(sys.argv[2])]\n"
             "print(json.dumps({'pandas': 'pandas' in sys.modules, 'rows': rows}))\n")
    out = subprocess.run([sys.executable, "-c", child, str(written), json.dumps(queries)], env=subprocess_env(),
                         capture_output=True, text=True, check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert got["rows"] == json.loads(json.dumps(expected))
    assert got["pandas"] is False


@pytest.mark.parametrize("runs", [0, 1000])
def test_some_games_rows_as_slices_or_filtered(tmp_path, monkeypatch, runs):
    # a statement on some games keeps their runs of rows as slices (no pyarrow.compute) or, past
    # _SLICED_RUNS runs in a shard, filters them: the same rows either way
    monkeypatch.setattr(sqlscan, "_SLICED_RUNS", runs)
    with gamestore.open(tmp_path / "s", fsync=False) as s:
        s.write_games(synth.iter_games(12, seed=3))
        s.flush()
        ids = s.query_games(columns=["game_id"], order_by="game_id").column("game_id").to_pylist()
        picked = ids[::2] + ["no-such-game"]
        listed = ", ".join(f"'{g}'" for g in picked)
        q = f"SELECT game_id, move_number, phase FROM moves WHERE game_id IN ({listed}) ORDER BY 1, 2"
        got = s.sql(q).fetchall()
        want = _plain(s, tmp_path / "s", q)
    assert _norm(got) == want and {r[0] for r in got} == set(ids[::2])


def test_a_full_scans_plan_reads_every_shard_whole_unless_some_rows_are_not_visible(written, tmp_path, monkeypatch):
    """Every row visible (the usual case): each shard read whole, in shard id order, without a selection of the
    games (the same plan the selection gives); a game copied into a later shard leaves that shard partly visible:
    picks then, and the statement still counts each game once."""
    from gamestore import readpath

    def plans(store):
        cat = store._catalog
        snap = cat._snap
        source = cat._datasets(snap)[0]
        counts = dict(zip(snap.shards.column("shard_id").to_pylist(), snap.shards.column("num_games").to_pylist()))
        picks = [(p.shard_id, None if counts[p.shard_id] == p.num_games else p.num_games)
                 for p in readpath.selection_from_table(snap.visible).picks()]
        with monkeypatch.context() as m:
            if snap.visible is snap.rows:  # every row visible: no selection of the games at all
                m.setattr(readpath, "selection_from_table", None)
            got = [(sid, None if pick is None else pick.num_games) for sid, pick in source._full_plan()]
        return snap, got, picks

    with gamestore.open(written, create=False) as s:
        snap, got, picks = plans(s)
        assert snap.visible is snap.rows and len(got) == 3 and got == picks
        assert all(pick is None for _, pick in got)
    root = tmp_path / "copied"
    shutil.copytree(written, root)
    with gamestore.open(root, create=False) as s:
        moves = s.count_moves()
    # a copy of one shard under a lower id (as an interrupted copy may leave): its games are visible there, the
    # original shard's rows are not
    original = sorted((root / "shards").iterdir())[1]
    shutil.copytree(original, root / "shards" / "20000101T000000000000-1-00000000")
    with gamestore.open(root, create=False) as s:
        snap, got, picks = plans(s)
        assert snap.visible is not snap.rows and got == picks
        assert [sid for sid, _ in got][0] == "20000101T000000000000-1-00000000" and original.name not in dict(got)
        assert s.sql("SELECT count(*) FROM moves").fetchall() == [(moves,)]


def test_the_view_list_is_made_when_first_asked_for(written):
    """Opening and ``store.sql`` never list the views (a statement of its own on every open); ``view_names``
    lists them when asked, then keeps the list."""
    with gamestore.open(written, create=False) as s:
        cat = s._catalog
        assert s.sql("SELECT count(*) FROM moves").fetchall() == [(s.count_moves(),)]
        assert cat._views is None
        names = cat.view_names
        assert {"games", "moves", "players", "policies", "shards", "games_full"} <= names
        assert cat.view_names is names and s.count_games("game_id IS NOT NULL") == s.count_games()


def test_a_scan_opens_no_arrow_file_reader(store_root, monkeypatch):
    """A scan reads a checksummed moves.arrow's schema from its checked head and its batches through the fast reader:
    Arrow's file reader is never opened (format 1, without checksums, still reads through it); the same rows."""
    from gamestore import shard

    opened: list[str] = []
    real = shard.open_ipc

    def spy(path, **kw):
        opened.append(str(path))
        return real(path, **kw)

    q = "SELECT game_id, move_number, phase, think_time_ms, policy FROM moves ORDER BY 1, 2"
    with gamestore.open(store_root, create=False) as s:
        monkeypatch.setattr(shard, "open_ipc", spy)
        got = _norm(s.sql(q).fetchall())
        readers = s.catalog.readers()
        checksummed = all(r.verifier("moves.arrow") is not None for r in readers)
        monkeypatch.undo()
        assert got and got == _plain(s, store_root, q)
        assert [r.moves_schema.equals(shard.open_ipc(Path(r.file_path("moves.arrow"))).schema, check_metadata=True)
                for r in readers] == [True] * len(readers)
    assert (not opened) == checksummed, opened


def test_a_manifest_with_other_batches_than_the_file_is_damage_without_arrows_reader(written, tmp_path):
    from gamestore.errors import ShardCorruptError
    from gamestore.shard import ShardReader

    shard_dir = sorted((written / "shards").iterdir())[0]
    manifest = json.loads((shard_dir / "MANIFEST.json").read_text())
    manifest["batch_rows"] = manifest["batch_rows"] + [1]
    reader = ShardReader.at(shard_dir)
    reader.manifest = manifest
    with pytest.raises(ShardCorruptError, match="batch_rows"):
        sqlscan.read_columns(reader, ["phase"], [0])
    assert reader._moves is None and reader._fast is None


def test_the_scan_pool_hands_back_results_errors_and_skips_cancelled_calls():
    """sqlscan's own pool (in place of concurrent.futures, whose import loads logging): a call's value, its
    exception raised by result() with the call's traceback, a cancelled call not run."""
    import threading

    pool = sqlscan._executor()
    assert pool.submit(lambda a, b: a + b, 2, 3).result() == 5

    def fail():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom") as info:
        pool.submit(fail).result()
    assert "fail" in [t.name for t in info.traceback]
    gate, ran = threading.Event(), []
    blockers = [pool.submit(gate.wait) for _ in range(sqlscan.PREFETCH)]  # every thread busy
    skipped = pool.submit(ran.append, 1)
    skipped.cancel()
    gate.set()
    for b in blockers:
        b.result()
    skipped.result()
    assert ran == []


def test_a_forked_child_scans_with_threads_of_its_own(tmp_path):
    """A process that forks after a statement (DataLoader workers) runs statements in the child: the parent's
    scan threads do not exist there, and the child's statement must not wait on them."""
    import multiprocessing as mp

    with gamestore.open(tmp_path / "s", fsync=False) as s:
        s.write_games(synth.games(40, seed=3))
        s.flush()
    query = "SELECT phase, count(*) FROM moves GROUP BY 1 ORDER BY 1"
    with gamestore.open(tmp_path / "s", create=False) as s:
        want = [list(r) for r in s.sql(query).fetchall()]
    assert sqlscan._pool is not None  # the parent's threads exist

    def child(out):
        with gamestore.open(tmp_path / "s", create=False) as c:
            out.put([list(r) for r in c.sql(query).fetchall()])

    ctx = mp.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=child, args=(out,))
    proc.start()
    got = out.get(timeout=60)
    proc.join(60)
    assert proc.exitcode == 0 and got == want


def test_games_full_by_column_names_equals_the_columns_lambda(tmp_path):
    """``games_full`` names GAMES_SCHEMA's columns (DuckDB's first COLUMNS lambda cost ~4 ms of a fresh open): the
    same columns and rows as the lambda that keeps every column of ``_games_ds`` but the shard marker."""
    from gamestore.catalog_snapshot import SHARD_FIELD
    from gamestore.schema import GAMES_SCHEMA

    with gamestore.open(tmp_path / "s", fsync=False) as s:
        s.write_games(synth.games(30, seed=4))
        s.flush()
        s.write_games(synth.games(20, seed=5))
        s.flush()
        assert sqlscan.KEEPS_SCHEMA
        con = s._catalog.cursor()
        got = con.sql("SELECT * FROM games_full ORDER BY game_id")
        want = con.sql(f"SELECT COLUMNS(lambda c: c <> '{SHARD_FIELD}') FROM _games_ds ORDER BY game_id")
        assert [d[0] for d in got.description] == [d[0] for d in want.description] == GAMES_SCHEMA.names
        assert got.fetchall() == want.fetchall()
