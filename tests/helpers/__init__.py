"""Helpers shared by the test modules (imported as ``helpers``: pytest puts ``tests/`` on sys.path).

Fixtures live in ``tests/conftest.py``; plain functions and constants used by
several test modules live here, so that no test module imports another.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import gamestore

TESTS = Path(__file__).resolve().parents[1]
#: The repository root: ``tests/fixtures``, ``benchmarks/`` and ``../shared`` are found from here.
REPO = TESTS.parent
#: The directory the ``gamestore`` under test was imported from (site-packages in CI, the checkout otherwise).
GAMESTORE_ROOT = Path(gamestore.__file__).resolve().parents[1]
WORKER = TESTS / "helpers" / "mp_workers.py"


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python: it imports the same gamestore as this process, and ``helpers``."""
    env = dict(os.environ, **extra)
    parts = [str(GAMESTORE_ROOT), str(TESTS)]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def spawn(role: str, args: dict) -> subprocess.Popen:
    """Start ``helpers/mp_workers.py ROLE JSON_ARGS`` (stdout and stderr piped together)."""
    return subprocess.Popen(
        [sys.executable, str(WORKER), role, json.dumps(args)],
        env=subprocess_env(),
        cwd=TESTS,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finish(proc: subprocess.Popen, timeout: float) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out.decode(errors="replace")


def read_acks(ack_dir: Path) -> list[str]:
    ids: list[str] = []
    for f in sorted(ack_dir.glob("*.txt")):
        ids.extend(line for line in f.read_text().splitlines() if line)
    return ids


def import_benchmark(name: str) -> types.ModuleType:
    """``benchmarks.<name>`` from the repository's ``benchmarks/`` directory (not an installed package)."""
    if "benchmarks" not in sys.modules:
        pkg = types.ModuleType("benchmarks")
        pkg.__path__ = [str(REPO / "benchmarks")]
        sys.modules["benchmarks"] = pkg
    return importlib.import_module(f"benchmarks.{name}")
