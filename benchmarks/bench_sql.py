"""``store.sql`` on move-level statements vs plain DuckDB over ``gamestore export --format parquet`` of the same store.

One run, side by side, statements interleaved, medians:

- a group-by over ``moves``, a join of ``moves`` with ``games``, one game's
  moves by ``game_id``;
- ``SELECT 1`` through ``store.sql`` vs a plain DuckDB connection: the
  per-statement overhead.

    python benchmarks/bench_sql.py [--games 2000] [--repeat 7] [--workdir DIR] [--no-column-cache]

``--workdir``: keep the store and its export there and reuse them on the
next run (a 20,000-game store takes minutes to write on a loaded machine).
The first statement over ``moves`` in a process also checks the checksums
of every batch it reads and parses the batches' layouts: it is reported
separately ("first scan").
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STATEMENTS = {
    "group-by over moves": "SELECT phase, move_type, count(*), avg(think_time_ms) FROM {moves} GROUP BY 1, 2 ORDER BY 1, 2",
    "join moves with games": "SELECT g.board_type, g.winner, count(*) FROM {moves} m JOIN {games} g USING (game_id)"
                             " GROUP BY 1, 2 ORDER BY 1, 2",
    "one game's moves": "SELECT count(*), max(move_number) FROM {moves} WHERE game_id = '{gid}'",
}


def _time(fn_a, fn_b, repeat: int) -> tuple[float, float]:
    """Medians of ``fn_a`` and ``fn_b``, run alternately (the machine's load drifts)."""
    a, b = [], []
    for _ in range(repeat):
        for fn, out in ((fn_a, a), (fn_b, b)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(a), statistics.median(b)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--no-column-cache", action="store_true", help="every statement decompresses its columns again")
    args = ap.parse_args(argv)
    import duckdb

    import gamestore
    from gamestore.testing import synth
    from gamestore.backend import BACKEND
    from gamestore.ops import export_parquet

    if args.no_column_cache:
        from gamestore import sqlscan

        sqlscan.COLUMN_CACHE.max_size = 0
    tmp = args.workdir or Path(tempfile.mkdtemp(prefix="bench-sql-"))
    if not (tmp / "export" / "moves.parquet").exists():
        with gamestore.open(tmp / "store", fsync=False) as s:
            for start in range(0, args.games, 500):
                s.write_games(synth.iter_games(min(500, args.games - start), seed=start + 1))
            s.flush()
            export_parquet(s, tmp / "export")
    with gamestore.open(tmp / "store", create=False) as s:
        gid = s.query_games(columns=["game_id"], limit=1, order_by="game_id").column("game_id")[0].as_py()
        moves = s.count_moves()
        games = s.count_games()
        con = duckdb.connect()
        plain = {"moves": f"read_parquet('{tmp / 'export' / 'moves.parquet'}')",
                 "games": f"read_parquet('{tmp / 'export' / 'games.parquet'}')"}
        rows = []
        t0 = time.perf_counter()
        s.sql(STATEMENTS["group-by over moves"].format(moves="moves")).fetchall()
        first = time.perf_counter() - t0
        for name, text in STATEMENTS.items():
            q_store = text.format(moves="moves", games="games", gid=gid)
            q_plain = text.format(**plain, gid=gid)
            assert s.sql(q_store).fetchall() == con.sql(q_plain).fetchall(), name
            t_store, t_plain = _time(lambda: s.sql(q_store).fetchall(), lambda: con.sql(q_plain).fetchall(),
                                     args.repeat)
            rows.append((name, t_store, t_plain))
        t_store, t_plain = _time(lambda: s.sql("SELECT 1").fetchall(), lambda: con.sql("SELECT 1").fetchall(), 50)
        rows.append(("SELECT 1 (per-statement overhead)", t_store, t_plain))
    print(f"backend={BACKEND} games={games:,} moves={moves:,} load average {os.getloadavg()[0]:.1f}")
    print(f"first scan (group-by, checksums checked, layouts parsed): {first * 1000:.0f} ms")
    print("| statement | store.sql | DuckDB on the Parquet export | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for name, a, b in rows:
        print(f"| {name} | {a * 1000:.2f} ms | {b * 1000:.2f} ms | {a / b:.1f}x |")


if __name__ == "__main__":
    main()
