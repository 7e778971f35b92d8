"""`gamestore report` on a 100,000-game store, against `gamestore info` and a plain count in the same run.

Run:  python benchmarks/bench_report.py [--games 100000] [--store /tmp/gamestore-bench-report] [--repeat 3] [--json]

The store is built once (kept at ``--store`` for the next run) from
``gamestore.testing.synth`` games: six configs in the demo's proportions, created
over seven days in time order (one config stopped three hours before the
end, so it shows as quiet), three sources on sixteen nodes, moves cut to
``--moves-per-game`` (default 40: 4 million moves) so the store builds in a
few minutes; shards hold at most 400 games, so the store has about as many
shards as a 17-million-move production store.  Each command then runs as
its own process (what an operator types), ``--repeat`` times in turn, and
the median wall time counts (and the CPU time, which a busy machine disturbs less):

- ``gamestore info STORE --json`` (opens the catalog, counts, sizes) and
  ``python -c "gamestore.open(STORE).count_games()"``: the baselines;
- ``gamestore report STORE -o report.html -q --json`` with the Vega bundle cached
  (every run after the first on a machine), and once with an empty cache
  (the first run: vl-convert builds the bundle).

Goals (issue 14): the report under 5 s, the HTML under 2 MB.  Exit code 1
when a goal is missed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: (board, players, share of games); hexagonal stops three hours before the end
CONFIGS = (("square8", 2, 0.45), ("square8", 3, 0.10), ("square8", 4, 0.10), ("hex8", 2, 0.20),
           ("square19", 2, 0.10), ("hexagonal", 2, 0.05))
SOURCES = (("selfplay", 0.80), ("gauntlet", 0.15), ("tournament", 0.05))
NODES = tuple(f"node-{i:02d}" for i in range(1, 17))
SPAN = dt.timedelta(days=7)
BASE_GAMES = 60


def build_store(path: Path, games: int, moves_per_game: int, *, seed: int = 7) -> None:
    import gamestore
    from gamestore.testing import synth

    rnd = random.Random(seed)
    end = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=5)
    start = end - SPAN
    bases = {}
    for i, (board, players, _) in enumerate(CONFIGS):
        bases[(board, players)] = synth.games(BASE_GAMES, board_type=board, num_players=players, seed=seed + i)
    weights = [share for _, _, share in CONFIGS]
    t0 = time.perf_counter()
    with gamestore.open(path, vectors=synth.VECTORS, fsync=False, shard_games=400) as store:
        chunk = []
        for i in range(games):
            created = start + SPAN * (i / games)
            board, players, _ = rnd.choices(CONFIGS, weights)[0]
            if board == "hexagonal" and created > end - dt.timedelta(hours=3):
                board, players = "square8", 2
            base = bases[(board, players)][i % BASE_GAMES]
            g = dict(base)
            g["game_id"] = f"bench-{board}-{players}p-{i:07d}"
            g["created_at"] = created.isoformat(timespec="microseconds")
            g["source"] = rnd.choices([s for s, _ in SOURCES], [w for _, w in SOURCES])[0]
            g["metadata"] = {**base["metadata"], "node_id": rnd.choice(NODES)}
            g["moves"] = base["moves"][:moves_per_game]
            g["total_moves"] = len(g["moves"])
            chunk.append(g)
            if len(chunk) == 2000:
                store.write_games(chunk)
                chunk = []
                print(f"  built {i + 1:,} games ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        store.write_games(chunk)
        store.flush()


def timed(argv: list[str], env: dict, outputs: list | None = None, cpu: list | None = None) -> float:
    """Wall seconds of one run of ``argv``; its CPU seconds (user + system) go to ``cpu``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(argv, check=True, env=env, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if outputs is not None:
        outputs.append(json.loads(proc.stdout))
    return wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--games", type=int, default=100_000)
    ap.add_argument("--moves-per-game", type=int, default=40)
    ap.add_argument("--store", default=os.path.join(tempfile.gettempdir(), "gamestore-bench-report"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args(argv)

    store = Path(args.store)
    if not (store / "gamestore.json").exists():
        print(f"building {args.games:,} games into {store} ...", file=sys.stderr)
        build_store(store, args.games, args.moves_per_game)
    import gamestore
    from gamestore.backend import BACKEND

    with gamestore.open(store, create=False) as s:
        info = s.info()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out_dir = Path(tempfile.mkdtemp(prefix="bench-report-"))
    html = out_dir / "report.html"
    py = sys.executable
    commands = {
        "count_games": [py, "-c", f"import gamestore; print(gamestore.open({str(store)!r}, create=False).count_games())"],
        "info": [py, "-m", "gamestore.cli", "info", str(store), "--json"],
        "report": [py, "-m", "gamestore.cli", "report", str(store), "-o", str(html), "-q", "--json"],
    }
    timed(commands["report"], env)  # warm the bundle cache and the page cache
    times: dict[str, list[float]] = {k: [] for k in commands}
    cpus: dict[str, list[float]] = {k: [] for k in commands}
    reports: list[dict] = []
    for _ in range(args.repeat):
        for name, cmd in commands.items():
            times[name].append(timed(cmd, env, reports if name == "report" else None, cpus[name]))
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    work = statistics.median(r["seconds"] for r in reports)
    cold_env = {**env, "GAMESTORE_CACHE_DIR": str(out_dir / "empty-cache")}
    cold = timed(commands["report"], cold_env)
    med = {k: statistics.median(v) for k, v in times.items()}
    size = html.stat().st_size
    figures = {
        "backend": BACKEND,
        "games": info["games"], "moves": info["moves"], "shards": info["shards"],
        "count_games_s": round(med["count_games"], 3), "info_s": round(med["info"], 3),
        "report_s": round(med["report"], 3), "report_work_s": round(work, 3),
        "report_timings": reports[len(reports) // 2]["timings"], "report_first_run_s": round(cold, 3),
        "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "report_vs_info": round(med["report"] / med["info"], 2),
        "report_vs_count": round(med["report"] / med["count_games"], 2),
        "html_bytes": size, "load_average": round(os.getloadavg()[0], 1),
        "goals_met": med["report"] < 5.0 and size < 2 * 2**20,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"store {store}: {info['games']:,} games, {info['moves']:,} moves, {info['shards']} shards;"
              f" backend {BACKEND}; load average {figures['load_average']}")
        print(f"median of {args.repeat} runs, each a fresh process: wall time (CPU time, user + system)")
        print(f"  count_games (python -c)      {med['count_games']:6.2f} s ({cpu['count_games']:.2f} s CPU)")
        print(f"  gamestore info --json        {med['info']:6.2f} s ({cpu['info']:.2f} s CPU)")
        print(f"  gamestore report             {med['report']:6.2f} s ({cpu['report']:.2f} s CPU)"
              f"   ({figures['report_vs_info']}x info, {figures['report_vs_count']}x count)   goal < 5 s")
        print(f"    of which the report's own work {work:6.2f} s (write_report: queries, sample, page; the rest is"
              f" the process start and opening the store, as for info)")
        print(f"  gamestore report, first run  {cold:6.2f} s   (builds the Vega bundle cache once)")
        print(f"  report.html                  {size / 2**20:6.2f} MB  goal < 2 MB")
    return 0 if figures["goals_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
