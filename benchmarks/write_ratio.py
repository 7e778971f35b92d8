"""End-to-end write cost per backend: ``write_games`` + ``flush`` CPU time per move, compiled vs reference.

    python -m benchmarks.write_ratio [--games 150] [--repeat 3] [--breakdown]

Each backend runs in its own process (``GAMESTORE_BACKEND`` is read at
import) on the same synthetic square8 games (``gamestore.testing.synth``, seed 5),
alternating, best of ``--repeat`` fresh stores (fsync off).  CPU time
(``time.process_time``: this process's threads, Arrow's compression threads
included) is used rather than wall time, so that the ratio holds on a
shared machine.  ``--breakdown`` also splits the compiled path's CPU per
move into its parts (in one process, best of ``--repeat`` each) and times
Arrow's own zstd IPC writer on the same batches, next to gamestore's
(``gamestore.ipc_write``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]


def _child(games: int, repeat: int) -> None:
    import gamestore
    from gamestore import backend
    from gamestore.testing import synth

    records = synth.games(games, board_type="square8", num_players=2, seed=5)
    moves = sum(len(g["moves"]) for g in records)
    best = float("inf")
    with tempfile.TemporaryDirectory(prefix="write_ratio_") as tmp:
        for r in range(repeat):
            path = Path(tmp) / f"s{r}"
            with gamestore.open(path, vectors=synth.VECTORS, fsync=False) as store:
                t = time.process_time()
                store.write_games(records)
                store.flush()
                best = min(best, time.process_time() - t)
            shutil.rmtree(path)
    print(json.dumps({"backend": backend.BACKEND, "moves": moves, "us_per_move": best / moves * 1e6}))


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def _breakdown(games: int, repeat: int) -> None:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    import gamestore
    from gamestore import _encode, codec, shardwrite
    from gamestore.ipc_write import write_ipc_file
    from gamestore.schema import GAMES_SCHEMA, VectorSpec, moves_schema
    from gamestore.testing import synth

    records = synth.games(games, board_type="square8", num_players=2, seed=5)
    n = sum(len(g["moves"]) for g in records)
    specs = {k: VectorSpec.coerce(k, d) for k, d in synth.VECTORS.items()}
    ids, moves = [g["game_id"] for g in records], [g["moves"] for g in records]
    with tempfile.TemporaryDirectory(prefix="write_parts_") as tmp:
        total = float("inf")
        for r in range(repeat):
            with gamestore.open(Path(tmp) / f"s{r}", vectors=synth.VECTORS, fsync=False) as st:
                t = time.process_time()
                st.write_games(records)
                st.flush()
                total = min(total, time.process_time() - t)
        loop = _best(lambda: _encode.MoveEncoder([specs[k] for k in sorted(specs)], n).encode(ids, moves), repeat)
        enc = codec.encode_games(records, vectors=specs)
        encode = _best(lambda: codec.encode_games(records, vectors=specs), repeat)
        batches = list(shardwrite._move_batches(enc.games, enc.moves, 1024))
        mschema = moves_schema(specs)
        ours = _best(lambda: write_ipc_file(Path(tmp) / "m.arrow", mschema, batches), repeat)

        def arrows() -> None:
            opts = ipc.IpcWriteOptions(compression="zstd")
            with pa.OSFile(str(Path(tmp) / "a.arrow"), "wb") as f, ipc.new_file(f, mschema, options=opts) as w:
                for b in batches:
                    w.write_batch(b)

        arrow = _best(arrows, repeat)
        games_file = _best(lambda: write_ipc_file(Path(tmp) / "g.arrow", GAMES_SCHEMA, enc.games.to_batches()), repeat)
    us = 1e6 / n
    print(f"compiled, CPU us per move: write_games + flush {total * us:.2f}; Cython move loop"
          f" {loop * us:.2f}; rest of encode_games (headers, Arrow arrays) {(encode - loop) * us:.2f};"
          f" moves.arrow {ours * us:.2f} (Arrow's zstd IPC writer on the same batches: {arrow * us:.2f});"
          f" games.arrow {games_file * us:.2f}; the rest (store, manifest, checksums, catalog)"
          f" {(total - encode - ours - games_file) * us:.2f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--games", type=int, default=150)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--breakdown", action="store_true", help="also split the compiled path's CPU per move")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.breakdown:
        from gamestore import backend

        if backend.BACKEND != "cython":
            raise SystemExit(f"--breakdown measures the compiled backend; this process has {backend.BACKEND}")
        _breakdown(args.games, args.repeat)
    if args.child:
        _child(args.games, args.repeat)
        return
    best: dict[str, dict] = {}
    for _ in range(2):
        for name in ("cython", "python"):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.write_ratio", "--child", "--games", str(args.games), "--repeat", str(args.repeat)],
                check=True, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "GAMESTORE_BACKEND": name},
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if r["backend"] != name:
                raise SystemExit(f"asked for backend {name}, got {r['backend']}")
            if name not in best or r["us_per_move"] < best[name]["us_per_move"]:
                best[name] = r
    cy, py = best["cython"]["us_per_move"], best["python"]["us_per_move"]
    print(f"{best['cython']['moves']:,} moves; write_games + flush, CPU per move: compiled {cy:.2f} us,"
          f" reference {py:.2f} us: {py / cy:.1f}x (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
