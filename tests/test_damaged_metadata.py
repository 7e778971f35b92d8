"""Damaged metadata files and wrong paths give typed errors, never tracebacks, hangs or new directories."""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

import gamestore
from gamestore.testing import synth
from gamestore.cli import main
from gamestore.errors import FormatError, GamestoreError, ShardCorruptError, StoreNotFoundError
from gamestore.ops import verify_store

pytestmark = pytest.mark.single_backend

STORE_COMMANDS = [
    ["info"], ["sql", "{p}", "SELECT 1"], ["compact"], ["prune", "{p}", "--where", "true", "--dry-run"],
    ["export", "{p}", "--format", "jsonl", "{out}"], ["verify"], ["reindex"], ["report", "{p}", "--output", "{out}"],
    ["export-sqlite", "{p}", "{out}"],
]


def _argv(cmd, path, out):
    if len(cmd) == 1:
        return [cmd[0], str(path)]
    return [a.replace("{p}", str(path)).replace("{out}", str(out)) for a in cmd]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("dmg") / "store"
    with gamestore.open(path, fsync=False) as s:
        games = synth.games(4, seed=5)
        s.write_games(games[:2])
        s.flush()
        s.write_games(games[2:])
    return path


@pytest.fixture()
def store(tmp_path, template):
    path = tmp_path / "store"
    shutil.copytree(template, path)
    return path


def _manifests(path: Path) -> list[Path]:
    return sorted(path.glob("shards/*/MANIFEST.json"))


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


@pytest.mark.parametrize("kind", ["missing", "empty-dir", "file", "foreign-dir"])
@pytest.mark.parametrize("cmd", STORE_COMMANDS, ids=[c[0] for c in STORE_COMMANDS])
def test_every_command_on_a_non_store_path_exits_2_and_creates_nothing(tmp_path, capsys, kind, cmd):
    path = tmp_path / "notastore"
    if kind == "empty-dir":
        path.mkdir()
    elif kind == "file":
        path.write_text("hello")
    elif kind == "foreign-dir":
        path.mkdir()
        (path / "data.txt").write_text("x")
    before = _tree(tmp_path)
    code = main(_argv(cmd, path, tmp_path / "out.x"))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "not a gamestore" in err
    assert "Traceback" not in err
    assert _tree(tmp_path) == before


def test_open_without_create_and_verify_api_raise_typed(tmp_path):
    with pytest.raises(StoreNotFoundError, match="not a gamestore"):
        gamestore.open(tmp_path / "nope", create=False)
    with pytest.raises(StoreNotFoundError, match="not a gamestore"):
        verify_store(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreNotFoundError):
        gamestore.open(tmp_path / "f")
    assert not (tmp_path / "nope").exists()


CONFIG_DAMAGE = {
    "empty": "",
    "garbage": "\x00\xff garbage {",
    "list": "[1, 2]",
    "null": "null",
    "string": '"x"',
    "no-version": "{}",
    "future-version": '{"format_version": 99}',
    "vectors-list": '{"format_version": 1, "vectors": [1]}',
    "vector-bad-spec": '{"format_version": 1, "vectors": {"v": {"shape": "x"}}}',
    "board-types-int": '{"format_version": 1, "vectors": {}, "board_types": 5}',
    "deep": "[" * 100000,
}


@pytest.mark.parametrize("name", sorted(CONFIG_DAMAGE))
def test_damaged_config_is_a_format_error(store, capsys, name):
    (store / "gamestore.json").write_bytes(CONFIG_DAMAGE[name].encode("utf-8", "surrogateescape"))
    with pytest.raises(FormatError):
        gamestore.open(store)
    assert main(["info", str(store)]) == 2
    assert "gamestore.json" in capsys.readouterr().err or name in ("future-version", "no-version")


