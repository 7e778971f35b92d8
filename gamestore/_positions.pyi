"""Type stubs of PositionDataset's compiled gathers (``_ext/_positions.pyx``; spec: ``gamestore/positions/gather.py``)
and of the read-ahead's decompression (``gamestore/positions/direct.py``)."""
from typing import Any, Callable

import numpy as np

def address(a: np.ndarray | None) -> int: ...
class BlockPool:
    cap: int
    reused: int
    fresh: int
    replaced: int
    returned: int
    dropped: int
    kept: int
    def __init__(self, cap: int = 12) -> None: ...

class Assembler:
    widest: int
    first_unknown: int
    lens: np.ndarray | None
    number: np.ndarray | None
    taken: int
    waited: int
    made: int
    producer_cpu: float
    pool: BlockPool | None
    running: bool
    def __init__(
        self, tables: np.ndarray, part: np.ndarray, row: np.ndarray, game: np.ndarray, game_players: np.ndarray,
        game_winner: np.ndarray, game_value: np.ndarray, game_present: np.ndarray, first_player: int,
        max_candidates: int, wide: bool, vectors: tuple[tuple[str, tuple[int, ...]], ...], unknown: int,
        game_id: np.ndarray | None = None, board_type: np.ndarray | None = None,
        convert: Callable[[np.ndarray], Any] | None = None, ahead: int = 0, keep: Any = None,
        pool: BlockPool | None = None,
    ) -> None: ...
    def batch(self, a: int, b: int) -> dict[str, Any] | None: ...
    def ready(self) -> int: ...
    def close(self) -> None: ...

def live_producers() -> int: ...

def window_rows(rows: list[np.ndarray], games: list[np.ndarray], part: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
def key_codes(kidx: np.ndarray, key_map: np.ndarray, key_index: np.ndarray, code: np.ndarray, index: np.ndarray) -> int: ...
def set_zstd(create: int, free_: int, decompress: int, is_error: int) -> None: ...
class Decompressor:
    def __init__(self) -> None: ...

def unpack(src: Any, frames: np.ndarray, out: np.ndarray, dctx: Decompressor) -> int: ...
def direct_source(
    src: Any, frames: np.ndarray, buf: np.ndarray | list[np.ndarray], dctx: Decompressor, spec: np.ndarray,
    key_map: np.ndarray, key_index: np.ndarray, names: tuple[str, ...] | None = None,
) -> tuple[Any, ...] | int: ...
def free_buffer(bufs: list[np.ndarray], size: int) -> np.ndarray | None: ...
def unit_rows(game_offset: np.ndarray, game_count: np.ndarray, glo: int, ghi: int, start: int) -> tuple[np.ndarray, np.ndarray]: ...
