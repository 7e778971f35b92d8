"""SQL views with RingRift's GameReplayDB table and column names, over the catalog's base views.

:func:`install_views` is called by the catalog after it creates its base
views (``games``, ``players``, ``moves``, ``games_full``, ``policies``).  JSON
text columns (``move_json``, ``move_probs``, ``search_stats_json``) are built
on the fly from the typed columns; they equal the stored text as parsed JSON
(text kept verbatim at import is returned verbatim).  Snapshot and history
states are returned without their ``moveHistory`` (see docs/ringrift.md).
"""
from __future__ import annotations

from typing import Any

from .mapping import MOVE_JSON_KEYS
from .tables import COLUMNS

__all__ = ["install_views", "GAMES_EXTRA_COLUMNS", "VIEW_NAMES"]

VIEW_NAMES = (
    "game_moves",
    "game_players",
    "game_initial_state",
    "game_state_snapshots",
    "game_history_entries",
    "game_choices",
    "game_nnue_features",
    "ringrift_games",
)

#: Expressions the base ``games`` view can append to expose RingRift's own
#: ``games`` columns (kept in the game's ``extra_json``).
GAMES_EXTRA_COLUMNS: tuple[str, ...] = (
    "TRY_CAST(json_extract(extra_json, '$.schema_version') AS INTEGER) AS schema_version",
    "json_extract_string(extra_json, '$.parity_status') AS parity_status",
    "json_extract_string(extra_json, '$.parity_checked_at') AS parity_checked_at",
    "TRY_CAST(json_extract(extra_json, '$.parity_divergence_move') AS INTEGER) AS parity_divergence_move",
)

_POS = {"from": "from", "to": "to", "captureTarget": "capture"}
_DIRECT = {"id": "move_id", "type": "move_type", "player": "player", "placementCount": "placement_count",
           "timestamp": "timestamp", "thinkTime": "think_time_ms", "moveNumber": "move_number + 1",
           "phase": "phase"}  # fmt: skip


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _move_json_sql() -> str:
    parts = []
    for key in MOVE_JSON_KEYS:
        if key in _POS:
            p = _POS[key]
            expr = (
                f"CASE WHEN {p}_x IS NULL THEN NULL ELSE json_object('x', {p}_x, 'y', {p}_y, 'z', {p}_z) END"
            )
        elif key in _DIRECT:
            expr = _DIRECT[key]
        else:
            expr = f"json_extract(extra_json, '$.{_q(key)}')"
        parts.append(f"'{key}', {expr}")
    obj = "json_object(" + ", ".join(parts) + ")"
    return (
        "coalesce(json_extract_string(extra_json, '$.rr_text.move_json'),"
        f" CASE WHEN json_extract(extra_json, '$.rr_json') IS NULL THEN {obj}::VARCHAR"
        f" ELSE json_merge_patch({obj}, json_extract(extra_json, '$.rr_json'))::VARCHAR END)"
    )


def _map_json(list_col: str, value: str, present: str) -> str:
    return (
        f"to_json(map_from_entries(list_transform(list_filter({list_col}, lambda e: {present}),"
        f" lambda e: struct_pack(k := coalesce(e.key, e.action::VARCHAR), v := {value}))))::VARCHAR"
    )


def _search_json_sql() -> str:
    def item(bit: int, key: str, expr: str) -> str:
        return f"CASE WHEN (search_flags & {bit}) <> 0 THEN '\"{key}\": ' || {expr} END"

    items = [
        item(1, "q_values", _map_json("search", "coalesce(e.q64, e.q::DOUBLE)", "e.q IS NOT NULL")),
        item(2, "visit_counts", _map_json("search", "e.visits", "e.visits IS NOT NULL")),
        item(16, "search_depth", "search_depth::VARCHAR"),
        item(32, "uncertainty", "to_json(search_uncertainty)::VARCHAR"),
        item(4, "prior_policy", _map_json("search", "coalesce(e.prior64, e.prior::DOUBLE)", "e.prior IS NOT NULL")),
        item(8, "root_value", "to_json(search_root_value)::VARCHAR"),
        item(64, "nodes_explored", "search_nodes_explored::VARCHAR"),
        item(128, "total_simulations", "search_total_simulations::VARCHAR"),
        "CASE WHEN search_extra_json = '{}' THEN NULL"
        " ELSE substr(search_extra_json, 2, length(search_extra_json) - 2) END",
    ]
    built = "'{' || concat_ws(', ', " + ", ".join(items) + ") || '}'"
    return (
        "coalesce(json_extract_string(extra_json, '$.rr_text.search_stats_json'),"
        f" CASE WHEN search_extra_json IS NULL THEN NULL ELSE {built} END)"
    )


