"""The numbers of ``gamestore report``: DuckDB queries over a store, no plotting.

:func:`collect` runs every query of the report through the store's public
API (``store.sql``, ``store.info``, ``store.scan_moves``) and returns a
:class:`ReportData`: plain tables (lists of row dicts) that the renderer
(:mod:`gamestore.report.render`) turns into charts and copyable tables.

Game-level figures (throughput, lengths, outcomes, freshness) cover every
selected game.  Per-move training-signal figures (policy entropy, candidate
counts, search visits, root values) decode the moves of the newest games of
each config, up to ``sample_moves`` moves in all, so the report stays fast on
stores of any size; the report says how many games and moves it read.
"""
from __future__ import annotations

import datetime as _dt
import math
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import QueryError, ShardCorruptError

if TYPE_CHECKING:  # pragma: no cover
    from ..store import GameStore

__all__ = ["Table", "ReportData", "collect", "parse_duration", "DEFAULT_SAMPLE_MOVES", "DEFAULT_QUIET_AFTER"]

#: Moves decoded (newest games first, shared among configs) for the training-signal figures.
DEFAULT_SAMPLE_MOVES = 50_000
#: A config whose newest game is older than this is flagged as quiet.
DEFAULT_QUIET_AFTER = _dt.timedelta(hours=1)
#: Most time buckets a throughput chart gets (the bucket width grows to fit).
MAX_BUCKETS = 60
#: Origins (source @ node) drawn separately; the rest are summed as '(other)'.
MAX_ORIGINS = 12
_BUCKET_SECONDS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)

# created_at is ISO text; a string with an offset is converted to UTC, one without is taken as UTC
_TS = (
    "CASE WHEN regexp_matches(created_at, '(Z|[+-][0-9][0-9]:?[0-9][0-9])$')"
    " THEN timezone('UTC', TRY_CAST(created_at AS TIMESTAMPTZ))"
    " ELSE TRY_CAST(created_at AS TIMESTAMP) END"
)
# RingRift records the machine that played a game as metadata.node_id
_NODE = (
    "coalesce(json_extract_string(metadata_json, '$.node_id'), json_extract_string(metadata_json, '$.node'),"
    " json_extract_string(metadata_json, '$.host'))"
)
_EPOCH = _dt.datetime(1970, 1, 1)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

Progress = Callable[[str], None]


