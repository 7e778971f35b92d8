"""What the library gains by not collecting garbage: import_sqlite and synth.games with gc on vs off.

Run:  python benchmarks/gc_ratio.py [--scale 0.25] [--repeat 3]

gamestore never switches the garbage collector (a process-wide setting) itself;
a caller that wants the speed disables it around the call.  This measures that
choice side by side in one process: each round runs every case once with gc
enabled and once with ``gc.disable()`` around the call (alternating order),
and reports the best wall-clock time of each and their ratio.  The import
reads a synthetic GameReplayDB (``bench_import.build_big_db`` at ``--scale``;
scale 1.0 is about 200,000 moves) in this process (``workers=0``).
"""
from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import build_big_db  # noqa: E402

from gamestore.testing import synth  # noqa: E402
from gamestore.ringrift.transfer import import_sqlite  # noqa: E402


def timed(fn, *, gc_off: bool) -> float:
    was = gc.isenabled()
    if gc_off:
        gc.disable()
    try:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    finally:
        if was:
            gc.enable()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.25)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gc_ratio_"))
    try:
        db = build_big_db(work / "big.db", scale=args.scale)
        n = [0]

        def do_import() -> None:
            n[0] += 1
            import_sqlite(db, work / f"store{n[0]}", workers=0, progress=False)
            shutil.rmtree(work / f"store{n[0]}")

        cases = {"import_sqlite": do_import, "synth.games(300)": lambda: synth.games(300, seed=1, snapshot_every=20)}
        best: dict[tuple[str, bool], float] = {}
        for r in range(args.repeat):
            for name, fn in cases.items():
                for gc_off in ((False, True) if r % 2 == 0 else (True, False)):
                    t = timed(fn, gc_off=gc_off)
                    best[name, gc_off] = min(best.get((name, gc_off), t), t)
        for name in cases:
            on, off = best[name, False], best[name, True]
            print(f"{name:20s} gc on {on:7.2f} s   gc off {off:7.2f} s   on/off {on / off:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
