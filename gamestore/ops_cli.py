"""Operator subcommands of ``gamestore``: info, sql, compact, merge, export, prune.

Each command is a thin shell over :mod:`gamestore.ops` / :mod:`gamestore.export`:
it parses arguments, shows progress on a terminal, prints a summary and
returns the exit code (0 done, 1 done but something was skipped, 2 error).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import textwrap
from typing import Callable

from .errors import GamestoreError

__all__ = ["register"]

_FORMATTER = argparse.RawDescriptionHelpFormatter


def _guard(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn OS and query-engine failures into a one-line error and exit code 2."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        import duckdb

        try:
            return func(args)
        except BrokenPipeError:
            # the reader of our stdout went away (e.g. `| head`): stop quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        except GamestoreError:
            raise  # printed by gamestore.cli.main
        except (OSError, duckdb.Error, ValueError) as exc:
            print(f"gamestore {args.command}: error: {exc}", file=sys.stderr)
            return 2

    return run


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=100)


def _open(path: str):
    import gamestore

    return gamestore.open(path, create=False)


def _bar(desc: str, unit: str):
    from .cli import progress

    return lambda items: progress(items, desc=desc, unit=unit)


# ---------------------------------------------------------------------------
@_guard
def cmd_info(args: argparse.Namespace) -> int:
    from .cli import _print_info

    with _open(args.store) as store:
        info = store.info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        _print_info(info)
    return 0


@_guard
def cmd_sql(args: argparse.Namespace) -> int:
    from .sqlout import write_query

    with _open(args.store) as store:
        rows = write_query(store, args.query, fmt=args.format, output=args.output, max_width=args.max_width,
                           unsafe=args.unsafe)
    if args.output is not None:
        print(f"{rows} rows written to {args.output}", file=sys.stderr)
    return 0


@_guard
def cmd_compact(args: argparse.Namespace) -> int:
    from .ops import compact

    r = compact(args.store, target_moves=args.target_moves, dry_run=args.dry_run,
                progress=_bar("compact", "group"))
    verb = "would rewrite" if r.dry_run else "rewrote"
    print(f"{verb} {r.shards_rewritten} shards into {r.shards_written}"
          f" ({r.duplicates_dropped} duplicate copies dropped)")
    print(f"shards: {r.shards_before} before, {r.shards_after} after; {r.games:,} games, {r.moves:,} moves")
    for sid, problems in sorted(r.damaged_shards.items()):
        print(f"skipped damaged shard {sid}: {'; '.join(problems)}")
    return 1 if r.damaged_shards else 0


@_guard
def cmd_merge(args: argparse.Namespace) -> int:
    from .ops import merge

    r = merge(args.sources, args.dest, target_moves=args.target_moves, progress=_bar("merge", "shard"))
    print(f"added {r.games_added:,} games ({r.moves_added:,} moves) to {args.dest}:"
          f" {r.shards_copied} shards copied as is, {r.shards_written} written;"
          f" {r.games_skipped:,} games already there skipped")
    for sid, problems in sorted(r.damaged_shards.items()):
        print(f"skipped damaged shard {sid}: {'; '.join(problems)}")
    return 1 if r.damaged_shards else 0


@_guard
def cmd_export(args: argparse.Namespace) -> int:
    from .cli import progress
    from .export import export_jsonl, export_parquet

    with _open(args.store) as store:
        if args.format == "parquet":
            r = export_parquet(store, args.dest, where=args.where, overwrite=args.overwrite,
                               compression=args.compression,
                               progress=lambda xs, n: progress(xs, desc="export", total=n, unit="shard"))
        else:
            r = export_jsonl(store, args.dest, where=args.where, overwrite=args.overwrite,
                             training_data=not args.no_training_data,
                             progress=lambda xs, n: progress(xs, desc="export", total=n, unit="game"))
    where = "stdout" if args.dest == "-" else ", ".join(r.files)
    print(f"exported {r.games:,} games ({r.moves:,} moves) to {where}", file=sys.stderr)
    return 0


@_guard
def cmd_prune(args: argparse.Namespace) -> int:
    from .ops import prune

    r = prune(args.store, where=args.where, dry_run=args.dry_run, progress=_bar("prune", "shard"))
    if r.dry_run:
        print(f"would remove {r.games_removed:,} games ({r.moves_removed:,} moves):"
              f" {r.shards_rewritten} shards rewritten, {r.shards_removed} removed")
    else:
        print(f"removed {r.games_removed:,} games ({r.moves_removed:,} moves):"
              f" {r.shards_rewritten} shards rewritten, {r.shards_removed} removed")
    return 0


# ---------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    """Add the operator subcommands to the ``gamestore`` parser."""
    from .ops import DEFAULT_TARGET_MOVES

    p = sub.add_parser(
        "info", help="games, moves, shards, bytes on disk, per-config counts", formatter_class=_FORMATTER,
        epilog="examples:\n  gamestore info /data/store\n  gamestore info /data/store --json | jq .games",
    )
    p.add_argument("store")
    p.add_argument("--json", action="store_true", help="print the figures as a JSON object")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "sql", help="run a SQL query over games, moves, players, policies, shards",
        formatter_class=_FORMATTER,
        description=_wrap(
            "Run one read-only DuckDB query (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN) with no file or"
            " network access; safe while writers write. --unsafe runs any statement (COPY, ATTACH, SET, ...) on a"
            " private full-access snapshot: only for trusted input."
        ),
        epilog="examples:\n"
        "  gamestore sql /data/store \"SELECT board_type, num_players, count(*) FROM games GROUP BY 1, 2\"\n"
        "  gamestore sql /data/store \"SELECT * FROM moves WHERE move_number < 10\" --format parquet --output m.parquet\n"
        "formats: table (aligned text), csv (header row; nested values as JSON), json (one object per line),"
        " parquet (needs --output)",
    )
    p.add_argument("store")
    p.add_argument("query")
    p.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table")
    p.add_argument("--output", "-o", default=None, help="write to FILE instead of stdout")
    p.add_argument("--max-width", type=int, default=60, help="table format: cut cells to this many characters")
    p.add_argument("--unsafe", action="store_true",
                   help="trusted input only: allow any statement and file access (COPY, ATTACH, read_csv, ...)")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser(
        "compact", help="merge small shards into full ones (same games before and after)",
        formatter_class=_FORMATTER,
        description=_wrap("Rewrite shards smaller than --target-moves into full ones and drop duplicate copies of a game;"
        " atomic: new shards are committed before old ones are removed, readers never miss or double a game."),
        epilog="example:\n  gamestore compact /data/store --target-moves 65536",
    )
    p.add_argument("store")
    p.add_argument("--target-moves", type=int, default=DEFAULT_TARGET_MOVES,
                   help=f"moves per compacted shard (default {DEFAULT_TARGET_MOVES})")
    p.add_argument("--dry-run", action="store_true", help="print what would be rewritten, change nothing")
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser(
        "merge", help="bring several stores into one, dedup by game id (re-runnable)",
        formatter_class=_FORMATTER,
        description=_wrap("Copy every game of the SRC stores into DST (created if missing), once per game id; the first"
        " source wins. Safe to interrupt and run again."),
        epilog="example:\n  gamestore merge node1/store node2/store node3/store /data/merged",
    )
    p.add_argument("sources", nargs="+", metavar="SRC")
    p.add_argument("dest", metavar="DST")
    p.add_argument("--target-moves", type=int, default=DEFAULT_TARGET_MOVES,
                   help="moves per written shard when games must be filtered")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser(
        "export", help="export games as Parquet (games + moves files) or GameRecord JSONL",
        formatter_class=_FORMATTER,
        description=_wrap("parquet: DEST is a directory receiving games.parquet and moves.parquet (plain types, exact"
        " double probabilities; readable by DuckDB, Spark, pandas). jsonl: DEST is a file ('-' for stdout, '.gz'"
        " compressed) with one RingRift GameRecord per line."),
        epilog="examples:\n"
        "  gamestore export /data/store --format parquet /tmp/export --where \"board_type = 'hex8'\"\n"
        "  gamestore export /data/store --format jsonl games.jsonl.gz --where \"created_at >= '2026-01-01'\"",
    )
    p.add_argument("store")
    p.add_argument("dest")
    p.add_argument("--format", choices=("parquet", "jsonl"), required=True)
    p.add_argument("--where", default=None, help="SQL predicate over the games view")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export")
    p.add_argument("--compression", default="zstd", help="parquet codec (zstd, snappy, gzip, none)")
    p.add_argument("--no-training-data", action="store_true",
                   help="jsonl: leave out policies, search statistics and vectors")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "prune", help="remove the games matching a predicate",
        formatter_class=_FORMATTER,
        description=_wrap("Rewrite the shards holding matching games without them, commit, then remove the old shards;"
        " every game disappears at once and no other game is ever missing."),
        epilog="example:\n  gamestore prune /data/store --where \"num_moves < 5 OR game_status <> 'completed'\" --dry-run",
    )
    p.add_argument("store")
    p.add_argument("--where", required=True, help="SQL predicate over the games view")
    p.add_argument("--dry-run", action="store_true", help="print what would be removed, change nothing")
    p.set_defaults(func=cmd_prune)
