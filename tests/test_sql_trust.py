"""The SQL trust model (gamestore/sqlguard.py, README "SQL trust model"): a hostile-SQL corpus.

Every hostile predicate, sort key or query through every entry point
(count_games, count_moves, query_games, game_locations, scan_moves, prune,
export, PositionDataset's plan, store.sql, ``gamestore sql``) raises
:class:`QueryError` (CLI: exit 2), writes no file and leaves the store's
handle working; ``allow_writes=True`` / ``--unsafe`` is the trusted opt-in.
"""
from __future__ import annotations

import os

import duckdb
import pytest

import gamestore
from gamestore import ops
from gamestore.testing import synth
from gamestore.cli import main
from gamestore.errors import QueryError
from gamestore.positions.plan import Selection, resolve_plan

pytestmark = pytest.mark.single_backend

# predicates that must never run: stacked statements, clause injection, files, table functions
HOSTILE_WHERE = [
    "1=1); COPY (SELECT 42) TO '{out}'; SELECT (1",
    "1=1) ; COPY (SELECT 42) TO '{out}' ; --",
    "true); ATTACH '{out}' AS x; SELECT (1",
    "true); CREATE TABLE t AS SELECT 1; SELECT (1",
    "true); DROP VIEW games; SELECT (1",
    "true); SET enable_external_access = true; SELECT (1",
    "true); INSTALL httpfs; SELECT (1",
    "true); LOAD httpfs; SELECT (1",
    "1=1) UNION ALL SELECT * FROM games WHERE (1=1",
    "1=1) GROUP BY game_id HAVING (1=1",
    "1=1) LIMIT 1 --",
    "1=1) ORDER BY (game_id",
    "length((SELECT content FROM read_text('/etc/hostname'))) > 0",
    "EXISTS (SELECT * FROM read_csv('/etc/passwd'))",
    "EXISTS (SELECT * FROM read_parquet('{out}'))",
    "EXISTS (SELECT * FROM read_json_auto('/etc/hostname'))",
    "EXISTS (SELECT * FROM glob('/etc/*'))",
    "EXISTS (SELECT * FROM '/etc/passwd')",
    "EXISTS (SELECT * FROM '{out}')",
    "EXISTS (SELECT * FROM system.main.games)",
    "EXISTS (SELECT * FROM query('SELECT 1'))",
    "EXISTS (SELECT * FROM query_table('games'))",
    "EXISTS (SELECT * FROM duckdb_settings())",
    "EXISTS (WITH x AS (SELECT * FROM read_text('/etc/hostname')) SELECT * FROM x)",
    "game_id IN (SELECT content FROM read_blob('/etc/hostname'))",
    "1 = (SELECT 1 FROM games, read_text('/etc/hostname') LIMIT 1)",
    "(",
    ")",
    "1=1)",
    "game_id = 'x' ; ",
    "nonexistent_column = 1",
    "CAST(game_id AS INTEGER) = 1",  # runs, fails at run time: still a QueryError
]

HOSTILE_ORDER_BY = [
    "game_id; COPY (SELECT 42) TO '{out}'",
    "game_id LIMIT 1",
    "game_id) UNION ALL (SELECT * FROM games",
    "(SELECT content FROM read_text('/etc/hostname'))",
    "(SELECT count(*) FROM '/etc/passwd')",
    "game_id OFFSET 1",
    "",  # an empty sort key list is just "no order" (not hostile); checked separately
    "nonexistent_column",
]

HOSTILE_QUERIES = [
    "COPY (SELECT 42) TO '{out}'",
    "COPY games TO '{out}'",
    "ATTACH '{out}' AS x",
    "DETACH memory",
    "CREATE TABLE t AS SELECT 1",
    "CREATE VIEW v AS SELECT 1",
    "CREATE MACRO m(x) AS x",
    "DROP VIEW games",
    "DROP TABLE _games",
    "INSERT INTO _games SELECT * FROM _games",
    "DELETE FROM _games",
    "UPDATE _shards SET bytes = 0",
    "ALTER VIEW games RENAME TO g",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "RESET enable_external_access",
    "PRAGMA enable_profiling",
    "INSTALL httpfs",
    "LOAD httpfs",
    "EXPORT DATABASE '{out}'",
    "IMPORT DATABASE '{out}'",
    "CHECKPOINT",
    "VACUUM",
    "USE memory",
    "CALL pragma_version()",
    "SELECT 1; COPY (SELECT 42) TO '{out}'",
    "SELECT 1; SELECT 2",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_parquet('{out}')",
    "SELECT * FROM query('DROP VIEW games')",
    "SELEKT 1",
    "SELECT nope FROM games",
    "SELECT CAST('x' AS INTEGER)",
]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("sqltrust") / "store"
    with gamestore.open(path, fsync=False) as s:
        s.write_games(synth.games(6, seed=3) + synth.games(3, board_type="hex8", seed=4))
    return path