def parse_duration(text: str) -> _dt.timedelta:
    """``"90s"``, ``"15m"``, ``"6h"``, ``"2d"``, ``"1w"`` (a bare number is hours) as a timedelta."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 6h, 2d, 1w)")
    seconds = float(m.group(1)) * _UNIT_SECONDS[(m.group(2) or "h").lower()]
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return _dt.timedelta(seconds=seconds)


@dataclass
class Table:
    """One table of the report: the numbers behind a chart."""

    columns: list[str]
    rows: list[dict[str, Any]]

    @classmethod
    def of(cls, table: pa.Table) -> "Table":
        return cls(list(table.column_names), table.to_pylist())

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class ReportData:
    """Everything the report shows, as tables keyed by name."""

    store_path: str
    generated_at: _dt.datetime
    where: str | None
    since: _dt.timedelta | None
    quiet_after: _dt.timedelta
    games: int = 0
    positions: int = 0
    store_games: int = 0
    undated_games: int = 0
    bucket_seconds: int = 3600
    sample_games: int = 0
    sample_moves: int = 0
    tables: dict[str, Table] = field(default_factory=dict)
    store: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: shards the report could not read (shard id -> why), besides those the store already knows are damaged
    unreadable_shards: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.games == 0

    def table(self, name: str) -> Table:
        return self.tables.get(name) or Table([], [])

    @property
    def bucket_label(self) -> str:
        s = self.bucket_seconds
        if s % 86400 == 0:
            return f"{s // 86400}-day buckets"
        if s % 3600 == 0:
            return f"{s // 3600}-hour buckets"
        return f"{s // 60}-minute buckets"


def human_age(hours: float | None) -> str:
    """``"40 s"``, ``"12 min"``, ``"5.2 h"``, ``"3.1 d"``."""
    if hours is None:
        return "n/a"
    seconds = max(0.0, hours * 3600)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _nice_step(span: float, bins: int) -> float:
    """A round bin width (1, 2 or 5 times a power of ten) giving about ``bins`` bins over ``span``."""
    if not span > 0 or not math.isfinite(span):
        return 1.0
    raw = span / bins
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * power:
            return mult * power
    return 10 * power  # pragma: no cover


def _bucket_seconds(span_seconds: float) -> int:
    for b in _BUCKET_SECONDS:
        if span_seconds / b <= MAX_BUCKETS:
            return b
    return _BUCKET_SECONDS[-1]


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class _Queries:
    """The report's queries over one store and one selection of games.

    The selection (``where``, ``since``) is read from the store once, one row per game with the
    columns the report needs (through ``store.sql``); every game-level figure is then a DuckDB
    query over that Arrow table on a private connection, so the store is asked once, not per chart.
    """

    def __init__(self, store: "GameStore", *, where: str | None, since_ts: _dt.datetime | None,
                 as_of: _dt.datetime) -> None:
        from ..sqlguard import check_predicate, lock_down

        self.store = store
        self.as_of = as_of
        parts = [f"({check_predicate(where)})"] if where else []
        if since_ts is not None:
            parts.append(f"{_TS} >= TIMESTAMP '{since_ts.isoformat(sep=' ')}'")
        #: the selection as a predicate over the store's ``games`` view
        self.predicate = " AND ".join(parts) or "TRUE"
        query = (
            "SELECT game_id, board_type || '_' || num_players || 'p' AS config,"
            f" coalesce(source, '(none)') AS source, {_NODE} AS node, num_players, winner,"
            f" coalesce(termination_reason, '(none)') AS termination_reason, num_moves, shard_id, {_TS} AS t"
            f" FROM games WHERE {self.predicate}"
        )
        try:
            selection = store.sql(query).to_arrow_table()
        except duckdb.Error as exc:  # raised while the rows are produced (e.g. a type error in `where`)
            raise QueryError(f"report selection: {exc}") from exc
        self.con = duckdb.connect(":memory:")
        lock_down(self.con)
        self.con.register("sel", selection)

    def close(self) -> None:
        self.con.close()

    def run(self, query: str) -> pa.Table:
        return self.con.sql(query).to_arrow_table()

    def table(self, query: str) -> Table:
        return Table.of(self.run(query))

    def row(self, query: str) -> dict[str, Any]:
        rows = self.run(query).to_pylist()
        return rows[0] if rows else {}

    # -- game-level figures ------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        return self.row(
            "SELECT count(*) AS games, coalesce(sum(num_moves), 0) AS positions, count(DISTINCT config) AS configs,"
            " count(*) FILTER (WHERE t IS NULL) AS undated, min(t) AS first, max(t) AS last FROM sel"
        )

    def throughput(self, bucket: int, expr: str, name: str) -> Table:
        """Games and positions per ``bucket`` seconds (and per hour) for each value of ``expr``.

        Every bucket between the first and the last game appears for every value (0 when
        nothing was created then), so a pause shows as a drop, not as a line across the gap.
        The bucket holding the report's time is still filling: its rate is over the time elapsed.
        """
        as_of = (self.as_of - _EPOCH).total_seconds()
        seconds = f"greatest(least(buckets.b + {bucket}, {as_of}) - buckets.b, {bucket / 4})"  # no wild rate at first
        return self.table(
            f"WITH counts AS (SELECT floor(epoch(t) / {bucket})::BIGINT * {bucket} AS b, {expr} AS k,"
            f" count(*) AS games, sum(num_moves)::BIGINT AS positions FROM sel WHERE t IS NOT NULL GROUP BY 1, 2),"
            f" buckets AS (SELECT unnest(range(min(b), max(b) + 1, {bucket})) AS b FROM counts),"
            f" keys AS (SELECT DISTINCT k FROM counts)"
            f" SELECT to_timestamp(buckets.b)::TIMESTAMP AS time, keys.k AS {name},"
            f" coalesce(games, 0) AS games, coalesce(positions, 0) AS positions,"
            f" round(coalesce(games, 0) * 3600.0 / {seconds}, 2)::DOUBLE AS games_per_hour,"
            f" round(coalesce(positions, 0) * 3600.0 / {seconds}, 1)::DOUBLE AS positions_per_hour"
            f" FROM buckets CROSS JOIN keys LEFT JOIN counts ON counts.b = buckets.b AND counts.k = keys.k"
            f" ORDER BY 1, 2"
        )

    def origin_expr(self, top: int) -> str:
        """A game's origin: its source, plus the node that played it when recorded; the ``top`` busiest, else '(other)'."""
        origin = "source || coalesce(' @ ' || node, '')"
        return (
            f"CASE WHEN {origin} IN (SELECT o FROM (SELECT {origin} AS o, count(*) AS n FROM sel GROUP BY 1"
            f" ORDER BY n DESC, o LIMIT {int(top)})) THEN {origin} ELSE '(other)' END"
        )

    def lengths(self) -> tuple[Table, Table]:
        summary = self.table(
            "SELECT config, count(*) AS games, min(num_moves) AS min, quantile_disc(num_moves, 0.1) AS p10,"
            " quantile_disc(num_moves, 0.5) AS median, quantile_disc(num_moves, 0.9) AS p90,"
            " max(num_moves) AS max, round(avg(num_moves), 1) AS mean FROM sel GROUP BY 1 ORDER BY 1"
        )
        widths = {r["config"]: _nice_step(float(r["max"] - r["min"]), 30) for r in summary.rows}
        width_case = " ".join(f"WHEN {_sql_text(c)} THEN {max(1, int(w))}" for c, w in widths.items())
        hist = self.table(
            f"SELECT config, lo AS moves_from, lo + w AS moves_to, count(*) AS games,"
            f" round(count(*) / sum(count(*)) OVER (PARTITION BY config), 4) AS share"
            f" FROM (SELECT config, CASE config {width_case} ELSE 1 END AS w,"
            f" floor(num_moves / w)::BIGINT * w AS lo FROM sel) GROUP BY config, lo, w ORDER BY 1, 2"
        ) if widths else Table([], [])
        return summary, hist

    def seats(self) -> Table:
        return self.table(
            "SELECT config, CASE WHEN winner IS NULL OR winner < 1 THEN 'no winner' ELSE 'seat ' || winner END"
            " AS outcome, count(*) AS games,"
            " round(count(*) / sum(count(*)) OVER (PARTITION BY config), 4) AS share FROM sel GROUP BY 1, 2 ORDER BY 1, 2"
        )

    def terminations(self) -> Table:
        return self.table(
            "SELECT config, termination_reason, count(*) AS games,"
            " round(count(*) / sum(count(*)) OVER (PARTITION BY config), 4) AS share FROM sel GROUP BY 1, 2 ORDER BY 1, 3 DESC"
        )

    def freshness(self, quiet_after: _dt.timedelta) -> Table:
        as_of = self.as_of.isoformat(sep=" ")
        quiet = quiet_after.total_seconds()
        return self.table(
            f"SELECT config, max(t) AS newest_game,"
            f" round(epoch(TIMESTAMP '{as_of}' - max(t)) / 3600.0, 3) AS age_hours,"
            f" count(*) FILTER (WHERE t >= TIMESTAMP '{as_of}' - INTERVAL 1 HOUR) AS games_last_hour,"
            f" count(*) FILTER (WHERE t >= TIMESTAMP '{as_of}' - INTERVAL 1 DAY) AS games_last_day,"
            f" CASE WHEN max(t) IS NULL THEN 'no time' WHEN epoch(TIMESTAMP '{as_of}' - max(t)) > {quiet}"
            f" THEN 'quiet' ELSE 'ok' END AS status FROM sel GROUP BY 1 ORDER BY 3 DESC NULLS FIRST, 1"
        )

    def sample(self, budget: int) -> tuple[pa.Table, dict[str, str]]:
        """The selected games of the newest shards, about ``budget`` moves in all.

        Returns their ``(game_id, config, shard_id)`` and, per shard, the predicate over ``games``
        selecting them.
        Whole shards (newest games first) rather than the newest games of each config: a shard is
        read batch by batch, so games spread thinly over many shards would cost far more than they hold.
        """
        games = self.run(
            "WITH per_shard AS (SELECT shard_id, sum(num_moves) AS moves, sum(sum(num_moves)) OVER"
            " (ORDER BY max(t) DESC NULLS LAST, shard_id DESC ROWS UNBOUNDED PRECEDING) AS cum FROM sel GROUP BY 1)"
            f" SELECT game_id, config, shard_id FROM sel WHERE shard_id IN (SELECT shard_id FROM per_shard"
            f" WHERE cum - moves < {int(budget)})"
        )
        shards = sorted(set(games.column("shard_id").to_pylist()))
        return games, {sid: f"shard_id = {_sql_text(sid)} AND {self.predicate}" for sid in shards}


