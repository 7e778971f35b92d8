"""gamestore.compat against RingRift's own GameReplayDB on the same data, side by side, in one run.

    python -m benchmarks.bench_compat [--copies 10] [--repeat 5] [--skip-export] [--json]

Data: the two RingRift fixtures, each game copied ``--copies`` times under new ids into one
SQLite file (RingRift's v18 DDL), and a store imported from it.  RingRift's code comes from
``../shared/ringrift-src`` (extracted to a temporary directory).  Reported, per operation,
RingRift's time on SQLite, the facade's time on gamestore, and the ratio SQLite/gamestore
(> 1: gamestore faster): opening, every read method (RingRift's pydantic objects on both
sides), the raw SQL RingRift runs (gamestore.ringrift.rr_sql) on sqlite3 and on
gamestore.compat.connect, and the training exporter end to end.  Page cache warm; the best of
``--repeat`` runs for each.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gamestore.compat as compat
from gamestore.ringrift.fixtures import decompress_fixtures, extract_source
from gamestore.ringrift.rr_sql import STATEMENTS, bind
from gamestore.ringrift.sqlite_io import create_v18, finish_v18
from gamestore.ringrift.tables import COLUMNS, GAME_TABLES
from gamestore.ringrift.transfer import import_sqlite


def build_sqlite(fixtures: dict[str, Path], dst: Path, copies: int) -> None:
    """One v18 file holding every fixture game ``copies`` times (ids suffixed ``-c<k>``)."""
    con = create_v18(dst)
    for n, path in enumerate(fixtures.values()):
        con.execute(f"ATTACH DATABASE ? AS f{n}", (str(path),))
        for k in range(copies):
            for table in [t for t in GAME_TABLES if t != "games"] + ["games"]:
                cols = COLUMNS[table]
                sel = ", ".join(f"game_id || '-c{k}'" if c == "game_id" else c for c in cols)
                con.execute(f"INSERT INTO main.{table} ({', '.join(cols)}) SELECT {sel} FROM f{n}.{table}")
    con.execute("INSERT INTO schema_metadata SELECT * FROM f0.schema_metadata")
    finish_v18(con)
    con.close()


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=10, help="copies of each fixture game (default 10: 120 games)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-export", action="store_true", help="leave out the training exporter (slowest part)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="bench_compat_"))
    try:
        rows = run(tmp, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{'operation':58} {'SQLite ms':>10} {'gamestore ms':>12} {'ratio':>7}")
        for r in rows:
            print(f"{r['op'][:58]:58} {r['sqlite_ms']:10.3f} {r['gamestore_ms']:12.3f} {r['ratio']:7.2f}")
    return 0


def run(tmp: Path, args: argparse.Namespace) -> list[dict]:
    fixtures = decompress_fixtures(tmp)
    db = tmp / "replays.db"
    build_sqlite(fixtures, db, args.copies)
    store_path = tmp / "store"
    import_sqlite(db, store_path, progress=False, workers=0)
    src = extract_source(tmp / "src")
    sys.path.insert(0, str(src))
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        from app.db.game_replay import GameReplayDB as RDB
        from app.models import BoardType
    rdb, ours = RDB(str(db)), compat.GameReplayDB(store_path)
    from gamestore.backend import BACKEND

    assert ours.pydantic and BACKEND == "cython", "compare against the compiled build with RingRift's models"
    out: list[dict] = []

    def pair(op: str, theirs: Callable[[], Any], mine: Callable[[], Any], repeat: int = args.repeat) -> None:
        mine()  # warm both
        theirs()
        a, b = best(theirs, repeat), best(mine, repeat)
        out.append({"op": op, "sqlite_ms": a * 1e3, "gamestore_ms": b * 1e3, "ratio": a / b if b else float("inf")})

    pair("open", lambda: RDB(str(db)), lambda: compat.GameReplayDB(store_path).close())
    ids = [g["game_id"] for g in rdb.query_games(limit=10_000, exclude_non_canonical=False)]
    gid = max(ids, key=lambda g: rdb.get_game_metadata(g)["total_moves"] if g.startswith("square8") else 0)
    hist = next(g for g in ids if g.startswith("square8-2p") and rdb.get_all_history_entries(g, False))
    some = ids[: min(20, len(ids))]

    def each(method: str, *a: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
        return (lambda: [getattr(rdb, method)(g, *a) for g in some], lambda: [getattr(ours, method)(g, *a) for g in some])

    for method in ("get_game_metadata", "get_game_with_players", "get_initial_state", "get_moves", "get_move_records",
                   "get_game_heuristics_batch", "has_heuristics", "has_nnue_features"):  # fmt: skip
        pair(f"{method} (x{len(some)} games)", *each(method))
    pair("get_move_heuristics (x20 games)", *each("get_move_heuristics", 5))
    pair("get_state_at_move(snapshot + 5) (1 game)",
         lambda: rdb.get_state_at_move(gid, 45), lambda: ours.get_state_at_move(gid, 45), 2)  # fmt: skip
    pair("get_all_history_entries (1 game)",
         lambda: rdb.get_all_history_entries(hist), lambda: ours.get_all_history_entries(hist), 2)  # fmt: skip
    for label, kw in (("query_games()", {}), ("query_games(board_type=square8)", {"board_type": BoardType.SQUARE8}),
                      ("query_games(num_players=2, limit=10)", {"num_players": 2, "limit": 10})):  # fmt: skip
        pair(label, lambda kw=kw: rdb.query_games(**kw), lambda kw=kw: ours.query_games(**kw))
    pair("get_game_count(board_type=hex8)", lambda: rdb.get_game_count("hex8"), lambda: ours.get_game_count("hex8"))
    pair("get_stats", rdb.get_stats, ours.get_stats)
    pair("get_moves_batch (20 games)", lambda: rdb.get_moves_batch(some), lambda: ours.get_moves_batch(some))
    pair("get_move_probs_batch (20 games)", lambda: rdb.get_move_probs_batch(some), lambda: ours.get_move_probs_batch(some))
    pair("iterate_games(board_type=square8)", lambda: list(rdb.iterate_games(board_type="square8")),
         lambda: list(ours.iterate_games(board_type="square8")), 2)  # fmt: skip
    pair("iterate_games_with_probs()", lambda: list(rdb.iterate_games_with_probs()),
         lambda: list(ours.iterate_games_with_probs()), 2)  # fmt: skip

    lite = sqlite3.connect(db)
    gconn = compat.connect(store_path)
    by_len = sorted(ids, key=lambda g: -rdb.get_game_metadata(g)["total_moves"])
    for source, sql, params in STATEMENTS:
        p = bind(params, by_len)

        def q(conn: Any, sql: str = sql, p: tuple = p) -> Any:
            try:
                return conn.execute(sql, p).fetchall()
            except sqlite3.OperationalError:
                return None

        pair(f"SQL {source}: {' '.join(sql.split())[:40]}", lambda: q(lite), lambda: q(gconn))
    if not args.skip_export:
        out.append(_exporter(db, store_path, tmp))
    return out


def _exporter(db: Path, store_path: Path, tmp: Path) -> dict:
    import scripts.export_replay_dataset as exporter

    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        def run(path: Path, name: str) -> float:
            t = time.perf_counter()
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                rc = exporter.main(["--db", str(path), "--board-type", "square8", "--num-players", "2",
                                    "--output", str(tmp / name), "--single-threaded", "--allow-noncanonical"])  # fmt: skip
            assert rc == 0
            return time.perf_counter() - t

        a = run(db, "sqlite.npz")
        original, original_connect = exporter.GameReplayDB, sqlite3.connect
        exporter.GameReplayDB, sqlite3.connect = compat.GameReplayDB, compat.connect  # the one-line migration
        try:
            b = run(store_path, "gamestore.npz")
        finally:
            exporter.GameReplayDB, sqlite3.connect = original, original_connect
    finally:
        os.chdir(cwd)
    return {"op": "export_replay_dataset.py end to end (square8 2p)", "sqlite_ms": a * 1e3, "gamestore_ms": b * 1e3,
            "ratio": a / b}  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
