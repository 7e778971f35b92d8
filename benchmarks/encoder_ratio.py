"""Cython/pure-Python speed ratio of the moves encoder and decoder, measured side by side.

    python -m benchmarks.encoder_ratio [--games 40] [--board square8] [--repeat 5]

Both backends encode (and decode) the same synthetic RingRift-shaped moves
(``gamestore.synth``: 8-16-entry policies, search statistics over every
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

from gamestore import synth
from gamestore.backend import get_backend


def corpus(games: int, *, board_type: str = "square8", seed: int = 0) -> tuple[list[str], list[list[dict]]]:
    """Game ids and move lists of ``games`` synthetic games."""
    records = synth.games(games, board_type=board_type, seed=seed)
    return [r["game_id"] for r in records], [r["moves"] for r in records]


def cpu_time(fn: Callable[[], Any]) -> float:
    """CPU seconds of one call (the machine is shared: wall time would count other processes)."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def measure(games: int = 40, *, board_type: str = "square8", repeat: int = 5, seed: int = 0) -> dict[str, float]:
    """Seconds per move of encode/decode for both backends and the Cython/Python ratios."""
    ids, moves = corpus(games, board_type=board_type, seed=seed)
    n = sum(map(len, moves))
    vectors = synth.VECTORS
    py, cy = get_backend("python"), get_backend("cython")
    table, _ = cy.encode_moves(ids, moves, vectors)
    out: dict[str, float] = {
        "moves": n,
        "policy_entries": pc.sum(pc.list_value_length(table.column("policy"))).as_py(),
        "search_entries": pc.sum(pc.list_value_length(table.column("search"))).as_py(),
        "moves_with_search": table.column("search").length() - table.column("search").null_count,
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
    args = p.parse_args(argv)
    r = measure(args.games, board_type=args.board, repeat=args.repeat, seed=args.seed)
    with_search = r["moves_with_search"]
    print(f"corpus: {args.games} {args.board} games, {r['moves']:,} moves ({with_search:,} with policy and "
          f"search: {r['policy_entries'] / with_search:.1f} policy and {r['search_entries'] / with_search:.1f} "
          f"search entries each), 49-float32 vector on every move; best CPU time of {args.repeat} alternating runs")
    for op in ("encode", "decode"):
        print(f"{op}: python {1e6 * r[op + '_python']:8.2f} us/move   cython {1e6 * r[op + '_cython']:7.2f} us/move"
              f"   cython/python speed-up {r[op + '_ratio']:5.1f}x")


if __name__ == "__main__":
    main()
