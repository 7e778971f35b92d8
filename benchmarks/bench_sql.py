"""``store.sql`` on move-level statements vs plain DuckDB over ``gamestore export --format parquet`` of the same store.

One run, side by side, statements alternating store / Parquet, medians
(wall and process CPU, which counts every thread):

- a group-by over ``moves``, a join of ``moves`` with ``games``, one game's
  moves by ``game_id``: with the column cache warm (``cached``) and with it
  off (``uncached``: every statement decompresses its columns again);
- ``SELECT 1`` through ``store.sql`` vs a plain DuckDB connection: the
  per-statement overhead;
- a process's first statement: fresh Python processes, alternating, each
  running the group-by once (store: ``gamestore.open`` then ``store.sql``;
  Parquet: ``duckdb.connect`` then the statement), in two variants whose
  clocks start at the same point on both sides:

  * ``libraries imported``: both processes first run the same line,
    ``import duckdb, pyarrow`` (its cost printed apart), then start the
    clock: the store's side counts importing gamestore's own modules (and
    what only they import, e.g. ``pyarrow.parquet``), opening the store
    (catalog checkpoint, views) and the statement; the Parquet side counts
    ``duckdb.connect`` and the statement.  This is the goal's figure;
  * ``imports included``: the clock starts at the process's first line, so
    the store's side also imports pyarrow and DuckDB and the Parquet side
    DuckDB; also timed as the whole process (interpreter start-up too).

  Wall and process CPU (every thread); modules from compiled bytecode, as
  installed (an untimed first round writes it under the workdir).

    python benchmarks/bench_sql.py [--games 2000] [--repeat 7] [--first 5] [--workdir DIR]

``--workdir``: keep the store and its export there and reuse them on the
next run (a 20,000-game store takes minutes to write on a loaded machine).
The store's shards are as the build that wrote them made them: the header
line names their format versions (version 5 stores the group columns'
dictionary indices uncompressed, docs/format.md section 8), so a workdir
written by an older build measures that build's shards.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STATEMENTS = {
    "group-by over moves": "SELECT phase, move_type, count(*), avg(think_time_ms) FROM {moves} GROUP BY 1, 2 ORDER BY 1, 2",
    "join moves with games": "SELECT g.board_type, g.winner, count(*) FROM {moves} m JOIN {games} g USING (game_id)"
                             " GROUP BY 1, 2 ORDER BY 1, 2",
    "one game's moves": "SELECT count(*), max(move_number) FROM {moves} WHERE game_id = '{gid}'",
}
FIRST = "group-by over moves"

# A fresh process (argv: kind, store or export, query, variant): prints {"libs": s, "import": s, "open": s,
# "statement": s, "statement_cpu": s, "cpu": s}.  Variant "libs": the same first line on both sides imports
# DuckDB and pyarrow before the clock starts (their cost: "libs"); variant "cold": the clock starts at once.
# "import": gamestore's modules (store) / nothing (Parquet), "open": opening the store / duckdb.connect,
# "statement": all of the clock (imports, open, statement) in wall time, "statement_cpu" in process CPU
# (every thread); "cpu": the process's CPU since the interpreter started.
_CHILD = r"""
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
kind, where, query, variant = sys.argv[1:5]
if variant == "libs":
    import duckdb, pyarrow
t1, c1 = time.perf_counter(), time.process_time()
if kind == "store":
    import gamestore
    opener = gamestore.open  # imports gamestore.store and what it needs
    t2 = time.perf_counter()
    s = opener(where, create=False)
    t3 = time.perf_counter()
    rows = s.sql(query).fetchall()
else:
    import duckdb
    t2 = time.perf_counter()
    con = duckdb.connect()
    t3 = time.perf_counter()
    rows = con.sql(query).fetchall()
t4, c4 = time.perf_counter(), time.process_time()
print(json.dumps({"libs": t1 - t0, "import": t2 - t1, "open": t3 - t2, "statement": t4 - t1,
                  "statement_cpu": c4 - c1, "cpu": c4, "rows": len(rows)}))
