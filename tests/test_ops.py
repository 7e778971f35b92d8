"""gamestore.ops from Python: compact, merge, prune, export, SQL output, crash safety."""
from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import gamestore
from gamestore import ops
from gamestore.testing import synth
from gamestore.ops import common as ops_common
from gamestore.ops import merging, rewrite
from gamestore.errors import FormatError, GamestoreError, QueryError
from gamestore.ops import export_parquet, iter_games
from gamestore.ringrift.jsonl import export_jsonl, game_record
from gamestore.ops import verify_store
from gamestore.records import games_equal
from gamestore.ops.query import write_query
from gamestore.shard import new_shard_id


@pytest.fixture(scope="module")
def corpus():
    return (
        synth.games(8, board_type="square8", num_players=2, seed=11)
        + synth.games(4, board_type="hex8", num_players=3, seed=12)
        + synth.games(2, board_type="square8", num_players=4, seed=13)
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory, corpus):
    """A store of 7 small shards (one flush per 2 games)."""
    path = tmp_path_factory.mktemp("template") / "store"
    with gamestore.open(path, fsync=False) as s:
        for i in range(0, len(corpus), 2):
            s.write_games(corpus[i : i + 2])
            s.flush()
    return path


@pytest.fixture()
def store_path(tmp_path, template):
    path = tmp_path / "store"
    shutil.copytree(template, path)
    return path


def snapshot(path) -> dict[str, dict]:
    """Every visible game, decoded, by id (asserting each id is visible once)."""
    with gamestore.open(path, create=False) as s:
        ids = s.query_games(columns=["game_id"]).column("game_id").to_pylist()
        assert len(ids) == len(set(ids)) == s.count_games()
        return {g: s.get_game(g) for g in ids}


def _fingerprint(game: dict) -> str:
    return json.dumps(game, sort_keys=True, default=lambda v: [str(v.dtype), v.tolist()] if isinstance(v, np.ndarray) else repr(v))


def assert_same_games(a: dict, b: dict, *, exact: bool = False) -> None:
    """Same ids and equal games (``exact``: field by field with games_equal, else by JSON fingerprint)."""
    assert sorted(a) == sorted(b)
    for gid in a:
        if exact:
            assert games_equal(a[gid], b[gid]), gid
        else:
            assert _fingerprint(a[gid]) == _fingerprint(b[gid]), gid


def shard_ids(path) -> list[str]:
    return sorted(os.listdir(Path(path) / "shards"))


def duplicate_shard(path, shard_id) -> str:
    """Copy a committed shard under a newer id (what an interrupted compaction or merge leaves)."""
    new = new_shard_id()
    shutil.copytree(Path(path) / "shards" / shard_id, Path(path) / "tmp" / new)
    os.rename(Path(path) / "tmp" / new, Path(path) / "shards" / new)
    return new


# ---------------------------------------------------------------------------
# compact
# ---------------------------------------------------------------------------
def test_compact_keeps_every_game_and_merges_shards(store_path):
    before = snapshot(store_path)
    assert len(shard_ids(store_path)) == 7
    result = ops.compact(store_path, target_moves=1000, fsync=False)
    assert result.shards_before == 7
    assert result.shards_after == len(shard_ids(store_path)) < 7
    assert result.games == len(before)
    assert_same_games(before, snapshot(store_path), exact=True)
    report = verify_store(store_path)
    assert report.ok and not report.duplicate_games
    assert os.listdir(store_path / "trash") == []
    assert sorted(p.stem for p in (store_path / "catalog").glob("*.parquet")) == shard_ids(store_path)


def test_compacted_shard_dictionaries_are_minimal(store_path):
    ops.compact(store_path, fsync=False)
    (sid,) = shard_ids(store_path)
    with gamestore.open(store_path, create=False) as s:
        reader = s.catalog.reader(sid)
        ids = reader.manifest["game_ids"]
        assert len(ids) == 14
        for i in range(reader.num_batches):
            batch = reader.batch(i)
            assert batch.column("game_id").dictionary.to_pylist() == ids
            mt = batch.column("move_type")
            assert len(mt.dictionary) == len(set(mt.dictionary.to_pylist()))


