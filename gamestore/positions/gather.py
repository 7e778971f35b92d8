"""Sources, parts and the one-copy gathers of PositionDataset's batches (numpy only).

A :class:`Source` is one decoded moves record batch: per row the
move number, player and policy length; per policy entry the final index
and probability; per vector its rows.  Numpy views of the Arrow buffers
where they can be, computed once per record batch.  A :class:`Part` is the
positions of one plan segment: rows of one source.  A batch is a list of
``(part, position)`` pairs; :func:`fill_head` fills its per-position columns
(move number, player, the game's players, winner and value targets, policy
lengths) in one pass, :func:`fill_policy` and :func:`copy_rows` copy its
padded policy and vector rows straight from the sources.  The compiled loops
prefetch the source rows a few positions ahead (a shuffled window's rows
lie at random in ~5 MB of sources: each read would be a cache miss).

Two implementations of the gathers: the numpy reference below (the spec)
and the compiled ``Assembler`` of ``_ext/_positions.pyx`` (all three for a
whole batch in one call, from :func:`address_table`), used when the compiled
backend is selected; the tests check they are equal.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import backend

__all__ = ["Source", "Part", "UNKNOWN_KEY", "fill_head", "fill_policy", "copy_rows", "compiled", "address_table",
           "source_addresses"]

#: policy index of a key missing from ``action_map`` while ``unknown_keys="error"`` (reported, never yielded)
UNKNOWN_KEY = -3


class Source:
    """The columns of one moves record batch a dataset needs (see the module docstring)."""

    __slots__ = ("keep", "number", "player", "off", "lens", "code", "index", "prob", "vectors", "extra", "addr")

    def __init__(
        self,
        *,
        keep: Any,
        number: np.ndarray,
        player: np.ndarray,
        off: np.ndarray,
        lens: np.ndarray,
        code: np.ndarray,
        index: np.ndarray,
        prob: np.ndarray,
        vectors: dict[str, tuple[np.ndarray, np.ndarray | None]],
        extra: dict[str, np.ndarray],
    ) -> None:
        self.keep = keep  # the Arrow batch the views read
        self.number = np.ascontiguousarray(number, dtype=np.int32)  # int32 [rows] (the stored column's type)
        self.player = np.ascontiguousarray(player, dtype=np.int64)  # int64 [rows], -1 when null
        self.off = off  # int32 [rows + 1]: policy list offsets
        self.lens = np.ascontiguousarray(lens, dtype=np.int32)  # int32 [rows]: policy entries (0 for a null policy)
        self.code = code  # int32 [entries]: action id >= 0, -2 - key table id, -1 none
        self.index = index  # int64 [entries]: action id, action_map[key], -1, or UNKNOWN_KEY
        self.prob = prob  # [entries], the dataset's probability dtype
        self.vectors = vectors  # name -> (float32 [rows, size], valid uint8 [rows] or None)
        self.extra = extra  # name -> [rows]
        self.addr: dict[str, int] = {}  # array name -> data address, for the compiled gathers (see :func:`address_table`)


class Part:
    """Positions ``rows`` (of the source's batch) of one segment, with their games' plan indices."""

    __slots__ = ("src", "rows", "games", "n")

    def __init__(self, src: Source, rows: np.ndarray, games: np.ndarray) -> None:
        self.src, self.rows, self.games, self.n = src, rows, games, int(rows.size)


def compiled() -> Any:
    """The compiled loops when the compiled backend is selected (else None: the numpy reference).

    Called several times per batch (and per moves batch on the read-ahead threads): the module is looked up once,
    the backend's choice every call (it can change, see :func:`gamestore.backend.use`)."""
    global _COMPILED
    if backend.selected().name != "cython":
        return None
    if _COMPILED is False:
        try:
            from .. import _positions
        except ImportError:  # pragma: no cover - a build without the positions extension
            _COMPILED = None
        else:
            _COMPILED = _positions
    return _COMPILED


_COMPILED: Any = False  # not imported yet


def _address(a: np.ndarray | None) -> int:
    return 0 if a is None else int(a.__array_interface__["data"][0])


def source_addresses(src: Source, vectors: Sequence[str]) -> dict[str, int]:
    """The data addresses of ``src``'s arrays the compiled gathers read, kept on the source (a source's arrays
    never change; a read-ahead thread can take them before the batch is needed)."""
    got = src.addr
    fast = compiled()
    address = _address if fast is None else fast.address  # the compiled one: 50x cheaper than __array_interface__
    if not got:
        got.update(off=address(src.off), index=address(src.index), prob=address(src.prob),
                   number=address(src.number), player=address(src.player), lens=address(src.lens))
    for name in vectors:
        if f"vec_{name}" not in got:
            vals, valid = src.vectors[name]
            got[f"vec_{name}"], got[f"valid_{name}"] = address(vals), address(valid)
    return got


def _names(vectors: Sequence[str]) -> list[str]:
    return ["number", "player", "lens", "off", "index", "prob"] + [f"{k}_{name}" for name in vectors for k in ("vec", "valid")]


def address_table(srcs: Sequence[Source], vectors: Sequence[str]) -> np.ndarray:
    """Per source, the address of each array the compiled ``Assembler`` reads (once per window; the sources keep them
    alive): int64 [6 + 2 * vectors, sources], rows number, player, lens, off, index, prob, then ``vec``/``valid`` of
    each vector."""
    each = [source_addresses(s, vectors) for s in srcs]
    return np.array([[a[k] for a in each] for k in _names(vectors)], dtype=np.int64).reshape(-1, len(each))


def fill_head(
    srcs: Sequence[Source], part: np.ndarray, row: np.ndarray, game: np.ndarray, games: dict[str, np.ndarray],
    first_player: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The per-position columns of positions ``(part, row)`` of games ``game`` (indices into ``games``' tables).

    ``games``: ``players``, ``winner`` (int64 [G]), ``value`` (float32 [G, P]) and ``present`` (bool [G, P]).
    Returns ``(head, value, value_mask, value_mover, has_policy, lens, widest)``: ``head`` int64 [4, n] holds the
    move number, player, number of players and winner; ``value``/``value_mask`` the game's rows; ``value_mover``
    the value of slot ``player - first_player`` (0 outside the slots); ``lens`` the policy entries (int32) and
    ``widest`` their maximum (0 for no positions).
    """
    n = part.size
    width = games["value"].shape[1]
    head = np.empty((4, n), dtype=np.int64)
    value = np.empty((n, width), dtype=np.float32)
    value_mask = np.empty((n, width), dtype=bool)
    mover = np.empty(n, dtype=np.float32)
    has_policy = np.empty(n, dtype=bool)
    lens = np.empty(n, dtype=np.int32)
    for p in np.unique(part):
        sel = np.flatnonzero(part == p)
        src, r = srcs[int(p)], row[sel]
        head[0, sel], head[1, sel], lens[sel] = src.number[r], src.player[r], src.lens[r]
    head[2], head[3] = games["players"][game], games["winner"][game]
    value[...] = np.take(games["value"], game, axis=0)
    value_mask[...] = np.take(games["present"], game, axis=0)
    slot = head[1] - first_player
    ok = (slot >= 0) & (slot < width)
    mover[...] = np.where(ok, value[np.arange(n), np.clip(slot, 0, width - 1)], 0.0) if width else 0.0
    has_policy[...] = lens > 0
    return head, value, value_mask, mover, has_policy, lens, int(lens.max()) if n else 0


def fill_policy(
    srcs: Sequence[Source], part: np.ndarray, row: np.ndarray, lens: np.ndarray, width: int, prob_dtype: np.dtype,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(index int64 [n, width], prob [n, width], mask bool [n, width], first)`` of positions ``(part, row)``.

    Row ``i`` holds the first ``min(lens[i], width)`` policy entries of its
    source row, then -1 / 0 / False padding; ``first`` is the first flat
    position of ``index`` holding UNKNOWN_KEY, or -1.
    """
    n = part.size
    index = np.empty((n, width), dtype=np.int64)
    prob = np.empty((n, width), dtype=prob_dtype)
    mask = np.empty((n, width), dtype=bool)
    col = np.arange(width)[None, :]
    mask[...] = col < np.minimum(lens, width)[:, None]
    index.fill(-1)
    prob.fill(0)
    for p in np.unique(part):
        sel = np.flatnonzero(part == p)
        src = srcs[int(p)]
        if src.index.size == 0:
            continue
        at = np.minimum(src.off[row[sel]].astype(np.int64)[:, None] + col, src.index.size - 1)
        m = mask[sel]
        index[sel] = np.where(m, src.index[at], -1)
        prob[sel] = np.where(m, src.prob[at], 0)
    unknown = np.flatnonzero(index.reshape(-1) == UNKNOWN_KEY)
    return index, prob, mask, int(unknown[0]) if unknown.size else -1


def copy_rows(
    srcs: Sequence[Source], name: str, part: np.ndarray, row: np.ndarray, shape: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """``(values float32 [n, *shape], valid bool [n])`` of vector ``name`` at positions ``(part, row)`` (zeros where null)."""
    n = part.size
    out = np.empty((n,) + tuple(shape), dtype=np.float32)
    valid = np.empty(n, dtype=bool)
    flat = out.reshape(n, -1)
    for p in np.unique(part):
        sel = np.flatnonzero(part == p)
        vals, ok = srcs[int(p)].vectors[name]
        r = row[sel]
        flat[sel] = vals[r]
        valid[sel] = True if ok is None else ok[r].astype(bool)
    flat[~valid] = 0
    return out, valid
