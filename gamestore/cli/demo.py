"""``gamestore demo``: a synthetic self-play run written into a new store, then shown."""
from __future__ import annotations

import argparse
import datetime
import json

from .output import info_lines, print_relation
from .progress import Output, add_output_arguments

__all__ = ["register"]

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
    from gamestore.testing import synth

    out = Output.from_args(args)
    # every config's run ends about now, as on a live cluster (`gamestore report` shows it fresh)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    with gamestore.open(args.store, profile="ringrift") as store:
        total = 0
        for i, (board, players, share) in enumerate(DEMO_CONFIGS):
            n = max(1, round(args.games * share))
            games = synth.games(n, board_type=board, num_players=players, seed=args.seed * 100 + i,
                                snapshot_every=args.snapshot_every,
                                start_time=now - n * synth.BOARDS[board].game_interval)
            total += store.write_games(out.progress(games, desc=f"demo {board} {players}p", unit="game"))
        store.flush()
        print(f"wrote {total} synthetic self-play games into {store.path}\n")
        print("\n".join(info_lines(store.info())))
        print("\nSQL> " + DEMO_QUERY.replace("\n", "\n     "))
        print_relation(store.sql(DEMO_QUERY))
        sample = store.query_games(columns=["game_id"], order_by="created_at DESC", limit=1).column("game_id")[0].as_py()
        game = store.get_game(sample)
        first = next((m for m in game["moves"] if "policy" in m), game["moves"][0])
        print(f"\nnewest game {sample}: {len(game['moves'])} moves; first move with a policy:")
        print("  " + json.dumps({k: v for k, v in first.items() if k not in ("search", "vectors")}, default=str)[:300])
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="write a synthetic self-play run into a new store and show it",
                       epilog="example: gamestore demo /tmp/demo-store --games 500")
    p.add_argument("store")
    p.add_argument("--games", type=int, default=500, help="number of games (default 500)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snapshot-every", type=int, default=None, help="store a state snapshot every N moves")
    add_output_arguments(p, json_output=False)
    p.set_defaults(func=cmd_demo)
