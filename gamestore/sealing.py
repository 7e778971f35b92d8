"""Sealing a full write buffer in a helper thread while the caller encodes the next games.

When ``write_games`` fills the buffer (``shard_moves``/``shard_games``), the
full buffer becomes a :class:`SealJob`: a helper thread concatenates it,
compresses, checksums and writes the shard files, fsyncs and commits them
(``shardwrite.write_shard``) and indexes the shard in the handle's catalog,
while ``write_games`` returns and the caller goes on encoding.  On a 2-core
machine the encoder (which holds the GIL) and the sealing (zstd, checksums,
writes and fsyncs, which mostly do not) then run side by side.

At most one job is in flight per store handle: the call that fills the
buffer again first waits for the previous job.  ``flush()`` and ``close()``
wait for it before sealing the rest, so "everything written before a
``flush()`` that returned is durable and committed" holds as before.  A job
that fails has committed nothing (``write_shard``'s staging is removed);
its games go back to the front of the buffer and its error, a
:class:`~gamestore.errors.SealError` (:class:`~gamestore.errors.StoreFullError`
for a full disk) naming the shard and its games, is raised by the next
``write_games``, ``flush`` or ``close`` (docs/concurrency.md, section 2).
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable

import pyarrow as pa

from . import gil
from .arrays import int_values, numpy_array
from .errors import SealError, StoreFullError
from .schema import VectorSpec, conform, moves_schema

if TYPE_CHECKING:  # pragma: no cover
    from .codec import EncodedGames

__all__ = ["SealJob", "concat_parts"]


def concat_parts(parts: "list[EncodedGames]", vectors: dict[str, VectorSpec]) -> tuple[pa.Table, pa.Table]:
    """The games and moves tables of one shard holding ``parts`` (move offsets rebased, moves conformed to ``vectors``)."""
    games_parts, base = [], 0
    for part in parts:
        offsets = numpy_array(int_values(part.games.column("move_offset")) + base, pa.int64())  # no pandas import
        games_parts.append(part.games.set_column(part.games.schema.get_field_index("move_offset"), "move_offset", offsets))
        base += part.moves.num_rows
    mschema = moves_schema(vectors)
    return pa.concat_tables(games_parts), pa.concat_tables([conform(p.moves, mschema) for p in parts])


class SealJob:
    """One full buffer being sealed into shard ``shard_id`` by a helper thread."""

    def __init__(
        self, shard_id: str, parts: "list[EncodedGames]", ids: set[str], moves: int, seal: Callable[[], None]
    ) -> None:
        self.shard_id = shard_id
        self.parts = parts
        self.ids = ids
        self.moves = moves
        self.error: BaseException | None = None
        self._seal = seal
        # not a daemon: an interpreter that exits without close() still finishes the shard it started; started by a
        # marked call (the async API's pool), it hands the GIL to the event loop as that call does (gamestore/gil.py)
        self._thread = threading.Thread(target=gil.inherit(self._run), name=f"gamestore-seal-{shard_id}")

    def start(self) -> "SealJob":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._seal()
        except BaseException as exc:  # noqa: BLE001 - reported to the writer's next call
            self.error = exc

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self) -> None:
        self._thread.join()

    def failure(self) -> SealError:
        """The error to raise in the writer's thread for this job's failure (``error`` chained as its cause)."""
        exc = self.error
        first, last = min(self.ids, default=None), max(self.ids, default=None)
        what = (
            f"sealing shard {self.shard_id} ({len(self.ids)} games, {first!r} .. {last!r}) in the background failed:"
            f" {exc}; nothing of it was committed, its games are buffered again (a later flush() writes them)"
        )
        errno = getattr(exc, "errno", None)
        cls = StoreFullError if isinstance(exc, StoreFullError) else SealError
        err = cls(errno, what) if errno is not None else cls(what)
        err.shard_id, err.game_ids = self.shard_id, sorted(self.ids)
        return err.with_traceback(None)
