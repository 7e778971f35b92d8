"""Why each late probe of bench_event_loop was late: the loop thread's time, and its GIL holder's, from the scheduler.

    python -m benchmarks.loop_gil_trace --games 300 [--rounds 2] [--over 1.0]

Runs bench_event_loop's gamestore workload (``open_async`` defaults) under ``perf record`` of the scheduler's
switch and wake-up events on every CPU (Linux, perf, permission to trace: root, or
``kernel.perf_event_paranoid`` <= 1 with tracefs readable), with perf's clock set to ``CLOCK_MONOTONIC`` so its
events line up with the probe's.  For every probe whose lag without the loop's run-queue waits is over
``--over`` ms, the time from when its sleep was due to when it woke is split by the loop thread's state:

- running (its own work: callbacks, a GC pass in its thread);
- runnable, waiting for a CPU (what ran there: our threads or other processes);
- asleep on a lock it started waiting for inside that time (the GIL, nearly always): split again by what the
  thread that woke it (the one that released the lock) did meanwhile: ran, waited for a CPU, or slept itself;
  each by that thread's role (the pool call or helper it was running, by kernel thread id);
- asleep in its timed wait past the due time (the timer's own lateness).

Unlike ``bench_event_loop --gil-holders``, nothing samples from user space, so the figures are not bent by a
sampler that itself waits for a CPU.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import gc
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
from benchmarks.loop_recorder import Recorder, ThreadSampler

_EVENTS = ["sched:sched_switch", "sched:sched_waking", "sched:sched_migrate_task", "syscalls:sys_enter_epoll_wait",
           "syscalls:sys_exit_epoll_wait"]
_HEAD = re.compile(r"\s*(-?\d+)/(-?\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(?:sched|syscalls):(\w+):\s+(.*)$")
_FIELD = re.compile(r"(\w+)=(\S+)")

RUN, QUEUE, SLEEP = "run", "queue", "sleep"


class Timeline:
    """Per thread id: its states as [(start, end, state, cpu)], from sched_switch / sched_waking events; which
    thread woke which; what ran on each CPU; each thread's epoll_wait calls; the threads of process ``pid``."""

    def __init__(self, script: str, pid: int) -> None:
        self.spans: dict[int, list[tuple[float, float, str, int]]] = collections.defaultdict(list)
        self.wakers: dict[tuple[int, float], int] = {}  # (tid, time it became runnable) -> tid that woke it
        self.on_cpu: dict[int, list[tuple[float, float, int]]] = collections.defaultdict(list)  # cpu -> (s, e, tid)
        self.polling: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)  # tid -> epoll_wait calls
        self.own: set[int] = set()
        entered: dict[int, float] = {}
        cur: dict[int, tuple[str, float, int]] = {}  # tid -> (state, since, cpu)
        running: dict[int, tuple[int, float]] = {}  # cpu -> (tid, since)
        for line in script.splitlines():
            m = _HEAD.match(line)
            if not m:
                continue
            tgid, tid, cpu, t, ev, rest = int(m[1]), int(m[2]), int(m[3]), float(m[4]), m[5], m[6]
            if tgid == pid and tid > 0:  # a thread that already ended reads -1
                self.own.add(tid)
            f = dict(_FIELD.findall(rest.replace("==>", " ")))
            if ev == "sys_enter_epoll_wait":
                entered[tid] = t
            elif ev == "sys_exit_epoll_wait":
                if tid in entered:
                    self.polling[tid].append((entered.pop(tid), t))
            elif ev == "sched_switch":
                prev, nxt = int(f["prev_pid"]), int(f["next_pid"])
                self._to(cur, prev, QUEUE if f["prev_state"].startswith("R") else SLEEP, t, cpu)
                self._to(cur, nxt, RUN, t, cpu)
                if cpu in running:
                    r_tid, since = running[cpu]
                    self.on_cpu[cpu].append((since, t, r_tid))
                running[cpu] = (nxt, t)
            elif ev == "sched_waking":
                woken = int(f["pid"])
                if cur.get(woken, (SLEEP,))[0] == SLEEP:
                    self._to(cur, woken, QUEUE, t, int(f.get("target_cpu", cpu)))
                    self.wakers[(woken, t)] = tid
        for tid, (state, since, cpu) in cur.items():
            self.spans[tid].append((since, float("inf"), state, cpu))

    def _to(self, cur: dict, tid: int, state: str, t: float, cpu: int) -> None:
        if tid == 0:  # the idle task
            return
        old = cur.get(tid)
        if old is not None:
            self.spans[tid].append((old[1], t, old[0], old[2]))
        cur[tid] = (state, t, cpu)

    def in_poll(self, tid: int, t: float) -> bool:
        """Whether thread ``tid`` was inside epoll_wait at time ``t`` (else asleep on a lock: the GIL)."""
        return any(a <= t <= b for a, b in self.polling.get(tid, []))

    def within(self, tid: int, a: float, b: float) -> list[tuple[float, float, str, int]]:
        return [(max(s, a), min(e, b), st, c) for s, e, st, c in self.spans.get(tid, []) if e > a and s < b]

    def ran_on(self, cpu: int, a: float, b: float) -> list[tuple[float, int]]:
        return [(min(e, b) - max(s, a), tid) for s, e, tid in self.on_cpu.get(cpu, []) if e > a and s < b]


