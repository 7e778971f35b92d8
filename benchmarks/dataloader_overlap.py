"""What torch's `DataLoader.__next__` costs per batch, alone and beside a second thread.

The DataLoader idiom's distance from iterating `PositionDataset` directly is torch's own per-batch cost
(`DataLoader.__next__`, its `record_function` annotation, `default_convert`): about 7 us per batch on ready
batches.  This measures that cost over a dataset that yields one prebuilt object, three ways:

- alone;
- beside a thread doing work without the GIL (numpy's sort): if the cost stays, torch's per-batch work can
  overlap a batch assembled on another thread in compiled code that releases the GIL;
- beside a thread spinning in Python (holding the GIL): the cost of every GIL round trip torch's dispatcher makes.

    python -m benchmarks.dataloader_overlap
"""
from __future__ import annotations

import argparse
import os
import threading
import time
from typing import Callable, Iterator

import numpy as np
from torch.utils.data import DataLoader, IterableDataset


class _Ready:
    """A batch object torch's default_convert passes through untouched."""


class _Same(IterableDataset):
    def __init__(self) -> None:
        self.item = _Ready()

    def __iter__(self) -> Iterator[_Ready]:
        while True:
            yield self.item


def per_next_us(calls: int) -> float:
    """Microseconds per `next()` on `DataLoader(ds, batch_size=None)` over ready batches."""
    it = iter(DataLoader(_Same(), batch_size=None))
    next(it)
    start = time.perf_counter()
    for _ in range(calls):
        next(it)
    return (time.perf_counter() - start) / calls * 1e6


def beside(work: Callable[[threading.Event], None], calls: int) -> float:
    stop = threading.Event()
    thread = threading.Thread(target=work, args=(stop,), daemon=True)
    thread.start()
    try:
        return per_next_us(calls)
    finally:
        stop.set()
        thread.join()


def _without_gil(stop: threading.Event) -> None:
    values = np.random.default_rng(0).random(200_000)
    while not stop.is_set():
        np.sort(values)


def _holding_gil(stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20_000)
    args = ap.parse_args()
    print(f"DataLoader(ds, batch_size=None).__next__ on ready batches, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    alone = per_next_us(args.calls)
    nogil = beside(_without_gil, args.calls)
    spinning = beside(_holding_gil, max(args.calls // 100, 50))
    print(f"  alone                                       {alone:8.1f} us per batch")
    print(f"  beside a thread working without the GIL     {nogil:8.1f} us per batch ({nogil / alone:.2f}x)")
    print(f"  beside a thread spinning in Python          {spinning:8.1f} us per batch ({spinning / alone:.0f}x)")


if __name__ == "__main__":
    main()
