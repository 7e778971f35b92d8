"""Checks that every view and reader of a store shows each game exactly once (issue 9, must-have 3).

:func:`snapshot_of` records what a store shows (the game rows, move counts,
policy entries, records); :func:`check_once` asserts, on a freshly opened
handle, that every reader agrees with such a record: the SQL views ``games``,
``moves``, ``games_full``, ``players``, ``policies`` and RingRift's
``game_moves``, ``count_games``/``count_moves``, ``scan_moves``, the export
iterator and ``get_game``.  Used by tests/test_exactly_once.py and
tests/test_kill_maintenance.py.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gamestore
from gamestore.ops import iter_games
from gamestore.records import games_equal


@dataclass
class Shown:
    """What a store shows: per game its move count and record, plus view-level totals."""

    moves: dict[str, int]
    records: dict[str, dict[str, Any]]
    policies: int
    players: int
    #: ids whose content ``get_game`` is checked (default: all): those stored twice, where a wrong copy could show
    focus: frozenset[str] | None = field(default=None)

    @classmethod
    def of(cls, records: dict[str, dict[str, Any]]) -> "Shown":
        """What a store holding exactly these (canonical) records shows."""
        return cls({g: len(r["moves"]) for g, r in records.items()}, records, _policy_entries(records),
                   _players(records))

    def without(self, ids: set[str]) -> "Shown":
        """The same, less the games ``ids``."""
        out = Shown.of({g: r for g, r in self.records.items() if g not in ids})
        out.focus = self.focus
        return out


def _policy_entries(records: dict[str, dict]) -> int:
    return sum(len(m.get("policy") or {}) for r in records.values() for m in r["moves"])


def _players(records: dict[str, dict]) -> int:
    return sum(len(r.get("players") or []) for r in records.values())


def snapshot_of(path: Path) -> Shown:
    with gamestore.open(path, create=False) as s:
        return Shown.of({r[0]: s.get_game(r[0]) for r in s.sql("SELECT game_id FROM games").fetchall()})


def view_counts(s: gamestore.GameStore) -> dict[str, Counter]:
    """Per view (and reader), how many rows each game id has there."""
    def per_game(query: str) -> Counter:
        return Counter(dict(s.sql(query).fetchall()))

    out = {
        "games": per_game("SELECT game_id, count(*) FROM games GROUP BY 1"),
        "moves": per_game("SELECT game_id, count(*) FROM moves GROUP BY 1"),
        "games_full": per_game("SELECT game_id, count(*) FROM games_full GROUP BY 1"),
        "players": per_game("SELECT game_id, count(*) FROM players GROUP BY 1"),
        "policies": per_game("SELECT game_id, count(*) FROM policies GROUP BY 1"),
    }
    if "game_moves" in s.catalog.view_names:
        out["game_moves"] = per_game("SELECT game_id, count(*) FROM game_moves GROUP BY 1")
    scan: Counter = Counter()
    for batch in s.scan_moves(columns=["game_id"]):
        scan.update(batch.column("game_id").to_pylist())
    out["scan_moves"] = scan
    out["export"] = Counter(g["game_id"] for g in iter_games(s))
    return out


def double_counted(s: gamestore.GameStore, shown: Shown) -> list[str]:
    """The views (and readers) that do not show exactly ``shown``: empty when every one is right."""
    counts = view_counts(s)
    one = Counter({g: 1 for g in shown.moves})
    expect = {
        "games": one,
        "moves": Counter(shown.moves),
        "games_full": one,
        "scan_moves": Counter(shown.moves),
        "game_moves": Counter(shown.moves),
        "export": one,
    }
    bad = [f"{v}: {sum(c.values())} rows for {len(c)} games" for v, c in counts.items()
           if v in expect and +c != +expect[v]]
    if sum(counts["policies"].values()) != shown.policies:
        bad.append(f"policies: {sum(counts['policies'].values())} rows, expected {shown.policies}")
    if sum(counts["players"].values()) != shown.players:
        bad.append(f"players: {sum(counts['players'].values())} rows, expected {shown.players}")
    if s.count_games() != len(shown.moves) or s.count_moves() != sum(shown.moves.values()):
        bad.append(f"count_games/count_moves: {s.count_games()}/{s.count_moves()}")
    return bad


def check_once(path: Path, shown: Shown, *, maybe_gone: set[str] = frozenset()) -> None:
    """Every view of the store at ``path`` shows each game of ``shown`` exactly once, with its recorded content.

    Games in ``maybe_gone`` (a prune part-way) may be absent, but never partly.
    """
    with gamestore.open(path, create=False) as s:
        check_store(s, shown, maybe_gone=maybe_gone)


def check_store(s: gamestore.GameStore, shown: Shown, *, maybe_gone: set[str] = frozenset()) -> None:
    """:func:`check_once` on an open handle (after a refresh)."""
    s.refresh()
    present = {r[0] for r in s.sql("SELECT game_id FROM games").fetchall()}
    lost = set(shown.moves) - present - set(maybe_gone)
    assert not lost, f"committed games lost: {sorted(lost)[:5]}"
    extra = present - set(shown.moves)
    assert not extra, f"games that should not be there: {sorted(extra)[:5]}"
    expect = shown.without(set(shown.moves) - present)
    bad = double_counted(s, expect)
    assert not bad, "views not showing each game exactly once: " + "; ".join(bad)
    for gid, rec in expect.records.items():
        if shown.focus is not None and gid not in shown.focus:
            continue
        assert games_equal(s.get_game(gid), rec), f"get_game({gid!r}) shows another copy than before"
