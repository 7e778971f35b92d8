"""The small mixed-board stores the torch tests iterate (several shards and moves batches, two board types)."""
from __future__ import annotations

from pathlib import Path

import gamestore
from gamestore.testing import synth


def mixed_store(path: Path, *, square8: int, hex8: int, seed: int) -> Path:
    """A store at ``path`` of ``square8`` two-player square8 games and ``hex8`` three-player hex8 games (seeds
    ``seed`` and ``seed + 1``), cut into small shards and moves batches so that windows span several of each."""
    with gamestore.open(path, shard_moves=1500, batch_rows=200, fsync=False) as store:
        store.write_games(synth.games(square8, board_type="square8", num_players=2, seed=seed))
        store.write_games(synth.games(hex8, board_type="hex8", num_players=3, seed=seed + 1))
        store.flush()
    return path
