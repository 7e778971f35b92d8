"""Training batches per second: gamestore.torch against today's SQLite + JSON path, in one run.

    python -m benchmarks.bench_torch --games 1000 --memory-games 1000 10000

Both paths get the same synthetic games (``gamestore.testing.synth``, square8 2p)
and produce the same ready torch batches of ``--batch-size`` positions:
move number, player, policy candidate indices (through one shared
key -> index map) and probabilities padded to the widest policy, value
targets per player and for the mover, and the 49 heuristic features.

- **SQLite + JSON** (the pipeline today): a GameReplayDB-shaped SQLite file
  written by ``benchmarks/sqlite_baseline.py``; per game the moves rows are
  selected, ``move_json`` and ``move_probs`` decoded with ``json.loads``,
  keys mapped to indices, features read from bytes, and batches assembled
  with numpy.  In order, no shuffle.
- **gamestore**: ``PositionDataset`` (shuffled: seeded order of moves
  batches, then windows of 16,384 positions) through ``ResumableLoader``
  (``rl``) and through ``DataLoader(ds, batch_size=None)``
  (``dl``, the documented idiom, default collation), with 0, 1 and 2 workers.

Each configuration runs ``--rounds`` times, interleaved, and the best pass
counts (the machine is shared; ratios measured side by side are the
result).  ``positions/s`` covers the whole epoch including worker start-up;
``steady`` excludes the time to the first batch.  Peak memory: a fresh
process iterates one whole epoch with 2 workers over stores of each
``--memory-games`` size and reports its own and its workers' peak RSS.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from torch.utils.data import DataLoader

import gamestore
from gamestore.testing import synth
from gamestore.torch import PositionDataset, ResumableLoader

from benchmarks.sqlite_baseline import SqliteBaseline

SEED = 2026
CHUNK = 250


# ---------------------------------------------------------------------------
# corpora
# ---------------------------------------------------------------------------
def build_gamestore(path: Path, n: int, *, seed: int = SEED) -> None:
    with gamestore.open(path, vectors=synth.VECTORS, fsync=False) as store:
        for start in range(0, n, CHUNK):
            store.write_games(synth.iter_games(min(CHUNK, n - start), seed=seed + start))
        store.flush()


def build_both(root: Path, n: int) -> tuple[Path, Path]:
    gs, db = root / f"gs{n}", root / f"sqlite{n}.db"
    if (gs / "gamestore.json").exists() and db.exists():  # reuse a corpus from --dir
        return gs, db
    shutil.rmtree(gs, ignore_errors=True)
    db.unlink(missing_ok=True)
    with gamestore.open(gs, vectors=synth.VECTORS, fsync=False) as store, SqliteBaseline(db, synchronous="OFF") as base:
        for start in range(0, n, CHUNK):
            chunk = synth.games(min(CHUNK, n - start), seed=SEED + start)
            store.write_games(chunk)
            base.write_games(chunk)
        store.flush()
        base.checkpoint()
    return gs, db


def action_map_of(path: Path) -> dict[str, int]:
    with gamestore.open(path, create=False) as store:
        keys = [r[0] for r in store.sql("SELECT DISTINCT key FROM policies WHERE key IS NOT NULL ORDER BY key").fetchall()]
    return {k: i for i, k in enumerate(keys)}


# ---------------------------------------------------------------------------
# the pipeline today: SQLite rows + json.loads
# ---------------------------------------------------------------------------
def sqlite_batches(db: Path, action_map: dict[str, int], batch_size: int, max_players: int = 2):
    loads = json.loads
    con = sqlite3.connect(str(db))
    results = con.execute("SELECT game_id, winner, num_players FROM games ORDER BY game_id").fetchall()
    rows: list[tuple] = []

    def assemble(rows):
        n = len(rows)
        width = max(len(r[3]) for r in rows)
        index = np.full((n, width), -1, dtype=np.int64)
        prob = np.zeros((n, width), dtype=np.float32)
        for i, r in enumerate(rows):
            k = len(r[3])
            if k:
                index[i, :k] = r[3]
                prob[i, :k] = r[4]
        player = np.fromiter((r[2] for r in rows), dtype=np.int64, count=n)
        winner = np.fromiter((r[5] for r in rows), dtype=np.int64, count=n)
        nplayers = np.fromiter((r[6] for r in rows), dtype=np.int64, count=n)
        number = np.arange(max_players)[None, :] + 1
        value = np.where(number <= nplayers[:, None], np.where(number == winner[:, None], 1.0, -1.0), 0.0).astype(np.float32)
        mover = value[np.arange(n), np.clip(player - 1, 0, max_players - 1)]
        return {
            "game_id": [r[0] for r in rows],
            "move_number": torch.from_numpy(np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)),
            "player": torch.from_numpy(player),
            "policy_index": torch.from_numpy(index),
            "policy_prob": torch.from_numpy(prob),
            "value": torch.from_numpy(value),
            "value_mover": torch.from_numpy(mover),
            "vec_heuristic_features": torch.from_numpy(np.stack([r[7] for r in rows])),
        }

    query = "SELECT move_number, move_json, move_probs, heuristic_features FROM game_moves WHERE game_id = ? ORDER BY move_number"
    zeros = np.zeros(49, dtype=np.float32)
    for gid, winner, nplayers in results:
        for number, move_json, move_probs, features in con.execute(query, (gid,)):
            move = loads(move_json)
            probs = loads(move_probs) if move_probs else {}
            rows.append(
                (
                    gid,
                    number,
                    move["player"],
                    [action_map[k] for k in probs],
                    list(probs.values()),
                    winner or 0,
                    nplayers,
                    np.frombuffer(features, dtype=np.float32) if features else zeros,
                )
            )
            if len(rows) == batch_size:
                yield assemble(rows)
                rows = []
    if rows:
        yield assemble(rows)
    con.close()


# ---------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------
def _timed(batches) -> tuple[int, float, int, float]:
    """(positions, seconds in all, positions after the first batch, seconds after the first batch)."""
    t0 = time.perf_counter()
    n = first = 0
    t1 = None
    for b in batches:
        n += len(b["game_id"])
        if t1 is None:
            t1, first = time.perf_counter(), n
    end = time.perf_counter()
    return n, end - t0, n - first, end - (t1 if t1 is not None else t0)


def gamestore_loader(path: Path, action_map, batch_size: int, workers: int, epoch: int, kind: str):
    ds = PositionDataset(path, batch_size=batch_size, buffer_size=16384, seed=1, epoch=epoch, action_map=action_map)
    if kind == "rl":
        return ds, ResumableLoader(ds, num_workers=workers)
    return ds, DataLoader(ds, batch_size=None, num_workers=workers)


def throughput(gs: Path, db: Path, *, batch_size: int, rounds: int) -> dict:
    amap = action_map_of(gs)
    best: dict[str, dict] = {}
    total = None

    def keep(name, result):
        n, whole, rest, steady = result
        rate = {"positions_per_s": round(n / whole), "steady_per_s": round(rest / steady) if steady else 0}
        if name not in best or rate["positions_per_s"] > best[name]["positions_per_s"]:
            best[name] = rate

    for r in range(rounds):
        keep("sqlite_json", _timed(sqlite_batches(db, amap, batch_size)))
        for workers in (0, 1, 2):
            for kind in ("rl", "dl"):
                ds, loader = gamestore_loader(gs, amap, batch_size, workers, epoch=r, kind=kind)
                total = ds.num_positions
                keep(f"gamestore {kind} {workers}w", _timed(loader))  # worker start-up included
                ds.close()
    return {"positions": total, "results": best}


def _proc_kib(path: str, *fields: str) -> int:
    total = 0
    with open(path) as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in fields:
                total += int(rest.split()[0])
    return total


class _MemoryProbe:
    """A transform that records the worker's private memory (pages it wrote itself) and its high-water RSS."""

    def __call__(self, batch: dict) -> dict:
        batch["_private_kib"] = _proc_kib("/proc/self/smaps_rollup", "Private_Clean", "Private_Dirty")
        batch["_hwm_kib"] = _proc_kib("/proc/self/status", "VmHWM")
        return batch