def _policy_json_sql() -> str:
    m = _map_json("policy", "coalesce(e.prob64, e.prob::DOUBLE)", "true")
    return (
        "coalesce(json_extract_string(extra_json, '$.rr_text.move_probs'),"
        f" CASE WHEN policy IS NULL THEN NULL ELSE {m} END)"
    )


_INT_COLS = {
    "move_number", "player", "compressed_states", "available_moves_count", "engine_depth", "fsm_valid",
    "choice_type_num", "player_perspective", "feature_dim",
}  # fmt: skip
_REAL_COLS = {"engine_eval", "value"}
_BLOB_COLS = {"features"}


def _side_table_sql(table: str, special: dict[str, str]) -> str:
    cols = []
    for c in COLUMNS[table]:
        if c == "game_id":
            cols.append("game_id")
        elif c in special:
            cols.append(f"{special[c]} AS {c}")
        elif c in _INT_COLS:
            cols.append(f"TRY_CAST(json_extract(s.extra_json, '$.rr_row.{c}') AS BIGINT) AS {c}")
        elif c in _REAL_COLS:
            cols.append(f"TRY_CAST(json_extract(s.extra_json, '$.rr_row.{c}') AS DOUBLE) AS {c}")
        elif c in _BLOB_COLS:
            cols.append(f"from_base64(json_extract_string(s.extra_json, '$.rr_row.{c}.\"$b64\"')) AS {c}")
        else:
            cols.append(f"json_extract_string(s.extra_json, '$.rr_row.{c}') AS {c}")
    return (
        f"CREATE OR REPLACE VIEW {table} AS SELECT {', '.join(cols)}"
        " FROM (SELECT game_id, unnest(snapshots) AS s FROM games_full)"
        f" WHERE json_extract_string(s.extra_json, '$.rr_table') = '{table}'"
    )


def view_statements() -> list[str]:
    """The CREATE VIEW statements, in dependency order."""
    move_cols = [
        "game_id", "move_number", "turn_number", "player", "phase", "move_type",
        f"{_move_json_sql()} AS move_json",
        "timestamp", "think_time_ms", "time_remaining_ms", "engine_eval", "engine_eval_type", "engine_depth",
        "engine_nodes", "engine_pv", "engine_time_ms",
        f"{_policy_json_sql()} AS move_probs",
        f"{_search_json_sql()} AS search_stats_json",
        "vec_heuristic_features AS heuristic_features",
    ]  # fmt: skip
    players = ", ".join(COLUMNS["game_players"])
    game_cols = []
    extra = {e.rsplit(" AS ", 1)[1]: e.rsplit(" AS ", 1)[0] for e in GAMES_EXTRA_COLUMNS}
    for c in COLUMNS["games"]:
        game_cols.append(f"{extra[c]} AS {c}" if c in extra else c)
    return [
        # a moves relation that always has the heuristic_features vector column
        "CREATE OR REPLACE VIEW _rr_moves AS SELECT * FROM"
        " (SELECT NULL::FLOAT[49] AS vec_heuristic_features WHERE false) UNION ALL BY NAME SELECT * FROM moves",
        f"CREATE OR REPLACE VIEW game_moves AS SELECT {', '.join(move_cols)} FROM _rr_moves",
        f"CREATE OR REPLACE VIEW game_players AS SELECT {players} FROM players",
        f"CREATE OR REPLACE VIEW ringrift_games AS SELECT {', '.join(game_cols)} FROM games",
        "CREATE OR REPLACE VIEW game_initial_state AS SELECT game_id,"
        " coalesce(initial_state_json, json_extract_string(extra_json, '$.rr_initial.raw')) AS initial_state_json,"
        " coalesce(TRY_CAST(json_extract(extra_json, '$.rr_initial.c') AS INTEGER), 0) AS compressed"
        " FROM games_full WHERE initial_state_json IS NOT NULL OR initial_state_blob IS NOT NULL"
        " OR json_extract(extra_json, '$.rr_initial') IS NOT NULL",
        "CREATE OR REPLACE VIEW game_state_snapshots AS SELECT game_id, s.move_number AS move_number,"
        " coalesce(json_extract_string(s.extra_json, '$.rr.raw'), s.state_json) AS state_json,"
        " coalesce(TRY_CAST(json_extract(s.extra_json, '$.rr.c') AS INTEGER), 0) AS compressed,"
        " s.state_hash AS state_hash"
        " FROM (SELECT game_id, unnest(snapshots) AS s FROM games_full)"
        " WHERE json_extract(s.extra_json, '$.rr_table') IS NULL",
        _side_table_sql("game_history_entries", {"state_after_json": "s.state_json", "state_before_json": "NULL"}),
        _side_table_sql("game_choices", {}),
        _side_table_sql("game_nnue_features", {}),
    ]


def install_views(con: Any) -> None:
    """Create the RingRift views on a DuckDB connection that already has the base views."""
    for stmt in view_statements():
        con.execute(stmt)
