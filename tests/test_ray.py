"""gamestore.ray on a real local multi-node Ray cluster (a head and two worker nodes, one CPU each)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import gamestore
from gamestore.ops import verify_store
from gamestore.testing.synth import games

from helpers import subprocess_env
from helpers.s3server import CREDENTIALS as S3_CREDENTIALS

ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")

import gamestore.ray as gray  # noqa: E402
from gamestore.ray.plan import split_work  # noqa: E402
from gamestore.ray.importer import plan_parts  # noqa: E402

pytestmark = pytest.mark.single_backend

_NODE = {"num_cpus": 1, "object_store_memory": 200 * 2**20}


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    for key, value in S3_CREDENTIALS.items():  # the nodes' own credentials for the local S3 server: tasks
        os.environ.setdefault(key, value)  # take theirs from their environment, never from a pickled filesystem
    c = Cluster(initialize_head=True, head_node_args=dict(_NODE))
    workers = [c.add_node(**_NODE) for _ in range(2)]
    ray.init(address=c.address, log_to_driver=False)
    c.wait_for_nodes()
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield c, workers
    finally:
        ray.shutdown()
        c.shutdown()


def _fill(location):
    """A store of mixed configs in 6 shards, with a game id committed twice (by two handles); returns it open."""
    st = gamestore.open(location)
    configs = [("square8", 2), ("square8", 3), ("hex8", 2), ("square8", 4), ("hex8", 4), ("square8", 2)]
    for i, (board, players) in enumerate(configs):
        st.write_games(games(6, board_type=board, num_players=players, seed=100 + i))
        st.flush()
    other = gamestore.open(location)  # opened before the next commit: it does not know game `dup`
    dup = dict(next(iter(games(1, seed=999))))
    st.write_games([dup])
    st.flush()
    other.write_games([dup])  # the same id again, in a later shard: readers must see it once
    other.flush()
    other.close()
    st.refresh()
    return st


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    st = _fill(tmp_path_factory.mktemp("raystore") / "s")
    yield st
    st.close()


def _moves_table(batches) -> pa.Table:
    return pa.Table.from_batches(list(batches)) if batches else pa.table({})


def _rows(table: pa.Table, cols) -> list[tuple]:
    return sorted(zip(*[table.column(c).to_pylist() for c in cols]))


def test_read_games_equals_local_api_exactly_once(cluster, store):
    cols = ["game_id", "board_type", "num_players", "winner", "total_moves"]
    where = "num_players = 2"
    ds = gray.read_games(store.path, where=where, columns=cols, parallelism=4)
    got = pa.Table.from_pylist(ds.take_all())
    want = store.query_games(where, columns=cols)
    assert got.num_rows == want.num_rows > 0
    assert len(set(got.column("game_id").to_pylist())) == got.num_rows  # exactly once, duplicate included
    assert _rows(got, cols) == _rows(want, cols)
    # every game, and the twice-committed id once
    all_ids = [r["game_id"] for r in gray.read_games(store.path, columns=["game_id"]).take_all()]
    assert sorted(all_ids) == sorted(store.query_games(columns=["game_id"]).column("game_id").to_pylist())
    assert len(all_ids) == len(set(all_ids)) == store.count_games()


def test_read_games_touches_only_selected_shards_and_estimates_size(cluster, store):
    where = "board_type = 'hex8'"
    source = gray.GamesDatasource(store.path, where=where, columns=["game_id"])
    touched = {w.shard_id for w in source._work}
    assert touched == set(store.query_games(where, columns=["shard_id"]).column("shard_id").to_pylist())
    assert touched and touched < set(store.catalog.shard_ids())
    assert source.estimate_inmemory_data_size() > 0
    tasks = source.get_read_tasks(3)
    assert sum(t.metadata.num_rows for t in tasks) == store.count_games(where)
    with pytest.raises(gamestore.QueryError, match="unknown games columns"):
        gray.GamesDatasource(store.path, columns=["no_such_column"])


def test_read_moves_equals_scan_moves_with_projection_pushdown(cluster, store):
    where = "num_players >= 3"
    ds = gray.read_moves(store.path, where=where, columns=["game_id", "move_number", "player", "phase"], parallelism=5)
    ds = ds.select_columns(["game_id", "move_number", "player"])
    got = pa.concat_tables([ray.get(r) for r in ds.to_arrow_refs()])
    assert got.column_names == ["game_id", "move_number", "player"]
    want = _moves_table(store.scan_moves(where, columns=["game_id", "move_number", "player"]))
    assert got.num_rows == want.num_rows == store.count_moves(where)
    assert _rows(got, got.column_names) == _rows(want, got.column_names)


def test_projection_reaches_the_read_tasks(cluster, store):
    source = gray.MovesDatasource(store.path, columns=["game_id", "move_number", "policy"])
    assert source.supports_projection_pushdown()
    full = source.estimate_inmemory_data_size()
    narrow = source.apply_projection({"game_id": "game_id", "move_number": "move_number"})
    narrow._row_bytes = None
    tasks = narrow.get_read_tasks(2)
    assert all(t.schema.names == ["game_id", "move_number"] for t in tasks)
    assert narrow.estimate_inmemory_data_size() < full  # the policy column is neither read nor counted
    block = next(iter(tasks[0]()))
    assert block.column_names == ["game_id", "move_number"]


def test_read_positions_equal_position_dataset(cluster, store):
    from gamestore.torch import PositionDataset

    where = "board_type = 'square8'"
    ds = gray.read_positions(store.path, where=where, shuffle=False, parallelism=3)
    got = []
    for batch in ds.iter_torch_batches(batch_size=128, collate_fn=gray.CollatePositions()):
        assert isinstance(batch["value"], torch.Tensor) and batch["policy_prob"].dim() == 2
        got += list(zip(batch["game_id"].tolist(), batch["move_number"].tolist(), batch["value_mover"].tolist()))
    local = PositionDataset(store.path, where=where, shuffle=False, max_candidates=ds_width(store, where))
    want = []
    for batch in local:
        want += list(zip(list(batch["game_id"]), batch["move_number"].tolist(), batch["value_mover"].tolist()))
    local.close()
    assert len(got) == len(set(got)) == len(want) == store.count_moves(where)
    assert sorted(got) == sorted(want)


def ds_width(store, where) -> int:
    games_q = f"SELECT game_id FROM games WHERE {where}"
    return int(store.sql(f"SELECT max(len(policy)) FROM moves WHERE game_id IN ({games_q})").fetchall()[0][0])


def test_write_games_from_ray_tasks_once(cluster, tmp_path):
    records = list(games(24, seed=7))
    path = tmp_path / "w"
    gamestore.open(path).close()
    summary = gray.write_games(gray.records_to_dataset(records, blocks=6), path)
    assert summary.games_written == 24 and summary.games_skipped == 0 and summary.tasks >= 1
    again = gray.write_games(gray.records_to_dataset(records, blocks=3), path)  # a re-run writes nothing twice
    assert again.games_written == 0 and again.games_skipped == 24
    with gamestore.open(path) as st:
        assert st.count_games() == 24
        vectors = st.vectors
        for r in records[:5]:
            want = gamestore.normalize_game(r, vectors=vectors)
            assert gamestore.games_equal(st.get_game(r["game_id"]), want)
    with pytest.raises(gamestore.RecordError, match="no 'record' column"):
        gray.write_games(ray.data.from_items([{"x": 1}]), path)


def _crash_once(marker: str):
    def fn(batch):
        if not os.path.exists(marker):
            with open(marker, "w"):
                pass
            os._exit(1)  # the worker process dies mid-task, after the task's first block was committed
        return batch

    return fn


def test_write_task_retried_after_a_crash_writes_nothing_twice(cluster, tmp_path):
    records = list(games(16, seed=11))
    path = tmp_path / "crash"
    gamestore.open(path).close()
    marker = str(tmp_path / "crashed")
    first = gray.records_to_dataset(records[:8], blocks=2)
    gray.write_games(first, path)  # games a retried task will find committed
    ds = gray.records_to_dataset(records, blocks=4).map_batches(_crash_once(marker), batch_size=None)
    summary = gray.write_games(ds, path, ray_remote_args={"max_retries": 3})
    assert os.path.exists(marker)
    with gamestore.open(path) as st:
        ids = st.query_games(columns=["game_id"]).column("game_id").to_pylist()
        assert sorted(ids) == sorted(r["game_id"] for r in records)
        assert st.count_games() == 16
        total = sum(row[0] for row in st.sql("SELECT num_games FROM shards").fetchall())
        assert total == 16  # no copy of any game stored twice
    assert summary.games_written + summary.games_skipped >= 16


def test_plan_helpers():
    assert plan_parts([100, 300], 8) == [2, 6]
    assert plan_parts([0, 5], 4) == [1, 4]  # at least one part per source, at most one per game
    from gamestore.readpath import ShardPick

    work = [ShardPick(f"s{i}", np.array([0]), np.array([0]), np.array([n])) for i, n in enumerate([50, 10, 10, 30])]
    groups = split_work(work, 2, weight=lambda w: w.num_moves)
    assert sorted(sum(w.num_moves for w in g) for g in groups) == [50, 50]
    assert len(split_work(work, 10, weight=lambda w: w.num_moves)) == 4


def test_distributed_import_equals_local_import(cluster, ringrift_dbs, tmp_path):
    from gamestore.ringrift.transfer import import_sqlite as import_local

    dbs = list(ringrift_dbs.values())
    dist, local = tmp_path / "dist", tmp_path / "local"
    report = gray.import_sqlite(dbs, dist, tasks=4)
    assert report.tasks >= 2 and not report.failed
    for db in dbs:
        import_local(db, local, progress=False)
    with gamestore.open(dist) as a, gamestore.open(local) as b:
        ids = sorted(b.query_games(columns=["game_id"]).column("game_id").to_pylist())
        assert sorted(a.query_games(columns=["game_id"]).column("game_id").to_pylist()) == ids
        assert report.games_written == len(ids) == 12
        for gid in ids:
            assert gamestore.games_equal(a.get_game(gid), b.get_game(gid))
        for name in b.meta_names():
            assert sorted(map(repr, a.get_meta(name))) == sorted(map(repr, b.get_meta(name)))
    again = gray.import_sqlite(dbs, dist, tasks=3)
    assert again.games_written == 0 and again.games_already_stored == 12


def test_cli_import_sqlite_ray(cluster, ringrift_dbs, tmp_path):
    c, _ = cluster
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from gamestore.cli import main; sys.exit(main())", "import-sqlite", "--ray", c.address, *map(str, ringrift_dbs.values()), str(tmp_path / "cli")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "imported 12 games" in out.stdout
    with gamestore.open(tmp_path / "cli") as st:
        assert st.count_games() == 12


def test_torch_trainer_learns_from_read_positions(cluster, store, tmp_path):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    width = ds_width(store, "1=1")
    ds = gray.read_positions(store.path, max_candidates=width, seed=3)

    def loop(config):
        import ray.train
        import torch as th
        from ray.train.torch import prepare_model

        th.manual_seed(0)
        feats = 49
        model = prepare_model(th.nn.Sequential(th.nn.Linear(feats, 32), th.nn.ReLU(), th.nn.Linear(32, config["width"] + 1)))
        opt = th.optim.Adam(model.parameters(), lr=3e-3)
        losses = []
        shard = ray.train.get_dataset_shard("train")
        for batch in shard.iter_torch_batches(batch_size=64, collate_fn=gray.CollatePositions()):
            x = th.nan_to_num(batch["vec_heuristic_features"].float())
            out = model(x)
            logits = out[:, :-1].masked_fill(~batch["policy_mask"], -1e9)
            has = batch["has_policy"]
            policy = -(batch["policy_prob"] * th.log_softmax(logits, dim=1)).sum(1)
            value = (th.tanh(out[:, -1]) - batch["value_mover"].float()) ** 2
            loss = (policy * has).sum() / has.sum().clamp(min=1) + value.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
        q = max(1, len(losses) // 4)
        metrics = {"first": float(np.mean(losses[:q])), "last": float(np.mean(losses[-q:])), "steps": len(losses)}
        with tempfile.TemporaryDirectory() as d:  # Ray Train keeps the metrics reported with a checkpoint
            th.save(model.state_dict(), os.path.join(d, "model.pt"))
            checkpoint = ray.train.Checkpoint.from_directory(d) if ray.train.get_context().get_world_rank() == 0 else None
            ray.train.report(metrics, checkpoint=checkpoint)

    trainer = TorchTrainer(
        loop,
        train_loop_config={"width": width},
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False, resources_per_worker={"CPU": 1}),
        datasets={"train": ds},
        run_config=RunConfig(storage_path=str(tmp_path), name="learn"),
    )  # fmt: skip
    result = trainer.fit()
    assert result.checkpoint is not None
    m = result.metrics
    assert m["steps"] >= 8
    assert m["last"] < m["first"], m


def test_worker_node_killed_mid_read_exactly_once(cluster, store):
    c, workers = cluster
    ds = gray.read_moves(store.path, columns=["game_id", "move_number"], parallelism=12)
    seen = []
    killed = False
    for batch in ds.iter_batches(batch_size=200, batch_format="pyarrow", prefetch_batches=0):
        seen += list(zip(batch.column("game_id").to_pylist(), batch.column("move_number").to_pylist()))
        if not killed:
            c.remove_node(workers[0])  # a worker node dies while the dataset is being read
            killed = True
    assert killed
    assert len(seen) == len(set(seen)) == store.count_moves()
    c.add_node(**_NODE)


def test_import_of_a_missing_source_fails_before_any_task(tmp_path, capsys):
    from gamestore.cli import main

    with pytest.raises(FileNotFoundError, match="no such GameReplayDB"):
        gray.import_sqlite([tmp_path / "missing.db"], tmp_path / "s")
    assert main(["import-sqlite", "--ray", "auto", str(tmp_path / "missing.db"), str(tmp_path / "s")]) == 2
    assert "no such GameReplayDB" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


# -- a store in a bucket (the local S3 server), read and written by the cluster's tasks ----------------------

@pytest.fixture(scope="module")
def s3_store(s3):
    st = _fill(s3.uri(s3.bucket(), "ray/store"))
    yield st
    st.close()


def test_s3_reads_equal_local_api_exactly_once(cluster, s3, s3_store):
    import pyarrow.fs as pafs
    from ray import cloudpickle

    from gamestore.torch import PositionDataset

    uri = str(s3_store.path)
    assert uri.startswith("s3://")
    cols = ["game_id", "board_type", "num_players", "winner", "total_moves"]
    got = pa.Table.from_pylist(gray.read_games(uri, where="num_players = 2", columns=cols, parallelism=3).take_all())
    want = s3_store.query_games("num_players = 2", columns=cols)
    assert got.num_rows == len(set(got.column("game_id").to_pylist())) == want.num_rows > 0
    assert _rows(got, cols) == _rows(want, cols)

    # a handle on an explicit S3FileSystem with its own keys: the tasks get the endpoint, never the keys
    secret = "never-pickled-" + "x" * 8
    fs = pafs.S3FileSystem(endpoint_override=s3.endpoint, scheme="http", region="us-east-1",
                           access_key="AKIAPROBE", secret_key=secret)  # fmt: skip
    with gamestore.open(uri.split("://", 1)[1].split("?")[0], filesystem=fs, create=False) as handle:
        source = gray.MovesDatasource(handle, where="num_players >= 3", columns=["game_id", "move_number", "player"])
        tasks = source.get_read_tasks(4)
        assert secret.encode() not in cloudpickle.dumps(tasks)
        assert all(f.startswith("s3://") and "?" not in f for t in tasks for f in t.metadata.input_files)
        moves = gray.read_moves(handle, where="num_players >= 3", columns=["game_id", "move_number", "player"],
                                parallelism=4).select_columns(["game_id", "move_number"])  # fmt: skip
        got = pa.concat_tables([ray.get(r) for r in moves.to_arrow_refs()])
    assert got.column_names == ["game_id", "move_number"]
    want = _moves_table(s3_store.scan_moves("num_players >= 3", columns=["game_id", "move_number"]))
    assert got.num_rows == want.num_rows == s3_store.count_moves("num_players >= 3")
    assert _rows(got, got.column_names) == _rows(want, got.column_names)

    where = "board_type = 'hex8'"
    width = ds_width(s3_store, where)
    seen = []
    for batch in gray.read_positions(uri, where=where, shuffle=False, parallelism=2).iter_batches(batch_size=64):
        seen += list(zip(batch["game_id"].tolist(), batch["move_number"].tolist(), batch["value_mover"].tolist()))
    want_pos = []
    with PositionDataset(uri, where=where, shuffle=False, max_candidates=width) as local:
        for batch in local:
            want_pos += list(zip(list(batch["game_id"]), batch["move_number"].tolist(), batch["value_mover"].tolist()))
    assert len(seen) == len(set(seen)) == len(want_pos) == s3_store.count_moves(where)
    assert sorted(seen) == sorted(want_pos)


def test_s3_reads_open_only_selected_shards(cluster, s3):
    st = gamestore.open(s3.uri(s3.bucket(), "pushdown"))
    for board, seed in [("square8", 1), ("hex8", 2), ("square8", 3), ("hex8", 4)]:
        st.write_games(games(3, board_type=board, seed=seed))
        st.flush()
    where = "board_type = 'hex8'"
    want_games = st.count_games(where)
    want_moves = st.count_moves(where)
    games_ds = gray.read_games(st, where=where, columns=["game_id"])
    moves_ds = gray.read_moves(st, where=where, columns=["game_id", "move_number"])
    touched = set(st.query_games(where, columns=["shard_id"]).column("shard_id").to_pylist())
    untouched = set(st.catalog.shard_ids()) - touched
    assert len(touched) == len(untouched) == 2
    for sid in untouched:  # the other shards' data is gone: a task that opened one would fail
        for name in ("games.arrow", "moves.arrow"):
            st.storage.delete_file(f"shards/{sid}/{name}")
    assert len({r["game_id"] for r in games_ds.take_all()}) == games_ds.count() == want_games
    assert len({(r["game_id"], r["move_number"]) for r in moves_ds.take_all()}) == want_moves
    st.close()


def test_s3_write_games_retried_task_writes_nothing_twice(cluster, s3, tmp_path):
    records = list(games(16, seed=12))
    uri = s3.uri(s3.bucket(), "written")
    gamestore.open(uri).close()
    gray.write_games(gray.records_to_dataset(records[:6], blocks=2), uri)  # games a retried task finds committed
    marker = str(tmp_path / "crashed")
    ds = gray.records_to_dataset(records, blocks=4).map_batches(_crash_once(marker), batch_size=None)
    summary = gray.write_games(ds, uri, ray_remote_args={"max_retries": 3})
    assert os.path.exists(marker)
    assert summary.games_written + summary.games_skipped >= 16
    with gamestore.open(uri, create=False) as st:
        assert sorted(st.query_games(columns=["game_id"]).column("game_id").to_pylist()) == sorted(
            r["game_id"] for r in records)
        assert sum(row[0] for row in st.sql("SELECT num_games FROM shards").fetchall()) == 16  # one copy each
        for r in records[::5]:
            assert gamestore.games_equal(st.get_game(r["game_id"]), gamestore.normalize_game(r, vectors=st.vectors))
    assert verify_store(uri).ok


@pytest.mark.slow
def test_cli_import_sqlite_ray_into_a_bucket(cluster, s3, ringrift_dbs):
    c, _ = cluster
    uri = s3.uri(s3.bucket(), "imported")
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from gamestore.cli import main; sys.exit(main())", "import-sqlite",
         "--ray", c.address, "--tasks", "3", *map(str, ringrift_dbs.values()), uri],
        capture_output=True, text=True, timeout=300, env=subprocess_env(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "imported 12 games" in out.stdout
    with gamestore.open(uri, create=False) as st:
        assert st.count_games() == 12 and st.meta_names()
    assert verify_store(uri).ok


def test_store_location_is_portable_and_carries_no_credentials(monkeypatch, tmp_path):
    from gamestore.ray.plan import store_location

    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert store_location(tmp_path / "s") == str(tmp_path / "s")
    uri = store_location("s3://AKIAPROBE:s3cret@bkt/a/b?endpoint_override=10.0.0.5:9000&scheme=http")
    assert uri == "s3://bkt/a/b?endpoint_override=10.0.0.5:9000&scheme=http&region=us-east-1&allow_delayed_open=true"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://objects.example:8443")  # the driver's endpoint goes along
    assert store_location("s3://bkt/c").startswith("s3://bkt/c?endpoint_override=objects.example:8443&scheme=https")
