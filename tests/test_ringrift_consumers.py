"""RingRift's own consumers, unchanged, on gamestore through the compat reader: outputs equal to the SQLite run.

The only change is the one a migration makes (docs/ringrift.md, migration guide): the consumer's
``GameReplayDB`` name is gamestore.compat.GameReplayDB, and ``sqlite3.connect`` is
gamestore.compat.connect (it passes SQLite paths through to sqlite3).
"""
from __future__ import annotations

import io
import json
import sqlite3
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

import gamestore.compat as compat

from helpers.ringrift_src import sqlite_copy

pytestmark = pytest.mark.single_backend


@pytest.fixture()
def copies(rr_dbs, tmp_path):
    """name -> (a writable copy of the SQLite file for RingRift, the imported store)."""
    return {name: (sqlite_copy(db, tmp_path), store) for name, (db, store) in rr_dbs.items()}


def _migrate(monkeypatch, module) -> None:
    """The one-line migration: ``from gamestore.compat import GameReplayDB`` (and ``connect`` for sqlite3.connect)."""
    monkeypatch.setattr(module, "GameReplayDB", compat.GameReplayDB)
    monkeypatch.setattr(sqlite3, "connect", compat.connect)


def test_history_validators(copies, monkeypatch):
    from app.db.game_replay import GameReplayDB as RDB
    from app.rules import history_validation as hv

    for name, (db, store) in copies.items():
        theirs, ours = RDB(str(db)), compat.GameReplayDB(store)
        ids = [g["game_id"] for g in theirs.query_games(exclude_non_canonical=False)]
        for gid in ids:
            assert hv.validate_canonical_history_for_game(ours, gid) == hv.validate_canonical_history_for_game(theirs, gid)
            assert hv.validate_canonical_config_for_game(ours, gid) == hv.validate_canonical_config_for_game(theirs, gid)


def test_validate_game(copies):
    from app.db.game_replay import GameReplayDB as RDB
    from app.db.validation import validate_game

    for name in ("generated", "ringrift_v18_history"):
        db, store = copies[name]
        theirs, ours = RDB(str(db)), compat.GameReplayDB(store)
        for g in theirs.query_games():
            expected = validate_game(theirs, g["game_id"])
            got = validate_game(ours, g["game_id"])
            assert got == expected and got.valid, (name, g["game_id"], got.error)


def _run_main(module, argv: list[str], monkeypatch) -> str:
    monkeypatch.setattr(sys, "argv", [module.__file__, *argv])
    out = io.StringIO()
    with redirect_stdout(out):
        module.main()
    return out.getvalue()


def test_inspect_replay_db(copies, monkeypatch):
    import scripts.inspect_replay_db as inspect_db

    db, store = copies["ringrift_v18_sample"]
    for args in (["--json"], ["--json", "--board-type", "square19", "--limit", "3"], ["--stats"], ["--min-moves", "150"]):
        expected = _run_main(inspect_db, ["--db", str(db), *args], monkeypatch)
        with monkeypatch.context() as m:
            _migrate(m, inspect_db)
            got = _run_main(inspect_db, ["--db", str(store), *args], m)
        if "--json" in args:
            expected_json, got_json = json.loads(expected), json.loads(got)
            assert got_json.pop("db_path") == str(store) and expected_json.pop("db_path") == str(db)
            assert got_json == expected_json and expected_json["games"]
        else:
            assert got == expected and expected.strip()


def test_mine_critical_positions(copies, monkeypatch):
    import scripts.mine_critical_positions as mine

    for name in ("ringrift_v18_history",):
        db, store = copies[name]
        expected = mine.run_mining_from_db(str(db), board_type="square8", limit=5, verbose=False)
        with monkeypatch.context() as m:
            _migrate(m, mine)
            got = mine.run_mining_from_db(str(store), board_type="square8", limit=5, verbose=False)
        assert got == expected and expected, name


def _export(module, db: Path, out: Path, monkeypatch) -> dict:
    monkeypatch.chdir(out.parent)
    rc = module.main(["--db", str(db), "--board-type", "square8", "--num-players", "2", "--output", str(out),
                      "--single-threaded", "--allow-noncanonical"])  # fmt: skip
    assert rc == 0
    with np.load(out, allow_pickle=True) as npz:
        return {k: npz[k] for k in npz.files}


def test_export_replay_dataset(copies, monkeypatch, tmp_path):
    """The training exporter: NPZ arrays equal except the export timestamp (and the checksum of that metadata)."""
    import scripts.export_replay_dataset as exporter

    db, store = copies["ringrift_v18_history"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    expected = _export(exporter, db, tmp_path / "a" / "out.npz", monkeypatch)
    with monkeypatch.context() as m:
        _migrate(m, exporter)
        got = _export(exporter, store, tmp_path / "b" / "out.npz", m)
    assert sorted(got) == sorted(expected) and len(expected["values"]) > 100
    for key, arr in expected.items():
        if key == "metadata":
            a, b = dict(arr.item()), dict(got[key].item())
            assert a.pop("export_time") != b.pop("export_time") and a == b
        elif key == "data_checksums":
            a, b = json.loads(str(arr)), json.loads(str(got[key]))
            assert a.pop("metadata") and b.pop("metadata") and a == b
        else:
            assert _same_array(arr, got[key]), key


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype != object:
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    return all(_same_array(np.asarray(x), np.asarray(y)) for x, y in zip(a.ravel(), b.ravel()))