class _ThreadNames(ThreadSampler):
    """Python threads' names by native id (digits dropped), sampled every 20 ms while a run lasts."""

    period = 0.02

    def sample(self) -> None:
        for t in threading.enumerate():
            if t.native_id is not None:
                self.of[t.native_id] = re.sub(r"[-_]?\d+$", "", t.name)


def analyse(tl: Timeline, result: dict, rec: Recorder, names: dict[int, str], loop_tid: int, over: float) -> dict:
    """Late probes' time by the loop's state (and its GIL releaser's), plus the run's CPU per role."""

    def role(tid: int, t: float) -> str:
        if tid == loop_tid:
            return "the loop"
        for a, b, i, name in rec.tids:
            if i == tid and a <= t <= b:
                return name
        if tid in names:
            return f"ours, no call ({names[tid]})"
        return "ours, native (DuckDB, zstd, Arrow)" if tid in tl.own else "another process"

    parts: collections.Counter[str] = collections.Counter()
    queue_by: collections.Counter[str] = collections.Counter()
    n = 0
    overshoot = [0.0] * len(result["lags"])  # of each late probe's lag, its sleep in epoll_wait past the due time
    for i, (wake, lag, q) in enumerate(zip(result["wakes"], result["lags"], result["queued"])):
        if (lag - q) * 1000 <= over:
            continue
        n += 1
        a, b = wake - lag, wake  # from the time the sleep was due to the wake-up
        for s, e, st, cpu in tl.within(loop_tid, a, b):
            if st == RUN:
                parts["loop running"] += e - s
            elif st == QUEUE:
                parts["loop waiting for a CPU"] += e - s
                for d, tid in tl.ran_on(cpu, s, e):
                    queue_by[f"loop's CPU ran: {role(tid, s)}"] += d
            else:
                full = next((x for x in tl.spans[loop_tid] if x[0] <= s < x[1]), None)
                if full is None or tl.in_poll(loop_tid, full[0]):  # the timed wait itself, past its due time
                    parts["loop asleep in epoll_wait past its timer"] += e - s
                    overshoot[i] += e - s
                    continue
                waker = tl.wakers.get((loop_tid, full[1]))
                if waker is None:
                    parts["GIL wait: releaser unknown"] += e - s
                    continue
                who = role(waker, full[1])
                for ws, we, wst, wcpu in tl.within(waker, s, e):
                    parts[f"GIL wait: its releaser {wst}s ({who})"] += we - ws
                    if wst == QUEUE:
                        for d, tid in tl.ran_on(wcpu, ws, we):
                            queue_by[f"releaser's CPU ran: {role(tid, ws)}"] += d
    t0, t1 = result["wakes"][0], result["wakes"][-1]
    cpu_by: collections.Counter[str] = collections.Counter()
    edges: list[tuple[float, int]] = []
    for tid in tl.own:
        for s, e, st, _c in tl.within(tid, t0, t1):
            if st == RUN:
                cpu_by[role(tid, (s + e) / 2)] += e - s
            if tid != loop_tid and st in (RUN, QUEUE):
                edges += [(s, 1), (e, -1)]
    busy: collections.Counter[int] = collections.Counter()  # seconds with N of our other threads wanting a CPU
    level, last = 0, t0
    for t, d in sorted(edges):
        busy[level] += t - last
        level, last = level + d, t
    return {"late": n, "parts": parts, "queue_by": queue_by, "cpu": cpu_by, "busy": busy, "wall": t1 - t0,
            "p99_without_overshoot": float(np.percentile(np.array(result["lags"]) - np.array(overshoot), 99)) * 1000}