"""


def _time(fn_a: Callable[[], object], fn_b: Callable[[], object], repeat: int) -> list[tuple[float, float]]:
    """Median (wall, CPU) of ``fn_a`` and of ``fn_b``, run alternately (the machine's load drifts)."""
    out: list[list[tuple[float, float]]] = [[], []]
    for _ in range(repeat):
        for fn, got in zip((fn_a, fn_b), out):
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            got.append((time.perf_counter() - t0, time.process_time() - c0))
    return [(statistics.median(w for w, _ in g), statistics.median(c for _, c in g)) for g in out]


def _first(store: Path, plain_query: str, store_query: str, repeat: int) -> dict[str, list[dict]]:
    """Medians of fresh processes' first statement by variant ("libs", "cold"): [store, parquet], each
    {libs, import, open, statement, statement_cpu, cpu, process}."""
    kinds = [(v, k, q) for v in ("libs", "cold") for k, q in (("store", store_query), ("parquet", plain_query))]
    runs: dict[tuple[str, str], list[dict]] = {(v, k): [] for v, k, _ in kinds}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    # compiled bytecode as an installed package has it (pip writes .pyc files; run from a source tree with
    # PYTHONDONTWRITEBYTECODE, every process compiled gamestore's modules again: ~60 ms): cached under the
    # store's directory by an untimed first round
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(store.parent / "pycache")
    for round_ in range(repeat + 1):
        for variant, kind, query in kinds:
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", _CHILD, kind, str(store), query, variant], env=env,
                                 check=True, capture_output=True, text=True).stdout
            got = json.loads(out.strip().splitlines()[-1])
            got["process"] = time.perf_counter() - t0
            if round_:
                runs[variant, kind].append(got)
    return {v: [{key: statistics.median(r[key] for r in runs[v, k]) for key in runs[v, k][0]}
                for k in ("store", "parquet")] for v in ("libs", "cold")}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--first", type=int, default=5, help="fresh processes per side for the first statement")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    import duckdb

    import gamestore
    from gamestore import sqlscan
    from gamestore.backend import BACKEND
    from gamestore.ops import export_parquet
    from gamestore.testing import synth

    tmp = args.workdir or Path(tempfile.mkdtemp(prefix="bench-sql-"))
    if not (tmp / "export" / "moves.parquet").exists():
        with gamestore.open(tmp / "store", fsync=False) as s:
            for start in range(0, args.games, 500):
                s.write_games(synth.iter_games(min(500, args.games - start), seed=start + 1))
            s.flush()
            export_parquet(s, tmp / "export")
    plain = {"moves": f"read_parquet('{tmp / 'export' / 'moves.parquet'}')",
             "games": f"read_parquet('{tmp / 'export' / 'games.parquet'}')"}
    load = [os.getloadavg()[0]]
    first = _first(tmp / "store", STATEMENTS[FIRST].format(**plain), STATEMENTS[FIRST].format(moves="moves"),
                   args.first)
    load.append(os.getloadavg()[0])
    rows = []
    with gamestore.open(tmp / "store", create=False) as s:
        gid = s.query_games(columns=["game_id"], limit=1, order_by="game_id").column("game_id")[0].as_py()
        moves = s.count_moves()
        games = s.count_games()
        con = duckdb.connect()
        cache_size = sqlscan.COLUMN_CACHE.max_size
        for cached in (True, False):
            sqlscan.COLUMN_CACHE.max_size = cache_size if cached else 0
            sqlscan.COLUMN_CACHE.clear()
            for name, text in STATEMENTS.items():
                q_store = text.format(moves="moves", games="games", gid=gid)
                q_plain = text.format(**plain, gid=gid)
                assert s.sql(q_store).fetchall() == con.sql(q_plain).fetchall(), name
                a, b = _time(lambda: s.sql(q_store).fetchall(), lambda: con.sql(q_plain).fetchall(), args.repeat)
                rows.append((f"{name} ({'cached' if cached else 'uncached'})", a, b))
            load.append(os.getloadavg()[0])
        sqlscan.COLUMN_CACHE.max_size = cache_size
        a, b = _time(lambda: s.sql("SELECT 1").fetchall(), lambda: con.sql("SELECT 1").fetchall(), 50)
        rows.append(("SELECT 1 (per-statement overhead)", a, b))
    for variant, key, cpu, label in (
            ("libs", "statement", "statement_cpu", "first statement in a fresh process, libraries imported (store:"
             " import gamestore, open, statement; Parquet: connect, statement)"),
            ("cold", "statement", "statement_cpu", "first statement in a fresh process, imports included (store:"
             " import gamestore, pyarrow, DuckDB, open, statement; Parquet: import DuckDB, connect, statement)"),
            ("cold", "process", "cpu", "first statement's whole process (interpreter, imports, open, statement)")):
        st, pq = first[variant]
        rows.append((label, (st[key], st[cpu]), (pq[key], pq[cpu])))
    versions = collections.Counter(json.loads(m.read_text())["format_version"]
                                   for m in (tmp / "store" / "shards").glob("*/MANIFEST.json"))
    print(f"backend={BACKEND} games={games:,} moves={moves:,} shard format versions"
          f" {', '.join(f'{v}: {n}' for v, n in sorted(versions.items()))}"
          f" load average {' / '.join(f'{x:.1f}' for x in load)}")
    (st, pq), (cold, _) = first["libs"], first["cold"]
    print(f"first-statement processes (medians of {args.first}), wall: `import duckdb, pyarrow` before the clocks"
          f" {st['libs'] * 1000:.0f} ms (store side) / {pq['libs'] * 1000:.0f} ms (Parquet side); then store: import"
          f" gamestore's modules {st['import'] * 1000:.0f} ms, open {st['open'] * 1000:.0f} ms, statement"
          f" {(st['statement'] - st['import'] - st['open']) * 1000:.0f} ms; Parquet: connect {pq['open'] * 1000:.0f} ms,"
          f" statement {(pq['statement'] - pq['open']) * 1000:.0f} ms; imports included, the store's imports"
          f" {cold['import'] * 1000:.0f} ms")
    print("| statement | store.sql | DuckDB on the Parquet export | ratio | store CPU | Parquet CPU | CPU ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, (a, ac), (b, bc) in rows:
        cpu = "| | |" if ac != ac else f"| {ac * 1000:.2f} ms | {bc * 1000:.2f} ms | {ac / bc:.2f}x |"
        print(f"| {name} | {a * 1000:.2f} ms | {b * 1000:.2f} ms | {a / b:.2f}x {cpu}")


if __name__ == "__main__":
    main()
