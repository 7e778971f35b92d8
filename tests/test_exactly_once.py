"""Every view and reader shows every game exactly once (issue 9, must-have 3).

A game id committed by two processes sits in two shards, each mixed with
games stored once.  Readers show the copy in the lowest shard id (the first
committed, docs/format.md section 6) everywhere: the SQL views (``moves``,
``games_full``, ``policies``, RingRift's ``game_moves`` read only the rows
of indexed copies), ``count_games``, ``scan_moves``, exports and
``get_game``; and compaction, tiered compaction and prune keep showing that
same copy (their output shard takes the place of the lowest shard it
replaces).  Kills in the middle of those jobs: tests/test_kill_maintenance.py.
"""
from __future__ import annotations

import pytest

import gamestore
from gamestore.ops import compact, prune, verify_store
from gamestore.ops.tiering import TierPolicy, compact_round

from helpers.dup_stores import build_dup_store
from helpers.exactly_once import check_once

pytestmark = pytest.mark.single_backend


def test_ids_committed_twice_are_shown_once_everywhere(tmp_path):
    path = tmp_path / "s"
    shown = build_dup_store(path)
    with gamestore.open(path) as s:
        # the store really holds three second copies, in shards that also hold games stored once
        copies = s.sql("SELECT count(*) FROM games").fetchall()[0][0]
        assert copies == len(shown.moves)
        assert len(s.catalog.shard_ids()) == 6
    check_once(path, shown)
    report = verify_store(path)
    assert report.ok and len(report.duplicate_games) == 3


def test_compact_keeps_showing_the_same_copies(tmp_path):
    path = tmp_path / "s"
    shown = build_dup_store(path)
    with gamestore.open(path) as s:
        per_shard = s.sql("SELECT max(num_moves) FROM shards").fetchall()[0][0]
    # groups of about two shards: the first copies and the second copies land in different outputs
    res = compact(path, target_moves=per_shard * 2, fsync=False)
    assert res.shards_rewritten >= 4 and res.duplicates_dropped == 3
    check_once(path, shown)
    assert verify_store(path).duplicate_games == {}


def test_tiered_compaction_keeps_showing_the_same_copies(tmp_path):
    path = tmp_path / "s"
    shown = build_dup_store(path)
    with gamestore.open(path) as s:
        for _ in range(3):
            compact_round(s, TierPolicy(fanin=2, base_moves=256, max_inputs=2, retain_seconds=0), fsync=False)
            check_once(path, shown)


def test_prune_keeps_showing_the_same_copies(tmp_path):
    path = tmp_path / "s"
    shown = build_dup_store(path)
    # the first shard holds a game to prune and the first copy of a game stored twice
    with gamestore.open(path) as s:
        first = s.catalog.shard_ids()[0]
        victim = s.sql(f"SELECT game_id FROM games WHERE shard_id = '{first}' ORDER BY move_offset LIMIT 1").fetchall()[0][0]
    prune(path, where=f"game_id = '{victim}'", fsync=False)
    check_once(path, shown.without({victim}))


def test_position_dataset_streams_each_game_once(tmp_path):
    from collections import Counter

    from gamestore.torch import PositionDataset

    path = tmp_path / "s"
    shown = build_dup_store(path, flushes=2, per_flush=2, max_moves=30)
    ds = PositionDataset(path, batch_size=64, return_keys=True, seed=3)
    per_game: Counter = Counter()
    for batch in ds:
        per_game.update(batch["game_id"])
    assert per_game == shown.moves
    assert ds.num_games == len(shown.moves) and ds.num_positions == sum(shown.moves.values())
