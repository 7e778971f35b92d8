"""Advancing a process's catalog while others commit: views of one snapshot agree whatever the indexing order."""
from __future__ import annotations

import itertools
import os
import threading
import time

import pytest

import gamestore
from gamestore import catalog as catalog_mod
from gamestore import shardwrite
from gamestore.manyshards import make_store_of_shards
from gamestore.testing import synth

pytestmark = pytest.mark.single_backend

_CONSISTENT = ("SELECT (SELECT count(*) FROM games), (SELECT coalesce(sum(num_moves), 0) FROM games),"
               " (SELECT count(*) FROM moves), (SELECT count(DISTINCT game_id) FROM moves),"
               " (SELECT count(DISTINCT game_id) FROM policies)")


def _descending_ids(monkeypatch) -> None:
    """Each new shard id sorts before the previous one (as when a writer that started sealing earlier commits
    later): the catalog indexes shards in the opposite of id order."""
    counter = itertools.count()
    monkeypatch.setattr(shardwrite, "new_shard_id",
                        lambda: f"20990101T{999999 - next(counter):06d}000000-{os.getpid()}-0000abcd")


def test_views_agree_when_shards_are_indexed_out_of_id_order(tmp_path, monkeypatch):
    """test_multiprocess's SQL reader saw games whose moves the ``moves`` view lacked: the moves source cut its
    plan from catalog rows in indexing order, and a shard indexed after one with a higher id lost its games."""
    _descending_ids(monkeypatch)
    path = tmp_path / "s"
    with gamestore.open(path, vectors=synth.VECTORS) as reader, gamestore.open(path) as writer:
        expected_games = expected_moves = 0
        for k in range(4):
            games = synth.games(5, seed=20 + k)
            writer.write_games(games)
            writer.flush()
            reader.refresh()  # one shard per snapshot step, newest (lowest id) last
            expected_games += len(games)
            expected_moves += sum(len(g["moves"]) for g in games)
            n, moves_cat, move_rows, move_games, policy_games = reader.sql(_CONSISTENT).fetchall()[0]
            assert (n, moves_cat, move_rows, move_games) == (expected_games, expected_moves, expected_moves,
                                                            expected_games)
            assert policy_games <= n
            assert sum(b.num_rows for b in reader.scan_moves(columns=["game_id"])) == expected_moves
        ids = [r[0] for r in reader.sql("SELECT game_id FROM games").fetchall()]
        for gid in ids[::7]:
            assert reader.get_game(gid)["game_id"] == gid
        shard_order = reader.catalog.shard_table().column("shard_id").to_pylist()
        assert shard_order == sorted(shard_order, reverse=True)  # the case this test is about


def test_reads_never_wait_for_indexing(tmp_path, monkeypatch):
    """A read that finds new shards wakes the background refresher and answers from the current snapshot."""
    root = tmp_path / "store"
    make_store_of_shards(root, 20, games_per_shard=2)
    with gamestore.open(root, create=False) as reader:
        assert reader.count_games() == 40
        gate = threading.Event()
        events: list[str] = []
        orig = catalog_mod.Catalog._load

        def gated(self, sid, *rest):
            gate.wait(60)  # indexing is held here until the reads below have returned
            events.append("load")
            return orig(self, sid, *rest)

        monkeypatch.setattr(catalog_mod.Catalog, "_load", gated)
        make_store_of_shards(root, 3, games_per_shard=1, prefix="w", first=4000)
        assert reader.count_games() == 40
        assert reader.get_game("g00000007-0001")["game_id"] == "g00000007-0001"
        assert reader.sql("SELECT count(*) FROM games").fetchall()[0][0] == 40
        events.append("read")
        gate.set()
        deadline = time.monotonic() + 60
        while reader.count_games() < 43 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reader.count_games() == 43
    assert events[0] == "read" and events.count("load") == 3


def test_shard_committed_through_another_handle_is_handed_over(tmp_path, monkeypatch):
    """A shard committed through one handle reaches the process's other handles with its segment: their next
    call shows it, and they read no file of it."""
    path = tmp_path / "s"
    loads: list[object] = []
    orig = catalog_mod.Catalog._load

    def counted(self, sid, *rest):  # rest: the games table a writer hands over with its own shard
        loads.append(self)
        return orig(self, sid, *rest)

    monkeypatch.setattr(catalog_mod.Catalog, "_load", counted)
    with gamestore.open(path, vectors=synth.VECTORS) as writer, gamestore.open(path) as reader:
        assert reader.count_games() == 0
        games = synth.games(7, seed=31)
        writer.write_games(games)
        writer.flush()
        assert reader.count_games() == 7  # the next call, no refresh()
        assert reader.sql("SELECT count(*) FROM moves").fetchall()[0][0] == sum(len(g["moves"]) for g in games)
        assert reader.get_game(games[3]["game_id"])["game_id"] == games[3]["game_id"]
        reader.refresh()  # a listing finds the shard known
        assert reader.count_games() == 7
        assert all(c is writer.catalog for c in loads)
