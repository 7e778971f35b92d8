"""``get_game`` latency in a reader while writer processes commit shards (a catalog refresh under load).

One run, side by side, in alternating phases of ``--seconds`` each
(``--rounds`` times): the reader calls ``get_game`` on random games of a
5,000-game store as fast as it can while 8 writer processes

- ``idle``: sleep (the machine-noise row: the same processes alive, the load of the moment);
- ``other store``: each commit a one-game shard every ~100 ms into *another* store (the same CPU and disk
  load as the next row, but nothing for the reader's catalog to pick up);
- ``this store``: do the same into the reader's store, whose catalog picks every new shard up.

The difference between the last two rows is what the writers' commits cost the reader's catalog; the
difference between the first two is what sharing the machine with them costs.  With ``--compact`` a
``gamestore compact --watch`` process also merges the reader's store's shards in every phase.

    python benchmarks/bench_get_game_writers.py [--seconds 10] [--rounds 3] [--writers 8] [--interval 0.1]
        [--games 5000] [--shards 50] [--compact]
"""
from __future__ import annotations

import argparse
import gc
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

#: the writer: commits a one-game shard every ``interval`` seconds into the store the control file names
_WRITER = r"""
import json, sys, time, gamestore
from gamestore.testing import synth
here, other, control, wid, interval = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
games = synth.games(1, seed=11)
counts = {}
with gamestore.open(here) as a, gamestore.open(other) as b:
    i = 0
    while True:
        t0 = time.monotonic()
        with open(control) as f:
            mode = f.read().strip()
        if mode == "stop":
            break
        if mode in ("here", "other"):
            s = a if mode == "here" else b
            s.write_games([dict(games[0], game_id=f"{wid}-{i}")])
            s.flush()
            i += 1
            counts[mode] = counts.get(mode, 0) + 1
        time.sleep(max(0.0, interval - (time.monotonic() - t0)))
print(json.dumps(counts))
"""

_PHASES = (("idle", "idle (noise)"), ("other", "writers, other store"), ("here", "writers, this store"))


class _Reader:
    """The reader: one open store, timing each ``get_game``, its catalog refresh and the GC pauses."""

    def __init__(self, path: Path, ids: list[str]) -> None:
        import gamestore

        self.ids = ids
        self.store = gamestore.open(path, create=False)
        self.rnd = random.Random(0)
        self.refresh: list[float] = []
        orig = self.store.catalog.refresh

        def timed(*, force: bool = False) -> bool:  # the catalog's share of each call
            t0 = time.perf_counter()
            try:
                return orig(force=force)
            finally:
                self.refresh.append(time.perf_counter() - t0)

        self.store.catalog.refresh = timed  # type: ignore[method-assign]
        self.gc: list[float] = []
        self._gc_start = 0.0
        gc.callbacks.append(self._on_gc)
        # a long-running reader has the shards it reads open: one game of each shard first (at most 4,096, the
        # catalog's reader cache; with more shards than that, the rows include cold shard opens)
        for shard in sorted({g.split("-")[0] for g in ids})[:4096]:
            self.store.get_game(f"{shard}-0000")

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc.append(time.perf_counter() - self._gc_start)

    def run(self, seconds: float) -> tuple[list[float], list[float], list[float]]:
        lat: list[float] = []
        self.refresh, self.gc = [], []
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            gid = self.rnd.choice(self.ids)
            t0 = time.perf_counter()
            self.store.get_game(gid)
            lat.append(time.perf_counter() - t0)
        return lat, self.refresh, self.gc

    def close(self) -> None:
        gc.callbacks.remove(self._on_gc)
        self.store.close()


