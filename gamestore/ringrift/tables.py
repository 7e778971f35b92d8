"""The RingRift GameReplayDB SQLite schema, version 18.

The DDL is the exact text of ``sqlite_master.sql`` in databases written by
RingRift's ``GameReplayDB`` (schema v18), in creation order.  Column lists
are in table order; primary keys give the row order used for comparisons.
"""
from __future__ import annotations

SCHEMA_VERSION = 18

#: (type, name, sql) of every table, index and trigger, in sqlite_master order.
V18_DDL: tuple[tuple[str, str, str], ...] = (
    ('table', 'schema_metadata', 'CREATE TABLE schema_metadata (\n    key TEXT PRIMARY KEY,\n    value TEXT NOT NULL\n)'),
    ('table', 'games', "CREATE TABLE games (\n    game_id TEXT PRIMARY KEY,\n    board_type TEXT NOT NULL,\n    num_players INTEGER NOT NULL,\n    rng_seed INTEGER,\n    created_at TEXT NOT NULL,\n    completed_at TEXT,\n    game_status TEXT NOT NULL,\n    winner INTEGER,\n    termination_reason TEXT,\n    total_moves INTEGER NOT NULL,\n    total_turns INTEGER NOT NULL,\n    duration_ms INTEGER,\n    source TEXT,\n    schema_version INTEGER NOT NULL,\n    -- v2 additions: time control\n    time_control_type TEXT DEFAULT 'none',\n    initial_time_ms INTEGER,\n    time_increment_ms INTEGER,\n    -- v5 additions: full recording metadata as JSON\n    metadata_json TEXT,\n    -- v9 additions: quality scoring for training data prioritization\n    quality_score REAL,\n    quality_category TEXT,\n    -- v12 additions: engine_mode for fast AI type filtering\n    engine_mode TEXT,\n    -- v13 additions: parity validation tracking (TS/Python replay verification)\n    parity_status TEXT DEFAULT 'pending',  -- 'passed', 'failed', 'error', 'pending', 'skipped'\n    parity_checked_at TEXT,\n    parity_divergence_move INTEGER,\n    -- v16 additions: opponent tracking for training data diversity\n    opponent_type TEXT,           -- random, heuristic, mcts, nn_v2, nn_v3, etc.\n    opponent_model_id TEXT        -- For NN opponents: model identifier/version\n)"),
    ('index', 'idx_games_board_type', 'CREATE INDEX idx_games_board_type ON games(board_type)'),
    ('index', 'idx_games_winner', 'CREATE INDEX idx_games_winner ON games(winner)'),
    ('index', 'idx_games_termination', 'CREATE INDEX idx_games_termination ON games(termination_reason)'),
    ('index', 'idx_games_created', 'CREATE INDEX idx_games_created ON games(created_at)'),
    ('index', 'idx_games_source', 'CREATE INDEX idx_games_source ON games(source)'),
    ('index', 'idx_games_board_players', 'CREATE INDEX idx_games_board_players ON games(board_type, num_players)'),
    ('index', 'idx_games_created_board', 'CREATE INDEX idx_games_created_board ON games(created_at, board_type)'),
    ('index', 'idx_games_board_created', 'CREATE INDEX idx_games_board_created ON games(board_type, created_at)'),
    ('index', 'idx_games_quality', 'CREATE INDEX idx_games_quality ON games(quality_score DESC)'),
    ('index', 'idx_games_quality_board', 'CREATE INDEX idx_games_quality_board ON games(board_type, quality_score DESC)'),
    ('index', 'idx_games_engine_mode', 'CREATE INDEX idx_games_engine_mode ON games(engine_mode)'),
    ('index', 'idx_games_board_engine', 'CREATE INDEX idx_games_board_engine ON games(board_type, engine_mode)'),
    ('index', 'idx_games_parity_status', 'CREATE INDEX idx_games_parity_status ON games(parity_status)'),
    ('index', 'idx_games_board_parity', 'CREATE INDEX idx_games_board_parity ON games(board_type, parity_status)'),
    ('index', 'idx_games_parity_created', 'CREATE INDEX idx_games_parity_created ON games(parity_status, created_at)'),
    ('index', 'idx_games_config', 'CREATE INDEX idx_games_config ON games(board_type, num_players, game_status)'),
    ('index', 'idx_games_opponent_type', 'CREATE INDEX idx_games_opponent_type ON games(opponent_type)'),
    ('index', 'idx_games_board_opponent', 'CREATE INDEX idx_games_board_opponent ON games(board_type, opponent_type)'),
    ('table', 'game_players', 'CREATE TABLE game_players (\n    game_id TEXT NOT NULL,\n    player_number INTEGER NOT NULL,\n    player_type TEXT NOT NULL,\n    ai_type TEXT,\n    ai_difficulty INTEGER,\n    ai_profile_id TEXT,\n    final_eliminated_rings INTEGER,\n    final_territory_spaces INTEGER,\n    final_rings_in_hand INTEGER,\n    PRIMARY KEY (game_id, player_number),\n    FOREIGN KEY (game_id) REFERENCES games(game_id) ON DELETE CASCADE\n)'),
    ('table', 'game_initial_state', 'CREATE TABLE game_initial_state (\n    game_id TEXT PRIMARY KEY,\n    initial_state_json TEXT NOT NULL,\n    compressed INTEGER DEFAULT 0,\n    FOREIGN KEY (game_id) REFERENCES games(game_id) ON DELETE CASCADE\n)'),
    ('table', 'game_moves', 'CREATE TABLE game_moves (\n    game_id TEXT NOT NULL,\n    move_number INTEGER NOT NULL,\n    turn_number INTEGER NOT NULL,\n    player INTEGER NOT NULL,\n    phase TEXT NOT NULL,\n    move_type TEXT NOT NULL,\n    move_json TEXT NOT NULL,\n    timestamp TEXT,\n    think_time_ms INTEGER,\n    -- v2 additions: time remaining and engine evaluation\n    time_remaining_ms INTEGER,\n    engine_eval REAL,\n    engine_eval_type TEXT,\n    engine_depth INTEGER,\n    engine_nodes INTEGER,\n    engine_pv TEXT,\n    engine_time_ms INTEGER,\n    -- v10 additions: soft policy targets from MCTS search\n    move_probs TEXT,\n    -- v11 additions: rich search statistics for auxiliary training\n    search_stats_json TEXT,\n    -- v18 additions: pre-computed heuristic features for v5 training\n    heuristic_features BLOB,\n    PRIMARY KEY (game_id, move_number),\n    FOREIGN KEY (game_id) REFERENCES games(game_id) ON DELETE CASCADE\n)'),
    ('index', 'idx_moves_game_turn', 'CREATE INDEX idx_moves_game_turn ON game_moves(game_id, turn_number)'),
    ('index', 'idx_moves_lookup', 'CREATE INDEX idx_moves_lookup ON game_moves(game_id, move_number)'),
    ('table', 'game_state_snapshots', 'CREATE TABLE game_state_snapshots (\n    game_id TEXT NOT NULL,\n    move_number INTEGER NOT NULL,\n    state_json TEXT NOT NULL,\n    compressed INTEGER DEFAULT 0,\n    state_hash TEXT,\n    PRIMARY KEY (game_id, move_number),\n    FOREIGN KEY (game_id) REFERENCES games(game_id) ON DELETE CASCADE\n)'),
    ('table', 'game_choices', 'CREATE TABLE game_choices (\n    game_id TEXT NOT NULL,\n    move_number INTEGER NOT NULL,\n    choice_type TEXT NOT NULL,\n    player INTEGER NOT NULL,\n    options_json TEXT NOT NULL,\n    selected_option_json TEXT NOT NULL,\n    ai_reasoning TEXT,\n    PRIMARY KEY (game_id, move_number, choice_type),\n    FOREIGN KEY (game_id) REFERENCES games(game_id) ON DELETE CASCADE\n)'),
    ('table', 'game_history_entries', 'CREATE TABLE game_history_entries (\n    game_id TEXT NOT NULL,\n    move_number INTEGER NOT NULL,\n    player INTEGER NOT NULL,\n    phase_before TEXT NOT NULL,\n    phase_after TEXT NOT NULL,\n    status_before TEXT NOT NULL,\n    status_after TEXT NOT NULL,\n    progress_before_json TEXT NOT NULL,\n    progress_after_json TEXT NOT NULL,\n    state_hash_before TEXT,\n    state_hash_after TEXT,\n    board_summary_before_json TEXT,\n    board_summary_after_json TEXT,\n    -- v4 additions: full state snapshots before and after each move\n    state_before_json TEXT,\n    state_after_json TEXT,\n    compressed_states INTEGER DEFAULT 0,\n    -- v6 additions: available moves enumeration and engine diagnostics\n    available_moves_json TEXT,\n    available_moves_count INTEGER,\n    engine_eval REAL,\n    engine_depth INTEGER,\n    -- v7 additions: FSM validation status (Phase 7: Data Pipeline)\n    fsm_valid INTEGER,  -- 1 = valid, 0 = invalid, NULL = not checked\n    fsm_error_code TEXT,  -- Error code if fsm_valid = 0\n    PRIMARY KEY (game_id, move_number),\n    FOREIGN KEY (game_id) REFERENCES games(game_id) ON DELETE CASCADE\n)'),
    ('index', 'idx_history_game', 'CREATE INDEX idx_history_game ON game_history_entries(game_id)'),
    ('index', 'idx_history_game_phase', 'CREATE INDEX idx_history_game_phase ON game_history_entries(game_id, phase_before)'),
    ('index', 'idx_history_game_player', 'CREATE INDEX idx_history_game_player ON game_history_entries(game_id, player)'),
    ('index', 'idx_moves_player', 'CREATE INDEX idx_moves_player ON game_moves(game_id, player)'),
    ('table', 'game_nnue_features', 'CREATE TABLE game_nnue_features (\n    game_id TEXT NOT NULL,\n    move_number INTEGER NOT NULL,\n    player_perspective INTEGER NOT NULL,  -- Player number for perspective rotation\n    features BLOB NOT NULL,               -- Compressed float32 feature vector\n    value REAL NOT NULL,                  -- Win/loss label (-1, 0, +1)\n    board_type TEXT NOT NULL,             -- Board type for feature dimension validation\n    feature_dim INTEGER NOT NULL,         -- Feature dimension for validation\n    PRIMARY KEY (game_id, move_number, player_perspective),\n    FOREIGN KEY (game_id) REFERENCES games(game_id) ON DELETE CASCADE\n)'),
    ('index', 'idx_nnue_game', 'CREATE INDEX idx_nnue_game ON game_nnue_features(game_id)'),
    ('index', 'idx_nnue_board_type', 'CREATE INDEX idx_nnue_board_type ON game_nnue_features(board_type)'),
    ('table', 'orphaned_games', 'CREATE TABLE orphaned_games (\n    game_id TEXT PRIMARY KEY,\n    detected_at TEXT NOT NULL,\n    reason TEXT,\n    original_status TEXT,\n    board_type TEXT,\n    num_players INTEGER\n)'),
    ('index', 'idx_orphaned_detected', 'CREATE INDEX idx_orphaned_detected ON orphaned_games(detected_at)'),
    ('trigger', 'enforce_moves_on_complete', "CREATE TRIGGER enforce_moves_on_complete\nBEFORE UPDATE ON games\nWHEN NEW.game_status IN ('completed', 'finished')\n     AND NEW.total_moves < 5\nBEGIN\n    SELECT RAISE(ABORT, 'Cannot complete game with fewer than 5 moves (MIN_MOVES_REQUIRED). Games with insufficient moves are useless for training.');\nEND"),
    ('trigger', 'enforce_moves_on_insert', "CREATE TRIGGER enforce_moves_on_insert\nAFTER INSERT ON games\nWHEN NEW.game_status IN ('completed', 'finished')\nBEGIN\n    SELECT CASE\n        WHEN (SELECT COUNT(*) FROM game_moves WHERE game_id = NEW.game_id) < 5\n        THEN RAISE(ABORT, 'Cannot insert completed game with fewer than 5 moves. Move data must be inserted before completing the game.')\n    END;\nEND"),
)

