"""Realistic synthetic game records shaped like RingRift self-play.

:func:`games` produces records in the canonical form of ``docs/format.md``
(``normalize_game(g)`` equals ``g``), modelled on RingRift's GameReplayDB
(schema v18) as the fixture databases show it:

- boards square8, square19, hex8 and hexagonal (hex boards use cube
  coordinates, ``z = -x - y``; square boards have ``z`` None);
- turns run through RingRift's phases (ring_placement, movement, capture,
  chain_capture, line_processing, territory_processing, forced_elimination),
  so 40-50% of moves are bookkeeping ``no_*_action`` moves without policy
  or search statistics;
- rare Move fields (``placedOnStack``, ``formedLines``, ``eliminatedRings``...)
  are overflow keys under their ``move_json`` names, as the RingRift import
  (``gamestore.ringrift.mapping``) keeps them;
- every other move carries an 8-16-entry policy keyed like RingRift's
  ``build_move_key`` (``"move_stack_6,4_3,1"``), search statistics over all
  its legal moves, and every move a 49-float32 ``heuristic_features`` vector
  that drifts by small steps;
- game lengths per board as in production (square8 100-250 moves, hex8
  130-280, square19 400-650, hexagonal 1,000-1,400).

Game ``i`` depends only on ``(board_type, num_players, seed, i)``, so a
longer run extends a shorter one, and ids never repeat across seeds.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Iterator

import numpy as np

from ..records import dump_json
from ..schema import VectorSpec
from .synth_play import (
    BOARDS,
    BOOKKEEPING_MOVE_TYPES,
    MOVE_TYPES,
    PHASES,
    BoardSpec,
    Game,
    game_seed,
    initial_state,
    iso,
)

__all__ = [
    "games",
    "iter_games",
    "BoardSpec",
    "BOARDS",
    "MOVE_TYPES",
    "BOOKKEEPING_MOVE_TYPES",
    "PHASES",
    "HEURISTIC_FEATURES",
    "VECTORS",
    "DEFAULT_START_TIME",
]

#: The per-move vector every synthetic move carries.
HEURISTIC_FEATURES = VectorSpec("heuristic_features", (49,), "float32")
#: Vector declarations for a store that receives synthetic games.
VECTORS = {"heuristic_features": HEURISTIC_FEATURES}

DEFAULT_START_TIME = datetime(2026, 1, 1, 0, 0, 0)

_AI_TYPES = ("gumbel_mcts", "gumbel_mcts", "mcts", "descent", "heuristic")
_OPPONENTS = ("nn_v3", "nn_v3", "heuristic", "random", "mcts", "nn_v2")
_TERMINATIONS = ("ring_elimination",) * 14 + ("territory",) * 4 + ("last_player_standing", "stalemate")


# ---------------------------------------------------------------------------
# Numeric data in bulk, then the record
# ---------------------------------------------------------------------------
def _segment_normalise(x: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Divide each run of ``x`` (lengths ``counts``) by its sum; float32 result."""
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    sums = np.add.reduceat(x, starts)
    return (x / np.repeat(sums, counts)).astype(np.float32)