@pytest.mark.parametrize("sub", ["catalog", "tmp", "trash", "shards"])
def test_a_file_in_place_of_a_store_directory_is_a_format_error(store, capsys, sub):
    shutil.rmtree(store / sub)
    (store / sub).write_text("not a directory")
    with pytest.raises(FormatError, match="not a directory"):
        gamestore.open(store)
    assert main(["verify", str(store)]) == 2
    assert "not a directory" in capsys.readouterr().err


def _damage_manifest(path: Path, fn) -> str:
    m = _manifests(path)[0]
    doc = json.loads(m.read_text())
    new = fn(doc)
    m.write_text(new if isinstance(new, str) else json.dumps(new))
    return m.parent.name


def _set(key, value):
    def f(d):
        d[key] = value
        return d
    return f


def _drop(key):
    def f(d):
        del d[key]
        return d
    return f


MANIFEST_DAMAGE = {
    "list": lambda d: [d],
    "null": lambda d: None,
    "string": lambda d: "x",
    "empty": lambda d: "",
    "garbage": lambda d: "{{{",
    "no-files": _drop("files"),
    "no-game-ids": _drop("game_ids"),
    "no-batch-rows": _drop("batch_rows"),
    "no-num-games": _drop("num_games"),
    "files-list": _set("files", ["moves.arrow"]),
    "files-escape": lambda d: {**d, "files": {"../../../../dev/zero": {"bytes": 1, "sha256": "x"},
                                             **d["files"]}},
    "files-escape-only": lambda d: {**d, "files": {"../../../../dev/zero": d["files"]["moves.arrow"],
                                                   "games.arrow": d["files"]["games.arrow"]}},
    "files-absolute": lambda d: {**d, "files": {"/etc/passwd": d["files"]["moves.arrow"],
                                                "games.arrow": d["files"]["games.arrow"]}},
    "files-entry-null": lambda d: {**d, "files": {"moves.arrow": None, "games.arrow": d["files"]["games.arrow"]}},
    "game-ids-ints": lambda d: {**d, "game_ids": list(range(len(d["game_ids"])))},
    "game-ids-renamed": lambda d: {**d, "game_ids": [g + "x" for g in d["game_ids"]]},
    "game-ids-short": lambda d: {**d, "game_ids": d["game_ids"][:-1]},
    "batch-rows-shifted": lambda d: {**d, "batch_rows": [d["batch_rows"][0] + 1] + d["batch_rows"][1:]},
    "batch-rows-negative": _set("batch_rows", [-1]),
    "num-moves-string": _set("num_moves", "12"),
    "version-2": _set("format_version", 99),
}


@pytest.mark.parametrize("name", sorted(MANIFEST_DAMAGE))
def test_damaged_manifest_is_typed_and_costs_only_its_shard(store, capsys, name):
    other_ids = json.loads(_manifests(store)[1].read_text())["game_ids"]
    sid = _damage_manifest(store, MANIFEST_DAMAGE[name])
    with gamestore.open(store) as s:  # the store opens; the other shard's games are readable
        for gid in other_ids:
            assert s.get_game(gid)["game_id"] == gid
        damaged = s.info()["damaged_shards"]
    assert sid in damaged or name in ("game-ids-renamed",), damaged
    report = verify_store(store)
    assert not report.ok and sid in report.damaged_shards
    assert main(["verify", str(store)]) == 1
    assert main(["compact", str(store)]) in (0, 1)
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_manifest_validation_is_typed():
    from gamestore.shard import read_manifest

    with pytest.raises(ShardCorruptError):
        read_manifest(Path("/nonexistent/shard"))


def test_verify_accepts_nan_quality_score(tmp_path):
    g = synth.games(2, seed=9)
    g[0]["quality_score"] = float("nan")
    with gamestore.open(tmp_path / "s", fsync=False) as s:
        s.write_games(g)
    report = verify_store(tmp_path / "s")
    assert report.ok, report.lines()
    with gamestore.open(tmp_path / "s") as s:
        assert math.isnan(s.get_game(g[0]["game_id"])["quality_score"])
