"""Instructions per ``get_game`` (callgrind): a load-independent measure of the point read's CPU.

    python benchmarks/count_get_game.py --store DIR/gamestore [--games 40]

Runs this file's ``--child`` mode twice under ``valgrind --tool=callgrind``: both open the store, pick the same
``--games`` random ids and read each once (shards opened, views built); one then reads them twice more, each call
with the batch and row caches cleared (as a random read of a large store is).  The difference of the two runs'
instruction counts over the ``2 x --games`` calls is the figure: the start-up, imports and warm-up cancel out.
On this shared machine wall-clock figures move 20-50% with the load; this one moves < 1% between runs (both
runs use one string-hash seed, PYTHONHASHSEED=0 unless set: a random seed moved it ~2%).
``DIR`` is a ``bench_get_game.py --workdir`` (its ``gamestore`` store).  Needs valgrind (apt: valgrind).
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_REPEAT = 2


def _child(store_path: str, n: int, repeat: int, seed: int) -> None:
    import gc

    import gamestore
    from gamestore import shard

    with gamestore.open(store_path, create=False) as store:
        ids = [r[0] for r in store.sql("SELECT game_id FROM games ORDER BY game_id").fetchall()]
        rng = random.Random(seed)
        sample = [rng.choice(ids) for _ in range(n)]
        for gid in sample:
            store.get_game(gid)
        gc.collect()
        for _ in range(repeat):
            for gid in sample:
                shard.BATCH_CACHE.clear()
                shard.ROW_CACHE.clear()
                store.get_game(gid)


def _start(store: str, n: int, repeat: int, seed: int, out: Path) -> subprocess.Popen:
    # one string-hash seed for both runs: with a random one per process, dict probe sequences (and so the count)
    # moved ~2% between runs of the same code
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]),
               PYTHONHASHSEED=os.environ.get("PYTHONHASHSEED", "0"))
    return subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
                             "--child", "--store", store, "--games", str(n), "--repeat", str(repeat),
                             "--seed", str(seed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _total(proc: subprocess.Popen, out: Path) -> int:
    _, err = proc.communicate()
    m = re.search(r"^(?:summary|totals): (\d+)", out.read_text(errors="replace"), re.M) if out.exists() else None
    if proc.returncode or m is None:
        raise SystemExit(f"callgrind run failed ({proc.returncode}):\n{err.decode(errors='replace')[-2000:]}")
    return int(m.group(1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="a gamestore store (bench_get_game.py --workdir DIR: DIR/gamestore)")
    p.add_argument("--games", type=int, default=40, help="random game ids read (each twice in the counted run)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--repeat", type=int, default=_REPEAT, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args.store, args.games, args.repeat, args.seed)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    from gamestore.backend import BACKEND

    with tempfile.TemporaryDirectory(prefix="gs-count-") as tmp:
        outs = [Path(tmp) / "base.out", Path(tmp) / "full.out"]
        procs = [_start(args.store, args.games, r, args.seed, o) for r, o in zip((0, _REPEAT), outs)]  # side by side
        base, full = (_total(pr, o) for pr, o in zip(procs, outs))
    per_call = (full - base) / (_REPEAT * args.games)
    print(f"backend={BACKEND} store={args.store} games={args.games} x{_REPEAT}, caches cleared before each call")
    print(f"  get_game: {per_call / 1e6:.3f} M instructions per call (callgrind)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
