"""Aggregate write throughput of 1, 2, 4 and 8 writer processes on one store path.

    python -m benchmarks.bench_writers --games 480

Each run starts P processes on a fresh store; each writes ``games / P``
synthetic games (generated before the start signal, not timed) in batches,
flushing after every batch, so every batch is one committed shard.  The
clock runs from the start signal to the last process's last flush.  The
same total work for every P: aggregate games/s must not fall as processes
are added (on a 2-core machine flat is the expectation; a collapse would
mean lock contention).  Each run ends with a check that every game is
stored exactly once.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gamestore
from gamestore import backend, codec
from gamestore.testing import synth


BOARDS = ("square8", "hex8", "square8", "hex8", "square19")


def corpus_slice(total: int, index: int, processes: int) -> list[dict]:
    """Games ``index, index + P, ...`` of one fixed corpus, so every P writes the same games."""
    return [synth.games(1, board_type=BOARDS[j % len(BOARDS)], num_players=2, seed=j)[0]
            for j in range(index, total, processes)]


def _writer(path: str, index: int, processes: int, total: int, batch: int, start, ready, out) -> None:
    games = corpus_slice(total, index, processes)
    with gamestore.open(path) as store:
        store.count_games()  # catalog loaded before the clock starts
        # first-call costs (lazy imports, regex compilation) are per process, not per game: pay them untimed
        codec.encode_games(games[:1], vectors=store.vectors, board_types=store.board_types)
        ready.release()
        start.wait()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        worst = 0.0
        for i in range(0, len(games), batch):
            c0 = time.perf_counter()
            store.write_games(games[i : i + batch])
            store.flush()
            worst = max(worst, time.perf_counter() - c0)
        out.put((index, time.perf_counter() - t0, sum(len(g["moves"]) for g in games), worst, time.process_time() - cpu0))


def _check_alive(procs) -> None:
    dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
    if dead:
        for p in procs:
            p.kill()
        raise RuntimeError(f"a writer process failed (exit codes {dead})")


def run(root: Path, processes: int, total: int, batch: int) -> dict:
    path = root / f"store-{processes}"
    gamestore.open(path, vectors={"heuristic_features": 49}).close()
    ctx = mp.get_context("spawn")
    start, ready, out = ctx.Event(), ctx.Semaphore(0), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(path), i, processes, total, batch, start, ready, out))
             for i in range(processes)]
    for p in procs:
        p.start()
    for _ in procs:
        while not ready.acquire(timeout=1.0):
            _check_alive(procs)
    t0 = time.perf_counter()
    start.set()
    results = []
    while len(results) < len(procs):
        try:
            results.append(out.get(timeout=1.0))
        except queue.Empty:
            _check_alive(procs)
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"writer exited with {p.exitcode}")
    with gamestore.open(path, create=False) as store:
        games, distinct = store.sql("SELECT count(*), count(DISTINCT game_id) FROM games").fetchall()[0]
        shards = len(store.catalog.shard_ids())
    if games != distinct or games != total:
        raise AssertionError(f"{processes} writers: {games} games stored, {distinct} distinct, {total} written")
    moves = sum(r[2] for r in results)
    return {"processes": processes, "games": games, "moves": moves, "elapsed": elapsed, "shards": shards,
            "worst_batch": max(r[3] for r in results), "cpu": sum(r[4] for r in results)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", type=int, default=480, help="total games per run (default 480)")
    p.add_argument("--batch", type=int, default=10, help="games per write+flush (one shard; default 10)")
    p.add_argument("--processes", default="1,2,4,8")
    p.add_argument("--dir", default=None)
    args = p.parse_args(argv)
    root = Path(args.dir or tempfile.mkdtemp(prefix="gs-bench-writers-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in (int(x) for x in args.processes.split(",")):
            rows.append(run(root, n, args.games, args.batch))
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    base = rows[0]["games"] / rows[0]["elapsed"]
    print(f"aggregate write throughput, {args.games} games per run, {args.batch} games per write+flush (one shard each),"
          f" fsync on, encoder backend {backend.BACKEND}, {os.cpu_count()} cores")
    print()
    print("| writer processes | games | moves | seconds | games/s | moves/s | vs 1 process | writers' CPU s | CPU ms per game |"
          " slowest write+flush (s) | shards |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        gps = r["games"] / r["elapsed"]
        print(f"| {r['processes']} | {r['games']} | {r['moves']:,} | {r['elapsed']:.1f} | {gps:.0f} |"
              f" {r['moves'] / r['elapsed']:,.0f} | {gps / base:.2f}x | {r['cpu']:.1f} | {r['cpu'] / r['games'] * 1000:.0f} |"
              f" {r['worst_batch']:.2f} | {r['shards']} |")
    print()
    print(f"load average during the runs: {os.getloadavg()[0]:.1f} (other processes share the {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
