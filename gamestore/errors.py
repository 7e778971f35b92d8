"""One error tree, rooted in :class:`GamestoreError`.

Each subclass also inherits the builtin a caller would naturally catch
(``ValueError``, ``KeyError``, ``FileNotFoundError``, ``OSError``), so code
written against plain Python exceptions keeps working.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, TypeVar

# CompatSQLError and ReadOnlySQLError are made on first use (module __getattr__), outside the star export
__all__ = [
    "GamestoreError",
    "RecordError",
    "DuplicateGameError",
    "GameNotFoundError",
    "StoreNotFoundError",
    "StoreExistsError",
    "FormatError",
    "ShardCorruptError",
    "SealError",
    "StoreFullError",
    "StoreClosedError",
    "GameWriterError",
    "ImportWorkerError",
    "QueryError",
    "StoreBusyError",
    "DatasetError",
    "StateMismatchError",
    "CompatUnavailableError",
    "ProfileError",
    "DamagedShardWarning",
]

_R = TypeVar("_R", bound="RecordError")


class GamestoreError(Exception):
    """Base class of every error gamestore raises on purpose."""


class RecordError(GamestoreError, ValueError):
    """A game record is malformed; nothing of that game was written.

    ``game_id`` names the game (``None`` when the id itself is missing) and
    ``field`` the offending field as a dotted path, e.g. ``moves[3].policy``;
    ``game_index``, when the record came in a batch, is its index there (so
    ``records[:game_index]`` are valid).
    """

    def __init__(
        self, message: str, *, game_id: object = None, field: str | None = None, game_index: int | None = None
    ) -> None:
        self.message = message
        self.game_id = game_id
        self.field = field
        self.game_index = game_index
        where = []
        if game_id is not None:
            where.append(f"game {game_id!r}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def at_index(self: _R, game_index: int) -> _R:
        """This error for the record at ``game_index`` of a batch: a new error of the same type."""
        return type(self)(self.message, game_id=self.game_id, field=self.field, game_index=game_index)

    def __reduce__(self) -> tuple[Any, ...]:  # keep the attributes across process boundaries
        return (_rebuild_record_error, (type(self), self.message, self.game_id, self.field, self.game_index))


def _rebuild_record_error(
    cls: type[RecordError], message: str, game_id: object, field: str | None, game_index: int | None
) -> RecordError:
    return cls(message, game_id=game_id, field=field, game_index=game_index)


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


class SealError(GamestoreError, OSError):
    """A shard could not be sealed (written, fsynced, committed): nothing of it is visible, its games stay buffered.

    Raised for a failure of a shard sealed in the background (gamestore/sealing.py) by the writer's next
    ``write_games``, ``flush`` or ``close``: ``shard_id`` names the shard, ``game_ids`` its games; the
    original error is the ``__cause__``.
    """

    shard_id: str | None = None
    game_ids: list[str] = []


class StoreFullError(SealError):
    """The disk filled up (ENOSPC) while writing; nothing partial is visible."""


class StoreClosedError(GamestoreError, RuntimeError):
    """The store (or a game writer) was used after it was closed."""


class GameWriterError(GamestoreError, RuntimeError):
    """A move-by-move game writer was used out of order (e.g. after finalize)."""


class ImportWorkerError(GamestoreError, RuntimeError):
    """A helper process of a parallel import failed or was killed; what was committed stays, re-running adds the rest."""


class QueryError(GamestoreError, ValueError):
    """A SQL predicate or query was rejected by DuckDB (syntax, unknown column, ...)."""


class StoreBusyError(GamestoreError, RuntimeError):
    """Another maintenance job (compact, prune, merge into it) holds the store."""


class DatasetError(GamestoreError, ValueError):
    """A position cannot be turned into a training batch with the dataset's options (``gamestore.torch``)."""


class StateMismatchError(GamestoreError, ValueError):
    """A saved loader state does not fit this dataset (other options, workers, or data removed)."""


class CompatUnavailableError(GamestoreError, RuntimeError):
    """A RingRift capability (models, rules engine) the call needs is not available (``gamestore.compat``)."""


if TYPE_CHECKING:  # made on first use at run time (__getattr__ below)
    import sqlite3

    class CompatSQLError(QueryError, sqlite3.OperationalError):
        """A statement the RingRift-compatible views cannot run (also a ``sqlite3.OperationalError``)."""

    class ReadOnlySQLError(CompatSQLError):
        """A write statement on the read-only RingRift-compatible connection."""


_compat_lock = threading.Lock()


def _compat_errors() -> dict[str, type]:
    """:class:`CompatSQLError` and :class:`ReadOnlySQLError`, defined once, when first asked for: their base
    ``sqlite3.OperationalError`` costs importing ``sqlite3`` (~2 ms of every process's import of gamestore, before
    its first statement), which only the RingRift-compatible views (gamestore.compat, which imports it) need."""
    with _compat_lock:
        got = globals().get("ReadOnlySQLError")
        if got is not None:
            return {"CompatSQLError": got.__mro__[1], "ReadOnlySQLError": got}
        import sqlite3

        class CompatSQLError(QueryError, sqlite3.OperationalError):
            """A statement the RingRift-compatible views cannot run (also a ``sqlite3.OperationalError``)."""

        class ReadOnlySQLError(CompatSQLError):
            """A write statement on the read-only RingRift-compatible connection."""

        made: dict[str, type] = {"CompatSQLError": CompatSQLError, "ReadOnlySQLError": ReadOnlySQLError}
        for name, cls in made.items():
            cls.__module__, cls.__qualname__ = __name__, name
        globals().update(made)
        return made


def __getattr__(name: str) -> Any:
    if name in ("CompatSQLError", "ReadOnlySQLError"):
        return _compat_errors()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ProfileError(GamestoreError, ValueError):
    """An unknown game profile, or a store opened with a profile other than the one it was created with."""


class DamagedShardWarning(RuntimeWarning):
    """A shard was found damaged and is quarantined: its games are unreadable until ``gamestore verify --repair``.

    Not an error: every other game stays readable and writable (docs/operations.md, "Damaged shards").
    """
