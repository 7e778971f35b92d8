"""benchmarks/loop_gc_trace.py: the collections' record (thread, generation, clock of the loop) and their
attribution to late probes (the run itself is a benchmark)."""
from __future__ import annotations

import gc
import threading
import time

import pytest

from benchmarks.loop_gc_trace import GcTrace, late_overlap

pytestmark = pytest.mark.single_backend


def test_trace_records_the_collecting_thread_generation_and_span_on_the_loops_clock():
    t0 = time.monotonic()
    with GcTrace() as trace:
        th = threading.Thread(target=gc.collect, args=(1,))
        th.start()
        th.join()
        gc.collect(0)
    t1 = time.monotonic()
    assert [(p[2], p[3]) for p in trace.passes] == [(1, th.native_id), (0, threading.get_native_id())]
    assert all(t0 <= p[0] <= p[1] <= t1 and p[4] >= 0 for p in trace.passes)
    n = len(trace.passes)
    gc.collect(0)
    assert len(trace.passes) == n  # the hook is gone


def test_late_probes_are_charged_the_collections_inside_their_late_windows():
    # probes due at 1.0 (2 ms late, 0.5 of it queued), 2.0 (0.5 ms late: not late enough), 3.0 (3 ms late)
    wakes, lags, queued = [1.002, 2.0005, 3.003], [0.002, 0.0005, 0.003], [0.0005, 0.0, 0.0]
    passes = [(1.0015, 1.0025, 0, 7, 0.001, 0),  # half inside the first window
              (2.0, 2.0005, 0, 7, 0.0005, 0),  # inside the second probe's, which is not late
              (2.9995, 3.0025, 1, 8, 0.003, 5)]  # 2.5 ms inside the third
    out = late_overlap(passes, wakes, lags, queued, over=1.0)
    assert out["late"] == 2 and out["late_hit"] == 2
    assert out["late_s"] == pytest.approx(0.0045)
    assert out["overlap_s"] == pytest.approx(0.0005 + 0.0025)
    assert out["max_overlap_s"] == pytest.approx(0.0025)
    assert out["p99_cut"] == pytest.approx(1.5, abs=0.05)  # 2 - 0.5, 0.5, 3 - 2.5: the largest left is 1.5


def test_bench_event_loop_runs_the_carry_side_by_side(tmp_path, capsys):
    from gamestore import gcpause

    from benchmarks import bench_event_loop

    assert bench_event_loop.main(["--games", "8", "--rounds", "1", "--no-sqlite", "--scheduler-seconds", "0",
                                  "--switch-interval", "default", "--handover-interval", "0.0005", "--niceness", "0",
                                  "--loop-slice", "none", "--gc-carry", "on", "off", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "GC paused until get_game's record is taken" in out and "GC not carried to the loop" in out
    assert gcpause.carry is True and gcpause.active() == 0
