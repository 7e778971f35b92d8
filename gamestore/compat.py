"""Drop-in for RingRift's readers (docs/ringrift.md): ``GameReplayDB``, ``AsyncGameReplayDB``, ``connect``."""
from .ringrift.compat import GameReplayDB
from .ringrift.compat_async import AsyncGameReplayDB
from .ringrift.compat_sql import CompatSQLError, Connection, ReadOnlySQLError, Row, connect
from .ringrift.compat_types import CompatUnavailableError

__all__ = [
    "GameReplayDB", "AsyncGameReplayDB", "connect", "Connection", "Row", "CompatSQLError", "ReadOnlySQLError",
    "CompatUnavailableError",
]  # fmt: skip
