"""``gamestore import-sqlite`` and ``gamestore export-sqlite`` (registered in :data:`gamestore.cli.COMMAND_GROUPS`).

Errors, SQLite's included, are reported by :func:`gamestore.cli.main`.
"""
from __future__ import annotations

import argparse
import dataclasses
import sqlite3

from ..cli.progress import Output, add_output_arguments
from .transfer import export_sqlite, import_sqlite

__all__ = ["register", "add_cli_commands"]


def _cmd_import(args: argparse.Namespace) -> int:
    if args.ray is not None:
        return _cmd_import_ray(args)
    out = Output.from_args(args)
    status = 0
    reports = []
    for src in args.src:
        try:
            report = import_sqlite(src, args.store, progress=out.tracker("game"), verify=args.verify,
                                   workers=args.workers, pause_gc=True)  # the command owns its process
        except sqlite3.Error as exc:
            raise type(exc)(f"{src}: {exc}") from exc  # which of several sources
        if not out.json:
            out.result(None, report.summary())
        reports.append({**dataclasses.asdict(report), "moves_per_second": round(report.moves_per_second, 1)})
        if report.failed:
            status = 1
    if out.json:
        out.result({"store": args.store, "sources": reports})
    return status


def _cmd_import_ray(args: argparse.Namespace) -> int:
    from ..ray import import_sqlite as import_ray

    out = Output.from_args(args)
    with out.counter("import-sqlite (ray)", unit="task") as tasks:
        report = import_ray(args.src, args.store, address=args.ray, tasks=args.tasks, verify=args.verify,
                            progress=tasks.advance_to)
    out.result(dataclasses.asdict(report), report.summary())
    return 1 if report.failed else 0


def _cmd_export(args: argparse.Namespace) -> int:
    out = Output.from_args(args)
    report = export_sqlite(args.store, args.dst, where=args.where, progress=out.tracker("game"), overwrite=args.force)
    out.result(dataclasses.asdict(report),
               f"wrote {report.games} games ({report.moves} moves) to {report.destination} in {report.seconds:.1f} s")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the RingRift subcommands to the ``gamestore`` parser."""
    p = subparsers.add_parser(
        "import-sqlite",
        help="import RingRift GameReplayDB SQLite files losslessly (re-running adds nothing twice)",
        epilog="example: gamestore import-sqlite data/games/selfplay_sq8.db /data/store",
    )
    p.add_argument("src", nargs="+", help="GameReplayDB .db file(s)")
    p.add_argument("store", help="store directory (created if missing)")
    p.add_argument("--verify", action="store_true", help="rebuild each game's rows before writing and refuse any that differ")
    p.add_argument(
        "--workers", type=int, default=None,
        help="processes that each import a share of the games (default: one per CPU from 2 CPUs and 20,000 moves; 0: none)",
    )  # fmt: skip
    p.add_argument(
        "--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
        help="import with the tasks of a Ray cluster (ADDRESS as for ray.init; default: auto); needs gamestore[ray]",
    )  # fmt: skip
    p.add_argument("--tasks", type=int, default=None, help="with --ray: import tasks in all (default: 2 per cluster CPU)")
    add_output_arguments(p)
    p.set_defaults(func=_cmd_import, errors=(sqlite3.Error,))

    p = subparsers.add_parser(
        "export-sqlite",
        help="write a store (or the games matching --where) as a RingRift GameReplayDB (schema v18)",
        epilog="example: gamestore export-sqlite /data/store out.db --where \"board_type = 'hex8'\"",
    )
    p.add_argument("store")
    p.add_argument("dst", help="SQLite file to create")
    p.add_argument("--where", default=None, help="SQL predicate over the games view")
    p.add_argument("--force", action="store_true", help="replace DST if it exists")
    add_output_arguments(p)
    p.set_defaults(func=_cmd_export, errors=(sqlite3.Error,))


add_cli_commands = register
