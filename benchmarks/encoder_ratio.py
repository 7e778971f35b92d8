"""Cython/pure-Python speed ratio of the moves encoder and decoder, measured side by side.

    python -m benchmarks.encoder_ratio [--games 40] [--board square8] [--repeat 5]
    python -m benchmarks.encoder_ratio --fixture ../shared/fixtures/ringrift_v18_sample.db.zst

Both backends encode (and decode) the same synthetic RingRift-shaped moves
(``gamestore.testing.synth``: 8-16-entry policies, search statistics over every
legal move, a 49-float32 vector) in alternation; the best of ``--repeat``
runs is reported per backend, so both see the same machine state.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow.compute as pc

from gamestore.testing import synth
from gamestore.backend import get_backend


def corpus(games: int, *, board_type: str = "square8", seed: int = 0) -> tuple[list[str], list[list[dict]]]:
    """Game ids and move lists of ``games`` synthetic games."""
    records = synth.games(games, board_type=board_type, seed=seed)
    return [r["game_id"] for r in records], [r["moves"] for r in records]


def fixture_corpus(path: str) -> tuple[list[str], list[list[dict]]]:
    """Moves of a RingRift GameReplayDB (``.db`` or ``.db.zst``): policies, search statistics, features."""
    import json
    import sqlite3
    import tempfile

    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        db = path
        if path.endswith(".zst"):
            import zstandard

            db = str(Path(tmp) / "fixture.db")
            Path(db).write_bytes(zstandard.ZstdDecompressor().decompress(Path(path).read_bytes()))
        con = sqlite3.connect(db)
        con.row_factory = sqlite3.Row
        games: dict[str, list[dict]] = {}
        for row in con.execute("SELECT * FROM game_moves ORDER BY game_id, move_number"):
            move = json.loads(row["move_json"])
            m = {k: row[k] for k in ("move_number", "turn_number", "player", "phase", "move_type", "timestamp",
                                     "think_time_ms")}
            m["from"], m["to"], m["capture_target"] = move.pop("from"), move.pop("to"), move.pop("captureTarget")
            if row["move_probs"]:
                m["policy"] = json.loads(row["move_probs"])
            if row["search_stats_json"]:
                m["search"] = json.loads(row["search_stats_json"])
            if row["heuristic_features"]:
                m["vectors"] = {"heuristic_features": np.frombuffer(row["heuristic_features"], dtype=np.float32)}
            games.setdefault(row["game_id"], []).append(m)
        con.close()
    return list(games), list(games.values())


def cpu_time(fn: Callable[[], Any]) -> float:
    """CPU seconds of one call (the machine is shared: wall time would count other processes)."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def measure(
    games: int = 40, *, board_type: str = "square8", repeat: int = 5, seed: int = 0, fixture: str | None = None
) -> dict[str, float]:
    """Seconds per move of encode/decode for both backends and the Cython/Python ratios."""
    ids, moves = fixture_corpus(fixture) if fixture else corpus(games, board_type=board_type, seed=seed)
    n = sum(map(len, moves))
    vectors = synth.VECTORS
    py, cy = get_backend("python"), get_backend("cython")
    table, _ = cy.encode_moves(ids, moves, vectors)
    out: dict[str, float] = {
        "moves": n,
        "policy_entries": pc.sum(pc.list_value_length(table.column("policy"))).as_py(),
        "search_entries": pc.sum(pc.list_value_length(table.column("search"))).as_py(),
        "moves_with_search": table.column("search").length() - table.column("search").null_count,
        "moves_with_vector": n - table.column("vec_heuristic_features").null_count,
    }
    times: dict[str, float] = {}
    for _ in range(repeat):  # alternate so both backends share the machine's state
        for name, backend in (("python", py), ("cython", cy)):
            t = cpu_time(lambda: backend.encode_moves(ids, moves, vectors))
            times[f"encode_{name}"] = min(times.get(f"encode_{name}", float("inf")), t)
            t = cpu_time(lambda: backend.decode_moves(table, vectors))
            times[f"decode_{name}"] = min(times.get(f"decode_{name}", float("inf")), t)
    out.update({k: v / n for k, v in times.items()})
    out["encode_ratio"] = times["encode_python"] / times["encode_cython"]
    out["decode_ratio"] = times["decode_python"] / times["decode_cython"]
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--games", type=int, default=40)
    p.add_argument("--board", default="square8", choices=sorted(synth.BOARDS))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fixture", help="use the moves of a RingRift GameReplayDB (.db or .db.zst) instead")
    args = p.parse_args(argv)
    r = measure(args.games, board_type=args.board, repeat=args.repeat, seed=args.seed, fixture=args.fixture)
    what = f"{args.fixture}:" if args.fixture else f"{args.games} {args.board} games,"
    with_search = r["moves_with_search"]
    print(f"corpus: {what} {r['moves']:,} moves ({with_search:,} with policy and "
          f"search: {r['policy_entries'] / with_search:.1f} policy and {r['search_entries'] / with_search:.1f} "
          f"search entries each), {r['moves_with_vector']:,} with a 49-float32 vector; "
          f"best CPU time of {args.repeat} alternating runs")
    for op in ("encode", "decode"):
        print(f"{op}: python {1e6 * r[op + '_python']:8.2f} us/move   cython {1e6 * r[op + '_cython']:7.2f} us/move"
              f"   cython/python speed-up {r[op + '_ratio']:5.1f}x")


if __name__ == "__main__":
    main()
