"""The charts of ``gamestore report``: Vega-Lite specs built with Altair.

Each function takes the :class:`~gamestore.report.queries.ReportData` and
returns ``(chart id, spec)`` pairs.  Data is attached as a named dataset
after Altair has built (and validated) the spec, which keeps building a
spec independent of the number of rows.  Importing this module imports
Altair; :mod:`gamestore` never imports it.
"""
from __future__ import annotations

import datetime as _dt
import decimal
import math
from typing import Any

import altair as alt

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


def _spec(name: str, chart: alt.TopLevelMixin, *tables: str) -> Chart:
    spec = chart.to_dict()
    spec.pop("$schema", None)  # a URL: nothing on the page may point at the network
    return name, spec, tables


def _style(chart: Any) -> Any:
    return (
        chart.configure(font="system-ui, -apple-system, 'Segoe UI', sans-serif")
        .configure_view(stroke=None)
        .configure_axis(labelFontSize=11, titleFontSize=12, gridColor="#e8e8e8", domainColor="#888")
        .configure_legend(labelFontSize=11, titleFontSize=12, labelLimit=220)
        .configure_title(fontSize=14, anchor="start", fontWeight="bold")
        .configure_header(labelFontSize=12, labelFontWeight="bold", titleFontSize=0)
    )