def _finish(game: Game, record: dict) -> None:
    spec, rng, moves = game.spec, game.rng, game.moves
    searched = game.searched
    ns = np.fromiter((len(s[1]) for s in searched), dtype=np.int64, count=len(searched))
    played = np.fromiter((s[2] for s in searched), dtype=np.int64, count=len(searched))
    total = int(ns.sum())
    # policy: 8-16 candidates (fewer when fewer are legal), a window of the legal list holding the played move
    ks = np.minimum(ns, rng.integers(8, 17, len(ns)))
    lo = np.maximum(0, played - ks + 1)
    hi = np.minimum(played, ns - ks)
    starts = lo + (rng.random(len(ns)) * (hi - lo + 1)).astype(np.int64)
    probs = _segment_normalise(rng.gamma(0.7, 1.0, int(ks.sum())) + 1e-6, ks).tolist()
    priors = _segment_normalise(rng.gamma(0.4, 1.0, total) + 1e-6, ns).tolist()
    qs = rng.uniform(-1.0, 1.0, total).astype(np.float32).tolist()
    visits = rng.integers(0, np.repeat(2 * spec.simulations // ns + 2, ns)).tolist()
    root = rng.uniform(-1.0, 1.0, len(ns)).astype(np.float32).tolist()
    depth = rng.integers(2, 10, len(ns)).tolist()
    uncert = np.round(rng.random(len(ns)), 4).tolist()
    nodes = rng.integers(64, 1025, len(ns)).tolist()
    ks_l, starts_l, ns_l = ks.tolist(), starts.tolist(), ns.tolist()
    sims = spec.simulations
    off = poff = 0
    for j, (m, legal, _) in enumerate(searched):
        n, k, s = ns_l[j], ks_l[j], starts_l[j]
        end, pend = off + n, poff + k
        m["policy"] = dict(zip(legal[s:s + k], probs[poff:pend]))
        m["search"] = {
            "q_values": dict(zip(legal, qs[off:end])),
            "visit_counts": dict(zip(legal, visits[off:end])),
            "search_depth": depth[j],
            "uncertainty": uncert[j],
            "prior_policy": dict(zip(legal, priors[off:end])),
            "root_value": root[j],
            "nodes_explored": nodes[j],
            "total_simulations": sims,
        }
        off, poff = end, pend

    # think times, timestamps, heuristic features
    nm = len(moves)
    is_search = np.zeros(nm, dtype=bool)
    is_search[[m["move_number"] for m, _, _ in searched]] = True
    think = np.where(is_search, rng.lognormal(np.log(spec.think_ms), 0.5, nm), rng.integers(0, 3, nm)).astype(np.int64)
    gaps = think + rng.integers(1, 6, nm)  # engine overhead between moves
    clock = np.cumsum(gaps) - gaps  # ms since the game started, at each move
    think_l = think.tolist()
    naive = game.created.replace(tzinfo=None)
    stamps = np.datetime_as_string(np.datetime64(naive, "us") + clock.astype("timedelta64[ms]"), unit="us")
    suffix = iso(game.created)[26:]  # UTC offset of an aware start_time, else ""
    stamps = np.char.add(stamps, suffix).tolist() if suffix else stamps.tolist()
    base = rng.integers(0, 29, 49).astype(np.float32) * np.float32(0.5)
    steps = np.where(rng.random((nm, 49)) < 0.06, rng.choice(np.array([-1.0, -0.5, 0.5, 1.0], np.float32), (nm, 49)),
                     np.float32(0.0)).astype(np.float32)
    features = base + np.cumsum(steps, axis=0, dtype=np.float32)
    created = game.created
    for m, stamp, tt, vec in zip(moves, stamps, think_l, features):
        m["timestamp"] = stamp
        m["think_time_ms"] = tt
        m["vectors"] = {"heuristic_features": vec}
    duration = int(clock[-1] + gaps[-1]) if nm else 0
    for snap in game.snapshots:
        k = snap["move_number"] - 1
        snap["state"]["lastMoveAt"] = moves[k]["timestamp"]
        snap["state_hash"] = hashlib.blake2b(dump_json(snap["state"]).encode(), digest_size=8).hexdigest()
    record["duration_ms"] = duration
    record["completed_at"] = iso(created + timedelta(milliseconds=duration))


def _one_game(spec: BoardSpec, num_players: int, seed: int, i: int, start: datetime,
              snapshot_every: int | None) -> dict:
    gseed = game_seed(spec.name, num_players, seed, i)
    game = Game(spec, num_players, gseed, snapshot_every)
    rnd = game.rnd
    slot_ms = spec.game_interval // timedelta(milliseconds=1)  # one game per slot, so created_at increases with i
    created = start + timedelta(milliseconds=i * slot_ms + rnd.randrange(slot_ms // 4))
    rng_seed = rnd.getrandbits(31)
    game.play(created, rng_seed)

    players = list(range(1, num_players + 1))
    score = {p: game.eliminated[p] + game.territory[p] + rnd.random() * 4 for p in players}
    winner = max(players, key=score.__getitem__)
    termination = rnd.choice(_TERMINATIONS)
    if game.territory[winner] > 12:
        termination = "territory"
    engine = "gumbel_mcts"
    ai_type = rnd.choice(_AI_TYPES)
    difficulty = rnd.randint(6, 10)
    opponent = rnd.choice(_OPPONENTS)
    model_version = f"v{rnd.randint(1, 9)}"
    quality = round(0.6 + 0.35 * rnd.random(), 6)
    category = "excellent" if quality >= 0.85 else "good" if quality >= 0.7 else "fair"
    board = spec.name
    tag = f"{board}-{num_players}p-{seed}-{i}"
    record: dict[str, Any] = {
        "game_id": f"{tag}-{hashlib.blake2b(tag.encode(), digest_size=4).hexdigest()}",
        "board_type": board,
        "num_players": num_players,
        "winner": winner,
        "termination_reason": termination,
        "game_status": "completed",
        "source": "selfplay",
        "engine_mode": engine,
        "opponent_type": opponent,
        "model_version": model_version,
        "rng_seed": rng_seed,
        "created_at": iso(created),
        "completed_at": "",
        "duration_ms": 0,
        "total_moves": len(game.moves),
        "total_turns": game.turn,
        "quality_score": quality,
        "quality_category": category,
        "time_control_type": "none",
        "players": [
            {
                "player_number": p,
                "player_type": "ai",
                "ai_type": ai_type if p == 1 or opponent.startswith("nn") else opponent,
                "ai_difficulty": difficulty,
                "final_eliminated_rings": game.eliminated[p],
                "final_territory_spaces": game.territory[p],
                "final_rings_in_hand": game.hand[p],
            }
            for p in players
        ],
        "metadata": {"source": "selfplay", "engine_mode": engine, "opponent_type": opponent,
                     "model_version": model_version},
        "initial_state": initial_state(spec, num_players, created, rng_seed),
    }
    _finish(game, record)
    if game.snapshots:
        record["snapshots"] = game.snapshots
    record["moves"] = game.moves
    return record


def iter_games(
    n: int,
    *,
    board_type: str = "square8",
    num_players: int = 2,
    seed: int = 0,
    snapshot_every: int | None = None,
    start_time: datetime | str | None = None,
) -> Iterator[dict]:
    """Yield the records of :func:`games` one by one (for corpora too large to hold in memory)."""
    if board_type not in BOARDS:
        raise ValueError(f"unknown board type {board_type!r} (known: {', '.join(sorted(BOARDS))})")
    if not 2 <= num_players <= 4:
        raise ValueError("num_players must be 2, 3 or 4")
    if n < 0:
        raise ValueError("n must be >= 0")
    if snapshot_every is not None and snapshot_every < 1:
        raise ValueError("snapshot_every must be >= 1")
    if start_time is None:
        start = DEFAULT_START_TIME
    elif isinstance(start_time, str):
        start = datetime.fromisoformat(start_time)
    else:
        start = start_time
    spec = BOARDS[board_type]
    for i in range(n):
        yield _one_game(spec, num_players, seed, i, start, snapshot_every)


def games(n: int, **options: Any) -> list[dict]:
    """``n`` synthetic self-play game records in canonical form (deterministic for the arguments).

    ``options`` are those of :func:`iter_games`: ``board_type`` (default
    square8), ``num_players`` (2), ``seed`` (0), ``snapshot_every`` and
    ``start_time``.  Game ``i`` depends only on ``(board_type, num_players,
    seed, i)``; ids (``f"{board}-{num_players}p-{seed}-{i}-{hash8}"``) are
    unique across seeds.  ``snapshot_every=N`` adds a state snapshot
    (RingRift GameState without move history) after every N moves.
    ``start_time`` (datetime or ISO text, default 2026-01-01T00:00:00) is the
    creation time of game 0; later games are created later.
    """
    return list(iter_games(n, **options))
