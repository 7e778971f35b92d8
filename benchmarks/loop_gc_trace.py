"""Garbage collections during bench_event_loop's workload: which thread runs them, how long, and how much of the
loop's late time they explain; and how many young objects the async write and read paths leave per game.

    python -m benchmarks.loop_gc_trace --games 300 [--rounds 2] [--over 1.0]

Runs bench_event_loop's gamestore workload (``open_async`` defaults) with a ``gc.callbacks`` hook that records,
for every collection, the native id of the thread that ran it, its generation, its start and stop
(``time.perf_counter_ns``: ``CLOCK_MONOTONIC`` on Linux, the clock of the loop's ``time()``, so the spans line up
with the probe's wake-ups) and the thread's CPU time inside it (``time.thread_time_ns``: a collection whose wall
time is far above its CPU time was preempted while it held the GIL).  Each collection is attributed to what that
thread ran then (the loop, or the pool call / helper by kernel thread id).

For every probe later than ``--over`` ms without the loop thread's run-queue waits (the lag the program's own
threads caused), the tracer sums the collections' time inside the window from when its sleep was due to when it
woke.  During a collection every other thread of the process waits for the GIL, so that overlap is loop time the
collection took, whoever ran it.  It prints that sum against the late time, against what collections would
overlap by chance (their share of the run's wall time), and p99 with each probe's overlap taken out (an upper
bound of what removing those collections alone could gain).

Then, outside the event loop, the same calls made synchronously: per game written (``write_games`` + ``flush``)
and per game read (``get_game``), the young collections they trigger at the default thresholds and the young
objects they leave (``gc.get_count()[0]`` grows by one per new container tracked by the collector and shrinks
by one per freed one).

``--carry on off`` runs each round with and without the async API's pause that lasts until ``get_game``'s record
reaches the awaiting task (``gamestore.gcpause.carry``), alternated, side by side.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import gamestore
from gamestore import backend, gcpause

from benchmarks.bench_event_loop import corpus, run_gamestore
from benchmarks.loop_recorder import Recorder


class GcTrace:
    """Every collection while a ``with`` block lasts: (start s, stop s, generation, native thread id, CPU s,
    objects collected)."""

    def __init__(self) -> None:
        self.passes: list[tuple[float, float, int, int, float, int]] = []
        self._open: dict[int, tuple[int, int]] = {}

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        tid = threading.get_native_id()
        if phase == "start":
            self._open[tid] = (time.perf_counter_ns(), time.thread_time_ns())
        elif tid in self._open:
            t0, c0 = self._open.pop(tid)
            self.passes.append((t0 / 1e9, time.perf_counter_ns() / 1e9, info["generation"], tid,
                                (time.thread_time_ns() - c0) / 1e9, info["collected"]))

    def __enter__(self) -> "GcTrace":
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)


def _role(rec: Recorder, loop_tid: int, tid: int, t: float) -> str:
    if tid == loop_tid:
        return "the loop"
    for a, b, i, name in rec.tids:
        if i == tid and a <= t <= b:
            return name
    return "ours, between calls"


def traced_run(path: Path, games: list[dict], over: float, **kw: Any) -> dict:
    rec = Recorder(native=True)
    trace = GcTrace()
    gc.collect()
    with trace:
        result = asyncio.run(run_gamestore(path, games, batch=4, flush_every=5, workers=4, switch_interval=None,
                                           recorder=rec, **kw))
    loop_tid = threading.get_native_id()
    t0, t1 = result["wakes"][0] - result["lags"][0] - 0.001, result["wakes"][-1]
    passes = [p for p in trace.passes if p[1] > t0 and p[0] < t1]
    by_role: dict[tuple[str, int], list[tuple[float, float]]] = collections.defaultdict(list)
    for s, e, gen, tid, cpu, _n in passes:
        by_role[(_role(rec, loop_tid, tid, s), gen)].append((e - s, cpu))
    wall = t1 - t0
    gc_wall = sum(e - s for s, e, *_ in passes)
    return {"result": result, "by_role": by_role, "duty": gc_wall / wall, "wall": wall, "passes": len(passes),
            **late_overlap(passes, result["wakes"], result["lags"], result["queued"], over)}


def late_overlap(passes: list[tuple[float, float, int, int, float, int]], wakes: list[float], lags: list[float],
                 queued: list[float], over: float) -> dict[str, Any]:
    """Of the probes later than ``over`` ms without run-queue waits: how many, their late time (s), how many
    overlapped a collection, the collections' time inside their late windows (s; at most in one probe), and p99
    of all probes' lags (ms) with each late probe's overlap taken out."""
    late = overlap = most = 0.0
    n_late = n_hit = 0
    cut = np.array(lags, dtype=float)
    for i, (wake, lag, q) in enumerate(zip(wakes, lags, queued)):
        if (lag - q) * 1000 <= over:
            continue
        a, b = wake - lag, wake  # from when the sleep was due to the wake-up
        o = sum(min(e, b) - max(s, a) for s, e, *_ in passes if e > a and s < b)
        n_late += 1
        n_hit += o > 0
        late += lag - q
        overlap += o
        cut[i] = lag - o
        most = max(most, o)
    return {"late": n_late, "late_hit": n_hit, "late_s": late, "overlap_s": overlap, "max_overlap_s": most,
            "p99_cut": float(np.percentile(cut, 99)) * 1000}


def young_per_game(root: Path, games: list[dict], *, batch: int = 4, flush_every: int = 5,
                   reads: int = 200) -> dict[str, float]:
    """Synchronous writes and reads of ``games``: young collections per game (default thresholds) and young
    objects left per call (net containers, with the collector off)."""
    out: dict[str, float] = {}
    trace = GcTrace()
    with gamestore.open(root / "count", create=True) as store:
        gc.collect()
        with trace:
            for i in range(0, len(games), batch):
                store.write_games(games[i:i + batch])
                if (i // batch + 1) % flush_every == 0:
                    store.flush()
            store.flush()
        out["write: young collections per game"] = sum(1 for p in trace.passes if p[2] == 0) / len(games)
        out["write: older collections per game"] = sum(1 for p in trace.passes if p[2] > 0) / len(games)
        out["write: collection ms per game"] = sum(p[1] - p[0] for p in trace.passes) * 1000 / len(games)
        again = [{**g, "game_id": g["game_id"] + "-again"} for g in games[:100]]
        gc.collect()
        gc.disable()
        try:
            n0 = gc.get_count()[0]
            store.write_games(again)
            out["write: young objects left per game (buffered)"] = (gc.get_count()[0] - n0) / 100
        finally:
            gc.enable()
        ids = [g["game_id"] for g in games]
        trace.passes.clear()
        gc.collect()
        with trace:
            for k in range(reads):
                store.get_game(ids[k % len(ids)])
        out["read: young collections per game"] = sum(1 for p in trace.passes if p[2] == 0) / reads
        out["read: older collections per game"] = sum(1 for p in trace.passes if p[2] > 0) / reads
        out["read: collection ms per game"] = sum(p[1] - p[0] for p in trace.passes) * 1000 / reads
        gc.collect()
        gc.disable()
        try:
            n0 = gc.get_count()[0]
            kept = [store.get_game(ids[k % len(ids)]) for k in range(50)]
            out["read: young objects left per game (the record)"] = (gc.get_count()[0] - n0) / len(kept)
        finally:
            gc.enable()
        del kept
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--over", type=float, default=1.0, help="probes later than this without run-queue waits (ms)")
    p.add_argument("--carry", choices=["on", "off"], nargs="+", default=["on"],
                   help="a traced run per value and round: gamestore.gcpause.carry on or off (default: on)")
    args = p.parse_args(argv)
    games = corpus(args.games, 0)
    root = Path(tempfile.mkdtemp(prefix="gs-bench-gctrace-"))
    out: list[tuple[str, dict]] = []
    try:
        asyncio.run(run_gamestore(root / "warm-up", games[:8], batch=4, flush_every=1, workers=4,
                                  switch_interval=None))
        for rnd in range(args.rounds):
            for v in args.carry if rnd % 2 == 0 else args.carry[::-1]:
                gcpause.carry = v == "on"
                out.append((v, traced_run(root / f"s{rnd}{v}", games, args.over)))
                shutil.rmtree(root / f"s{rnd}{v}", ignore_errors=True)
        gcpause.carry = True
        counts = _young(root, games)
    finally:
        gcpause.carry = True
        shutil.rmtree(root, ignore_errors=True)
    print(f"garbage collections during the event-loop workload, {len(games)} games, encoder backend {backend.BACKEND},"
          f" {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    for v in args.carry:
        runs = [a for x, a in out if x == v]
        print()
        print(f"## gamestore.gcpause.carry {v}")
        for a in runs:
            r = a["result"]
            print(f"round: lag p99 {r['p99']:.2f} ms, max {r['max']:.1f} (without run-queue waits {r['own_p99']:.2f} /"
                  f" {r['own_max']:.1f}), {len(games) / r['elapsed']:.0f} games/s, {r['reads']} reads;"
                  f" {a['passes']} collections, {a['duty'] * 100:.1f}% of the run's wall time; {a['late']} probes"
                  f" over {args.over:g} ms without run-queue waits, {a['late_hit']} overlapped a collection;"
                  f" collections inside their late windows {a['overlap_s'] * 1000:.1f} of {a['late_s'] * 1000:.1f} ms"
                  f" ({a['overlap_s'] / max(a['late_s'], 1e-9) * 100:.0f}%; by chance ~{a['duty'] * 100:.0f}%), at"
                  f" most {a['max_overlap_s'] * 1000:.2f} ms in one probe; p99 with that taken out {a['p99_cut']:.2f}")
        merged: dict[tuple[str, int], list[tuple[float, float]]] = collections.defaultdict(list)
        for a in runs:
            for k, xs in a["by_role"].items():
                merged[k] += xs
        wall = sum(a["wall"] for a in runs)
        print("collections by the thread that ran them (what it was running) and generation: count, wall ms total /"
              " mean / max, CPU ms total, wall per second of run:")
        for (who, gen), xs in sorted(merged.items(), key=lambda kv: -sum(w for w, _c in kv[1])):
            w = [x for x, _c in xs]
            print(f"  {who}, gen {gen}: {len(xs)}, {sum(w) * 1000:.1f} / {np.mean(w) * 1000:.3f} / {max(w) * 1000:.2f},"
                  f" CPU {sum(c for _w, c in xs) * 1000:.1f}, {sum(w) * 1000 / wall:.2f} ms/s")
    print()
    print("per game, synchronous calls: " + "; ".join(f"{k} {x:.2f}" for k, x in counts.items()))
    return 0


def _young(root: Path, games: list[dict]) -> dict[str, float]:
    shutil.rmtree(root / "count", ignore_errors=True)
    try:
        return young_per_game(root, games)
    finally:
        shutil.rmtree(root / "count", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
