"""The HTML page of ``gamestore report``: one self-contained file.

Charts are Vega-Lite specs rendered in the browser by Vega-Embed, whose
JavaScript (Vega, Vega-Lite, Vega-Embed; bundled by ``vl-convert``) is
inlined, so the page opens with no network.  Every chart has the table of
its numbers next to it as plain HTML (readable and copyable without
JavaScript).  Once every chart has rendered, the page sets
``data-report-ready`` and ``data-charts-rendered`` on ``<body>`` (and lists
failures in ``data-charts-failed``): the browser test reads them.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import os
from pathlib import Path
from typing import Any

from ..fsutil import atomic_path
from .charts import Chart, plain
from .queries import ReportData, Table, human_age

__all__ = ["render_page", "vega_bundle", "bundle_cache_dir"]

#: Rows of a table shown in the page; larger tables say how to get the rest.
MAX_TABLE_ROWS = 500

_CSS = """
:root { --ok: #2e7d32; --warn: #e65100; --bad: #c62828; --muted: #666; --line: #e0e0e0; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #212121; background: #fafafa; }
header { background: #263238; color: #fff; padding: 18px 28px 14px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .meta { font-size: 13px; color: #cfd8dc; }
header .meta code { color: #fff; }
nav { margin-top: 10px; font-size: 13px; }
nav a { color: #b3e5fc; margin-right: 14px; text-decoration: none; }
main { padding: 8px 28px 40px; max-width: 1440px; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin: 16px 0 6px; }
.tile { background: #fff; border: 1px solid var(--line); border-left: 5px solid #90a4ae; border-radius: 4px;
        padding: 8px 14px; min-width: 150px; }
.tile .v { font-size: 20px; font-weight: 600; }
.tile .k { font-size: 12px; color: var(--muted); }
.tile.ok { border-left-color: var(--ok); } .tile.warn { border-left-color: var(--warn); }
.tile.bad { border-left-color: var(--bad); } .tile.warn .v { color: var(--warn); } .tile.bad .v { color: var(--bad); }
section { background: #fff; border: 1px solid var(--line); border-radius: 4px; margin: 18px 0; padding: 4px 20px 14px; }
section h2 { font-size: 18px; margin: 14px 0 2px; }
section p.note { margin: 2px 0 10px; font-size: 13px; color: var(--muted); max-width: 900px; }
.charts { display: flex; flex-wrap: wrap; gap: 12px 28px; }
.chart { min-height: 60px; }
details { margin-top: 10px; font-size: 13px; }
summary { cursor: pointer; color: #1565c0; }
.table-wrap { max-height: 420px; overflow: auto; border: 1px solid var(--line); margin-top: 6px; }
table { border-collapse: collapse; font-size: 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; white-space: nowrap; }
th { background: #f5f5f5; position: sticky; top: 0; }
td.n { text-align: right; }
tr.quiet td, td.quiet, tr.bad td { color: var(--warn); font-weight: 600; }
button.copy { font-size: 12px; margin: 6px 8px 0 0; }
.empty { background: #fff; border: 1px dashed #90a4ae; border-radius: 6px; padding: 40px; margin: 30px 0;
         text-align: center; }
.empty h2 { font-size: 26px; margin: 0 0 8px; }
.empty p { color: var(--muted); margin: 4px 0; }
.hint { font-size: 12px; color: var(--muted); }
"""

_SCRIPT = """
(function () {
  const body = document.body;
  const page = JSON.parse(document.getElementById("report-data").textContent);
  // tables travel as {columns, rows: [[...]]}; Vega wants one object per row
  const tables = {};
  for (const [name, t] of Object.entries(page.tables)) {
    tables[name] = t.rows.map((r) => Object.fromEntries(t.columns.map((c, i) => [c, r[i]])));
  }
  const specs = {};
  for (const [id, c] of Object.entries(page.charts)) {
    specs[id] = Object.assign({}, c.spec, {datasets: Object.fromEntries(c.tables.map((n) => [n, tables[n]]))});
  }
  const failed = [];
  window.addEventListener("error", (e) => failed.push("page: " + e.message));
  const jobs = Object.entries(specs).map(([id, spec]) =>
    vegaEmbed("#" + id, spec, {renderer: "svg", actions: false})
      .then(() => id)
      .catch((err) => { failed.push(id + ": " + err); document.getElementById(id).textContent = "chart failed: " + err; }));
  Promise.all(jobs).then(() => {
    const rendered = Object.keys(specs).filter((id) => {
      const svg = document.querySelector("#" + id + " svg");
      return svg && svg.querySelectorAll("path, rect, line, text").length > 0;
    });
    body.setAttribute("data-charts-rendered", String(rendered.length));
    body.setAttribute("data-charts-failed", failed.join(" | "));
    body.setAttribute("data-report-ready", "1");
  });
  document.querySelectorAll("button.copy").forEach((b) => b.addEventListener("click", () => {
    const rows = Array.from(document.getElementById(b.dataset.table).rows);
    const text = rows.map((r) => Array.from(r.cells).map((c) => c.textContent).join("\\t")).join("\\n");
    const done = () => { b.textContent = "copied"; setTimeout(() => { b.textContent = "copy as TSV"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done); return; }
    const area = document.createElement("textarea");
    area.value = text; document.body.appendChild(area); area.select(); document.execCommand("copy"); area.remove(); done();
  }));
})();
"""


def bundle_cache_dir() -> Path:
    """Where the JavaScript bundle is cached: ``$GAMESTORE_CACHE_DIR``, else ``$XDG_CACHE_HOME/gamestore``."""
    explicit = os.environ.get("GAMESTORE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gamestore"


def vega_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed as one script (built by vl-convert once, then read from the cache)."""
    from importlib.metadata import version

    import vl_convert

    path = bundle_cache_dir() / f"vega-embed-bundle-{version('vl-convert-python')}.js"
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        pass
    # the default snippet makes vegaEmbed, vegaLite and vega globals (the stub wrongly requires a snippet)
    text = vl_convert.javascript_bundle()  # type: ignore[call-arg]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, fsync=False) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError:
        pass  # a read-only home: the bundle is rebuilt next time
    return text


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, _dt.datetime):
        return f"<td>{_esc(value.isoformat(sep=' ', timespec='seconds'))}</td>"
    value = plain(value)
    if isinstance(value, (int, float)):
        return f'<td class="n">{value}</td>'
    return f"<td>{_esc(value)}</td>"


class _Page:
    def __init__(self, data: ReportData) -> None:
        self.data = data
        self.parts: list[str] = []
        self.specs: dict[str, Any] = {}
        self.datasets: dict[str, Any] = {}
        self.tables = 0

    def add(self, text: str) -> None:
        self.parts.append(text)

    def table(self, title: str, table: Table, *, row_class: str | None = None, open_: bool = False) -> None:
        """The numbers behind a chart: a collapsible, copyable HTML table (``open_``: shown unfolded)."""
        self.tables += 1
        tid = f"table-{self.tables}"
        shown = table.rows[:MAX_TABLE_ROWS]
        more = (f' <span class="hint">(first {MAX_TABLE_ROWS:,} of {len(table):,} rows; all of them:'
                f" <code>gamestore sql</code>)</span>") if len(table) > MAX_TABLE_ROWS else ""
        head = "".join(f"<th>{_esc(c)}</th>" for c in table.columns)
        body = []
        for row in shown:
            cls = f' class="{_esc(row.get(row_class))}"' if row_class else ""
            body.append(f"<tr{cls}>" + "".join(_cell(row.get(c)) for c in table.columns) + "</tr>")
        self.add(
            f"<details{' open' if open_ else ''}><summary>{_esc(title)}: numbers ({len(table):,} rows)</summary>{more}"
            f'<div><button class="copy" data-table="{tid}" type="button">copy as TSV</button></div>'
            f'<div class="table-wrap"><table id="{tid}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div></details>"
        )

    def charts(self, charts: list[Chart]) -> None:
        self.add('<div class="charts">')
        for cid, spec, tables in charts:
            self.specs[f"chart-{cid}"] = {"spec": spec, "tables": list(tables)}
            for name in tables:
                t = self.data.table(name)
                self.datasets[name] = {"columns": t.columns, "rows": [[plain(r.get(c)) for c in t.columns] for r in t.rows]}
            self.add(f'<div class="chart" id="chart-{_esc(cid)}" data-chart="{_esc(cid)}"></div>')
        self.add("</div>")

    def section(self, sid: str, title: str, note: str) -> None:
        self.add(f'<section id="{sid}"><h2>{_esc(title)}</h2><p class="note">{note}</p>')


def _tile(key: str, value: str, level: str = "") -> str:
    return f'<div class="tile {level}"><div class="v">{_esc(value)}</div><div class="k">{_esc(key)}</div></div>'


def _tiles(data: ReportData) -> str:
    st = data.store
    fresh = data.table("freshness").rows
    quiet = [r for r in fresh if r["status"] != "ok"]
    newest = min((r["age_hours"] for r in fresh if r["age_hours"] is not None), default=None)
    bpm = st.get("bytes_per_move")
    damaged = len(set(st.get("damaged_shards", [])) | set(st.get("quarantined_shards", [])) | set(data.unreadable_shards))
    tiles = [
        _tile("games" + (" selected" if data.where or data.since else ""), f"{data.games:,}"),
        _tile("positions (moves)", f"{data.positions:,}"),
        _tile("configs", str(len(fresh))),
        _tile("newest game", human_age(newest) + " ago" if newest is not None else "n/a", "ok" if fresh and not quiet else ""),
        _tile("quiet configs", f"{len(quiet)} of {len(fresh)}", "warn" if quiet else "ok"),
        _tile("shards", f"{st.get('shards', 0):,}"),
        _tile("bytes per move", f"{bpm:.1f}" if bpm else "n/a"),
        _tile("damaged / quarantined shards", str(damaged), "bad" if damaged else "ok"),
        _tile("duplicate copies", f"{st.get('duplicate_copies', 0):,}", "warn" if st.get("duplicate_copies") else "ok"),
        _tile("compaction backlog (shards)", f"{st.get('compaction_backlog_shards', 0):,}"),
    ]
    return '<div class="tiles">' + "".join(tiles) + "</div>"


def _selection(data: ReportData) -> str:
    parts = []
    if data.where:
        parts.append(f"where <code>{_esc(data.where)}</code>")
    if data.since:
        parts.append(f"created in the last {_esc(human_age(data.since.total_seconds() / 3600))}")
    return "; ".join(parts) if parts else "all games"


def _health(page: _Page, data: ReportData, charts: list[Chart]) -> None:
    st = data.store
    page.section("health", "Store health",
                 "The whole store, whatever the selection: shard sizes against the compaction target, bytes per move,"
                 " duplicate copies of a game (readers use the first; <code>gamestore compact</code> drops the rest),"
                 " damaged and quarantined shards as the store knows them, and any shard the report could not read"
                 " (<code>gamestore verify</code> checks every checksum and names the damage).")
    page.charts(charts)
    figures = Table(["figure", "value"], [
        {"figure": "games", "value": st.get("games")}, {"figure": "moves", "value": st.get("moves")},
        {"figure": "shards", "value": st.get("shards")}, {"figure": "bytes in shards", "value": st.get("shard_bytes")},
        {"figure": "bytes on disk", "value": st.get("bytes_on_disk")},
        {"figure": "bytes per move", "value": round(st["bytes_per_move"], 2) if st.get("bytes_per_move") else None},
        {"figure": "duplicate copies", "value": st.get("duplicate_copies")},
        {"figure": "compaction target (moves per shard)", "value": st.get("compaction_target_moves")},
        {"figure": "shards below the target", "value": st.get("shards_below_target")},
        {"figure": "compaction backlog (shards)", "value": st.get("compaction_backlog_shards")},
        {"figure": "compaction backlog (moves)", "value": st.get("compaction_backlog_moves")},
        {"figure": "damaged shards (games missing until `gamestore verify --repair`)",
         "value": "; ".join(f"{sid}: {st.get('damage', {}).get(sid, 'unreadable')}"
                            for sid in st.get("damaged_shards", [])) or "none"},
        {"figure": "games known lost with the damaged shards", "value": st.get("games_in_damaged_shards", 0)},
        {"figure": "quarantined shards (moved into quarantine/ by verify --repair)",
         "value": ", ".join(st.get("quarantined_shards", [])) or "none"},
        {"figure": "shards unreadable while reporting",
         "value": "; ".join(f"{sid}: {why}" for sid, why in sorted(data.unreadable_shards.items())) or "none"},
    ])
    page.table("store figures", figures)
    if data.table("shard_sizes").rows:
        page.table("shard sizes", data.table("shard_sizes"))
    if data.table("shards").rows:
        page.table("shards", data.table("shards"))
    page.add("</section>")


def render_page(data: ReportData, charts: dict[str, list[Chart]], *, bundle: str) -> str:
    """The report as one HTML document."""
    page = _Page(data)
    when = data.generated_at.isoformat(sep=" ", timespec="seconds")
    title = f"gamestore report: {data.store_path}"
    sections = [("throughput", "Throughput"), ("lengths", "Game length"), ("outcomes", "Outcomes"),
                ("freshness", "Freshness"), ("signal", "Training signal"), ("health", "Store health")]
    nav = "".join(f'<a href="#{s}">{t}</a>' for s, t in sections if not data.empty or s == "health")
    page.add(
        f'<header><h1>gamestore report</h1><div class="meta">store <code>{_esc(data.store_path)}</code>'
        f" &middot; generated {_esc(when)} UTC &middot; {_selection(data)}</div><nav>{nav}</nav></header><main>"
    )
    page.add(_tiles(data))
    if data.empty:
        what = "No games yet" if data.store_games == 0 else "No games match the selection"
        hint = ("Write games (<code>store.write_games</code>, <code>gamestore demo</code>) or import them"
                " (<code>gamestore import-sqlite</code>), then run the report again." if data.store_games == 0 else
                f"The store holds {data.store_games:,} games; none is {_selection(data)}.")
        page.add(f'<div class="empty" id="empty"><h2>{what}</h2><p>{hint}</p></div>')
    else:
        _game_sections(page, data, charts)
    _health(page, data, charts.get("health", []))
    page.add("</main>")
    payload = {"charts": page.specs, "tables": page.datasets}
    # JSON inside <script>: escaping "<" keeps "</script>" or "<!--" in a value from ending the element
    specs = json.dumps(payload, separators=(",", ":"), default=plain, allow_nan=False).replace("<", "\\u003c")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>"
        f'<body data-charts-expected="{len(page.specs)}">{"".join(page.parts)}'
        f'<script type="application/json" id="report-data">{specs}</script>'
        f"<script>{bundle}</script><script>{_SCRIPT}</script></body></html>\n"
    )


def _game_sections(page: _Page, data: ReportData, charts: dict[str, list[Chart]]) -> None:
    page.section("throughput", "Throughput",
                 f"Games and positions (moves) per hour, per config (board type and players) and per origin"
                 f" (<code>source</code>, and the node from <code>metadata.node_id</code> when recorded), in"
                 f" {data.bucket_label} of the creation time (UTC)."
                 + (f" {data.undated_games:,} games without a creation time are left out." if data.undated_games else ""))
    page.charts(charts.get("throughput", []))
    page.table("per config", data.table("throughput_config"))
    page.table("per source @ node", data.table("throughput_origin"))
    page.add("</section>")

    page.section("lengths", "Game length", "Moves per game, per config.")
    page.charts(charts.get("lengths", []))
    page.table("length summary", data.table("length_summary"), open_=True)
    page.table("length histogram", data.table("length_hist"))
    page.add("</section>")

    page.section("outcomes", "Outcomes",
                 "Share of games won by each seat (player number) and how games ended, per config.")
    page.charts(charts.get("outcomes", []))
    page.table("win rate by seat", data.table("seats"))
    page.table("termination reasons", data.table("terminations"))
    page.add("</section>")

    quiet_h = data.quiet_after.total_seconds() / 3600
    page.section("freshness", "Freshness",
                 f"Time since the newest game of each config, at the time of the report; a config is"
                 f" <b style=\"color:var(--warn)\">quiet</b> when its newest game is older than {quiet_h:g} h"
                 f" (<code>--quiet-after</code>).")
    page.charts(charts.get("freshness", []))
    page.table("freshness", data.table("freshness"), row_class="status", open_=True)
    page.add("</section>")

    page.section("signal", "Training signal",
                 f"Policy targets and search statistics of the newest games of each config: {data.sample_moves:,}"
                 f" moves of {data.sample_games:,} games (<code>--sample-moves</code>). Entropy in nats of the"
                 f" policy target; candidates: entries in the policy; visits: search visits summed over candidates;"
                 f" root value: the search's value of the position.")
    page.charts(charts.get("signal", []))
    page.table("summary per config", data.table("signal_summary"), open_=True)
    for name, title in (("entropy_hist", "policy entropy"), ("candidates_hist", "candidates"),
                        ("visits_hist", "search visits"), ("root_value_hist", "root value")):
        page.table(title, data.table(name))
    page.add("</section>")
