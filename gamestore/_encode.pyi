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

class MoveEncoder:
    """Buffers of one batch of moves; ``encode`` fills them, ``finish`` hands them out."""

    def __init__(self, specs: list[VectorSpec], n: int) -> None: ...
    def encode(self, game_ids: list[str], games_moves: Sequence[Any]) -> list[int]:
        """Validate and encode every move; the move count per game. Raises RecordError."""
    def finish(self) -> dict[str, Any]:
        """The filled buffers: numpy arrays and lists keyed as backend.py expects."""

def float32_split(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(float32 values, exact)``: exact where the float32 widens back to ``d`` bit for bit."""
