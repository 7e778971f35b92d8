"""The documented DataLoader idiom against direct iteration, in each thread layout of PositionDataset.

Must-have 1 of issue 11 asks for ``DataLoader(ds, batch_size=None, num_workers=0)`` at >= 95% of iterating the
dataset directly.  Which threads make the batches decides where torch's per-batch work (``DataLoader.__next__``:
``record_function``, the fetcher, ``default_convert``: ~64 k instructions per 256-position batch under callgrind)
lands, so this runs the pairs in all six layouts of the same dataset, in one process:

- read-ahead on / off: the read-ahead threads decode the next segments (the default on a local store); off, each
  moves batch is decoded on the thread that assembles;
- ``assemble_ahead`` on / off: the stream and the batch assembly run on one helper thread, the training thread only
  takes batches (and runs torch's ``__next__`` in the idiom);
- ``native_ahead`` on / off: each window's compiled assembler makes the window's next batches on a native thread (no
  GIL); the training thread runs the stream and wraps the made arrays as tensors.  With the read-ahead on, this is the
  dataset's default (the last layout).

Each round runs one pass of each (layout, reader) pair back to back, the order rotating, so a shared machine's
noise falls on all alike; the figures are medians (and quartiles) over the rounds: the idiom's wall time as a
share of direct's in the same layout (the must-have's ratio), and each pass's positions/s against the serial
direct pass (read-ahead and assemble_ahead off) of the same round.  A second table gives each layout's CPU per batch
(medians per pass), of the process and of the training thread, direct and through the idiom: where both cores are
busy with the pipeline's own threads, the idiom's share of direct's wall time follows the share of its CPU (torch's
per-batch CPU costs wall time), and only a layout whose training thread waits anyway can hide it.  For the
native_ahead passes a third table gives
the producers' counters (medians per pass): batches the producer made (the training thread made the others), the
batches the training thread waited for, the producer's CPU per batch made, and the pool's blocks reused / fresh.

A pass's first batch waits for the first window's decode (a few ms: a large share of a short pass, the same in both
readers), so the last table gives the steady state: each pass's batches after its first fifth (wall and CPU per
batch, the idiom's share of direct's wall time), beside the ceiling a CPU-bound pipeline allows, C / (C + D): C the
process's CPU per batch of direct iteration there, D what ``DataLoader.__next__`` costs on ready batches in a tight
loop (torch's own per-batch work with warm caches: the least the idiom can add).

    GAMESTORE_BACKEND=cython python -m benchmarks.idiom_modes --dir DIR --rounds 200 [--batch-size 256] [--layouts 0 1 4]
"""
from __future__ import annotations

import argparse
import gc
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from benchmarks.bench_torch_ringrift import _loader_cost, action_map_of, build_corpus, gamestore_dataset
from gamestore.backend import selected
from gamestore.positions.decode import SegmentReader
from gamestore.positions.gather import compiled

#: (read-ahead, assemble_ahead, native_ahead); the first is the serial reference
LAYOUTS = [(False, False, False), (True, False, False), (False, True, False), (True, True, False), (False, False, True),
           (True, False, True)]


def _name(ra: bool, aa: bool, na: bool) -> str:
    return (f"read-ahead {'on ' if ra else 'off'}, assemble_ahead {'on ' if aa else 'off'},"
            f" native_ahead {'on ' if na else 'off'}")


