"""Damaged shards are quarantined, not fatal (gamestore/quarantine.py, ops/repair.py; docs/operations.md).

For every kind of damage to one shard of a three-shard store: the store opens, the other shards' games read back
equal and new games are written, the damaged shard's games raise ShardCorruptError naming it and are reported
missing (info, a DamagedShardWarning); the maintenance commands skip it and exit 1 naming it; ``verify --repair``
moves it into quarantine/ and leaves a store that ``verify`` calls OK.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import pytest

import gamestore
from gamestore import shard
from gamestore.errors import DamagedShardWarning, ShardCorruptError
from gamestore.quarantine import QUARANTINE_DIR, REASON_FILE
from gamestore.records import games_equal
from gamestore.testing import synth

from helpers.cli import run

pytestmark = pytest.mark.single_backend

DAMAGE = ["truncate", "delete moves", "delete games", "swap", "garbage", "footer", "flip", "manifest"]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("quarantine") / "store"
    games = synth.games(9, seed=2)
    for g in games:
        g["moves"] = g["moves"][:50]
    with gamestore.open(root, fsync=False) as s:
        for i in range(0, 9, 3):
            s.write_games(games[i:i + 3])
            s.flush()
    gamestore.open(root, create=False).close()  # writes the catalog checkpoint: the damage comes after it
    shards = sorted(p.name for p in (root / "shards").iterdir())
    return root, games, shards


def damage(root: Path, shards: list[str], kind: str) -> str:
    victim = shards[1]
    d = root / "shards" / victim
    moves = d / shard.MOVES_FILE
    data = moves.read_bytes()
    if kind == "truncate":
        moves.write_bytes(data[: len(data) // 2])
    elif kind == "delete moves":
        moves.unlink()
    elif kind == "delete games":
        (d / shard.GAMES_FILE).unlink()
    elif kind == "swap":  # another shard's file in its place
        shutil.copy(root / "shards" / shards[0] / shard.MOVES_FILE, moves)
    elif kind == "garbage":
        moves.write_bytes(os.urandom(len(data)))
    elif kind == "footer":
        moves.write_bytes(data[:-20] + bytes([data[-20] ^ 0xFF]) + data[-19:])
    elif kind == "flip":
        mid = len(data) // 2
        moves.write_bytes(data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:])
    elif kind == "manifest":
        (d / shard.MANIFEST).write_text("{not json")
    return victim


@pytest.fixture()
def damaged(template, tmp_path, request):
    root, games, shards = template
    path = tmp_path / "store"
    shutil.copytree(root, path)
    victim = damage(path, shards, request.param)
    with gamestore.open(root, create=False) as s:
        held = {g["game_id"] for g in games if s.catalog.locate(g["game_id"]).shard_id == victim}
    return path, games, victim, held


@pytest.mark.parametrize("damaged", DAMAGE, indirect=True)
def test_a_damaged_shard_costs_its_games_not_the_store(damaged):
    path, games, victim, held = damaged
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gamestore.open(path, create=False) as s:
            for g in games:
                if g["game_id"] in held:
                    with pytest.raises(ShardCorruptError) as err:
                        s.get_game(g["game_id"])
                    assert err.value.shard_id == victim
                else:
                    assert games_equal(s.get_game(g["game_id"]), g)
            info = s.info()
            assert info["damaged_shards"] == [victim] and victim in info["damage"]
            assert info["games_in_damaged_shards"] == len(held) and info["games"] == len(games) - len(held)
            assert s.count_games() == len(games) - len(held)
            assert sum(b.num_rows for b in s.scan_moves(columns=["game_id"])) == 50 * (len(games) - len(held))
            assert s.sql("SELECT count(*) FROM moves").fetchall() == [(50 * (len(games) - len(held)),)]
            new = synth.games(1, seed=99)
            s.write_games(new)
            s.flush()
            assert games_equal(s.get_game(new[0]["game_id"]), new[0])
    assert any(issubclass(w.category, DamagedShardWarning) and victim in str(w.message) for w in caught)


@pytest.mark.parametrize("damaged", ["truncate", "delete games", "swap"], indirect=True)
def test_info_finds_damaged_files_before_any_read(damaged, capsys):
    """A stat per data file (sizes against the manifest) finds missing, truncated and swapped files; `gamestore
    info` names the shard, exits 1 and warns in one line."""
    path, games, victim, held = damaged
    code, out, err = run(capsys, "info", path)
    assert code == 1
    assert f"DAMAGED shard {victim}" in out and f"{len(games) - len(held)}" in out
    assert f"gamestore info: warning: shard {victim} is damaged" in err and "Traceback" not in err
    code, out, _ = run(capsys, "info", path, "--json")
    assert code == 1 and json.loads(out)["damaged_shards"] == [victim]


@pytest.mark.parametrize("damaged", ["delete moves", "flip", "manifest"], indirect=True)
def test_maintenance_skips_the_damaged_shard_and_exits_1_naming_it(damaged, tmp_path, capsys):
    path, games, victim, held = damaged
    code, out, err = run(capsys, "export", path, "--format", "parquet", tmp_path / "export")
    assert code == 1 and f"skipped damaged shard {victim}" in out, (out, err)
    import pyarrow.parquet as pq

    exported = set(pq.read_table(tmp_path / "export" / "games.parquet").column("game_id").to_pylist())
    assert exported == {g["game_id"] for g in games} - held
    code, out, err = run(capsys, "export", path, "--format", "jsonl", tmp_path / "games.jsonl")
    assert code == 1 and f"skipped damaged shard {victim}" in out
    assert len((tmp_path / "games.jsonl").read_text().splitlines()) == len(games) - len(held)
    code, out, err = run(capsys, "merge", path, tmp_path / "merged")
    assert code == 1 and victim in out, (out, err)
    with gamestore.open(tmp_path / "merged", create=False) as m:
        assert m.count_games() == len(games) - len(held)
    first = sorted(held)[0]
    code, out, err = run(capsys, "prune", path, "--where", f"game_id = '{first}'")
    assert code == 1 and f"skipped damaged shard {victim}" in out, (out, err)
    code, out, err = run(capsys, "compact", path)
    assert code == 1 and f"skipped damaged shard {victim}" in out, (out, err)
    assert (path / "shards" / victim).is_dir()  # skipped, never rewritten or removed
    with gamestore.open(path, create=False) as s:
        for g in games:
            if g["game_id"] not in held:
                assert games_equal(s.get_game(g["game_id"]), g)


@pytest.mark.parametrize("damaged", ["truncate", "garbage", "manifest"], indirect=True)
def test_verify_repair_moves_damaged_shards_aside(damaged, capsys):
    path, games, victim, held = damaged
    seg = next(p for p in (path / "catalog").glob("*.parquet") if p.stem != victim)
    seg.write_bytes(b"not parquet")  # a damaged segment and checkpoint are rebuilt by the same repair
    checkpoints = [p for p in (path / "catalog").iterdir() if p.name.startswith("checkpoint")]
    for p in checkpoints:
        if p.is_file():
            p.write_bytes(b"garbage")
    code, out, _ = run(capsys, "verify", path)
    assert code == 1 and f"DAMAGED shard {victim}" in out
    code, out, err = run(capsys, "verify", path, "--repair")
    assert code == 0, (out, err)
    assert f"moved damaged shard {victim} to {QUARANTINE_DIR}/{victim}" in out and "after repair: OK" in out
    assert not (path / "shards" / victim).exists()
    reason = json.loads((path / QUARANTINE_DIR / victim / REASON_FILE).read_text())
    assert reason["shard_id"] == victim and reason["problems"]
    assert set(reason["game_ids"]) == held  # from the manifest, or from the catalog segment when it is unreadable
    assert f"{len(held)} games were only in the moved shards" in out
    code, out, _ = run(capsys, "verify", path)
    assert code == 0 and out.strip().endswith("OK")
    code, out, _ = run(capsys, "info", path, "--json")
    info = json.loads(out)
    assert code == 0 and info["quarantined_shards"] == [victim] and info["damaged_shards"] == []
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamagedShardWarning)
        with gamestore.open(path, create=False) as s:
            assert s.count_games() == len(games) - len(held)
            for g in games:
                if g["game_id"] not in held:
                    assert games_equal(s.get_game(g["game_id"]), g)


def test_repair_of_a_healthy_store_changes_nothing(template, tmp_path, capsys):
    root, games, shards = template
    path = tmp_path / "store"
    shutil.copytree(root, path)
    code, out, _ = run(capsys, "verify", path, "--repair", "--json")
    result = json.loads(out)
    assert code == 0 and result["ok"] and result["moved"] == {} and not result["catalog_rebuilt"]
    assert sorted(p.name for p in (path / "shards").iterdir()) == shards and not (path / QUARANTINE_DIR).exists()
