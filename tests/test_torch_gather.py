"""PositionDataset's batch gathers: the compiled loops (_ext/_positions.pyx) equal the numpy reference."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gamestore  # noqa: E402
from gamestore import backend  # noqa: E402
from gamestore.positions import gather  # noqa: E402
from gamestore.testing import synth  # noqa: E402
from gamestore.torch import PositionDataset  # noqa: E402

pytestmark = pytest.mark.torch


def _compiled():
    with backend.use("cython"):
        fast = gather.compiled()
    assert fast is not None, "the compiled positions extension is not built"
    return fast


def _source(rng: np.random.Generator, rows: int, dtype: type, *, nulls: bool) -> gather.Source:
    lens = rng.integers(0, 9, rows).astype(np.int32)
    off = np.concatenate(([0], np.cumsum(lens))).astype(np.int32)
    entries = int(off[-1])
    code = rng.integers(-6, 40, entries).astype(np.int32)
    vals = rng.standard_normal((rows, 7)).astype(np.float32)
    valid = (rng.random(rows) > 0.3).astype(np.uint8) if nulls else None
    return gather.Source(
        keep=None, number=np.arange(rows, dtype=np.int32),
        player=np.ones(rows, np.int8), off=off, lens=lens, code=code, index=code.astype(np.int64),
        prob=rng.random(entries).astype(dtype), vectors={"f": (vals, valid)}, extra={},
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reference_policy_and_vector_gathers(dtype):
    """The numpy reference's padded policy rows and vector rows (the compiled ``assemble`` is checked against it
    below)."""
    rng = np.random.default_rng(3)
    srcs = [_source(rng, r, dtype, nulls=i % 2 == 0) for i, r in enumerate((50, 1, 300, 17))]
    part = rng.integers(0, len(srcs), 400).astype(np.int32)
    row = np.array([rng.integers(0, srcs[p].lens.size) for p in part], dtype=np.int64)
    lens = np.array([srcs[p].lens[r] for p, r in zip(part, row)], dtype=np.int32)
    for width in (int(lens.max()), int(lens.max()) + 5, 3, 0):
        index, prob, mask, first = gather.fill_policy(srcs, part, row, lens, width, np.dtype(dtype))
        assert index.shape == prob.shape == mask.shape == (part.size, width) and prob.dtype == dtype
        assert mask.sum() == np.minimum(lens, width).sum() and (index[~mask] == -1).all() and not prob[~mask].any()
        i = int(np.argmax(lens))
        k = min(int(lens[i]), width)
        start = int(srcs[part[i]].off[row[i]])
        assert index[i, :k].tolist() == srcs[part[i]].index[start : start + k].tolist()
        unknown = np.flatnonzero(index.reshape(-1) == gather.UNKNOWN_KEY)
        assert first == (int(unknown[0]) if unknown.size else -1)
    want_v, want_ok = gather.copy_rows(srcs, "f", part, row, (7,))
    assert want_v.shape == (part.size, 7) and want_v.dtype == np.float32
    assert not want_ok.all() and not want_v[~want_ok].any()  # null vectors read as zeros
    empty = np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int32)
    assert gather.fill_policy(srcs, *empty, 4, np.dtype(dtype))[0].shape == (0, 4)


@pytest.mark.parametrize("width", [4, 2, 0])
def test_reference_head(width):
    """The numpy reference's per-position columns (the compiled ``assemble`` is checked against it below)."""
    rng = np.random.default_rng(5)
    srcs = [_source(rng, r, np.float32, nulls=False) for r in (50, 1, 300, 17)]
    for s in srcs:  # players 1-4, some null (-1), some past the value slots
        s.player[:] = rng.integers(-1, 6, s.player.size)
    ngames = 9
    value = rng.standard_normal((ngames, width)).astype(np.float32)
    games = {"players": rng.integers(2, 5, ngames), "winner": rng.integers(-1, 5, ngames), "value": value,
             "present": rng.random((ngames, width)) > 0.4}  # fmt: skip
    part = rng.integers(0, len(srcs), 400).astype(np.int32)
    row = np.array([rng.integers(0, srcs[p].lens.size) for p in part], dtype=np.int64)
    game = rng.integers(0, ngames, part.size)
    want = gather.fill_head(srcs, part, row, game, games, 1)
    assert want[6] == int(want[5].max()) and type(want[6]) is int
    head, _, _, mover, has_policy, lens, _ = want
    assert head[0].tolist() == [int(srcs[p].number[r]) for p, r in zip(part, row)]
    assert lens.tolist() == [int(srcs[p].lens[r]) for p, r in zip(part, row)] and (has_policy == (lens > 0)).all()
    inside = (head[1] >= 1) & (head[1] <= width)
    assert (mover[~inside] == 0).all() and (mover[inside] == value[game[inside], head[1][inside] - 1]).all()
    with pytest.raises(IndexError):
        gather.fill_head(srcs, part, row, game + ngames, games, 1)
    empty = np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    got = gather.fill_head(srcs, *empty, games, 1)
    assert got[0].shape == (4, 0) and got[6] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_assemble_equals_the_reference_gathers(dtype):
    """The compiled whole-batch ``assemble`` (a slice of a window's positions) equals fill_head, fill_policy and
    copy_rows of the numpy reference; past ``max_candidates`` it fills no policy."""
    fast = _compiled()
    rng = np.random.default_rng(11)
    srcs = [_source(rng, r, dtype, nulls=i % 2 == 0) for i, r in enumerate((50, 1, 300, 17))]
    for s in srcs:
        s.player[:] = rng.integers(-1, 5, s.player.size)
        s.vectors["g"] = (rng.standard_normal((s.lens.size, 6)).astype(np.float32), None)
    ngames = 7
    games = {"players": rng.integers(2, 5, ngames), "winner": rng.integers(-1, 5, ngames),
             "value": rng.standard_normal((ngames, 4)).astype(np.float32), "present": rng.random((ngames, 4)) > 0.3}
    part = rng.integers(0, len(srcs), 500).astype(np.int32)
    row = np.array([rng.integers(0, srcs[p].lens.size) for p in part], dtype=np.int64)
    game = rng.integers(0, ngames, part.size)
    table = gather.address_table(srcs, ["f", "g"])
    for a, b in ((0, 500), (37, 300), (499, 500)):
        head = gather.fill_head(srcs, part[a:b], row[a:b], game[a:b], games, 1)
        got = fast.assemble(table, part, row, game, a, b, games["players"], games["winner"], games["value"],
                            games["present"], 1, -1, dtype == np.float64, (7, 6), -3)  # fmt: skip
        assert got[6] == head[6]
        for w, g in zip(head[:6], got[:6]):
            assert w.dtype == g.dtype and w.shape == g.shape
            np.testing.assert_array_equal(w, g)
        policy = gather.fill_policy(srcs, part[a:b], row[a:b], head[5], head[6], np.dtype(dtype))
        for w, g in zip(policy, got[7]):
            np.testing.assert_array_equal(w, g)
        for (name, size), (vals, ok) in zip((("f", 7), ("g", 6)), got[8]):
            want_v, want_ok = gather.copy_rows(srcs, name, part[a:b], row[a:b], (size,))
            assert vals.dtype == want_v.dtype and vals.shape == want_v.shape
            np.testing.assert_array_equal(want_v, vals)
            np.testing.assert_array_equal(want_ok, ok)
    capped = fast.assemble(table, part, row, game, 0, 500, games["players"], games["winner"], games["value"],
                           games["present"], 1, 3, False, (7, 6), -3)  # fmt: skip
    assert capped[6] > 3 and capped[7] is None and capped[8] == []
    wide = fast.assemble(table, part, row, game, 0, 500, games["players"], games["winner"], games["value"],
                         games["present"], 1, 12, dtype == np.float64, (7, 6), -3)  # fmt: skip
    assert wide[7][0].shape == (500, 12)
    with pytest.raises(ValueError):
        fast.assemble(table, part, row, game, 0, 501, games["players"], games["winner"], games["value"],
                      games["present"], 1, -1, False, (7, 6), -3)  # fmt: skip
    with pytest.raises(ValueError):  # a table without the vectors' rows
        fast.assemble(table[:8], part, row, game, 0, 5, games["players"], games["winner"], games["value"],
                      games["present"], 1, -1, False, (7, 6), -3)  # fmt: skip
    with pytest.raises(IndexError):  # a game outside the game tables
        fast.assemble(table, part, row, game + ngames, 0, 5, games["players"], games["winner"], games["value"],
                      games["present"], 1, -1, False, (7, 6), -3)  # fmt: skip
    with pytest.raises(IndexError):
        fast.assemble(table, part + 4, row, game, 0, 5, games["players"], games["winner"], games["value"],
                      games["present"], 1, -1, False, (7, 6), -3)  # fmt: skip


