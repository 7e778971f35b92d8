"""``gamestore info`` and ``gamestore sql``: what a store holds."""
from __future__ import annotations

import argparse
import sys

from .output import FORMATTER, info_lines, open_existing, wrap
from .progress import Output, add_output_arguments

__all__ = ["register"]


def cmd_info(args: argparse.Namespace) -> int:
    with open_existing(args.store) as store:
        info = store.info()
    Output.from_args(args).result(info, info_lines(info))
    return 1 if info["damaged_shards"] else 0  # done, but a damaged shard's games are missing (named above)


def cmd_sql(args: argparse.Namespace) -> int:
    from ..ops.query import write_query

    with open_existing(args.store) as store:
        rows = write_query(store, args.query, fmt=args.format, output=args.output, max_width=args.max_width,
                           unsafe=args.unsafe)
    if args.output is not None:
        print(f"{rows} rows written to {args.output}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info", help="games, moves, shards, bytes on disk, per-config counts", formatter_class=FORMATTER,
        epilog="examples:\n  gamestore info /data/store\n  gamestore info /data/store --json | jq .games",
    )
    p.add_argument("store")
    add_output_arguments(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "sql", help="run a SQL query over games, moves, players, policies, shards",
        formatter_class=FORMATTER,
        description=wrap(
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
