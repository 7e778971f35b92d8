"""Stores holding game ids committed twice (two handles that did not see each other's commits).

Used by tests/test_exactly_once.py and tests/test_kill_maintenance.py.
"""
from __future__ import annotations

import copy
from pathlib import Path

import gamestore
from gamestore.records import normalize_game
from gamestore.testing import synth

from .exactly_once import Shown


def second_copy(game: dict) -> dict:
    """Another process's record under the same id: fewer moves, another winner and metadata."""
    g = copy.deepcopy(game)
    g["moves"] = g["moves"][:-5]
    g["winner"] = 2 if g.get("winner") == 1 else 1
    g["metadata"] = {"copy": 2}
    return g


def short_games(n: int, *, seed: int, max_moves: int | None) -> list[dict]:
    """``synth.games(n, seed=seed)``, each cut to ``max_moves`` moves (None: whole)."""
    games = synth.games(n, seed=seed)
    if max_moves is not None:
        for g in games:
            g["moves"] = g["moves"][:max_moves]
    return games


def build_dup_store(path: Path, *, seed: int = 3, flushes: int = 4, per_flush: int = 3,
                    max_moves: int | None = None) -> Shown:
    """A RingRift-profile store of ``flushes`` shards of ``per_flush`` games from one handle, then two shards
    from a second handle opened before them, each mixing new games with second copies of committed ones.

    Returns what every reader must show: the first copies (their shards have the lower ids).
    """
    n = flushes * per_flush
    games = short_games(n + 4, seed=seed, max_moves=max_moves)
    gamestore.open(path, create=True, profile="ringrift", vectors=synth.VECTORS).close()
    first = gamestore.open(path)
    late = gamestore.open(path)  # knows none of first's games: it writes second copies without an error
    for i in range(flushes):
        first.write_games(games[i * per_flush:(i + 1) * per_flush])
        first.flush()
    twice = [games[1], games[n - 2], games[per_flush + 1]]
    late.write_games([second_copy(twice[0]), games[n], second_copy(twice[1]), games[n + 1]])
    late.flush()
    late.write_games([games[n + 2], second_copy(twice[2]), games[n + 3]])
    late.flush()
    first.close()
    late.close()
    vectors = synth.VECTORS
    shown = Shown.of({g["game_id"]: normalize_game(g, vectors=vectors) for g in games})
    shown.focus = frozenset(g["game_id"] for g in twice + [games[0], games[n]])
    return shown