def _peak_child(path: str, batch_size: int, workers: int) -> None:
    """Run in a fresh process: one epoch with ``workers`` workers; print positions and memory (MiB).

    ``ru_maxrss`` is not used: Linux carries it across exec from the parent
    and across fork into workers.  The main process reports its VmHWM; each
    worker its private memory (what it allocated itself, not the pages it
    shares with the main process) and its VmHWM, sampled at every batch.
    """
    ds = PositionDataset(path, batch_size=batch_size, buffer_size=16384, seed=1, transform=_MemoryProbe())
    loader = DataLoader(ds, batch_size=None, num_workers=workers)
    t0 = time.perf_counter()
    n = private = hwm = 0
    for b in loader:
        n += len(b["game_id"])
        private, hwm = max(private, b["_private_kib"]), max(hwm, b["_hwm_kib"])
    mib = 1024.0
    print(
        json.dumps(
            {
                "games": ds.num_games,
                "positions": n,
                "seconds": round(time.perf_counter() - t0, 3),
                "main_hwm_mib": round(_proc_kib("/proc/self/status", "VmHWM") / mib, 1),
                "worker_private_mib": round(private / mib, 1),
                "worker_hwm_mib": round(hwm / mib, 1),
            }
        )
    )


def peak_memory(path: Path, *, batch_size: int, workers: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_torch", "--peak-child", str(path), "--batch-size", str(batch_size),
         "--workers", str(workers)],
        check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--games", type=int, default=1000, help="games in the throughput corpus")
    ap.add_argument("--memory-games", type=int, nargs="*", default=[1000, 10000], help="store sizes for peak memory")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2, help="throughput passes per path (0: memory only)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the peak-memory runs")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one, removed)")
    ap.add_argument("--peak-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.peak_child:
        _peak_child(args.peak_child, args.batch_size, args.workers)
        return
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench_torch_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        gs, db = build_both(root, args.games)
        print(f"corpus: {args.games} games, {gamestore.open(gs, create=False).count_moves()} positions"
              f" (built in {time.perf_counter() - t:.0f} s)", flush=True)  # fmt: skip
        res = throughput(gs, db, batch_size=args.batch_size, rounds=args.rounds)["results"] if args.rounds else {}
        base = res["sqlite_json"]["positions_per_s"] if res else 1
        print(f"\npositions/s into ready torch batches (batch {args.batch_size}, best of {args.rounds}):")
        print("| path | positions/s | x SQLite+JSON | steady positions/s | x SQLite+JSON |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name, r in res.items():
            print(
                f"| {name} | {r['positions_per_s']:,} | {r['positions_per_s'] / base:.1f}x"
                f" | {r['steady_per_s']:,} | {r['steady_per_s'] / res['sqlite_json']['steady_per_s']:.1f}x |"
            )
        mem = []
        for n in args.memory_games:
            path = gs if n == args.games else root / f"mem{n}"
            if not (path / "gamestore.json").exists():
                shutil.rmtree(path, ignore_errors=True)
                build_gamestore(path, n)
            mem.append(peak_memory(path, batch_size=args.batch_size, workers=args.workers))
        print(f"\npeak memory over one epoch ({args.workers} workers, batch {args.batch_size}, buffer 16,384), MiB:")
        print("| games | positions | main process peak RSS | worker private peak | worker peak RSS |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for m in mem:
            print(
                f"| {m['games']:,} | {m['positions']:,} | {m['main_hwm_mib']}"
                f" | {m['worker_private_mib']} | {m['worker_hwm_mib']} |"
            )
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
