"""Epoch plans: which stored positions a PositionDataset reads, and in which order.

A plan is resolved in DuckDB from the catalog (never by scanning shards): the
selected games, grouped into *units* (one moves record batch of one shard,
holding whole games).  An epoch's stream is the units in a seeded order,
cut into contiguous position ranges per rank and per DataLoader worker.
Everything here is numpy; torch is not needed.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import duckdb
import numpy as np

from .. import sqlguard
from ..errors import FormatError, QueryError, StateMismatchError
from ..readpath import locate_batches
from ..schema import VectorSpec
from .gather import compiled

if TYPE_CHECKING:  # pragma: no cover
    from ..store import GameStore

__all__ = ["Selection", "Plan", "StateMismatchError", "resolve_plan", "partition", "unit_order", "rng_for", "LANES"]


def rng_for(seed: int, epoch: int, *tags: int) -> np.random.Generator:
    """A numpy generator determined by ``(seed, epoch, *tags)`` alone."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(epoch), *map(int, tags)])))


# stream tags for rng_for, so that no two uses share a generator
TAG_WEIGHTS, TAG_UNITS, TAG_DRAWS, TAG_BUFFER = 1, 2, 3, 4


@dataclass(frozen=True)
class Selection:
    """What to read: a SQL predicate over game columns, a recency window and an optional weight."""

    where: str | None = None
    newest_games: int | None = None
    newest_positions: int | None = None
    recency: str = "created_at"
    weight: str | None = None
    num_samples: int | None = None

    def __post_init__(self) -> None:
        if self.newest_games is not None and self.newest_positions is not None:
            raise ValueError("give newest_games or newest_positions, not both")
        for name in ("newest_games", "newest_positions", "num_samples"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, np.integer)) or v < 0):
                raise ValueError(f"{name} must be a non-negative int, got {v!r}")
        if self.num_samples is not None and self.weight is None:
            raise ValueError("num_samples applies to weighted sampling (give weight=)")

    def key(self) -> dict:
        return {
            "where": self.where,
            "newest_games": self.newest_games,
            "newest_positions": self.newest_positions,
            "recency": self.recency,
            "weight": self.weight,
            "num_samples": self.num_samples,
        }


