"""RingRift's own code for the compatibility tests: the source snapshot, its fixtures, databases it writes.

``rr_src`` extracts ``../shared/ringrift-src/ringrift-src.tar.zst`` (beside the
repository, or ``$GAMESTORE_RINGRIFT_SRC``) once per session into a temporary
directory and puts its ``ai-service`` on ``sys.path``; tests skip with a message
only where the snapshot is absent.  ``rr_dbs`` are SQLite files written by
RingRift's ``GameReplayDB`` (the two fixtures plus one generated here by random
legal play), each with a store imported from it: RingRift opens copies (it
switches a file to WAL mode).
"""
from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from gamestore.ringrift.fixtures import decompress_fixtures, extract_source, fixture_dir, source_tarball
from gamestore.ringrift.transfer import import_sqlite


@pytest.fixture(scope="session")
def rr_src(tmp_path_factory) -> Path:
    """RingRift's ai-service directory, importable (``app.*``, ``scripts.*``)."""
    if source_tarball() is None:
        pytest.skip("RingRift source snapshot not found (../shared/ringrift-src/ringrift-src.tar.zst)")
    root = extract_source(tmp_path_factory.mktemp("ringrift_src"))
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import logging

    logging.getLogger("app").setLevel(logging.ERROR)
    return root


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


@pytest.fixture(scope="session")
def rr_dbs(rr_src, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """name -> (SQLite file written by RingRift, store imported from it)."""
    base = tmp_path_factory.mktemp("rr_dbs")
    out: dict[str, tuple[Path, Path]] = {}
    if fixture_dir() is not None:
        for name, path in decompress_fixtures(base).items():
            out[name] = (path, base / f"{name}.store")
    out["generated"] = (generate_db(base / "generated.db"), base / "generated.store")
    for name, (db, store) in out.items():
        import_sqlite(db, store, progress=False, workers=0)
        db.chmod(0o444)
    return out


def sqlite_copy(src: Path, dest_dir: Path) -> Path:
    """A writable copy for RingRift's GameReplayDB (it switches files to WAL mode)."""
    dest = dest_dir / src.name
    shutil.copy(src, dest)
    dest.chmod(0o644)
    return dest
