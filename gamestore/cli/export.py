"""``gamestore export``: Parquet (any store) or RingRift GameRecord JSONL."""
from __future__ import annotations

import argparse

from .output import FORMATTER, open_existing, wrap
from .progress import Output, add_output_arguments

__all__ = ["register"]


def cmd_export(args: argparse.Namespace) -> int:
    from ..ops import export_parquet
    from ..ringrift.jsonl import export_jsonl

    if args.json and args.dest == "-":
        raise ValueError("--json prints the summary on stdout: give a DEST file (the games go to stdout with '-')")
    out = Output.from_args(args)
    with open_existing(args.store) as store:
        if args.format == "parquet":
            r = export_parquet(store, args.dest, where=args.where, overwrite=args.overwrite,
                               compression=args.compression, progress=out.bar("export", "shard"))
        else:
            r = export_jsonl(store, args.dest, where=args.where, overwrite=args.overwrite,
                             training_data=not args.no_training_data, progress=out.bar("export", "game"))
    where = "stdout" if args.dest == "-" else ", ".join(r.files)
    text = f"exported {r.games:,} games ({r.moves:,} moves) to {where}"
    if args.dest == "-":
        out.info(text)  # stdout holds the games
    else:
        out.result(r.to_dict(), [text] + [f"skipped damaged shard {sid}: {'; '.join(why)}"
                                          for sid, why in sorted(r.damaged_shards.items())])
    if args.dest == "-":
        for sid, why in sorted(r.damaged_shards.items()):
            out.warn(f"skipped damaged shard {sid}: {'; '.join(why)}")
    return 1 if r.damaged_shards else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export games as Parquet (games + moves files) or GameRecord JSONL",
        formatter_class=FORMATTER,
        description=wrap("parquet: DEST is a directory receiving games.parquet and moves.parquet (plain types, exact"
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
    add_output_arguments(p)
    p.set_defaults(func=cmd_export)
