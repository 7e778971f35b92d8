"""Progress and results of the CLI (gamestore.cli.progress): bars on a terminal, plain lines otherwise, -q, --json."""
from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

import gamestore
from gamestore.cli.progress import Output
from gamestore.testing import synth

from helpers import subprocess_env
from helpers.cli import run

pytestmark = pytest.mark.single_backend


@pytest.fixture()
def store(cli_store):
    """The CLI tests' store: 12 games in 6 shards."""
    return cli_store


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- the utility ------------------------------------------------------------------------------
def test_plain_lines_when_not_a_terminal():
    err = io.StringIO()
    out = Output(stderr=err, interval=0.0)
    assert list(out.progress(range(3), desc="verify", unit="shard")) == [0, 1, 2]
    lines = err.getvalue().splitlines()
    assert lines[:3] == [line for line in lines[:3] if line.startswith("verify: ")]
    assert lines[0].startswith("verify: 1/3 shards (33%), ")
    assert lines[-1].startswith("verify: 3/3 shards (100%) done in ")
    assert "\r" not in err.getvalue()


def test_plain_lines_are_rate_limited():
    err = io.StringIO()
    out = Output(stderr=err, interval=3600.0)
    list(out.progress(range(1000), desc="export", unit="game"))
    assert err.getvalue().splitlines() == [err.getvalue().splitlines()[-1]]  # only the closing line
    assert "1,000/1,000 games (100%) done" in err.getvalue()


def test_bar_on_a_terminal():
    err = Tty()
    out = Output(stderr=err)
    list(out.progress(range(50), desc="compact", unit="group"))
    text = err.getvalue()
    assert "\r" in text and "compact:" in text and "/50 [" in text and "group/s" in text


def test_quiet_shows_nothing_but_warnings():
    for err in (io.StringIO(), Tty()):
        out = Output(quiet=True, stderr=err, interval=0.0)
        list(out.progress(range(5), desc="merge"))
        with out.steps("report", 2) as steps:
            steps.step("one")
        with out.counter("import", total=3) as c:
            c.update(3)
        out.info("status")
        assert err.getvalue() == ""
        out.warn("careful")
        assert err.getvalue() == "careful\n"


def test_steps_and_counters():
    err = io.StringIO()
    out = Output(stderr=err, interval=3600.0)
    with out.steps("report", 2) as steps:
        steps.step("queries")
        steps.step("charts")
    with out.counter("import-sqlite (ray)", unit="task") as c:
        c.advance_to(3, 10)
        c.advance_to(10, 10)
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("report: queries (") and lines[1].startswith("report: charts (")
    assert lines[2].startswith("report: 2/2 steps (100%) done in ")
    assert lines[3].startswith("import-sqlite (ray): 10/10 tasks (100%) done in ")
    factory = Output(stderr=err).tracker("game")
    counter = factory(total=4, desc="import")
    counter.update(4)
    counter.close()
    assert err.getvalue().splitlines()[-1].startswith("import: 4/4 games (100%) done")


def test_result_text_or_json():
    stdout = io.StringIO()
    Output(stdout=stdout).result({"games": 3}, ["3 games", "ok"])
    assert stdout.getvalue() == "3 games\nok\n"
    stdout = io.StringIO()
    Output(stdout=stdout, json_output=True).result({"games": 3}, ["3 games", "ok"])
    assert json.loads(stdout.getvalue()) == {"games": 3}


# -- the commands --------------------------------------------------------------------------------
def test_commands_print_plain_progress_lines_to_stderr(capsys, store, tmp_path):
    code, out, err = run(capsys, "verify", store)
    assert code == 0 and out.splitlines()[-1] == "OK"
    assert "verify: 6/6 shards (100%) done in" in err
    code, out, err = run(capsys, "compact", store, "--target-moves", "100000")
    assert code == 0 and "rewrote 6 shards into 1" in out and "compact: 1/1 groups (100%) done" in err
    code, out, err = run(capsys, "report", store, "-o", tmp_path / "r.html")
    assert code == 0 and "wrote " in out and "12 games" in out
    assert "report: training signal (" in err and "report: 8 steps done in" in err


def test_quiet_commands_write_nothing_to_stderr(capsys, store, tmp_path):
    for argv in (("verify", store), ("reindex", store), ("compact", store, "--dry-run"),
                 ("report", store, "-o", tmp_path / "r.html"),
                 ("export", store, "--format", "parquet", tmp_path / "exp"),
                 ("merge", store, tmp_path / "merged"), ("prune", store, "--where", "board_type = 'hex8'")):
        code, out, err = run(capsys, *argv, "-q")
        assert code == 0 and err == "", argv
        assert out.strip(), argv


