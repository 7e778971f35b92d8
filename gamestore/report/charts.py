"""The charts of ``gamestore report``: Vega-Lite specifications.

Each method returns ``(chart id, spec, table names)``: a Vega-Lite spec
(plain JSON data, drawn in the browser by the Vega bundle the page inlines)
whose data are named datasets, filled in the page from the report's
tables.  The specs are written as Vega-Lite JSON rather than built with
Altair: importing and validating through Altair cost more than every query
of the report together; the tests validate every spec against the
Vega-Lite JSON schema instead (tests/test_report.py).
"""
from __future__ import annotations

import datetime as _dt
import decimal
import math
from typing import Any

from .queries import ReportData

__all__ = ["Chart", "build_charts", "plain"]

#: (chart id, Vega-Lite spec without its data, names of the report tables it draws)
Chart = tuple[str, dict[str, Any], tuple[str, ...]]

WIDTH = 420
HEIGHT = 220
OK_COLOUR = "#2e7d32"
QUIET_COLOUR = "#e65100"
NO_TIME_COLOUR = "#9e9e9e"
BELOW_TARGET_COLOUR = "#f9a825"
FULL_COLOUR = "#1565c0"
_EPOCH = _dt.datetime(1970, 1, 1)

CONFIG = {
    "font": "system-ui, -apple-system, 'Segoe UI', sans-serif",
    "view": {"stroke": None},
    "axis": {"labelFontSize": 11, "titleFontSize": 12, "gridColor": "#e8e8e8", "domainColor": "#888"},
    "legend": {"labelFontSize": 11, "titleFontSize": 12, "labelLimit": 220},
    "title": {"fontSize": 14, "anchor": "start", "fontWeight": "bold"},
    "header": {"labelFontSize": 12, "labelFontWeight": "bold", "titleFontSize": 0},
}


