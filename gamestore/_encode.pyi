"""Type stubs of the compiled moves encoder (``_ext/_encode.pyx``)."""
from typing import Any, Sequence

import numpy as np

from .schema import VectorSpec

INT_KEYS: tuple[str, ...]
FLOAT_KEYS: tuple[str, ...]
DSTR_KEYS: tuple[str, ...]
DSTR_LIMITS: tuple[int, ...]
STR_KEYS: tuple[str, ...]
POS_KEYS: tuple[str, ...]
SEARCH_MAP_KEYS: tuple[str, ...]
SEARCH_FLOAT_KEYS: tuple[str, ...]
SEARCH_INT_KEYS: tuple[str, ...]
KEY_LIMIT: int
COLS_POLICY: int

class Columns:
    """A policy or search statistics in column form (``data``: a ``_common.ColsHead`` and its columns),
    parsed from ``source``; a subclass is also the Mapping they stand for."""

    data: bytes
    source: Any
    def __init__(self, data: bytes, source: Any = None) -> None: ...

def json_text_of(value: dict[str, Any]) -> str:
    """The text the fast path stores for an unknown-keys dict (equal to ``records.dump_json``)."""

def orjson_text_is_json(text: bytes) -> bool:
    """The compiled ``records._orjson_text_is_json`` of an object's text."""

class Codes:
    """A first-appearance string dictionary (codes equal to a dict's from str to index)."""

    values: list[str]
    def __init__(self, limit: int) -> None: ...
    def __len__(self) -> int: ...
    def __contains__(self, s: object) -> bool: ...
    def add(self, s: str) -> int:
        """The code of ``s``, added when new; -1 when the dictionary holds ``limit`` values."""
    def rollback(self, mark: int) -> None:
        """Remove the codes from ``mark`` on."""

class MoveEncoder:
    """Buffers of one batch of moves; ``encode`` fills them, ``finish`` hands them out."""

    def __init__(self, specs: list[VectorSpec], n: int) -> None: ...
    def encode(self, game_ids: list[str], games_moves: Sequence[Any]) -> list[int]:
        """Validate and encode every move; the move count per game. Raises RecordError."""
    def finish(self) -> dict[str, Any]:
        """The filled buffers: numpy arrays and lists keyed as backend.py expects."""

def entries_split(d: np.ndarray, ok: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(f32, f64, valid64)``: float32 values, float64 values where the float32 does not widen back bit for bit
    (and ``ok``), 0 elsewhere, and where those are."""
def key_action(cand: np.ndarray, is_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(key codes, action ids)`` of candidates, each 0 where it does not apply."""