# ---------------------------------------------------------------------------
# training signal: per-move figures of a sample, aggregated by DuckDB over Arrow
# ---------------------------------------------------------------------------
def _list_sums(column: pa.Array, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a list array: the number of entries and the sum of ``weights`` (one per entry)."""
    counts = column.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
    parent = np.repeat(np.arange(len(column)), counts)
    return counts, np.bincount(parent, weights=weights, minlength=len(column))


def _batch_signal(batch: pa.RecordBatch) -> dict[str, np.ndarray]:
    policy = batch.column("policy")
    entries = policy.flatten()  # the entries of the non-null lists, in order
    prob = pc.coalesce(entries.field("prob64"), entries.field("prob").cast(pa.float64()))
    p = prob.fill_null(0.0).to_numpy(zero_copy_only=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
        counts, total = _list_sums(policy, p)
        _, sum_plogp = _list_sums(policy, plogp)
        entropy = np.log(total) - sum_plogp / total
    search = batch.column("search")
    visits = search.flatten().field("visits").fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64)
    scounts, visit_sums = _list_sums(search, visits)
    root = batch.column("search_root_value").to_numpy(zero_copy_only=False).astype(np.float64)
    return {"candidates": counts, "total": total, "entropy": entropy, "scounts": scounts, "visits": visit_sums,
            "root": root}


def _per_move(batches: list[pa.RecordBatch], configs: pa.Table) -> pa.Table:
    """One row per sampled move: config, policy candidates and entropy (nats), search visits, root value.

    The per-candidate sums are numpy over each batch's flattened lists (no per-row Python);
    the entropy of a policy whose probabilities sum to ``S`` is that of the normalised
    distribution, ``ln S - sum(p ln p) / S``.
    """
    parts = [_batch_signal(b) for b in batches]
    col = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    has_policy = (col["candidates"] > 0) & (col["total"] > 0)
    ids = pa.chunked_array([b.column("game_id").cast(pa.string()) for b in batches])
    config = pc.take(configs.column("config"), pc.index_in(ids, value_set=configs.column("game_id")))
    return pa.table({
        "config": config,
        "candidates": pa.array(np.where(has_policy, col["candidates"], 0), pa.int32(), mask=~has_policy),
        "entropy": pa.array(np.where(has_policy, col["entropy"], 0.0), pa.float64(), mask=~has_policy),
        "visits": pa.array(col["visits"], pa.float64(), mask=col["scounts"] == 0),
        "root_value": pa.array(col["root"], pa.float64(), mask=np.isnan(col["root"])),
    })


def _histogram(con: duckdb.DuckDBPyConnection, column: str, *, bins: int = 40, integer: bool = False) -> Table:
    lo, hi = con.sql(f"SELECT min({column}), max({column}) FROM signal").fetchall()[0]
    if lo is None:
        return Table(["config", f"{column}_from", f"{column}_to", "moves", "share"], [])
    width = _nice_step(float(hi) - float(lo), bins)
    if integer:
        width = max(1.0, math.ceil(width))
    table = con.sql(
        f"SELECT config, round(floor({column} / {width}) * {width}, 6) AS {column}_from,"
        f" round(floor({column} / {width}) * {width} + {width}, 6) AS {column}_to, count(*) AS moves,"
        f" round(count(*) / sum(count(*)) OVER (PARTITION BY config), 4) AS share"
        f" FROM signal WHERE {column} IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2"
    ).to_arrow_table()
    return Table.of(table)


def _training_signal(store: "GameStore", q: _Queries, data: ReportData, sample_moves: int) -> None:
    games, shards = q.sample(sample_moves)
    columns = ["game_id", "policy", "search", "search_root_value"]
    batches: list[pa.RecordBatch] = []
    read = []
    for sid, predicate in shards.items():
        try:
            batches += [b for b in store.scan_moves(predicate, columns=columns) if b.num_rows]
            read.append(sid)
        except (ShardCorruptError, OSError) as exc:
            # a damaged shard costs its games in the sample, never the report
            data.unreadable_shards[sid] = str(exc)
    games = games.filter(pc.is_in(games.column("shard_id"), value_set=pa.array(read, pa.string())))
    data.sample_games = games.num_rows
    data.sample_moves = sum(b.num_rows for b in batches)
    if not batches:
        return
    con = duckdb.connect(":memory:")
    try:
        con.register("signal", _per_move(batches, games))
        data.tables["signal_summary"] = Table.of(con.sql(
            "SELECT config, count(*) AS moves, count(candidates) AS moves_with_policy,"
            " round(avg(entropy), 3) AS mean_entropy, round(quantile_cont(entropy, 0.1), 3) AS p10_entropy,"
            " round(quantile_cont(entropy, 0.5), 3) AS median_entropy,"
            " round(avg(entropy / nullif(ln(candidates), 0)), 3) AS mean_entropy_normalised,"
            " round(avg(candidates), 2) AS mean_candidates, min(candidates) AS min_candidates,"
            " max(candidates) AS max_candidates, count(visits) AS moves_with_search,"
            " round(avg(visits), 1) AS mean_visits, round(avg(root_value), 3) AS mean_root_value,"
            " round(stddev_samp(root_value), 3) AS sd_root_value FROM signal GROUP BY 1 ORDER BY 1"
        ).to_arrow_table())
        data.tables["entropy_hist"] = _histogram(con, "entropy")
        data.tables["candidates_hist"] = Table.of(con.sql(
            "SELECT config, candidates, count(*) AS moves,"
            " round(count(*) / sum(count(*)) OVER (PARTITION BY config), 4) AS share"
            " FROM signal WHERE candidates IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"
        ).to_arrow_table())
        data.tables["visits_hist"] = _histogram(con, "visits", integer=True)
        data.tables["root_value_hist"] = _histogram(con, "root_value")
    finally:
        con.close()


# ---------------------------------------------------------------------------
# store health: the whole store, whatever the selection
# ---------------------------------------------------------------------------
def _store_health(store: "GameStore", data: ReportData) -> None:
    from ..ops import DEFAULT_TARGET_MOVES

    info = store.info()
    shards = Table.of(store.sql(
        "SELECT shard_id, num_games, num_moves, bytes, created_at,"
        " round(bytes / nullif(num_moves, 0), 1) AS bytes_per_move FROM shards ORDER BY created_at, shard_id"
    ).to_arrow_table())
    stored_copies = sum(int(r["num_games"] or 0) for r in shards.rows)
    small = [r for r in shards.rows if (r["num_moves"] or 0) < DEFAULT_TARGET_MOVES]
    damaged = list(info.get("damaged_shards") or [])
    quarantined = list(info.get("quarantined_shards") or [])
    data.store = {
        "games": info["games"],
        "moves": info["moves"],
        "shards": info["shards"],
        "shard_bytes": info.get("shard_bytes"),
        "bytes_on_disk": info.get("bytes_on_disk"),
        "bytes_per_move": info.get("bytes_per_move"),
        "damaged_shards": damaged,
        "damage": dict(info.get("damage") or {}),  # damaged shard -> what is wrong
        "games_in_damaged_shards": info.get("games_in_damaged_shards", 0),
        "quarantined_shards": quarantined,
        "duplicate_copies": max(0, stored_copies - int(info["games"])),
        "compaction_target_moves": DEFAULT_TARGET_MOVES,
        "shards_below_target": len(small),
        # compaction merges small shards only when there are at least two of them
        "compaction_backlog_shards": len(small) if len(small) > 1 else 0,
        "compaction_backlog_moves": sum(int(r["num_moves"] or 0) for r in small) if len(small) > 1 else 0,
    }
    data.store_games = int(info["games"])
    if shards.rows:
        width = max(1, int(_nice_step(float(max(r["num_moves"] or 0 for r in shards.rows)), 30)))
        hist: dict[tuple[int, str], int] = {}
        for r in shards.rows:
            n = int(r["num_moves"] or 0)
            key = (n // width * width, "below target" if n < DEFAULT_TARGET_MOVES else "full")
            hist[key] = hist.get(key, 0) + 1
        data.tables["shard_sizes"] = Table(
            ["moves_from", "moves_to", "size", "shards"],
            [{"moves_from": lo, "moves_to": lo + width, "size": size, "shards": n}
             for (lo, size), n in sorted(hist.items())],
        )
    data.tables["shards"] = shards


# ---------------------------------------------------------------------------
def collect(
    store: "GameStore",
    *,
    where: str | None = None,
    since: _dt.timedelta | None = None,
    as_of: _dt.datetime | None = None,
    quiet_after: _dt.timedelta = DEFAULT_QUIET_AFTER,
    sample_moves: int = DEFAULT_SAMPLE_MOVES,
    progress: Progress | None = None,
) -> ReportData:
    """Run every query of the report over ``store`` (``where``: SQL predicate over ``games``)."""
    if sample_moves < 0:
        raise ValueError("sample_moves must be >= 0")
    now = (as_of or _dt.datetime.now(_dt.timezone.utc))
    if now.tzinfo is not None:
        now = now.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    data = ReportData(store_path=str(store.path), generated_at=now, where=where, since=since, quiet_after=quiet_after)
    since_ts = None if since is None else now - since
    timer = _Timer(data, progress)
    with timer("store health"):
        _store_health(store, data)
    with timer("selection"):
        q = _Queries(store, where=where, since_ts=since_ts, as_of=now)
    try:
        with timer("overview"):
            o = q.overview()
            data.games, data.positions, data.undated_games = int(o["games"]), int(o["positions"]), int(o["undated"])
            span = (o["last"] - o["first"]).total_seconds() if o.get("first") is not None else 0.0
            data.bucket_seconds = _bucket_seconds(span)
        if data.empty:
            return data
        with timer("throughput"):
            data.tables["throughput_config"] = q.throughput(data.bucket_seconds, "config", "config")
            data.tables["throughput_origin"] = q.throughput(data.bucket_seconds, q.origin_expr(MAX_ORIGINS), "origin")
        with timer("outcomes"):
            data.tables["length_summary"], data.tables["length_hist"] = q.lengths()
            data.tables["seats"] = q.seats()
            data.tables["terminations"] = q.terminations()
            fresh = q.freshness(quiet_after)
            for row in fresh.rows:
                row["age"] = human_age(row["age_hours"])
            fresh.columns.insert(fresh.columns.index("age_hours"), "age")
            data.tables["freshness"] = fresh
        if sample_moves:
            with timer("training signal"):
                _training_signal(store, q, data, sample_moves)
    finally:
        q.close()
    return data


class _Timer:
    """Announces each step to ``progress`` and records its time in ``data.timings``."""

    def __init__(self, data: ReportData, progress: Progress | None) -> None:
        self.data = data
        self.progress = progress

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.progress is not None:
            self.progress(name)
        t0 = time.perf_counter()
        yield
        self.data.timings[name] = round(time.perf_counter() - t0, 4)
