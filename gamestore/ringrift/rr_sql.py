"""The SQL RingRift's code runs against its GameReplayDB files (a reference corpus for tests and benchmarks).

Statements copied from RingRift's source (synaptent/RingRift at 2aa9f89b, the file named first in
each entry): its GameReplayDB's own reads, the ``db._get_conn().execute(`` sites, and
``sqlite3.connect`` readers of games / game_moves / game_players / game_state_snapshots.  Parameters
``G`` stand for a game id of the database, ``GS`` for three game ids (an ``IN`` list).
"""
from __future__ import annotations

__all__ = ["STATEMENTS", "G", "GS", "bind"]

G = object()  # placeholder: a game id of the database
GS = object()  # placeholder: three game ids (IN lists)

#: (source, sql, params)
STATEMENTS: list[tuple[str, str, object]] = [
    # app/db/game_replay.py (GameReplayDB's own reads)
    ("game_replay.get_game_metadata", "SELECT * FROM games WHERE game_id = ?", (G,)),
    ("game_replay.get_initial_state", "SELECT name FROM sqlite_master WHERE type='table' AND name='game_initial_state'", ()),
    ("game_replay.get_initial_state", "SELECT initial_state_json, compressed FROM game_initial_state WHERE game_id = ?", (G,)),
    ("game_replay.get_initial_state", "SELECT board_type, num_players FROM games WHERE game_id = ?", (G,)),
    ("game_replay.get_moves", "SELECT move_json FROM game_moves\n WHERE game_id = ? AND move_number >= ?\n ORDER BY move_number", (G, 0)),
    ("game_replay.get_moves", "SELECT move_json FROM game_moves\n WHERE game_id = ? AND move_number >= ? AND move_number < ?\n ORDER BY move_number", (G, 3, 40)),
    ("game_replay.get_initial_states_batch", "SELECT game_id, initial_state_json, compressed\n FROM game_initial_state\n WHERE game_id IN (?,?,?)", GS),
    ("game_replay.get_moves_batch", "SELECT game_id, move_json\n FROM game_moves\n WHERE game_id IN (?,?,?)\n ORDER BY game_id, move_number", GS),
    ("game_replay.get_move_probs_batch", "SELECT game_id, move_number, move_probs\n FROM game_moves\n WHERE game_id IN (?,?,?)\n AND move_probs IS NOT NULL\n ORDER BY game_id, move_number", GS),
    ("game_replay.get_move_heuristics", "SELECT heuristic_features\n FROM game_moves\n WHERE game_id = ? AND move_number = ?", (G, 5)),
    ("game_replay.get_game_heuristics_batch", "SELECT move_number, heuristic_features\n FROM game_moves\n WHERE game_id = ? AND heuristic_features IS NOT NULL\n ORDER BY move_number", (G,)),
    ("game_replay.has_heuristics", "SELECT 1 FROM game_moves\n WHERE game_id = ? AND heuristic_features IS NOT NULL\n LIMIT 1", (G,)),
    ("game_replay.get_move_records", "SELECT move_number, turn_number, player, phase, move_type, move_json,\n timestamp, think_time_ms, time_remaining_ms, engine_eval,\n engine_eval_type, engine_depth, engine_nodes, engine_pv,\n engine_time_ms\n FROM game_moves\n WHERE game_id = ? AND move_number >= ?\n ORDER BY move_number", (G, 0)),
    ("game_replay._get_game_move_count", "SELECT COUNT(*) as count FROM game_moves WHERE game_id = ?", (G,)),
    ("game_replay.get_choices_at_move", "SELECT choice_type, player, options_json, selected_option_json, ai_reasoning\n FROM game_choices\n WHERE game_id = ? AND move_number = ?", (G, 3)),
    ("game_replay.get_history_entry", "SELECT move_number, player, phase_before, phase_after,\n status_before, status_after, progress_before_json,\n progress_after_json, state_hash_before, state_hash_after,\n compressed_states,\n available_moves_json, available_moves_count,\n engine_eval, engine_depth\n FROM game_history_entries\n WHERE game_id = ? AND move_number = ?", (G, 3)),
    ("game_replay.query_games", "SELECT * FROM games\n WHERE board_type = ? AND COALESCE(parity_status, 'pending') != 'non_canonical_history'\n ORDER BY created_at DESC\n LIMIT ? OFFSET ?", ("square8", 100, 0)),
    ("game_replay.query_games", "SELECT * FROM games\n WHERE EXISTS (SELECT 1 FROM game_moves m WHERE m.game_id = games.game_id)\n ORDER BY created_at DESC\n LIMIT ? OFFSET ?", (100, 0)),
    ("game_replay.get_game_count", "SELECT COUNT(*) as count FROM games WHERE num_players = ?", (2,)),
    ("game_replay.get_game_with_players", "SELECT player_number, player_type, ai_type, ai_difficulty,\n final_eliminated_rings, final_territory_spaces, final_rings_in_hand\n FROM game_players\n WHERE game_id = ?\n ORDER BY player_number", (G,)),
    ("game_replay.get_stats", "SELECT board_type, COUNT(*) as count FROM games GROUP BY board_type", ()),
    ("game_replay.get_stats", "SELECT termination_reason, COUNT(*) as count FROM games GROUP BY termination_reason", ()),
    ("game_replay.get_stats", "SELECT COUNT(*) FROM game_moves", ()),
    ("game_replay._get_schema_version", "SELECT value FROM schema_metadata WHERE key = 'schema_version'", ()),
    ("game_replay.has_nnue_features", "SELECT 1 FROM game_nnue_features WHERE game_id = ? LIMIT 1", (G,)),
    # app/db/validation.py _get_snapshots_with_hashes (db._get_conn())
    ("validation", "SELECT move_number, state_hash, compressed\n FROM game_state_snapshots\n WHERE game_id = ?\n ORDER BY move_number", (G,)),
    # app/db/move_data_validator.py (sqlite3.connect)
    ("move_data_validator", "SELECT name FROM sqlite_master WHERE type='table' AND name='game_moves'", ()),
    ("move_data_validator", "PRAGMA table_info(games)", ()),
    ("move_data_validator", "SELECT COUNT(*) FROM game_moves WHERE game_id = ?", (G,)),
    ("move_data_validator", "SELECT\n g.game_id,\n COALESCE(m.move_count, 0) as move_count\n FROM games g\n LEFT JOIN (\n SELECT game_id, COUNT(*) as move_count\n FROM game_moves\n GROUP BY game_id\n ) m ON g.game_id = m.game_id", ()),
    ("move_data_validator", "SELECT game_id\n FROM game_moves\n GROUP BY game_id\n HAVING COUNT(*) >= ?", (5,)),
    ("move_data_validator", "SELECT COUNT(*)\n FROM games\n WHERE moves IS NOT NULL\n AND LENGTH(moves) > ?\n AND moves LIKE '[%'", (1000,)),
    # scripts/backfill_heuristics.py (db._get_conn())
    ("backfill_heuristics", "SELECT move_number\n FROM game_moves\n WHERE game_id = ? AND heuristic_features IS NULL\n ORDER BY move_number", (G,)),
    ("backfill_heuristics", "SELECT game_id, COUNT(*) as missing_count\n FROM game_moves\n WHERE heuristic_features IS NULL\n GROUP BY game_id\n ORDER BY game_id", ()),
    # scripts/check_canonical_phase_history.py, run_invariant_soak.py, generate_canonical_selfplay.py (db._get_conn())
    ("check_canonical_phase_history", "SELECT game_id FROM games", ()),
    # scripts/find_golden_candidates.py (db._get_conn())
    ("find_golden_candidates", "SELECT game_id,\n board_type,\n num_players,\n winner,\n termination_reason,\n total_moves,\n source,\n metadata_json\n FROM games", ()),
    # app/coordination/parity_validation_daemon.py (db._get_conn())
    ("parity_validation_daemon", "SELECT game_id, parity_status\n FROM games\n WHERE game_status = 'completed'\n ORDER BY created_at DESC", ()),
    # app/coordination/auto_promotion_daemon.py (db._get_conn()): a column v18 lacks, an error on both
    ("auto_promotion_daemon", "SELECT parity_gate, COUNT(*) as count\n FROM games\n WHERE game_status = 'completed'\n GROUP BY parity_gate", ()),
    ("auto_promotion_daemon", "SELECT COUNT(*)\n FROM games\n WHERE game_status = 'completed'", ()),
    # scripts/validate_databases.py (sqlite3.connect)
    ("validate_databases", "SELECT COUNT(*) FROM game_moves LIMIT 1", ()),
    # app/training/data_quality.py (sqlite3.connect)
    ("data_quality", "SELECT COUNT(*) FROM games WHERE game_status = 'completed' AND winner IS NULL", ()),
    ("data_quality", "SELECT COUNT(*) FROM games WHERE winner IS NOT NULL AND winner > num_players", ()),
    ("data_quality", "SELECT COUNT(DISTINCT g.game_id)\n FROM games g\n WHERE EXISTS (\n SELECT 1 FROM game_moves m WHERE m.game_id = g.game_id\n )", ()),
    # analysis: move aggregates
    ("analysis", "SELECT move_type, COUNT(*) FROM game_moves GROUP BY move_type ORDER BY move_type", ()),
    ("analysis", "SELECT g.board_type, g.num_players, COUNT(*) AS n, AVG(g.total_moves) FROM games g GROUP BY 1, 2 ORDER BY 1, 2", ()),
    ("analysis", "SELECT COUNT(*) FROM game_moves WHERE move_probs IS NOT NULL", ()),
    ("analysis", "SELECT p.ai_type, COUNT(*) FROM game_players p JOIN games g ON g.game_id = p.game_id WHERE g.winner = p.player_number GROUP BY 1 ORDER BY 1", ()),
]  # fmt: skip


def bind(params: object, game_ids: list[str]) -> tuple:
    """The parameters of a statement for a database whose game ids are ``game_ids``."""
    if params is GS:
        return tuple((game_ids * 3)[:3])
    assert isinstance(params, tuple)
    return tuple(game_ids[0] if p is G else p for p in params)