class _Charts:
    def __init__(self, data: ReportData) -> None:
        self.data = data
        configs = sorted({r["config"] for r in data.table("length_summary").rows})
        self.config_scale = alt.Scale(domain=configs, scheme="tableau10" if len(configs) <= 10 else "category20")

    def config_colour(self, title: str = "config") -> alt.Color:
        return alt.Color("config:N", scale=self.config_scale, title=title)

    # -- throughput -------------------------------------------------------------------
    def rate(self, name: str, table: str, field: str, key: str, title: str, colour: alt.Color, *,
             stacked: bool = False) -> Chart:
        """``field`` over time, a line per ``key`` (or stacked areas summing to the total)."""
        base = alt.Chart(alt.Data(name=table), title=f"{title} ({self.data.bucket_label}, UTC)")
        dense = len(self.data.table(table)) > 60 * len({r[key] for r in self.data.table(table).rows})
        mark = (base.mark_area(interpolate="step-after", opacity=0.85) if stacked else
                base.mark_line(point=False if dense else alt.OverlayMarkDef(size=16), strokeWidth=1.6))
        chart = mark.encode(
            x=alt.X("time:T", title=None, scale=alt.Scale(type="utc"), axis=alt.Axis(format="%b %d %H:%M")),
            y=alt.Y(f"{field}:Q", title=title, stack=True if stacked else None),
            color=colour,
            tooltip=[alt.Tooltip("time:T", timeUnit="utcyearmonthdatehoursminutes", title="bucket start (UTC)"),
                     alt.Tooltip(f"{key}:N"), alt.Tooltip("games:Q", format=","),
                     alt.Tooltip("positions:Q", format=","), alt.Tooltip(f"{field}:Q", format=",")],
        ).properties(width=WIDTH, height=HEIGHT)
        return _spec(name, _style(chart), table)

    def throughput(self) -> list[Chart]:
        origin_colour = alt.Color("origin:N", title="source @ node", scale=alt.Scale(scheme="tableau10"))
        return [
            self.rate("games-per-hour", "throughput_config", "games_per_hour", "config", "games per hour",
                      self.config_colour()),
            self.rate("positions-per-hour", "throughput_config", "positions_per_hour", "config",
                      "positions per hour", self.config_colour()),
            self.rate("games-per-hour-origin", "throughput_origin", "games_per_hour", "origin",
                      "games per hour by source @ node", origin_colour, stacked=True),
            self.rate("positions-per-hour-origin", "throughput_origin", "positions_per_hour", "origin",
                      "positions per hour by source @ node", origin_colour, stacked=True),
        ]

    # -- game lengths and outcomes -----------------------------------------------------------
    def lengths(self) -> list[Chart]:
        n = len(self.data.table("length_summary"))
        chart = alt.Chart(alt.Data(name="length_hist")).mark_bar(binSpacing=0).encode(
            x=alt.X("moves_from:Q", bin="binned", title="moves per game", scale=alt.Scale(zero=False)),
            x2="moves_to:Q",
            y=alt.Y("games:Q", title="games"),
            color=alt.Color("config:N", scale=self.config_scale, legend=None),
            tooltip=["config:N", alt.Tooltip("moves_from:Q", title="from"), alt.Tooltip("moves_to:Q", title="to"),
                     alt.Tooltip("games:Q", format=","), alt.Tooltip("share:Q", format=".1%")],
        ).properties(width=270, height=140).facet(
            facet=alt.Facet("config:N", title=None), columns=min(3, max(1, n)),
        ).resolve_scale(x="independent", y="independent").properties(title="game length per config")
        return [_spec("game-length", _style(chart), "length_hist")]

    def shares(self, name: str, table: str, field: str, title: str, scheme: Any) -> Chart:
        chart = alt.Chart(alt.Data(name=table), title=title).mark_bar().encode(
            y=alt.Y("config:N", title=None, sort="ascending"),
            x=alt.X("share:Q", title="share of games", stack="normalize", axis=alt.Axis(format="%")),
            color=alt.Color(f"{field}:N", title=field.replace("_", " "), scale=alt.Scale(scheme=scheme)),
            order=alt.Order(f"{field}:N"),
            tooltip=["config:N", f"{field}:N", alt.Tooltip("games:Q", format=","),
                     alt.Tooltip("share:Q", format=".1%")],
        ).properties(width=WIDTH, height=alt.Step(26))
        return _spec(name, _style(chart), table)

    def outcomes(self) -> list[Chart]:
        return [
            self.shares("win-rate-by-seat", "seats", "outcome", "win rate by seat", "set2"),
            self.shares("termination-reasons", "terminations", "termination_reason", "termination reasons", "tableau20"),
        ]

    # -- freshness ----------------------------------------------------------------------------------
    def freshness(self) -> list[Chart]:
        quiet_h = self.data.quiet_after.total_seconds() / 3600.0
        status = alt.Color(
            "status:N", title="status",
            scale=alt.Scale(domain=["ok", "quiet", "no time"], range=[OK_COLOUR, QUIET_COLOUR, NO_TIME_COLOUR]),
        )
        base = alt.Chart(alt.Data(name="freshness"), title=f"age of the newest game (quiet after {quiet_h:g} h)")
        bars = base.mark_bar().encode(
            y=alt.Y("config:N", title=None, sort=alt.SortField("age_hours", order="descending")),
            x=alt.X("age_hours:Q", title="hours since the newest game"),
            color=status,
            tooltip=["config:N", alt.Tooltip("newest_game:T", timeUnit="utcyearmonthdatehoursminutesseconds",
                                             title="newest game (UTC)"),
                     alt.Tooltip("age_hours:Q", format=",.2f", title="age (hours)"),
                     alt.Tooltip("games_last_hour:Q", title="games in the last hour"),
                     alt.Tooltip("games_last_day:Q", title="games in the last day"), "status:N"],
        )
        labels = base.mark_text(align="left", dx=4, fontSize=11).encode(
            y=alt.Y("config:N", sort=alt.SortField("age_hours", order="descending")),
            x="age_hours:Q",
            text="age:N",
        )
        rule = alt.Chart(alt.Data(values=[{"quiet": quiet_h}])).mark_rule(strokeDash=[4, 3], color=QUIET_COLOUR).encode(
            x="quiet:Q")
        chart = alt.layer(bars, labels, rule).properties(width=WIDTH, height=alt.Step(26))
        return [_spec("freshness", _style(chart), "freshness")]

    # -- training signal ------------------------------------------------------------------------------
    def distribution(self, name: str, table: str, field: str, title: str, x_title: str) -> Chart:
        x = f"{field}_from" if f"{field}_from" in self.data.table(table).columns else field
        chart = alt.Chart(alt.Data(name=table), title=title).mark_line(
            point=alt.OverlayMarkDef(size=14), interpolate="step-after" if x != field else "linear",
        ).encode(
            x=alt.X(f"{x}:Q", title=x_title, scale=alt.Scale(zero=False)),
            y=alt.Y("share:Q", title="share of moves", axis=alt.Axis(format="%")),
            color=self.config_colour(),
            tooltip=["config:N", alt.Tooltip(f"{x}:Q", title=x_title), alt.Tooltip("moves:Q", format=","),
                     alt.Tooltip("share:Q", format=".2%")],
        ).properties(width=WIDTH, height=HEIGHT)
        return _spec(name, _style(chart), table)

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
        chart = alt.Chart(alt.Data(name="shard_sizes"), title=f"shard sizes (compaction target {target:,} moves)")
        chart = chart.mark_bar(binSpacing=1).encode(
            x=alt.X("moves_from:Q", bin="binned", title="moves per shard"),
            x2="moves_to:Q",
            y=alt.Y("shards:Q", title="shards", stack=True),
            color=alt.Color("size:N", title="shard",
                            scale=alt.Scale(domain=["below target", "full"], range=[BELOW_TARGET_COLOUR, FULL_COLOUR])),
            tooltip=[alt.Tooltip("moves_from:Q", title="from", format=","), alt.Tooltip("moves_to:Q", title="to", format=","),
                     "size:N", "shards:Q"],
        ).properties(width=WIDTH, height=HEIGHT)
        return [_spec("shard-sizes", _style(chart), "shard_sizes")]


def build_charts(data: ReportData) -> dict[str, list[Chart]]:
    """The charts of each report section (section name -> [(chart id, Vega-Lite spec)])."""
    c = _Charts(data)
    out: dict[str, list[Chart]] = {"health": c.shards()}
    if data.empty:
        return out
    out.update(throughput=c.throughput(), lengths=c.lengths(), outcomes=c.outcomes(), freshness=c.freshness(),
               signal=c.signal())
    return out
