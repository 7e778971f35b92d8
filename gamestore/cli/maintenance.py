"""Operator jobs that check or rewrite a store: verify, reindex, compact, merge, prune.

Each command parses arguments, shows progress (:mod:`gamestore.cli.progress`:
a bar on a terminal, plain lines otherwise, none with ``-q``), prints a
summary (one JSON document with ``--json``) and returns the exit code (0
done, 1 done but something was damaged or skipped; errors are turned into
exit code 2 by :func:`gamestore.cli.main`).
"""
from __future__ import annotations

import argparse

from .output import FORMATTER, wrap
from .progress import Output, add_output_arguments

__all__ = ["register"]


def cmd_verify(args: argparse.Namespace) -> int:
    from ..ops import verify_store

    out = Output.from_args(args)
    report = verify_store(args.store, progress=out.bar("verify", "shard"))
    out.result(report.to_dict(), report.lines())
    return 0 if report.ok else 1


def cmd_reindex(args: argparse.Namespace) -> int:
    from ..ops import reindex_store

    out = Output.from_args(args)
    games, damaged = reindex_store(args.store, progress=out.bar("reindex", "shard"))
    out.result({"games": games, "damaged_shards": damaged},
               [f"catalog rebuilt: {games} games indexed"] + [f"skipped damaged shard {sid}" for sid in damaged])
    return 0 if not damaged else 1


def cmd_compact(args: argparse.Namespace) -> int:
    from ..ops import compact

    out = Output.from_args(args)
    r = compact(args.store, target_moves=args.target_moves, dry_run=args.dry_run,
                progress=out.bar("compact", "group"))
    verb = "would rewrite" if r.dry_run else "rewrote"
    out.result(r.to_dict(), [
        f"{verb} {r.shards_rewritten} shards into {r.shards_written} ({r.duplicates_dropped} duplicate copies dropped)",
        f"shards: {r.shards_before} before, {r.shards_after} after; {r.games:,} games, {r.moves:,} moves",
    ] + _damaged_lines(r.damaged_shards))
    return 1 if r.damaged_shards else 0


def cmd_merge(args: argparse.Namespace) -> int:
    from ..ops import merge

    out = Output.from_args(args)
    r = merge(args.sources, args.dest, target_moves=args.target_moves, progress=out.bar("merge", "shard"))
    out.result(r.to_dict(), [
        f"added {r.games_added:,} games ({r.moves_added:,} moves) to {args.dest}: {r.shards_copied} shards copied"
        f" as is, {r.shards_written} written; {r.games_skipped:,} games already there skipped",
    ] + _damaged_lines(r.damaged_shards))
    return 1 if r.damaged_shards else 0


def cmd_prune(args: argparse.Namespace) -> int:
    from ..ops import prune

    out = Output.from_args(args)
    r = prune(args.store, where=args.where, dry_run=args.dry_run, progress=out.bar("prune", "shard"))
    out.result(r.to_dict(), f"{'would remove' if r.dry_run else 'removed'} {r.games_removed:,} games"
               f" ({r.moves_removed:,} moves): {r.shards_rewritten} shards rewritten, {r.shards_removed} removed")
    return 0


def _damaged_lines(damaged: dict[str, list[str]]) -> list[str]:
    return [f"skipped damaged shard {sid}: {'; '.join(problems)}" for sid, problems in sorted(damaged.items())]


def register(sub: argparse._SubParsersAction) -> None:
    from ..ops import DEFAULT_TARGET_MOVES

    p = sub.add_parser("verify", help="check every shard's checksum and the catalog",
                       epilog="example: gamestore verify /data/store   (exit code 1 when anything is damaged)")
    p.add_argument("store")
    add_output_arguments(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("reindex", help="rebuild the catalog from the shards",
                       epilog="example: gamestore reindex /data/store")
    p.add_argument("store")
    add_output_arguments(p)
    p.set_defaults(func=cmd_reindex)

    p = sub.add_parser(
        "compact", help="merge small shards into full ones (same games before and after)",
        formatter_class=FORMATTER,
        description=wrap("Rewrite shards smaller than --target-moves into full ones and drop duplicate copies of a game;"
        " atomic: new shards are committed before old ones are removed, readers never miss or double a game."),
        epilog="example:\n  gamestore compact /data/store --target-moves 65536",
    )
    p.add_argument("store")
    p.add_argument("--target-moves", type=int, default=DEFAULT_TARGET_MOVES,
                   help=f"moves per compacted shard (default {DEFAULT_TARGET_MOVES})")
    p.add_argument("--dry-run", action="store_true", help="print what would be rewritten, change nothing")
    add_output_arguments(p)
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser(
        "merge", help="bring several stores into one, dedup by game id (re-runnable)",
        formatter_class=FORMATTER,
        description=wrap("Copy every game of the SRC stores into DST (created if missing), once per game id; the first"
        " source wins. Safe to interrupt and run again."),
        epilog="example:\n  gamestore merge node1/store node2/store node3/store /data/merged",
    )
    p.add_argument("sources", nargs="+", metavar="SRC")
    p.add_argument("dest", metavar="DST")
    p.add_argument("--target-moves", type=int, default=DEFAULT_TARGET_MOVES,
                   help="moves per written shard when games must be filtered")
    add_output_arguments(p)
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser(
        "prune", help="remove the games matching a predicate",
        formatter_class=FORMATTER,
        description=wrap("Rewrite the shards holding matching games without them, commit, then remove the old shards;"
        " every game disappears at once and no other game is ever missing."),
        epilog="example:\n  gamestore prune /data/store --where \"num_moves < 5 OR game_status <> 'completed'\" --dry-run",
    )
    p.add_argument("store")
    p.add_argument("--where", required=True, help="SQL predicate over the games view")
    p.add_argument("--dry-run", action="store_true", help="print what would be removed, change nothing")
    add_output_arguments(p)
    p.set_defaults(func=cmd_prune)