def traced_run(path: Path, games: list[dict], data: Path, over: float, **kw: object) -> tuple[dict, dict]:
    rec = Recorder(native=True)
    perf = subprocess.Popen(["perf", "record", "-k", "CLOCK_MONOTONIC", "-a", "-o", str(data)]
                            + [x for e in _EVENTS for x in ("-e", e)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # perf's start-up, outside the run
    try:
        gc.collect()
        with _ThreadNames() as names:
            result = asyncio.run(run_gamestore(path, games, batch=4, flush_every=5, workers=4, switch_interval=None,
                                               recorder=rec, **kw))  # type: ignore[arg-type]
    finally:
        perf.send_signal(signal.SIGINT)
        _, err = perf.communicate(timeout=120)
    if not data.exists():
        raise SystemExit(f"perf record failed: {err.decode(errors='replace').strip()[-400:]}")
    script = subprocess.run(["perf", "script", "-i", str(data), "-F", "pid,tid,cpu,time,event,trace"],
                            capture_output=True, text=True, check=True).stdout
    return result, analyse(Timeline(script, os.getpid()), result, rec, names.of, threading.get_native_id(), over)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--over", type=float, default=1.0, help="probes later than this without run-queue waits (ms)")
    p.add_argument("--niceness", type=int, default=priority.DEFAULT_NICENESS)
    p.add_argument("--yield-woken", choices=["on", "off"], nargs="+", default=["on"],
                   help="a traced run per value and round: whether handover looks step aside for a woken loop"
                        " (bench_event_loop --yield-woken)")
    args = p.parse_args(argv)
    if shutil.which("perf") is None:
        p.error("needs perf (linux-perf) on PATH")
    games = corpus(args.games, 0)
    root = Path(tempfile.mkdtemp(prefix="gs-bench-giltrace-"))
    out: list[tuple[str, dict, dict]] = []
    try:
        asyncio.run(run_gamestore(root / "warm-up", games[:8], batch=4, flush_every=1, workers=4,
                                  switch_interval=None))
        for rnd in range(args.rounds):
            for y in args.yield_woken if rnd % 2 == 0 else args.yield_woken[::-1]:
                out.append((y, *traced_run(root / f"s{rnd}", games, root / f"t{rnd}.data", args.over,
                                           niceness=args.niceness, yield_woken=y == "on")))
                shutil.rmtree(root / f"s{rnd}", ignore_errors=True)
                (root / f"t{rnd}.data").unlink(missing_ok=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"late probes of the event loop by scheduler state, {len(games)} games, encoder backend {backend.BACKEND},"
          f" {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    for variant in args.yield_woken:
        runs = [(r, a) for y, r, a in out if y == variant]
        print()
        print(f"## yielding to a woken loop: {variant}")
        for r, a in runs:
            print(f"round: lag p99 {r['p99']:.2f} ms, without run-queue waits {r['own_p99']:.2f}, without the late"
                  f" probes' sleep in epoll_wait past their timer {a['p99_without_overshoot']:.2f},"
                  f" {len(games) / r['elapsed']:.0f} games/s, {r['reads']} reads;"
                  f" {a['late']} probes over {args.over:g} ms without run-queue waits")
        report(runs)
    return 0


def report(runs: list[tuple[dict, dict]]) -> None:
    total: dict[str, collections.Counter] = {k: collections.Counter() for k in ("parts", "queue_by", "cpu", "busy")}
    for _r, a in runs:
        for k, c in total.items():
            c.update(a[k])
    late = sum(total["parts"].values())
    print(f"their late time, {late * 1000:.0f} ms, by what the loop's thread was doing (ms, share):")
    for k, v in total["parts"].most_common(16):
        print(f"  {k}: {v * 1000:.1f} ({v / late * 100:.0f}%)")
    print("who ran on the CPU while the loop, or the thread that was to hand it the GIL, waited for one (ms):")
    for k, v in total["queue_by"].most_common(12):
        print(f"  {k}: {v * 1000:.1f}")
    wall = sum(a["wall"] for _r, a in runs)
    print(f"CPU of this process over the runs ({wall:.1f} s): {sum(total['cpu'].values()) / wall:.2f} cores;"
          " by role (cores): " + ", ".join(f"{k} {v / wall:.2f}" for k, v in total["cpu"].most_common(12)))
    print("share of the time with N of our threads (the loop's aside) running or waiting for a CPU: "
          + ", ".join(f"{k}: {v / wall * 100:.0f}%" for k, v in sorted(total["busy"].items()) if k >= 0))


if __name__ == "__main__":
    sys.exit(main())
