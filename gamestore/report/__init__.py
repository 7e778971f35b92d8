"""``gamestore report``: one self-contained HTML page of charts for operators.

>>> from gamestore.report import write_report
>>> write_report(store, "report.html", since="24h")          # doctest: +SKIP

The page shows throughput (games and positions per hour per config and per
source / node), game lengths, win rate by seat and termination reasons,
data freshness, training-signal health (policy entropy, candidate counts,
search visits, root values), and store health (shards, bytes per move,
compaction backlog, duplicates, damaged shards), each chart with the table
of its numbers.  Queries live in :mod:`.queries` (DuckDB, no plotting), charts
in :mod:`.charts` (Vega-Lite specs), the page in :mod:`.page` (with the Vega
JavaScript inlined).  Needs the ``report`` extra (``pip install
'gamestore[report]'``: vl-convert-python, which bundles the JavaScript);
``import gamestore`` does not import any of it.
"""
from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TYPE_CHECKING, Callable

from ..fsutil import atomic_path
from .queries import DEFAULT_QUIET_AFTER, DEFAULT_SAMPLE_MOVES, ReportData, collect, parse_duration

if TYPE_CHECKING:  # pragma: no cover
    from ..store import GameStore

__all__ = ["write_report", "render_report", "ReportResult", "ReportData", "collect", "parse_duration",
           "DEFAULT_SAMPLE_MOVES", "DEFAULT_QUIET_AFTER"]


@dataclass
class ReportResult:
    """What :func:`write_report` wrote."""

    path: str
    bytes: int
    games: int
    positions: int
    charts: int
    sample_moves: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "bytes": self.bytes, "games": self.games, "positions": self.positions,
                "charts": self.charts, "sample_moves": self.sample_moves, "seconds": round(self.seconds, 3),
                "timings": self.timings}


def _duration(value: str | _dt.timedelta | None) -> _dt.timedelta | None:
    if value is None or isinstance(value, _dt.timedelta):
        return value
    return parse_duration(value)


def render_report(data: ReportData) -> tuple[str, int]:
    """The HTML page for collected report data, and its number of charts."""
    from .charts import build_charts
    from .page import render_page, vega_bundle

    charts = build_charts(data)
    return render_page(data, charts, bundle=vega_bundle()), sum(len(c) for c in charts.values())


def write_report(
    store: "GameStore",
    output: str | os.PathLike[str],
    *,
    where: str | None = None,
    since: str | _dt.timedelta | None = None,
    quiet_after: str | _dt.timedelta = DEFAULT_QUIET_AFTER,
    sample_moves: int = DEFAULT_SAMPLE_MOVES,
    as_of: _dt.datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReportResult:
    """Write the report of ``store`` to ``output`` (an HTML file).

    ``where`` is a SQL predicate over the ``games`` view, ``since`` keeps the
    games created in the last DURATION (``"6h"``, ``"2d"``), ``quiet_after``
    is the age of a config's newest game that flags it, ``sample_moves``
    bounds the moves decoded for the training-signal charts, ``as_of`` is
    the report's "now" (default: the current time, UTC).  ``progress`` is
    called with the name of each step.
    """
    t0 = time.perf_counter()
    quiet = _duration(quiet_after)
    assert quiet is not None
    data = collect(store, where=where, since=_duration(since), as_of=as_of, quiet_after=quiet,
                   sample_moves=sample_moves, progress=progress)
    if progress is not None:
        progress("charts")
    t1 = time.perf_counter()
    text, charts = render_report(data)
    data.timings["charts and page"] = round(time.perf_counter() - t1, 4)
    if progress is not None:
        progress("write")
    path = Path(output)
    with atomic_path(path, fsync=False) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return ReportResult(path=str(path), bytes=len(text.encode("utf-8")), games=data.games, positions=data.positions,
                        charts=charts, sample_moves=data.sample_moves, seconds=time.perf_counter() - t0,
                        timings=data.timings)
