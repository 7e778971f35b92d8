"""The report opened in a real browser: headless Chromium, network off, every chart drawn, no console error.

Needs Debian's ``chromium`` (``.ci/run`` installs it).  The screenshots are
kept under pytest's temporary directory (``report-mixed.png``, ``report-empty.png``).
"""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

import gamestore
from gamestore.report import write_report

from helpers.chromium import find_chromium, open_page
from helpers.report_stores import AS_OF, make_empty_store, make_mixed_store

pytestmark = pytest.mark.single_backend

CHARTS = ("games-per-hour", "positions-per-hour", "games-per-hour-origin", "positions-per-hour-origin",
          "game-length", "win-rate-by-seat", "termination-reasons", "freshness", "policy-entropy",
          "policy-candidates", "search-visits", "root-value", "shard-sizes")


@pytest.fixture(scope="module", autouse=True)
def browser():
    path = find_chromium()
    if path is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run installs it)")
    return path


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory):
    return make_mixed_store(tmp_path_factory.mktemp("browser") / "mixed")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def render(store_path: Path, out: Path, **kw):
    with gamestore.open(store_path, create=False) as s:
        write_report(s, out, **kw)
    page = open_page(out)
    assert page.screenshot is not None
    out.with_suffix(".png").write_bytes(page.screenshot)
    return page


def test_mixed_store_report_renders_every_chart(tmp_path, mixed_store):
    store = mixed_store
    page = render(store, tmp_path / "report-mixed.html", as_of=AS_OF)
    c = page.checks
    assert page.console_errors == []
    assert page.requests == []  # nothing on the page reaches for the network
    assert c["ready"] == "1" and c["failed"] == ""
    assert [ch["id"] for ch in c["charts"]] == [f"chart-{n}" for n in CHARTS]
    assert c["rendered"] == c["expected"] == str(len(CHARTS))
    for chart in c["charts"]:
        assert chart["svg"] and chart["marks"] > 10 and chart["width"] > 200 and chart["height"] > 100, chart
    # what an operator reads first
    for text in ("gamestore report", str(store), "2026-03-01 12:00:00 UTC", "quiet configs", "1 of 4",
                 "Throughput", "Game length", "Outcomes", "Freshness", "Training signal", "Store health"):
        assert text in c["text"], text
    width, height = png_size(page.screenshot)
    assert width == 1440 and height > 2000


def test_empty_store_report_says_no_games_yet(tmp_path):
    store = make_empty_store(tmp_path / "empty")
    page = render(store, tmp_path / "report-empty.html")
    c = page.checks
    assert page.console_errors == [] and page.requests == []
    assert c["ready"] == "1" and c["expected"] == "0" and c["charts"] == []
    assert c["empty"] and "No games yet" in c["text"]
    width, height = png_size(page.screenshot)
    assert width == 1440 and height > 200


def test_the_check_catches_broken_charts_console_errors_and_requests(tmp_path, mixed_store):
    """The harness itself: a spec Vega rejects, a console error and a network request are all seen."""
    out = tmp_path / "broken.html"
    with gamestore.open(mixed_store, create=False) as s:
        write_report(s, out, as_of=AS_OF)
    text = out.read_text()
    assert '"mark":{"type":"line"' in text
    text = text.replace('"mark":{"type":"line"', '"mark":{"type":"no-such-mark"', 1)
    head, tail = text.rsplit("</body>", 1)
    text = head + '<script>console.error("boom"); fetch("http://example.com/x").catch(() => 0);</script></body>' + tail
    out.write_text(text)
    page = open_page(out, screenshot=False)
    assert page.checks["ready"] == "1"
    assert page.checks["failed"].startswith("chart-games-per-hour:")
    assert int(page.checks["rendered"]) == len(CHARTS) - 1
    assert "boom" in page.console_errors
    assert page.requests == ["http://example.com/x"]
