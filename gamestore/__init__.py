"""gamestore: an embedded storage engine for self-play game records.

zstd-compressed Arrow shards indexed by DuckDB, with a sync and an async API::

    import gamestore
    with gamestore.open("runs/store") as store:
        store.write_games(gamestore.testing.synth.games(100))
        store.flush()
        store.count_games("board_type = 'square8'")
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all
from .schema import FORMAT_VERSION, VectorSpec

if TYPE_CHECKING:  # pragma: no cover
    from . import testing as testing
    from .testing import synth as synth
    from .aio import AsyncGameStore as AsyncGameStore
    from .aio import open_async as open_async
    from .records import games_equal as games_equal
    from .records import normalize_game as normalize_game
    from .store import GameStore as GameStore
    from .store import open as open
    from .errors import CompatSQLError as CompatSQLError
    from .errors import ReadOnlySQLError as ReadOnlySQLError

__version__ = "0.1.0"

# name -> module that defines it; imported on first use so that `import gamestore`
# stays light (no DuckDB until a store is opened).
_LAZY = {
    "open": "store",
    "GameStore": "store",
    "open_async": "aio",
    "AsyncGameStore": "aio",
    "normalize_game": "records",
    "games_equal": "records",
    "sync": "replicate",
    "testing": None,
    "synth": "testing.synth",  # the module gamestore.testing.synth
    "CompatSQLError": "errors",  # sqlite3 errors too: importing sqlite3 waits for their first use
    "ReadOnlySQLError": "errors",
}

__all__ = ["FORMAT_VERSION", "VectorSpec", *_LAZY, *_errors_all]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'gamestore' has no attribute {name!r}")
    module = _LAZY[name]
    if module is None or name == "synth":
        value = importlib.import_module(f".{module or name}", __name__)
    else:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
