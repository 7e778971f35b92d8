"""Type stubs of PositionDataset's compiled gathers (``_ext/_positions.pyx``; spec: ``gamestore/positions/gather.py``)
and of the read-ahead's decompression (``gamestore/positions/direct.py``)."""
from typing import Any

import numpy as np

def address(a: np.ndarray | None) -> int: ...
def assemble(
    tables: np.ndarray, part: np.ndarray, row: np.ndarray, game: np.ndarray, a: int, b: int,
    game_players: np.ndarray, game_winner: np.ndarray, game_value: np.ndarray, game_present: np.ndarray,
    first_player: int, max_candidates: int, wide: bool, row_sizes: tuple[int, ...], unknown: int,
) -> tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int,
    tuple[np.ndarray, np.ndarray, np.ndarray, int] | None, list[tuple[np.ndarray, np.ndarray]],
]: ...
def key_codes(kidx: np.ndarray, key_map: np.ndarray, key_index: np.ndarray, code: np.ndarray, index: np.ndarray) -> int: ...
def set_zstd(create: int, free_: int, decompress: int, is_error: int) -> None: ...
class Decompressor:
    def __init__(self) -> None: ...

def unpack(src: Any, frames: np.ndarray, out: np.ndarray, dctx: Decompressor) -> int: ...
def direct_source(
    src: Any, frames: np.ndarray, buf: np.ndarray, dctx: Decompressor, spec: np.ndarray, key_map: np.ndarray,
    key_index: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
           list[tuple[np.ndarray, np.ndarray | None]]] | int: ...
def unit_rows(game_offset: np.ndarray, game_count: np.ndarray, glo: int, ghi: int, start: int) -> tuple[np.ndarray, np.ndarray]: ...
