"""Move-by-move game writing: :class:`GameWriter` (``store.game_writer(...)``).

A game being played lives only in the writer's memory.  ``add_move``
validates each move at once (so a bad move fails where it is added, naming
the move), ``finalize`` hands the complete record to
:meth:`GameStore.write_games`, ``abort`` drops it.  Until ``finalize`` no
byte of the game reaches the store directory, so an aborted game, or a game
whose process crashed, leaves nothing a reader could see and nothing a later
open must repair (docs/concurrency.md).
"""
from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from .errors import DuplicateGameError, GameWriterError, RecordError
from .records import normalize_header, normalize_move
from .schema import VectorSpec

if TYPE_CHECKING:  # pragma: no cover
    from .store import GameStore

__all__ = ["GameWriter"]

_OPEN, _FINALIZED, _ABORTED = "open", "finalized", "aborted"


class GameWriter:
    """Collects one game move by move; see :meth:`GameStore.game_writer`.

    Use it as a context manager: leaving the block by an exception aborts the
    game, leaving it normally without ``finalize`` aborts it too (a game is
    stored only when it was explicitly finalized).
    """

    def __init__(self, store: "GameStore", game_id: str, game_fields: Mapping[str, Any]) -> None:
        if "moves" in game_fields:
            raise RecordError("pass moves with add_move, not as a game field", game_id=game_id, field="moves")
        self._store = store
        self._fields: dict[str, Any] = {"game_id": game_id, **game_fields}
        self._header = normalize_header(self._fields, board_types=store.board_types)
        self.game_id: str = self._header["game_id"]
        # the same check as write_games: this handle's index, without a catalog refresh (docs/concurrency.md)
        if self.game_id in store.catalog:
            raise DuplicateGameError("game id already stored", game_id=self.game_id, field="game_id")
        self._moves: list[dict[str, Any]] = []
        self._last_number: int | None = None
        self._state = _OPEN

    # -- state ------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """``"open"``, ``"finalized"`` or ``"aborted"``."""
        return self._state

    @property
    def num_moves(self) -> int:
        return len(self._moves)

    @property
    def moves(self) -> list[dict[str, Any]]:
        """The moves added so far, in canonical form (a copy of the list)."""
        return list(self._moves)

    def _check_open(self, action: str) -> None:
        if self._state != _OPEN:
            raise GameWriterError(f"game {self.game_id!r}: cannot {action}, the writer is already {self._state}")

    # -- moves --------------------------------------------------------------------------
    def add_move(self, move: Mapping[str, Any] | None = None, /, **fields: Any) -> dict[str, Any]:
        """Validate one move and append it; returns its canonical form.

        Give the move as a dict, as keyword fields, or both (keywords win):
        ``add_move(move_type="place", to=(3, 4), policy={...}, search={...},
        vectors={"heuristic_features": feats})``.  ``move_number`` defaults to
        the previous one plus 1.  Arrays are copied, so the caller may reuse
        its buffers.  A :class:`RecordError` leaves the game as it was.
        """
        self._check_open("add a move")
        data = dict(move) if move is not None else {}
        data.update(fields)
        vecs = data.get("vectors")
        if vecs and isinstance(vecs, Mapping):
            self._declare(vecs)
        norm = normalize_move(
            data,
            len(self._moves),
            game_id=self.game_id,
            vectors=self._store.vectors,
            previous_number=self._last_number,
        )
        if "vectors" in norm:
            norm["vectors"] = {name: np.array(arr, copy=True) for name, arr in norm["vectors"].items()}
        self._moves.append(norm)
        self._last_number = norm["move_number"]
        return norm

    def _declare(self, vecs: Mapping[str, Any]) -> None:
        declared = self._store.vectors
        new: dict[str, VectorSpec] = {}
        for name, sample in vecs.items():
            if sample is None or name in declared:
                continue
            arr = np.asarray(sample)
            dtype = arr.dtype.name if arr.dtype.name in ("float16", "float32", "float64") else "float32"
            try:
                new[name] = VectorSpec(name, tuple(arr.shape) or (1,), dtype)
            except (TypeError, ValueError) as exc:
                raise RecordError(str(exc), game_id=self.game_id, field=f"moves[{len(self._moves)}].vectors.{name}") from None
        if new:
            self._store.declare_vectors(new)

    # -- end of game ------------------------------------------------------------------
    def record(self, **result_fields: Any) -> dict[str, Any]:
        """The game record as ``finalize`` would store it (without storing anything)."""
        if "moves" in result_fields or "game_id" in result_fields:
            raise RecordError("finalize takes result fields only (not game_id or moves)", game_id=self.game_id)
        return {**self._fields, **result_fields, "moves": list(self._moves)}

    def finalize(self, **result_fields: Any) -> str:
        """Store the game with ``result_fields`` (winner, termination_reason, ...) merged in.

        Returns the game id.  Same contract as :meth:`GameStore.write_games`:
        the game is buffered in this process and becomes durable and visible
        when the store is flushed (``flush()``, a full buffer, ``close()``).
        On a :class:`RecordError` the writer stays open, so the caller may fix
        the fields and finalize again, or abort.
        """
        self._check_open("finalize")
        record = self.record(**result_fields)
        self._store.write_games([record])
        self._state = _FINALIZED
        self._moves = []
        return self.game_id

    def abort(self) -> None:
        """Drop the game; nothing of it was or will be stored.  Idempotent after abort."""
        if self._state == _ABORTED:
            return
        self._check_open("abort")
        self._state = _ABORTED
        self._moves = []

    def __enter__(self) -> "GameWriter":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._state == _OPEN:
            self.abort()

    def __repr__(self) -> str:
        return f"<GameWriter {self.game_id!r} {self._state}, {len(self._moves)} moves>"
