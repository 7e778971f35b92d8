"""RingRift's GameRecord JSONL: a canonical game as ``GameRecord.model_validate`` reads it, and the ``jsonl`` export."""
from __future__ import annotations

import base64
import builtins
import gzip
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import GamestoreError
from ..fsutil import atomic_path
from ..ops.export import ExportResult, Progress, iter_games
from ..store import GameStore
from .mapping import move_json_value

__all__ = ["export_jsonl", "game_record", "move_record"]


_OUTCOMES = {
    "ring_elimination": "ring_elimination",
    "elimination": "ring_elimination",
    "territory_control": "territory_control",
    "territory": "territory_control",
    "last_player_standing": "last_player_standing",
    "lps": "last_player_standing",
    "timeout": "timeout",
    "resignation": "resignation",
    "resign": "resignation",
    "draw": "draw",
    "stalemate": "draw",
    "abandonment": "abandonment",
    "abandoned": "abandonment",
}
_SOURCES = {
    "selfplay": "self_play",
    "self_play": "self_play",
    "online_game": "online_game",
    "cmaes_optimization": "cmaes_optimization",
    "cmaes": "cmaes_optimization",
    "tournament": "tournament",
    "soak_test": "soak_test",
    "manual_import": "manual_import",
}
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def move_record(move: Mapping, *, training_data: bool = True) -> dict:
    """One move in RingRift's shapes: the ``Move`` JSON (as ``game_moves.move_json`` holds it: camelCase
    keys, positions ``{x, y, z}``) plus the ``MoveRecord`` fields ``thinkTimeMs``, ``rrn``, ``mctsPolicy``.

    With ``training_data``, the policy (``mctsPolicy`` for int action ids,
    else ``moveProbs``, as RingRift's ``move_probs``), ``searchStats`` (as
    ``search_stats_json``) and the vectors (camelCase names, lists) are added.
    """
    out = move_json_value(move)
    out["thinkTimeMs"] = move.get("think_time_ms", out.get("thinkTime") or 0)
    out.setdefault("rrn", None)
    out["mctsPolicy"] = None
    if training_data:
        # maps are shared, not copied: json.dumps writes int candidate ids as string keys
        policy = move.get("policy")
        if policy is not None:
            if policy and all(type(k) is int for k in policy):
                out["mctsPolicy"] = policy
            else:
                out["moveProbs"] = policy
        if move.get("search") is not None:
            out["searchStats"] = move["search"]
        for name, vec in (move.get("vectors") or {}).items():
            out[_camel(name)] = np.asarray(vec).tolist()
    return out


_GAME_RECORD_KEYS = frozenset({
    "game_id", "board_type", "num_players", "rng_seed", "players", "winner", "created_at", "completed_at",
    "total_moves", "duration_ms", "moves", "initial_state", "snapshots"})


def game_record(game: Mapping, *, training_data: bool = True) -> dict:
    """A canonical game record as a RingRift ``GameRecord`` dict (``GameRecord.model_validate`` shape).

    Termination reasons and sources are mapped onto RingRift's enums where
    they have an equivalent and passed through unchanged otherwise; the
    game fields GameRecord has no place for go into ``metadata.gamestore``.
    """
    players = game.get("players") or []
    moves = game.get("moves") or []
    by_player = {p.get("player_number"): p for p in players}

    def per_player(key: str) -> dict:
        return {str(n): (p.get(key) or 0) for n, p in sorted(by_player.items()) if n is not None}

    reason = game.get("termination_reason")
    source = game.get("source")
    created = game.get("created_at")
    rest = {k: v for k, v in game.items() if k not in _GAME_RECORD_KEYS and not k.startswith("rr_")}
    if isinstance(rest.get("metadata"), Mapping):
        rest["metadata"] = dict(rest["metadata"])
    return {
        "id": game["game_id"],
        "boardType": game.get("board_type"),
        "numPlayers": game.get("num_players"),
        "rngSeed": game.get("rng_seed"),
        "isRated": bool(game.get("is_rated", False)),
        "players": [
            {
                "playerNumber": p.get("player_number"),
                "username": p.get("username") or p.get("ai_profile_id") or f"player{p.get('player_number')}",
                "playerType": p.get("player_type") or "ai",
                "ratingBefore": p.get("rating_before"),
                "ratingAfter": p.get("rating_after"),
                "aiDifficulty": p.get("ai_difficulty"),
                "aiType": p.get("ai_type"),
            }
            for p in players
        ],
        "winner": game.get("winner"),
        "outcome": _OUTCOMES.get(reason, reason) if reason is not None else None,
        "finalScore": {
            "ringsEliminated": per_player("final_eliminated_rings"),
            "territorySpaces": per_player("final_territory_spaces"),
            "ringsRemaining": per_player("final_rings_in_hand"),
        },
        "startedAt": created,
        "endedAt": game.get("completed_at", created),
        "totalMoves": game.get("total_moves", len(moves)),
        "totalDurationMs": game.get("duration_ms", 0),
        "moves": [move_record(m, training_data=training_data) for m in moves],
        "metadata": {
            "recordVersion": "1.0",
            "createdAt": created,
            "source": _SOURCES.get(source, source) if source is not None else None,
            "sourceId": None,
            "generation": None,
            "candidateId": None,
            "tags": [],
            "fsmValidated": None,
            "gamestore": rest,
        },
        "initialStateHash": None,
        "finalStateHash": None,
        "progressSnapshots": None,
    }


def _json_default(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode("ascii")
    raise TypeError(f"cannot export {type(v).__name__} as JSON")


def export_jsonl(
    store: GameStore,
    dest: str | os.PathLike,
    *,
    where: str | None = None,
    training_data: bool = True,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ExportResult:
    """Write one RingRift GameRecord JSON object per line to ``dest`` (``-`` is stdout, ``.gz`` is gzipped).

    Streams game by game; a file is written under a temporary name and
    renamed when complete.
    """
    result = ExportResult()
    to_stdout = str(dest) == "-"
    target = Path(dest)
    if not to_stdout and target.exists() and not overwrite:
        raise GamestoreError(f"{target} exists (use --overwrite to replace it)")
    total = store.count_games(where)
    games: Iterable[dict[str, Any]] = iter_games(store, where, skipped=result)  # damaged shards: skipped, named
    if progress is not None:
        games = progress(games, total)
    if to_stdout:
        _write_lines(sys.stdout, games, result, training_data)
        sys.stdout.flush()
        return result
    if target.parent != Path(""):
        target.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if target.suffix == ".gz" else builtins.open
    with atomic_path(target) as tmp, opener(tmp, "wt", encoding="utf-8") as out:
        _write_lines(out, games, result, training_data)
    result.files = [str(target)]
    return result


def _write_lines(out, games: Iterable[dict], result: ExportResult, training_data: bool) -> None:
    for game in games:
        out.write(json.dumps(game_record(game, training_data=training_data), default=_json_default,
                             ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
        result.games += 1
        result.moves += len(game.get("moves") or ())

