"""Ray Data: read_positions on 1 and 2 nodes against PositionDataset in one process; distributed import.

Run:  python benchmarks/bench_ray.py [--games 1500] [--import-scale 0.5] [--json]

Every figure comes from one run, side by side: the same store, read

1. by ``PositionDataset`` iterated in this process (no DataLoader),
2. by ``gamestore.ray.read_positions`` on a local Ray cluster of one node (1 CPU),
3. the same on two nodes (1 CPU each),

consumed as Ray Train consumes a dataset: ``streaming_split`` with locality
hints to one consumer actor per node, each counting rows (blocks stay on the
node that made them); also on one node with every block pulled to the driver.
Then a GameReplayDB-shaped database (``bench_import.build_big_db``) is
imported by one process (``workers=0``) and by ``gamestore.ray.import_sqlite``
on two nodes.  Nodes are ``ray.cluster_utils.Cluster`` nodes on this machine:
a 2-node run on a 2-core machine shares the cores with the driver, so the
2-node ratio is a floor of what two real machines give.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gamestore  # noqa: E402
import gamestore.backend  # noqa: E402

NODE = {"num_cpus": 1, "object_store_memory": 300 * 2**20}
BATCH = 1024  # training batch delivered by every reader
OPTIONS = {"batch_size": BATCH, "seed": 1}


def build_store(path: Path, games: int) -> None:
    from gamestore.testing.synth import iter_games

    with gamestore.open(path) as st:
        for i, (board, players) in enumerate([("square8", 2), ("hex8", 2), ("square8", 4)]):
            n = games // 3
            for start in range(0, n, 250):
                st.write_games(iter_games(min(250, n - start), board_type=board, num_players=players, seed=10 * i + start))
                st.flush()


def _width(path: Path) -> int:
    with gamestore.open(path, create=False) as st:
        return int(st.sql("SELECT max(len(policy)) FROM moves").fetchall()[0][0])


def in_process(path: Path, width: int) -> tuple[int, float]:
    from gamestore.torch import PositionDataset

    t0 = time.perf_counter()
    n = 0
    with PositionDataset(path, max_candidates=width, **OPTIONS) as ds:
        for batch in ds:
            n += len(batch["move_number"])
    return n, time.perf_counter() - t0


def _cluster(nodes: int):
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args=dict(NODE))
    for _ in range(nodes - 1):
        c.add_node(**NODE)
    ray.init(address=c.address, log_to_driver=False)
    c.wait_for_nodes()
    ray.data.DataContext.get_current().enable_progress_bars = False
    return c


def _shutdown(c) -> None:
    import ray

    ray.shutdown()
    c.shutdown()


def ray_positions(path: Path, width: int, nodes: int) -> tuple[int, float]:
    """Positions/s of read_positions consumed as Ray Train consumes: one consumer per node, blocks kept local."""
    import ray

    import gamestore.ray as gray

    c = _cluster(nodes)
    try:
        @ray.remote(num_cpus=0)
        class Consumer:
            def node(self) -> str:
                return ray.get_runtime_context().get_node_id()

            def consume(self, it) -> int:
                return sum(len(b["move_number"]) for b in it.iter_batches(batch_size=BATCH, batch_format="numpy"))

        node_ids = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        consumers = [
            Consumer.options(scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(nid, soft=False)).remote()
            for nid in node_ids
        ]  # fmt: skip
        gray.read_positions(path, max_candidates=width, seed=1).take(1)  # workers warm (imports), not timed
        t0 = time.perf_counter()
        ds = gray.read_positions(path, max_candidates=width, seed=1, parallelism=2 * nodes)
        splits = ds.streaming_split(len(consumers), equal=False, locality_hints=node_ids)
        n = sum(ray.get([cons.consume.remote(s) for cons, s in zip(consumers, splits)]))
        return n, time.perf_counter() - t0
    finally:
        _shutdown(c)


def ray_positions_to_driver(path: Path, width: int) -> tuple[int, float]:
    """Positions/s of read_positions on one node with every block consumed by the driver."""
    import gamestore.ray as gray

    c = _cluster(1)
    try:
        gray.read_positions(path, max_candidates=width, seed=1).take(1)
        t0 = time.perf_counter()
        n = 0
        for batch in gray.read_positions(path, max_candidates=width, seed=1, parallelism=2).iter_batches(
            batch_size=BATCH, batch_format="numpy"
        ):
            n += len(batch["move_number"])
        return n, time.perf_counter() - t0
    finally:
        _shutdown(c)


def imports(db: Path, work: Path, nodes: int) -> dict:
    import gamestore.ray as gray
    from gamestore.ringrift.transfer import import_sqlite

    t0 = time.perf_counter()
    local = import_sqlite(db, work / "local", progress=False, workers=0)
    single = time.perf_counter() - t0
    c = _cluster(nodes)
    try:
        dist = gray.import_sqlite([db], work / "dist", tasks=4 * nodes)
    finally:
        _shutdown(c)
    assert dist.games_written == local.games_written, (dist.games_written, local.games_written)
    return {
        "moves": local.moves_written,
        "single_moves_per_s": local.moves_written / single,
        "ray_moves_per_s": dist.moves_written / dist.seconds,
        "ratio": single / dist.seconds,
        "nodes": nodes,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--games", type=int, default=1500)
    ap.add_argument("--import-scale", type=float, default=0.5, help="size of the import database (1.0: ~200,000 moves)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    print(f"backend: {gamestore.backend.BACKEND}", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    try:
        store = work / "store"
        build_store(store, args.games)
        width = _width(store)
        n0, t0 = in_process(store, width)
        print(f"in process: {n0} positions in {t0:.2f} s", file=sys.stderr)
        nd, td = ray_positions_to_driver(store, width)
        print(f"1 node to the driver: {nd} positions in {td:.2f} s", file=sys.stderr)
        n1, t1 = ray_positions(store, width, 1)
        print(f"1 node: {n1} positions in {t1:.2f} s", file=sys.stderr)
        n2, t2 = ray_positions(store, width, 2)
        print(f"2 nodes: {n2} positions in {t2:.2f} s", file=sys.stderr)
        assert n0 == nd == n1 == n2, (n0, nd, n1, n2)
        from bench_import import build_big_db

        db = build_big_db(work / "big.db", scale=args.import_scale)
        imp = imports(db, work, 2)
        result = {
            "positions": n0,
            "in_process_per_s": n0 / t0,
            "ray_1_node_to_driver_per_s": nd / td,
            "ray_1_node_per_s": n1 / t1,
            "ray_2_nodes_per_s": n2 / t2,
            "two_vs_one_node": t1 / t2,
            "one_node_vs_in_process": t0 / t1,
            "import": imp,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"positions: {result['positions']:,}")
        print(f"PositionDataset, one process   {result['in_process_per_s']:>12,.0f} positions/s")
        print(f"read_positions, 1 node, driver {result['ray_1_node_to_driver_per_s']:>12,.0f} positions/s"
              f"  ({result['ray_1_node_to_driver_per_s'] / result['in_process_per_s']:.2f}x in-process)")
        print(f"read_positions, 1 node         {result['ray_1_node_per_s']:>12,.0f} positions/s"
              f"  ({result['one_node_vs_in_process']:.2f}x in-process; goal >= 0.5x)")
        print(f"read_positions, 2 nodes        {result['ray_2_nodes_per_s']:>12,.0f} positions/s"
              f"  ({result['two_vs_one_node']:.2f}x 1 node; goal >= 1.6x)")
        print(f"import, 1 process              {imp['single_moves_per_s']:>12,.0f} moves/s ({imp['moves']:,} moves)")
        print(f"import, Ray on 2 nodes         {imp['ray_moves_per_s']:>12,.0f} moves/s  ({imp['ratio']:.2f}x; goal >= 1.6x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
