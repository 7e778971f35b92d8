"""Where the training process's CPU goes per batch received from 2 DataLoader workers (issue 11's workers goal).

    python -m benchmarks.worker_split --copies 26 --epochs 15 --dir DIR               # workers started per epoch
    python -m benchmarks.worker_split --copies 26 --epochs 15 --dir DIR --persistent  # persistent_workers=True

On the corpus of ``bench_torch_ringrift`` (RingRift's fixture, games copied
``--copies`` times, imported; reused from ``--dir``), runs
``DataLoader(ds, batch_size=None, num_workers=2)`` for ``--epochs`` epochs
after one warm-up epoch and splits the training process's CPU per received
batch: its main thread against its other threads (multiprocessing's feeder
threads, which pickle the index-queue puts), and on the main thread the CPU
(thread clock) inside ``DataLoader.__next__``, the data-queue get (poll, pipe
read, unpickling and gamestore's rebuild of the batch from its shared-memory
slot), the unpickling and rebuild alone, the index-queue put, starting the
workers (``iter()``: queues and forks) and shutting them down, and
``set_epoch``.  The workers' own CPU per batch is printed by
``bench_torch_ringrift``.
"""
from __future__ import annotations

import argparse
import collections
import gc
import multiprocessing.queues as mq
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch.utils.data.dataloader as dl
from torch.utils.data import DataLoader

from benchmarks.bench_torch_ringrift import action_map_of, build_corpus, gamestore_dataset


def _timing(acc: collections.Counter, label: str, f: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.thread_time()
        try:
            return f(*args, **kwargs)
        finally:
            acc[label] += time.thread_time() - t

    return timed


def run(root: Path, copies: int, epochs: int, persistent: bool) -> None:
    from gamestore import backend

    db, store = build_corpus(root, copies)
    ds = gamestore_dataset(store, action_map_of(db), 256)
    acc: collections.Counter = collections.Counter()
    patches = [
        (mq._ForkingPickler, "loads", "unpickle + gamestore's rebuild"),
        (dl._MultiProcessingDataLoaderIter, "_try_get_data", "data-queue get (poll, pipe read, unpickle, rebuild)"),
        (dl._MultiProcessingDataLoaderIter, "_try_put_index", "index-queue put (main thread's part)"),
        (dl._BaseDataLoaderIter, "__next__", "DataLoader.__next__, all of it"),
        (dl._MultiProcessingDataLoaderIter, "__init__", "iter(): queues, workers forked"),
        (dl._MultiProcessingDataLoaderIter, "_shutdown_workers", "workers shut down"),
        (ds, "set_epoch", "set_epoch"),
    ]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, label in patches:
        setattr(obj, name, _timing(acc, label, getattr(obj, name)))
    try:
        loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True) if persistent else None
        batches, cpu0, main0 = 0, 0.0, 0.0
        for epoch in range(epochs + 1):
            if epoch == 1:  # the first epoch warms up (persistent workers start in it)
                gc.collect()
                acc.clear()
                batches, cpu0, main0 = 0, time.process_time(), time.thread_time()
            ds.set_epoch(epoch)
            for b in loader if loader is not None else DataLoader(ds, batch_size=None, num_workers=2):
                batches += 1
                len(b["move_number"])
        cpu, main = time.process_time() - cpu0, time.thread_time() - main0
        del loader
    finally:
        for obj, name, f in saved:
            setattr(obj, name, f)
    print(f"{'persistent_workers=True' if persistent else 'workers started per epoch'}, 2 workers, {epochs} epochs of"
          f" {batches // epochs} batches; backend {backend.selected().name}; load average {os.getloadavg()[0]:.1f}")
    print(f"  training process CPU per batch: {1e6 * cpu / batches:.0f} us: main thread {1e6 * main / batches:.0f},"
          f" other threads (feeders) {1e6 * (cpu - main) / batches:.0f}")
    for label, seconds in acc.most_common():
        print(f"    {label}: {1e6 * seconds / batches:.1f} us")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=26)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--persistent", action="store_true", help="persistent_workers=True (one loader for every epoch)")
    ap.add_argument("--dir", type=Path, help="where the corpus is built and kept (default: a temporary directory)")
    args = ap.parse_args()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        run(args.dir, args.copies, args.epochs, args.persistent)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp), args.copies, args.epochs, args.persistent)


if __name__ == "__main__":
    main()
