"""gamestore.compat.GameReplayDB against RingRift's own GameReplayDB, method by method, on the same data."""
from __future__ import annotations

import inspect
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from gamestore.compat import CompatUnavailableError, GameReplayDB

from helpers.ringrift_src import sqlite_copy

pytestmark = pytest.mark.single_backend

@pytest.fixture(scope="module")
def pairs(rr_dbs, tmp_path_factory):
    """name -> (RingRift's GameReplayDB on a copy of the file, the compat reader on the imported store)."""
    from app.db.game_replay import GameReplayDB as RDB

    base = tmp_path_factory.mktemp("rr_copies")
    out = {}
    for name, (db, store) in rr_dbs.items():
        out[name] = (RDB(str(sqlite_copy(db, base))), GameReplayDB(store))
    yield out
    for _, ours in out.values():
        ours.close()


def _game_ids(rdb) -> list[str]:
    with rdb._get_conn() as conn:
        return [r[0] for r in conn.execute("SELECT game_id FROM games ORDER BY game_id")]


def _eq(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


READ_METHODS = (
    "get_game_metadata", "get_initial_state", "get_moves", "get_initial_states_batch", "get_moves_batch",
    "get_move_probs_batch", "get_move_heuristics", "get_game_heuristics_batch", "has_heuristics",
    "get_move_records", "get_state_at_move", "get_state_at_move_legacy", "get_choices_at_move",
    "get_history_entry", "get_all_history_entries", "query_games", "iterate_games", "iterate_games_with_probs",
    "get_game_count", "get_game_with_players", "get_stats", "get_nnue_features", "get_nnue_features_for_training",
    "count_nnue_features", "has_nnue_features", "close", "checkpoint_wal", "__enter__", "__exit__",
)  # fmt: skip


def test_signatures_match_ringrift(rr_src):
    from app.db.game_replay import GameReplayDB as RDB

    public_reads = {
        n for n, f in vars(RDB).items()
        if callable(f) and not n.startswith("_") and n.startswith(("get_", "query_", "iterate_", "has_", "count_"))
    }  # fmt: skip
    assert public_reads <= set(READ_METHODS), sorted(public_reads - set(READ_METHODS))
    for name in READ_METHODS:
        theirs, ours = inspect.signature(getattr(RDB, name)), inspect.signature(getattr(GameReplayDB, name))
        shape = lambda s: [(p.name, p.kind, p.default) for p in s.parameters.values()]  # noqa: E731
        assert shape(ours) == shape(theirs), name
    # the constructor: RingRift's parameters first, then keyword-only options of our own
    theirs = list(inspect.signature(RDB.__init__).parameters.values())
    ours = list(inspect.signature(GameReplayDB.__init__).parameters.values())
    assert [(p.name, p.kind, p.default) for p in ours[: len(theirs)]] == [(p.name, p.kind, p.default) for p in theirs]
    assert all(p.kind is p.KEYWORD_ONLY for p in ours[len(theirs) :])


def test_game_level_reads_equal(pairs):
    for name, (rdb, ours) in pairs.items():
        assert ours.pydantic
        ids = _game_ids(rdb)
        assert ids
        for gid in ids + ["no-such-game"]:
            for method in ("get_game_metadata", "get_game_with_players", "get_initial_state", "get_moves",
                           "get_move_records", "get_game_heuristics_batch", "has_heuristics", "has_nnue_features",
                           "get_nnue_features"):  # fmt: skip
                assert _eq(getattr(ours, method)(gid), getattr(rdb, method)(gid)), (name, gid, method)
            for start, end in ((0, 5), (3, None), (10, 11)):
                assert ours.get_moves(gid, start, end) == rdb.get_moves(gid, start, end)
                assert ours.get_move_records(gid, start, end) == rdb.get_move_records(gid, start, end)
            for mn in (0, 1, 7, 10_000):
                assert _eq(ours.get_move_heuristics(gid, mn), rdb.get_move_heuristics(gid, mn)), (name, gid, mn)
                assert _eq(ours.get_history_entry(gid, mn), rdb.get_history_entry(gid, mn)), (name, gid, mn)
                assert ours.get_choices_at_move(gid, mn) == rdb.get_choices_at_move(gid, mn)
        both = ids[:3] + ["no-such-game"]
        for method in ("get_moves_batch", "get_initial_states_batch", "get_move_probs_batch"):
            assert _eq(getattr(ours, method)(both), getattr(rdb, method)(both)), (name, method)
            assert getattr(ours, method)([]) == {}
        for gid in ids[:2]:  # full history states are costly for RingRift to parse: two games a database
            assert _eq(ours.get_all_history_entries(gid), rdb.get_all_history_entries(gid)), (name, gid)
            assert _eq(ours.get_all_history_entries(gid, False, True), rdb.get_all_history_entries(gid, False, True))


def test_queries_equal(pairs):
    from app.models import BoardType

    filters = [
        {}, {"board_type": BoardType.SQUARE8}, {"board_type": "hex8", "num_players": 2}, {"winner": 1},
        {"min_moves": 100, "max_moves": 300}, {"source": "selfplay", "limit": 3, "offset": 1},
        {"require_moves": True}, {"exclude_non_canonical": False, "termination_reason": "ring_elimination"},
        {"limit": 0},
    ]  # fmt: skip
    for name, (rdb, ours) in pairs.items():
        assert ours.get_stats() == rdb.get_stats(), name
        for f in filters:
            assert _eq(ours.query_games(**f), rdb.query_games(**f)), (name, f)
            count_f = {k: v for k, v in f.items() if k not in ("limit", "offset", "require_moves", "exclude_non_canonical")}
            assert ours.get_game_count(**count_f) == rdb.get_game_count(**count_f), (name, f)
        for f in filters[1:4]:  # the iterators decode whole games: three filters
            it = {k: v for k, v in f.items() if k != "offset"}
            assert _eq(list(ours.iterate_games(**it)), list(rdb.iterate_games(**it))), (name, f)
            assert _eq(list(ours.iterate_games_with_probs(batch_size=2, **it)),
                       list(rdb.iterate_games_with_probs(batch_size=2, **it))), (name, f)  # fmt: skip
        for bt, n in (("square8", 2), ("hex8", 4)):
            assert ours.count_nnue_features(bt, n) == rdb.count_nnue_features(bt, n)
            assert list(ours.get_nnue_features_for_training(bt, n)) == list(rdb.get_nnue_features_for_training(bt, n))
        assert ours.count_nnue_features() == rdb.count_nnue_features()


def _states_by_replay(rdb, gid: str, picks: set[int] | None) -> dict[int, object]:
    """RingRift's answer at each picked move: its get_state_at_move replays initial + moves[0..k] (one pass here)."""
    from app.game_engine import GameEngine

    state = rdb.get_initial_state(gid)
    out = {}
    for k, move in enumerate(rdb.get_moves(gid)):
        state = GameEngine.apply_move(state, move, trace_mode=True)
        if picks is None or k in picks:
            out[k] = state.model_copy(deep=True)  # the engine's next step changes parts of the previous state
    out[-2] = state
    return out


def _check_states(rdb, ours, *, every_move: bool) -> int:
    checked = 0
    for gid in _game_ids(rdb):
        n = rdb.get_game_metadata(gid)["total_moves"]
        picks = None if every_move else {0, 19, 20, 21, 39, 40, n // 2, n - 2, n - 1}
        expected = _states_by_replay(rdb, gid, picks)
        final = expected.pop(-2)
        for k, state in expected.items():
            assert ours.get_state_at_move(gid, k) == state, (gid, k)
            checked += 1
        assert ours.get_state_at_move(gid, -1) == rdb.get_state_at_move(gid, -1)
        assert ours.get_state_at_move(gid, n + 5) == final
    return checked


def test_state_at_every_move(pairs):
    """Every move of the games RingRift's code generated here; the fixtures' games at snapshot edges."""
    rdb, ours = pairs["generated"]
    assert _check_states(rdb, ours, every_move=True) > 100
    gid = _game_ids(rdb)[0]
    assert ours.get_state_at_move(gid, 33) == rdb.get_state_at_move(gid, 33)  # RingRift's own call
    for name, (rdb, ours) in pairs.items():
        if name != "generated":
            assert _check_states(rdb, ours, every_move=False) > 10


@pytest.mark.slow
def test_state_at_every_move_of_every_fixture_game(pairs):
    for rdb, ours in pairs.values():
        _check_states(rdb, ours, every_move=True)


def test_plain_dicts_and_replay_callable(rr_dbs):
    db, store = rr_dbs["generated"]
    lite = sqlite3.connect(db)
    gid = lite.execute("SELECT game_id FROM game_state_snapshots ORDER BY move_number DESC LIMIT 1").fetchone()[0]
    with GameReplayDB(store, models=False) as plain:
        assert not plain.pydantic
        rows = lite.execute("SELECT move_json FROM game_moves WHERE game_id = ? ORDER BY move_number", (gid,))
        assert plain.get_moves(gid) == [json.loads(r[0]) for r in rows]
        init = lite.execute("SELECT initial_state_json FROM game_initial_state WHERE game_id = ?", (gid,)).fetchone()
        assert plain.get_initial_state(gid) == json.loads(init[0])
        snap_mn = lite.execute("SELECT MIN(move_number) FROM game_state_snapshots WHERE game_id = ?", (gid,)).fetchone()[0]
        # a snapshot needs no replay; past it, no rules engine in dict mode: a typed error
        assert plain.get_state_at_move(gid, snap_mn)["moveHistory"] == plain.get_moves(gid, 0, snap_mn + 1)
        with pytest.raises(CompatUnavailableError, match="replay"):
            plain.get_state_at_move(gid, snap_mn + 1)
    seen = []

    def replay(state, moves):
        seen.append((state["moveHistory"][-1], [m["id"] for m in moves]))
        return {"replayed": len(moves)}

    with GameReplayDB(store, models=False, replay=replay) as db2:
        assert db2.get_state_at_move(gid, snap_mn + 2) == {"replayed": 2}
        assert seen[0][1] == [m["id"] for m in db2.get_moves(gid, snap_mn + 1, snap_mn + 3)]


def test_models_argument(rr_src, rr_dbs, monkeypatch):
    import app.models

    _, store = rr_dbs["generated"]
    with GameReplayDB(store, models=app.models) as db:
        gid = db.query_games(limit=1)[0]["game_id"]
        assert isinstance(db.get_moves(gid)[0], app.models.Move)
    with pytest.raises(TypeError):
        GameReplayDB(store, models="yes").get_moves(gid)
    monkeypatch.setitem(__import__("sys").modules, "app.models", None)  # not importable
    with GameReplayDB(store) as db:
        assert isinstance(db.get_moves(gid)[0], dict)
    with GameReplayDB(store, models=True) as db, pytest.raises(CompatUnavailableError):
        db.get_moves(gid)


def test_unknown_path_is_a_typed_error(tmp_path: Path):
    from gamestore.errors import StoreNotFoundError

    with pytest.raises(StoreNotFoundError):
        GameReplayDB(tmp_path / "nothing")