def test_compact_twice_is_a_no_op(store_path):
    ops.compact(store_path, target_moves=2000, fsync=False)
    shards = shard_ids(store_path)
    again = ops.compact(store_path, target_moves=2000, fsync=False)
    assert again.shards_rewritten == 0 and shard_ids(store_path) == shards


def test_compact_dry_run_changes_nothing(store_path):
    shards = shard_ids(store_path)
    plan = ops.compact(store_path, target_moves=2000, dry_run=True)
    assert plan.dry_run and plan.shards_rewritten == 7 and plan.shards_written >= 2
    assert shard_ids(store_path) == shards


def test_compact_drops_duplicate_copies(store_path):
    before = snapshot(store_path)
    first = shard_ids(store_path)[0]
    duplicate_shard(store_path, first)
    assert verify_store(store_path).duplicate_games
    assert_same_games(before, snapshot(store_path))
    result = ops.compact(store_path, fsync=False)
    assert result.duplicates_dropped == 2
    assert not verify_store(store_path).duplicate_games
    assert_same_games(before, snapshot(store_path))


def test_compact_crash_after_commit_leaves_every_game_once(store_path, monkeypatch):
    before = snapshot(store_path)

    def crash(*a, **k):
        raise KeyboardInterrupt("simulated crash before the old shards are trashed")

    monkeypatch.setattr(rewrite, "trash_shards", crash)
    with pytest.raises(KeyboardInterrupt):
        ops.compact(store_path, fsync=False)
    monkeypatch.undo()
    assert len(shard_ids(store_path)) == 8  # the new shard and all old ones
    assert_same_games(before, snapshot(store_path))
    ops.compact(store_path, fsync=False)  # re-running finishes the job
    assert len(shard_ids(store_path)) == 1
    assert_same_games(before, snapshot(store_path))
    assert not verify_store(store_path).duplicate_games


def test_compact_crash_while_trashing_leaves_every_game_once(store_path, monkeypatch):
    before = snapshot(store_path)
    real_rename = os.rename
    calls = {"n": 0}

    def rename(src, dst):
        if "trash" in str(dst):
            calls["n"] += 1
            if calls["n"] == 4:
                raise KeyboardInterrupt("simulated crash half-way through trashing")
        return real_rename(src, dst)

    monkeypatch.setattr(ops_common.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        ops.compact(store_path, fsync=False)
    monkeypatch.undo()
    assert_same_games(before, snapshot(store_path))
    ops.compact(store_path, fsync=False)
    assert_same_games(before, snapshot(store_path))
    report = verify_store(store_path)
    assert report.ok and not report.duplicate_games


def test_compact_crash_while_writing_leaves_nothing_visible(store_path, monkeypatch):
    before = snapshot(store_path)
    shards = shard_ids(store_path)
    import gamestore.shardwrite as shard_mod

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shard_mod, "_write_ipc", boom)
    with pytest.raises(GamestoreError):
        ops.compact(store_path, fsync=False)
    monkeypatch.undo()
    assert shard_ids(store_path) == shards
    assert os.listdir(store_path / "tmp") == []
    assert_same_games(before, snapshot(store_path))


