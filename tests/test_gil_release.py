"""Compiled loops hand the GIL to waiting threads (an asyncio loop is not stalled for a whole chunk)."""
from __future__ import annotations

import sys
import threading
import time

import pytest

from gamestore.testing import synth
from gamestore.backend import get_backend

# Drives the compiled backend explicitly; timing-dependent (thread scheduling on a shared machine: a
# CI-style run saw 1 tick in a 61 ms encode), so it runs with the slow tests, not in the default run.
pytestmark = [pytest.mark.single_backend, pytest.mark.slow]


def _ticks_during(work) -> tuple[int, float]:
    """How often a thread sleeping 0.2 ms ran while ``work()`` held the main thread, and how long work took."""
    ticks = [0]
    running = threading.Event()
    stop = threading.Event()

    def ticker() -> None:
        running.set()
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.0002)

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    t = threading.Thread(target=ticker, daemon=True)
    t.start()
    running.wait()
    try:
        before = ticks[0]
        t0 = time.perf_counter()
        work()
        seconds = time.perf_counter() - t0
        during = ticks[0] - before
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
    return during, seconds


def test_encode_and_decode_let_other_threads_run():
    cy = get_backend("cython")
    games = synth.games(60, board_type="square8", num_players=2, seed=3)
    ids = [g["game_id"] for g in games]
    moves = [g["moves"] for g in games]
    table, _ = cy.encode_moves(ids, moves, synth.VECTORS)
    batch = table.combine_chunks().to_batches()[0]
    decoder = cy.batch_decoder(batch, synth.VECTORS)
    for work in (lambda: cy.encode_moves(ids, moves, synth.VECTORS), lambda: decoder.decode(0, decoder.num_rows)):
        ticks, seconds = _ticks_during(work)
        # one call holding the GIL throughout would let the ticker run at most once or twice
        assert ticks >= min(5, int(seconds / 0.004)), (ticks, seconds)
