"""What a late probe of bench_event_loop overlapped: the store's pool calls, GC passes and (with
``--gil-holders``) the GIL's holders; the breakdown printed after each gamestore run."""
from __future__ import annotations

import bisect
import collections
import functools
import gc
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from gamestore import gil, priority

from benchmarks import gil_holders


class ThreadSampler:
    """A daemon thread calling :meth:`sample` every ``period`` seconds while a ``with`` block lasts (the tracers'
    per-thread facts: threads come and go during a run); what it finds goes into ``of``."""

    period = 0.05

    def __init__(self) -> None:
        self.of: dict = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def __enter__(self) -> "ThreadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class ProbeLike(Protocol):
    lags: list[float]  # how late each 1 ms sleep woke (s)
    queued: list[float]  # of each lag, the loop thread's run-queue wait (s)
    wakes: list[float]  # time.monotonic of each wake-up


class Recorder:
    """What ran while the loop stalled: each pool call and each garbage-collector pass, with its span.

    Pool calls are recorded by a ``ThreadPoolExecutor`` whose ``submit`` wraps the function
    (``time.monotonic`` at start and end, and the name of the store method); GC passes by a
    ``gc.callbacks`` hook (generation, thread).  :meth:`breakdown` attributes each late probe to what
    overlapped its late interval.
    """

    def __init__(self, holders: gil_holders.HolderSampler | None = None, timelines: int = 0, *,
                 native: bool = False) -> None:
        self.calls: list[tuple[float, float, str]] = []
        self.gcs: list[tuple[float, float, int, str]] = []
        self._gc_start: dict[int, float] = {}
        self.holders = holders  # with --gil-holders: the GIL-holder sampler, and what each thread state ran when
        self.spans: list[tuple[float, float, int, int, str]] = []  # (start, end, thread state, ident, call or helper)
        self.loop_tstate = -1
        self.timelines = timelines  # how many late probes' holder timelines the breakdown prints
        self.native = native  # record pool calls and helpers by kernel thread id (loop_gil_trace.py)
        self.tids: list[tuple[float, float, int, str]] = []  # (start, end, native thread id, call or helper)

    def executor(self, workers: int, niceness: int = 0) -> ThreadPoolExecutor:
        rec = self

        class Recording(ThreadPoolExecutor):
            def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
                name = _call_name(fn)

                def timed():  # type: ignore[no-untyped-def]
                    t0 = time.monotonic()
                    try:
                        return fn(*args, **kwargs)
                    finally:
                        rec.calls.append((t0, time.monotonic(), name))
                        if rec.native:
                            rec.tids.append((t0, time.monotonic(), threading.get_native_id(), name))
                        if rec.holders is not None:
                            rec.spans.append((t0, time.monotonic(), gil_holders.tstate(), threading.get_ident(), name))

                return super().submit(timed)

        # what open_async's own pool does with worker_niceness (a pool passed in is the caller's: left alone)
        return Recording(workers, thread_name_prefix="gamestore", initializer=priority.lower, initargs=(niceness,))

    def _on_gc(self, phase: str, info: dict) -> None:
        tid = threading.get_ident()
        if phase == "start":
            self._gc_start[tid] = time.monotonic()
        elif tid in self._gc_start:
            self.gcs.append((self._gc_start.pop(tid), time.monotonic(), info["generation"],
                             threading.current_thread().name))

    def __enter__(self) -> "Recorder":
        gc.callbacks.append(self._on_gc)
        if self.holders is not None or self.native:  # gamestore's helper threads (seal, read-ahead) record spans
            self._inherit = gil.inherit
            gil.inherit = self._recording_inherit  # type: ignore[assignment]
            self.loop_tstate = gil_holders.tstate()
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)
        if self.holders is not None or self.native:
            gil.inherit = self._inherit  # type: ignore[method-assign]

    def _recording_inherit(self, fn):  # type: ignore[no-untyped-def]
        inner = self._inherit(fn)
        name = "helper " + _call_name(fn)

        def helper(*args, **kwargs):  # type: ignore[no-untyped-def]
            t0, ts = time.monotonic(), (gil_holders.tstate() if self.holders is not None else 0)
            try:
                return inner(*args, **kwargs)
            finally:
                self.spans.append((t0, time.monotonic(), ts, threading.get_ident(), name))
                if self.native:
                    self.tids.append((t0, time.monotonic(), threading.get_native_id(), name))

        return helper

    def _holder(self, ts: int, start: float) -> str:
        if ts in (0, 1, -1):
            return self.holders.names[ts] if self.holders is not None else "?"
        if ts == self.loop_tstate:
            return "the event loop"
        for a, b, t, _i, name in self.spans:
            if t == ts and a <= start < b:
                return name
        return "other (a pool thread between calls, DuckDB, ...)"

    def holder_lines(self, late: list[tuple[float, float, float]], queued: float) -> list[str]:
        """Who held the GIL while the late probes waited: per holder, the probes it held longest and its time."""
        assert self.holders is not None
        first: collections.Counter[str] = collections.Counter()
        total: collections.Counter[str] = collections.Counter()
        span = 0.0
        held_queued = 0.0
        timelines: list[str] = []
        for a, b, _lag in late:
            shares: collections.Counter[str] = collections.Counter()
            for ts, s, e, q in self.holders.segments(a, b):  # from when the sleep was due to the wake-up
                shares[self._holder(ts, s)] += e - s
                held_queued += q
            span += b - a
            if len(timelines) < self.timelines:
                timelines.append(self._timeline(a, b))
            if shares:
                first[shares.most_common(1)[0][0]] += 1
                total.update(shares)
        lines = [f"  GIL holders while those probes were late (sampled every ~0.1 ms from another process;"
                 f" {len(late)} probes, {span * 1000:.0f} ms late, {queued * 1000:.0f} ms of it the loop's run-queue"
                 f" waits; {held_queued * 1000:.0f} ms the GIL's holder waited for a CPU):"]
        for name, t in total.most_common(10):
            lines.append(f"    {name}: {t / max(span, 1e-9) * 100:.0f}% of the late time, held longest in {first[name]}")
        if timelines:
            lines.append(f"  the first {len(timelines)} late probes: the GIL's holders in turn, ms (of it waiting for a"
                         f" CPU); the loop thread's state in the samples")
            lines += timelines
        return lines

    def _timeline(self, a: float, b: float) -> str:
        """One late probe: who held the GIL in turn, and what the loop's thread was doing meanwhile."""
        assert self.holders is not None
        merged: list[list] = []
        for ts, s, e, q in self.holders.segments(a, b):
            name = self._holder(ts, s)
            if merged and merged[-1][0] == name:
                merged[-1][1] += e - s
                merged[-1][2] += q
            else:
                merged.append([name, e - s, q])
        i0, i1 = bisect.bisect_left(self.holders.times, a), bisect.bisect_right(self.holders.times, b)
        states = collections.Counter(gil_holders.syscall_name(n) for n in self.holders.syscall[i0:i1])
        return (f"    {(b - a) * 1000:.1f} ms: " + " | ".join(f"{n} {d * 1000:.2f} ({q * 1000:.2f})" for n, d, q in merged)
                + "; loop: " + ", ".join(f"{k} {v}" for k, v in states.most_common()))

    def breakdown(self, probe: ProbeLike, *, over_ms: float = 2.0) -> list[str]:
        """One line per kind of stall: how many late probes overlapped a GC pass, else which calls ran."""
        # by the lag without run-queue waits: what the program's threads (the GIL) caused, not the machine's load
        late = [(w - lag, w, lag - q) for w, lag, q in zip(probe.wakes, probe.lags, probe.queued)
                if (lag - q) * 1000 > over_ms]
        queued = sum(q for lag, q in zip(probe.lags, probe.queued) if (lag - q) * 1000 > over_ms)
        gc_hit: collections.Counter[int] = collections.Counter()
        gc_max: dict[int, float] = {}
        by_calls: collections.Counter[str] = collections.Counter()
        worst: dict[str, float] = {}
        for a, b, lag in late:
            gens = [g for (s, e, g, _t) in self.gcs if s < b and e > a]
            if gens:
                gc_hit[max(gens)] += 1
                gc_max[max(gens)] = max(gc_max.get(max(gens), 0.0), lag)
                continue
            running = sorted({n for (s, e, n) in self.calls if s < b and e > a}) or ["(no pool call)"]
            key = " + ".join(running)
            by_calls[key] += 1
            worst[key] = max(worst.get(key, 0.0), lag)
        lines = [f"{len(late)} probes later than {over_ms:g} ms without run-queue waits; {len(self.gcs)} GC passes during the run"
                 f" (gen 2: {sum(1 for g in self.gcs if g[2] == 2)}, longest"
                 f" {max((e - s for s, e, _g, _t in self.gcs), default=0.0) * 1000:.1f} ms)"]
        for gen, n in sorted(gc_hit.items()):
            lines.append(f"  {n} overlapped a gen-{gen} GC pass (worst {gc_max[gen] * 1000:.1f} ms)")
        for key, n in by_calls.most_common(8):
            lines.append(f"  {n} while running: {key} (worst {worst[key] * 1000:.1f} ms)")
        if self.holders is not None:
            lines += self.holder_lines(late, queued)
        return lines


