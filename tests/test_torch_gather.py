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
    """The numpy reference's padded policy rows and vector rows (the compiled ``Assembler`` is checked against it
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
    """The numpy reference's per-position columns (the compiled ``Assembler`` is checked against it below)."""
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
def test_assembler_equals_the_reference_gathers(dtype):
    """The compiled ``Assembler``'s batches (slices of a window's positions) equal fill_head, fill_policy and
    copy_rows of the numpy reference, as numpy arrays or converted; past ``max_candidates`` it makes no batch."""
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
    ids = np.array([f"g{g}" for g in game], dtype=object)
    table = gather.address_table(srcs, ["f", "g"])
    tables = (games["players"], games["winner"], games["value"], games["present"])
    vectors = (("f", (7,)), ("g", (2, 3)))  # "g" as [B, 2, 3]
    wide = dtype == np.float64

    def assembler(max_candidates=-1, *, t=table, p=part, g=game, vecs=vectors, **kw):
        return fast.Assembler(t, p, row, g, *tables, 1, max_candidates, wide, vecs, -3, **kw)

    plain, converted = assembler(), assembler(game_id=ids, board_type=ids[::-1].copy(), convert=torch.from_numpy)
    for a, b in ((0, 500), (37, 300), (499, 500)):
        got = plain.batch(a, b)
        head = gather.fill_head(srcs, part[a:b], row[a:b], game[a:b], games, 1)
        assert plain.widest == head[6]
        np.testing.assert_array_equal(plain.lens, head[5])
        want = dict(zip(["move_number", "player", "num_players", "winner"], head[0]))
        want.update(value=head[1], value_mask=head[2], value_mover=head[3])
        policy = gather.fill_policy(srcs, part[a:b], row[a:b], head[5], head[6], np.dtype(dtype))
        want.update(policy_index=policy[0], policy_prob=policy[1], policy_mask=policy[2], has_policy=head[4])
        assert plain.first_unknown == policy[3]
        for name, shape in vectors:
            vals, ok = gather.copy_rows(srcs, name, part[a:b], row[a:b], shape)
            want[f"vec_{name}"], want[f"vec_{name}_mask"] = vals, ok
        assert list(got) == list(want)
        for key, w in want.items():
            assert got[key].dtype == w.dtype and got[key].shape == w.shape, key
            np.testing.assert_array_equal(got[key], w)
        made = converted.batch(a, b)
        assert list(made) == ["game_id", "board_type"] + list(want)
        assert made["game_id"].tolist() == ids[a:b].tolist() and made["board_type"].tolist() == ids[::-1][a:b].tolist()
        for key, w in want.items():
            assert isinstance(made[key], torch.Tensor)
            np.testing.assert_array_equal(made[key].numpy(), w)
    capped = assembler(3)
    assert capped.batch(0, 500) is None and capped.widest > 3
    assert assembler(12).batch(0, 500)["policy_index"].shape == (500, 12)
    with pytest.raises(ValueError):
        plain.batch(0, 501)
    with pytest.raises(ValueError):
        plain.batch(5, 4)
    with pytest.raises(ValueError):  # a table without the vectors' rows
        assembler(t=table[:8])
    with pytest.raises(IndexError):  # a game outside the game tables
        assembler(g=game + ngames)
    with pytest.raises(IndexError):
        assembler(p=part + 4)
    with pytest.raises(TypeError):
        assembler(p=part.astype(np.int64))
    with pytest.raises(ValueError):
        assembler(game_id=ids[:-1])


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


def test_window_rows_equals_the_numpy_gathers():
    """The compiled ``window_rows`` (a window's row and game per position) equals the numpy gathers it replaces, and
    checks every (part, position)."""
    fast = _compiled()
    rng = np.random.default_rng(2)
    sizes = [30, 1, 0, 200, 57]
    rows = [rng.integers(0, 1000, s) for s in sizes]
    games = [rng.integers(0, 50, s) for s in sizes]
    part = np.concatenate([np.full(s, k, np.int32) for k, s in enumerate(sizes)])
    pos = np.concatenate([np.arange(s, dtype=np.int64) for s in sizes])
    perm = rng.permutation(part.size)
    part, pos = part[perm], pos[perm]
    flat = (np.cumsum(sizes) - sizes)[part] + pos
    row, game = fast.window_rows(rows, games, part, pos)
    assert row.dtype == game.dtype == np.int64
    np.testing.assert_array_equal(row, np.concatenate(rows)[flat])
    np.testing.assert_array_equal(game, np.concatenate(games)[flat])
    assert [a.size for a in fast.window_rows([], [], part[:0], pos[:0])] == [0, 0]
    with pytest.raises(IndexError):
        fast.window_rows(rows, games, part, np.where(part == 1, 1, pos))  # part 1 holds one position
    with pytest.raises(IndexError):
        fast.window_rows(rows[:4], games[:4], part, pos)
    with pytest.raises(ValueError):
        fast.window_rows(rows, games[:4], part, pos)
    with pytest.raises(TypeError):
        fast.window_rows([r.astype(np.int32) for r in rows], games, part, pos)
