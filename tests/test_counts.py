"""``count_games()`` / ``count_moves()`` without a predicate are answered from the catalog's own table, with no
statement; they must equal the ``games`` view's answer in every state of a store."""
from __future__ import annotations

import pytest

import gamestore
from gamestore import ops
from gamestore.testing import synth

pytestmark = pytest.mark.single_backend  # catalog counts: the same whichever encoder backend wrote the games


def sql_counts(store: gamestore.GameStore) -> tuple[int, int]:
    n, moves = store.sql("SELECT count(*), coalesce(sum(num_moves), 0) FROM games").fetchall()[0]
    return int(n), int(moves)


def test_counts_without_a_predicate_equal_the_views_answer_through_a_stores_life(tmp_path):
    games = synth.games(12, board_type="hex8", num_players=2, seed=3)
    path = tmp_path / "s"
    with gamestore.open(path, create=True, vectors=synth.VECTORS) as store:
        states = [(store.count_games(), store.count_moves(), sql_counts(store))]  # empty
        store.write_games(games[:5])
        states.append((store.count_games(), store.count_moves(), sql_counts(store)))  # buffered, not yet visible
        store.flush()
        store.write_games(games[5:])
        store.flush()
        states.append((store.count_games(" "), store.count_moves(""), sql_counts(store)))  # blank: no predicate
    ops.prune(path, where=f"game_id = '{games[0]['game_id']}'")
    with gamestore.open(path) as store:
        states.append((store.count_games(), store.count_moves(), sql_counts(store)))
        one = store.count_moves(f"game_id = '{games[1]['game_id']}'")  # a predicate still runs the statement
        # a predicate over a move-level view: the statement runs again once the shard datasets are registered
        cut = sorted(len(g["moves"]) for g in games[1:])[5]  # about half the games have more moves
        deep = f"game_id IN (SELECT game_id FROM moves WHERE move_number >= {cut})"
        by_moves = (store.count_games(deep), store.count_moves(deep))
        want = store.sql(f"SELECT count(*), sum(num_moves) FROM games WHERE {deep}").fetchall()[0]
    for n, moves, from_sql in states:
        assert (n, moves) == from_sql
    total = sum(len(g["moves"]) for g in games)
    assert [s[:2] for s in states] == [(0, 0), (0, 0), (12, total), (11, total - len(games[0]["moves"]))]
    assert one == len(games[1]["moves"])
    assert by_moves == want and 0 < by_moves[0] < 11


def test_a_shard_another_handle_flushed_is_counted_while_the_refresher_is_mid_step(tmp_path):
    """docs/concurrency.md: another handle of the process sees a flushed shard from its next call on, also when the
    background refresher holds the refresh lock for a step at that moment (it used to be skipped, and the count stale)."""
    import threading
    import time

    games = synth.games(6, board_type="hex8", num_players=2, seed=5)
    path = tmp_path / "s"
    with gamestore.open(path, create=True, vectors=synth.VECTORS) as writer, gamestore.open(path) as reader:
        assert reader.count_games() == 0
        lock = reader._catalog._refresh_lock
        lock.acquire()  # the refresher in the middle of a step
        try:
            writer.write_games(games)
            writer.flush()  # hands the shard over to the reader's catalog
            got: list[int] = []
            counting = threading.Thread(target=lambda: got.append(reader.count_games()))
            counting.start()
            time.sleep(0.05)
            assert not got  # waits for the step to end rather than answering from the old snapshot
        finally:
            lock.release()
        counting.join(10)
        assert got == [6] and reader.count_moves() == sum(len(g["moves"]) for g in games)
