"""CPU per batch of PositionDataset's read-ahead threads, and the part of it that holds the GIL.

    python -m benchmarks.readahead_cpu --dir DIR [--epochs 10] [--batch-size 256]

Iterates the RingRift corpus of ``benchmarks/bench_torch_ringrift.py`` (x26, built in DIR when missing) directly
with ``assemble_ahead=True`` and sums ``time.thread_time`` around every ``SegmentReader._decode`` (all the read-ahead
threads do) and around the compiled calls inside it that run without the GIL (``direct_source``: libzstd and the
per-row passes; ``unpack``, ``moves_rows``, ``key_codes`` for batches it does not take), reported as ``unpack``;
prints the medians per batch over the epochs after the first.  The difference is the read-ahead's Python, which
holds the GIL.  ``benchmarks/read_chain_cpu.py`` measures the same beside another checkout.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import threading
import time
from pathlib import Path
from typing import Any, Callable

import gamestore.positions.decode as decode
import gamestore.positions.direct as direct
import gamestore.positions.gather as gather
from benchmarks.bench_torch_ringrift import action_map_of, build_corpus
from gamestore.torch import PositionDataset


def thread_timer(acc: dict[str, float]) -> Callable[[Any, str], Any]:
    """``timed(f, key)``: ``f`` adding the CPU time of each call, on whichever thread makes it, to ``acc[key]``."""
    lock = threading.Lock()

    def timed(f: Any, key: str) -> Any:
        def g(*a: Any, **k: Any) -> Any:
            t = time.thread_time()
            try:
                return f(*a, **k)
            finally:
                d = time.thread_time() - t
                with lock:
                    acc[key] = acc.get(key, 0.0) + d
        return g
    return timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, required=True, help="work directory (the corpus is kept there)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    db, store = build_corpus(args.dir, 26)
    acc: dict[str, float] = {}
    timed = thread_timer(acc)

    decode.SegmentReader._decode = timed(decode.SegmentReader._decode, "read-ahead")  # type: ignore[method-assign]
    real = direct._unpacker()
    if real is None:
        raise SystemExit("the compiled backend is needed (GAMESTORE_BACKEND=cython)")

    class Timed:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    # the compiled calls the read-ahead makes without the GIL: direct_source (libzstd and the per-row passes in one
    # call), or, for batches it does not take, unpack and the key pass
    for name in ("direct_source", "unpack", "moves_rows", "key_codes"):
        if hasattr(real, name):
            setattr(Timed, name, staticmethod(timed(getattr(real, name), "unpack")))
    direct._UNPACK = gather._COMPILED = Timed()
    ds = PositionDataset(store, batch_size=args.batch_size, buffer_size=16384, seed=1, action_map=action_map_of(db),
                         max_players=4, assemble_ahead=True)
    per: dict[str, list[float]] = {"read-ahead": [], "unpack": [], "python (holds the GIL)": []}
    for epoch in range(args.epochs):
        ds.set_epoch(epoch)
        gc.collect()
        acc.clear()
        batches = sum(1 for _ in ds)
        if epoch:  # the first epoch opens the shards and fills the per-batch recipes
            got = {"read-ahead": acc.get("read-ahead", 0.0), "unpack": acc.get("unpack", 0.0)}
            got["python (holds the GIL)"] = got["read-ahead"] - got["unpack"]
            for k, v in got.items():
                per[k].append(v / batches * 1e6)
    ds.close()
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"read-ahead threads' CPU per batch of {args.batch_size} (median of {args.epochs - 1} epochs, load {load}): "
          + ", ".join(f"{k} {statistics.median(v):.1f} us" for k, v in per.items()))


if __name__ == "__main__":
    main()