def _quartiles(xs: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(xs, n=4)
    return q[0], statistics.median(xs), q[2]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, required=True, help="work directory (the corpus is kept there)")
    ap.add_argument("--copies", type=int, default=26)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--layouts", type=int, nargs="+", default=list(range(len(LAYOUTS))),
                    help="indices into LAYOUTS (the serial reference, 0, always runs)")
    args = ap.parse_args(argv)
    layouts = [LAYOUTS[0]] + [LAYOUTS[i] for i in args.layouts if i != 0]
    args.dir.mkdir(parents=True, exist_ok=True)
    db, store = build_corpus(args.dir, args.copies)
    ds = gamestore_dataset(store, action_map_of(db), args.batch_size)
    prefetch = SegmentReader.prefetch

    def no_prefetch(self: SegmentReader, plan: Any, segments: Any) -> None:
        return None

    def passes(ra: bool, aa: bool, na: bool, idiom: bool) -> Callable[[], Iterator[Any]]:
        def make() -> Iterator[Any]:
            SegmentReader.prefetch = prefetch if ra else no_prefetch  # type: ignore[method-assign]
            ds.assemble_ahead, ds.native_ahead = aa, na
            return iter(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0)) if idiom else iter(ds)
        return make

    runs = [(ra, aa, na, idiom) for ra, aa, na in layouts for idiom in (False, True)]
    wall: dict[tuple[bool, bool, bool, bool], list[float]] = {r: [] for r in runs}
    # per pass: CPU seconds per batch of the process (all its threads) and of the training thread
    cpu: dict[tuple[bool, bool, bool, bool], list[tuple[float, float]]] = {r: [] for r in runs}
    # per native_ahead pass: (batches, made by the producer, waited for, producer CPU s, pool blocks reused, fresh)
    producer: dict[tuple[bool, bool, bool, bool], list[tuple[int, int, int, float, int, int]]] = {r: [] for r in runs}
    # per pass: the steady state (batches after the first fifth): (wall, process CPU, training-thread CPU) per batch
    steady: dict[tuple[bool, bool, bool, bool], list[tuple[float, float, float]]] = {r: [] for r in runs}
    ds.set_epoch(10_000)
    mark = sum(1 for _ in ds) // 5  # the batch after which a pass is in its steady state
    positions = 0
    fast = compiled()
    real = fast.Assembler if fast is not None else None
    made: list[Any] = []

    def recording(*a: Any, **k: Any) -> Any:  # the windows' assemblers of a pass (their producers' counters)
        asm = real(*a, **k)  # type: ignore[misc]
        made.append(asm)
        return asm

    if fast is not None:
        fast.Assembler = recording
    for r in range(args.rounds):
        order = runs[r % len(runs):] + runs[: r % len(runs)]
        for run in order:
            ds.set_epoch(10_000 + r)  # every pass of a round reads the same order
            it = passes(*run)()
            gc.collect()
            made.clear()
            n = batches = 0
            t0, p0, c0 = time.perf_counter(), time.process_time(), time.thread_time()
            at_mark = (t0, p0, c0)
            for b in it:
                n += len(b["move_number"])
                batches += 1
                if batches == mark:
                    at_mark = (time.perf_counter(), time.process_time(), time.thread_time())
            t1, p1, c1 = time.perf_counter(), time.process_time(), time.thread_time()
            wall[run].append(t1 - t0)
            cpu[run].append(((p1 - p0) / batches, (c1 - c0) / batches))
            rest = batches - mark
            steady[run].append(((t1 - at_mark[0]) / rest, (p1 - at_mark[1]) / rest, (c1 - at_mark[2]) / rest))
            positions = n
            pool = next((a.pool for a in made if a.pool is not None), None)
            if pool is not None:
                producer[run].append((batches, sum(a.made for a in made), sum(a.waited for a in made),
                                      sum(a.producer_cpu for a in made), pool.reused, pool.fresh))
    if fast is not None:
        fast.Assembler = real
    SegmentReader.prefetch = prefetch  # type: ignore[method-assign]
    load = open("/proc/loadavg").read().split()[:3]
    print(f"backend {selected().name}; {positions:,} positions per pass, batches of {args.batch_size}, {args.rounds} rounds;"
          f" load average {' '.join(load)}")
    serial = wall[(False, False, False, False)]
    print("\n| layout | idiom / direct (wall, median) | quartiles | direct vs serial direct | idiom vs serial direct |"
          " direct positions/s | idiom positions/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for ra, aa, na in layouts:
        d, i = wall[(ra, aa, na, False)], wall[(ra, aa, na, True)]
        lo, mid, hi = _quartiles([x / y for x, y in zip(d, i)])
        dv = statistics.median([s / x for s, x in zip(serial, d)])
        iv = statistics.median([s / x for s, x in zip(serial, i)])
        print(f"| {_name(ra, aa, na)} | {mid:.1%} | {lo:.1%} - {hi:.1%} | {dv:.1%} | {iv:.1%} |"
              f" {positions / statistics.median(d):,.0f} | {positions / statistics.median(i):,.0f} |")
    print("\n| layout | CPU per batch, process: direct / idiom (+) | training thread: direct / idiom (+) |"
          " idiom / direct, wall | direct / idiom, process CPU |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for ra, aa, na in layouts:
        cd, ci = cpu[(ra, aa, na, False)], cpu[(ra, aa, na, True)]
        pd, pi = (statistics.median(c[0] for c in x) * 1e6 for x in (cd, ci))
        td, ti = (statistics.median(c[1] for c in x) * 1e6 for x in (cd, ci))
        ratio = statistics.median(x / y for x, y in zip(wall[(ra, aa, na, False)], wall[(ra, aa, na, True)]))
        by_cpu = statistics.median(x[0] / y[0] for x, y in zip(cd, ci))
        print(f"| {_name(ra, aa, na)} | {pd:.1f} / {pi:.1f} us (+{pi - pd:.1f}) | {td:.1f} / {ti:.1f} us (+{ti - td:.1f}) |"
              f" {ratio:.1%} | {by_cpu:.1%} |")
    probe: Any = iter(ds)  # a generator: closed at once (its read-ahead threads stop)
    own = _loader_cost(next(probe))  # torch's DataLoader.__next__ on ready batches, per batch
    probe.close()
    print(f"\nThe steady state: each pass after its first {mark} batches (of {-(-positions // args.batch_size)});"
          f" DataLoader.__next__ on ready batches in a tight loop: D = {own:.1f} us per batch")
    print("| layout | wall per batch: direct / idiom | idiom / direct, wall (quartiles) | process CPU per batch:"
          " direct / idiom (+) | training thread: direct / idiom (+) | ceiling C / (C + D) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for ra, aa, na in layouts:
        sd, si = steady[(ra, aa, na, False)], steady[(ra, aa, na, True)]
        wd, wi, pd, pi, td, ti = (statistics.median(x[j] for x in rows) * 1e6 for j in range(3) for rows in (sd, si))
        lo, mid, hi = _quartiles([x[0] / y[0] for x, y in zip(sd, si)])
        print(f"| {_name(ra, aa, na)} | {wd:.1f} / {wi:.1f} us | {mid:.1%} ({lo:.1%} - {hi:.1%}) |"
              f" {pd:.1f} / {pi:.1f} us (+{pi - pd:.1f}) | {td:.1f} / {ti:.1f} us (+{ti - td:.1f}) |"
              f" {pd / (pd + own):.1%} |")
    native = [run for run in runs if producer[run]]
    if native:
        print("\n| native_ahead pass | batches made by the producer | waited for | producer CPU per made batch |"
              " pool blocks reused / fresh |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for run in native:
            rows = producer[run]
            made_cpu = [c / m * 1e6 for _, m, _, c, _, _ in rows if m]
            print(f"| {_name(*run[:3])}, {'idiom' if run[3] else 'direct'} |"
                  f" {statistics.median(m for _, m, _, _, _, _ in rows):.0f} of {rows[0][0]} |"
                  f" {statistics.median(w for _, _, w, _, _, _ in rows):.0f} |"
                  f" {statistics.median(made_cpu) if made_cpu else 0:.1f} us |"
                  f" {statistics.median(u for *_, u, _ in rows):.0f} / {statistics.median(f for *_, f in rows):.0f} |")


if __name__ == "__main__":
    main()
