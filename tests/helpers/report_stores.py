"""Stores for the report tests: a mixed-config store with known times, sources and nodes, and an empty one."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import gamestore
from gamestore.testing import synth

#: The report's "now" in the tests.
AS_OF = dt.datetime(2026, 3, 1, 12, 0, 0)

#: (board, players, games, start of the run, source cycle): square19 stopped a day ago (quiet).
MIXED_CONFIGS = (
    ("square8", 2, 24, AS_OF - dt.timedelta(minutes=20), ("selfplay", "selfplay", "gauntlet")),
    ("square8", 3, 8, AS_OF - dt.timedelta(minutes=40), ("selfplay",)),
    ("hex8", 2, 10, AS_OF - dt.timedelta(minutes=30), ("selfplay", "tournament")),
    ("square19", 2, 3, AS_OF - dt.timedelta(days=1, hours=2), ("selfplay",)),
)
NODES = ("node-a", "node-b", "node-c")


def mixed_games() -> list[dict]:
    out = []
    for seed, (board, players, n, start, sources) in enumerate(MIXED_CONFIGS):
        for i, g in enumerate(synth.games(n, board_type=board, num_players=players, seed=seed + 40, start_time=start)):
            g["source"] = sources[i % len(sources)]
            g["metadata"]["node_id"] = NODES[i % len(NODES)]
            out.append(g)
    return out


def make_mixed_store(path: Path) -> Path:
    with gamestore.open(path, vectors=synth.VECTORS, fsync=False, shard_moves=4000) as s:
        s.write_games(mixed_games())
        s.flush()
    return path


def make_empty_store(path: Path) -> Path:
    gamestore.open(path, fsync=False).close()
    return path
