"""Where the write path's time goes: wall, process CPU and the caller thread's CPU per move.

    python -m benchmarks.bench_write_path [--games 1000] [--chunk 500] [--repeat 3] [--no-fsync]

Writes the same synthetic square8 games (``gamestore.testing.synth``, seed 0, generated
before timing) into fresh stores with ``write_games`` calls of ``--chunk`` games and a
final ``flush``, as ``benchmarks/compare.py`` does (fsync on, default shard size).  A
full buffer is sealed by a helper thread (gamestore/sealing.py) while the caller
encodes the next games, so the caller thread's CPU (``time.thread_time``) is the
critical path on an idle machine with two or more cores: the wall time there
approaches max(caller CPU, process CPU / cores).  On a loaded machine the wall time
says little; the CPU figures hold.  Best of ``--repeat``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gamestore
from gamestore import backend
from gamestore.testing import synth


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--games", type=int, default=1000)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-fsync", action="store_true")
    args = ap.parse_args(argv)
    records = list(synth.iter_games(args.games, board_type="square8", num_players=2, seed=0))
    moves = sum(len(g["moves"]) for g in records)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench_write_path_") as tmp:
        for r in range(args.repeat):
            path = Path(tmp) / f"s{r}"
            with gamestore.open(path, vectors=synth.VECTORS, fsync=not args.no_fsync) as store:
                w, c, t = time.perf_counter(), time.process_time(), time.thread_time()
                for k in range(0, len(records), args.chunk):
                    store.write_games(records[k : k + args.chunk])
                store.flush()
                got = {"wall": time.perf_counter() - w, "cpu": time.process_time() - c, "caller": time.thread_time() - t}
                shards = len(store.catalog.shard_ids())
            shutil.rmtree(path)
            best = {k: min(v, best.get(k, v)) for k, v in got.items()}
    us = 1e6 / moves
    print(f"{backend.BACKEND}: {args.games:,} games, {moves:,} moves, {shards} shards; per move: wall {best['wall'] * us:.2f} us"
          f" ({args.games / best['wall']:,.0f} games/s), process CPU {best['cpu'] * us:.2f} us, caller thread CPU"
          f" {best['caller'] * us:.2f} us (load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
