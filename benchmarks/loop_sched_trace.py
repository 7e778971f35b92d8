"""Whose threads the event loop's thread waits for when it wakes: the scheduler's side of bench_event_loop.

    python -m benchmarks.loop_sched_trace --games 300 [--loop-slice 0.0001] [--rounds 2]

Runs bench_event_loop's gamestore workload (``open_async`` defaults unless asked) under ``perf sched record -a``
(Linux; needs perf and permission to trace the scheduler: root, or ``kernel.perf_event_paranoid`` <= 1
with tracefs readable), then reads ``perf sched timehist``: for every time the loop's thread was
switched in, how long it had waited runnable (its scheduling delay) and what ran on that CPU meanwhile,
split into this process's own threads and everything else (other processes, kernel threads).  The lag
percentiles of bench_event_loop cannot tell those apart; on a shared machine the second dominates.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from gamestore import backend, priority

from benchmarks.bench_event_loop import corpus, run_gamestore
from benchmarks.loop_recorder import ThreadSampler

_LINE = re.compile(r"\s*([\d.]+)\s+\[(\d+)\]\s+(.+?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$")
_TID = re.compile(r"\[(\d+)(?:/(\d+))?\]$")


def attribute(timehist: str, loop_tid: int, pid: int, niceness: dict[int, int] | None = None) -> dict:
    """The loop thread's switch-ins from ``perf sched timehist`` output: delays (s), and per switch-in the part
    of its delay its CPU spent running this process's threads; the tasks that ran during delays > 1 ms."""
    runs: dict[int, list[tuple[float, float, str]]] = collections.defaultdict(list)
    loop_in: list[tuple[float, int, float]] = []  # (switch-in time, cpu, delay)
    for line in timehist.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        t, cpu, task, _wait, delay, run = float(m[1]), int(m[2]), m[3], m[4], float(m[5]) / 1e3, float(m[6]) / 1e3
        runs[cpu].append((t - run, t, task))
        ids = _TID.search(task)
        if ids and int(ids[1]) == loop_tid:
            loop_in.append((t - run, cpu, delay))
    delays, own = [], []
    culprits: collections.Counter[str] = collections.Counter()
    for start, cpu, delay in loop_in:
        mine = 0.0
        for a, b, task in runs[cpu]:
            overlap = min(b, start) - max(a, start - delay)
            if overlap <= 0 or task.startswith("<idle>"):
                continue
            ids = _TID.search(task)
            if ids and int(ids[2] or ids[1]) == pid:
                mine += overlap
            if delay > 0.001:
                if ids and int(ids[2] or ids[1]) == pid:
                    nice = (niceness or {}).get(int(ids[1]))
                    culprits[f"own {task}" + ("" if nice is None else f" (nice {nice})")] += overlap
                else:
                    culprits[f"other {task}"] += overlap
        delays.append(delay)
        own.append(mine)
    return {"delays": delays, "own": own, "culprits": culprits}


class _Niceness(ThreadSampler):
    """This process's threads' niceness, sampled every 50 ms while a run lasts (threads come and go)."""

    def sample(self) -> None:
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    self.of[int(tid)] = int(f.read().rsplit(")", 1)[1].split()[16])
            except (OSError, ValueError, IndexError):
                pass  # the thread ended meanwhile


def traced_run(path: Path, games: list[dict], loop_slice: float | None, niceness: int,
               data: Path) -> tuple[dict, dict]:
    perf = subprocess.Popen(["perf", "sched", "record", "-a", "-o", str(data)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    time.sleep(1.0)  # perf's start-up, outside the run
    try:
        with _Niceness() as nice:
            result = asyncio.run(run_gamestore(path, games, batch=4, flush_every=5, workers=4, switch_interval=None,
                                               niceness=niceness, loop_slice=loop_slice))
    finally:
        perf.send_signal(signal.SIGINT)
        _, err = perf.communicate(timeout=120)
    if perf.returncode not in (0, -signal.SIGINT) or not data.exists():
        raise SystemExit(f"perf sched record failed: {err.decode(errors='replace').strip()[-400:]}")
    hist = subprocess.run(["perf", "sched", "timehist", "-i", str(data)], capture_output=True, text=True,
                          check=True).stdout
    return result, attribute(hist, threading.get_native_id(), os.getpid(), nice.of)


def _name(variant: tuple[int, float | None]) -> str:
    nice, loop_slice = variant
    return f"worker_niceness {nice}" + ("" if loop_slice is None else f", loop_slice {loop_slice * 1000:g} ms")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", type=int, default=300)
    p.add_argument("--loop-slice", type=float, nargs="*", default=[], metavar="SECONDS",
                   help="also run with open_async(loop_slice=...) for each value, alternated with the defaults")
    p.add_argument("--niceness", type=int, nargs="+", default=[priority.DEFAULT_NICENESS], metavar="N",
                   help="a run per value: open_async(worker_niceness=...) (default: the default, 10)")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    if shutil.which("perf") is None:
        p.error("needs perf (linux-perf) on PATH")
    games = corpus(args.games, 0)
    root = Path(tempfile.mkdtemp(prefix="gs-bench-sched-"))
    variants = [(n, None) for n in args.niceness] + [(args.niceness[0], ls) for ls in args.loop_slice]
    rows: dict[tuple[int, float | None], list[tuple[dict, dict]]] = {v: [] for v in variants}
    try:
        asyncio.run(run_gamestore(root / "warm-up", games[:8], batch=4, flush_every=1, workers=4,
                                  switch_interval=None))
        for rnd in range(args.rounds):
            for k, v in enumerate(variants if rnd % 2 == 0 else variants[::-1]):
                rows[v].append(traced_run(root / f"s{rnd}-{k}", games, v[1], v[0], root / f"sched{rnd}-{k}.data"))
                shutil.rmtree(root / f"s{rnd}-{k}", ignore_errors=True)
                (root / f"sched{rnd}-{k}.data").unlink(missing_ok=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"the loop thread's scheduling delays, {len(games)} games, encoder backend {backend.BACKEND},"
          f" {os.cpu_count()} cores, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    print()
    print("| run | lag p99 (ms) | p99 without run-queue waits | switch-ins | delay p99 (ms) | delay max"
          " | of it on our threads, p99 (ms) | max | delays > 1 ms | > 1 ms on our threads |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for v, pairs in rows.items():
        d = np.array([x for _, a in pairs for x in a["delays"]]) * 1e3
        o = np.array([x for _, a in pairs for x in a["own"]]) * 1e3
        lag = ", ".join(f"{r['p99']:.2f}" for r, _ in pairs)
        own_lag = ", ".join(f"{r['own_p99']:.2f}" for r, _ in pairs)
        name = _name(v)
        print(f"| {name} | {lag} | {own_lag} | {len(d)} | {np.percentile(d, 99):.2f} | {d.max():.1f} |"
              f" {np.percentile(o, 99):.2f} | {o.max():.1f} | {int((d > 1).sum())} | {int((o > 1).sum())} |")
    for v, pairs in rows.items():
        total: collections.Counter[str] = collections.Counter()
        for _, a in pairs:
            total.update(a["culprits"])
        name = _name(v)
        print(f"{name}: ran on the loop's CPU during its delays > 1 ms (ms): "
              + ", ".join(f"{k} {t * 1000:.1f}" for k, t in total.most_common(8)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
