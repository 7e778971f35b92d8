"""The operator commands end to end through ``gamestore.cli.main``: info, sql, compact, merge, export, prune."""
from __future__ import annotations

import csv
import gzip
import io
import json
import os

import duckdb
import pyarrow.parquet as pq
import pytest

import gamestore
from gamestore.testing import synth
from gamestore.cli import build_parser, main
from gamestore.ops import verify_store

from helpers.cli import run

OPS_COMMANDS = ("info", "sql", "compact", "merge", "export", "prune")


@pytest.fixture()
def store(cli_store):
    return cli_store


def game_ids(path) -> list[str]:
    with gamestore.open(path, create=False) as s:
        return sorted(s.query_games(columns=["game_id"]).column("game_id").to_pylist())


# ---------------------------------------------------------------------------
def test_help_lists_every_command_with_an_example(capsys):
    parser = build_parser()
    top = parser.format_help()
    for name in OPS_COMMANDS:
        assert name in top
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert f"gamestore {name} " in out.split("example")[-1], name


def test_info_text_and_json(capsys, store):
    with gamestore.open(store, create=False) as s:
        expect = s.info()
    code, out, _ = run(capsys, "info", store, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["games"] == expect["games"] == 12
    assert info["moves"] == expect["moves"] > 0
    assert info["shards"] == 6
    assert info["bytes_on_disk"] > info["shard_bytes"] > 0
    assert info["bytes_per_move"] == pytest.approx(info["shard_bytes"] / info["moves"])
    assert {(c["board_type"], c["num_players"]): c["games"] for c in info["configs"]} == {("hex8", 2): 4, ("square8", 2): 8}
    assert info["newest_game"] == expect["newest_game"]
    code, out, _ = run(capsys, "info", store)
    assert code == 0
    assert "games       12" in out and "hex8" in out and "square8" in out and "newest game" in out


def test_info_of_missing_store_fails(capsys, tmp_path):
    code, _, err = run(capsys, "info", tmp_path / "nowhere")
    assert code == 2 and "no gamestore" in err
    assert not (tmp_path / "nowhere").exists()


QUERY = "SELECT board_type, count(*) AS n, sum(num_moves) AS moves FROM games GROUP BY 1 ORDER BY 1"


def test_sql_formats(capsys, store, tmp_path):
    with gamestore.open(store, create=False) as s:
        expect = s.sql(QUERY).to_arrow_table().to_pylist()
    code, out, _ = run(capsys, "sql", store, QUERY)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["board_type", "n", "moves"] and lines[-1] == "(2 rows)"
    assert lines[2].split()[:2] == ["hex8", "4"]

    code, out, _ = run(capsys, "sql", store, QUERY, "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["board_type"], int(r["n"]), int(r["moves"])) for r in rows] == [
        (e["board_type"], e["n"], e["moves"]) for e in expect
    ]

    code, out, _ = run(capsys, "sql", store, QUERY, "--format", "json")
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == expect

    target = tmp_path / "q.parquet"
    code, _, err = run(capsys, "sql", store, QUERY, "--format", "parquet", "--output", target)
    assert code == 0 and "2 rows" in err
    assert pq.read_table(target).to_pylist() == expect


def test_sql_errors_exit_nonzero(capsys, store):
    code, _, err = run(capsys, "sql", store, "SELECT no_such_column FROM games")
    assert code == 2 and "no_such_column" in err
    code, _, err = run(capsys, "sql", store, QUERY, "--format", "parquet")
    assert code == 2 and "--output" in err


def test_sql_runs_while_a_writer_writes(capsys, store):
    with gamestore.open(store, create=False) as writer:
        writer.write_games(synth.games(2, board_type="square19", seed=23))  # buffered, not yet visible
        code, out, _ = run(capsys, "sql", store, "SELECT count(*) AS n FROM games", "--format", "json")
        assert code == 0 and json.loads(out) == {"n": 12}
        writer.flush()
        code, out, _ = run(capsys, "sql", store, "SELECT count(*) AS n FROM games", "--format", "json")
        assert code == 0 and json.loads(out) == {"n": 14}


def test_compact(capsys, store):
    before = game_ids(store)
    code, out, _ = run(capsys, "compact", store, "--dry-run")
    assert code == 0 and "would rewrite 6 shards into 1" in out
    assert len(os.listdir(store / "shards")) == 6
    code, out, _ = run(capsys, "compact", store)
    assert code == 0 and "rewrote 6 shards into 1" in out and "6 before, 1 after" in out
    assert len(os.listdir(store / "shards")) == 1
    assert game_ids(store) == before
    assert verify_store(store).ok
    code, out, _ = run(capsys, "compact", store)
    assert code == 0 and "rewrote 0 shards" in out


def test_merge_and_rerun(capsys, store, tmp_path):
    other = tmp_path / "other"
    with gamestore.open(other, fsync=False) as s:
        s.write_games(synth.games(3, board_type="hex8", num_players=4, seed=24))
        s.flush()
    dest = tmp_path / "merged"
    code, out, _ = run(capsys, "merge", store, other, store, dest)  # the store twice: dedup
    assert code == 0
    assert "added 15 games" in out and "12 games already there skipped" in out
    assert game_ids(dest) == sorted(game_ids(store) + game_ids(other))
    code, out, _ = run(capsys, "merge", store, other, dest)
    assert code == 0 and "added 0 games" in out
    assert len(game_ids(dest)) == 15


def test_merge_missing_source_fails(capsys, store, tmp_path):
    code, _, err = run(capsys, "merge", tmp_path / "nope", store, tmp_path / "dest")
    assert code == 2 and "no gamestore" in err
    assert not (tmp_path / "dest").exists()


def test_export_parquet(capsys, store, tmp_path):
    dest = tmp_path / "export"
    code, out, _ = run(capsys, "export", store, "--format", "parquet", dest, "--where", "board_type = 'hex8'")
    assert code == 0 and "exported 4 games" in out
    con = duckdb.connect()
    n_games, moves = con.sql(f"SELECT count(*), sum(num_moves) FROM read_parquet('{dest}/games.parquet')").fetchall()[0]
    (n_moves,) = con.sql(f"SELECT count(*) FROM read_parquet('{dest}/moves.parquet')").fetchall()[0]
    with gamestore.open(store, create=False) as s:
        assert (n_games, moves) == (4, s.count_moves("board_type = 'hex8'"))
        expect = s.sql(
            "SELECT sum(p.prob) FROM policies p JOIN games g USING (game_id) WHERE g.board_type = 'hex8'"
        ).fetchall()[0][0]
    assert n_moves == moves
    got = con.sql(f"SELECT sum(e.prob) FROM (SELECT unnest(policy) AS e FROM read_parquet('{dest}/moves.parquet'))").fetchall()[0][0]
    assert got == pytest.approx(expect, rel=1e-12)
    code, _, err = run(capsys, "export", store, "--format", "parquet", dest)
    assert code == 2 and "--overwrite" in err


def test_export_jsonl(capsys, store, tmp_path):
    dest = tmp_path / "games.jsonl.gz"
    code, out, _ = run(capsys, "export", store, "--format", "jsonl", dest, "--where", "board_type = 'square8'")
    assert code == 0 and "exported 8 games" in out
    records = [json.loads(line) for line in gzip.open(dest, "rt", encoding="utf-8")]
    assert len(records) == 8 and {r["boardType"] for r in records} == {"square8"}
    move = records[0]["moves"][1]
    assert {"id", "type", "player", "from", "to", "moveNumber", "thinkTimeMs", "phase"} <= set(move)
    code, out, _ = run(capsys, "export", store, "--format", "jsonl", "-", "--where", "board_type = 'hex8'",
                       "--no-training-data")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4
    assert all("moveProbs" not in m for m in json.loads(lines[0])["moves"])


def test_export_bad_predicate_fails(capsys, store, tmp_path):
    code, _, err = run(capsys, "export", store, "--format", "jsonl", tmp_path / "x.jsonl", "--where", "bogus(")
    assert code == 2 and "error" in err
    assert not (tmp_path / "x.jsonl").exists()


def test_prune(capsys, store):
    with gamestore.open(store, create=False) as s:
        doomed = s.count_games("board_type = 'hex8'")
    code, out, _ = run(capsys, "prune", store, "--where", "board_type = 'hex8'", "--dry-run")
    assert code == 0 and f"would remove {doomed} games" in out
    assert len(game_ids(store)) == 12
    code, out, _ = run(capsys, "prune", store, "--where", "board_type = 'hex8'")
    assert code == 0 and f"removed {doomed} games" in out
    assert len(game_ids(store)) == 12 - doomed
    code, out, _ = run(capsys, "prune", store, "--where", "board_type = 'hex8'")
    assert code == 0 and "removed 0 games" in out
    code, _, err = run(capsys, "prune", store, "--where", "nonsense_column > 1")
    assert code == 2 and "nonsense_column" in err
