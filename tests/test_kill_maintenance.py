"""Kill tests of compact, prune, merge and tiered compaction at every phase (issue 9, must-have 3 and goal).

Each job runs in a child process that ends itself (``os._exit``, as abrupt
as a SIGKILL) at one named fault point (gamestore/faults.py):
``GAMESTORE_FAULT=<point>@<n>`` kills it the n-th time it reaches the point.
A traced run (``GAMESTORE_FAULT_TRACE``) first lists every point the job
reaches, so the matrix is every phase of the job, not a guessed list.
After each kill, on a fresh handle and on a handle that was open during the
job: every view and reader shows each game exactly once with the content it
showed before (tests/helpers/exactly_once.py), no committed game is lost
(prune: a game to remove is either whole or gone); then the job is run
again and must converge to the state of an uninterrupted run, with
``verify`` clean, no replaced shard and an empty ``trash/``.

The default run kills each job at a representative subset of points; the
full matrix (every point, every occurrence) runs under ``-m slow`` and
prints the tally (kill points / games lost / views double counting).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import traceback
from collections import Counter
from pathlib import Path

import pytest

import gamestore
from gamestore.faults import FAULT_ENV, FAULT_EXIT_CODE, TRACE_ENV
from gamestore.ops import verify_store
from gamestore.records import normalize_game
from gamestore.testing import synth

from helpers import TESTS, subprocess_env
from helpers.dup_stores import build_dup_store, second_copy, short_games
from helpers.exactly_once import Shown, check_once, check_store
from helpers.maintenance_job import run as run_job

pytestmark = pytest.mark.single_backend

JOB_SCRIPT = TESTS / "helpers" / "maintenance_job.py"
TIER_POLICY = {"fanin": 2, "base_moves": 64, "max_inputs": 2, "retain_seconds": 0}
MAX_MOVES = 24  # short games: the kills test the jobs' phases, not the codec
#: The default run's kill points per job (the issue's case first: compact killed after trashing one old shard).
DEFAULT_POINTS = {
    "compact": ["trash.moved@1", "shard.committed@1", "compact.group_done@1"],
    "prune": ["shard.committed@2", "trash.moved@1"],
    "merge": ["shard.copied@1", "merge.flushed@1"],
    "tier": ["tier.merged@1", "trash.moved@1"],
}
TALLY: Counter = Counter()


class Case:
    """A job's template store (built once) and what every reader must show before, during and after it."""

    def __init__(self, job: str, root: Path) -> None:
        self.job, self.root = job, root
        self.template = root / "template"
        self.maybe_gone: set[str] = set()
        store = self.template / "store"
        if job == "merge":
            self._build_merge()
        else:
            self.before = build_dup_store(store, max_moves=MAX_MOVES)
            self.after = self.before
        if job == "compact":
            with gamestore.open(store, create=False) as s:
                self.args = {"target_moves": 2 * s.sql("SELECT max(num_moves) FROM shards").fetchall()[0][0]}
        elif job == "prune":
            self.args = {"where": "winner = 1"}
            with gamestore.open(store, create=False) as s:
                self.maybe_gone = {r[0] for r in s.sql("SELECT game_id FROM games WHERE winner = 1").fetchall()}
            assert 0 < len(self.maybe_gone) < len(self.before.moves)
            self.after = self.before.without(self.maybe_gone)
        elif job == "tier":
            self.args = {"policy": TIER_POLICY}

    def _build_merge(self) -> None:
        """Two sources (the first with ids committed twice, the second overlapping it) into a non-empty store."""
        src1 = build_dup_store(self.template / "src1", seed=5, max_moves=MAX_MOVES)
        ids1 = sorted(src1.records)
        extra = short_games(4, seed=6, max_moves=MAX_MOVES)
        gamestore.open(self.template / "src2", create=True, profile="ringrift", vectors=synth.VECTORS).close()
        with gamestore.open(self.template / "src2") as s:
            s.write_games([second_copy(src1.records[ids1[0]]), extra[0], extra[1]])
            s.flush()
            s.write_games([extra[2], second_copy(src1.records[ids1[5]]), extra[3]])
        own = short_games(3, seed=7, max_moves=MAX_MOVES)
        gamestore.open(self.template / "store", create=True, profile="ringrift", vectors=synth.VECTORS).close()
        with gamestore.open(self.template / "store") as s:
            s.write_games(own + [second_copy(src1.records[ids1[2]])])
        vectors = synth.VECTORS
        dest = {g["game_id"]: normalize_game(g, vectors=vectors) for g in own}
        dest[ids1[2]] = normalize_game(second_copy(src1.records[ids1[2]]), vectors=vectors)
        final = dict(src1.records)
        final.update({g["game_id"]: normalize_game(g, vectors=vectors) for g in extra})
        final.update(dest)  # the destination's copies stay; then the first source wins
        focus = src1.focus | {ids1[0], ids1[2], ids1[5], own[0]["game_id"]}
        self.before = Shown(**{**Shown.of(dest).__dict__, "focus": focus})
        self.after = Shown(**{**Shown.of(final).__dict__, "focus": focus})
        self.maybe_gone = set(final) - set(dest)
        self.args = {"target_moves": 150}

    def job_args(self, work: Path) -> dict:
        args = dict(self.args, store=str(work / "store"))
        if self.job == "merge":
            args["sources"] = [str(work / "src1"), str(work / "src2")]
        return args

    def run_child(self, work: Path, *, fork: bool = True, **env: str) -> tuple[int, str]:
        """Run the job in a child process with ``env`` added; its exit status and stderr.

        ``fork``: a forked child (it has gamestore imported already: a kill costs the job, not an
        interpreter start); otherwise a new interpreter (helpers/maintenance_job.py).
        """
        if not fork:
            proc = subprocess.run([sys.executable, str(JOB_SCRIPT), self.job, json.dumps(self.job_args(work))],
                                  env=subprocess_env(**env), cwd=TESTS, capture_output=True, text=True, timeout=300)
            return proc.returncode, proc.stderr
        err = work.parent / f"{work.name}.stderr"
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.environ.update(env)
                with open(err, "w") as f:
                    os.dup2(f.fileno(), 2)
                run_job(self.job, self.job_args(work))
                code = 0
            except BaseException:  # noqa: BLE001 - reported through the exit status and stderr
                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), err.read_text() if err.exists() else ""

    def points(self) -> list[str]:
        """Every ``point@n`` an uninterrupted run reaches (and that run converges)."""
        work = self.root / "traced"
        shutil.copytree(self.template, work)
        trace = self.root / "trace.txt"
        code, stderr = self.run_child(work, **{TRACE_ENV: str(trace)})
        assert code == 0, stderr
        self.check_converged(work)
        return trace.read_text().split()

    def check_converged(self, work: Path) -> None:
        store = work / "store"
        check_once(store, self.after)
        report = verify_store(store)
        assert report.ok, report.lines()
        if self.job == "compact":  # the others leave copies in shards they do not rewrite (readers skip them)
            assert not report.duplicate_games, report.lines()
        with gamestore.open(store, create=False) as s:
            assert s.catalog.hidden_shards() == []
        assert not any((store / "trash").iterdir())

    def kill(self, spec: str, *, fork: bool = True) -> None:
        """Kill the job at ``spec``, check every reader, run it again, check that it converged.

        A checkpoint may be written by a background thread (timing-dependent): a ``checkpoint.files``
        point the killed run did not reach lets the job finish, which must then have converged.
        """
        work = self.root / spec.replace("@", "-")
        shutil.copytree(self.template, work)
        store = work / "store"
        with gamestore.open(store, create=False) as observer:  # a reader open across the kill
            code, stderr = self.run_child(work, fork=fork, **{FAULT_ENV: spec})
            if code == 0 and spec.startswith("checkpoint."):
                TALLY["not reached"] += 1
                self.check_converged(work)
                return
            assert code == FAULT_EXIT_CODE, f"{spec}: exit {code}\n{stderr}"
            TALLY["kill points"] += 1
            during = self.before if self.job == "prune" else self.after  # prune: a game to remove may be there
            try:
                check_store(observer, during, maybe_gone=self.maybe_gone)
                check_once(store, during, maybe_gone=self.maybe_gone)
            except AssertionError as exc:
                TALLY["lost" if "lost" in str(exc) else "views wrong"] += 1
                raise
        run_job(self.job, self.job_args(work))
        self.check_converged(work)
        shutil.rmtree(work)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    made: dict[str, Case] = {}

    def get(job: str) -> Case:
        if job not in made:
            made[job] = Case(job, tmp_path_factory.mktemp(f"kill-{job}"))
        return made[job]

    return get


@pytest.mark.parametrize("job", sorted(DEFAULT_POINTS))
def test_kill_at_representative_points(cases, job):
    case = cases(job)
    reached = set(case.points())
    for spec in DEFAULT_POINTS[job]:
        assert spec in reached, f"{job} never reaches {spec} (reached: {sorted(reached)})"
        case.kill(spec)


def test_compact_killed_after_moving_an_old_shard_to_trash(cases):
    """The issue's case (moves showed 35,563 rows instead of 33,052 until the next compact), in a new
    interpreter started with GAMESTORE_FAULT as an operator's process would be."""
    cases("compact").kill("trash.moved@2", fork=False)


@pytest.mark.slow
@pytest.mark.parametrize("job", sorted(DEFAULT_POINTS))
def test_kill_at_every_point(cases, job):
    case = cases(job)
    points = case.points()
    for spec in points:
        case.kill(spec)
    print(f"\n{job}: killed at {len(points)} points: {' '.join(points)}")
    print(f"tally so far: {TALLY['kill points']} kill points, {TALLY['lost']} with games lost,"
          f" {TALLY['views wrong']} with views double counting; {TALLY['not reached']} background"
          " checkpoint points not reached in the killed run")
