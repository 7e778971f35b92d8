"""The ``gamestore`` command line: one subcommand per operator job.

Commands live in command-group modules (``demo``, ``query``,
``maintenance``, ``export`` here; ``gamestore.ringrift.cli`` for the
RingRift profile), each with a ``register(subparsers)`` function that adds
its subparsers and sets ``func`` (and, for errors beyond the common ones,
``errors``, a tuple of exception types).  :data:`COMMAND_GROUPS` lists them:
adding a group is one module plus one line there.

:func:`main` is the one error guard: a command returns its exit code
(0 done, 1 done but something was damaged or skipped); a
:class:`~gamestore.errors.GamestoreError`, an ``OSError``, a DuckDB error,
a ``ValueError`` or one of the command's ``errors`` becomes a one-line
message on stderr and exit code 2; Ctrl-C is 130; a closed stdout pipe
(``| head``) ends the command quietly with 1.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import Any, Sequence

from ..errors import DamagedShardWarning, GamestoreError

__all__ = ["COMMAND_GROUPS", "build_parser", "main"]

#: The modules whose ``register(subparsers)`` add the subcommands, in ``--help`` order.
COMMAND_GROUPS = (
    "gamestore.cli.demo",
    "gamestore.cli.query",
    "gamestore.cli.maintenance",
    "gamestore.cli.export",
    "gamestore.cli.report",
    "gamestore.cli.sync",
    "gamestore.ringrift.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gamestore",
        description="Embedded storage engine for self-play game records.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_GROUPS:
        importlib.import_module(name).register(sub)
    return parser


def _guarded() -> tuple[type[BaseException], ...]:
    import duckdb

    return (GamestoreError, OSError, duckdb.Error, ValueError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    errors = _guarded() + tuple(getattr(args, "errors", ()))
    shown = warnings.showwarning

    def show(message: Any, category: type[Warning], *rest: Any, **kw: Any) -> None:
        if issubclass(category, DamagedShardWarning):  # one line for operators, no source line
            print(f"gamestore {args.command}: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, *rest, **kw)

    warnings.showwarning = show
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # the reader of our stdout went away (e.g. `| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(f"gamestore {args.command}: interrupted", file=sys.stderr)
        return 130
    except errors as exc:
        print(f"gamestore {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