#: Column names of every v18 table, in table order.
COLUMNS: dict[str, tuple[str, ...]] = {
    'schema_metadata': ('key', 'value'),
    'games': ('game_id', 'board_type', 'num_players', 'rng_seed', 'created_at', 'completed_at', 'game_status', 'winner', 'termination_reason', 'total_moves', 'total_turns', 'duration_ms', 'source', 'schema_version', 'time_control_type', 'initial_time_ms', 'time_increment_ms', 'metadata_json', 'quality_score', 'quality_category', 'engine_mode', 'parity_status', 'parity_checked_at', 'parity_divergence_move', 'opponent_type', 'opponent_model_id'),
    'game_players': ('game_id', 'player_number', 'player_type', 'ai_type', 'ai_difficulty', 'ai_profile_id', 'final_eliminated_rings', 'final_territory_spaces', 'final_rings_in_hand'),
    'game_initial_state': ('game_id', 'initial_state_json', 'compressed'),
    'game_moves': ('game_id', 'move_number', 'turn_number', 'player', 'phase', 'move_type', 'move_json', 'timestamp', 'think_time_ms', 'time_remaining_ms', 'engine_eval', 'engine_eval_type', 'engine_depth', 'engine_nodes', 'engine_pv', 'engine_time_ms', 'move_probs', 'search_stats_json', 'heuristic_features'),
    'game_state_snapshots': ('game_id', 'move_number', 'state_json', 'compressed', 'state_hash'),
    'game_choices': ('game_id', 'move_number', 'choice_type', 'player', 'options_json', 'selected_option_json', 'ai_reasoning'),
    'game_history_entries': ('game_id', 'move_number', 'player', 'phase_before', 'phase_after', 'status_before', 'status_after', 'progress_before_json', 'progress_after_json', 'state_hash_before', 'state_hash_after', 'board_summary_before_json', 'board_summary_after_json', 'state_before_json', 'state_after_json', 'compressed_states', 'available_moves_json', 'available_moves_count', 'engine_eval', 'engine_depth', 'fsm_valid', 'fsm_error_code'),
    'game_nnue_features': ('game_id', 'move_number', 'player_perspective', 'features', 'value', 'board_type', 'feature_dim'),
    'orphaned_games': ('game_id', 'detected_at', 'reason', 'original_status', 'board_type', 'num_players'),
}

