"""Stores on object storage (a local S3 server) and `gamestore sync` between any two locations."""
from __future__ import annotations

import asyncio
import json
import time
import sys

import pytest

import gamestore
from gamestore import ops, replicate
from gamestore.testing import synth
from gamestore.errors import FormatError, StoreNotFoundError
from gamestore.ops import reindex_store, verify_store
from gamestore.records import games_equal
from gamestore.storage import Storage, StorageError

from helpers import subprocess_env
from helpers.mp_workers import write_via_game_writer

pytestmark = pytest.mark.single_backend


@pytest.fixture(scope="module")
def corpus():
    return synth.games(10, board_type="square8", num_players=2, seed=11) + synth.games(
        4, board_type="hex8", num_players=3, seed=12, snapshot_every=10
    )


def _snapshot(location) -> dict:
    with gamestore.open(location, create=False) as s:
        ids = s.query_games(columns=["game_id"]).column("game_id").to_pylist()
        return {g: s.get_game(g) for g in ids}


def _count(location) -> int:
    try:
        with gamestore.open(location, create=False) as s:
            return s.count_games()
    except StoreNotFoundError:
        return 0


def _same(expected: dict, got: dict) -> None:
    assert sorted(expected) == sorted(got)
    for gid, game in expected.items():
        assert games_equal(game, got[gid]), gid


def test_store_on_s3_end_to_end(s3, corpus, tmp_path):
    uri = s3.uri(s3.bucket(), "runs/a")
    with gamestore.open(uri, shard_games=5) as s:
        assert s.storage.local is False and str(s.path).startswith("s3://")
        assert s.write_games(corpus[:10]) == 10  # a shard sealed as the buffer fills
        write_via_game_writer(s, corpus[10])
        s.flush()
        assert s.count_games() == 11
        assert s.sql("SELECT count(*), count(DISTINCT game_id) FROM moves").fetchall()[0][0] == sum(
            len(g["moves"]) for g in corpus[:11]
        )
        rows = sum(b.num_rows for b in s.scan_moves("board_type = 'square8'", columns=["game_id", "policy"]))
        assert rows == sum(len(g["moves"]) for g in corpus[:10])
    # a second process's view: a fresh open reads everything back from the bucket
    got = _snapshot(uri)
    _same({g["game_id"]: g for g in corpus[:11]}, {k: v for k, v in got.items()})
    for g in corpus[:11]:
        assert games_equal(g, got[g["game_id"]])

    async def write_async():
        async with await gamestore.open_async(uri) as a:
            await a.write_games(corpus[11:])
            await a.flush()
            return await a.count_games()

    assert asyncio.run(write_async()) == len(corpus)
    report = verify_store(uri)
    assert report.ok and report.games == len(corpus) and report.shards_checked == 3
    assert ops.compact(uri, fsync=False).shards_rewritten == 3
    after = _snapshot(uri)
    _same({g["game_id"]: g for g in corpus}, after)
    assert verify_store(uri).shards_checked == 1
    games, damaged = reindex_store(uri)
    assert games == len(corpus) and not damaged
    assert verify_store(uri).ok


def test_location_forms(s3, corpus, monkeypatch):
    bucket = s3.bucket()
    fs = s3.filesystem()
    with gamestore.open(f"{bucket}/explicit", filesystem=fs) as s:  # a path on an explicit FileSystem
        s.write_games(corpus[:2])
    # AWS_ENDPOINT_URL (which pyarrow ignores) names the server for a bare s3:// URI
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3.endpoint}")
    with gamestore.open(f"s3://{bucket}/explicit", create=False) as s:
        assert s.count_games() == 2
    with pytest.raises(StoreNotFoundError):
        gamestore.open(f"s3://{bucket}/nothing-here", create=False)
    with pytest.raises(StorageError):
        Storage.from_location("nosuchscheme://x/y")
    with pytest.raises(StorageError):
        Storage.from_location("/tmp/x", filesystem="not a filesystem")  # type: ignore[arg-type]


