"""The lossless row <-> record mapping of RingRift GameReplayDB files (no store involved)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from gamestore.records import normalize_game
from gamestore.ringrift import mapping
from gamestore.ringrift.fixtures import FIXTURE_NAMES
from gamestore.ringrift.jsontext import encode_state, gzip_params, render_state
from gamestore.ringrift.tables import GAME_TABLES
from gamestore.schema import VectorSpec
from helpers.replaydb import replay_games

pytestmark = pytest.mark.single_backend

FIXTURES = FIXTURE_NAMES
VECTORS = {"heuristic_features": VectorSpec("heuristic_features", (49,), "float32")}


@pytest.mark.parametrize("name", FIXTURES)
def test_rows_record_rows_table_by_table(ringrift_dbs, name):
    games = replay_games(ringrift_dbs[name])
    assert games
    for rows in games:
        record = mapping.rows_to_record(rows)
        canonical = normalize_game(record, vectors=VECTORS)
        back = mapping.record_to_rows(canonical)
        for table in GAME_TABLES:
            assert mapping.compare_rows(table, rows[table], back[table]) == [], table


@pytest.mark.parametrize("name", FIXTURES)
def test_record_is_structured(ringrift_dbs, name):
    """Moves, policies, search statistics and features land in typed fields, not in verbatim text."""
    for rows in replay_games(ringrift_dbs[name]):
        rec = mapping.rows_to_record(rows)
        for m in rec["moves"]:
            assert "rr_text" not in m and "rr_cells" not in m
            assert set(m.get("rr_json", {})) <= {"moveNumber"}  # a few moves restate their own number
            assert "rr_json_keys" not in m
            assert m["move_type"] and "move_id" in m
            assert m["vectors"]["heuristic_features"].dtype == np.float32
        probs = [m for m in rec["moves"] if "policy" in m]
        assert probs and all(1 <= len(m["policy"]) <= 16 for m in probs)
        assert all("search" in m and m["search"]["visit_counts"] for m in probs)
        for s in rec.get("snapshots", ()):
            if s.get("rr_table") is None:
                assert "raw" not in s["rr"] and "moveHistory" not in s["state"]
            if s.get("rr_table") == "game_history_entries":
                assert "raw" not in s["rr_after"] and "moveHistory" not in s["state"]
        assert rec["metadata"]["source"] == "selfplay"
        assert rec["schema_version"] == 18


def test_history_entries_are_kept_without_move_history(ringrift_dbs):
    games = replay_games(ringrift_dbs["ringrift_v18_history"])
    with_history = [g for g in games if g["game_history_entries"]]
    assert len(with_history) == 1
    rows = with_history[0]
    rec = mapping.rows_to_record(rows)
    entries = [s for s in rec["snapshots"] if s.get("rr_table") == "game_history_entries"]
    assert len(entries) == len(rows["game_history_entries"])
    raw = sum(len(r[13]) + len(r[14]) for r in rows["game_history_entries"])
    import json

    kept = len(json.dumps(entries, default=str))
    assert kept < raw / 5  # the quadratic move history is gone


def _odd_rows(rows: dict) -> dict:
    """A copy of one game's rows with every irregularity the mapping must survive."""
    import gzip
    import json

    rows = copy.deepcopy(rows)
    moves = [list(r) for r in rows["game_moves"]]
    idx = mapping._MI
    # move_json with a changed key order, an extra key, a non-implied phase and a bad position
    d = json.loads(moves[0][idx["move_json"]])
    d = {"zExtra": [1, 2], **{k: d[k] for k in reversed(list(d))}}
    d["phase"] = "other_phase"
    d["to"] = {"x": 1, "y": 2}
    moves[0][idx["move_json"]] = json.dumps(d, separators=(",", ":"))
    # move_json that is not JSON, probs with an int, search with a different key order
    moves[1][idx["move_json"]] = "not json"
    moves[1][idx["move_probs"]] = '{"a": 1, "b": 0.5}'
    m2 = next(i for i, m in enumerate(moves) if m[idx["search_stats_json"]] and i > 1)
    s = json.loads(moves[m2][idx["search_stats_json"]])
    moves[m2][idx["search_stats_json"]] = json.dumps(dict(reversed(list(s.items()))))
    moves[m2][idx["move_probs"]] = json.dumps(json.loads(moves[m2][idx["move_probs"]]), sort_keys=True)
    # a short feature blob, a float in an int column, a text in a float column
    moves[2][idx["heuristic_features"]] = b"\x00\x01\x02"
    moves[2][idx["think_time_ms"]] = 1.5
    moves[3][idx["engine_eval"]] = "n/a"
    moves[3][idx["engine_pv"]] = '["a", "b"]'
    moves[3][idx["engine_eval"]] = 0.25
    rows["game_moves"] = [tuple(m) for m in moves]
    # games: odd metadata text, parity columns, a text winner
    g = list(rows["games"][0])
    cols = mapping._GAME_COLS
    g[cols.index("metadata_json")] = '{"b": 1, "a": 2}'
    g[cols.index("parity_status")] = "passed"
    g[cols.index("parity_divergence_move")] = 17
    g[cols.index("winner")] = "1"
    rows["games"] = [tuple(g)]
    # snapshots: one gzip-compressed, one not JSON
    snaps = [list(r) for r in rows["game_state_snapshots"]]
    snaps[0][2] = gzip.compress(snaps[0][2].encode(), compresslevel=9, mtime=12345)
    snaps[0][3] = 1
    snaps[1][2] = "{broken"
    rows["game_state_snapshots"] = [tuple(s) for s in snaps]
    rows["game_choices"] = [(g[0], 3, "line_reward", 1, '[{"a": 1}]', '{"a": 1}', None)]
    rows["game_nnue_features"] = [(g[0], 3, 1, b"\x00" * 12, -1.0, "square8", 3)]
    return rows


