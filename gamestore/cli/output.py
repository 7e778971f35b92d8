"""What the commands share: opening a store, printing store figures and relations (progress: :mod:`.progress`)."""
from __future__ import annotations

import argparse
import textwrap
from typing import Any

__all__ = ["FORMATTER", "wrap", "open_existing", "info_lines", "print_relation"]

#: Parser formatter of every subcommand (keeps the examples in ``epilog`` as written).
FORMATTER = argparse.RawDescriptionHelpFormatter


def wrap(text: str) -> str:
    return textwrap.fill(text, width=100)


def open_existing(path: str) -> Any:
    """The store at ``path``; a missing store is a :class:`~gamestore.errors.StoreNotFoundError`."""
    import gamestore

    return gamestore.open(path, create=False)


def info_lines(info: dict) -> list[str]:
    """``store.info()`` as aligned lines for people."""
    bpm = info["bytes_per_move"]
    lines = [
        f"store       {info['path']}",
        f"games       {info['games']:,}",
        f"moves       {info['moves']:,}",
        f"shards      {info['shards']}" + (f" ({len(info['damaged_shards'])} damaged)" if info["damaged_shards"] else ""),
        f"bytes       {info['bytes_on_disk']:,} on disk" + (f", {bpm:.1f} bytes/move in shards" if bpm else ""),
        f"newest game {info['newest_game']}",
    ]
    lines += [f"  {c['board_type']:<10} {c['num_players']}p  {c['games']:>8,} games {c['moves']:>11,} moves"
              for c in info["configs"]]
    lines += [f"DAMAGED shard {sid}: {why} (its games are missing; `gamestore verify --repair` moves it aside)"
              for sid, why in info.get("damage", {}).items()]
    if info.get("quarantined_shards"):
        lines.append(f"quarantined {len(info['quarantined_shards'])} shards moved aside by verify --repair (quarantine/)")
    return lines


def print_relation(rel) -> None:
    table = rel.to_arrow_table()
    names = table.column_names
    rows = [[("" if v is None else str(v)) for v in row.values()] for row in table.to_pylist()]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    print("  ".join(n.ljust(w) for n, w in zip(names, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
