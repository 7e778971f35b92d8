"""The training positions of :class:`gamestore.torch.PositionDataset` as a Ray Dataset.

Read task ``i`` of ``n`` iterates ``PositionDataset(..., rank=i,
world_size=n)``: the dataset's own exact partition, so every selected
position comes exactly once over all tasks, with the same keys and values
as in process.  Ray needs every block of a column to have one shape, so
policies are padded to one width for the whole dataset: ``max_candidates``
(default: the widest policy of the selection, found with one SQL query).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import pyarrow as pa
from ray.data import Datasource, ReadTask
from ray.data.block import BlockAccessor, BlockMetadata
from ray.data.collate_fn import NumpyBatchCollateFn

try:  # imported here, in the worker's main thread as it unpickles a read task: importing torch first
    import torch  # noqa: F401  # in a Ray data thread races Ray's own threads ("partially initialized module")
except ImportError:  # pragma: no cover - read_positions needs the torch extra; the other readers do not
    pass

from ..errors import QueryError
from ..sqlguard import check_predicate
from .plan import store_location

if TYPE_CHECKING:
    import ray.data

__all__ = ["PositionsDatasource", "CollatePositions", "read_positions"]

_RESERVED = ("rank", "world_size", "transform")

#: Positions per Ray block: Ray costs about a millisecond per block, so blocks are large;
#: ``iter_batches`` / ``iter_torch_batches`` cut training batches of any size out of them.
BLOCK_POSITIONS = 16384


class PositionsDatasource(Datasource):
    """Read tasks that each iterate one rank of a :class:`~gamestore.torch.PositionDataset`."""

    def __init__(self, store: str, options: Mapping[str, Any]) -> None:
        super().__init__()
        bad = [k for k in _RESERVED if k in options]
        if bad:
            raise QueryError(f"read_positions sets {bad} itself (one rank per read task; no transform)")
        self._store = store
        self._options = dict(options)
        if self._options.get("max_candidates") is None:
            self._options["max_candidates"] = _widest_policy(store, self._options.get("where"))
        self._options.setdefault("batch_size", BLOCK_POSITIONS)
        from ..torch import PositionDataset

        probe = PositionDataset(store, rank=0, world_size=1, **self._options)
        try:
            self._positions = probe.num_positions
            sample = next(iter(probe), None)
        finally:
            probe.close()
        self._row_bytes = 0.0
        if sample is not None:
            block = _to_block(sample)
            self._row_bytes = block.nbytes / max(1, block.num_rows)

    def estimate_inmemory_data_size(self) -> int | None:
        return int(self._positions * self._row_bytes)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None) -> list[ReadTask]:
        n = max(1, int(parallelism))
        tasks = []
        for rank in range(n):
            rows = self._positions // n + (1 if rank < self._positions % n else 0)
            meta = BlockMetadata(num_rows=None, size_bytes=int(rows * self._row_bytes), input_files=None, exec_stats=None)
            tasks.append(ReadTask(_reader(self._store, self._options, rank, n), meta, per_task_row_limit=per_task_row_limit))
        return tasks


def _reader(store: str, options: dict, rank: int, world: int):
    def read() -> Iterator[pa.Table]:
        from ..torch import PositionDataset

        with PositionDataset(store, rank=rank, world_size=world, **options) as ds:
            for batch in ds:
                yield _to_block(batch)

    return read


def _to_block(batch: Mapping[str, Any]) -> pa.Table:
    """A PositionDataset batch (tensors, arrays and lists) as an Arrow block (tensor columns for arrays)."""
    columns: dict[str, np.ndarray] = {}
    for key, value in batch.items():
        if hasattr(value, "numpy") and callable(value.numpy):  # a torch tensor
            value = value.numpy()
        if isinstance(value, np.ndarray):
            columns[key] = value
        else:
            arr = np.empty(len(value), dtype=object)
            arr[:] = list(value)
            columns[key] = arr
    return BlockAccessor.batch_to_block(columns)


def _widest_policy(store: str, where: str | None) -> int:
    from ..store import open as open_store

    with open_store(store, create=False) as st:
        games = "SELECT game_id FROM games"
        if where:  # one checked SQL expression, as everywhere in gamestore
            games += f" WHERE ({check_predicate(where, allowed=st.catalog.view_names)}\n)"
        rows = st.sql(f"SELECT max(len(policy)) FROM moves WHERE game_id IN ({games})").fetchall()
    return max(1, int(rows[0][0] or 0))


def read_positions(store: Any, *, parallelism: int = -1, **options: Any) -> "ray.data.Dataset":
    """Positions of the selected games as a Ray Dataset: the batch keys of ``PositionDataset``, one row each.

    ``options`` are those of :class:`gamestore.torch.PositionDataset` (``where``, ``newest_games``,
    ``weight``, ``vectors``, ``action_map``, ``seed``, ...); ``batch_size`` is the positions per Ray block
    (default :data:`BLOCK_POSITIONS`), not the training batch size.
    Feed training with ``ds.iter_torch_batches(batch_size=..., collate_fn=CollatePositions())``
    (Ray's default collation cannot make tensors of the string columns ``game_id`` and ``board_type``).
    """
    import ray.data

    source = PositionsDatasource(store_location(store), options)
    return ray.data.read_datasource(source, override_num_blocks=None if parallelism <= 0 else parallelism)



class CollatePositions(NumpyBatchCollateFn):
    """Ray batches of positions as training batches: numeric columns as tensors, strings as numpy arrays.

    Pass ``collate_fn=CollatePositions()`` to ``iter_torch_batches``: Ray's default collation cannot make
    tensors of the string columns ``game_id`` and ``board_type``.
    """

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, Any]:  # type: ignore[override]  # Ray types it with an unbound TypeVar
        out: dict[str, Any] = {}
        for key, value in batch.items():
            arr = np.asarray(value)
            out[key] = torch.from_numpy(np.array(arr)) if arr.dtype.kind in "biuf" else arr
        return out
