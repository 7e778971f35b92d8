"""``gamestore report``'s numbers and page, checked against the store (the browser test is test_report_browser.py)."""
from __future__ import annotations

import datetime as dt
import html
import json
import re
import shutil
import subprocess
import sys

import jsonschema
import pytest

import gamestore
from gamestore.errors import DamagedShardWarning, QueryError
from gamestore.report import collect, parse_duration, write_report

from helpers import subprocess_env
from helpers.report_stores import AS_OF, MIXED_CONFIGS, make_empty_store, make_mixed_store

pytestmark = pytest.mark.single_backend


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    path = make_mixed_store(tmp_path_factory.mktemp("report") / "mixed")
    with gamestore.open(path, create=False) as s:
        yield s


@pytest.fixture(scope="module")
def mixed_data(mixed):
    return collect(mixed, as_of=AS_OF)


def rows(data, name):
    return data.table(name).rows


def vega_lite_schema() -> dict:
    """The Vega-Lite JSON schema (Altair ships it; the Vega-Lite vl-convert bundles is the same major version)."""
    from importlib.resources import files

    return json.loads((files("altair.vegalite.v6.schema") / "vega-lite-schema.json").read_text())


def page_data(text: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    assert m
    return json.loads(m.group(1))


# ---------------------------------------------------------------------------
def test_parse_duration():
    assert parse_duration("90s") == dt.timedelta(seconds=90)
    assert parse_duration("15m") == dt.timedelta(minutes=15)
    assert parse_duration("6h") == parse_duration("6") == dt.timedelta(hours=6)
    assert parse_duration("2d") == dt.timedelta(days=2)
    assert parse_duration("1w") == dt.timedelta(days=7)
    for bad in ("", "abc", "-1h", "0h", "3 parsecs"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_game_figures_match_the_store(mixed, mixed_data):
    d = mixed_data
    assert d.games == mixed.count_games() == sum(c[2] for c in MIXED_CONFIGS)
    assert d.positions == mixed.count_moves()
    expect = {f"{b}_{p}p": n for b, p, n, _, _ in MIXED_CONFIGS}
    assert {r["config"]: r["games"] for r in rows(d, "length_summary")} == expect
    # every game falls into one throughput bucket, per config and per origin
    for name in ("throughput_config", "throughput_origin"):
        assert sum(r["games"] for r in rows(d, name)) == d.games
        assert sum(r["positions"] for r in rows(d, name)) == d.positions
    per_config = {}
    for r in rows(d, "throughput_config"):
        per_config[r["config"]] = per_config.get(r["config"], 0) + r["games"]
    assert per_config == expect
    origins = {r["origin"] for r in rows(d, "throughput_origin")}
    assert "gauntlet @ node-c" in origins and "tournament @ node-b" in origins
    # gaps are zero buckets: one row per bucket and series
    buckets = {r["time"] for r in rows(d, "throughput_config")}
    assert len(rows(d, "throughput_config")) == len(buckets) * len(expect)
    for r in rows(d, "throughput_config"):
        assert r["games_per_hour"] == pytest.approx(r["games"] * 3600 / d.bucket_seconds, abs=0.01)
    # the bucket holding the report's time is still filling: its rate is over the time elapsed
    newest = max(r["newest_game"] for r in rows(d, "freshness"))
    as_of = newest + dt.timedelta(seconds=1)
    late = collect(mixed, as_of=as_of, where="board_type = 'square8'")
    last = max(r["time"] for r in rows(late, "throughput_config"))
    elapsed = max(late.bucket_seconds / 4, (as_of - last).total_seconds())
    assert elapsed < late.bucket_seconds
    for r in rows(late, "throughput_config"):
        seconds = elapsed if r["time"] == last else late.bucket_seconds
        assert r["games_per_hour"] == pytest.approx(r["games"] * 3600 / seconds, abs=0.01)


def test_lengths_outcomes_and_terminations(mixed, mixed_data):
    d = mixed_data
    for r in rows(d, "length_summary"):
        b, p = r["config"].rsplit("_", 1)
        where = f"board_type = '{b}' AND num_players = {p[:-1]}"
        lengths = mixed.query_games(where, columns=["num_moves"]).column("num_moves").to_pylist()
        assert (r["min"], r["max"]) == (min(lengths), max(lengths))
        hist = [h for h in rows(d, "length_hist") if h["config"] == r["config"]]
        assert sum(h["games"] for h in hist) == r["games"]
        assert all(h["moves_from"] <= r["max"] and h["moves_to"] > r["min"] for h in hist)
    for name in ("seats", "terminations"):
        shares = {}
        for r in rows(d, name):
            shares[r["config"]] = shares.get(r["config"], 0) + r["share"]
        assert all(s == pytest.approx(1.0, abs=1e-3) for s in shares.values())
    wins = mixed.sql(
        "SELECT board_type || '_' || num_players || 'p', winner, count(*) FROM games GROUP BY ALL").fetchall()
    assert {(c, f"seat {w}", n) for c, w, n in wins} == {(r["config"], r["outcome"], r["games"]) for r in rows(d, "seats")}


def test_freshness_flags_the_quiet_config(mixed_data):
    fresh = {r["config"]: r for r in rows(mixed_data, "freshness")}
    assert fresh["square19_2p"]["status"] == "quiet" and fresh["square19_2p"]["age_hours"] > 24
    for config in ("square8_2p", "square8_3p", "hex8_2p"):
        assert fresh[config]["status"] == "ok" and fresh[config]["age_hours"] < 1
        assert fresh[config]["games_last_hour"] > 0
    # a longer threshold makes it ok
    assert all(r["age"] for r in fresh.values())


def test_training_signal_sample(mixed, mixed_data):
    d = mixed_data
    assert d.sample_moves == mixed.count_moves()  # the small store fits in the sample
    summary = {r["config"]: r for r in rows(d, "signal_summary")}
    assert set(summary) == {r["config"] for r in rows(d, "length_summary")}
    for r in summary.values():
        assert 0 < r["moves_with_policy"] < r["moves"]  # bookkeeping moves carry no policy
        assert 0 < r["mean_entropy"] <= 1.01 * r["mean_candidates"]
        assert 1 <= r["min_candidates"] <= r["max_candidates"] <= 16
        assert r["mean_visits"] > 0 and -1 <= r["mean_root_value"] <= 1
    # entropy of one move by hand
    move = next(m for m in mixed.get_game(mixed.query_games(limit=1, columns=["game_id"])["game_id"][0].as_py())["moves"]
                if m.get("policy"))
    import math

    probs = list(move["policy"].values()) if isinstance(move["policy"], dict) else [e[1] for e in move["policy"]]
    h = -sum(p * math.log(p) for p in probs if p > 0)
    assert 0 <= h <= math.log(len(probs)) + 1e-9
    for name in ("entropy_hist", "candidates_hist", "visits_hist", "root_value_hist"):
        per = {}
        for r in rows(d, name):
            per[r["config"]] = per.get(r["config"], 0) + r["moves"]
        assert per and all(n > 0 for n in per.values())


def test_sample_is_whole_newest_shards_within_budget(mixed):
    d = collect(mixed, as_of=AS_OF, sample_moves=3000)
    shards = mixed.sql("SELECT shard_id, sum(num_moves) AS moves, max(created_at) AS newest FROM games"
                       " GROUP BY 1 ORDER BY newest DESC").fetchall()
    # the newest shards, whole, until the budget is reached: the last one may pass it
    expect, total = 0, 0
    for _, moves, _ in shards:
        if total >= 3000:
            break
        total += moves
        expect += 1
    assert d.sample_moves == total and 0 < expect < len(shards)
    assert 0 < d.sample_games < mixed.count_games()
    assert collect(mixed, as_of=AS_OF, sample_moves=0).sample_moves == 0


def test_where_and_since_select_games(mixed):
    d = collect(mixed, as_of=AS_OF, where="board_type = 'hex8'")
    assert d.games == 10 and {r["config"] for r in rows(d, "length_summary")} == {"hex8_2p"}
    d = collect(mixed, as_of=AS_OF, since=dt.timedelta(hours=2))
    assert d.games == mixed.count_games("board_type <> 'square19'")
    # store health covers the whole store whatever the selection
    assert d.store["games"] == mixed.count_games()
    with pytest.raises(QueryError):
        collect(mixed, as_of=AS_OF, where="no_such_column = 1")


def test_store_health(mixed, mixed_data):
    st = mixed_data.store
    info = mixed.info()
    assert st["shards"] == info["shards"] > 1 and st["damaged_shards"] == []
    assert st["duplicate_copies"] == 0
    assert st["bytes_per_move"] == pytest.approx(info["bytes_per_move"])
    assert st["shards_below_target"] == info["shards"]  # every shard of the small store is below 65,536 moves
    assert st["compaction_backlog_shards"] == info["shards"]
    assert sum(r["shards"] for r in rows(mixed_data, "shard_sizes")) == info["shards"]


def test_duplicate_copies_are_counted(tmp_path):
    from gamestore.testing import synth

    path, other = tmp_path / "store", tmp_path / "other"
    games = synth.games(4, seed=9)
    with gamestore.open(path, fsync=False) as s:
        s.write_games(games)
        s.flush()
    with gamestore.open(other, fsync=False) as s:
        s.write_games(games[:2] + synth.games(1, seed=10))
        s.flush()
        (shard,) = s.catalog.shard_ids()
    # a shard holding copies of two games the store has (as an interrupted copy between nodes leaves it)
    shutil.copytree(other / "shards" / shard, path / "shards" / shard)
    with gamestore.open(path, create=False) as s:
        d = collect(s, as_of=AS_OF)
    assert d.games == 5 and d.store["shards"] == 2
    assert d.store["duplicate_copies"] == 2


def test_html_is_self_contained_and_small(mixed, tmp_path):
    out = tmp_path / "r.html"
    result = write_report(mixed, out, as_of=AS_OF)
    text = out.read_text()
    assert result.bytes == len(text.encode()) < 2 * 2**20
    assert result.charts == 13 and result.games == mixed.count_games()
    # no external resources: the markup (scripts aside) loads nothing, and no script is loaded from elsewhere
    markup = re.sub(r"(<script[^>]*>).*?</script>", r"\1</script>", text, flags=re.S)
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b[^>]*\b(src|href|data)=", markup, re.I)
    assert not re.search(r"url\(", markup.split("</style>")[0])
    assert "store <code>" + html.escape(str(mixed.path)) in text and "2026-03-01 12:00:00 UTC" in text
    payload = page_data(text)
    assert len(payload["charts"]) == 13
    schema = vega_lite_schema()
    for chart in payload["charts"].values():
        assert chart["tables"] and all(payload["tables"][t]["rows"] for t in chart["tables"])
        assert "$schema" not in chart["spec"]
        jsonschema.validate(chart["spec"], schema)  # every spec is valid Vega-Lite
    # every chart's numbers are in the page as a table
    assert text.count("<table") >= 13 and "copy as TSV" in text


def test_empty_store_page(tmp_path):
    path = make_empty_store(tmp_path / "empty")
    with gamestore.open(path, create=False) as s:
        result = write_report(s, tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text()
    assert result.games == 0 and result.charts == 0
    assert "No games yet" in text and 'data-charts-expected="0"' in text


def test_selection_without_games(mixed, tmp_path):
    result = write_report(mixed, tmp_path / "r.html", where="board_type = 'hexagonal'", as_of=AS_OF)
    text = (tmp_path / "r.html").read_text()
    assert result.games == 0 and "No games match the selection" in text
    assert result.charts == 1  # the store's shard chart still shows


def test_import_gamestore_does_not_import_plotting():
    code = ("import sys, gamestore, gamestore.report; "
            "bad = [m for m in ('altair', 'vl_convert', 'matplotlib', 'pandas') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_damaged_shard_costs_its_games_not_the_report(tmp_path):
    from gamestore.testing import synth

    path = tmp_path / "store"
    with gamestore.open(path, fsync=False) as s:
        for seed in (1, 2):
            s.write_games(synth.games(2, seed=seed))
            s.flush()
        victim = s.catalog.shard_ids()[-1]  # the newest: the training-signal sample reads it
    moves = path / "shards" / victim / "moves.arrow"
    data = bytearray(moves.read_bytes())
    for i in range(1000, len(data) - 1000, 997):
        data[i] ^= 0xFF
    moves.write_bytes(bytes(data))
    with gamestore.open(path, create=False) as s:
        result = write_report(s, tmp_path / "r.html", as_of=AS_OF)
        d = collect(s, as_of=AS_OF)
    assert result.games == 4 and result.charts == 13
    assert victim in set(d.store["damaged_shards"]) | set(d.store["quarantined_shards"]) | set(d.unreadable_shards)
    assert d.sample_games == 2  # the readable shard's games
    text = (tmp_path / "r.html").read_text()
    assert '<div class="tile bad"><div class="v">1</div><div class="k">damaged / quarantined shards' in text
    assert victim in text


def test_store_health_names_damaged_and_quarantined_shards(tmp_path):
    """Issue 14: the store-health section lists the shards found damaged (with what is wrong) and those `verify
    --repair` moved into quarantine/; the tile counts both."""
    from gamestore.ops import repair_store
    from gamestore.testing import synth

    path = tmp_path / "store"
    with gamestore.open(path, fsync=False) as s:
        for seed in (1, 2, 3):
            s.write_games(synth.games(2, seed=seed))
            s.flush()
        first, second, _ = s.catalog.shard_ids()
    (path / "shards" / first / "games.arrow").unlink()
    assert repair_store(path).moved.keys() == {first}  # moved aside into quarantine/
    moves = path / "shards" / second / "moves.arrow"
    moves.write_bytes(moves.read_bytes()[:-100])  # truncated: found by the size check of info()
    with pytest.warns(DamagedShardWarning, match=second):
        with gamestore.open(path, create=False) as s:
            write_report(s, tmp_path / "r.html", as_of=AS_OF)
            d = collect(s, as_of=AS_OF)
    assert d.store["damaged_shards"] == [second] and "size" in d.store["damage"][second]
    assert d.store["quarantined_shards"] == [first] and d.store["games_in_damaged_shards"] == 2
    text = (tmp_path / "r.html").read_text()
    assert '<div class="tile bad"><div class="v">2</div><div class="k">damaged / quarantined shards' in text
    assert f"{second}: moves.arrow" in text and first in text