def plain(value: Any) -> Any:
    """A JSON-ready value for a chart: times (UTC) as epoch milliseconds, decimals as floats."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return round((value - _EPOCH).total_seconds() * 1000)
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _field(name: str, kind: str, **kw: Any) -> dict[str, Any]:
    return {"field": name, "type": {"N": "nominal", "Q": "quantitative", "T": "temporal"}[kind], **kw}


def _chart(name: str, table: str, spec: dict[str, Any], *, title: str | None = None) -> Chart:
    top = {"config": CONFIG, "data": {"name": table}, **spec}
    if title is not None:
        top["title"] = title
    return name, top, (table,)


class _Charts:
    def __init__(self, data: ReportData) -> None:
        self.data = data
        configs = sorted({r["config"] for r in data.table("length_summary").rows})
        self.config_scale = {"domain": configs, "scheme": "tableau10" if len(configs) <= 10 else "category20"}

    def config_colour(self, **kw: Any) -> dict[str, Any]:
        return _field("config", "N", scale=self.config_scale, title="config", **kw)

    # -- throughput -------------------------------------------------------------------
    def rate(self, name: str, table: str, field: str, key: str, title: str, colour: dict[str, Any], *,
             stacked: bool = False) -> Chart:
        """``field`` over time, a line per ``key`` (or stacked areas summing to the total)."""
        dense = len(self.data.table(table)) > 60 * len({r[key] for r in self.data.table(table).rows})
        mark: dict[str, Any] = ({"type": "area", "interpolate": "step-after", "opacity": 0.85} if stacked else
                                {"type": "line", "strokeWidth": 1.6, "point": False if dense else {"size": 16}})
        encoding = {
            "x": _field("time", "T", title=None, scale={"type": "utc"}, axis={"format": "%b %d %H:%M"}),
            "y": _field(field, "Q", title=title, stack=True if stacked else None),
            "color": colour,
            "tooltip": [_field("time", "T", timeUnit="utcyearmonthdatehoursminutes", title="bucket start (UTC)"),
                        _field(key, "N"), _field("games", "Q", format=","), _field("positions", "Q", format=","),
                        _field(field, "Q", format=",")],
        }
        return _chart(name, table, {"mark": mark, "encoding": encoding, "width": WIDTH, "height": HEIGHT},
                      title=f"{title} ({self.data.bucket_label}, UTC)")

    def throughput(self) -> list[Chart]:
        origin = _field("origin", "N", title="source @ node", scale={"scheme": "tableau10"})
        return [
            self.rate("games-per-hour", "throughput_config", "games_per_hour", "config", "games per hour",
                      self.config_colour()),
            self.rate("positions-per-hour", "throughput_config", "positions_per_hour", "config",
                      "positions per hour", self.config_colour()),
            self.rate("games-per-hour-origin", "throughput_origin", "games_per_hour", "origin",
                      "games per hour by source @ node", origin, stacked=True),
            self.rate("positions-per-hour-origin", "throughput_origin", "positions_per_hour", "origin",
                      "positions per hour by source @ node", origin, stacked=True),
        ]

    # -- game lengths and outcomes -----------------------------------------------------------
    def lengths(self) -> list[Chart]:
        n = len(self.data.table("length_summary"))
        inner = {
            "mark": {"type": "bar", "binSpacing": 0},
            "encoding": {
                "x": _field("moves_from", "Q", bin="binned", title="moves per game", scale={"zero": False}),
                "x2": {"field": "moves_to"},
                "y": _field("games", "Q", title="games"),
                "color": self.config_colour(legend=None),
                "tooltip": [_field("config", "N"), _field("moves_from", "Q", title="from"),
                            _field("moves_to", "Q", title="to"), _field("games", "Q", format=","),
                            _field("share", "Q", format=".1%")],
            },
            "width": 270, "height": 140,
        }
        return [_chart("game-length", "length_hist", {
            "facet": _field("config", "N", title=None), "columns": min(3, max(1, n)), "spec": inner,
            "resolve": {"scale": {"x": "independent", "y": "independent"}},
        }, title="game length per config")]

    def shares(self, name: str, table: str, field: str, title: str, scheme: str) -> Chart:
        encoding = {
            "y": _field("config", "N", title=None, sort="ascending"),
            "x": _field("share", "Q", title="share of games", stack="normalize", axis={"format": "%"}),
            "color": _field(field, "N", title=field.replace("_", " "), scale={"scheme": scheme}),
            "order": _field(field, "N"),
            "tooltip": [_field("config", "N"), _field(field, "N"), _field("games", "Q", format=","),
                        _field("share", "Q", format=".1%")],
        }
        return _chart(name, table, {"mark": {"type": "bar"}, "encoding": encoding, "width": WIDTH,
                                    "height": {"step": 26}}, title=title)

    def outcomes(self) -> list[Chart]:
        return [
            self.shares("win-rate-by-seat", "seats", "outcome", "win rate by seat", "set2"),
            self.shares("termination-reasons", "terminations", "termination_reason", "termination reasons", "tableau20"),
        ]

    # -- freshness ----------------------------------------------------------------------------------
    def freshness(self) -> list[Chart]:
        quiet_h = self.data.quiet_after.total_seconds() / 3600.0
        y = _field("config", "N", title=None, sort={"field": "age_hours", "order": "descending"})
        bars = {
            "mark": {"type": "bar"},
            "encoding": {
                "y": y,
                "x": _field("age_hours", "Q", title="hours since the newest game"),
                "color": _field("status", "N", title="status", scale={
                    "domain": ["ok", "quiet", "no time"], "range": [OK_COLOUR, QUIET_COLOUR, NO_TIME_COLOUR]}),
                "tooltip": [_field("config", "N"),
                            _field("newest_game", "T", timeUnit="utcyearmonthdatehoursminutesseconds",
                                 title="newest game (UTC)"),
                            _field("age_hours", "Q", format=",.2f", title="age (hours)"),
                            _field("games_last_hour", "Q", title="games in the last hour"),
                            _field("games_last_day", "Q", title="games in the last day"), _field("status", "N")],
            },
        }
        labels = {"mark": {"type": "text", "align": "left", "dx": 4, "fontSize": 11},
                  "encoding": {"y": y, "x": _field("age_hours", "Q"), "text": _field("age", "N")}}
        rule = {"data": {"values": [{"quiet": quiet_h}]},
                "mark": {"type": "rule", "strokeDash": [4, 3], "color": QUIET_COLOUR},
                "encoding": {"x": _field("quiet", "Q")}}
        return [_chart("freshness", "freshness", {"layer": [bars, labels, rule], "width": WIDTH,
                                                  "height": {"step": 26}},
                       title=f"age of the newest game (quiet after {quiet_h:g} h)")]

    # -- training signal ------------------------------------------------------------------------------
    def distribution(self, name: str, table: str, field: str, title: str, x_title: str) -> Chart:
        x = f"{field}_from" if f"{field}_from" in self.data.table(table).columns else field
        encoding = {
            "x": _field(x, "Q", title=x_title, scale={"zero": False}),
            "y": _field("share", "Q", title="share of moves", axis={"format": "%"}),
            "color": self.config_colour(),
            "tooltip": [_field("config", "N"), _field(x, "Q", title=x_title), _field("moves", "Q", format=","),
                        _field("share", "Q", format=".2%")],
        }
        mark = {"type": "line", "point": {"size": 14}, "interpolate": "step-after" if x != field else "linear"}
        return _chart(name, table, {"mark": mark, "encoding": encoding, "width": WIDTH, "height": HEIGHT},
                      title=title)

    def signal(self) -> list[Chart]:
        charts = []
        for name, table, field, title, x_title in (
            ("policy-entropy", "entropy_hist", "entropy", "policy entropy", "entropy (nats)"),
            ("policy-candidates", "candidates_hist", "candidates", "policy candidates per move", "candidates"),
            ("search-visits", "visits_hist", "visits", "search visits per move", "visits (sum over candidates)"),
            ("root-value", "root_value_hist", "root_value", "search root value", "root value"),
        ):
            if self.data.table(table).rows:
                charts.append(self.distribution(name, table, field, title, x_title))
        return charts

    # -- store health ------------------------------------------------------------------------------------
    def shards(self) -> list[Chart]:
        if not self.data.table("shard_sizes").rows:
            return []
        target = self.data.store["compaction_target_moves"]
        encoding = {
            "x": _field("moves_from", "Q", bin="binned", title="moves per shard"),
            "x2": {"field": "moves_to"},
            "y": _field("shards", "Q", title="shards", stack=True),
            "color": _field("size", "N", title="shard", scale={"domain": ["below target", "full"],
                                                                "range": [BELOW_TARGET_COLOUR, FULL_COLOUR]}),
            "tooltip": [_field("moves_from", "Q", title="from", format=","), _field("moves_to", "Q", title="to", format=","),
                        _field("size", "N"), _field("shards", "Q")],
        }
        return [_chart("shard-sizes", "shard_sizes", {"mark": {"type": "bar", "binSpacing": 1}, "encoding": encoding,
                                                      "width": WIDTH, "height": HEIGHT},
                       title=f"shard sizes (compaction target {target:,} moves)")]


def build_charts(data: ReportData) -> dict[str, list[Chart]]:
    """The charts of each report section (section name -> [(chart id, Vega-Lite spec)])."""
    c = _Charts(data)
    out: dict[str, list[Chart]] = {"health": c.shards()}
    if data.empty:
        return out
    out.update(throughput=c.throughput(), lengths=c.lengths(), outcomes=c.outcomes(), freshness=c.freshness(),
               signal=c.signal())
    return out
