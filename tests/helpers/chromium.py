"""Open a local HTML file in headless Chromium, with the network off, and inspect it.

A small DevTools-protocol client over ``--remote-debugging-pipe`` (no
websocket, no extra package): it loads the page, waits for the report's
``data-report-ready`` flag, records console errors, uncaught exceptions and
every network request the page attempts, evaluates a check script, and takes
a full-page PNG screenshot.  Used by tests/test_report_browser.py and to make
the README's screenshot::

    python tests/helpers/chromium.py REPORT.html docs/report.png [--width 1440] [--height 2200] [--scale 0.6]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["find_chromium", "PageResult", "open_page"]

# what each chart container holds once Vega has drawn it
CHECK_SCRIPT = """
(() => {
  const charts = Array.from(document.querySelectorAll("[data-chart]")).map((el) => {
    const svg = el.querySelector("svg");
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    return {id: el.id, svg: !!svg, marks: svg ? svg.querySelectorAll("path, rect, line, symbol, text").length : 0,
            width: box.width, height: box.height};
  });
  const b = document.body;
  return JSON.stringify({charts, ready: b.dataset.reportReady || null, rendered: b.dataset.chartsRendered || null,
                         expected: b.dataset.chartsExpected || null, failed: b.dataset.chartsFailed || "",
                         empty: !!document.getElementById("empty"), title: document.title,
                         text: b.innerText});
})()
"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageResult:
    """What the browser saw."""

    checks: dict[str, Any]
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # URLs the page tried to fetch (file: and data: excluded)
    screenshot: bytes | None = None


def _above(fd: int, low: int) -> int:
    import fcntl

    new = fcntl.fcntl(fd, fcntl.F_DUPFD, low)
    os.close(fd)
    return new


class _Pipe:
    """The DevTools protocol over Chromium's fds 3 (commands in) and 4 (replies out), NUL-separated JSON."""

    def __init__(self, argv: list[str]) -> None:
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()
        # the child's ends above fd 10, so moving them onto 3 and 4 never overwrites one with the other
        cmd_r, out_w = (_above(fd, 10) for fd in (cmd_r, out_w))

        def child_fds() -> None:
            os.dup2(cmd_r, 3)
            os.dup2(out_w, 4)

        # fds 3 and 4 are set up by child_fds; listing them keeps them open across exec
        self.proc = subprocess.Popen(argv, pass_fds=(3, 4), preexec_fn=child_fds,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(cmd_r)
        os.close(out_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, *, session: str | None = None,
             timeout: float = 30.0) -> dict:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _read(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from chromium")
            ready, _, _ = select.select([self._out_r], [], [], left)
            if ready:
                chunk = os.read(self._out_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium exited: " + self.stderr_tail())
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def pump(self, seconds: float) -> None:
        """Collect events for a while."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read(deadline))
        except TimeoutError:
            pass

    def stderr_tail(self) -> str:
        try:
            self.proc.kill()
            return (self.proc.communicate(timeout=5)[1] or b"").decode(errors="replace")[-2000:]
        except Exception:  # pragma: no cover - diagnostics only
            return ""

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._out_r)


def _evaluate(pipe: _Pipe, session: str, expression: str) -> Any:
    result = pipe.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
    return result.get("result", {}).get("value")


def open_page(html_path: str | os.PathLike, *, width: int = 1440, height: int = 1000, scale: float = 1.0,
              timeout: float = 60.0, screenshot: bool = True, max_height: int | None = None) -> PageResult:
    """Load ``html_path`` in headless Chromium with networking off; check it and (optionally) screenshot it."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="gamestore-chromium-") as profile:
        argv = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--remote-debugging-pipe", f"--user-data-dir={profile}", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            # no name resolves and every proxied request goes nowhere: the page gets no network at all
            "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
            "about:blank",
        ]
        pipe = _Pipe(argv)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for method in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
                pipe.send(method, session=session)
            pipe.send("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1,
                                                           "uploadThroughput": -1}, session=session)
            pipe.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": False}, session=session)
            pipe.send("Page.navigate", {"url": url}, session=session)
            deadline = time.monotonic() + timeout
            while True:
                ready = _evaluate(pipe, session, "document.readyState === 'complete' && document.body"
                                  " && document.body.dataset.reportReady === '1'")
                if ready or time.monotonic() > deadline:
                    break
                pipe.pump(0.2)
            pipe.pump(0.3)  # late console messages
            checks = json.loads(_evaluate(pipe, session, CHECK_SCRIPT))
            shot = None
            if screenshot:
                metrics = pipe.send("Page.getLayoutMetrics", session=session)
                size = metrics.get("cssContentSize") or metrics["contentSize"]
                full_h = int(size["height"]) if max_height is None else min(int(size["height"]), max_height)
                pipe.send("Emulation.setDeviceMetricsOverride",
                          {"width": width, "height": full_h, "deviceScaleFactor": scale, "mobile": False},
                          session=session)
                data = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                            "clip": {"x": 0, "y": 0, "width": width, "height": full_h,
                                                                     "scale": 1}}, session=session)["data"]
                shot = base64.b64decode(data)
        finally:
            pipe.close()
    result = PageResult(checks=checks, screenshot=shot)
    for ev in pipe.events:
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            result.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            result.console_errors.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            result.console_errors.append(params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            req_url = params.get("request", {}).get("url", "")
            if not req_url.startswith(("file:", "data:", "about:")):
                result.requests.append(req_url)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html")
    ap.add_argument("png")
    ap.add_argument("--width", type=int, default=1440)
    ap.add_argument("--height", type=int, default=None, help="cut the screenshot at this many CSS pixels")
    ap.add_argument("--scale", type=float, default=1.0, help="device scale factor (0.5 halves the image)")
    args = ap.parse_args(argv)
    result = open_page(args.html, width=args.width, scale=args.scale, max_height=args.height)
    assert result.screenshot is not None
    Path(args.png).write_bytes(result.screenshot)
    c = result.checks
    print(f"{args.png}: {len(result.screenshot):,} bytes; charts rendered {c['rendered']}/{c['expected']};"
          f" console errors {len(result.console_errors)}; network requests {len(result.requests)}")
    return 0 if not result.console_errors and not result.requests and c["rendered"] == c["expected"] else 1


if __name__ == "__main__":
    sys.exit(main())
