"""The corruption fuzzer: random byte flips and truncations in every kind of file of a real store.

Each case runs in a subprocess (tests/corruption_worker.py), so a crash is a
counted failure, not a lost test run.  Asserted for every case: each read
returns exactly the original data or raises a typed GamestoreError, only the
damaged shard's games may fail, the process never dies.  The default run
takes a sample; the slow run 1,000+ cases (``-m slow``).
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import gamestore
from gamestore.testing import synth
from helpers import subprocess_env

HERE = Path(__file__).parent
FAST_CASES = int(os.environ.get("GAMESTORE_FUZZ_CASES", "40"))
SLOW_CASES = 1200


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    path = root / "store"
    games = synth.games(6, seed=17, board_type="square8")
    for g in games:
        g["moves"] = g["moves"][:60]
    with gamestore.open(path, fsync=False, batch_rows=64) as s:
        for i in range(0, 6, 2):
            s.write_games(games[i : i + 2])
            s.flush()
    with gamestore.open(path, create=False) as s:
        expected = {g["game_id"]: s.get_game(g["game_id"]) for g in games}
        by_shard: dict[str, list[str]] = {}
        for gid in expected:
            by_shard.setdefault(s.catalog.locate(gid).shard_id, []).append(gid)
    for p in path.glob(".lock"):
        p.unlink()
    exp = root / "expected.pkl"
    exp.write_bytes(pickle.dumps({"games": expected, "by_shard": by_shard}))
    return path, exp


def fuzz(template, tmp_path, cases: int) -> Counter:
    path, exp = template
    out = tmp_path / "results.jsonl"
    first, crashed = 0, []
    env = subprocess_env()  # the gamestore under test (the installed build in CI), not the source tree
    while first < cases:
        proc = subprocess.run(
            [sys.executable, str(HERE / "corruption_worker.py"), str(path), str(exp), str(tmp_path), str(first),
             str(cases), str(out)],
            env=env, capture_output=True, text=True, timeout=1800,
        )
        done = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        last = done[-1]["case"] if done else first - 1
        if proc.returncode != 0:  # the case after the last reported one killed the process
            crashed.append({"case": last + 1, "returncode": proc.returncode, "stderr": proc.stderr[-2000:]})
            with open(out, "a") as f:
                f.write(json.dumps({"case": last + 1, "status": "crashed", "rc": proc.returncode}) + "\n")
            first = last + 2
        else:
            first = cases
    results = [json.loads(line) for line in out.read_text().splitlines()]
    tally = Counter(r["status"] for r in results)
    bad = [r for r in results if r["status"] in ("wrong", "untyped", "crashed")]
    print(f"\ncorruption fuzzer: {len(results)} cases: {dict(tally)}")
    assert len(results) == cases
    assert not bad, json.dumps(bad[:5], indent=1) + json.dumps(crashed[:2], indent=1)
    return tally


def test_corruption_sample(template, tmp_path):
    fuzz(template, tmp_path, FAST_CASES)


@pytest.mark.slow
def test_corruption_1000_cases(template, tmp_path):
    tally = fuzz(template, tmp_path, SLOW_CASES)
    assert tally["detected"] > 0