def test_datasets_equal_on_both_gathers(tmp_path):
    _compiled()
    with gamestore.open(tmp_path / "s", shard_moves=1500, batch_rows=200, fsync=False) as store:
        store.write_games(synth.games(8, board_type="square8", num_players=2, seed=5))
        store.write_games(synth.games(3, board_type="hex8", num_players=3, seed=6))
        store.flush()
        keys = [r[0] for r in store.sql("SELECT DISTINCT key FROM policies ORDER BY key").fetchall()]
        amap = {k: i for i, k in enumerate(keys)}
        options = [
            dict(return_keys=True, columns=["move_type", "think_time_ms"]),
            dict(policy_only=True, action_map=amap, action_size=len(keys), policy_dtype="float64"),
            dict(max_candidates=40, action_map=dict(list(amap.items())[::2]), unknown_keys="ignore"),
        ]
        for opts in options:
            runs = []
            for name in ("python", "cython"):
                with backend.use(name):
                    runs.append(list(PositionDataset(store, batch_size=96, buffer_size=500, seed=4, **opts)))
            assert len(runs[0]) == len(runs[1]) > 3
            for a, b in zip(*runs):
                assert list(a) == list(b)
                for k in a:
                    if isinstance(a[k], torch.Tensor):
                        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
                    else:
                        assert a[k].tolist() == b[k].tolist(), k


def test_address_is_the_data_pointer():
    fast = _compiled()
    a = np.arange(10, dtype=np.int64)[3:]
    assert fast.address(a) == a.__array_interface__["data"][0] and fast.address(None) == 0
    with pytest.raises(TypeError):
        fast.address(b"bytes")