@pytest.fixture()
def store(store_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative file names of the corpus would land here
    with gamestore.open(store_path, create=False) as s:
        yield s


def _fmt(text: str, tmp_path) -> str:
    return text.replace("{out}", str(tmp_path / "escaped.out"))


def _assert_clean(store, tmp_path) -> None:
    assert not os.path.exists(tmp_path / "escaped.out")
    assert os.listdir(tmp_path) == [], os.listdir(tmp_path)
    # the handle still works, every view intact
    assert store.count_games() == 9
    assert store.sql("SELECT count(*) FROM games").fetchall() == [(9,)]
    assert store.sql("SELECT count(DISTINCT game_id) FROM moves").fetchall() == [(9,)]


def test_legitimate_predicates_and_subqueries_work(store):
    assert store.count_games("board_type = 'hex8'") == 3
    assert store.count_games("game_id IN (SELECT game_id FROM players WHERE player_number = 2)") == 9
    assert store.count_games("EXISTS (SELECT 1 FROM moves m WHERE m.game_id = games.game_id)") == 9
    assert store.count_games("num_moves > 0 -- a trailing comment") == 9
    assert store.count_games("  ") == 9
    ordered = store.query_games(columns=["game_id"], order_by="board_type DESC NULLS LAST, num_moves, game_id")
    assert ordered.num_rows == 9
    assert store.sql("WITH g AS (SELECT * FROM games) SELECT count(*) FROM g").fetchall() == [(9,)]
    for q in ("DESCRIBE games", "SHOW TABLES", "SUMMARIZE games", "EXPLAIN SELECT * FROM moves", "FROM games LIMIT 1"):
        store.sql(q).fetchall()


def test_remembered_verdicts_depend_on_the_allowed_views():
    """Accepted predicates are remembered (sqlguard's cache) per set of allowed views; rejections never are."""
    from gamestore.sqlguard import check_order_by, check_predicate

    sub = "game_id IN (SELECT game_id FROM players)"
    for _ in range(2):
        assert check_predicate(sub, allowed={"games", "players"}) == sub
        with pytest.raises(QueryError, match="unknown table 'players'"):
            check_predicate(sub, allowed={"games"})
        assert check_order_by("num_moves DESC", allowed={"games"}) == "num_moves DESC"
        with pytest.raises(QueryError):
            check_predicate("1=1) LIMIT 1 --", allowed={"games"})
    for bad in (None, ["num_moves > 1"]):
        with pytest.raises(QueryError, match="must be a str"):
            check_predicate(bad)  # type: ignore[arg-type]
        with pytest.raises(QueryError, match="must be a str"):
            check_order_by(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", HOSTILE_WHERE)
def test_hostile_where_is_rejected_everywhere(store, store_path, tmp_path, text):
    where = _fmt(text, tmp_path)
    calls = [
        lambda: store.count_games(where),
        lambda: store.count_moves(where),
        lambda: store.query_games(where),
        lambda: store.game_locations(where),
        lambda: list(store.scan_moves(where)),
        lambda: resolve_plan(store, Selection(where=where), epoch=0, seed=0),
        lambda: resolve_plan(store, Selection(weight=where, num_samples=3), epoch=0, seed=0),
    ]
    for call in calls:
        with pytest.raises(QueryError):
            call()
    with pytest.raises(QueryError):
        ops.prune(store_path, where=where, dry_run=True)
    assert main(["export", str(store_path), "--format", "jsonl", str(tmp_path / "e.jsonl"), "--where", where]) == 2
    assert main(["prune", str(store_path), "--where", where, "--dry-run"]) == 2
    _assert_clean(store, tmp_path)


@pytest.mark.parametrize("text", [t for t in HOSTILE_ORDER_BY if t])
def test_hostile_order_by_is_rejected(store, tmp_path, text):
    order_by = _fmt(text, tmp_path)
    with pytest.raises(QueryError):
        store.query_games(order_by=order_by)
    with pytest.raises(QueryError):
        store.game_locations(order_by=order_by)
    _assert_clean(store, tmp_path)


@pytest.mark.parametrize("text", HOSTILE_QUERIES)
def test_sql_is_read_only_by_default(store, store_path, tmp_path, text, capsys):
    query = _fmt(text, tmp_path)
    with pytest.raises(QueryError) as exc:
        store.sql(query).fetchall()
    cause = exc.value.__cause__
    assert cause is None or isinstance(cause, duckdb.Error)
    assert main(["sql", str(store_path), query]) == 2
    assert "error" in capsys.readouterr().err
    _assert_clean(store, tmp_path)


def test_duckdb_errors_are_chained(store):
    with pytest.raises(QueryError) as exc:
        store.sql("SELECT nope FROM games")
    assert isinstance(exc.value.__cause__, duckdb.BinderException)
    with pytest.raises(QueryError) as exc:
        store.sql("SELECT CAST(game_id AS INTEGER) FROM games").fetchall()  # fails while consumed
    assert isinstance(exc.value.__cause__, duckdb.ConversionException)
    with pytest.raises(QueryError) as exc:
        store.count_games("CAST(game_id AS INTEGER) = 1")
    assert isinstance(exc.value.__cause__, duckdb.Error)


def test_trusted_opt_in_runs_anything_on_a_private_snapshot(store, store_path, tmp_path):
    out = tmp_path / "counts.csv"
    store.sql(f"COPY (SELECT count(*) AS n FROM games) TO '{out}'", allow_writes=True)
    assert out.read_text().split() == ["n", "9"]
    store.sql("DROP VIEW games", allow_writes=True)
    rel = store.sql("SELECT count(*) FROM moves", allow_writes=True)
    assert rel is not None and rel.fetchall()[0][0] == store.count_moves()
    assert store.count_games() == 9  # the store's own views are untouched
    out2 = tmp_path / "cli.csv"
    assert main(["sql", str(store_path), f"COPY (SELECT 1 AS one) TO '{out2}'", "--unsafe"]) == 0
    assert out2.read_text().split() == ["one", "1"]
