"""Every CLI command, and background compaction, on a store on a local S3 server (moto, started here).

The commands run in-process (``gamestore.cli.main``) against ``s3://`` URIs;
``compact --watch`` runs as its own process and is stopped with SIGTERM, as
an operator would.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import gamestore
from gamestore.ops import verify_store
from gamestore.ops.tiering import TierPolicy
from gamestore.testing import synth

from helpers import subprocess_env
from helpers.cli import run

pytestmark = pytest.mark.single_backend


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return synth.games(8, board_type="square8", seed=31) + synth.games(4, board_type="hex8", seed=32)


def _fill(uri: str, games: list[dict], per_shard: int) -> None:
    with gamestore.open(uri, fsync=False) as s:
        for i in range(0, len(games), per_shard):
            s.write_games(games[i : i + per_shard])
            s.flush()


def _ids(uri: str) -> list[str]:
    with gamestore.open(uri, create=False) as s:
        return sorted(s.query_games(columns=["game_id"]).column("game_id").to_pylist())


def test_cli_commands_on_s3(s3, corpus, capsys, tmp_path):
    uri = s3.uri(s3.bucket(), "store")
    _fill(uri, corpus, 2)  # 6 shards
    ids = sorted(g["game_id"] for g in corpus)

    code, out, err = run(capsys, "info", uri, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["games"] == 12 and info["shards"] == 6 and info["path"].startswith("s3://")

    code, out, err = run(capsys, "sql", uri, "SELECT count(*) AS n FROM moves", "--format", "json")
    assert code == 0, err
    assert json.loads(out.splitlines()[0])["n"] == sum(len(g["moves"]) for g in corpus)

    code, out, err = run(capsys, "verify", uri, "--json")
    assert code == 0 and json.loads(out)["ok"], out + err

    code, out, err = run(capsys, "reindex", uri, "--json")
    assert code == 0, err

    export_dir = tmp_path / "export"
    code, out, err = run(capsys, "export", uri, export_dir, "--format", "parquet", "-q")
    assert code == 0, err
    assert sorted(pq.read_table(export_dir / "games.parquet").column("game_id").to_pylist()) == ids
    jsonl = tmp_path / "games.jsonl"
    code, out, err = run(capsys, "export", uri, jsonl, "--format", "jsonl", "--where", "board_type = 'hex8'", "-q")
    assert code == 0, err
    assert len(jsonl.read_text().splitlines()) == 4

    report = tmp_path / "report.html"
    code, out, err = run(capsys, "report", uri, "-o", report, "-q")
    assert code == 0, err
    assert report.stat().st_size > 10_000

    # merge: a local store and the S3 store into a new S3 store
    local = tmp_path / "local"
    extra = synth.games(3, board_type="square8", seed=33)
    _fill(str(local), extra, 3)
    merged = s3.uri(s3.bucket(), "merged")
    code, out, err = run(capsys, "merge", uri, local, merged, "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["games_added"] == 15
    assert _ids(merged) == sorted(ids + [g["game_id"] for g in extra])

    code, out, err = run(capsys, "compact", uri, "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["shards_rewritten"] == 6
    assert _ids(uri) == ids

    code, out, err = run(capsys, "prune", uri, "--where", "board_type = 'hex8'", "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["games_removed"] == 4
    assert _ids(uri) == sorted(g["game_id"] for g in corpus if g["board_type"] == "square8")
    assert verify_store(uri).ok

    code, out, err = run(capsys, "info", s3.uri(s3.bucket(), "nothing"))
    assert code == 2 and "no gamestore" in err


def test_cli_sqlite_import_and_export_on_s3(s3, ringrift_dbs, capsys, tmp_path):
    uri = s3.uri(s3.bucket(), "imported")
    db = next(iter(ringrift_dbs.values()))
    code, out, err = run(capsys, "import-sqlite", db, uri, "--workers", "0", "--json", "-q")
    assert code == 0, err
    games = json.loads(out)["sources"][0]["games_written"]
    assert games > 0
    with gamestore.open(uri, create=False) as s:
        assert s.count_games() == games and s.profile == "ringrift"
    dst = tmp_path / "out.db"
    code, out, err = run(capsys, "export-sqlite", uri, dst, "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["games"] == games


def test_compact_watch_and_auto_compact_on_s3(s3, corpus, tmp_path):
    uri = s3.uri(s3.bucket(), "tiered")
    _fill(uri, corpus[:8], 1)  # 8 one-game shards: one tier of fan-in 4 twice over
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from gamestore.cli import main; sys.exit(main())", "compact", uri,
         "--watch", "--interval", "0.2", "--fanin", "4", "--retain", "0", "-q"],
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        shards = 8
        while time.monotonic() < deadline and proc.poll() is None:
            with gamestore.open(uri, create=False) as s:
                shards = len(s.catalog.shard_ids())
                assert s.count_games() == 8  # every game visible exactly once while shards are merged
            if shards <= 2:
                break
            time.sleep(0.3)
        assert shards <= 2, proc.stderr.read() if proc.poll() is not None else f"{shards} shards left"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert _ids(uri) == sorted(g["game_id"] for g in corpus[:8])

    # auto_compact=True in a writer process: its own small shards are merged in the background
    auto = s3.uri(s3.bucket(), "auto")
    policy = TierPolicy(fanin=3, retain_seconds=0)  # a round every second
    with gamestore.open(auto, fsync=False, auto_compact=policy) as s:
        for g in corpus[:6]:
            s.write_games([g])
            s.flush()
        deadline = time.monotonic() + 90
        while len(s.catalog.shard_ids()) > 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            s.refresh()
        assert len(s.catalog.shard_ids()) <= 2 and s.count_games() == 6
    assert verify_store(auto).ok


def test_damaged_shard_quarantined_and_repaired_on_s3(s3, corpus, capsys):
    """On object storage a damaged shard is skipped by info and compact (exit 1 naming it), and ``verify --repair``
    moves its objects to quarantine/<id>/ (copy, then delete; the manifest first) leaving a store verify calls OK."""
    from gamestore.quarantine import QUARANTINE_DIR, REASON_FILE
    from gamestore.storage import Storage

    uri = s3.uri(s3.bucket(), "store")
    _fill(uri, corpus, 4)  # 3 shards
    storage = Storage.from_location(uri)
    victim = sorted(storage.list_dir("shards"))[1]
    moves = f"shards/{victim}/moves.arrow"
    storage.write_bytes(moves, storage.read_bytes(moves)[:-100])  # truncated

    code, out, err = run(capsys, "info", uri, "--json")
    assert code == 1 and victim in out
    code, out, err = run(capsys, "compact", uri)
    assert code == 1 and victim in out + err
    code, out, err = run(capsys, "verify", uri)
    assert code != 0 and victim in out
    survivors = _ids(uri)
    assert len(survivors) == 8

    code, out, err = run(capsys, "verify", uri, "--repair")
    assert code == 0, out + err
    assert f"moved damaged shard {victim} to {QUARANTINE_DIR}/{victim}" in out and "after repair: OK" in out
    assert victim not in storage.list_dir("shards")
    moved = {e.path.rsplit("/", 1)[-1] for e in storage.list_files(f"{QUARANTINE_DIR}/{victim}")}
    assert {"moves.arrow", "games.arrow", "MANIFEST.json", REASON_FILE} <= moved
    reason = json.loads(storage.read_bytes(f"{QUARANTINE_DIR}/{victim}/{REASON_FILE}"))
    assert reason["shard_id"] == victim and len(reason["game_ids"]) == 4
    assert verify_store(uri).ok
    assert _ids(uri) == survivors
    code, out, err = run(capsys, "info", uri, "--json")
    assert code == 0 and json.loads(out)["quarantined_shards"] == [victim]
