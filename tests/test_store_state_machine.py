"""A hypothesis state machine of the store against a plain in-memory model.

Rules write whole games, play games move by move (finalize or abort),
flush, close and reopen, abandon the store without closing it (a crash:
its buffer is lost), and query through the writing handle and through a
second reader handle.  The model: games flushed (visible to everyone),
games buffered (visible to nobody yet), games being played.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, precondition, rule

import gamestore
from gamestore.errors import DuplicateGameError, GameNotFoundError, StoreClosedError
from gamestore.records import games_equal, normalize_game

BOARDS = ("square8", "hex8", "square19", "hexagonal")
VECTORS = {"features": 4}


def make_move(rng: np.random.Generator, i: int) -> dict:
    move: dict = {"player": int(i % 2 + 1), "move_type": str(rng.choice(["place", "move", "capture", "skip"]))}
    if rng.random() < 0.7:
        keys = [f"m{int(k)}" for k in rng.choice(40, size=int(rng.integers(1, 6)), replace=False)]
        probs = rng.random(len(keys))
        move["policy"] = dict(zip(keys, (probs / probs.sum()).tolist()))
        move["search"] = {"visit_counts": {k: int(v) for k, v in zip(keys, rng.integers(0, 100, len(keys)))},
                          "root_value": float(rng.normal())}
    if rng.random() < 0.5:
        move["vectors"] = {"features": rng.normal(size=4).astype(np.float32)}
    if rng.random() < 0.2:
        move["note"] = {"free": [int(rng.integers(10)), "text"]}
    return move


def make_game(game_id: str, seed: int, n_moves: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "game_id": game_id,
        "board_type": BOARDS[seed % len(BOARDS)],
        "num_players": 2,
        "created_at": f"2026-01-01T00:00:{seed % 60:02d}",
        "source": "state-machine",
        "metadata": {"seed": seed},
        "winner": int(rng.integers(1, 3)),
        "moves": [make_move(rng, i) for i in range(n_moves)],
    }


class StoreMachine(RuleBasedStateMachine):
    writers = Bundle("writers")

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="gs-sm-"))
        self.path = self.dir / "store"
        self.store = gamestore.open(self.path, vectors=VECTORS, fsync=False, shard_games=6)
        self.reader = gamestore.open(self.path, create=False, fsync=False)
        self.flushed: dict[str, dict] = {}
        self.buffered: dict[str, dict] = {}
        self.sealing: dict[str, dict] = {}  # a full buffer a helper thread is sealing: committed at some point
        self.playing: dict[str, dict] = {}  # game id -> record being built
        self.generation = 0  # store handle generation; writers of older handles are dead
        self.counter = 0
        self.closed_generations: set[int] = set()

    def teardown(self) -> None:
        for s in (self.store, self.reader):
            try:
                s.close()
            except Exception:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def _new_id(self) -> str:
        self.counter += 1
        return f"g{self.counter}"

    def _buffer(self, records: list[dict]) -> None:
        for r in records:
            self.buffered[r["game_id"]] = r
        # a full buffer is sealed without flush (shard_games=6), by a helper thread, once the one before it is
        if len(self.buffered) >= 6:
            self.flushed.update(self.sealing)
            self.sealing = dict(self.buffered)
            self.buffered.clear()

    def _sealed(self) -> None:
        self.flushed.update(self.sealing)
        self.sealing.clear()
        self.flushed.update(self.buffered)
        self.buffered.clear()

    # -- writing --------------------------------------------------------------------------
    @rule(seeds=st.lists(st.integers(0, 10_000), min_size=1, max_size=4), n_moves=st.integers(0, 6))
    def write_games(self, seeds, n_moves):
        records = [make_game(self._new_id(), s, n_moves) for s in seeds]
        assert self.store.write_games(records) == len(records)
        self._buffer(records)

    @precondition(lambda self: self.flushed or self.sealing or self.buffered)
    @rule(data=st.data())
    def write_duplicate(self, data):
        gid = data.draw(st.sampled_from(sorted(self.flushed) + sorted(self.sealing) + sorted(self.buffered)))
        with pytest.raises(DuplicateGameError):
            self.store.write_games([make_game(gid, 1, 1)])
        assert self.store.write_games([make_game(gid, 1, 1)], on_duplicate="skip") == 0

    @rule(target=writers, seed=st.integers(0, 10_000))
    def start_game(self, seed):
        gid = self._new_id()
        rec = make_game(gid, seed, 0)
        header = {k: v for k, v in rec.items() if k not in ("game_id", "moves", "winner")}
        w = self.store.game_writer(gid, **header)
        self.playing[gid] = rec
        return (self.generation, w, seed)

    @rule(entry=writers, k=st.integers(1, 4))
    def add_moves(self, entry, k):
        gen, w, seed = entry
        if gen != self.generation or w.state != "open":
            return
        rec = self.playing[w.game_id]
        rng = np.random.default_rng(seed + len(rec["moves"]))
        for _ in range(k):
            m = make_move(rng, len(rec["moves"]))
            w.add_move(m)
            rec["moves"].append(m)

    @rule(entry=consumes(writers))
    def finalize(self, entry):
        gen, w, _ = entry
        if gen != self.generation:
            if gen in self.closed_generations:  # its store was closed: the game cannot be stored any more
                with pytest.raises(StoreClosedError):
                    w.finalize()
            return  # else its process "crashed": the writer is gone with it
        if w.state != "open":
            return
        rec = self.playing.pop(w.game_id)
        assert w.finalize(winner=rec["winner"]) == w.game_id
        self._buffer([rec])

    @rule(entry=consumes(writers))
    def abort(self, entry):
        gen, w, _ = entry
        if gen == self.generation and w.state == "open":
            w.abort()
            self.playing.pop(w.game_id)

    @rule()
    def flush(self):
        self.store.flush()
        self._sealed()

    @rule()
    def close_and_reopen(self):
        self.store.close()  # seals the buffer
        self._sealed()
        self.playing.clear()
        self.closed_generations.add(self.generation)
        self.generation += 1
        self.store = gamestore.open(self.path, create=False, fsync=False, shard_games=6)

    @rule()
    def crash_and_reopen(self):
        """The process dies: the handle is dropped without close(); buffered and unfinished games are gone."""
        if self.store._sealing is not None:  # the process lives on here: the dropped handle's helper ends its shard
            self.store._sealing.wait()
        self.flushed.update(self.sealing)
        self.sealing.clear()
        self.store = gamestore.open(self.path, create=False, fsync=False, shard_games=6)
        self.buffered.clear()
        self.playing.clear()
        self.generation += 1

    # -- reading ------------------------------------------------------------------------
    @precondition(lambda self: self.flushed)
    @rule(data=st.data())
    def get_flushed_game(self, data):
        gid = data.draw(st.sampled_from(sorted(self.flushed)))
        want = normalize_game(self.flushed[gid], vectors=self.store.vectors)
        assert games_equal(self.store.get_game(gid), want)
        assert games_equal(self.reader.get_game(gid), want)

    @precondition(lambda self: self.buffered or self.playing)
    @rule(data=st.data())
    def unflushed_game_is_invisible(self, data):
        gid = data.draw(st.sampled_from(sorted(self.buffered) + sorted(self.playing)))
        for s in (self.store, self.reader):
            with pytest.raises(GameNotFoundError):
                s.get_game(gid)

    @rule(board=st.sampled_from(BOARDS))
    def query(self, board):
        want = sorted(g for g, r in self.flushed.items() if r["board_type"] == board)
        sealing = [g for g, r in self.sealing.items() if r["board_type"] == board]
        for s in (self.store, self.reader):
            got = s.query_games(f"board_type = '{board}'", columns=["game_id"]).column("game_id").to_pylist()
            assert sorted(got) in (want, sorted(want + sealing))  # the sealing shard: whole or not at all

    @invariant()
    def counts_match_the_model(self):
        n_moves = sum(len(r["moves"]) for r in self.flushed.values())
        games = (len(self.flushed), len(self.flushed) + len(self.sealing))
        moves = (n_moves, n_moves + sum(len(r["moves"]) for r in self.sealing.values()))
        for s in (self.store, self.reader):
            assert s.count_games() in games
            assert s.count_moves() in moves
        assert self.reader.sql("SELECT count(*) FROM moves").fetchall()[0][0] in moves


StoreMachine.TestCase.settings = settings(
    max_examples=10,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_store_state_machine = StoreMachine.TestCase
