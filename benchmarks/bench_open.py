"""Open a store and answer ``count_games``: the cost must not grow with the number of shards.

Stores of the same number of games cut into 100 and into 10,000 shards
(and, with ``--huge``, 100,000 games in 100 and in 100,000 shards) are made
once with :mod:`gamestore.manyshards` (real tiny shards, committed with the
commit protocol) into a cache directory, each opened once so it has its
catalog checkpoint.  Then each store is timed from ``gamestore.open`` to the
answered ``count_games()``, in a fresh Python process per measurement
(imports done before the clock starts), rounds interleaved, medians
reported with the ratios to the 100-shard store of the same size.

    python benchmarks/bench_open.py [--rounds 5] [--huge] [--cache /tmp/gamestore-bench-open] [--s3]

``--s3`` also copies the 100- and 10,000-shard stores (checkpoint included)
to a local S3 server (moto, started here in its own process, as the tests
do) and times the same open of their ``s3://`` URIs (goal: 10,000 shards
under 3 s).

Also shown: the same open without a checkpoint (every shard is the tail:
what each open cost before checkpoints, and what the first open of an old
store costs once).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_CHILD = r"""
import json, sys, time
import gamestore, gamestore.catalog, gamestore.store  # imports before the clock starts
import duckdb, pyarrow as pa
duckdb.connect().register("warm", pa.table({"a": [1]}))  # DuckDB's lazy imports (pandas) too
path, keep = sys.argv[1], sys.argv[2] == "1"
if not keep:
    import shutil, pathlib
    shutil.rmtree(pathlib.Path(path) / "catalog" / "_checkpoint", ignore_errors=True)
    (pathlib.Path(path) / "catalog" / "_last_checkpoint").unlink(missing_ok=True)
t0 = time.perf_counter()
s = gamestore.open(path, create=False)
n = s.count_games()
t1 = time.perf_counter()
import resource
print(json.dumps({"seconds": t1 - t0, "games": n, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
s.close()
"""


def make(cache: Path, shards: int, games: int) -> Path:
    from gamestore.manyshards import make_store_of_shards

    path = cache / f"s{shards}-g{games}"
    done = path / ".complete"
    if done.exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    make_store_of_shards(path, shards, games_per_shard=games // shards, checkpoint=True)
    import gamestore

    gamestore.open(path, create=False).close()  # writes the checkpoint
    done.write_text("ok")
    print(f"  made {path.name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return path


def measure(path: "Path | str", *, checkpoint: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), "1" if checkpoint else "0"], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--huge", action="store_true", help="also 100,000 games in 100 and in 100,000 shards (slow to make)")
    ap.add_argument("--cache", default="/tmp/gamestore-bench-open")
    ap.add_argument("--no-legacy", action="store_true", help="skip the opens without a checkpoint")
    ap.add_argument("--s3", action="store_true", help="also open the 100- and 10,000-shard stores on a local S3 server")
    args = ap.parse_args(argv)
    from gamestore.backend import BACKEND

    print(f"backend: {BACKEND}", file=sys.stderr)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    cases = [(100, 10_000), (10_000, 10_000)]
    if args.huge:
        cases += [(100, 100_000), (100_000, 100_000)]
    paths = {c: make(cache, *c) for c in cases}
    times: dict[tuple[int, int], list[float]] = {c: [] for c in cases}
    rss: dict[tuple[int, int], int] = {}
    for _ in range(args.rounds):
        for c in cases:
            r = measure(paths[c], checkpoint=True)
            assert r["games"] == c[1], r
            times[c].append(r["seconds"])
            rss[c] = max(rss.get(c, 0), r["maxrss_kb"])
    legacy = {}
    if not args.no_legacy:
        for c in cases:
            if c[0] <= 10_000:
                legacy[c] = measure(paths[c], checkpoint=False)["seconds"]
                measure(paths[c], checkpoint=True)  # the open above rewrote the checkpoint
    print("| games | shards | open + count_games (median) | vs 100 shards | max RSS | without checkpoint |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in cases:
        med = statistics.median(times[c])
        base = statistics.median(times[(100, c[1])])
        lg = f"{legacy[c] * 1000:.0f} ms" if c in legacy else "-"
        print(f"| {c[1]:,} | {c[0]:,} | {med * 1000:.0f} ms | {med / base:.2f}x | {rss[c] / 1024:.0f} MB | {lg} |")
    if args.s3:
        on_s3([c for c in cases if c[0] <= 10_000], paths, rounds=args.rounds)


def on_s3(cases: list[tuple[int, int]], paths: dict, *, rounds: int) -> None:
    """The same opens on a local S3 server (the stores copied up, checkpoint included)."""
    import pyarrow.fs as pafs

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers.s3server import S3Server

    s3 = S3Server()  # also sets test credentials in os.environ, which the children inherit
    try:
        bucket = s3.bucket()
        uris = {}
        for c in cases:
            t0 = time.perf_counter()
            pafs.copy_files(str(paths[c]), f"{bucket}/{paths[c].name}", source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=s3.filesystem(), use_threads=True)
            uris[c] = s3.uri(bucket, paths[c].name)
            print(f"  copied {paths[c].name} to the S3 server in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        times: dict[tuple[int, int], list[float]] = {c: [] for c in cases}
        for _ in range(rounds):
            for c in cases:
                r = measure(uris[c], checkpoint=True)
                assert r["games"] == c[1], r
                times[c].append(r["seconds"])
    finally:
        s3.close()
    print(f"\nlocal S3 server (moto), load {' '.join(f'{x:.2f}' for x in os.getloadavg())}:")
    print("| games | shards | open + count_games on s3:// (median) | vs 100 shards |")
    print("| ---: | ---: | ---: | ---: |")
    for c in cases:
        med = statistics.median(times[c])
        print(f"| {c[1]:,} | {c[0]:,} | {med * 1000:.0f} ms | {med / statistics.median(times[(100, c[1])]):.2f}x |")


if __name__ == "__main__":
    main()
