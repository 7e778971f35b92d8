"""pytest-benchmark: encode and decode of realistic moves, on both backends.

    python -m pytest benchmarks/test_bench_encoder.py --benchmark-group-by=group

For the Cython/Python ratio measured side by side in one run, use
``python -m benchmarks.encoder_ratio``.
"""
from __future__ import annotations

import pytest

from gamestore import codec
from gamestore.testing import synth
from gamestore.backend import BACKENDS, get_backend

GAMES = 10


@pytest.fixture(scope="module")
def corpus():
    records = synth.games(GAMES, board_type="square8", seed=1)
    return [r["game_id"] for r in records], [r["moves"] for r in records], records


@pytest.fixture(params=BACKENDS)
def backend(request):
    try:
        return get_backend(request.param)
    except ImportError as exc:
        pytest.skip(f"{request.param} backend unavailable: {exc}")


def test_encode_moves(benchmark, corpus, backend):
    ids, moves, _ = corpus
    benchmark.group = "encode moves"
    benchmark.extra_info["moves"] = sum(map(len, moves))
    table, counts = benchmark(backend.encode_moves, ids, moves, synth.VECTORS)
    assert sum(counts) == table.num_rows == benchmark.extra_info["moves"]


def test_decode_moves(benchmark, corpus, backend):
    ids, moves, _ = corpus
    table, _ = get_backend("python").encode_moves(ids, moves, synth.VECTORS)
    benchmark.group = "decode moves"
    benchmark.extra_info["moves"] = table.num_rows
    decoded = benchmark(backend.decode_moves, table, synth.VECTORS)
    assert len(decoded) == table.num_rows


def test_decode_one_game(benchmark, corpus, backend, monkeypatch):
    """The decode step of get_game: one game's rows sliced out of a whole record batch."""
    _, _, records = corpus
    monkeypatch.setattr(codec, "_moves", backend)
    enc = codec.encode_games(records, vectors=synth.VECTORS)
    batch = enc.moves.combine_chunks().to_batches()[0]
    row = enc.games.slice(GAMES // 2, 1)
    start, count = row.column("move_offset")[0].as_py(), row.column("move_count")[0].as_py()
    benchmark.group = "decode one game"
    game = benchmark(codec.decode_game, row, batch.slice(start, count))
    assert len(game["moves"]) == count


def test_encode_games(benchmark, corpus, backend, monkeypatch):
    """Whole records (game-level columns too), as a store write encodes them."""
    _, _, records = corpus
    monkeypatch.setattr(codec, "_moves", backend)
    benchmark.group = "encode games"
    enc = benchmark(codec.encode_games, records, vectors=synth.VECTORS, now="2026-01-01T00:00:00+00:00")
    assert enc.games.num_rows == GAMES
