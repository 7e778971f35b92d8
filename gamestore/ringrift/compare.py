"""Row-set comparison of GameReplayDB tables: strict SQLite types, floats bit for bit."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .tables import COLUMNS, PRIMARY_KEYS

__all__ = ["compare_rows"]


def _cell_equal(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return np.float64(a).tobytes() == np.float64(b).tobytes()
    return a == b


def compare_rows(table: str, expected: Iterable[tuple], actual: Iterable[tuple], *, limit: int = 5) -> list[str]:
    """Differences between two row sets of ``table`` (sorted by primary key): strict types, float bits."""
    cols = COLUMNS[table]
    pk = [cols.index(c) for c in PRIMARY_KEYS[table]]

    def key(r: tuple) -> tuple:
        return tuple((str(type(r[i])), r[i]) for i in pk)

    exp = sorted(expected, key=key)
    act = sorted(actual, key=key)
    diffs: list[str] = []
    if len(exp) != len(act):
        diffs.append(f"{table}: {len(exp)} rows expected, {len(act)} found")
    for e, a in zip(exp, act):
        for i, c in enumerate(cols):
            if not _cell_equal(e[i], a[i]):
                ev, av = repr(e[i]), repr(a[i])
                diffs.append(f"{table}{tuple(e[j] for j in pk)}.{c}: expected {ev[:120]}, got {av[:120]}")
                if len(diffs) >= limit:
                    return diffs
    return diffs
