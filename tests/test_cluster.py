"""The cluster on one machine: nodes write locally, `gamestore sync --watch` pushes to a hub on a
local S3 server, a trainer streams from the hub with PositionDataset.

Asserted: every acknowledged game (its writer's flush returned) arrives in the
hub exactly once; no aborted game and no partial game is ever visible to the
trainer (every game it streams has all its positions, in every epoch); the
hub verifies clean.  Meanwhile one sync process is SIGKILLed mid-transfer and
restarted, and the S3 server is taken down and brought back: everything
converges.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gamestore
from gamestore.ops import verify_store

from helpers import TESTS, subprocess_env
from helpers.s3server import S3Server

HELPERS = TESTS / "helpers"

pytestmark = pytest.mark.single_backend


def _spawn(script: str, role: str, args: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HELPERS / script), role, json.dumps(args)], env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _sync(node: Path, hub: str, log: Path) -> subprocess.Popen:
    out = open(log, "a")
    return subprocess.Popen([sys.executable, "-c", "import sys; from gamestore.cli import main; sys.exit(main())", "sync", str(node), hub, "--watch", "0.3",
                             "--workers", "2", "--no-fsync"], env=subprocess_env(), stdout=out, stderr=subprocess.STDOUT)


def _acked(ack_dir: Path) -> set[str]:
    ids: set[str] = set()
    for f in ack_dir.glob("*.txt"):
        ids.update(line for line in f.read_text().splitlines() if line)
    return ids


def _hub_games(hub: str) -> dict[str, int]:
    with gamestore.open(hub, create=False) as h:
        t = h.query_games(columns=["game_id", "num_moves"])
        return dict(zip(t.column("game_id").to_pylist(), t.column("num_moves").to_pylist()))


def run_cluster(tmp_path: Path, *, nodes: int, writers_per_node: int, batches: int, kills: int) -> None:
    s3 = S3Server()
    procs: list[subprocess.Popen] = []
    try:
        hub = s3.uri(s3.bucket(), "hub")
        gamestore.open(hub).close()
        ack_dir = tmp_path / "acks"
        ack_dir.mkdir()
        stop, ready = tmp_path / "stop", tmp_path / "ready"
        trainer = _spawn("cluster_workers.py", "trainer", {"hub": hub, "stop": str(stop), "ready": str(ready),
                                                            "report": str(tmp_path / "trainer.json")})
        procs.append(trainer)
        deadline = time.monotonic() + 120
        while not ready.exists() and trainer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the trainer streams (an empty hub) before any data flows
        assert ready.exists(), trainer.communicate()[0] if trainer.poll() is not None else "trainer not ready"
        writers = []
        node_dirs = [tmp_path / f"node{n}" for n in range(nodes)]
        for node in node_dirs:  # before the syncs start: a sync of a path that is no store yet exits with an error
            gamestore.open(node).close()
        for n, node in enumerate(node_dirs):
            for w in range(writers_per_node):
                args = {"store": str(node), "wid": f"n{n}w{w}", "ack_dir": str(ack_dir), "batches": batches,
                        "batch_size": 3, "seed": n * 10 + w, "max_moves": 40, "fsync": False,
                        "report": str(tmp_path / f"writer-n{n}w{w}.json")}
                writers.append(_spawn("mp_workers.py", "writer", args))
        procs.extend(writers)
        syncs = {n: _sync(node, hub, tmp_path / f"sync{n}.log") for n, node in enumerate(node_dirs)}
        procs.extend(syncs.values())
        # faults while data flows: SIGKILL a sync mid-transfer and restart it; take the server down and back
        for k in range(kills):
            time.sleep(1.0)
            victim = k % nodes
            syncs[victim].send_signal(signal.SIGKILL)
            syncs[victim].wait()
            syncs[victim] = _sync(node_dirs[victim], hub, tmp_path / f"sync{victim}.log")
            procs.append(syncs[victim])
            if k == 0:
                s3.stop()
                time.sleep(1.5)
                s3.start()
        for p in writers:
            out = p.communicate(timeout=300)[0]
            assert p.returncode == 0, out
        acked = _acked(ack_dir)
        assert len(acked) == nodes * writers_per_node * batches * 3
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if set(_hub_games(hub)) >= acked:
                break
            time.sleep(0.5)
        stop.write_text("stop")
        out = trainer.communicate(timeout=300)[0]
        assert trainer.returncode == 0, out
        for p in syncs.values():
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
        hub_games = _hub_games(hub)
        # every acknowledged game arrived exactly once; nothing else (no aborted game) did
        missing, extra = sorted(acked - set(hub_games)), sorted(set(hub_games) - acked)
        logs = "\n".join(f.read_text()[-2000:] for f in sorted(tmp_path.glob("sync*.log")))
        assert not missing and not extra, f"missing {missing[:5]} ({len(missing)}), extra {extra[:5]}\n{logs}"
        with gamestore.open(hub, create=False) as h:
            assert h.count_games() == len(acked)
            assert h.sql("SELECT count(*) = count(DISTINCT game_id) FROM games").fetchall()[0][0]
        report = verify_store(hub)
        assert report.ok and not report.duplicate_games and not report.uncommitted, report.lines()
        # a rerun after the kills converges: nothing left to copy from any node
        for node in node_dirs:
            again = gamestore.sync(node, hub)
            assert again.shards_copied == 0
        # the trainer never saw a partial or aborted game, in any epoch, and its last epoch saw everything once
        tr = json.loads((tmp_path / "trainer.json").read_text())
        assert not tr["errors"], tr["errors"]
        assert len(tr["epochs"]) >= 3
        assert tr["epochs"][0]["games"] < len(acked)  # it streamed while data was still arriving
        for epoch in tr["epochs"]:
            for gid, positions in epoch["positions"].items():
                assert gid in hub_games, f"trainer saw {gid}, never acknowledged"
                assert positions == hub_games[gid], f"trainer saw {positions} of {hub_games[gid]} positions of {gid}"
        assert set(tr["epochs"][-1]["positions"]) == acked
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        s3.close()


def test_cluster_nodes_sync_into_s3_hub_while_trainer_streams(tmp_path):
    run_cluster(tmp_path, nodes=4, writers_per_node=1, batches=3, kills=2)


@pytest.mark.slow
def test_cluster_bigger(tmp_path):
    run_cluster(tmp_path, nodes=4, writers_per_node=2, batches=12, kills=8)