#: Primary-key columns (row order of a table).
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    'schema_metadata': ('key',),
    'games': ('game_id',),
    'game_players': ('game_id', 'player_number'),
    'game_initial_state': ('game_id',),
    'game_moves': ('game_id', 'move_number'),
    'game_state_snapshots': ('game_id', 'move_number'),
    'game_choices': ('game_id', 'move_number', 'choice_type'),
    'game_history_entries': ('game_id', 'move_number'),
    'game_nnue_features': ('game_id', 'move_number', 'player_perspective'),
    'orphaned_games': ('game_id',),
}

#: Tables holding rows of one game each (everything keyed by game_id but orphaned_games).
GAME_TABLES: tuple[str, ...] = (
    "games",
    "game_players",
    "game_initial_state",
    "game_moves",
    "game_state_snapshots",
    "game_choices",
    "game_history_entries",
    "game_nnue_features",
)

#: Store-level tables, kept as store meta documents (``ringrift.<table>``).
STORE_TABLES: tuple[str, ...] = ("schema_metadata", "orphaned_games")

#: Side tables kept as tagged entries of a game's ``snapshots`` list.
SIDE_TABLES: tuple[str, ...] = ("game_choices", "game_history_entries", "game_nnue_features")


def table_sql(kind: str | None = None) -> list[tuple[str, str, str]]:
    """The v18 DDL entries, optionally only those of one ``kind`` (table/index/trigger)."""
    return [d for d in V18_DDL if kind is None or d[0] == kind]