@dataclass
class Plan:
    """The positions of one epoch, as games grouped into units (all arrays numpy)."""

    epoch: int
    snapshot: list[str]  # every shard visible when resolved (sorted): the data this epoch sees
    shards: list[str]  # shards holding selected games; ``unit_shard`` indexes this list
    boards: list[str]
    vectors: dict[str, VectorSpec]
    max_players: int
    weighted: bool
    # selected games, ordered by (shard, move_offset)
    game_offset: np.ndarray  # int64, first row in the shard's moves file
    game_count: np.ndarray  # int64, stored moves
    game_draws: np.ndarray  # int64, positions this epoch (= game_count unless weighted)
    game_winner: np.ndarray  # int16, -1 when the game has none
    game_players: np.ndarray  # int16
    game_board: np.ndarray  # int16, index into ``boards``
    game_ids: np.ndarray  # object, the game ids
    # units: one moves batch of one shard with at least one drawn position
    unit_shard: np.ndarray  # int32
    unit_batch: np.ndarray  # int32, record batch index in moves.arrow
    unit_start: np.ndarray  # int64, file row of the batch's first row
    unit_glo: np.ndarray  # int64, first game (index into the game arrays)
    unit_ghi: np.ndarray  # int64, one past the last game
    unit_len: np.ndarray  # int64, positions of the unit this epoch
    stats: dict = field(default_factory=dict)
    #: names this resolved plan's game tables (a renumbered plan keeps it): DataLoader workers send game ids as
    #: indices into them (:mod:`gamestore.positions.shared`)
    token: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def num_games(self) -> int:
        return int(self.game_count.size)

    @property
    def num_positions(self) -> int:
        """Positions of the epoch (stored moves of the selection, or the weighted sample size)."""
        return int(self.unit_len.sum())

    def unit_rows(self, u: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows local to the unit's batch, game index of each row) of unit ``u``, in stream order (unweighted: one
        compiled call when the compiled backend is selected; the numpy below is its spec)."""
        glo, ghi = int(self.unit_glo[u]), int(self.unit_ghi[u])
        if not self.weighted:
            fast = compiled()
            if fast is not None:
                return fast.unit_rows(self.game_offset, self.game_count, glo, ghi, int(self.unit_start[u]))
        local = self.game_offset[glo:ghi] - self.unit_start[u]
        if self.weighted:
            draws = self.game_draws[glo:ghi]
            counts = self.game_count[glo:ghi]
            rng = rng_for(seed, self.epoch, TAG_DRAWS, u)
            r = rng.random(int(draws.sum()))
            rows = np.repeat(local, draws) + (r * np.repeat(counts, draws)).astype(np.int64)
            rows.sort(kind="stable")  # games are disjoint ascending ranges: stays grouped by game
            games = np.repeat(np.arange(glo, ghi, dtype=np.int64), draws)
            return rows, games
        counts = self.game_count[glo:ghi]
        total = int(counts.sum())
        games = np.repeat(np.arange(glo, ghi, dtype=np.int64), counts)
        if local.size and (local.size == 1 or np.array_equal(local[1:], local[:-1] + counts[:-1])):
            return np.arange(local[0], local[0] + total, dtype=np.int64), games  # the games lie back to back
        starts = np.repeat(local - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        rows = starts + np.arange(total, dtype=np.int64)
        return rows, games


def _cursor(store: "GameStore"):
    return store.catalog.cursor()


def _execute(con, query: str, params: list) -> list:
    try:
        return con.execute(query, params).fetchall()
    except duckdb.Error as exc:
        raise QueryError(f"{exc} (in: {query})") from exc


def _query_arrays(con, query: str, params: list) -> dict[str, np.ndarray]:
    try:
        table = con.sql(query, params=params).to_arrow_table()
    except duckdb.Error as exc:
        raise QueryError(f"{exc} (in: {query})") from exc
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def current_snapshot(store: "GameStore") -> list[str]:
    """The committed shards this process sees now (after a refresh)."""
    store.refresh()
    return list(store.catalog.shard_ids())


def _ensure_snapshot(store: "GameStore", snapshot: Sequence[str]) -> None:
    known = set(store.catalog.shard_ids())
    missing = [s for s in snapshot if s not in known]
    if missing:
        store.refresh()
        known = set(store.catalog.shard_ids())
        missing = [s for s in snapshot if s not in known]
    if missing:
        raise StateMismatchError(
            f"{len(missing)} shard(s) of the epoch's snapshot are gone from {store.path} (e.g. {missing[0]}):"
            " the epoch cannot be reproduced exactly"
        )


def resolve_plan(
    store: "GameStore",
    selection: Selection,
    *,
    epoch: int,
    seed: int,
    snapshot: Sequence[str] | None = None,
    vectors: Sequence[str] | None = None,
) -> Plan:
    """Resolve ``selection`` over the shards of ``snapshot`` (default: every shard visible now)."""
    if snapshot is None:
        snapshot = current_snapshot(store)
    else:
        snapshot = sorted(snapshot)
        _ensure_snapshot(store, snapshot)
    con = _cursor(store)
    sel = selection
    views = store.catalog.view_names
    for what in ("where", "weight", "recency"):
        if getattr(sel, what):
            sqlguard.check_predicate(getattr(sel, what), allowed=views, what=what)
    where = f" AND ({sel.where}\n)" if sel.where else ""
    weight = f", CAST(({sel.weight}\n) AS DOUBLE) AS _w" if sel.weight else ""
    base = (
        "SELECT shard_id, game_id, move_offset, num_moves, winner, num_players, board_type"
        f"{weight}, ({sel.recency}\n) AS _rec FROM games"
        f" WHERE shard_id IN (SELECT unnest(?::VARCHAR[])){where}"
    )
    newest = "ORDER BY _rec DESC NULLS LAST, shard_id DESC, move_offset DESC"
    if sel.newest_games is not None:
        query = f"SELECT * FROM ({base}) {newest} LIMIT {int(sel.newest_games)}"
    elif sel.newest_positions is not None:
        query = (
            f"SELECT * FROM (SELECT *, coalesce(sum(num_moves) OVER ({newest}"
            " ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS _before FROM"
            f" ({base})) WHERE _before < {int(sel.newest_positions)}"
        )
    else:
        query = base
    query = f"SELECT * FROM ({query}) ORDER BY shard_id, move_offset"
    cols = _query_arrays(con, query, [list(snapshot)])

    shard_col = cols["shard_id"]
    n = len(shard_col)
    shards = sorted(set(shard_col.tolist()))
    shard_index = {s: i for i, s in enumerate(shards)}
    game_shard = np.fromiter((shard_index[s] for s in shard_col), dtype=np.int32, count=n)
    game_offset = cols["move_offset"].astype(np.int64)
    game_count = cols["num_moves"].astype(np.int64)
    winner = cols["winner"]
    game_winner = np.where(_isnull(winner), -1, _fill(winner, -1)).astype(np.int16)
    game_players = _fill(cols["num_players"], 0).astype(np.int16)
    board_col = cols["board_type"]
    boards = sorted({b for b in board_col.tolist() if b is not None})
    board_index = {b: i for i, b in enumerate(boards)}
    game_board = np.fromiter((board_index.get(b, -1) for b in board_col), dtype=np.int16, count=n)

    weighted = sel.weight is not None
    if weighted:
        w = cols["_w"]
        w = np.where(_isnull(w), 0.0, _fill(w, 0.0)).astype(np.float64)
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise QueryError(f"weight {sel.weight!r} must be finite and non-negative for every selected game")
        mass = w * game_count
        total = float(mass.sum())
        size = int(game_count.sum()) if sel.num_samples is None else int(sel.num_samples)
        if size and total <= 0:
            raise QueryError(f"weight {sel.weight!r} is zero for every selected game")
        game_draws = rng_for(seed, epoch, TAG_WEIGHTS).multinomial(size, mass / total) if size else np.zeros(n, np.int64)
        game_draws = game_draws.astype(np.int64)
    else:
        game_draws = game_count.copy()

    # units: (shard, moves batch) of every game, from the manifests' batch_rows
    game_batch = np.empty(n, dtype=np.int32)
    game_bstart = np.empty(n, dtype=np.int64)
    bounds = np.searchsorted(game_shard, np.arange(len(shards) + 1))
    for si, sid in enumerate(shards):
        a, b = bounds[si], bounds[si + 1]
        rows = store.catalog.reader(sid).manifest["batch_rows"]
        idx, first, straddles = locate_batches(rows, game_offset[a:b], game_count[a:b])
        if np.any(straddles):
            raise FormatError(f"shard {sid}: a game straddles two moves batches")
        game_batch[a:b] = idx
        game_bstart[a:b] = first
    key = game_shard.astype(np.int64) << 32 | game_batch.astype(np.int64)
    change = np.flatnonzero(np.diff(key)) + 1 if n else np.zeros(0, np.int64)
    glo = np.concatenate(([0], change)).astype(np.int64) if n else np.zeros(0, np.int64)
    ghi = np.concatenate((change, [n])).astype(np.int64) if n else np.zeros(0, np.int64)
    csum = np.concatenate(([0], np.cumsum(game_draws)))
    ulen = (csum[ghi] - csum[glo]).astype(np.int64)
    keep = ulen > 0
    glo, ghi, ulen = glo[keep], ghi[keep], ulen[keep]

    all_vectors = store.catalog.vectors()
    if vectors is None:
        vecs = dict(sorted(all_vectors.items()))
    else:
        unknown = [v for v in vectors if v not in all_vectors]
        if unknown and n:
            raise QueryError(f"no stored vector named {unknown[0]!r} (stored: {sorted(all_vectors)})")
        vecs = {v: all_vectors[v] for v in vectors if v in all_vectors}
    return Plan(
        epoch=int(epoch),
        snapshot=list(snapshot),
        shards=shards,
        boards=boards,
        vectors=vecs,
        max_players=int(game_players.max()) if n else 0,
        weighted=weighted,
        game_offset=game_offset,
        game_count=game_count,
        game_draws=game_draws,
        game_winner=game_winner,
        game_players=game_players,
        game_board=game_board,
        game_ids=np.asarray(cols["game_id"], dtype=object),
        unit_shard=game_shard[glo].astype(np.int32),
        unit_batch=game_batch[glo].astype(np.int32),
        unit_start=game_bstart[glo],
        unit_glo=glo,
        unit_ghi=ghi,
        unit_len=ulen,
        stats={"games": n, "stored_positions": int(game_count.sum())},
    )


def _isnull(a: np.ndarray) -> np.ndarray:
    if a.dtype == object:
        return np.array([v is None for v in a], dtype=bool)
    if a.dtype.kind == "f":
        return np.isnan(a)
    return np.zeros(a.shape, dtype=bool)


def _fill(a: np.ndarray, value) -> np.ndarray:
    if a.dtype == object:
        return np.array([value if v is None else v for v in a])
    return np.nan_to_num(a, nan=value) if a.dtype.kind == "f" else a


#: shards read side by side: a stretch of the stream mixes units of this many shards
LANES = 8


def unit_order(plan: Plan, *, seed: int) -> np.ndarray:
    """The epoch's seeded unit order: shards in random order, ``LANES`` at a time, units interleaved.

    Each shard's units come in random order; the stream takes one unit in
    turn from each of ``LANES`` shards and starts the next shard when one
    runs out.  Any stretch of the stream therefore mixes several shards,
    while a reader keeps only about ``LANES`` shard files open and opens
    each one once.
    """
    rng = rng_for(seed, plan.epoch, TAG_UNITS)
    n = plan.unit_len.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    shard_of = plan.unit_shard
    bounds = np.flatnonzero(np.diff(shard_of)) + 1  # units of a shard are contiguous in the plan
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [n]))
    queue = [rng.permutation(np.arange(a, b)) for a, b in zip(starts, ends)]
    queue = [queue[i] for i in rng.permutation(len(queue))]
    lanes: list[list[int]] = []
    order: list[int] = []
    nxt = 0
    while nxt < len(queue) or lanes:
        while len(lanes) < LANES and nxt < len(queue):
            lanes.append(queue[nxt].tolist()[::-1])
            nxt += 1
        for lane in lanes:
            order.append(lane.pop())
        lanes = [lane for lane in lanes if lane]
    return np.asarray(order, dtype=np.int64)


def partition(
    plan: Plan,
    *,
    seed: int,
    shuffle: bool,
    rank: int,
    world_size: int,
    worker: int,
    num_workers: int,
    batch_size: int,
    drop_last: bool = False,
) -> list[tuple[int, int, int]]:
    """The (unit, lo, hi) segments of one worker of one rank, in stream order.

    The epoch's stream is every unit's positions in a seeded unit order.  Rank
    ``r`` takes the ``r``-th of ``world_size`` contiguous, equal (to one
    position) ranges; its workers split that range at multiples of
    ``batch_size``, so only a rank's last worker can end on a short batch.
    The segments of all ranks and workers tile the stream exactly.  With
    ``drop_last`` every rank gets the same whole number of batches and the
    fewer than ``world_size * batch_size`` positions left over are dropped.
    """
    lens = plan.unit_len
    order = unit_order(plan, seed=seed) if shuffle else np.arange(lens.size)
    cum = np.concatenate(([0], np.cumsum(lens[order])))
    total = int(cum[-1])
    if drop_last:
        share = total // world_size // batch_size * batch_size
        r_lo, r_hi = share * rank, share * (rank + 1)
    else:
        r_lo, r_hi = total * rank // world_size, total * (rank + 1) // world_size
    nb = -(-(r_hi - r_lo) // batch_size)
    b0, b1 = nb * worker // num_workers, nb * (worker + 1) // num_workers
    lo, hi = r_lo + b0 * batch_size, min(r_lo + b1 * batch_size, r_hi)
    if hi <= lo:
        return []
    i0 = int(np.searchsorted(cum, lo, side="right")) - 1
    i1 = int(np.searchsorted(cum, hi, side="left"))
    out = []
    for i in range(i0, i1):
        a = max(lo, int(cum[i])) - int(cum[i])
        b = min(hi, int(cum[i + 1])) - int(cum[i])
        if b > a:
            out.append((int(order[i]), a, b))
    return out


def fingerprint(obj: dict) -> str:
    """A short stable hash of a JSON-able options dict."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
