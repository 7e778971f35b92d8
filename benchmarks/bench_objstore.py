"""Object storage and sync, measured against a local S3 server (moto, in its own process).

    python benchmarks/bench_objstore.py --workdir /tmp/gs-objstore [--games 4000] [--shards 40]

Every figure is a ratio of two things timed side by side in this run (the
machine is shared: absolute times drift, ratios much less):

- **incremental sync**: a store of ``--games`` games in ``--shards`` shards
  is synced to the S3 server; then 1% new games are added (one flush) and the
  next sync's bytes are divided by the store's bytes (goal: <= 1.5%; a
  whole-file push of the store moves 100%);
- **sync throughput**: ``gamestore.sync`` of the store to a fresh prefix vs
  ``pyarrow.fs.copy_files`` of the same shard files to another prefix, MB/s
  each (goal: sync within 2x, i.e. ratio >= 0.5);
- **reading**: the same store on local disk and on the S3 server: a full
  ``scan_moves``, ``get_game`` of random ids (each from a fresh open: cold),
  and one ``PositionDataset`` epoch; the ratio is local time / S3 time
  (goal: >= 0.5, at least half as fast);
- **open**: open to the first answered ``count_games`` of the store on S3,
  and of a ``--many-shards`` store (default 0: skipped; 10,000 is the goal's
  size, under 3 s).

Prints a table and a JSON line (``--json FILE`` writes it too).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # helpers.s3server

import pyarrow.fs as pafs  # noqa: E402

import gamestore  # noqa: E402
from gamestore.testing import synth  # noqa: E402
from gamestore.backend import BACKEND  # noqa: E402
from gamestore.replicate import committed_shards  # noqa: E402
from gamestore.storage import Storage  # noqa: E402
from helpers.s3server import S3Server  # noqa: E402


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _store_bytes(storage: Storage) -> int:
    return sum(e.size for e in storage.list_files("shards"))


def _build(path: Path, games: int, shards: int, seed: int) -> None:
    stamp = path.parent / "corpus.json"
    want = {"games": games, "shards": shards, "seed": seed}
    if stamp.exists() and json.loads(stamp.read_text()) == want and path.exists():
        return
    shutil.rmtree(path, ignore_errors=True)
    per = max(1, games // shards)
    with gamestore.open(path, fsync=False, vectors=synth.VECTORS) as s:
        chunk: list[dict] = []
        for game in synth.iter_games(games, seed=seed):
            chunk.append(game)
            if len(chunk) == per:
                s.write_games(chunk)
                s.flush()
                chunk = []
        if chunk:
            s.write_games(chunk)
    stamp.write_text(json.dumps(want))


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _scan(location) -> int:
    with gamestore.open(location, create=False) as s:
        return sum(b.num_rows for b in s.scan_moves(columns=["game_id", "move_number", "policy"]))


def _gets(location, ids: list[str]) -> int:
    with gamestore.open(location, create=False) as s:
        return sum(len(s.get_game(g)["moves"]) for g in ids)


def _epoch(location) -> int:
    from gamestore.torch import PositionDataset

    ds = PositionDataset(location, batch_size=512, shuffle=True, seed=1)
    return sum(len(b["game_id"]) for b in ds)


def _open_count(location) -> int:
    with gamestore.open(location, create=False) as s:
        return s.count_games()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--games", type=int, default=4000)
    ap.add_argument("--shards", type=int, default=40)
    ap.add_argument("--gets", type=int, default=200)
    ap.add_argument("--many-shards", type=int, default=0, help="also time opening a store of this many shards on S3")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    local = args.workdir / "store"
    _build(local, args.games, args.shards, args.seed)
    res: dict = {"backend": BACKEND, "games": args.games, "shards": args.shards, "load_before": _load()}
    s3 = S3Server()
    try:
        bucket = s3.bucket()
        work = args.workdir / "work"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(local, work)
        # -- incremental sync --------------------------------------------------------------------------
        hub = s3.uri(bucket, "hub")
        first = gamestore.sync(work, hub, fsync=False)
        base = _store_bytes(Storage.from_location(hub))
        new = synth.games(max(1, args.games // 100), seed=args.seed + 1000)
        with gamestore.open(work, fsync=False) as s:
            s.write_games(new)
        inc = gamestore.sync(work, hub, fsync=False)
        res["incremental"] = {
            "store_bytes": base, "first_sync_bytes": first.bytes_copied, "new_games": len(new),
            "next_sync_bytes": inc.bytes_copied, "fraction": inc.bytes_copied / base,
        }
        # -- sync throughput vs pyarrow.fs.copy_files, alternating, best of 2 each -------------------------
        fs = s3.filesystem()
        src_bytes = _store_bytes(Storage.from_location(local))
        t_sync, t_copy = [], []
        for i in range(2):
            t, _ = _timed(lambda: gamestore.sync(local, s3.uri(bucket, f"sync{i}"), fsync=False))
            t_sync.append(t)
            t, _ = _timed(lambda: pafs.copy_files(str(local / "shards"), f"{bucket}/copy{i}/shards",
                                                  source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs))
            t_copy.append(t)
        res["throughput"] = {
            "bytes": src_bytes, "sync_mb_s": src_bytes / 1e6 / min(t_sync), "copy_files_mb_s": src_bytes / 1e6 / min(t_copy),
        }
        res["throughput"]["ratio"] = res["throughput"]["sync_mb_s"] / res["throughput"]["copy_files_mb_s"]
        # -- reading: local vs S3, same store, alternating --------------------------------------------------
        remote = s3.uri(bucket, "sync0")
        with gamestore.open(local, create=False) as s:
            ids = s.query_games(columns=["game_id"]).column("game_id").to_pylist()
        sample = random.Random(1).sample(ids, min(args.gets, len(ids)))
        reads: dict = {}
        for name, fn in (("scan", _scan), ("get_game", lambda loc: _gets(loc, sample)), ("positions", _epoch),
                         ("open_count", _open_count)):
            tl, tr = [], []
            for _ in range(2):
                t, a = _timed(lambda: fn(local))
                tl.append(t)
                t, b = _timed(lambda: fn(remote))
                tr.append(t)
                assert a == b, (name, a, b)
            reads[name] = {"local_s": min(tl), "s3_s": min(tr), "ratio": min(tl) / min(tr)}
        res["reading"] = reads
        # -- the server's ceiling: the store's moves files read whole with plain GETs, 1 and 4 at a time ---------
        files = [e.path for e in Storage.from_location(remote).list_files("shards") if e.path.endswith("/moves.arrow")]
        rs = Storage.from_location(remote)
        moves_bytes = sum(e.size for e in rs.list_files("shards") if e.path.endswith("/moves.arrow"))
        ceiling = {}
        for threads in (1, 4):
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(threads) as pool:
                t, _ = _timed(lambda: list(pool.map(rs.read_bytes, files)))
            ceiling[f"get_mb_s_{threads}"] = moves_bytes / 1e6 / t
        t, _ = _timed(lambda: [rs.read_bytes(f, large=True) for f in files])  # the storage layer's ranged GETs
        ceiling["ranged_mb_s"] = moves_bytes / 1e6 / t
        t, _ = _timed(lambda: [len((local / f).read_bytes()) for f in files])
        ceiling["local_read_mb_s"] = moves_bytes / 1e6 / t
        res["server"] = ceiling
        if args.many_shards:
            res["many_shards"] = _many_shards(s3, bucket, args.workdir, args.many_shards)
    finally:
        s3.close()
    res["load_after"] = _load()
    _print(res)
    if args.json:
        args.json.write_text(json.dumps(res))
    return res


def _many_shards(s3: S3Server, bucket: str, workdir: Path, n: int) -> dict:
    """A store of ``n`` one-game shards: built locally, copied to S3, opened to the first count."""
    path = workdir / f"many-{n}"
    stamp = workdir / f"many-{n}.json"
    if not stamp.exists():
        shutil.rmtree(path, ignore_errors=True)
        base = synth.games(1, seed=3)[0]
        with gamestore.open(path, fsync=False) as s:
            for i in range(n):  # small games: the cost under test is per shard
                s.write_games([dict(base, game_id=f"many-{i}", moves=base["moves"][:8])])
                s.flush()
        stamp.write_text("{}")
    fs = s3.filesystem()
    t_copy, _ = _timed(lambda: pafs.copy_files(str(path), f"{bucket}/many", source_filesystem=pafs.LocalFileSystem(),
                                               destination_filesystem=fs))
    uri = s3.uri(bucket, "many")
    assert len(committed_shards(Storage.from_location(uri))) == n
    t_local, a = _timed(lambda: _open_count(path))
    t_s3, b = _timed(lambda: _open_count(uri))
    assert a == b == n
    return {"shards": n, "open_local_s": t_local, "open_s3_s": t_s3, "upload_s": t_copy}


def _print(res: dict) -> None:
    print(f"backend={res['backend']} games={res['games']:,} shards={res['shards']} load {res['load_before']} -> {res['load_after']}")
    inc = res["incremental"]
    print(f"incremental sync: +{inc['new_games']} games moved {inc['next_sync_bytes']:,} of {inc['store_bytes']:,} bytes"
          f" = {100 * inc['fraction']:.2f}% (goal <= 1.5%)")
    th = res["throughput"]
    print(f"sync {th['sync_mb_s']:.1f} MB/s vs pyarrow.fs.copy_files {th['copy_files_mb_s']:.1f} MB/s:"
          f" ratio {th['ratio']:.2f} (goal >= 0.5)")
    for name, r in res["reading"].items():
        print(f"{name:<11} local {r['local_s']:.2f} s  S3 {r['s3_s']:.2f} s  local/S3 {r['ratio']:.2f} (goal >= 0.5)")
    sv = res["server"]
    print(f"server ceiling: plain GETs of the moves files {sv['get_mb_s_1']:.1f} MB/s (1 at a time),"
          f" {sv['get_mb_s_4']:.1f} MB/s (4 at a time); one file at a time as 1 MB ranged GETs, 4 at once"
          f" (Storage.read_bytes(large=True)) {sv['ranged_mb_s']:.1f} MB/s; local file reads {sv['local_read_mb_s']:.0f} MB/s")
    if "many_shards" in res:
        m = res["many_shards"]
        print(f"open of {m['shards']:,} shards: S3 {m['open_s3_s']:.2f} s (goal < 3 s), local {m['open_local_s']:.2f} s")


if __name__ == "__main__":
    main()
