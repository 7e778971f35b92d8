"""How long each store call keeps other threads waiting for the GIL: the event-loop lag, call by call.

    python -m benchmarks.bench_gil_hold --games 120

A store (half the corpus written) is driven by one thread, one kind of call at a time
(``write_games`` of 4 games, the same plus ``flush``, ``get_game``, ``count_games`` with a
predicate, a SQL aggregate, a ``scan_moves`` of three columns).  Meanwhile a ticker thread
waits on a pipe fed by a helper *process* with its ``time.monotonic()`` every 0.1 ms: each
time the ticker has the GIL again it reads what piled up, and the oldest stamp tells since
when it was ready to run.  So a wait measures how long the calling thread kept the GIL once
another thread asked for it (plus the ticker's wake-up), independent of a probe's own sleep
granularity.  Python code hands the GIL over after the switch interval; a C call that holds
it does so for its whole duration.  Run per switch interval (``--switch-interval``, default
Python's 5 ms and 1 ms) and per ``--handover`` (calls run plainly, or marked as the async API's
pool calls are, handing the GIL to the waiting ticker: gamestore/gil.py); the helper is a separate
process, so it never waits for our GIL.

On a busy machine the ticker's wake-ups are delayed by other processes too: compare runs side
by side, or run it under ``chrt -f 10`` (real-time priority, a few seconds) to see the GIL alone.
"""
from __future__ import annotations

import argparse
import gc
import itertools
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import gamestore
from gamestore import backend, gil

from benchmarks.bench_event_loop import SQL, corpus

_STAMPER = (
    "import os, struct, sys, time\n"
    "fd = int(sys.argv[1])\n"
    "while True:\n"
    "    try:\n"
    "        os.write(fd, struct.pack('d', time.monotonic()))\n"
    "    except (BrokenPipeError, BlockingIOError):\n"
    "        break\n"
    "    time.sleep(0.0001)\n"
)


class Ticker:
    """A thread that records, at each wake-up, how long it had been ready to run (mostly: waiting for the GIL)."""

    def __init__(self) -> None:
        self.waits: list[tuple[float, float]] = []  # (ready since, got the GIL at)
        self._r, w = os.pipe()
        self._proc = subprocess.Popen([sys.executable, "-c", _STAMPER, str(w)], pass_fds=(w,))
        os.close(w)
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.native_id = 0
        self._started = threading.Event()

    def _run(self) -> None:
        self.native_id = threading.get_native_id()
        self._started.set()
        pending = b""
        while not self._stop:
            data = os.read(self._r, 1 << 16)  # blocks without the GIL until a stamp arrives
            now = time.monotonic()  # taken holding the GIL again
            if not data:
                return
            data = pending + data
            cut = len(data) - len(data) % 8
            pending = data[cut:]
            if cut:
                self.waits.append((struct.unpack_from("d", data, 0)[0], now))

    def __enter__(self) -> "Ticker":
        self._thread.start()
        self._started.wait()
        time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._proc.kill()
        self._proc.wait()
        self._thread.join(5)
        os.close(self._r)


def measure(fn: Callable[[], object], reps: int, handover: float | None = None) -> dict:
    """``fn`` called ``reps`` times by a thread; with ``handover``, each call runs marked as the async API's pool
    calls are (gamestore/gil.py), handing the GIL over to the ticker thread."""
    spans: list[tuple[float, float]] = []

    def worker(to: int) -> None:
        for _ in range(reps):
            t0 = time.monotonic()
            if handover is None:
                fn()
            else:
                with gil.handing_over(handover, to=to):
                    fn()
            spans.append((t0, time.monotonic()))

    with Ticker() as ticker:
        t = threading.Thread(target=worker, args=(ticker.native_id,))
        t.start()
        t.join()
    starts = np.array([s for s, _ in spans])
    ends = np.array([e for _, e in spans])
    waits = []
    for ready, got in ticker.waits:
        i = np.searchsorted(starts, ready, side="right") - 1
        if i >= 0 and got <= ends[i] + 0.0005:  # the ticker was ready while a call ran
            waits.append((got - ready) * 1000)
    w = np.array(waits) if waits else np.zeros(1)
    calls = (ends - starts) * 1000
    return {"call_ms": float(np.median(calls)), "n": len(waits), "p99": float(np.percentile(w, 99)),
            "max": float(w.max()), "over_2": int((w > 2).sum())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", type=int, default=120)
    p.add_argument("--reps", type=int, default=15, help="calls of each kind (default 15)")
    p.add_argument("--switch-interval", type=float, nargs="+", default=[0.005, 0.001], metavar="SECONDS")
    p.add_argument("--handover", type=lambda t: None if t == "none" else float(t), nargs="+", default=[None, 0.0005],
                   metavar="SECONDS", help="per value, calls unmarked ('none') or marked with that handover interval,"
                                           " as open_async's pool calls are (default: none 0.0005)")
    p.add_argument("--dir", default=None, help="where to put the store (default: a temporary directory)")
    args = p.parse_args(argv)

    games = corpus(args.games, 0)
    half = len(games) // 2
    root = Path(args.dir or tempfile.mkdtemp(prefix="gs-bench-gil-"))
    rows = []
    try:
        store = gamestore.open(root / "store", create=True)
        store.write_games(games[:half])
        store.flush()
        ids = [g["game_id"] for g in games[:half]]
        fresh = itertools.count()
        rnd = random.Random(0)

        def write() -> None:
            store.write_games([{**games[half + (k := next(fresh)) % (len(games) - half)], "game_id": f"copy-{k}"}
                               for _ in range(4)])

        def write_flush() -> None:
            write()
            store.flush()

        def scan() -> None:
            for _ in store.scan_moves(columns=["game_id", "move_number", "policy"], batch_size=8192):
                pass

        calls: dict[str, Callable[[], object]] = {
            "write_games (4 games)": write,
            "write_games + flush": write_flush,
            "get_game": lambda: store.get_game(rnd.choice(ids)),
            "count_games(where)": lambda: store.count_games("board_type = 'square8'"),
            "sql aggregate": lambda: store.sql(SQL).fetchall(),
            "scan_moves (3 columns)": scan,
        }
        for fn in calls.values():
            fn()  # first-call initialisation is not what is measured
        default = sys.getswitchinterval()
        for interval in args.switch_interval:
            sys.setswitchinterval(interval)
            for handover in args.handover:
                for name, fn in calls.items():
                    gc.collect()
                    rows.append((interval, handover, name, measure(fn, args.reps, handover)))
        sys.setswitchinterval(default)
        store.close()
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)

    print(f"GIL waits of a ticker thread during each call, {args.games} games, {args.reps} calls each,"
          f" backend {backend.BACKEND}, load average {os.getloadavg()[0]:.1f}")
    print()
    print("| switch interval | handover | call | call p50 (ms) | waits | wait p99 (ms) | wait max (ms) | waits > 2 ms |")
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for interval, handover, name, r in rows:
        marked = "-" if handover is None else f"{handover * 1000:g} ms"
        print(f"| {interval * 1000:g} ms | {marked} | {name} | {r['call_ms']:.1f} | {r['n']} | {r['p99']:.2f} |"
              f" {r['max']:.2f} | {r['over_2']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
