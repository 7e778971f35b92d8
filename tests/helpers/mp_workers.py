"""Child processes for the multi-process and crash tests (not collected by pytest).

Run as ``python tests/helpers/mp_workers.py ROLE JSON_ARGS`` with the environment of
:func:`helpers.subprocess_env` (the gamestore under test on ``PYTHONPATH``).  Roles:

``writer``   writes batches of games (half of them move by move through a
             game writer, plus one aborted game per batch), flushes after
             each batch and appends the ids of every flushed game to its ack
             file only after ``flush()`` returned.
``crasher``  a writer that SIGKILLs itself at the n-th time it reaches a
             chosen phase (encode, shard file write, before/after the commit
             rename, catalog segment write, config write), or runs until the
             parent kills it at a random moment (phase ``random``).
``reader``   until a stop file appears: scans moves, queries, runs SQL and
             get_game on another process's games, checking each snapshot is
             consistent (kind ``acks``: every acknowledged game visible, none
             twice); writes a JSON report.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

import gamestore
from gamestore.testing import synth

BOARDS = ("square8", "hex8", "square19", "hexagonal")


def make_games(prefix: str, n: int, *, seed: int, max_moves: int) -> list[dict]:
    """``n`` synthetic games with ids ``<prefix>-<i>``, cut to ``max_moves`` moves (deterministic)."""
    board = BOARDS[seed % len(BOARDS)]
    out = []
    for i, g in enumerate(synth.games(n, board_type=board, num_players=2, seed=seed)):
        g["game_id"] = f"{prefix}-{i}"
        g["moves"] = g["moves"][:max_moves]
        g.pop("snapshots", None)
        out.append(g)
    return out


def write_via_game_writer(store, game: dict) -> None:
    result_keys = ("winner", "termination_reason", "game_status", "completed_at", "duration_ms")
    fields = {k: v for k, v in game.items() if k not in ("moves", "game_id") and k not in result_keys}
    with store.game_writer(game["game_id"], **fields) as w:
        for move in game["moves"]:
            w.add_move(move)
        w.finalize(**{k: game[k] for k in result_keys if k in game})


def _ack(path: Path, ids: list[str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, ("".join(f"{i}\n" for i in ids)).encode())
    finally:
        os.close(fd)


def _write_loop(store, args: dict, *, on_batch=None) -> dict:
    wid = args["wid"]
    ack = Path(args["ack_dir"]) / f"{wid}.txt"
    latencies = []
    for b in range(args["batches"]):
        if on_batch is not None:
            on_batch(b)
        games = make_games(f"{wid}-b{b}", args["batch_size"], seed=args["seed"] * 1000 + b, max_moves=args["max_moves"])
        t0 = time.perf_counter()
        half = len(games) // 2
        store.write_games(games[:half])
        for g in games[half:]:
            write_via_game_writer(store, g)
        # a game that is aborted half way must never be seen
        doomed = make_games(f"{wid}-b{b}-aborted", 1, seed=args["seed"] * 1000 + b + 500, max_moves=5)[0]
        w = store.game_writer(doomed["game_id"], board_type=doomed["board_type"], num_players=2)
        for m in doomed["moves"]:
            w.add_move(m)
        w.abort()
        store.flush()
        latencies.append(time.perf_counter() - t0)
        _ack(ack, [g["game_id"] for g in games])
    return {"latencies": latencies}


def role_writer(args: dict) -> None:
    with gamestore.open(args["store"], fsync=args.get("fsync", True)) as store:
        report = _write_loop(store, args)
    Path(args["report"]).write_text(json.dumps(report))


# -- crash injection -----------------------------------------------------------------------
def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _install_kill(phase: str, nth: int, store_path: Path) -> None:
    """Make this process SIGKILL itself the ``nth`` time it reaches ``phase``."""
    from gamestore import catalog_snapshot, codec, shard, shardwrite
    from gamestore import store as store_mod

    count = {"n": 0}

    def hit() -> bool:
        count["n"] += 1
        return count["n"] >= nth

    if phase == "encode":
        orig_encode = codec.encode_games

        def encode_games(*a, **k):
            out = orig_encode(*a, **k)
            if hit():
                _die()
            return out

        codec.encode_games = encode_games
    elif phase == "shard_write":
        orig_ipc = shardwrite._write_ipc

        def _write_ipc(path, *a, **k):
            orig_ipc(path, *a, **k)
            if Path(path).name == shard.GAMES_FILE and hit():
                # moves.arrow and games.arrow are on disk, the manifest is not: truncate to look half-written
                with open(path, "r+b") as f:
                    f.truncate(max(1, os.path.getsize(path) // 2))
                _die()

        shardwrite._write_ipc = _write_ipc
    elif phase in ("pre_rename", "post_rename"):
        orig_rename = os.rename
        tmp_dir = str(store_path / "tmp")

        def rename(src, dst, *a, **k):
            is_commit = str(src).startswith(tmp_dir)
            if is_commit and phase == "pre_rename" and hit():
                _die()
            orig_rename(src, dst, *a, **k)
            if is_commit and phase == "post_rename" and hit():
                _die()

        os.rename = rename
    elif phase == "segment":
        orig_segment = catalog_snapshot.write_segment

        def _write_segment(storage, rel, table):
            if hit():
                path = storage.local_path(rel)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.1.tmp")
                tmp.write_bytes(b"PAR1 half written")
                _die()
            orig_segment(storage, rel, table)

        catalog_snapshot.write_segment = _write_segment
    elif phase == "config":
        orig_atomic = store_mod.write_json

        def _atomic_write_json(storage, rel, obj, *, fsync=True):
            if rel == store_mod.CONFIG_FILE and hit():
                path = storage.local_path(rel)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.1.tmp")
                tmp.write_text('{"format_version": 1, "vec')
                _die()
            orig_atomic(storage, rel, obj, fsync=fsync)

        store_mod.write_json = _atomic_write_json
    elif phase != "random":
        raise ValueError(f"unknown phase {phase!r}")


def role_crasher(args: dict) -> None:
    store_path = Path(args["store"])
    _install_kill(args["phase"], args.get("nth", 1), store_path)
    with gamestore.open(store_path, shard_games=args.get("shard_games", 4096)) as store:
        if args["phase"] == "config":

            def on_batch(b: int) -> None:
                store.declare_vectors({f"extra_{args['wid']}_{b}": 3})
        else:
            on_batch = None
        Path(args["ready"]).write_text("ready")
        _write_loop(store, args, on_batch=on_batch)
    # reaching this line means the phase was never hit: the parent counts it as "finished"


# -- readers --------------------------------------------------------------------------------
def role_reader(args: dict) -> None:
    stop = Path(args["stop"])
    kind = args["kind"]
    report = {"kind": kind, "iterations": 0, "errors": [], "counts": []}
    rnd = random.Random(args.get("seed", 0))
    deadline = time.monotonic() + args.get("max_seconds", 300)
    with gamestore.open(args["store"], create=False) as store:
        last = 0
        while True:
            final = stop.exists() or time.monotonic() > deadline
            try:
                if kind == "scan":
                    # one scan: every game seen must have all its moves, numbered as written
                    locs = store.game_locations()
                    expect = dict(zip(locs.column("game_id").to_pylist(), locs.column("num_moves").to_pylist()))
                    seen: dict[str, list[int]] = {}
                    for batch in store.scan_moves(columns=["game_id", "move_number"], batch_size=4096):
                        for gid, mn in zip(batch.column("game_id").to_pylist(), batch.column("move_number").to_pylist()):
                            seen.setdefault(gid, []).append(mn)
                    for gid, nums in seen.items():
                        if gid not in expect and "-aborted" not in gid:
                            continue  # committed after game_locations ran
                        if "-aborted" in gid:
                            report["errors"].append(f"aborted game {gid} visible")
                        elif len(nums) != expect[gid] or nums != sorted(nums) or len(set(nums)) != len(nums):
                            report["errors"].append(f"game {gid}: {len(nums)} move rows, catalog says {expect[gid]}")
                    missing = set(expect) - set(seen)
                    if missing:
                        report["errors"].append(f"{len(missing)} cataloged games not scanned, e.g. {sorted(missing)[:2]}")
                    n = len(expect)
                elif kind == "query":
                    n = store.count_games()
                    if n:
                        ids = store.query_games(columns=["game_id", "num_moves"], order_by="random()", limit=3).to_pylist()
                        for row in ids:
                            g = store.get_game(row["game_id"])
                            if len(g["moves"]) != row["num_moves"]:
                                report["errors"].append(f"get_game {row['game_id']}: {len(g['moves'])} moves != {row['num_moves']}")
                    if store.count_games("game_id LIKE '%-aborted%'"):
                        report["errors"].append("aborted game visible")
                elif kind == "acks":
                    # every game whose flush returned before this look is visible after a refresh() (reads
                    # pick up other processes' shards in the background), and no game twice
                    acked = [line for f in sorted(Path(args["ack_dir"]).glob("*.txt"))
                             for line in f.read_text().splitlines() if line]
                    store.refresh()
                    ids = store.query_games(columns=["game_id"]).column("game_id").to_pylist()
                    n = len(ids)
                    if len(set(ids)) != n:
                        report["errors"].append(f"{n - len(set(ids))} games shown twice")
                    missing = set(acked) - set(ids)
                    if missing:
                        report["errors"].append(f"{len(missing)} flushed games not visible, e.g. {sorted(missing)[:2]}")
                else:  # sql: one statement is one consistent snapshot
                    rows = store.sql(
                        "SELECT (SELECT count(*) FROM games), (SELECT count(DISTINCT game_id) FROM games),"
                        " (SELECT coalesce(sum(num_moves), 0) FROM games), (SELECT count(*) FROM moves),"
                        " (SELECT count(DISTINCT game_id) FROM moves)"
                    ).fetchall()[0]
                    games, distinct, moves_cat, moves_rows, move_games = rows
                    if games != distinct or moves_cat != moves_rows or move_games != games:
                        report["errors"].append(f"inconsistent snapshot {rows}")
                    n = games
                if n < last:
                    report["errors"].append(f"game count went down: {last} -> {n}")
                last = n
                report["counts"].append(n)
                report["iterations"] += 1
            except Exception as exc:  # any exception (a lock error above all) is a failure
                report["errors"].append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-800:]}")
            if final:
                break
            time.sleep(args.get("pause", 0.05))
    Path(args["report"]).write_text(json.dumps(report))


ROLES = {"writer": role_writer, "crasher": role_crasher, "reader": role_reader}

if __name__ == "__main__":
    ROLES[sys.argv[1]](json.loads(sys.argv[2]))