def test_irregular_rows_round_trip(ringrift_dbs):
    rows = _odd_rows(replay_games(ringrift_dbs["ringrift_v18_sample"])[0])
    record = mapping.rows_to_record(rows)
    moves = record["moves"]
    assert "rr_json_keys" in moves[0] and moves[0]["zExtra"] == [1, 2]
    assert moves[0]["rr_json"]["phase"] == "other_phase"
    assert moves[1]["rr_text"]["move_json"] == "not json"
    assert moves[2]["rr_cells"]["think_time_ms"] == 1.5
    assert record["snapshots"][0]["rr"]["gz"] == [9, 12345]
    # the first move texts were altered above, so the history no longer matches them: kept inline
    assert "moveHistory" in record["snapshots"][0]["state"]
    assert record["snapshots"][1]["rr"]["raw"] == "{broken"
    assert record["rr_metadata"] == {"st": "d"} and record["parity_status"] == "passed"
    canonical = normalize_game(record, vectors=VECTORS)
    back = mapping.record_to_rows(canonical)
    for table in GAME_TABLES:
        assert mapping.compare_rows(table, rows[table], back[table]) == [], table


def test_compare_rows_sees_differences():
    row = ("g", 0, 1.0, "x", b"\x00")
    cols = mapping.COLUMNS["game_state_snapshots"]
    assert len(cols) == len(row)
    assert mapping.compare_rows("game_state_snapshots", [row], [row]) == []
    assert mapping.compare_rows("game_state_snapshots", [row], [("g", 0, 1, "x", b"\x00")])
    assert mapping.compare_rows("game_state_snapshots", [row], [("g", 0, -0.0 + 1.0000000000000002, "x", b"\x00")])
    assert mapping.compare_rows("game_state_snapshots", [row], [])


def test_state_codec_strips_only_exact_history():
    moves = ['{"a":1}', '{"b":2}', '{"c":3}']
    text = '{"id":"x","moveHistory":[{"a":1},{"b":2}],"z":null}'
    state, meta = encode_state(text, moves)
    assert state == {"id": "x", "z": None} and meta == {"mh": [1, 2]}
    assert render_state(state, meta["mh"], "c", moves) == text
    other = '{"id":"x","moveHistory":[{"a":1},{"b":3}]}'
    state, meta = encode_state(other, moves)
    assert "mh" not in meta and state["moveHistory"] == [{"a": 1}, {"b": 3}]
    assert encode_state("null", moves) is None


def test_gzip_params_reproduce_or_refuse():
    import gzip

    blob = gzip.compress(b'{"a": 1}', compresslevel=6, mtime=99)
    assert gzip_params(blob) == ('{"a": 1}', [6, 99])
    assert gzip_params(b"not gzip at all, not at all") is None
