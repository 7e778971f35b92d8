"""``gamestore sync SRC DST [--watch SECONDS]``: copy the committed shards DST lacks."""
from __future__ import annotations

import argparse
import json
import signal
import threading
import time

from .output import FORMATTER
from .progress import Output, add_output_arguments

__all__ = ["register"]


def cmd_sync(args: argparse.Namespace) -> int:
    from ..replicate import SyncResult, sync

    out = Output.from_args(args)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())  # ends --watch after this pass

    def report(r: SyncResult) -> None:
        if args.watch is None:
            return  # one pass: the result is printed below
        if out.json:  # one JSON line per pass (JSON Lines)
            print(json.dumps(r.to_dict()), file=out.stdout, flush=True)
        elif r.shards_copied or r.damaged_shards or r.errors:
            print(time.strftime("%H:%M:%S ") + r.summary(), file=out.stdout, flush=True)
        for sid, problems in sorted(r.damaged_shards.items()):
            out.warn(f"skipped damaged shard {sid}: {'; '.join(problems)}")

    try:
        total = sync(args.src, args.dst, workers=args.workers, fsync=not args.no_fsync, progress=out.bar("sync", "shard"),
                     watch=args.watch, stop=stop, on_pass=report)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.watch is None:
        out.result(total.to_dict(), [total.summary()] + [
            f"skipped damaged shard {sid}: {'; '.join(p)}" for sid, p in sorted(total.damaged_shards.items())])
    elif not out.json:
        print("total: " + total.summary(), file=out.stdout, flush=True)
    return 1 if total.damaged_shards else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sync", help="copy every committed shard of SRC that DST lacks (local paths or URIs; resumable)",
        formatter_class=FORMATTER,
        description="Copy the committed shards of SRC that DST lacks, byte for byte and verified by checksum, data"
        " first and manifest last: DST never shows a partial shard. Safe to kill and rerun; a rerun with nothing new"
        " copies nothing. DST is created with SRC's config when missing.",
        epilog="examples:\n"
        "  gamestore sync /data/store 's3://bucket/hub'\n"
        "  gamestore sync /data/store 's3://bucket/hub?endpoint_override=minio:9000&scheme=http' --watch 60\n"
        "  gamestore sync s3://bucket/hub /scratch/mirror --watch 300",
    )
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--watch", type=float, default=None, metavar="SECONDS",
                   help="keep pulling new shards every SECONDS (until SIGTERM or Ctrl-C); with --json, one JSON line a pass")
    p.add_argument("--workers", type=int, default=8, help="shards copied at once (default 8)")
    p.add_argument("--no-fsync", action="store_true", help="local DST: do not fsync (faster; not crash-durable)")
    add_output_arguments(p)
    p.set_defaults(func=cmd_sync)
