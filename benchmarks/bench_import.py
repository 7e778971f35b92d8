"""RingRift GameReplayDB import: moves/s, and store size against the SQLite file and its zstd -19.

Run:  python benchmarks/bench_import.py [--repeat 3] [--big-db /tmp/rr_big.db] [--big-scale 1.0] [--json]

Each fixture is imported into a fresh store ``--repeat`` times (the best run
counts; modules are imported before timing), then exported back and
compared table by table, so the figures are for a lossless round trip.
With ``--big-db PATH`` a synthetic GameReplayDB of about 200,000 moves
(``BIG_MIX`` games of ``gamestore.testing.synth`` written through
``sqlite_baseline.SqliteBaseline``: v18 layout, snapshots with their move
history every 20 moves) is built at PATH if missing (kept for the next run),
imported once in this process (``workers=0``) and once with worker
processes (``--workers``, default one per CPU), exported and compared game
by game.  Besides wall-clock moves/s the table gives moves per CPU-second
(this process plus its workers), which a busy machine disturbs less.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import zstandard  # noqa: E402

import gamestore.store  # noqa: E402,F401  (import cost kept out of the timings)
from gamestore.ringrift.fixtures import decompress_fixtures  # noqa: E402
from gamestore.ringrift.mapping import compare_rows, rows_to_record  # noqa: E402
from gamestore.ringrift.sqlite_io import connect_readonly, game_ids, read_games, schema_report  # noqa: E402
from gamestore.ringrift.tables import GAME_TABLES, STORE_TABLES  # noqa: E402
from gamestore.ringrift.transfer import export_sqlite, import_sqlite  # noqa: E402

#: The big synthetic database: (board_type, num_players, games), about 200,000 moves, snapshots every 20 moves.
BIG_MIX = (("square8", 2, 500), ("square8", 4, 150), ("hex8", 2, 250), ("square19", 2, 80))


def build_big_db(path: Path, *, scale: float = 1.0) -> Path:
    """A GameReplayDB (v18 layout, lean mode with snapshots) of synthetic games, built once and reused."""
    if path.exists():
        return path
    from sqlite_baseline import SqliteBaseline

    from gamestore.testing.synth import iter_games

    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with SqliteBaseline(tmp, synchronous="OFF") as db:
        for seed, (board, players, n) in enumerate(BIG_MIX):
            db.write_games(iter_games(max(1, round(n * scale)), board_type=board, num_players=players,
                                      seed=seed, snapshot_every=20))  # fmt: skip
        db.checkpoint()
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    tmp.rename(path)
    return path


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _cpu() -> float:
    """CPU seconds of this process and of its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed_import(db: Path, store: Path, workers: int | None) -> tuple[object, float]:
    c0 = _cpu()
    report = import_sqlite(db, store, progress=False, workers=workers, pause_gc=True)  # as the CLI
    assert not report.failed, report.failed[:3]
    return report, _cpu() - c0


def _lossless(src: Path, out: Path) -> bool:
    """Every table of ``out`` equals ``src``'s, compared game by game (bounded memory)."""
    a, b = connect_readonly(src), connect_readonly(out)
    try:
        ra, rb = schema_report(a), schema_report(b)
        for t in STORE_TABLES:
            if compare_rows(t, a.execute(f"SELECT * FROM {t}").fetchall(), b.execute(f"SELECT * FROM {t}").fetchall()):
                return False
        ids = game_ids(a, ra)
        if sorted(ids) != sorted(game_ids(b, rb)):
            return False
        for k in range(0, len(ids), 32):
            part = ids[k : k + 32]
            for ga, gb in zip(read_games(a, ra, ids=part), read_games(b, rb, ids=part)):
                if any(compare_rows(t, ga[t], gb[t], limit=1) for t in GAME_TABLES):
                    return False
        return True
    finally:
        a.close()
        b.close()


def bench(db: Path, work: Path, repeat: int, *, workers: int | None = 0, baselines: bool = True) -> dict:
    size = db.stat().st_size
    zstd19 = len(zstandard.ZstdCompressor(level=19).compress(db.read_bytes())) if size < 2**30 else None
    best = best_cpu = store = None
    for i in range(repeat):
        store = work / f"{db.stem}-w{workers}-{i}"
        report, cpu = _timed_import(db, store, workers)
        if best is None or report.seconds < best.seconds:
            best, best_cpu = report, cpu
        if i < repeat - 1:
            shutil.rmtree(store)
    moves = best.moves_written
    out = {"database": db.name, "workers": workers, "games": best.games_written, "moves": moves,
           "import_moves_per_s": round(best.moves_per_second), "import_moves_per_cpu_s": round(moves / best_cpu)}  # fmt: skip
    if baselines:  # in the same run: the mapping alone, and reading every row + json.loads of its JSON columns
        con = connect_readonly(db)
        rep = schema_report(con)
        map_s = read_s = 0.0
        for rows in read_games(con, rep):
            t0 = time.process_time()
            rows_to_record(rows)
            map_s += time.process_time() - t0
        t0 = time.process_time()
        for rows in read_games(con, rep):
            for r in rows["game_moves"]:
                for cell in (r[6], r[16], r[17]):
                    if cell is not None:
                        json.loads(cell)
            for r in rows["game_state_snapshots"]:
                json.loads(r[2])
        read_s = time.process_time() - t0
        con.close()
        out["mapping_moves_per_cpu_s"] = round(moves / map_s)
        out["read_and_json_loads_moves_per_cpu_s"] = round(moves / read_s)
    out_db = work / f"{db.stem}-w{workers}-out.db"
    t0 = time.perf_counter()
    export_sqlite(store, out_db, progress=False)
    out["export_moves_per_s"] = round(moves / (time.perf_counter() - t0))
    out["lossless_round_trip"] = _lossless(db, out_db)
    out_db.unlink()
    store_bytes = _dir_bytes(store)
    out.update({"sqlite_bytes": size, "zstd19_bytes": zstd19, "store_bytes": store_bytes,
                "sqlite_over_store": round(size / store_bytes, 1),
                "store_over_zstd19": round(store_bytes / zstd19, 3) if zstd19 else None})  # fmt: skip
    shutil.rmtree(store)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--big-db", type=Path, default=None, help="synthetic ~200,000-move GameReplayDB (built if missing)")
    ap.add_argument("--big-scale", type=float, default=1.0, help="scale of BIG_MIX when building --big-db")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes for the parallel big run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_import_"))
    try:
        dbs = decompress_fixtures(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ringrift", work)
        results = [bench(path, work, args.repeat) for path in dbs.values()]
        if args.big_db is not None:
            big = build_big_db(args.big_db, scale=args.big_scale)
            results.append(bench(big, work, 1, workers=0))
            results.append(bench(big, work, 1, workers=args.workers, baselines=False))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"backend: {os.environ.get('GAMESTORE_BACKEND', 'default')}; cpus: {os.cpu_count()}; "
          f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip
    keys = ("database", "workers", "moves", "import_moves_per_s", "import_moves_per_cpu_s", "mapping_moves_per_cpu_s",
            "read_and_json_loads_moves_per_cpu_s", "export_moves_per_s", "sqlite_bytes", "zstd19_bytes", "store_bytes",
            "sqlite_over_store", "store_over_zstd19", "lossless_round_trip")  # fmt: skip
    hdr = ("database", "workers", "moves", "import mv/s", "import mv/CPU-s", "map mv/CPU-s", "read+json.loads mv/CPU-s",
           "export mv/s", "SQLite", "zstd-19", "store", "SQLite/store", "store/zstd19", "lossless")  # fmt: skip
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for r in results:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
