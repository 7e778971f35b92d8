"""Test-session setup: which gamestore is under test, where fixture files are, and the CI rules.

- The encoder backend in use is the one ``GAMESTORE_BACKEND`` asked for (pytest refuses to start otherwise;
  an unloadable compiled backend is an ImportError, never a silent fallback).
- With ``CI=true``: ``GAMESTORE_BACKEND`` must be set, ``gamestore`` must be imported from the installed
  build (site-packages), not from the source tree, and a skipped test fails the run.
- Fixture files are found from the repository (``tests/fixtures``, ``../shared``), never relative to the
  installed package; RingRift's source snapshot (``rr_src``) from ``../shared/ringrift-src``.
- ``backend``: runs a test once per backend (``gamestore.backend.use``), whatever ``GAMESTORE_BACKEND`` is.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, settings

import gamestore
from gamestore import backend as gs_backend
from gamestore.ringrift.fixtures import FIXTURE_NAMES, decompress_fixtures, extract_source
from gamestore.ringrift.transfer import import_sqlite

from helpers import REPO, TESTS
from helpers.ringrift_src import generate_db, src_tarball
from helpers.s3server import S3Server

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

# Example generation is timed by hypothesis's too_slow health check; on a shared 2-core machine under load
# it fails round-trip tests that are merely slow to generate ("only 2 inputs in 35 s"). Speed is for the
# benchmarks: every property test keeps its examples, none fails on the machine's load.
settings.register_profile("gamestore", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("gamestore")
#: Where the RingRift GameReplayDB fixtures may be, in order: the copies in the repository, then ../shared.
RINGRIFT_FIXTURE_DIRS = (TESTS / "fixtures" / "ringrift", REPO.parent / "shared" / "fixtures")


def build_problems() -> list[str]:
    """What is wrong with the gamestore under test (empty when it is the one asked for)."""
    problems = []
    asked = os.environ.get("GAMESTORE_BACKEND", "").strip().lower()
    in_use = gs_backend.selected().name
    if asked and asked != in_use:
        problems.append(f"GAMESTORE_BACKEND={asked} but the backend in use is {in_use}")
    if IN_CI:
        if not asked:
            problems.append("CI=true: set GAMESTORE_BACKEND to the backend under test")
        package = Path(gamestore.__file__).resolve().parent
        installed = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
        if package.parent not in installed or package == REPO / "gamestore":
            problems.append(f"CI=true: gamestore imported from {package}, not from the installed build in "
                            f"{' or '.join(sorted(map(str, installed)))}")
    return problems


def pytest_configure(config: pytest.Config) -> None:
    problems = build_problems()
    if problems:
        raise pytest.UsageError("; ".join(problems))


def pytest_report_header(config: pytest.Config) -> str:
    return (f"gamestore {gamestore.__version__} from {Path(gamestore.__file__).resolve().parent}, "
            f"backend {gs_backend.selected().name}{', CI rules (no skips)' if IN_CI else ''}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        _fail_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        _fail_skip(report)


def _fail_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true (a skip is a failure in CI: install what it needs): {reason}"


@pytest.fixture(params=gs_backend.BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[gs_backend.Backend]:
    """Each encoder backend in turn, in use for the whole test."""
    with gs_backend.use(request.param) as chosen:
        yield chosen


@pytest.fixture(scope="session")
def ringrift_fixture_dir() -> Path:
    """The directory holding every RingRift ``<name>.db.zst`` fixture."""
    for d in RINGRIFT_FIXTURE_DIRS:
        if all((d / f"{name}.db.zst").is_file() for name in FIXTURE_NAMES):
            return d
    raise FileNotFoundError(f"RingRift fixtures {FIXTURE_NAMES} in none of {[str(d) for d in RINGRIFT_FIXTURE_DIRS]}")


@pytest.fixture(scope="session")
def ringrift_dbs(ringrift_fixture_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Name -> path of each RingRift fixture database, decompressed once per session."""
    return decompress_fixtures(ringrift_fixture_dir, tmp_path_factory.mktemp("ringrift_dbs"))


@pytest.fixture(scope="session")
def rr_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RingRift's ai-service directory, extracted once per session and importable (``app.*``, ``scripts.*``).

    RingRift's code is imported from the extracted snapshot, so its directory goes on ``sys.path``.
    """
    tarball = src_tarball()
    if tarball is None:
        pytest.skip("RingRift source snapshot not found (../shared/ringrift-src/ringrift-src.tar.zst)")
    root = extract_source(tarball, tmp_path_factory.mktemp("ringrift_src"))
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    logging.getLogger("app").setLevel(logging.ERROR)
    return root


@pytest.fixture(scope="session")
def rr_dbs(rr_src: Path, ringrift_dbs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, tuple[Path, Path]]:
    """name -> (read-only SQLite file written by RingRift, store imported from it): the fixtures and one
    database generated by RingRift's own code (random legal play)."""
    base = tmp_path_factory.mktemp("rr_dbs")
    out: dict[str, tuple[Path, Path]] = {}
    for name, path in ringrift_dbs.items():
        copy = base / path.name
        copy.write_bytes(path.read_bytes())
        out[name] = (copy, base / f"{name}.store")
    out["generated"] = (generate_db(base / "generated.db"), base / "generated.store")
    for db, store in out.values():
        import_sqlite(db, store, progress=False, workers=0)
        db.chmod(0o444)
    return out


@pytest.fixture(scope="module")
def cli_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of 12 games in 6 shards (8 square8 2p, 4 hex8 2p), built once per module."""
    from gamestore.testing import synth

    path = tmp_path_factory.mktemp("cli") / "store"
    games = synth.games(8, board_type="square8", seed=21) + synth.games(4, board_type="hex8", seed=22)
    with gamestore.open(path, fsync=False) as s:
        for i in range(0, len(games), 2):
            s.write_games(games[i : i + 2])
            s.flush()
    return path


@pytest.fixture()
def cli_store(tmp_path: Path, cli_template: Path) -> Path:
    """A fresh copy of :func:`cli_template` for one test."""
    path = tmp_path / "store"
    shutil.copytree(cli_template, path)
    return path


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """A local S3-compatible server (moto, in its own process) for one test module."""
    server = S3Server()
    yield server
    server.close()