def _row(name: str, lat: list[float], refresh: list[float], gcs: list[float], commits: float, load: list[float]) -> str:
    a = np.array(lat) * 1000
    q = np.percentile(a, [50, 99, 99.9])
    r = np.array(refresh) * 1000
    rq = np.percentile(r, [50, 99]) if len(r) else [0.0, 0.0]
    return (f"| {name} | {commits:.0f} | {min(load):.1f}-{max(load):.1f} | {len(a):,} | {q[0]:.2f} | {q[1]:.2f} |"
            f" {q[2]:.1f} | {a.max():.1f} | {rq[0]:.3f} / {rq[1]:.2f} / {r.max() if len(r) else 0:.1f} |"
            f" {max(gcs, default=0) * 1000:.1f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of one phase")
    ap.add_argument("--rounds", type=int, default=3, help="times the three phases are repeated, in turn")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between one writer's commits")
    ap.add_argument("--games", type=int, default=5000, help="games in the store before the writers start")
    ap.add_argument("--shards", type=int, default=50, help="shards holding them (the catalog's size)")
    ap.add_argument("--compact", action="store_true", help="also run `gamestore compact --watch` on the reader's store")
    args = ap.parse_args(argv)
    from gamestore.backend import BACKEND
    from gamestore.manyshards import make_store_of_shards

    tmp = Path(tempfile.mkdtemp(prefix="bench-ggw-"))
    path, other = tmp / "store", tmp / "other"
    per = args.games // args.shards
    make_store_of_shards(path, args.shards, games_per_shard=per, checkpoint=True)
    make_store_of_shards(other, 1, games_per_shard=1)
    ids = [f"g{i:08d}-{j:04d}" for i in range(args.shards) for j in range(per)]
    control = tmp / "control"
    control.write_text("idle")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(other), str(control), f"w{k}",
                               str(args.interval)], env=env, stdout=subprocess.PIPE, text=True)
             for k in range(args.writers)]
    if args.compact:
        procs.append(subprocess.Popen([sys.executable, "-m", "gamestore.cli", "compact", str(path), "--watch",
                                       "--interval", "0.5"], env=env, stdout=subprocess.DEVNULL))
    reader = _Reader(path, ids)
    time.sleep(3)  # writers importing and opening
    results: dict[str, list[list[float]]] = {k: [[], [], []] for k, _ in _PHASES}
    loads: dict[str, list[float]] = {k: [] for k, _ in _PHASES}
    seconds: dict[str, float] = {k: 0.0 for k, _ in _PHASES}
    for _ in range(args.rounds):
        for key, _ in _PHASES:
            control.write_text(key)
            time.sleep(0.5)  # every writer has seen the switch
            loads[key].append(os.getloadavg()[0])
            t0 = time.monotonic()
            for acc, part in zip(results[key], reader.run(args.seconds)):
                acc.extend(part)
            seconds[key] += time.monotonic() - t0 + 0.5
            loads[key].append(os.getloadavg()[0])
    control.write_text("stop")
    commits: dict[str, int] = {}
    for p in procs[: args.writers]:
        out, _ = p.communicate()
        for k, v in json.loads(out.strip().splitlines()[-1]).items():
            commits[k] = commits.get(k, 0) + v
    for p in procs[args.writers:]:
        p.terminate()
        p.wait()
    reader.close()
    shards = len(os.listdir(path / "shards"))
    print(f"backend={BACKEND} games={args.games:,} shards={args.shards:,} writers={args.writers} interval={args.interval}s"
          f" phases={args.rounds}x{args.seconds:g}s shards at the end={shards:,}"
          + (" compact --watch" if args.compact else ""))
    print("| reader, while 8 writer processes ... | commits/s | load avg | calls | p50 ms | p99 ms | p99.9 ms | max ms"
          " | of which catalog refresh p50 / p99 / max ms | longest GC pause ms |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key, name in _PHASES:
        print(_row(name, *results[key], commits.get(key, 0) / seconds[key], loads[key]))
    summary = {}
    for key, _ in _PHASES:
        a = np.array(results[key][0]) * 1000
        summary[key] = {"p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max())}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
