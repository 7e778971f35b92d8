"""Automatic tiered compaction: the plan, rounds, replaced shards, auto_compact, and `compact --watch`
running next to a writer process and reader processes that check exactly-once visibility continuously."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gamestore
from gamestore.manyshards import make_store_of_shards
from gamestore.ops import verify_store
from gamestore.ops.common import indexed_picks, pick_of
from gamestore.ops.shardbuild import Part, write_parts
from gamestore.ops.tiering import TierPolicy, compact_round, plan_tiers

from helpers import finish, read_acks, spawn, subprocess_env

pytestmark = pytest.mark.single_backend


def _ids(store) -> list[str]:
    return store.query_games(columns=["game_id"]).column("game_id").to_pylist()


def test_plan_tiers():
    policy = TierPolicy(fanin=4, base_moves=100, target_moves=10_000, max_inputs=6)
    assert policy.tier(0) == 0 and policy.tier(99) == 0 and policy.tier(100) == 1 and policy.tier(400) == 2
    assert policy.tier(10_000) is None
    tiny = [(f"a{i:02d}", 10) for i in range(14)]
    mid = [(f"b{i}", 150) for i in range(3)]
    groups = plan_tiers(tiny + mid + [("z", 20_000)], policy)
    # tier 0: 14 shards, groups of at most 6, oldest first, until fewer than fan-in remain; tier 1 has only 3
    assert groups == [[f"a{i:02d}" for i in range(6)], [f"a{i:02d}" for i in range(6, 12)]]
    big = [(f"c{i}", 4000) for i in range(4)]
    assert plan_tiers(big, policy) == [["c0", "c1"]]  # no output beyond target_moves; 2 left: below fan-in
    with pytest.raises(ValueError):
        TierPolicy(fanin=1)


def test_round_merges_tiers_and_keeps_every_game_once(tmp_path):
    root = tmp_path / "s"
    make_store_of_shards(root, 40, games_per_shard=2)
    policy = TierPolicy(fanin=4, base_moves=64, max_inputs=8, retain_seconds=0)
    with gamestore.open(root, create=False) as s:
        before = sorted(_ids(s))
        r = compact_round(s, policy, fsync=False)
        assert r.merges == 5 and r.shards_merged == 40 and r.shards_removed == 40
        assert sorted(_ids(s)) == before
        assert len(s.catalog.shard_ids()) == 5
        r2 = compact_round(s, policy, fsync=False)  # 5 shards of 64 moves: tier 1, fan-in reached: one merge
        assert r2.merges == 1 and len(s.catalog.shard_ids()) == 1
        assert sorted(_ids(s)) == before
        assert s.sql("SELECT count(*), count(DISTINCT game_id) FROM moves").fetchall()[0] == (320, 80)
    assert verify_store(root).ok
    assert os.listdir(root / "trash") == []
    with gamestore.open(root, create=False) as s:  # the checkpoint the round wrote lists the new shards only
        assert sorted(_ids(s)) == before and len(s.catalog.shard_ids()) == 1


def test_interrupted_merge_replaced_shards_hidden_then_removed(tmp_path):
    """A compactor killed after committing its output, before removing the inputs: readers see each game once."""
    root = tmp_path / "s"
    make_store_of_shards(root, 6, games_per_shard=3)
    with gamestore.open(root, create=False) as s:
        before = sorted(_ids(s))
        old = s.catalog.shard_ids()
        picks = indexed_picks(s)
        parts = [Part(s.catalog.reader(sid), pick_of(picks, s.catalog.reader(sid))) for sid in old[:4]]
        new = write_parts(s, parts, fsync=False, replaces=old[:4])
        assert sorted(_ids(s)) == before
        assert s.catalog.hidden_shards() == old[:4] and new in s.catalog.shard_ids()
        assert s.sql("SELECT count(*) FROM games_full").fetchall()[0][0] == 18
    with gamestore.open(root, create=False) as other:  # another process, from the checkpoint + tail
        assert sorted(_ids(other)) == before
        assert other.get_game(before[0])["game_id"] == before[0]
        r = compact_round(other, TierPolicy(fanin=8, retain_seconds=0), fsync=False)
        assert r.merges == 0 and r.shards_removed == 4
        assert sorted(_ids(other)) == before
    assert sorted(os.listdir(root / "shards")) == sorted(old[4:] + [new])
    assert verify_store(root).ok and not verify_store(root).duplicate_games


def test_auto_compact(tmp_path):
    root = tmp_path / "s"
    policy = TierPolicy(fanin=4, base_moves=10_000, retain_seconds=0)
    games = [g for g in _games(24)]
    with gamestore.open(root, auto_compact=policy, fsync=False) as s:
        for i in range(0, 24, 2):
            s.write_games(games[i:i + 2])
            s.flush()
        deadline = time.monotonic() + 60
        while len(os.listdir(root / "shards")) > 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(os.listdir(root / "shards")) <= 3
        assert s._compactor is not None and s._compactor.errors == 0
        assert sorted(_ids(s)) == sorted(g["game_id"] for g in games)
    assert verify_store(root).ok


def _games(n: int) -> list[dict]:
    from gamestore.testing import synth

    out = synth.games(n, seed=3)
    for g in out:
        g["moves"] = g["moves"][:20]
        for m in g["moves"]:
            m.pop("vectors", None)
    return out


def _watcher(store: Path) -> subprocess.Popen:
    env = subprocess_env()
    # --retain: long enough for a reader's statement on this small store to finish on a loaded 2-core machine (a
    # statement still reading a replaced shard after that gets a retryable typed error, docs/operations.md)
    return subprocess.Popen(
        [sys.executable, "-m", "gamestore.cli", "compact", str(store), "--watch", "--interval", "0.2", "--fanin", "4",
         "--retain", "5"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def _served_shards(store: Path) -> int:
    """Shards readers are served: replaced shards wait ``--retain`` seconds on disk before removal."""
    with gamestore.open(store, create=False) as s:
        return len(s.catalog.shard_ids())


def test_compact_watch_next_to_writer_and_readers(tmp_path):
    store_path = tmp_path / "store"
    gamestore.open(store_path).close()
    ack_dir = tmp_path / "acks"
    ack_dir.mkdir()
    stop = tmp_path / "stop"
    watcher = _watcher(store_path)
    readers = {
        kind: spawn("reader", {"store": str(store_path), "kind": kind, "stop": str(stop), "ack_dir": str(ack_dir),
                               "report": str(tmp_path / f"reader-{kind}.json"), "seed": i, "pause": 0.02})
        for i, kind in enumerate(("sql", "acks", "query"))
    }
    writer = spawn("writer", {"store": str(store_path), "wid": "w0", "seed": 1, "batches": 30, "batch_size": 2,
                              "max_moves": 12, "ack_dir": str(ack_dir), "fsync": False,
                              "report": str(tmp_path / "writer.json")})
    out = finish(writer, 600)
    assert writer.returncode == 0, out
    deadline = time.monotonic() + 60  # let the watcher finish merging what the writer left
    while _served_shards(store_path) > 8 and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.write_text("stop")
    for kind, p in readers.items():
        text = finish(p, 300)
        assert p.returncode == 0, text
        report = json.loads((tmp_path / f"reader-{kind}.json").read_text())
        assert report["errors"] == [], (kind, report["errors"][:3])
        assert report["iterations"] > 3
    watcher.send_signal(signal.SIGTERM)
    text = finish(watcher, 120)
    assert watcher.returncode == 0, text
    assert "watching" in text and "merged" in text and "stopped after" in text
    acked = read_acks(ack_dir)
    assert len(acked) == 60
    assert _served_shards(store_path) <= 8 < 30
    with gamestore.open(store_path, create=False) as s:
        ids = _ids(s)
        assert sorted(ids) == sorted(acked)
    report = verify_store(store_path)
    assert report.ok and not report.duplicate_games


def test_one_compactor_per_store(tmp_path):
    root = tmp_path / "s"
    make_store_of_shards(root, 8)
    from gamestore.ops.common import maintenance_lock

    with gamestore.open(root, create=False) as s, maintenance_lock(root):
        r = compact_round(s, TierPolicy(fanin=2, retain_seconds=0), fsync=False)
        assert r.busy and r.merges == 0 and len(s.catalog.shard_ids()) == 8
