"""gamestore.torch under torch.distributed (gloo, 2 ranks): rank defaults and one shared snapshot."""
from __future__ import annotations

import collections
import json
import multiprocessing as mp

import pytest

torch = pytest.importorskip("torch")

import gamestore  # noqa: E402
from gamestore.testing import synth  # noqa: E402

pytestmark = pytest.mark.torch


def _rank_main(rank: int, world: int, init: str, path: str, out: str) -> None:
    import torch.distributed as dist

    from gamestore.torch import PositionDataset

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        ds = PositionDataset(path, batch_size=128, seed=3)  # rank and world size from torch.distributed
        epochs = []
        for epoch in range(2):
            if epoch == 1 and rank == 1:
                # rank 1 commits games before set_epoch: the broadcast snapshot is rank 0's view
                with gamestore.open(path, create=False, fsync=False) as store:
                    store.write_games(synth.games(2, seed=99))
            dist.barrier()
            ds.set_epoch(epoch)
            keys = [[g, m] for b in ds for g, m in zip(b["game_id"], b["move_number"].tolist())]
            epochs.append({"rank": ds.rank, "world": ds.world_size, "snapshot": ds.plan.snapshot, "keys": keys})
        with open(f"{out}.{rank}", "w") as f:
            json.dump(epochs, f)
    finally:
        dist.destroy_process_group()


def test_two_ranks_share_a_snapshot_and_partition_exactly(tmp_path):
    path = tmp_path / "store"
    with gamestore.open(path, fsync=False, batch_rows=256) as store:
        store.write_games(synth.games(6, seed=98))
    init = f"file://{tmp_path / 'rendezvous'}"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_rank_main, args=(r, 2, init, str(path), str(tmp_path / "out"))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    results = [json.loads((tmp_path / f"out.{r}").read_text()) for r in range(2)]
    with gamestore.open(path, create=False) as store:
        for epoch in range(2):
            a, b = results[0][epoch], results[1][epoch]
            assert (a["rank"], a["world"], b["rank"], b["world"]) == (0, 2, 1, 2)
            assert a["snapshot"] == b["snapshot"]
            got = collections.Counter(tuple(k) for k in a["keys"] + b["keys"])
            shards = a["snapshot"]
            want = collections.Counter()
            for batch in store.scan_moves(f"shard_id IN ({', '.join(repr(s) for s in shards)})", columns=["game_id", "move_number"]):
                want.update(zip(batch.column("game_id").to_pylist(), batch.column("move_number").to_pylist()))
            assert got == want
        assert len(results[0][1]["snapshot"]) == len(results[0][0]["snapshot"]) + 1  # new games next epoch
