"""What the format-2 per-batch checksums cost: full-scan throughput and cold ``get_game`` p50, verification on vs off.

    python benchmarks/bench_checksum.py --workdir /tmp/gs-checksum [--games 2000] [--samples 600] [--rounds 5]

Builds (once per ``--workdir``) a square8 store of synthetic games, then, in
one run with the two settings interleaved (the machine is
shared: read the ratios, not the absolute times):

- a full ``scan_moves()`` of every move (every batch hashed, decompressed);
- cold ``get_game`` calls (batch cache, row cache and the verifiers' memory of
  checked batches cleared before each call, so every call hashes and
  decompresses its batch), p50 over ``--samples`` random ids, on and off
  interleaved call by call.

``checksum.VERIFY = False`` is the "off" setting (the same code path minus
the hashing).  Reports the ratios on/off, and the hashing timed alone as a
share of each operation; the goal is <= 5% for both.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gamestore  # noqa: E402
from gamestore import checksum, shard  # noqa: E402
from gamestore.testing import synth  # noqa: E402
from gamestore.backend import BACKEND  # noqa: E402


def _build(path: Path, n: int) -> None:
    if (path / "gamestore.json").exists():
        with gamestore.open(path, create=False) as s:
            if len(s) == n:
                return
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    with gamestore.open(path, fsync=False) as s:
        s.write_games(synth.iter_games(n, seed=3))


def _forget(store) -> None:
    shard.BATCH_CACHE.clear()
    shard.ROW_CACHE.clear()
    for r in store.catalog.readers():
        for v in r._verifiers.values():
            v._ok.clear()


def _scan(store) -> float:
    _forget(store)
    t = time.perf_counter()
    rows = 0
    for b in store.scan_moves():
        rows += b.num_rows
    return rows / (time.perf_counter() - t)


def _point(store, ids: list[str]) -> dict[bool, float]:
    """p50 of cold get_game with and without verification, the two interleaved call by call."""
    times: dict[bool, list[float]] = {True: [], False: []}
    for k, gid in enumerate(ids):
        for verify in ((True, False) if k % 2 == 0 else (False, True)):
            checksum.VERIFY = verify
            _forget(store)
            t = time.perf_counter()
            store.get_game(gid)
            times[verify].append(time.perf_counter() - t)
    checksum.VERIFY = True
    return {v: statistics.median(ts) for v, ts in times.items()}


def _hash_only(store, ids: list[str]) -> tuple[float, float]:
    """(p50 seconds to verify the batch of one game, seconds to verify every moves batch): the checksum work alone."""
    per_game = []
    for gid in ids:
        loc = store.catalog.locate(gid)
        reader = store.catalog.find_reader(loc.shard_id)
        v = reader.verifier("moves.arrow")
        i = reader.batch_index(loc.move_offset)
        v._ok.clear()
        t = time.perf_counter()
        v.check(i)
        per_game.append(time.perf_counter() - t)
    t = time.perf_counter()
    for reader in store.catalog.readers():
        v = reader.verifier("moves.arrow")
        v._ok.clear()
        v.check_all()
    return statistics.median(per_game), time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/gs-checksum")
    ap.add_argument("--games", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    path = Path(args.workdir) / "store"
    _build(path, args.games)
    res: dict = {"backend": BACKEND, "games": args.games, "scan": {True: [], False: []}, "p50": {True: [], False: []}}
    with gamestore.open(path, create=False) as store:
        ids = sorted(store.query_games(columns=["game_id"]).column("game_id").to_pylist())
        sample = random.Random(1).sample(ids, min(args.samples, len(ids)))
        _scan(store)  # warm the page cache
        for r in range(args.rounds):
            for verify in ((True, False) if r % 2 == 0 else (False, True)):
                checksum.VERIFY = verify
                res["scan"][verify].append(_scan(store))
            checksum.VERIFY = True
            for verify, p50 in _point(store, sample).items():
                res["p50"][verify].append(p50)
        hash_p50, hash_scan = _hash_only(store, sample)
        moves = store.count_moves()
    scan_on, scan_off = statistics.median(res["scan"][True]), statistics.median(res["scan"][False])
    p50_on, p50_off = statistics.median(res["p50"][True]), statistics.median(res["p50"][False])
    out = {
        "backend": BACKEND,
        "games": args.games,
        "scan_moves_per_s": {"verify": round(scan_on), "no_verify": round(scan_off)},
        "scan_cost_ratio": round(scan_off / scan_on, 4),
        "get_game_cold_p50_ms": {"verify": round(p50_on * 1e3, 4), "no_verify": round(p50_off * 1e3, 4)},
        "get_game_cost_ratio": round(p50_on / p50_off, 4),
        # the checksum work timed alone, as a share of the operation it guards (less noisy on a shared machine)
        "hash_share_of_scan": round(hash_scan / (moves / scan_off), 4),
        "hash_share_of_get_game_p50": round(hash_p50 / p50_off, 4),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
