"""Event-loop lag of an asyncio program that writes and reads at full speed.

    python -m benchmarks.bench_event_loop --games 300

Runs, side by side, of the same program on the same synthetic corpus:

- ``gamestore``: ``gamestore.open_async``; the writer task awaits
  ``write_games`` per batch and ``flush()`` every few batches, the reader
  task awaits ``get_game``, ``count_games``, a SQL aggregate, and a
  ``scan_moves`` stream.  Once with the interpreter's switch interval left
  alone (Python's 5 ms: what ``open_async`` does unless asked) and once with
  ``open_async(switch_interval=0.001)``, the documented opt-in; each with the
  pool calls' GIL handover (``handover_interval``, on by default: gamestore/gil.py)
  and without it (``handover_interval=None``), and each of those with
  gamestore's threads at a lower priority (``worker_niceness``, default 10:
  gamestore/priority.py) and without (0).  Then, for each niceness, with the
  first switch interval and handover, the loop's thread asking for a short
  scheduler slice (``open_async(loop_slice=...)``, ``--loop-slice``, default
  0.1 ms; the kernel's is 1.4 ms on Linux 6.18).  The variants run ``--rounds``
  times, alternated (every other round in reverse order), and each row pools
  its rounds' probes: a loaded machine's drift hits every variant alike.
- ``sqlite``: the GameReplayDB-shaped SQLite store (benchmarks/sqlite_baseline.py)
  driven the way the pipeline drives it today: the same calls made directly
  in the coroutines (blocking sqlite3 on the loop thread).

Last, the probe beside cores+1 threads busy in compiled code without the GIL, at each
niceness, with the loop's slice and with the kernel's: the scheduler's part of the lag alone.

``--gc-carry on off`` runs the first variant also with the async ``get_game``'s collector pause ending in the pool
(``gamestore.gcpause.carry = False``) instead of once the task has the record (benchmarks/loop_gc_trace.py).

A probe task sleeps 1 ms in a loop and records how late it wakes up; the
lag percentiles are the result (goal for gamestore: p99 < 2 ms, max < 20 ms).
The last column leaves out the time the loop's thread waited for a CPU (Linux
``schedstat``): what the program's own threads (the GIL) caused, which a busy
machine does not blur.
Generation of the corpus is not part of the measurement.  Each gamestore run
ends with a breakdown of its probes later than 2 ms: the garbage-collector
pass (generation) or the pool calls each one overlapped (by the lag without run-queue waits).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Awaitable, Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import gamestore
from gamestore import backend, gcpause, gil, priority
from gamestore.testing import synth

from benchmarks import gil_holders
from benchmarks.loop_recorder import Recorder, gap_lines
from benchmarks.sqlite_baseline import SqliteBaseline

PROBE_S = 0.001
SQL = "SELECT board_type, num_players, count(*), avg(num_moves) FROM games GROUP BY 1, 2"
SQLITE_SQL = "SELECT board_type, num_players, count(*), avg(total_moves) FROM games GROUP BY 1, 2"


def corpus(n: int, seed: int) -> list[dict]:
    per = [("square8", 2, 0.5), ("hex8", 2, 0.25), ("square8", 4, 0.15), ("square19", 2, 0.10)]
    out: list[dict] = []
    for i, (board, players, share) in enumerate(per):
        out += synth.games(max(1, round(n * share)), board_type=board, num_players=players, seed=seed * 10 + i)
    random.Random(seed).shuffle(out)
    return out


class Probe:
    """Measures how late a 1 ms sleep wakes up while the workload runs."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.queued: list[float] = []  # of each lag, the time the loop's thread waited for a CPU (run queue)
        self.wakes: list[float] = []  # loop.time() (time.monotonic) of each wake-up
        self.running = True

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        sched = _SchedStat()
        while self.running:
            q0 = sched.queued()
            t0 = loop.time()
            await asyncio.sleep(PROBE_S)
            t1 = loop.time()
            lag = max(0.0, t1 - t0 - PROBE_S)
            self.lags.append(lag)
            self.queued.append(min(lag, sched.queued() - q0))
            self.wakes.append(t1)


class _SchedStat:
    """Seconds the calling thread has spent runnable but waiting for a CPU (Linux ``schedstat``; 0 elsewhere).

    A probe's lag is its time off the CPU beyond the sleep: waiting in the kernel's run queue (other
    processes, the machine's load) or sleeping on a lock (the GIL held by another thread).  Subtracting
    the first leaves the part that the program's own threads caused, a steadier figure on a busy machine.
    """

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open(f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)
        except OSError:
            self._fd = None

    def queued(self) -> float:
        if self._fd is None:
            return 0.0
        return int(os.pread(self._fd, 128, 0).split()[1]) / 1e9


