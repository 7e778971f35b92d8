"""``gamestore report``: the operator's picture of a store, as one self-contained HTML file."""
from __future__ import annotations

import argparse

from .output import FORMATTER, open_existing, wrap
from .progress import Output, add_output_arguments

__all__ = ["register"]

def cmd_report(args: argparse.Namespace) -> int:
    from ..report import parse_duration, write_report

    try:
        import vl_convert  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"gamestore report needs the report extra: pip install 'gamestore[report]' ({exc})") from None
    out = Output.from_args(args)
    since = parse_duration(args.since) if args.since else None
    quiet_after = parse_duration(args.quiet_after)
    with open_existing(args.store) as store, out.steps("report") as steps:
        result = write_report(store, args.output, where=args.where, since=since, quiet_after=quiet_after,
                              sample_moves=args.sample_moves, progress=steps.step)
    out.result(result.to_dict(), f"wrote {result.path}: {result.bytes / 2**20:.2f} MB, {result.charts} charts,"
               f" {result.games:,} games ({result.positions:,} positions) in {result.seconds:.1f} s")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from ..report.queries import DEFAULT_SAMPLE_MOVES

    p = sub.add_parser(
        "report", help="write an HTML report with charts: throughput, lengths, outcomes, freshness, training signal, health",
        formatter_class=FORMATTER,
        description=wrap(
            "One self-contained HTML file (opens with no network): games and positions per hour per config and per"
            " source/node, game length distributions, win rate by seat and termination reasons, data freshness"
            " (quiet configs in a warning colour), policy entropy, candidate counts, search visits and root values,"
            " and store health (shards, bytes per move, compaction backlog, duplicates, damaged shards); every chart"
            " with a copyable table of its numbers. Needs the report extra: pip install 'gamestore[report]'."),
        epilog="examples:\n"
        "  gamestore report /data/store -o report.html\n"
        "  gamestore report /data/store --since 24h --where \"source = 'selfplay'\" -o today.html\n"
        "durations: 90s, 30m, 6h, 2d, 1w (a bare number is hours)",
    )
    p.add_argument("store")
    p.add_argument("-o", "--output", default="report.html", help="the HTML file to write (default report.html)")
    p.add_argument("--since", default=None, metavar="DURATION", help="only games created in the last DURATION")
    p.add_argument("--where", default=None, help="SQL predicate over the games view")
    p.add_argument("--quiet-after", default="1h", metavar="DURATION",
                   help="flag a config whose newest game is older than this (default 1h)")
    p.add_argument("--sample-moves", type=int, default=DEFAULT_SAMPLE_MOVES,
                   help=f"moves of the newest games read for the training-signal charts (default {DEFAULT_SAMPLE_MOVES:,})")
    add_output_arguments(p)
    p.set_defaults(func=cmd_report, errors=(ImportError,))
