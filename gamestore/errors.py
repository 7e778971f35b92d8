"""One error tree, rooted in :class:`GamestoreError`.

Each subclass also inherits the builtin a caller would naturally catch
(``ValueError``, ``KeyError``, ``FileNotFoundError``, ``OSError``), so code
written against plain Python exceptions keeps working.
"""
from __future__ import annotations

__all__ = [
    "GamestoreError",
    "RecordError",
    "DuplicateGameError",
    "GameNotFoundError",
    "StoreNotFoundError",
    "StoreExistsError",
    "FormatError",
    "ShardCorruptError",
    "StoreFullError",
    "StoreClosedError",
    "GameWriterError",
    "QueryError",
    "StoreBusyError",
]


class GamestoreError(Exception):
    """Base class of every error gamestore raises on purpose."""


class RecordError(GamestoreError, ValueError):
    """A game record is malformed; nothing of that game was written.

    ``game_id`` names the game (``None`` when the id itself is missing) and
    ``field`` the offending field as a dotted path, e.g. ``moves[3].policy``.
    """

    def __init__(self, message: str, *, game_id: object = None, field: str | None = None) -> None:
        self.game_id = game_id
        self.field = field
        where = []
        if game_id is not None:
            where.append(f"game {game_id!r}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def __reduce__(self):  # keep game_id/field across process boundaries
        return (_rebuild_record_error, (type(self), self.args[0], self.game_id, self.field))


def _rebuild_record_error(cls, message, game_id, field):
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.game_id = game_id
    err.field = field
    return err


class DuplicateGameError(RecordError):
    """A game id that is already stored (or repeated within one batch)."""


class GameNotFoundError(GamestoreError, KeyError):
    """No game with that id is stored."""

    def __str__(self) -> str:  # KeyError's str() adds quotes around the message
        return str(self.args[0]) if self.args else "game not found"


class StoreNotFoundError(GamestoreError, FileNotFoundError):
    """The path holds no gamestore (and ``create=False`` was given)."""


class StoreExistsError(GamestoreError, FileExistsError):
    """A store already exists where a new one was requested."""


class FormatError(GamestoreError, ValueError):
    """A file is not in a format version this gamestore can read."""


class ShardCorruptError(FormatError):
    """A shard failed its checksum or structural verification."""

    def __init__(self, message: str, *, shard_id: str | None = None) -> None:
        self.shard_id = shard_id
        super().__init__(f"shard {shard_id}: {message}" if shard_id else message)


class StoreFullError(GamestoreError, OSError):
    """The disk filled up (ENOSPC) while writing; nothing partial is visible."""


class StoreClosedError(GamestoreError, RuntimeError):
    """The store (or a game writer) was used after it was closed."""


class GameWriterError(GamestoreError, RuntimeError):
    """A move-by-move game writer was used out of order (e.g. after finalize)."""


class QueryError(GamestoreError, ValueError):
    """A SQL predicate or query was rejected by DuckDB (syntax, unknown column, ...)."""


class StoreBusyError(GamestoreError, RuntimeError):
    """Another maintenance job (compact, prune, merge into it) holds the store."""
