"""``get_game`` latency in a reader while writer processes commit shards (a catalog refresh under load).

One run, side by side: the reader alone, then the same reader while 8
writer processes each commit a one-game shard every ~100 ms (and, with
``--compact``, a ``gamestore compact --watch`` process merging them).
The reader calls ``get_game`` on random games of the store as fast as it
can; every call refreshes the catalog first (that is where new shards are
picked up).

    python benchmarks/bench_get_game_writers.py [--seconds 20] [--writers 8] [--interval 0.1] [--compact]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_WRITER = r"""
import sys, time, gamestore
from gamestore.testing import synth
path, wid, interval, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
games = synth.games(1, seed=11)
with gamestore.open(path) as s:
    t_end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        g = dict(games[0], game_id=f"{wid}-{i}")
        s.write_games([g])
        s.flush()
        i += 1
        time.sleep(max(0.0, interval - (time.monotonic() - t0)))
print(i)
"""


def _reader(path: Path, ids: list[str], seconds: float) -> tuple[np.ndarray, np.ndarray]:
    import gamestore

    rnd = random.Random(0)
    out = []
    refresh: list[float] = []
    with gamestore.open(path, create=False) as s:
        orig = s.catalog.refresh

        def timed(*, force: bool = False) -> bool:  # the catalog's share of each call
            t0 = time.perf_counter()
            try:
                return orig(force=force)
            finally:
                refresh.append(time.perf_counter() - t0)

        s.catalog.refresh = timed  # type: ignore[method-assign]
        for gid in ids[:50]:  # warm the caches of a few shards like any long-running reader
            s.get_game(gid)
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            gid = rnd.choice(ids)
            t0 = time.perf_counter()
            s.get_game(gid)
            out.append(time.perf_counter() - t0)
    return np.array(out), np.array(refresh)


def _row(name: str, lat: np.ndarray, refresh: np.ndarray) -> str:
    q = np.percentile(lat, [50, 99, 99.9]) * 1000
    r = np.percentile(refresh, [50, 99]) * 1000
    return (f"| {name} | {len(lat):,} | {q[0]:.2f} | {q[1]:.2f} | {q[2]:.1f} | {lat.max() * 1000:.1f} |"
            f" {r[0]:.3f} / {r[1]:.2f} / {refresh.max() * 1000:.1f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between one writer's commits")
    ap.add_argument("--games", type=int, default=5000, help="games in the store before the writers start")
    ap.add_argument("--compact", action="store_true", help="also run `gamestore compact --watch` during the writers")
    args = ap.parse_args(argv)
    from gamestore.backend import BACKEND
    from gamestore.manyshards import make_store_of_shards

    tmp = Path(tempfile.mkdtemp(prefix="bench-ggw-"))
    path = tmp / "store"
    per = 100
    make_store_of_shards(path, args.games // per, games_per_shard=per)
    ids = [f"g{i:08d}-{j:04d}" for i in range(args.games // per) for j in range(per)]
    idle = _reader(path, ids, args.seconds)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), f"w{k}", str(args.interval),
                               str(args.seconds + 3)], env=env, stdout=subprocess.PIPE, text=True)
             for k in range(args.writers)]
    if args.compact:
        procs.append(subprocess.Popen([sys.executable, "-m", "gamestore.cli", "compact", str(path), "--watch",
                                       "--interval", "0.5"], env=env, stdout=subprocess.DEVNULL))
    time.sleep(3)  # writers importing and starting
    busy = _reader(path, ids, args.seconds)
    commits = 0
    for p in procs[: args.writers]:
        out, _ = p.communicate()
        commits += int(out.strip().splitlines()[-1])
    for p in procs[args.writers:]:
        p.terminate()
        p.wait()
    shards = len(os.listdir(path / "shards"))
    print(f"backend={BACKEND} games={args.games:,} writers={args.writers} commits={commits:,}"
          f" ({commits / (args.seconds + 3):.0f}/s) shards at the end={shards:,} load={os.getloadavg()[0]:.1f}")
    print("| reader | calls | p50 ms | p99 ms | p99.9 ms | max ms | of which catalog refresh p50 / p99 / max ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(_row("alone", *idle))
    print(_row(f"{args.writers} writers" + (" + compact --watch" if args.compact else ""), *busy))
    print(json.dumps({"idle_p99_ms": float(np.percentile(idle[0], 99) * 1000),
                      "busy_p99_ms": float(np.percentile(busy[0], 99) * 1000), "busy_max_ms": float(busy[0].max() * 1000),
                      "busy_refresh_max_ms": float(busy[1].max() * 1000)}))


if __name__ == "__main__":
    main()
