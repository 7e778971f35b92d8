"""RingRift's own code for the compatibility tests: where its source snapshot is, and databases it writes.

The session fixtures ``rr_src`` and ``rr_dbs`` (``tests/conftest.py``) use these:
:func:`src_tarball` finds ``../shared/ringrift-src/ringrift-src.tar.zst`` from the
repository (or ``$GAMESTORE_RINGRIFT_SRC``), :func:`generate_db` writes a GameReplayDB
with RingRift's own code, and :func:`sqlite_copy` gives RingRift a writable copy (it
switches a file to WAL mode).
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
TARBALL = Path("ringrift-src") / "ringrift-src.tar.zst"


def src_tarball() -> Path | None:
    """RingRift's source snapshot: ``$GAMESTORE_RINGRIFT_SRC``, else ``../shared`` beside the repository
    (or beside its parent directory, for worktrees)."""
    env = os.environ.get("GAMESTORE_RINGRIFT_SRC")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / TARBALL, REPO.parent.parent / "shared" / TARBALL]
    return next((p for p in candidates if p.is_file()), None)


def generate_db(path: Path, *, games: int = 3, seed: int = 7) -> Path:
    """A GameReplayDB written by RingRift's own code: random legal play, stored move by move."""
    from app.db.game_replay import GameReplayDB as RDB
    from app.game_engine import GameEngine
    from app.models import BoardType
    from app.training.initial_state import create_initial_state

    rng = random.Random(seed)
    db = RDB(str(path))
    configs = [(BoardType.SQUARE8, 2), (BoardType.HEX8, 2), (BoardType.SQUARE8, 3)]
    for i in range(games):
        board, players = configs[i % len(configs)]
        state = create_initial_state(board_type=board, num_players=players)
        writer = db.store_game_incremental(f"gen-{i}", state)
        for _ in range(60):
            moves = GameEngine.get_valid_moves(state, state.current_player)
            if not moves:
                req = GameEngine.get_phase_requirement(state, state.current_player)
                if req is None:
                    break
                moves = [GameEngine.synthesize_bookkeeping_move(req, state)]
            move = rng.choice(moves)
            state = GameEngine.apply_move(state, move, trace_mode=True)
            probs = {f"k{j}": rng.random() for j in range(4)}
            features = np.asarray([rng.random() for _ in range(49)], dtype=np.float32)
            writer.add_move(move, state_after=state, move_probs=probs, heuristic_features=features,
                            search_stats={"root_value": rng.random(), "visit_counts": {"k0": 3}})  # fmt: skip
            if state.game_status.value != "active":
                break
        writer.finalize(state, metadata={"source": "selfplay", "seed": seed})
    db.close()
    return path


def sqlite_copy(src: Path, dest_dir: Path) -> Path:
    """A writable copy for RingRift's GameReplayDB (it switches files to WAL mode)."""
    dest = dest_dir / src.name
    shutil.copy(src, dest)
    dest.chmod(0o644)
    return dest