def test_json_outputs(capsys, store, tmp_path):
    def as_json(*argv):
        code, out, err = run(capsys, *argv, "--json")
        assert code == 0, err
        return json.loads(out)  # stdout holds exactly one JSON document

    assert as_json("info", store)["games"] == 12
    v = as_json("verify", store)
    assert v["ok"] is True and v["shards_checked"] == 6 and v["games"] == 12
    assert as_json("reindex", store) == {"games": 12, "damaged_shards": []}
    c = as_json("compact", store, "--dry-run")
    assert c["dry_run"] is True and c["shards_before"] == 6 and c["games"] == 12
    m = as_json("merge", store, tmp_path / "merged")
    assert m["games_added"] == 12
    e = as_json("export", store, "--format", "parquet", tmp_path / "exp")
    assert e["games"] == 12 and len(e["files"]) == 2
    r = as_json("report", store, "-o", tmp_path / "r.html", "--since", "3650d")
    assert r["games"] == 12 and r["charts"] == 13 and r["bytes"] == (tmp_path / "r.html").stat().st_size
    p = as_json("prune", store, "--where", "board_type = 'hex8'")
    assert p["games_removed"] == 4
    code, _, err = run(capsys, "export", store, "--format", "jsonl", "-", "--json")
    assert code == 2 and "--json" in err


def test_import_sqlite_json_and_progress(capsys, tmp_path, ringrift_dbs):
    dbs = ringrift_dbs
    src = str(dbs["ringrift_v18_history"])
    code, out, err = run(capsys, "import-sqlite", src, tmp_path / "store", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["sources"][0]["games_written"] == 2 and summary["sources"][0]["moves_written"] == 248
    assert "import: 2/2 games (100%) done in" in err
    code, out, err = run(capsys, "export-sqlite", tmp_path / "store", tmp_path / "out.db", "--json", "-q")
    assert code == 0 and err == "" and json.loads(out)["games"] == 2


def test_report_errors(capsys, store, tmp_path):
    code, _, err = run(capsys, "report", store, "--since", "soon")
    assert code == 2 and "not a duration" in err
    code, _, err = run(capsys, "report", store, "--where", "1=1) UNION SELECT 1 --")
    assert code == 2 and "error" in err
    code, _, err = run(capsys, "report", tmp_path / "missing")
    assert code == 2 and "no gamestore" in err


def test_bar_on_a_real_terminal(store):
    """`gamestore verify` with stderr on a pseudo-terminal draws a tqdm bar (carriage returns), stdout stays clean."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0x0: no room for a bar
    env = subprocess_env()
    proc = subprocess.Popen([sys.executable, "-m", "gamestore.cli", "verify", str(store)], stdout=subprocess.PIPE,
                            stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=60)
    os.close(master)
    tty_text = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0 and out.decode().splitlines()[-1] == "OK"
    assert "\r" in tty_text and "verify" in tty_text and "shard" in tty_text
    assert "done in" not in tty_text  # the plain lines are for logs, not terminals


def test_demo_runs_end_now_so_the_report_shows_them_fresh(capsys, tmp_path):
    from gamestore.report import collect

    code, out, err = run(capsys, "demo", tmp_path / "demo", "--games", "10", "-q")
    assert code == 0 and "wrote 10 synthetic self-play games" in out and err == ""
    with gamestore.open(tmp_path / "demo", create=False) as s:
        fresh = collect(s, sample_moves=0).table("freshness").rows
    assert len(fresh) == 6 and all(r["status"] == "ok" for r in fresh), fresh


def test_compact_watch_prints_json_lines(tmp_path):
    """`compact --watch --json`: one JSON line per round that did something, then one when stopped; -q: no status."""
    store = tmp_path / "store"
    with gamestore.open(store, fsync=False) as s:
        for seed in range(8):
            s.write_games(synth.games(2, seed=seed))
            s.flush()
    env = subprocess_env()
    proc = subprocess.Popen([sys.executable, "-m", "gamestore.cli", "compact", str(store), "--watch", "--interval",
                             "0.2", "--fanin", "4", "--retain", "0", "--json", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    deadline = time.monotonic() + 120
    while len([p for p in (store / "shards").iterdir() if not p.name.startswith(".")]) > 2:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and err == ""
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["stopped"]["games"] == 16 and events[-1]["stopped"]["shards"] <= 2
    rounds = [e["round"] for e in events[:-1]]
    assert rounds and sum(r["shards_merged"] for r in rounds) >= 6
