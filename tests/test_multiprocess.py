"""Many writer processes and reader processes on one store path at once.

Eight writer processes (whole games and move-by-move games, one aborted game
per batch) commit shards into one store while three reader processes scan
moves, query and run SQL in a loop.  Afterwards: no process saw an error
(a DuckDB lock error would be one), every flushed game is stored exactly
once, no aborted game is visible, and every reader snapshot was consistent.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import gamestore
from gamestore.ops import verify_store

from helpers import finish, read_acks, spawn


def run_many(tmp_path: Path, *, writers: int, batches: int, batch_size: int, max_moves: int) -> dict:
    store_path = tmp_path / "store"
    gamestore.open(store_path).close()  # created up front, so readers can open it with create=False
    ack_dir = tmp_path / "acks"
    ack_dir.mkdir()
    stop = tmp_path / "stop"
    readers = {
        kind: spawn("reader", {"store": str(store_path), "kind": kind, "stop": str(stop),
                               "report": str(tmp_path / f"reader-{kind}.json"), "seed": i})
        for i, kind in enumerate(("scan", "query", "sql"))
    }
    procs = [
        spawn("writer", {"store": str(store_path), "wid": f"w{k}", "seed": k + 1, "batches": batches,
                         "batch_size": batch_size, "max_moves": max_moves, "ack_dir": str(ack_dir),
                         "report": str(tmp_path / f"writer-{k}.json")})
        for k in range(writers)
    ]
    outputs = [finish(p, 600) for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out
    stop.write_text("stop")
    reader_out = {kind: finish(p, 600) for kind, p in readers.items()}
    for kind, p in readers.items():
        assert p.returncode == 0, reader_out[kind]
    reports = {kind: json.loads((tmp_path / f"reader-{kind}.json").read_text()) for kind in readers}
    latencies = [x for k in range(writers) for x in json.loads((tmp_path / f"writer-{k}.json").read_text())["latencies"]]
    return {"store": store_path, "acks": read_acks(ack_dir), "readers": reports, "latencies": latencies}


def check_store(store_path: Path, acked: list[str], expected_total: int) -> None:
    assert len(acked) == expected_total
    assert len(set(acked)) == len(acked)
    with gamestore.open(store_path, create=False) as store:
        rows = store.sql("SELECT game_id, num_moves FROM games").fetchall()
        ids = [r[0] for r in rows]
        assert len(ids) == len(set(ids)), "a game is stored twice"
        assert sorted(ids) == sorted(acked)
        assert not any("-aborted" in i for i in ids)
        # moves: exactly the catalog's count, each game once
        moves = store.sql("SELECT count(*), count(DISTINCT game_id) FROM moves").fetchall()[0]
        assert moves == (sum(r[1] for r in rows), len(ids))
        assert store.count_games() == expected_total
    report = verify_store(store_path)
    assert report.ok, report.lines()
    assert not report.duplicate_games
    assert not list((store_path / "tmp").iterdir())


@pytest.mark.single_backend  # locking and visibility between processes, the same on either encoder
def test_eight_writers_with_readers(tmp_path):
    writers, batches, batch_size = 8, 3, 4
    res = run_many(tmp_path, writers=writers, batches=batches, batch_size=batch_size, max_moves=24)
    check_store(res["store"], res["acks"], writers * batches * batch_size)
    for kind, rep in res["readers"].items():
        assert rep["errors"] == [], (kind, rep["errors"][:3])
        assert rep["iterations"] >= 1
        assert rep["counts"][-1] == writers * batches * batch_size, kind


@pytest.mark.slow
def test_eight_writers_with_readers_long(tmp_path):
    writers, batches, batch_size = 8, 12, 8
    t0 = time.perf_counter()
    res = run_many(tmp_path, writers=writers, batches=batches, batch_size=batch_size, max_moves=80)
    elapsed = time.perf_counter() - t0
    total = writers * batches * batch_size
    check_store(res["store"], res["acks"], total)
    for kind, rep in res["readers"].items():
        assert rep["errors"] == [], (kind, rep["errors"][:3])
        # the readers ran while writers committed: they saw the count grow
        assert len(set(rep["counts"])) > 1, kind
    lat = sorted(res["latencies"])
    print(f"\n{writers} writers x {batches} batches x {batch_size} games: {total} games in {elapsed:.1f}s;"
          f" write+flush latency p50 {lat[len(lat) // 2] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms;"
          f" reader iterations {[r['iterations'] for r in res['readers'].values()]}")
