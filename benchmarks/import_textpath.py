"""CPU per move of import-sqlite's RingRift text -> record -> encoded columns path, in one process.

    python -m benchmarks.import_textpath --dir DIR [--games 100] [--base CHECKOUT ...] [--rounds 2]

The part of ``gamestore import-sqlite`` between the SQLite rows and the shard writer, without SQLite
reads, process start-up or file writes: ``rows_to_record`` of each game (``move_json`` split, policy
and search text into column form, snapshot states) and ``codec.encode_games`` of the records (the
store's validation and the compiled encoder), with the cyclic GC off as ``import_sqlite`` runs them.  Corpus: the first ``--games`` games of the fixture
expanded as ``benchmarks.import_cli`` expands it (``ringrift_x40.db`` in ``--dir``).  CPU time
(``process_time``), best of 5 per round.  ``--base`` runs the same measurement in other checkouts
(compiled in place) alternately with this one, so a before/after pair shares the machine's load.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import gc, sys, time, sqlite3
sys.path.insert(0, ".")
import gamestore.backend as gb
from gamestore import codec
from gamestore.ringrift import mapping
from gamestore.ringrift.sqlite_io import read_games
from gamestore.ringrift.transfer import schema_report
db, ngames = sys.argv[1], int(sys.argv[2])
con = sqlite3.connect(db)
games = []
for g in read_games(con, schema_report(con)):
    games.append(g)
    if len(games) >= ngames:
        break
nm = sum(len(g["game_moves"]) for g in games)
def best(f):
    f()
    b = 1e9
    for _ in range(5):
        t = time.process_time(); f(); b = min(b, time.process_time() - t)
    return b / nm * 1e6
gc.disable()  # as import_sqlite runs
recs = [mapping.rows_to_record(g) for g in games]
a = best(lambda: [mapping.rows_to_record(g) for g in games])
e = best(lambda: codec.encode_games(recs, vectors=mapping.RINGRIFT_VECTORS))
print(gb.BACKEND, nm, a, e)
"""


def measure(checkout: Path, db: Path, games: int) -> tuple[str, int, float, float]:
    env = dict(os.environ, GAMESTORE_BACKEND="cython")
    out = subprocess.run([sys.executable, "-c", _CHILD, str(db), str(games)], cwd=checkout, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return out[0], int(out[1]), float(out[2]), float(out[3])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, required=True, help="work directory (the expanded database is kept there)")
    ap.add_argument("--games", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--base", type=Path, nargs="*", default=[],
                    help="other checkouts, compiled in place, measured alternately with this one")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from benchmarks.ringrift_corpus import expanded_fixture

    args.dir.mkdir(parents=True, exist_ok=True)
    db = expanded_fixture(args.dir, 40)
    trees = [("this", ROOT)] + [(f"base {i + 1}", b.resolve()) for i, b in enumerate(args.base)]
    best: dict[str, tuple[float, float]] = {}
    loads = []
    moves = 0
    for _ in range(args.rounds):
        for name, tree in trees:
            backend, moves, a, e = measure(tree, db, args.games)
            if backend != "cython":
                raise SystemExit(f"{tree}: backend {backend}, not cython")
            loads.append(os.getloadavg()[0])
            if name not in best or a + e < sum(best[name]):
                best[name] = (a, e)
    print(f"{db.name}: first {args.games} games, {moves:,} moves; load average {min(loads):.1f}-{max(loads):.1f};"
          f" {time.strftime('%H:%M')}")
    print("| checkout | rows_to_record us/move | encode_games us/move | total us CPU/move |")
    print("| --- | ---: | ---: | ---: |")
    for name, tree in trees:
        a, e = best[name]
        print(f"| {name} ({tree}) | {a:.1f} | {e:.1f} | {a + e:.1f} |")


if __name__ == "__main__":
    main()
