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
    from ..ops import repair_store, verify_store

    out = Output.from_args(args)
    if args.repair:
        r = repair_store(args.store, progress=out.bar("verify", "shard"))
        out.result(r.to_dict(), r.lines())
        return 0 if r.ok else 1  # 0: the store is clean now (what was moved aside is listed)
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


def _watch(args: argparse.Namespace) -> int:
    """``compact --watch``: tiered compaction rounds until SIGINT/SIGTERM (exit 0 when stopped)."""
    import signal
    import threading

    import gamestore

    from ..ops.tiering import RoundResult, TierPolicy, watch

    policy = TierPolicy(fanin=args.fanin, target_moves=args.target_moves, retain_seconds=args.retain)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    out = Output.from_args(args)

    def report(r: RoundResult) -> None:
        if r.merges or r.shards_removed or r.damaged_shards:
            out.event({"round": r.to_dict()}, [
                f"merged {r.shards_merged} shards into {r.merges}; removed {r.shards_removed} replaced shards"
            ] + _damaged_lines(r.damaged_shards))

    try:
        with gamestore.open(args.store, create=False) as store:
            out.info(f"watching {args.store} (fan-in {policy.fanin}, every {args.interval:g} s); stop with Ctrl-C")
            merges = watch(store, policy, interval=args.interval, stop=stop, on_round=report)
            shards, games = store.info()["shards"], store.count_games()
            out.event({"stopped": {"merges": merges, "shards": shards, "games": games}},
                      f"stopped after {merges} merges; {shards} shards, {games:,} games")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    from ..ops import compact

    if args.watch:
        return _watch(args)
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
    out.result(r.to_dict(), [f"{'would remove' if r.dry_run else 'removed'} {r.games_removed:,} games"
               f" ({r.moves_removed:,} moves): {r.shards_rewritten} shards rewritten, {r.shards_removed} removed"]
               + _damaged_lines(r.damaged_shards))
    return 1 if r.damaged_shards else 0


def _damaged_lines(damaged: dict[str, list[str]]) -> list[str]:
    return [f"skipped damaged shard {sid}: {'; '.join(problems)}" for sid, problems in sorted(damaged.items())]


def register(sub: argparse._SubParsersAction) -> None:
    from ..ops import DEFAULT_TARGET_MOVES

    p = sub.add_parser("verify", help="check every shard's checksum and the catalog (--repair: fix what is damaged)",
                       formatter_class=FORMATTER,
                       epilog="examples:\n  gamestore verify /data/store   (exit code 1 when anything is damaged)\n"
                       "  gamestore verify /data/store --repair   (exit code 0 when the store is clean afterwards)")
    p.add_argument("store")
    p.add_argument("--repair", action="store_true",
                   help="move damaged shards into STORE/quarantine/ (with a REASON.json), rebuild the catalog, verify again")
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
        epilog="examples:\n  gamestore compact /data/store --target-moves 65536\n"
               "  gamestore compact /data/store --watch     # runs until stopped, next to the writers",
    )
    p.add_argument("store")
    p.add_argument("--target-moves", type=int, default=DEFAULT_TARGET_MOVES,
                   help=f"moves per compacted shard (default {DEFAULT_TARGET_MOVES})")
    p.add_argument("--dry-run", action="store_true", help="print what would be rewritten, change nothing")
    add_output_arguments(p)
    p.add_argument("--watch", action="store_true",
                   help="keep running: merge small shards into larger ones as writers add them (tiered),"
                        " until Ctrl-C/SIGTERM; one compactor per store")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between --watch rounds (default 1)")
    p.add_argument("--fanin", type=int, default=8, help="--watch: shards of one size tier merged at once (default 8)")
    p.add_argument("--retain", type=float, default=2.0,
                   help="--watch: seconds replaced shards stay on disk for statements reading them (default 2)")
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