def _call_name(fn: object) -> str:
    while isinstance(fn, functools.partial) or hasattr(fn, "__wrapped__"):
        fn = fn.func if isinstance(fn, functools.partial) else fn.__wrapped__  # type: ignore[union-attr]
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    return name.removeprefix("GameStore.").removeprefix("AsyncGameStore.").replace(".<locals>", "")


def gap_lines(rec: Recorder, gaps: list[tuple[float, float, int, list[str]]]) -> list[str]:
    """Stretches of a marked thread's CPU time between two handover points (> 0.5 ms), by the call it ran and
    where they ended.  CPU time: it includes work without the GIL in that thread (zstd, DuckDB, file writes)."""
    by: dict[str, list[float]] = collections.defaultdict(list)
    for cpu, end, ident, where in gaps:
        call = next((name for a, b, _t, i, name in rec.spans if i == ident and a <= end <= b), "?")
        frames = [w.split("/")[-1] for w in where if "gamestore/gil.py" not in w][:2]
        by[f"{call}: " + " < ".join(frames)].append(cpu * 1000)
    lines = [f"  {len(gaps)} stretches of > 0.5 ms CPU (GIL-free work included) between two handover points of"
             f" a marked thread, by call and where they ended (count, max ms):"]
    for key, ms in sorted(by.items(), key=lambda kv: -len(kv[1]))[:10]:
        lines.append(f"    {len(ms)} x, max {max(ms):.1f}: {key}")
    return lines
