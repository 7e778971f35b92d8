"""The ``gamestore`` command line: one subcommand per operator job.

Core commands live here; command groups of other modules register
themselves through a ``register(subparsers)`` function listed in
``_COMMAND_MODULES``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Iterable, Sequence

from .errors import GamestoreError

_COMMAND_MODULES = ("gamestore.ops_cli", "gamestore.ringrift.cli")


def progress(iterable: Iterable, *, desc: str = "", total: int | None = None, unit: str = "it"):
    """A tqdm progress bar on a terminal, silent otherwise."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=None, leave=False)


DEMO_CONFIGS = (
    ("square8", 2, 0.45),
    ("square8", 3, 0.10),
    ("square8", 4, 0.10),
    ("hex8", 2, 0.20),
    ("square19", 2, 0.10),
    ("hexagonal", 2, 0.05),
)

DEMO_QUERY = """SELECT board_type, num_players, count(*) AS games,
       round(avg(num_moves), 1) AS avg_moves,
       round(avg(CASE WHEN winner = 1 THEN 1.0 ELSE 0.0 END), 3) AS p1_win_rate
FROM games GROUP BY 1, 2 ORDER BY 1, 2"""


def cmd_demo(args: argparse.Namespace) -> int:
    import gamestore
    from gamestore import synth

    with gamestore.open(args.store) as store:
        total = 0
        for i, (board, players, share) in enumerate(DEMO_CONFIGS):
            n = max(1, round(args.games * share))
            games = synth.games(n, board_type=board, num_players=players, seed=args.seed * 100 + i, snapshot_every=args.snapshot_every)
            total += store.write_games(progress(games, desc=f"{board} {players}p", total=n, unit="game"))
        store.flush()
        print(f"wrote {total} synthetic self-play games into {store.path}\n")
        _print_info(store.info())
        print("\nSQL> " + DEMO_QUERY.replace("\n", "\n     "))
        _print_relation(store.sql(DEMO_QUERY))
        sample = store.query_games(columns=["game_id"], order_by="created_at DESC", limit=1).column("game_id")[0].as_py()
        game = store.get_game(sample)
        first = next((m for m in game["moves"] if "policy" in m), game["moves"][0])
        print(f"\nnewest game {sample}: {len(game['moves'])} moves; first move with a policy:")
        print("  " + json.dumps({k: v for k, v in first.items() if k not in ("search", "vectors")}, default=str)[:300])
    return 0


def _print_info(info: dict) -> None:
    bpm = info["bytes_per_move"]
    print(f"store       {info['path']}")
    print(f"games       {info['games']:,}")
    print(f"moves       {info['moves']:,}")
    print(f"shards      {info['shards']}" + (f" ({len(info['damaged_shards'])} damaged)" if info["damaged_shards"] else ""))
    print(f"bytes       {info['bytes_on_disk']:,} on disk" + (f", {bpm:.1f} bytes/move in shards" if bpm else ""))
    print(f"newest game {info['newest_game']}")
    for c in info["configs"]:
        print(f"  {c['board_type']:<10} {c['num_players']}p  {c['games']:>8,} games {c['moves']:>11,} moves")


def _print_relation(rel) -> None:
    table = rel.to_arrow_table()
    names = table.column_names
    rows = [[("" if v is None else str(v)) for v in row.values()] for row in table.to_pylist()]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    print("  ".join(n.ljust(w) for n, w in zip(names, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))


def cmd_verify(args: argparse.Namespace) -> int:
    from .maintenance import verify_store

    report = verify_store(args.store, progress=lambda xs: progress(xs, desc="verify", unit="shard"))
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def cmd_reindex(args: argparse.Namespace) -> int:
    from .maintenance import reindex_store

    games, damaged = reindex_store(args.store, progress=lambda xs: progress(xs, desc="reindex", unit="shard"))
    print(f"catalog rebuilt: {games} games indexed")
    for sid in damaged:
        print(f"skipped damaged shard {sid}")
    return 0 if not damaged else 1


def _open_existing(path: str):
    import gamestore

    return gamestore.open(path, create=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gamestore",
        description="Embedded storage engine for self-play game records.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="write a synthetic self-play run into a new store and show it",
                       epilog="example: gamestore demo /tmp/demo-store --games 500")
    p.add_argument("store")
    p.add_argument("--games", type=int, default=500, help="number of games (default 500)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snapshot-every", type=int, default=None, help="store a state snapshot every N moves")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("verify", help="check every shard's checksum and the catalog",
                       epilog="example: gamestore verify /data/store   (exit code 1 when anything is damaged)")
    p.add_argument("store")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("reindex", help="rebuild the catalog from the shards",
                       epilog="example: gamestore reindex /data/store")
    p.add_argument("store")
    p.set_defaults(func=cmd_reindex)

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GamestoreError as exc:
        print(f"gamestore {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gamestore {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