async def idle_floor(seconds: float) -> dict:
    """The probe alone: the lag the machine itself adds (other processes, timer slack)."""
    probe = Probe()
    task = asyncio.ensure_future(probe.run())
    await asyncio.sleep(seconds)
    probe.running = False
    await task
    return {"elapsed": seconds, "reads": 0, "scanned_moves": 0, **_stats(probe)}


async def scheduler_alone(niceness: int, loop_slice: float | None, threads: int, seconds: float) -> dict:
    """The probe while ``threads`` threads run compiled code without the GIL (sha256 of 1 MB) at ``niceness``
    (gamestore.priority.lower, as open_async's pool), the loop's thread at scheduler slice ``loop_slice`` (None:
    the kernel's): the kernel's part of the lag, without the GIL's."""
    stop = threading.Event()
    data = os.urandom(1 << 20)

    def burn() -> None:
        priority.lower(niceness)
        while not stop.is_set():
            hashlib.sha256(data).digest()

    burners = [threading.Thread(target=burn) for _ in range(threads)]
    for t in burners:
        t.start()
    unhold = priority.hold_slice(loop_slice) if loop_slice is not None else None
    try:
        return await idle_floor(seconds)
    finally:
        if unhold is not None:
            unhold()
        stop.set()
        for t in burners:
            t.join()


def _stats(probe: Probe) -> dict:
    return {"lags": probe.lags, "queued": probe.queued, "wakes": probe.wakes, **_percentiles(probe.lags, probe.queued)}


def _percentiles(lags: list[float], queued: list[float]) -> dict:
    a = np.array(lags) * 1000.0
    own = a - np.array(queued) * 1000.0  # the lag without the loop thread's run-queue waits
    return {"samples": len(a), "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max()), "over_20ms": int((a > 20).sum()),
            "own_p99": float(np.percentile(own, 99)), "own_max": float(own.max())}


async def run_gamestore(path: Path, games: list[dict], *, batch: int, flush_every: int, workers: int,
                        switch_interval: float | None, handover_interval: float | None = 0.0005,
                        niceness: int = priority.DEFAULT_NICENESS, loop_slice: float | None = None,
                        holders: gil_holders.HolderSampler | None = None, timelines: int = 0,
                        recorder: Recorder | None = None, yield_woken: bool = True, gc_carry: bool = True) -> dict:
    probe = Probe()
    if gil._c is not None:
        gil._c.set_yield_woken(yield_woken)
    gcpause.carry = gc_carry
    written: list[str] = []
    ops = {"reads": 0, "scanned_moves": 0}
    rec = recorder or Recorder(holders, timelines)
    pool = rec.executor(workers, niceness)
    if holders is not None and gil._c is not None:
        gil._c.track_gaps(0.0005)
        gil._c.gaps()
    with rec, holders or contextlib.nullcontext():
        try:
            async with gamestore.open_async(path, executor=pool, switch_interval=switch_interval,
                                            handover_interval=handover_interval, worker_niceness=niceness,
                                            loop_slice=loop_slice) as store:
                out = await _drive_gamestore(store, probe, games, written, ops, batch=batch, flush_every=flush_every)
        finally:
            pool.shutdown(wait=True)
            if gil._c is not None:
                gil._c.set_yield_woken(True)
            gcpause.carry = True
    out["breakdown"] = rec.breakdown(probe) + out["breakdown"]  # after the sampler's exit: its samples are in
    if holders is not None and gil._c is not None:
        gil._c.track_gaps(0)
        out["breakdown"] += gap_lines(rec, gil._c.gaps())
    return out