def test_compact_skips_damaged_shard(store_path):
    victim = shard_ids(store_path)[2]
    moves_file = store_path / "shards" / victim / "moves.arrow"
    data = bytearray(moves_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    moves_file.write_bytes(bytes(data))
    result = ops.compact(store_path, fsync=False)
    assert victim in result.damaged_shards
    assert victim in shard_ids(store_path)  # left alone for `verify` / an operator


def test_maintenance_jobs_exclude_each_other(store_path):
    with ops.maintenance_lock(store_path):
        with pytest.raises(ops.StoreBusyError):
            ops.compact(store_path)
        with pytest.raises(ops.StoreBusyError):
            ops.prune(store_path, where="winner = 1")


# ---------------------------------------------------------------------------
# merge
# ---------------------------------------------------------------------------
def test_merge_dedups_and_rerun_is_idempotent(tmp_path, corpus, template):
    other = tmp_path / "other"
    with gamestore.open(other, fsync=False) as s:  # overlaps the template by 6 games, adds 4
        s.write_games(corpus[-6:] + synth.games(4, board_type="square8", num_players=3, seed=99))
        s.flush()
    dest = tmp_path / "merged"
    r = ops.merge([template, other], dest, fsync=False)
    assert r.games_added == len(corpus) + 4
    assert r.games_skipped == 6
    assert r.shards_copied == 7 and r.shards_written == 1
    merged = snapshot(dest)
    expected = {**snapshot(other), **snapshot(template)}
    assert_same_games(expected, merged, exact=True)
    # shards whose games were all new are byte copies under their own id
    for sid in shard_ids(template):
        assert (dest / "shards" / sid / "moves.arrow").read_bytes() == (template / "shards" / sid / "moves.arrow").read_bytes()
    again = ops.merge([template, other], dest, fsync=False)
    assert again.games_added == 0 and again.shards_copied == 0 and again.shards_written == 0
    assert len(shard_ids(dest)) == 8
    assert verify_store(dest).ok and not verify_store(dest).duplicate_games


def test_interrupted_merge_finishes_on_rerun(tmp_path, template, monkeypatch):
    dest = tmp_path / "merged"
    real = merging.copy_shard
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated interruption")
        return real(*a, **k)

    monkeypatch.setattr(merging, "copy_shard", flaky)
    with pytest.raises(KeyboardInterrupt):
        ops.merge([template], dest, fsync=False)
    monkeypatch.undo()
    partial = snapshot(dest)
    assert 0 < len(partial) < 14
    r = ops.merge([template], dest, fsync=False)
    assert r.games_added == 14 - len(partial)
    assert_same_games(snapshot(template), snapshot(dest))
    assert not verify_store(dest).duplicate_games


def test_merge_takes_only_visible_copies(tmp_path, store_path):
    duplicate_shard(store_path, shard_ids(store_path)[0])
    dest = tmp_path / "merged"
    r = ops.merge([store_path], dest, fsync=False)
    assert r.games_added == 14
    assert_same_games(snapshot(store_path), snapshot(dest))
    assert not verify_store(dest).duplicate_games


def test_merge_rejects_conflicting_vectors(tmp_path, corpus):
    a, b = tmp_path / "a", tmp_path / "b"
    with gamestore.open(a, fsync=False, vectors={"feat": 4}):
        pass
    with gamestore.open(b, fsync=False, vectors={"feat": 5}):
        pass
    with pytest.raises(FormatError):
        ops.merge([a, b], tmp_path / "dest")


def test_merge_refuses_source_as_destination(template):
    with pytest.raises(GamestoreError):
        ops.merge([template], template)


# ---------------------------------------------------------------------------
# prune
# ---------------------------------------------------------------------------
def test_prune_removes_exactly_the_matching_games(store_path):
    before = snapshot(store_path)
    where = "board_type = 'hex8' OR num_moves < 120"
    doomed = {g for g, rec in before.items() if rec["board_type"] == "hex8" or len(rec["moves"]) < 120}
    assert 0 < len(doomed) < len(before)
    plan = ops.prune(store_path, where=where, dry_run=True)
    assert plan.games_removed == len(doomed)
    assert len(snapshot(store_path)) == len(before)
    r = ops.prune(store_path, where=where, fsync=False)
    assert r.games_removed == len(doomed)
    assert r.moves_removed == sum(len(before[g]["moves"]) for g in doomed)
    assert_same_games({g: v for g, v in before.items() if g not in doomed}, snapshot(store_path))
    assert verify_store(store_path).ok
    assert ops.prune(store_path, where=where, fsync=False).games_removed == 0


def test_prune_also_removes_shadowed_copies(store_path):
    first = shard_ids(store_path)[0]
    duplicate_shard(store_path, first)
    with gamestore.open(store_path, create=False) as s:
        reader = s.catalog.reader(first)
        gid = reader.manifest["game_ids"][0]
    r = ops.prune(store_path, where=f"game_id = '{gid}'", fsync=False)
    assert r.games_removed == 1 and r.shards_rewritten + r.shards_removed == 2
    with gamestore.open(store_path, create=False) as s:
        assert gid not in s
    assert verify_store(store_path).ok


def test_prune_needs_a_predicate(store_path):
    with pytest.raises(QueryError):
        ops.prune(store_path, where="  ")
    with pytest.raises(QueryError):
        ops.prune(store_path, where="no_such_column = 1")


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------
def _no_dictionaries(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t) or pa.types.is_fixed_size_list(t) or pa.types.is_unsigned_integer(t):
        return False
    if pa.types.is_list(t):
        return _no_dictionaries(t.value_type)
    if pa.types.is_struct(t):
        return all(_no_dictionaries(f.type) for f in t)
    return True


def test_export_parquet_is_readable_by_duckdb_with_exact_values(tmp_path, template, corpus):
    dest = tmp_path / "export"
    with gamestore.open(template, create=False) as s:
        r = export_parquet(s, dest, where="board_type = 'square8'")
        expect = {g: s.get_game(g) for g in s.query_games("board_type = 'square8'", columns=["game_id"]).column("game_id").to_pylist()}
    assert r.games == len(expect) == 10
    assert r.moves == sum(len(g["moves"]) for g in expect.values())
    for f in pq.read_schema(dest / "moves.parquet"):
        assert _no_dictionaries(f.type), f
    for f in pq.read_schema(dest / "games.parquet"):
        assert _no_dictionaries(f.type), f
    con = duckdb.connect()
    games = con.sql(f"SELECT game_id, num_moves, winner FROM read_parquet('{dest / 'games.parquet'}')").fetchall()
    assert {g: (n, w) for g, n, w in games} == {g: (len(rec["moves"]), rec.get("winner")) for g, rec in expect.items()}
    rows = con.sql(
        f"SELECT game_id, move_number, move_type, to_x, policy, search, vec_heuristic_features"
        f" FROM read_parquet('{dest / 'moves.parquet'}')"
    ).fetchall()
    assert len(rows) == r.moves
    checked = 0
    for gid, num, mtype, to_x, policy, search, vec in rows:
        move = next(m for m in expect[gid]["moves"] if m["move_number"] == num)
        assert mtype == move["move_type"]
        assert to_x == (move["to"]["x"] if "to" in move else None)
        if "policy" in move:
            assert {e["key"]: e["prob"] for e in policy} == move["policy"]  # exact doubles
            checked += 1
        else:
            assert policy is None
        if "search" in move and "q_values" in move["search"]:
            assert {e["key"]: e["q"] for e in search} == move["search"]["q_values"]
            assert {e["key"]: e["visits"] for e in search} == move["search"]["visit_counts"]
        if "vectors" in move:
            assert np.array_equal(np.asarray(vec, np.float32), move["vectors"]["heuristic_features"])
    assert checked > 50


def test_export_parquet_refuses_to_overwrite(tmp_path, template):
    with gamestore.open(template, create=False) as s:
        export_parquet(s, tmp_path / "x", where="winner = 1")
        with pytest.raises(GamestoreError):
            export_parquet(s, tmp_path / "x")
        r = export_parquet(s, tmp_path / "x", overwrite=True)
    assert r.games == 14
    assert pq.read_metadata(tmp_path / "x" / "games.parquet").num_rows == 14


def test_export_jsonl_is_gamerecord_shaped(tmp_path, template):
    from gamestore.ringrift.mapping import move_json_value

    dest = tmp_path / "games.jsonl.gz"
    with gamestore.open(template, create=False) as s:
        r = export_jsonl(s, dest, where="num_players = 3")
        expect = {g["game_id"]: g for g in iter_games(s, "num_players = 3")}
    lines = gzip.open(dest, "rt", encoding="utf-8").read().splitlines()
    assert r.games == len(lines) == len(expect) == 4
    for line in lines:
        rec = json.loads(line)
        game = expect[rec["id"]]
        assert rec["boardType"] == "hex8" and rec["numPlayers"] == 3
        assert rec["totalMoves"] == game["total_moves"]
        assert [p["playerNumber"] for p in rec["players"]] == [1, 2, 3]
        assert set(rec["finalScore"]) == {"ringsEliminated", "territorySpaces", "ringsRemaining"}
        assert rec["metadata"]["recordVersion"] == "1.0"
        assert len(rec["moves"]) == len(game["moves"])
        for m, src in zip(rec["moves"], game["moves"]):
            base = json.loads(json.dumps(move_json_value(src)))
            assert {k: m[k] for k in base} == base
            assert m["moveNumber"] == src["move_number"] + 1
            assert m["thinkTimeMs"] == src.get("think_time_ms", 0)
            if m["to"] is not None:
                assert set(m["to"]) == {"x", "y", "z"}
            if "policy" in src:
                assert m["moveProbs"] == src["policy"]
            if "vectors" in src:
                assert m["heuristicFeatures"] == src["vectors"]["heuristic_features"].tolist()


def test_game_record_maps_outcome_and_source():
    g = synth.games(1, seed=5)[0]
    g["termination_reason"] = "territory"
    g["source"] = "selfplay"
    rec = game_record(gamestore.normalize_game(g, vectors=synth.VECTORS), training_data=False)
    assert rec["outcome"] == "territory_control"
    assert rec["metadata"]["source"] == "self_play"
    assert all("moveProbs" not in m and "searchStats" not in m for m in rec["moves"])


def test_iter_games_matches_get_game(template):
    with gamestore.open(template, create=False) as s:
        seen = 0
        for g in iter_games(s):
            assert games_equal(g, s.get_game(g["game_id"]))
            seen += 1
    assert seen == 14


# ---------------------------------------------------------------------------
# SQL output
# ---------------------------------------------------------------------------
def test_write_query_formats(tmp_path, template):
    q = "SELECT game_id, num_moves, players FROM games ORDER BY game_id"
    with gamestore.open(template, create=False) as s:
        expect = s.sql(q).to_arrow_table().to_pylist()
        assert write_query(s, q, fmt="csv", output=tmp_path / "o.csv") == 14
        assert write_query(s, q, fmt="json", output=tmp_path / "o.jsonl") == 14
        assert write_query(s, q, fmt="parquet", output=tmp_path / "o.parquet") == 14
        assert write_query(s, q, fmt="table", output=tmp_path / "o.txt") == 14
        with pytest.raises(QueryError):
            write_query(s, q, fmt="parquet")
    import csv

    rows = list(csv.reader(open(tmp_path / "o.csv", encoding="utf-8")))
    assert rows[0] == ["game_id", "num_moves", "players"]
    assert [(r[0], int(r[1]), json.loads(r[2])) for r in rows[1:]] == [
        (e["game_id"], e["num_moves"], e["players"]) for e in expect
    ]
    assert [json.loads(line) for line in open(tmp_path / "o.jsonl", encoding="utf-8")] == expect
    assert pq.read_table(tmp_path / "o.parquet").to_pylist() == expect
    text = (tmp_path / "o.txt").read_text().splitlines()
    assert text[0].split() == ["game_id", "num_moves", "players"] and text[-1] == "(14 rows)"


def test_export_jsonl_of_an_imported_gamereplaydb_matches_its_json_columns(tmp_path, ringrift_dbs):
    """On a real RingRift database: every move object holds move_json exactly (keys and order);
    moveProbs and searchStats equal the move_probs and search_stats_json columns."""
    import sqlite3

    from gamestore.ringrift.transfer import import_sqlite

    db = ringrift_dbs["ringrift_v18_sample"]
    import_sqlite(db, tmp_path / "store")
    with gamestore.open(tmp_path / "store", create=False) as s:
        r = export_jsonl(s, tmp_path / "out.jsonl")
    records = {}
    for line in open(tmp_path / "out.jsonl", encoding="utf-8"):
        rec = json.loads(line)
        records[rec["id"]] = rec
    con = sqlite3.connect(db)
    assert r.games == len(records) == con.execute("SELECT count(*) FROM games").fetchone()[0]
    n = 0
    for gid, num, mj, mp, ss in con.execute(
        "SELECT game_id, move_number, move_json, move_probs, search_stats_json FROM game_moves"
    ):
        move = records[gid]["moves"][num]
        original = json.loads(mj)
        assert list(move)[: len(original)] == list(original)
        assert {k: move[k] for k in original} == original
        assert move.get("moveProbs") == (json.loads(mp) if mp is not None else None)
        assert move.get("searchStats") == (json.loads(ss) if ss is not None else None)
        n += 1
    assert n == r.moves
    for gid, board, players, winner in con.execute("SELECT game_id, board_type, num_players, winner FROM games"):
        assert (records[gid]["boardType"], records[gid]["numPlayers"], records[gid]["winner"]) == (board, players, winner)


# ---------------------------------------------------------------------------
# concurrency
# ---------------------------------------------------------------------------
def test_readers_and_writers_during_compaction(store_path):
    """Another store instance counting and listing games while compaction runs never misses or doubles
    one; games written concurrently by a third instance all survive."""
    import threading

    expected = set(snapshot(store_path))
    extra = synth.games(6, board_type="square8", num_players=3, seed=77)
    stop = threading.Event()
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            with gamestore.open(store_path, create=False) as r:
                probe = sorted(expected)
                while not stop.is_set():
                    ids = r.query_games(columns=["game_id"]).column("game_id").to_pylist()
                    seen.append((len(ids), len(set(ids) & expected)))
                    gid = probe[len(seen) % len(probe)]
                    assert r.get_game(gid)["game_id"] == gid
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def write() -> None:
        try:
            with gamestore.open(store_path, create=False, fsync=False) as w:
                for g in extra:
                    w.write_games([g])
                    w.flush()
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=read), threading.Thread(target=write)]
    for t in threads:
        t.start()
    for _ in range(2):
        ops.compact(store_path, target_moves=1500, fsync=False)
        ops.compact(store_path, fsync=False)
    threads[1].join()
    stop.set()
    threads[0].join()
    assert not errors
    assert seen and all(common == len(expected) for _, common in seen)
    assert all(len(expected) <= n <= len(expected) + len(extra) for n, _ in seen)
    final = snapshot(store_path)
    assert set(final) == expected | {g["game_id"] for g in extra}


def test_a_shard_indexed_while_compaction_plans_keeps_its_games(store_path, monkeypatch):
    """A writer's shard the catalog picks up after compaction took the games' picks (the background refresher
    can index it at any moment) is left as it is: never taken for a shard whose games are all shadowed copies and
    rewritten without them (it was, and its games were lost: test_readers_and_writers_during_compaction caught it)."""
    expected = set(snapshot(store_path))
    late = synth.games(1, board_type="square8", num_players=3, seed=91)
    real = ops_common.indexed_picks

    def picks_then_commit(store, **kw):
        got = real(store, **kw)
        if late:
            with gamestore.open(store_path, create=False, fsync=False) as w:
                w.write_games([late.pop()])
                w.flush()
            store.refresh()  # as the background refresher may, between the picks and the listing of the shards
        return got

    monkeypatch.setattr(ops_common, "indexed_picks", picks_then_commit)
    monkeypatch.setattr(rewrite, "indexed_picks", picks_then_commit, raising=False)
    ops.compact(store_path, target_moves=10**9, fsync=False)
    assert not late
    final = set(snapshot(store_path))
    assert final == expected | {synth.games(1, board_type="square8", num_players=3, seed=91)[0]["game_id"]}