def test_uncommitted_upload_is_invisible_and_orphans_are_cleaned(s3, corpus):
    uri = s3.uri(s3.bucket())
    with gamestore.open(uri) as s:
        s.write_games(corpus[:3])
        s.flush()
        sid = s.catalog.shard_ids()[0]
        st = s.storage
        # a writer that died after uploading the data, before the manifest (the commit point)
        for name in ("moves.arrow", "games.arrow"):
            st.put_new(f"shards/99990101T000000000000-1-deadbeef/{name}", st.read_bytes(f"shards/{sid}/{name}"))
        s.refresh()
        assert s.count_games() == 3 and "99990101T000000000000-1-deadbeef" in s.catalog.uncommitted
        assert verify_store(uri).uncommitted == ["99990101T000000000000-1-deadbeef"]
        from gamestore.layout import clean_orphans

        assert clean_orphans(st, s.catalog.uncommitted, grace_seconds=3600) == []  # just uploaded: in progress
        assert clean_orphans(st, s.catalog.uncommitted, grace_seconds=-1) == ["99990101T000000000000-1-deadbeef"]
        assert not st.list_files("shards/99990101T000000000000-1-deadbeef")
        assert verify_store(uri).ok and not verify_store(uri).uncommitted


def test_sync_local_to_s3_to_local_is_incremental_and_idempotent(s3, corpus, tmp_path):
    node = tmp_path / "node"
    with gamestore.open(node, fsync=False, profile="ringrift") as s:
        for i in range(0, 8, 2):
            s.write_games(corpus[i : i + 2])
            s.flush()
    hub = s3.uri(s3.bucket(), "hub")
    r = gamestore.sync(node, hub)
    assert (r.shards_copied, r.games_copied) == (4, 8) and r.bytes_copied > 0 and r.mb_per_s > 0
    again = gamestore.sync(node, hub)
    assert again.shards_copied == 0 and again.shards_present == 4 and again.bytes_copied == 0
    with gamestore.open(node, fsync=False) as s:
        s.write_games(corpus[8:10])
    one_more = gamestore.sync(node, hub)
    assert one_more.shards_copied == 1 and one_more.games_copied == 2
    # byte copies under their own ids, verifiable on the far side
    assert replicate.committed_shards(Storage.from_location(hub)) == replicate.committed_shards(Storage.from_location(node))
    assert verify_store(hub).ok
    with gamestore.open(hub, create=False) as h:
        assert h.profile == "ringrift"  # created with the source's profile (its views)
    mirror = tmp_path / "mirror"
    assert gamestore.sync(hub, mirror, fsync=False).games_copied == 10
    _same(_snapshot(node), _snapshot(mirror))
    # after compacting the hub, the original shards are not copied again (their games are all there)
    ops.compact(hub, fsync=False)
    assert gamestore.sync(node, hub).shards_copied == 0
    assert len(_snapshot(hub)) == 10


def test_sync_interrupted_mid_shard_finishes_on_rerun(s3, corpus, tmp_path, monkeypatch):
    node = tmp_path / "node"
    with gamestore.open(node, fsync=False) as s:
        for i in range(0, 12, 3):
            s.write_games(corpus[i : i + 3])
            s.flush()
    hub = s3.uri(s3.bucket(), "hub")
    real_put = Storage.put_new
    calls = {"n": 0}

    def dying_put(self, rel, data, *, fsync=True):
        calls["n"] += 1
        if rel.endswith("MANIFEST.json") and calls["n"] > 4:
            raise KeyboardInterrupt("killed before the commit point")
        return real_put(self, rel, data, fsync=fsync)

    monkeypatch.setattr(Storage, "put_new", dying_put)
    with pytest.raises(KeyboardInterrupt):
        gamestore.sync(node, hub, workers=1)
    monkeypatch.undo()
    with gamestore.open(hub, create=False) as h:  # readers see whole shards only
        partial = h.count_games()
        assert partial in (3, 6) and h.catalog.uncommitted
    r = gamestore.sync(node, hub)
    assert r.games_copied == 12 - partial
    _same(_snapshot(node), _snapshot(hub))


