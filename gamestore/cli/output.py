"""What the commands share: progress bars, printing store figures and relations, opening a store."""
from __future__ import annotations

import argparse
import textwrap
from typing import Any, Callable, Iterable

__all__ = ["FORMATTER", "wrap", "progress", "bar", "open_existing", "print_info", "print_relation"]

#: Parser formatter of every subcommand (keeps the examples in ``epilog`` as written).
FORMATTER = argparse.RawDescriptionHelpFormatter


def wrap(text: str) -> str:
    return textwrap.fill(text, width=100)


def progress(iterable: Iterable, *, desc: str = "", total: int | None = None, unit: str = "it") -> Iterable:
    """A tqdm progress bar on a terminal, silent otherwise."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=None, leave=False)


def bar(desc: str, unit: str) -> Callable[[Iterable], Iterable]:
    """A ``progress`` callback for the jobs of :mod:`gamestore.ops`."""
    return lambda items: progress(items, desc=desc, unit=unit)


def open_existing(path: str) -> Any:
    """The store at ``path``; a missing store is a :class:`~gamestore.errors.StoreNotFoundError`."""
    import gamestore

    return gamestore.open(path, create=False)


def print_info(info: dict) -> None:
    bpm = info["bytes_per_move"]
    print(f"store       {info['path']}")
    print(f"games       {info['games']:,}")
    print(f"moves       {info['moves']:,}")
    print(f"shards      {info['shards']}" + (f" ({len(info['damaged_shards'])} damaged)" if info["damaged_shards"] else ""))
    print(f"bytes       {info['bytes_on_disk']:,} on disk" + (f", {bpm:.1f} bytes/move in shards" if bpm else ""))
    print(f"newest game {info['newest_game']}")
    for c in info["configs"]:
        print(f"  {c['board_type']:<10} {c['num_players']}p  {c['games']:>8,} games {c['moves']:>11,} moves")


def print_relation(rel) -> None:
    table = rel.to_arrow_table()
    names = table.column_names
    rows = [[("" if v is None else str(v)) for v in row.values()] for row in table.to_pylist()]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    print("  ".join(n.ljust(w) for n, w in zip(names, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
