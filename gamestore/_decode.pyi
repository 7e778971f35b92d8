"""Type stubs of the compiled moves decoder (``_ext/_decode.pyx``)."""
from typing import Sequence

import numpy as np
import pyarrow as pa

class StrTable:
    """The strings of an Arrow string array, copied once and decoded lazily, each entry once."""

    def __len__(self) -> int: ...

class BatchDecoder:
    """Canonical move dicts of the rows of one moves record batch, read in place (Arrow C data interface).

    ``vectors``: ``(name, column, shape, numpy dtype)`` of each declared vector;
    ``strings``: an optional dict, kept by the caller, that shares StrTables
    between batches of one IPC file. Raises ``ValueError`` for a batch that is
    not a moves batch.
    """

    num_rows: int

    def __init__(
        self,
        batch: pa.RecordBatch,
        vectors: Sequence[tuple[str, str, tuple[int, ...], np.dtype]] = ...,
        strings: dict | None = ...,
    ) -> None: ...
    def decode(self, start: int, stop: int) -> list[dict]:
        """The move dicts of rows ``[start, stop)``; ``IndexError`` outside the batch."""

class Scratch:
    """The decompressed body buffers of one moves batch (a point read's, kept in ``shard.BATCH_CACHE``), each
    decoded up to the prefix the reads so far needed."""

    nbytes: int
    @property
    def decoded(self) -> int:
        """Bytes decompressed (or copied) so far, over all buffers."""

class PointReader:
    """Move dicts of any game of one zstd Arrow IPC moves file, read from the file's bytes (``_ext/_decode_point.pxi``)."""

    num_nodes: int
    num_bufs: int

    def __init__(
        self,
        view: memoryview,
        places: dict[str, tuple[int, int]],
        kinds: dict[str, tuple[str, int]],
        tables: dict[str, StrTable],
        vectors: Sequence[tuple[str, str, tuple[int, ...], np.dtype]],
        num_nodes: int,
        num_bufs: int,
    ) -> None: ...
    def close(self) -> None: ...
    def decode(
        self, nodes: np.ndarray, bufs: np.ndarray, length: int, body: int, start: int, stop: int,
        cached: Scratch | None = ...,
    ) -> tuple[list[dict], Scratch]: ...

def set_zstd(
    create: int, free_: int, decompress: int, is_error: int, begin: int = ..., next_size: int = ...,
    decompress_continue: int = ...,
) -> None: ...
def prefix_reads() -> bool: ...
def set_point_helper(on: bool) -> bool: ...
def point_helper_runs() -> int: ...
def str_table(arr: pa.Array) -> StrTable: ...

class RowReader:
    """Rows of one record batch as dicts of Python values (``{name: column[row].as_py()}``), read in place."""

    num_rows: int

    def __init__(self, batch: pa.RecordBatch) -> None: ...
    def row(self, i: int) -> dict: ...
