"""``get_game`` latency on a store of 10,000 synthetic games, with its split and the SQLite baseline.

    python benchmarks/bench_get_game.py --workdir /tmp/gs-get-game [--games 10000] [--samples 2000]

Builds (once; reused while ``--workdir`` holds a store of ``--games`` games)
a square8 gamestore store and the GameReplayDB-shaped SQLite baseline from
the same ``synth.iter_games(n, seed=...)`` corpus, then times, over the same
random game ids:

- ``get_game`` on gamestore and on SQLite, calls interleaved so both see the
  same machine load (the machine is shared: compare the ratio, and read the
  load average printed with the figures);
- the split of one gamestore call, each part timed on its own with the
  caches bypassed: catalog lookup; the whole-batch path (the pure-Python
  backend's, and the compiled one's before the point reader): moves batch
  read (Arrow's IPC reader, and the one-zstd-context reader), decoder
  set-up, moves decode, game row decode (one-row ``to_pylist`` + header);
  the compiled path get_game takes: ``point_moves`` (gamestore/pointread.py:
  decompress the buffers the game's columns use, build the dicts),
  ``point_moves_cached`` (the same batch again: its buffers cached),
  ``game_row`` (the compiled row reader + header);
- neighbour reads: ``get_game`` of a game whose batch was read by the call
  before (what the batch cache makes cheap);
- with ``--prefix-ab``: get_game with the point reader decompressing whole
  buffers against only the prefix up to the game's last row, calls alternated,
  and the bytes each decompresses.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gamestore  # noqa: E402
from gamestore import codec, pointread, readpath, shard  # noqa: E402
from gamestore.testing import synth
from gamestore.records import games_equal  # noqa: E402
from gamestore.backend import BACKEND, selected  # noqa: E402
from benchmarks.sqlite_baseline import SqliteBaseline  # noqa: E402

_CHUNK = 500


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _build(work: Path, n: int, seed: int, *, sqlite: bool, batch_rows: int) -> None:
    stamp = work / "corpus.json"
    want = {"games": n, "seed": seed, "board_type": "square8", "sqlite": sqlite, "batch_rows": batch_rows}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t = time.perf_counter()
    db = SqliteBaseline(work / "replay.db") if sqlite else None
    with gamestore.open(work / "gamestore", vectors=synth.VECTORS, batch_rows=batch_rows) as store:
        chunk: list[dict] = []
        for i, game in enumerate(synth.iter_games(n, seed=seed), 1):
            chunk.append(game)
            if len(chunk) == _CHUNK or i == n:
                store.write_games(chunk)
                if db is not None:
                    db.write_games(chunk)
                chunk = []
                print(f"  built {i:,}/{n:,} games ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
        store.flush()
    if db is not None:
        db.checkpoint()
        db.close()
    stamp.write_text(json.dumps(want))


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1e3


def _stats(xs: list[float]) -> dict[str, float]:
    return {"p50_ms": _pct(xs, 0.50), "p99_ms": _pct(xs, 0.99), "mean_ms": statistics.fmean(xs) * 1e3}


def _time(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _cpu(fn: Callable[[], Any]) -> float:
    t = time.thread_time()
    fn()
    return time.thread_time() - t


def _split(store: Any, ids: list[str]) -> dict[str, dict[str, float]]:
    """Each part of a get_game call timed alone (the calling thread's CPU time: steadier than the wall clock on a
    loaded machine), uncached (the batch and row caches bypassed)."""
    _time = _cpu
    cat = store._catalog
    parts: dict[str, list[float]] = {
        "locate": [], "batch_read_arrow": [], "batch_read": [], "decoder_setup": [], "moves_decode": [],
        "game_row_decode": [], "point_moves": [], "point_moves_cached": [], "game_row": [],
    }
    backend = selected()
    for gid in ids:
        loc = None

        def locate() -> None:
            nonlocal loc
            cat.refresh()
            loc = cat.locate(gid)

        parts["locate"].append(_time(locate))
        assert loc is not None
        reader = cat.reader(loc.shard_id)
        index = reader.batch_index(loc.move_offset)
        parts["batch_read_arrow"].append(_time(lambda: reader.batch(index)))
        got: list = []
        parts["batch_read"].append(_time(lambda: got.append(reader.point_read(index)[0])))  # gamestore/ipc_batch.py
        batch = got[0]
        parts["decoder_setup"].append(_time(lambda: got.append(backend.batch_decoder(batch, reader.vectors, reader.strings))))
        decoder = got[1]
        start = loc.move_offset - reader.batch_starts[index]
        parts["moves_decode"].append(_time(lambda: decoder.decode(start, start + loc.num_moves)))
        parts["game_row_decode"].append(
            _time(lambda: codec.header_from_row(reader.games.slice(loc.row, 1).to_pylist()[0]))
        )
        # what get_game does now (compiled backend): the point reader's moves (zstd of the buffers its columns
        # use, then the dicts), again from the cached buffers, and the game row (compiled reader) + header
        shard.BATCH_CACHE.clear()
        stop = start + loc.num_moves
        parts["point_moves"].append(_time(lambda: pointread.decode(reader, index, start, stop)))
        parts["point_moves_cached"].append(_time(lambda: pointread.decode(reader, index, start, stop)))
        shard.ROW_CACHE.clear()
        parts["game_row"].append(_time(lambda: codec.header_from_row(reader.game_row(loc.row))))
    return {k: _stats(v) for k, v in parts.items()}


def _ab(store: Any, sample: list[str]) -> dict[str, dict[str, float]]:
    """CPU per call of the whole-batch path (main before the point reader: Arrow assembly, ``as_py()`` rows) and the
    point path, calls alternated over the same ids (both see the same load), caches cleared before each call."""
    real_decode, real_rows = pointread.decode, readpath.compiled_rows
    cpu: dict[str, list[float]] = {"whole-batch path": [], "point path": []}
    try:
        for gid in sample:
            for name in cpu:
                old = name == "whole-batch path"
                pointread.decode = (lambda *a, **k: None) if old else real_decode  # type: ignore[assignment]
                readpath.compiled_rows = (lambda games: None) if old else real_rows  # type: ignore[assignment]
                for r in store._catalog.readers():
                    r.row_reader = None
                shard.BATCH_CACHE.clear()
                shard.ROW_CACHE.clear()
                cpu[name].append(_cpu(lambda: store.get_game(gid)))
    finally:
        pointread.decode, readpath.compiled_rows = real_decode, real_rows  # type: ignore[assignment]
    return {k: _stats(v) for k, v in cpu.items()}


def _prefix_ab(store: Any, sample: list[str]) -> dict[str, Any]:
    """CPU per call of get_game with every needed buffer decompressed whole and with only the prefix up to the
    game's last row (libzstd's streaming API), calls alternated over the same ids, the batch cache cleared before
    each; and the bytes decompressed per call."""
    from gamestore import _decode

    addresses = pointread._zstd_addresses()
    if addresses is None or len(addresses) < 7:
        return {}
    modes = {"whole buffers": addresses[:4], "prefix only": addresses}
    cpu: dict[str, list[float]] = {k: [] for k in modes}
    decoded = dict.fromkeys(modes, 0)
    cat = store._catalog
    try:
        for n, gid in enumerate(sample):
            loc = cat.locate(gid)
            reader = cat.reader(loc.shard_id)
            key = reader.batch_key(reader.batch_index(loc.move_offset))
            for name in (list(modes) if n % 2 else list(modes)[::-1]):
                _decode.set_zstd(*modes[name])
                shard.BATCH_CACHE.clear()
                shard.ROW_CACHE.clear()
                cpu[name].append(_cpu(lambda: store.get_game(gid)))
                got = shard.BATCH_CACHE.get(key)
                decoded[name] += getattr(got, "decoded", 0)
    finally:
        _decode.set_zstd(*addresses)
    out: dict[str, Any] = {k: _stats(v) for k, v in cpu.items()}
    out["decoded_bytes_per_call"] = {k: v / len(sample) for k, v in decoded.items()}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.workdir)
    _build(work, args.games, args.seed, sqlite=not args.no_sqlite, batch_rows=args.batch_rows)
    rng = random.Random(args.seed)
    out: dict[str, Any] = {"backend": BACKEND, "games": args.games, "samples": args.samples, "load_before": _load()}
    with gamestore.open(work / "gamestore", create=False) as store:
        ids = [row[0] for row in store.sql("SELECT game_id FROM games ORDER BY game_id").fetchall()]
        assert len(ids) == args.games, (len(ids), args.games)
        # lossless spot check against the corpus itself
        firsts = synth.games(5, seed=args.seed)
        assert all(games_equal(store.get_game(g["game_id"]), g) for g in firsts), "get_game differs from the corpus"
        sample = [rng.choice(ids) for _ in range(args.samples)]
        db = None if args.no_sqlite else SqliteBaseline(work / "replay.db")
        for gid in sample[:50]:  # warm: every shard's files opened, views built
            store.get_game(gid)
            if db is not None:
                db.get_game(gid)
        lat: dict[str, list[float]] = {"gamestore": [], "gamestore CPU": [], "sqlite": []}
        for gid in sample:
            c = time.thread_time()
            lat["gamestore"].append(_time(lambda: store.get_game(gid)))
            lat["gamestore CPU"].append(time.thread_time() - c)  # this thread's CPU: the call without the queueing
            if db is not None:
                lat["sqlite"].append(_time(lambda: db.get_game(gid)))
        out["get_game"] = {k: _stats(v) for k, v in lat.items() if v}
        if args.ab:
            out["ab"] = _ab(store, sample)
        if args.prefix_ab and pointread.prefix_reads():
            out["prefix_ab"] = _prefix_ab(store, sample)
        if db is not None:
            out["sqlite_over_gamestore_p50"] = out["get_game"]["sqlite"]["p50_ms"] / out["get_game"]["gamestore"]["p50_ms"]
            db.close()
        # neighbours: the game stored next to the one read before (same moves batch most of the time)
        if args.neighbours:
            order = [g for r in store._catalog.readers() for g in r.manifest["game_ids"]]
            starts = [rng.randrange(len(order) - 1) for _ in range(args.samples // 2)]
            nb = []
            for s in starts:
                store.get_game(order[s])
                nb.append(_time(lambda: store.get_game(order[s + 1])))
            out["neighbour_get_game"] = _stats(nb)
        if args.split:
            out["split"] = _split(store, sample[: max(200, args.samples // 4)])
    out["load_after"] = _load()
    return out


def _print(res: dict[str, Any]) -> None:
    print(f"backend={res['backend']} games={res['games']:,} samples={res['samples']:,} "
          f"load before={res['load_before']} after={res['load_after']}")
    for name, s in res["get_game"].items():
        print(f"  get_game {name:<10} p50 {s['p50_ms']:7.3f} ms  p99 {s['p99_ms']:7.3f} ms  mean {s['mean_ms']:7.3f} ms")
    if "sqlite_over_gamestore_p50" in res:
        print(f"  SQLite p50 / gamestore p50 = {res['sqlite_over_gamestore_p50']:.1f}x")
    if "ab" in res:
        a, b = res["ab"]["whole-batch path"], res["ab"]["point path"]
        print("  A/B, calls alternated, caches cleared (CPU):")
        for name, st in res["ab"].items():
            print(f"    {name:<16} p50 {st['p50_ms']:7.3f} ms  p99 {st['p99_ms']:7.3f} ms  mean {st['mean_ms']:7.3f} ms")
        print(f"    point / whole-batch p50 = {b['p50_ms'] / a['p50_ms']:.2f}")
    if res.get("prefix_ab"):
        pab = res["prefix_ab"]
        print("  decompression A/B, calls alternated, caches cleared (CPU):")
        for name in ("whole buffers", "prefix only"):
            st = pab[name]
            print(f"    {name:<16} p50 {st['p50_ms']:7.3f} ms  p99 {st['p99_ms']:7.3f} ms  mean {st['mean_ms']:7.3f} ms"
                  f"  decompressed {pab['decoded_bytes_per_call'][name] / 1e3:7.1f} KB/call")
        print(f"    prefix / whole p50 = {pab['prefix only']['p50_ms'] / pab['whole buffers']['p50_ms']:.2f}")
    if "neighbour_get_game" in res:
        s = res["neighbour_get_game"]
        print(f"  get_game neighbour  p50 {s['p50_ms']:7.3f} ms  p99 {s['p99_ms']:7.3f} ms")
    if "split" in res:
        print("  split (uncached; CPU time of each part):")
    for name, s in res.get("split", {}).items():
        print(f"    {name:<16} p50 {s['p50_ms']:7.3f} ms  p99 {s['p99_ms']:7.3f} ms  mean {s['mean_ms']:7.3f} ms")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default="/tmp/gamestore-bench-get-game", help="where the corpus stores live (reused)")
    p.add_argument("--games", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--batch-rows", type=int, default=1024, help="the store's moves batch size (gamestore.open batch_rows)")
    p.add_argument("--samples", type=int, default=2000, help="random get_game calls per store")
    p.add_argument("--no-sqlite", action="store_true", help="skip the SQLite baseline")
    p.add_argument("--no-neighbours", dest="neighbours", action="store_false")
    p.add_argument("--no-split", dest="split", action="store_false", help="skip the split (it needs this checkout's reader)")
    p.add_argument("--ab", action="store_true", help="also time the whole-batch path against the point path (compiled backend)")
    p.add_argument("--prefix-ab", action="store_true",
                   help="also time whole-buffer decompression against prefix-only (the point reader's default)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    res = run(args)
    _print(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
