"""RingRift's own types for the compat reader: detection, conversion, replay.

When RingRift's ``app.models`` is importable, the compat reader returns its
pydantic objects (``GameState``, ``Move``) built exactly as RingRift's
``GameReplayDB`` builds them; otherwise it returns the stored JSON as plain
dicts.  ``models=`` on the reader overrides the detection:

- ``models=None`` (default): RingRift's models when ``app.models`` imports;
- ``models=False``: plain dicts always;
- ``models=True``: RingRift's models, :class:`CompatUnavailableError` if they do not import;
- ``models=<module>``: that module's ``GameState`` and ``Move``.

Replaying moves (``get_state_at_move`` between snapshots) uses RingRift's
``GameEngine.apply_move(state, move, trace_mode=True)`` when importable, or
the reader's ``replay=`` callable ``replay(state, moves) -> state``.
"""
from __future__ import annotations

import copy
import importlib
import json
import threading
from types import ModuleType
from typing import Any, Callable, Sequence

import orjson

from ..errors import CompatUnavailableError

__all__ = ["CompatUnavailableError", "Types", "Replay"]

#: ``replay(state, moves) -> state``: apply ``moves`` in order to ``state`` (objects of the reader's types).
Replay = Callable[[Any, Sequence[Any]], Any]

_IMPORT_LOCK = threading.Lock()


def _import(name: str) -> ModuleType | None:
    with _IMPORT_LOCK:
        try:
            return importlib.import_module(name)
        except ImportError:
            return None


class Types:
    """Builds RingRift objects (or keeps dicts) from stored JSON values; resolves lazily (imports are slow)."""

    def __init__(self, models: Any = None, replay: Replay | None = None) -> None:
        self._spec = models
        self._replay = replay
        self._module: ModuleType | None | bool = None  # None: not resolved yet; False: dicts
        self._engine: Any = None

    # -- resolution -------------------------------------------------------------------
    def module(self) -> ModuleType | None:
        """RingRift's models module in use, or None (plain dicts)."""
        if self._module is None:
            spec = self._spec
            if spec is False:
                mod = None
            elif spec is None or spec is True:
                mod = _import("app.models")
                if mod is not None and not (hasattr(mod, "GameState") and hasattr(mod, "Move")):
                    mod = None
                if mod is None and spec is True:
                    raise CompatUnavailableError("models=True but RingRift's app.models is not importable")
            elif isinstance(spec, ModuleType) or (hasattr(spec, "GameState") and hasattr(spec, "Move")):
                mod = spec
            else:
                raise TypeError(f"models= must be None, a bool or a module with GameState and Move, not {spec!r}")
            self._module = mod if mod is not None else False
        return self._module if isinstance(self._module, ModuleType) or self._module else None  # type: ignore[return-value]

    @property
    def pydantic(self) -> bool:
        return self.module() is not None

    # -- conversion ---------------------------------------------------------------------
    def moves(self, values: list[dict]) -> list[Any]:
        """Moves as RingRift's ``_deserialize_move`` builds them (``Move.model_validate_json`` of the text)."""
        mod = self.module()
        if mod is None:
            return values
        validate = mod.Move.model_validate_json
        try:
            return [validate(orjson.dumps(v)) for v in values]
        except TypeError:  # a value orjson cannot write (an integer beyond 64 bits): the json module's text
            return [validate(json.dumps(v)) for v in values]

    def state(self, value: dict | None) -> Any:
        """A state as RingRift's ``_deserialize_state`` builds it (legacy status "finished" read as "completed").

        Always a new object: ``value`` may be shared with a cache, and RingRift's engine
        changes states in place.
        """
        if value is None:
            return None
        try:
            value = orjson.loads(orjson.dumps(value))
        except TypeError:
            value = copy.deepcopy(value)
        mod = self.module()
        if mod is None:
            return value
        if value.get("gameStatus") == "finished":
            value["gameStatus"] = "completed"
        return mod.GameState.model_validate(value)

    def default_initial_state(self, board_type: str | None, num_players: int) -> Any:
        """RingRift's fallback for a game without a stored initial state (needs its training package)."""
        mod = self.module()
        gen = _import("app.training.generate_data") if mod is not None else None
        if gen is None:
            return None
        bt = mod.BoardType(board_type) if board_type else mod.BoardType.SQUARE8  # type: ignore[union-attr]
        return gen.create_initial_state(board_type=bt, num_players=num_players)

    # -- replay ----------------------------------------------------------------------------
    def can_replay(self) -> bool:
        return self._replay is not None or (self.pydantic and self._game_engine() is not None)

    def _game_engine(self) -> Any:
        if self._engine is None:
            mod = _import("app.game_engine")
            self._engine = getattr(mod, "GameEngine", False) if mod is not None else False
        return self._engine or None

    def replay(self, state: Any, moves: Sequence[Any], *, auto_inject: bool = False) -> Any:
        if not moves:
            return state
        if self._replay is not None:
            return self._replay(state, moves)
        engine = self._game_engine() if self.pydantic else None
        if engine is None:
            raise CompatUnavailableError(
                "get_state_at_move needs to replay moves past the nearest stored snapshot: RingRift's rules engine"
                " (app.game_engine with app.models) is not importable and no replay= callable was given"
            )
        inject = None
        if auto_inject:
            legacy = _import("app.rules.legacy")
            inject = getattr(legacy, "auto_inject_before_move", None)
        for move in moves:
            if inject is not None:
                state = inject(state, move)
            state = engine.apply_move(state, move, trace_mode=True)
        return state