async def _drive_gamestore(store: gamestore.AsyncGameStore, probe: Probe, games: list[dict],
                           written: list[str], ops: dict, *, batch: int, flush_every: int) -> dict:
    async def writer() -> None:
        pending: list[str] = []
        for i in range(0, len(games), batch):
            chunk = games[i : i + batch]
            await store.write_games(chunk)
            pending.extend(g["game_id"] for g in chunk)
            if (i // batch + 1) % flush_every == 0:
                await store.flush()
                written.extend(pending)  # visible from here on
                pending.clear()
        await store.flush()

    async def reader(done: asyncio.Future) -> None:
        rnd = random.Random(1)
        while not done.done():
            if written:
                await store.get_game(rnd.choice(written))
            await store.count_games("board_type = 'square8'")
            await store.sql(SQL).fetchall()
            ops["reads"] += 3
            if ops["reads"] % 30 == 0:
                async for b in store.scan_moves(columns=["game_id", "move_number", "policy"], batch_size=8192):
                    ops["scanned_moves"] += b.num_rows
            await asyncio.sleep(0)

    before = gil.counts()
    elapsed = await _probed(probe, writer, reader)
    after = gil.counts()
    assert await store.count_games() == len(games)
    handover = ", ".join(f"{k.replace('_', ' ')} {after[k] - before[k]}" for k in after)
    return {"elapsed": elapsed, **ops, **_stats(probe),
            "breakdown": [f"  GIL handover looks (gamestore.gil.counts): {handover}"]}


async def _probed(probe: Probe, writer: Callable[[], Awaitable[None]],
                  reader: Callable[[asyncio.Future], Awaitable[None]]) -> float:
    """Run the writer task and the reader (until the writer is done) under the probe; the seconds they took."""
    probe_task = asyncio.ensure_future(probe.run())
    t0 = time.perf_counter()
    w = asyncio.ensure_future(writer())
    await reader(w)
    await w
    elapsed = time.perf_counter() - t0
    probe.running = False
    await probe_task
    return elapsed


async def run_sqlite(path: Path, games: list[dict], *, batch: int) -> dict:
    probe = Probe()
    written: list[str] = []
    ops = {"reads": 0, "scanned_moves": 0}
    db = SqliteBaseline(path)
    try:
        async def writer() -> None:
            for i in range(0, len(games), batch):
                chunk = games[i : i + batch]
                db.write_games(chunk)  # what the pipeline does: a blocking call in the coroutine
                written.extend(g["game_id"] for g in chunk)
                await asyncio.sleep(0)

        async def reader(done: asyncio.Future) -> None:
            rnd = random.Random(1)
            while not done.done():
                if written:
                    db.get_game(rnd.choice(written))
                db._con.execute("SELECT COUNT(*) FROM games WHERE board_type = 'square8'").fetchone()
                db._con.execute(SQLITE_SQL).fetchall()
                ops["reads"] += 3
                if ops["reads"] % 30 == 0:
                    for _ in db.scan_moves():
                        ops["scanned_moves"] += 1
                await asyncio.sleep(0)

        elapsed = await _probed(probe, writer, reader)
        assert db.count_games() == len(games)
    finally:
        db.close()
    return {"elapsed": elapsed, **ops, **_stats(probe)}


def _pooled(runs: list[dict]) -> dict:
    """One variant's rounds as one row: probes pooled, games/s over the summed time, the last round's breakdown."""
    lags = [x for r in runs for x in r["lags"]]
    queued = [x for r in runs for x in r["queued"]]
    out = {"elapsed": sum(r["elapsed"] for r in runs) / len(runs), "reads": sum(r["reads"] for r in runs) // len(runs),
           "rounds": [_percentiles(r["lags"], r["queued"]) for r in runs], **_percentiles(lags, queued)}
    if "breakdown" in runs[-1]:
        out["breakdown"] = runs[-1]["breakdown"]
    return out


def _slice_label(loop_slice: float | None) -> str:
    if loop_slice is None:
        return ""
    return f", loop_slice {loop_slice * 1000:g} ms" + ("" if priority.slice_of() else " (no per-thread slices here)")


def _interval(text: str) -> float | None:
    return None if text in ("default", "none") else float(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", type=int, default=400)
    p.add_argument("--batch", type=int, default=4, help="games per write call (default 4)")
    p.add_argument("--flush-every", type=int, default=5, help="gamestore: flush every N write calls (default 5)")
    p.add_argument("--workers", type=int, default=4, help="gamestore: threads of the async pool")
    p.add_argument("--switch-interval", type=_interval, nargs="+", default=[None, 0.001], metavar="SECONDS",
                   help="one gamestore run per value: 'default' leaves the interpreter's switch interval alone"
                        " (Python's 5 ms, what open_async does unless asked), a number passes"
                        " open_async(switch_interval=...) (default: default 0.001)")
    p.add_argument("--handover-interval", type=_interval, nargs="+", default=[0.0005, None], metavar="SECONDS",
                   help="gamestore runs per value, for each switch interval: open_async(handover_interval=...);"
                        " 'none' turns the pool calls' GIL handover off (default: 0.0005 none)")
    p.add_argument("--niceness", type=int, nargs="+", default=[priority.DEFAULT_NICENESS, 0], metavar="N",
                   help="gamestore runs per value, for each of the above: open_async(worker_niceness=...), how much"
                        f" nicer gamestore's threads run (default: {priority.DEFAULT_NICENESS} 0)")
    p.add_argument("--loop-slice", type=_interval, nargs="+", default=[0.0001], metavar="SECONDS",
                   help="per value and niceness, a run with the first switch and handover interval and"
                        " open_async(loop_slice=...): the loop's own thread at a short scheduler slice; and the"
                        " scheduler-only rows with it (default: 0.0001; 'none': no such runs)")
    p.add_argument("--yield-woken", choices=["on", "off"], nargs="+", default=["on"],
                   help="gamestore runs per value, for each of the above: whether a handover look that finds the"
                        " loop woken (runnable, not yet waiting for the GIL) steps aside for it (gamestore.gil;"
                        " on by default; 'on off' measures both side by side)")
    p.add_argument("--gc-carry", choices=["on", "off"], nargs="+", default=["on"],
                   help="for the first variant: whether the async get_game keeps the collector paused until the task"
                        " has the record (gamestore.gcpause.carry; on by default; 'on off' measures both side by side)")
    p.add_argument("--rounds", type=int, default=3,
                   help="run the variants this many times, alternated (every other round in reverse order), and"
                        " pool each variant's probes (default 3)")
    p.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run")
    p.add_argument("--scheduler-seconds", type=float, default=1.0,
                   help="per niceness and round: the probe beside cores+1 threads busy without the GIL, the"
                        " scheduler's part alone (0: skip; default 1)")
    p.add_argument("--gil-holders", action="store_true",
                   help="sample which thread holds the GIL (benchmarks/gil_holders.py, CPython 3.11 on Linux) and"
                        " add to each breakdown who held it while its late probes waited")
    p.add_argument("--timelines", type=int, default=0, metavar="N",
                   help="with --gil-holders: print the first N late probes' GIL holders in turn (default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dir", default=None, help="where to put the stores (default: a temporary directory)")
    args = p.parse_args(argv)
    if args.gil_holders and not gil_holders.available():
        p.error("--gil-holders needs CPython 3.11 on Linux with /proc/<pid>/mem readable")

    games = corpus(args.games, args.seed)
    n_moves = sum(len(g["moves"]) for g in games)
    root = Path(args.dir or tempfile.mkdtemp(prefix="gs-bench-loop-"))
    root.mkdir(parents=True, exist_ok=True)
    # The program's start-up, outside the measurement: the first store opened in a process imports and
    # initialises pyarrow.dataset (and with it pandas), DuckDB and the codec (~36,000 objects), and generating
    # the corpus allocated ~110,000.  The collector then owes a full pass over the whole heap (one runs once the
    # objects promoted since the last reach 25% of the old generation: 130-160 ms here), which landed in the
    # first measured run.  So: one untimed round trip through a scratch store, then that pass.  Full passes
    # during a measured run are still listed in its breakdown.
    asyncio.run(run_gamestore(root / "warm-up", games[:8], batch=args.batch, flush_every=1, workers=args.workers,
                              switch_interval=None))
    shutil.rmtree(root / "warm-up", ignore_errors=True)
    gc.collect()
    sampler = gil_holders.HolderSampler() if args.gil_holders else None
    rows: list[tuple[str, dict]] = []
    try:
        default_interval = sys.getswitchinterval()
        loop_slices = [ls for ls in args.loop_slice if ls is not None]
        yields = [y == "on" for y in args.yield_woken]
        carries = [c == "on" for c in args.gc_carry]
        variants = [(s, h, n, None, y) for s in args.switch_interval for h in args.handover_interval
                    for n in args.niceness for y in (yields if h is not None else yields[:1])]
        variants = [(*v, c) for v in variants for c in (carries if v == variants[0] else carries[:1])]
        variants += [(args.switch_interval[0], args.handover_interval[0], n, ls, yields[0], carries[0])
                     for ls in loop_slices
                     for n in args.niceness]
        results: list[list[dict]] = [[] for _ in variants]
        floors: list[dict] = []
        sched: dict[tuple[int, float | None], list[dict]] = {(n, ls): [] for n in args.niceness
                                                              for ls in [None, *loop_slices]}
        for rnd in range(args.rounds):
            order = list(enumerate(variants))
            for k, (interval, handover, nice, loop_sl, yld, carry) in order if rnd % 2 == 0 else order[::-1]:
                sys.setswitchinterval(0.005)  # Python's default; open_async(switch_interval=x) lowers it while open
                gc.collect()
                results[k].append(asyncio.run(run_gamestore(
                    root / f"gamestore{k}-{rnd}", games, batch=args.batch, flush_every=args.flush_every,
                    workers=args.workers, switch_interval=interval, handover_interval=handover, niceness=nice,
                    loop_slice=loop_sl, holders=sampler, timelines=args.timelines, yield_woken=yld, gc_carry=carry)))
                shutil.rmtree(root / f"gamestore{k}-{rnd}", ignore_errors=True)
            sys.setswitchinterval(default_interval)
            floors.append(asyncio.run(idle_floor(1.0)))
            if args.scheduler_seconds > 0:
                for nice, ls in (list(sched) if rnd % 2 == 0 else list(sched)[::-1]):
                    sched[nice, ls].append(asyncio.run(scheduler_alone(nice, ls, (os.cpu_count() or 1) + 1,
                                                                       args.scheduler_seconds)))
        for (interval, handover, nice, loop_sl, yld, carry), runs in zip(variants, results):
            label = "Python's default 5 ms" if interval is None else f"switch_interval={interval:g}"
            label += ", no handover" if handover is None else f", handover {handover * 1000:g} ms"
            if handover is not None and len(yields) > 1:
                label += ", yielding to a woken loop" if yld else ", not yielding to a woken loop"
            if len(carries) > 1 and (interval, handover, nice, loop_sl, yld) == variants[0][:5]:
                label += ", GC paused until get_game's record is taken" if carry else ", GC not carried to the loop"
            label += f", niceness {nice}" + _slice_label(loop_sl)
            rows.append((f"gamestore (open_async), {label}", _pooled(runs)))
        if not args.no_sqlite:
            rows.append(("SQLite, GameReplayDB layout, calls on the loop",
                         asyncio.run(run_sqlite(root / "sqlite.db", games, batch=args.batch))))
        floor = _pooled(floors)
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)

    print(f"event-loop lag, {len(games)} games ({n_moves:,} moves), {args.batch} games per write call,"
          f" encoder backend {backend.BACKEND}, {os.cpu_count()} cores, {args.workers} pool threads,"
          f" {args.rounds} rounds alternated (probes pooled per row),"
          f" load average {os.getloadavg()[0]:.1f}")
    print()
    print("| store | lag p50 (ms) | lag p99 (ms) | lag max (ms) | probes > 20 ms | probe samples | games/s written"
          " | reads done | p99 / max without run-queue waits (ms) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in rows:
        print(f"| {name} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.1f} | {r['over_20ms']} | {r['samples']} |"
              f" {len(games) / r['elapsed']:.0f} | {r['reads']} | {r['own_p99']:.2f} / {r['own_max']:.1f} |")
    r = floor
    print(f"| no workload (the machine's own noise) | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.1f} |"
          f" {r['over_20ms']} | {r['samples']} | - | - | {r['own_p99']:.2f} / {r['own_max']:.1f} |")
    for (nice, ls), runs in sched.items():
        if runs:
            r = _pooled(runs)
            print(f"| no workload, {(os.cpu_count() or 1) + 1} threads busy without the GIL at niceness {nice}"
                  f"{_slice_label(ls)}"
                  f" | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.1f} | {r['over_20ms']} | {r['samples']} | - | - |"
                  f" {r['own_p99']:.2f} / {r['own_max']:.1f} |")
    print()
    print("p99 / p99 without run-queue waits, round by round (ms):")
    for name, r in rows:
        if "rounds" in r:
            print(f"  {name}: " + ", ".join(f"{x['p99']:.2f} / {x['own_p99']:.2f}" for x in r["rounds"]))
    print()
    for name, r in rows:
        if "breakdown" in r:
            print(f"{name} (last round): " + "\n".join(r["breakdown"]))
    if not args.no_sqlite:
        sq = rows[-1][1]
        for name, r in rows[:-1]:
            print(f"{name}: p99 ratio SQLite / gamestore {sq['p99'] / max(r['p99'], 1e-3):.0f}x,"
                  f" max ratio {sq['max'] / max(r['max'], 1e-3):.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
