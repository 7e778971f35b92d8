"""CPU per batch of PositionDataset's read chain (below the batch), serial and on the read-ahead threads; two
checkouts side by side.

    python -m benchmarks.read_chain_cpu --dir DIR [--against TREE] [--pairs 10] [--epochs 6] [--batch-size 256]

On the RingRift corpus of ``benchmarks/bench_torch_ringrift.py`` (x26, built in DIR when missing), one process per
run (compiled backend), each measuring over ``--epochs`` epochs after a first one (which opens the shard and fills
the per-batch recipes), medians per batch of 256:

- serial: read-ahead off (``SegmentReader.prefetch`` a no-op, ``assemble_ahead`` off), ``time.thread_time`` of a
  whole epoch, and of the part inside ``SegmentReader.read`` (the read chain: plan rows, decompression, the
  source's arrays);
- read-ahead: the default read-ahead threads (``assemble_ahead`` on, as ``benchmarks/readahead_cpu.py``), the
  threads' CPU inside ``SegmentReader._decode``, and inside the compiled calls it makes that run without the GIL
  (``_positions.unpack``, ``moves_rows``, ``key_codes``, or ``direct_source``: libzstd and the per-row loops; their
  argument checks hold it for well under a microsecond).  The difference is the read-ahead's GIL-held Python;
- direct: the default dataset (read-ahead on, ``assemble_ahead`` off) iterated directly, wall time and process CPU
  (every thread) per batch.

With ``--against TREE`` (another checkout, built in place) the runs alternate between this checkout and TREE
(``--pairs`` pairs, the order flipped every pair) and the table gives the medians and quartiles of each and the
ratio per pair.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent  # this checkout


def _measure(root: Path, epochs: int, batch_size: int) -> dict[str, float]:
    import gamestore
    import gamestore.positions.decode as decode
    import gamestore.positions.direct as direct
    import gamestore.positions.gather as gather
    from benchmarks.bench_torch_ringrift import action_map_of, build_corpus
    from benchmarks.readahead_cpu import thread_timer
    from gamestore import backend
    from gamestore.torch import PositionDataset

    if backend.selected().name != "cython" or direct._unpacker() is None:
        raise SystemExit("the compiled backend is needed (GAMESTORE_BACKEND=cython, built in place)")
    db, store = build_corpus(root, 26)
    amap = action_map_of(db)
    out: dict[str, list[float]] = {"serial": [], "serial read": [], "read-ahead": [], "nogil": [], "direct wall": [],
                                   "direct cpu": []}
    acc = {"read": 0.0, "decode": 0.0, "nogil": 0.0}
    timed = thread_timer(acc)

    real_prefetch = decode.SegmentReader.prefetch
    decode.SegmentReader.read = timed(decode.SegmentReader.read, "read")  # type: ignore[method-assign]
    decode.SegmentReader._decode = timed(decode.SegmentReader._decode, "decode")  # type: ignore[method-assign]
    # serial: the read chain alone on this thread
    decode.SegmentReader.prefetch = lambda self, plan, segments: None  # type: ignore[method-assign]
    ds = PositionDataset(store, batch_size=batch_size, buffer_size=16384, seed=1, action_map=amap, max_players=4,
                         assemble_ahead=False)
    for epoch in range(epochs + 1):
        ds.set_epoch(epoch)
        gc.collect()
        acc.update(read=0.0, decode=0.0)
        t = time.thread_time()
        n = sum(1 for _ in ds)
        d = time.thread_time() - t
        if epoch:
            out["serial"].append(d / n * 1e6)
            out["serial read"].append(acc["read"] / n * 1e6)
    ds.close()
    # the read-ahead threads
    decode.SegmentReader.prefetch = real_prefetch  # type: ignore[method-assign]
    # the compiled calls the read-ahead makes, which run without the GIL (both layouts of the chain: unpack,
    # moves_rows and key_codes, or direct_source)
    mod = direct._unpacker()

    class Timed:
        def __getattr__(self, name: str) -> Any:
            return getattr(mod, name)

    for name in ("unpack", "moves_rows", "key_codes", "direct_source"):
        if hasattr(mod, name):
            setattr(Timed, name, staticmethod(timed(getattr(mod, name), "nogil")))
    direct._UNPACK = gather._COMPILED = Timed()
    ds = PositionDataset(store, batch_size=batch_size, buffer_size=16384, seed=1, action_map=amap, max_players=4,
                         assemble_ahead=True)
    for epoch in range(epochs + 1):
        ds.set_epoch(epoch)
        gc.collect()
        acc.update(read=0.0, decode=0.0, nogil=0.0)
        n = sum(1 for _ in ds)
        if epoch:
            out["read-ahead"].append(acc["decode"] / n * 1e6)
            out["nogil"].append(acc["nogil"] / n * 1e6)
    ds.close()
    # the default dataset (read-ahead on, assemble_ahead off) iterated directly: wall and process CPU per batch
    direct._UNPACK = gather._COMPILED = mod
    ds = PositionDataset(store, batch_size=batch_size, buffer_size=16384, seed=1, action_map=amap, max_players=4,
                         assemble_ahead=False)
    for epoch in range(epochs + 1):
        ds.set_epoch(epoch)
        gc.collect()
        w, c = time.perf_counter(), time.process_time()
        n = sum(1 for _ in ds)
        w, c = time.perf_counter() - w, time.process_time() - c
        if epoch:
            out["direct wall"].append(w / n * 1e6)
            out["direct cpu"].append(c / n * 1e6)
    ds.close()
    got = {k: statistics.median(v) for k, v in out.items()}
    got["gil"] = got["read-ahead"] - got["nogil"]
    got["module"] = gamestore.__file__  # type: ignore[assignment]
    return got


def _run(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ, GAMESTORE_BACKEND="cython", PYTHONPATH=str(tree))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--dir", str(args.dir), "--epochs",
           str(args.epochs), "--batch-size", str(args.batch_size)]
    res = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{tree}: {res.stderr[-2000:]}")
    got = json.loads(res.stdout.strip().splitlines()[-1])
    if not str(got["module"]).startswith(str(tree)):
        raise SystemExit(f"{tree}: imported gamestore from {got['module']}")
    return got


_ROWS = [("serial", "serial iteration, CPU per batch"), ("serial read", "of which the read chain (SegmentReader.read)"),
         ("read-ahead", "read-ahead threads, CPU per batch"),
         ("nogil", "of which compiled calls (libzstd and loops, no GIL)"), ("gil", "the rest: Python (GIL held)"),
         ("direct wall", "default dataset iterated directly, wall per batch"), ("direct cpu", "its process CPU per batch")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, required=True, help="work directory (the corpus is kept there)")
    ap.add_argument("--against", type=Path, help="another checkout (built in place) to alternate with")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(_measure(args.dir, args.epochs, args.batch_size)))
        return
    trees = [HERE] + ([args.against.resolve()] if args.against else [])
    runs: dict[Path, list[dict[str, Any]]] = {t: [] for t in trees}
    loads = []
    for p in range(args.pairs):
        for tree in trees if p % 2 == 0 else trees[::-1]:
            runs[tree].append(_run(tree, args))
        with open("/proc/loadavg") as f:
            loads.append(float(f.read().split()[0]))
        print(f"pair {p + 1}/{args.pairs}: " + "; ".join(
            f"{t.name}: serial {runs[t][-1]['serial']:.1f}, read {runs[t][-1]['serial read']:.1f}, read-ahead "
            f"{runs[t][-1]['read-ahead']:.1f}, gil {runs[t][-1]['gil']:.1f} us" for t in trees), flush=True)

    def q(v: list[float], d: int = 1) -> str:
        a, m, b = statistics.quantiles(v, n=4) if len(v) > 1 else (v[0], v[0], v[0])
        return f"{m:.{d}f} ({a:.{d}f}-{b:.{d}f})"

    print(f"\nus per batch of {args.batch_size}, medians (quartiles) of {args.pairs} runs each, {args.epochs} epochs "
          f"per run; load average {min(loads):.1f}-{max(loads):.1f}")
    head = "| us per batch | " + " | ".join(str(t) for t in trees)
    head += " | this / other, per pair |" if len(trees) == 2 else " |"
    print(head)
    print("| --- |" + " ---: |" * (len(trees) + (len(trees) == 2)))
    for key, label in _ROWS:
        row = f"| {label} | " + " | ".join(q([r[key] for r in runs[t]]) for t in trees)
        if len(trees) == 2:
            row += " | " + q([a[key] / b[key] for a, b in zip(runs[trees[0]], runs[trees[1]])], 2).replace(
                "(", "x (") + " |"
        print(row + (" |" if len(trees) == 1 else ""))


if __name__ == "__main__":
    main()
