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
