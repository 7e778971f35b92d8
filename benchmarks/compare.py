"""gamestore against the SQLite (GameReplayDB) and JSON-in-Parquet baselines, side by side, in one run.

    python -m benchmarks.compare --games 10000 --board square8

Every store receives the same synthetic corpus (``gamestore.testing.synth``),
generated chunk by chunk (generation is not timed).  Reported: bytes per
move on disk, games/s and moves/s written, ``get_game`` p50/p99 latency over
random ids, full-scan moves/s including the policies (gamestore: Arrow
batches with the policy column flattened to numpy; baselines: rows with
``move_probs`` parsed by ``json.loads``), and the encoder's Cython /
pure-Python speed ratio.  Absolute times drift with the machine; the ratios
in the last columns are the result.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pyarrow as pa

import gamestore
from gamestore.testing import synth
from gamestore.records import games_equal, normalize_game
from gamestore.ringrift.profile import BOARD_TYPES as RINGRIFT_BOARD_TYPES

from benchmarks.json_parquet_baseline import JsonParquetBaseline
from benchmarks.sqlite_baseline import SqliteBaseline

STORES = ("gamestore", "sqlite", "parquet")
LABELS = {"gamestore": "gamestore", "sqlite": "SQLite (GameReplayDB v18)", "parquet": "JSON text in Parquet (zstd)"}


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class _GamestoreAdapter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = gamestore.open(path, vectors=synth.VECTORS)

    def write_games(self, records: list[dict]) -> int:
        n = self.store.write_games(records)
        # a full buffer is sealed by a helper thread while write_games returns (gamestore/sealing.py): wait for it,
        # so that its time is this call's and does not run on while the baselines' writes are timed
        job = self.store._sealing
        if job is not None:
            job.wait()
        return n

    def finish(self) -> None:
        self.store.flush()

    def get_game(self, game_id: str) -> dict:
        return self.store.get_game(game_id)

    def scan(self) -> int:
        n = 0
        for batch in self.store.scan_moves(columns=["game_id", "move_number", "policy"]):
            policy = batch.column("policy")
            entries = policy.values  # struct array of every candidate of the batch
            probs = entries.field("prob").to_numpy(zero_copy_only=False)
            keys = entries.field("key").indices.to_numpy(zero_copy_only=False)
            offsets = policy.offsets.to_numpy()
            n += batch.num_rows
            assert len(offsets) == batch.num_rows + 1 and len(probs) == len(keys)
        return n

    def bytes_on_disk(self) -> int:
        return _dir_bytes(self.path)

    def close(self) -> None:
        self.store.close()


class _BaselineAdapter:
    def __init__(self, store: Any, finish: Callable[[], None] | None = None) -> None:
        self.store = store
        self._finish = finish

    def write_games(self, records: list[dict]) -> int:
        return self.store.write_games(records)

    def finish(self) -> None:
        if self._finish is not None:
            self._finish()

    def get_game(self, game_id: str) -> dict:
        return self.store.get_game(game_id)

    def scan(self) -> int:
        n = 0
        for _gid, _num, _policy in self.store.scan_moves():
            n += 1
        return n

    def bytes_on_disk(self) -> int:
        return self.store.bytes_on_disk()

    def close(self) -> None:
        self.store.close()


def _open_stores(work: Path, which: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "gamestore" in which:
        out["gamestore"] = _GamestoreAdapter(work / "gamestore")
    if "sqlite" in which:
        db = SqliteBaseline(work / "replay.db")
        out["sqlite"] = _BaselineAdapter(db, db.checkpoint)
    if "parquet" in which:
        out["parquet"] = _BaselineAdapter(JsonParquetBaseline(work / "json_parquet"))
    return out


def _encoder_ratio(records: list[dict]) -> dict[str, Any]:
    """Encode (and decode) the same moves with both backends; times per move and the ratios."""
    from gamestore.backend import get_backend

    vectors = synth.VECTORS
    canon = [normalize_game(g, vectors=vectors, board_types=RINGRIFT_BOARD_TYPES) for g in records]
    ids = [g["game_id"] for g in canon]
    moves = [g["moves"] for g in canon]
    n = sum(len(m) for m in moves)
    out: dict[str, Any] = {"moves": n}
    try:
        backends = {"python": get_backend("python"), "cython": get_backend("cython")}
    except ImportError as exc:
        out["error"] = f"cython backend unavailable: {exc}"
        return out
    tables = {}
    for name, be in backends.items():
        best = min(_timed(lambda: be.encode_moves(ids, moves, vectors)) for _ in range(3))
        out[f"encode_{name}"] = best
        tables[name] = be.encode_moves(ids, moves, vectors)[0]
    out["equal_arrow"] = tables["python"].equals(tables["cython"])
    for name, be in backends.items():
        out[f"decode_{name}"] = min(_timed(lambda: be.decode_moves(tables[name], vectors)) for _ in range(3))
    out["encode_ratio"] = out["encode_python"] / out["encode_cython"]
    out["decode_ratio"] = out["decode_python"] / out["decode_cython"]
    return out


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="gamestore-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    which = tuple(s for s in STORES if s not in set(args.skip or ()))
    stores = _open_stores(work, which)
    write_s = {k: 0.0 for k in stores}
    n_games = n_moves = 0
    checks: list[dict] = []
    gen_s = 0.0
    t_gen = time.perf_counter()
    it = synth.iter_games(args.games, board_type=args.board, num_players=args.players, seed=args.seed,
                          snapshot_every=args.snapshot_every)
    encoder_sample: list[dict] = []
    while True:
        t0 = time.perf_counter()
        chunk = [g for _, g in zip(range(args.chunk), it)]
        gen_s += time.perf_counter() - t0
        if not chunk:
            break
        if not checks:
            checks = chunk[:5]
            encoder_sample = chunk[: args.encoder_games]
        n_games += len(chunk)
        n_moves += sum(len(g["moves"]) for g in chunk)
        for name, store in stores.items():
            write_s[name] += _timed(lambda: store.write_games(chunk))
        del chunk
        print(f"  wrote {n_games:,}/{args.games:,} games", file=sys.stderr, flush=True)
    for name, store in stores.items():
        write_s[name] += _timed(store.finish)
    print(f"  corpus: {n_games:,} games, {n_moves:,} moves (generated in {time.perf_counter() - t_gen:.0f} s)",
          file=sys.stderr, flush=True)

    results: dict[str, dict[str, Any]] = {k: {} for k in stores}
    ids = [g["game_id"] for g in checks]
    all_ids = _all_ids(args, n_games)
    rnd = random.Random(args.seed)
    sample = [rnd.choice(all_ids) for _ in range(args.latency_samples)]
    for name, store in stores.items():
        r = results[name]
        r["lossless"] = all(games_equal(store.get_game(i), g) for i, g in zip(ids, checks))
        r["bytes"] = store.bytes_on_disk()
        r["bytes_per_move"] = r["bytes"] / n_moves
        r["games_per_s"] = n_games / write_s[name]
        r["moves_per_s"] = n_moves / write_s[name]
        lat = []
        for gid in sample:
            t = time.perf_counter()
            store.get_game(gid)
            lat.append(time.perf_counter() - t)
        lat.sort()
        r["get_p50_ms"] = 1e3 * statistics.median(lat)
        r["get_p99_ms"] = 1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        t = time.perf_counter()
        scanned = store.scan()
        r["scan_moves_per_s"] = scanned / (time.perf_counter() - t)
        r["scanned"] = scanned
        print(f"  measured {name}", file=sys.stderr, flush=True)
    for store in stores.values():
        store.close()
    encoder = _encoder_ratio(encoder_sample) if args.encoder_games else {}
    if not args.workdir and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return {"games": n_games, "moves": n_moves, "stores": results, "encoder": encoder, "workdir": str(work)}


def _all_ids(args: argparse.Namespace, n: int) -> list[str]:
    # ids are a pure function of (board, players, seed, i): no need to keep the corpus
    import hashlib

    out = []
    for i in range(n):
        tag = f"{args.board}-{args.players}p-{args.seed}-{i}"
        out.append(f"{tag}-{hashlib.blake2b(tag.encode(), digest_size=4).hexdigest()}")
    return out


def markdown(res: dict[str, Any]) -> str:
    st = res["stores"]
    names = [n for n in STORES if n in st]
    base = "gamestore" if "gamestore" in st else None
    rows = [
        ("bytes per move on disk", "bytes_per_move", "{:,.1f}", "low"),
        ("write: games/s", "games_per_s", "{:,.0f}", "high"),
        ("write: moves/s", "moves_per_s", "{:,.0f}", "high"),
        ("get_game p50 (ms)", "get_p50_ms", "{:,.2f}", "low"),
        ("get_game p99 (ms)", "get_p99_ms", "{:,.2f}", "low"),
        ("full scan incl. policies: moves/s", "scan_moves_per_s", "{:,.0f}", "high"),
    ]
    head = ["metric"] + [LABELS[n] for n in names]
    others = [n for n in names if n != base] if base else []
    head += [f"gamestore advantage vs {LABELS[n].split(' (')[0]}" for n in others]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, key, fmt, better in rows:
        cells = [label] + [fmt.format(st[n][key]) for n in names]
        for n in others:
            a, b = st[base][key], st[n][key]
            ratio = b / a if better == "low" else a / b
            cells.append(f"{ratio:,.1f}x")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("| lossless round trip (5 games) | " + " | ".join("yes" if st[n]["lossless"] else "NO" for n in names)
                 + " |" + " |" * len(others))
    enc = res.get("encoder") or {}
    out = "\n".join(lines)
    if "encode_ratio" in enc:
        out += (
            f"\n\nEncoder on {enc['moves']:,} moves: Cython {1e6 * enc['encode_cython'] / enc['moves']:.2f} us/move, "
            f"pure Python {1e6 * enc['encode_python'] / enc['moves']:.2f} us/move: **{enc['encode_ratio']:.1f}x**; "
            f"decode Cython {1e6 * enc['decode_cython'] / enc['moves']:.2f} us/move, pure Python "
            f"{1e6 * enc['decode_python'] / enc['moves']:.2f} us/move: **{enc['decode_ratio']:.1f}x**; "
            f"backends produce equal Arrow data: {enc['equal_arrow']}."
        )
    elif "error" in enc:
        out += f"\n\nEncoder ratio not measured: {enc['error']}."
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--games", type=int, default=10_000, help="corpus size (default 10,000)")
    p.add_argument("--board", default="square8", choices=sorted(synth.BOARDS))
    p.add_argument("--players", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snapshot-every", type=int, default=None, help="state snapshots every N moves (default none)")
    p.add_argument("--chunk", type=int, default=1000, help="games generated and written per call")
    p.add_argument("--latency-samples", type=int, default=1000, help="random get_game calls per store")
    p.add_argument("--encoder-games", type=int, default=200, help="games for the Cython/Python encoder ratio (0: skip)")
    p.add_argument("--skip", action="append", choices=STORES, help="leave a store out (repeatable)")
    p.add_argument("--workdir", help="where the stores go (kept); default a temporary directory")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    load_start = os.getloadavg()[0]
    res = run(args)
    snap = f", snapshots every {args.snapshot_every} moves" if args.snapshot_every else ""
    from gamestore import backend

    print(f"\n{res['games']:,} {args.board} {args.players}p games, {res['moves']:,} moves{snap} "
          f"(synth seed {args.seed}); {os.cpu_count()} cores; backend {backend.BACKEND}; "
          f"load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end\n")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
