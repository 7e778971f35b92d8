"""RingRift GameReplayDB import: moves/s, and store size against the SQLite file and its zstd -19.

Run:  python benchmarks/bench_import.py [--repeat 3] [--json]

Each fixture is imported into a fresh store ``--repeat`` times (the best run
counts; modules are imported before timing), then exported back and
compared table by table, so the figures are for a lossless round trip.
"""
from __future__ import annotations

import argparse
import json
import os
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
from gamestore.ringrift.sqlite_io import connect_readonly, read_games, read_table, schema_report  # noqa: E402
from gamestore.ringrift.tables import COLUMNS  # noqa: E402
from gamestore.ringrift.transfer import export_sqlite, import_sqlite  # noqa: E402


#: The big synthetic database: (board_type, num_players, games), about 200,000 moves, snapshots every 20 moves.
BIG_MIX = (("square8", 2, 500), ("square8", 4, 150), ("hex8", 2, 250), ("square19", 2, 80))


def build_big_db(path: Path, *, scale: float = 1.0) -> Path:
    """A GameReplayDB (v18 layout, lean mode with snapshots) of synthetic games, built once and reused."""
    if path.exists():
        return path
    from gamestore.synth import iter_games

    from sqlite_baseline import SqliteBaseline

    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with SqliteBaseline(tmp, synchronous="OFF") as db:
        for seed, (board, players, n) in enumerate(BIG_MIX):
            db.write_games(iter_games(max(1, round(n * scale)), board_type=board, num_players=players,
                                      seed=seed, snapshot_every=20))
        db.checkpoint()
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    tmp.rename(path)
    return path


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _tables(path: Path) -> dict:
    con = connect_readonly(path)
    rep = schema_report(con)
    out = {t: read_table(con, t, rep) for t in COLUMNS}
    con.close()
    return out


def bench(db: Path, work: Path, repeat: int) -> dict:
    size = db.stat().st_size
    zstd19 = len(zstandard.ZstdCompressor(level=19).compress(db.read_bytes()))
    best = None
    store = None
    for i in range(repeat):
        store = work / f"{db.stem}-{i}"
        report = import_sqlite(db, store, progress=False)
        assert not report.failed, report.failed
        if best is None or report.seconds < best.seconds:
            best = report
    # mapping alone (rows -> records), to separate it from the store's encoder
    con = connect_readonly(db)
    games = list(read_games(con, schema_report(con)))
    con.close()
    t0 = time.perf_counter()
    for rows in games:
        rows_to_record(rows)
    map_s = time.perf_counter() - t0
    # baseline in the same run: read every row and parse its JSON columns (json.loads), nothing else
    t0 = time.perf_counter()
    con = connect_readonly(db)
    for rows in read_games(con, schema_report(con)):
        for r in rows["game_moves"]:
            for cell in (r[6], r[16], r[17]):
                if cell is not None:
                    json.loads(cell)
        for r in rows["game_state_snapshots"]:
            json.loads(r[2])
    con.close()
    parse_s = time.perf_counter() - t0
    out_db = work / f"{db.stem}-out.db"
    t0 = time.perf_counter()
    export_sqlite(store, out_db, progress=False)
    export_s = time.perf_counter() - t0
    src, back = _tables(db), _tables(out_db)
    lossless = all(not compare_rows(t, src[t], back[t]) for t in COLUMNS)
    store_bytes = _dir_bytes(store)
    shard_bytes = _dir_bytes(store / "shards")
    return {
        "fixture": db.name,
        "games": best.games_written,
        "moves": best.moves_written,
        "import_moves_per_s": round(best.moves_per_second),
        "mapping_moves_per_s": round(best.moves_written / map_s),
        "read_and_json_loads_moves_per_s": round(best.moves_written / parse_s),
        "export_moves_per_s": round(best.moves_written / export_s),
        "sqlite_bytes": size,
        "zstd19_bytes": zstd19,
        "store_bytes": store_bytes,
        "shard_bytes": shard_bytes,
        "sqlite_over_store": round(size / store_bytes, 1),
        "store_over_zstd19": round(store_bytes / zstd19, 3),
        "lossless_round_trip": lossless,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_import_"))
    try:
        dbs = decompress_fixtures(work)
        results = [bench(path, work, args.repeat) for path in dbs.values()]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"backend: {os.environ.get('GAMESTORE_BACKEND', 'default')}")
    hdr = ("fixture", "moves", "import mv/s", "map mv/s", "read+json.loads mv/s", "export mv/s", "SQLite", "zstd-19", "store",
           "SQLite/store", "store/zstd19", "lossless")  # fmt: skip
    print(" | ".join(hdr))
    for r in results:
        print(" | ".join(str(x) for x in (
            r["fixture"], r["moves"], r["import_moves_per_s"], r["mapping_moves_per_s"],
            r["read_and_json_loads_moves_per_s"], r["export_moves_per_s"],
            r["sqlite_bytes"], r["zstd19_bytes"], r["store_bytes"], r["sqlite_over_store"],
            r["store_over_zstd19"], r["lossless_round_trip"],
        )))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