def test_sync_refuses_a_damaged_source_shard(tmp_path, corpus):
    node = tmp_path / "node"
    with gamestore.open(node, fsync=False) as s:
        s.write_games(corpus[:3])
        s.flush()
        sid = s.catalog.shard_ids()[0]
    moves = node / "shards" / sid / "moves.arrow"
    data = bytearray(moves.read_bytes())
    data[len(data) // 2] ^= 0xFF
    moves.write_bytes(bytes(data))
    r = gamestore.sync(node, tmp_path / "dst", fsync=False)
    assert r.shards_copied == 0 and sid in r.damaged_shards
    assert not (tmp_path / "dst" / "shards" / sid).exists()
    with pytest.raises(FormatError):
        replicate.copy_shard(gamestore.shard.ShardReader(Storage.from_location(node), sid), Storage.from_location(tmp_path / "x"))


def test_position_dataset_streams_from_s3(s3, corpus, tmp_path):
    pytest.importorskip("torch")
    from gamestore.torch import PositionDataset

    uri = s3.uri(s3.bucket())
    local = tmp_path / "local"
    for loc in (uri, local):
        with gamestore.open(loc, fsync=False) as s:
            s.write_games(corpus)

    def positions(loc) -> list:
        ds = PositionDataset(loc, batch_size=64, shuffle=False)
        out = []
        for batch in ds:
            out.extend(zip(batch["game_id"], batch["move_number"].tolist()))
        return sorted(out)

    remote = positions(uri)
    assert remote and remote == positions(local)


def _cli(*args: str) -> "subprocess.CompletedProcess[str]":
    import os
    import subprocess

    env = subprocess_env()
    return subprocess.run([sys.executable, "-c", "import sys; from gamestore.cli import main; sys.exit(main())", *args], capture_output=True, text=True, env=env, timeout=300)


def test_cli_commands_take_uris(s3, corpus, tmp_path):
    node = tmp_path / "node"
    with gamestore.open(node, fsync=False) as s:
        s.write_games(corpus[:6])
    hub = s3.uri(s3.bucket(), "hub")
    out = _cli("sync", str(node), hub, "--json")
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert figures["shards_copied"] == 1 and figures["games_copied"] == 6 and figures["bytes_copied"] > 0
    info = _cli("info", hub, "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["games"] == 6
    assert _cli("verify", hub).returncode == 0
    missing = _cli("info", s3.uri(s3.bucket(), "nothing"))
    assert missing.returncode == 2 and "no gamestore" in missing.stderr


def test_sync_watch_pulls_new_shards_until_stopped(corpus, tmp_path):
    import threading

    node, mirror = tmp_path / "node", tmp_path / "mirror"
    with gamestore.open(node, fsync=False) as s:
        s.write_games(corpus[:2])
    stop = threading.Event()
    passes: list = []
    out: dict = {}
    t = threading.Thread(target=lambda: out.setdefault("r", gamestore.sync(
        node, mirror, fsync=False, watch=0.05, stop=stop, on_pass=passes.append)))
    t.start()
    try:
        with gamestore.open(node, fsync=False) as s:
            for i in range(2, 8, 2):
                s.write_games(corpus[i : i + 2])
                s.flush()
                deadline = time.monotonic() + 30
                while _count(mirror) < i + 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert _count(mirror) == i + 2
    finally:
        stop.set()
        t.join(30)
    assert not t.is_alive() and out["r"].games_copied == 8 and out["r"].shards_copied == 4 and len(passes) >= 4
    _same(_snapshot(node), _snapshot(mirror))


def test_scan_on_s3_reads_ahead_and_stops_cleanly(s3, corpus):
    from gamestore import readpath

    uri = s3.uri(s3.bucket(), "scan")
    with gamestore.open(uri, fsync=False) as s:
        for i in range(0, 12, 2):  # 6 shards: more than the scan downloads ahead
            s.write_games(corpus[i : i + 2])
            s.flush()
    assert readpath.SCAN_DOWNLOADS < 6
    with gamestore.open(uri, create=False) as s:
        ids = [g for b in s.scan_moves(columns=["game_id"]) for g in b.column("game_id").to_pylist()]
        assert len(ids) == sum(len(g["moves"]) for g in corpus[:12])
        assert set(ids) == {g["game_id"] for g in corpus[:12]}
        it = s.scan_moves(columns=["game_id"])
        assert next(it).num_rows > 0
        it.close()  # a scan abandoned mid-way cancels its downloads and returns
        assert s.count_games() == 12


def test_cli_on_a_bucket_exits_cleanly(s3, corpus, tmp_path):
    """Reading the catalog of a bucket store leaves no Arrow worker thread holding Python's bytes at exit.

    Before: one `gamestore verify s3://...` in five, run after `info` wrote the catalog checkpoint, ended
    with "terminate called without an active exception" (SIGABRT) after printing OK.
    """
    node = tmp_path / "node"
    with gamestore.open(node, fsync=False) as s:
        s.write_games(corpus[:6])
    hub = s3.uri(s3.bucket(), "hub")
    assert _cli("sync", str(node), hub).returncode == 0
    assert _cli("info", hub).returncode == 0
    codes = [(r.returncode, r.stderr[-200:]) for r in (_cli("verify", hub) for _ in range(10))]
    assert [c for c, _ in codes] == [0] * 10, codes
