"""Games and moves of a store as Ray Datasources.

The driver selects games in the catalog (a SQL predicate over the ``games``
view, as everywhere in gamestore) and groups the shards that hold them into
read tasks of about equal work; a read task opens only its own shards and
decompresses only the selected columns, and keeps only the selected games'
rows.  The selection is a snapshot: games committed after
:func:`read_games` / :func:`read_moves` was called are not in the dataset.
Every selected game comes exactly once (the catalog names the one committed
copy of a game id that counts), and read tasks are deterministic, so Ray's
retries of a task lost with its node give the same rows again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from .. import readpath
from ..errors import QueryError
from ..schema import conform
from ..readpath import ShardPick, shard_batches
from .plan import open_shard, select_shards, shard_name, split_work, store_location

if TYPE_CHECKING:
    import ray.data

__all__ = ["GamesDatasource", "MovesDatasource", "read_games", "read_moves"]


@dataclass
class _Source:
    """What every read task of one dataset shares."""

    store: str
    columns: list[str] | None
    names: list[str] = field(default_factory=list)  # the output columns, in order


class _StoreDatasource(Datasource):
    """Shared planning of :class:`GamesDatasource` and :class:`MovesDatasource`."""

    _kind = ""

    def __init__(self, store: Any, *, where: str | None = None, columns: Sequence[str] | None = None) -> None:
        super().__init__()
        self._projection_map = None
        self._store = store_location(store)
        self._where = where
        self._columns = None if columns is None else list(columns)
        self._work, self._schema = select_shards(self._store, where=where, kind=self._kind)
        known = self._schema.names
        if self._columns is not None:
            unknown = [c for c in self._columns if c not in known]
            if unknown:
                raise QueryError(f"unknown {self._kind} columns: {unknown} (known: {', '.join(known)})")
        self._row_bytes: float | None = None

    # -- Ray's planning hooks --------------------------------------------------------------------
    def supports_projection_pushdown(self) -> bool:
        return True

    def _output_columns(self) -> list[str]:
        cols = self._columns if self._columns is not None else self._schema.names
        projected = self._get_data_columns()
        if projected is not None:
            cols = [c for c in cols if c in projected]
        return list(cols)

    def _num_rows(self, work: ShardPick) -> int:
        raise NotImplementedError

    def estimate_inmemory_data_size(self) -> int | None:
        return int(sum(self._num_rows(w) for w in self._work) * self._bytes_per_row())

    def _bytes_per_row(self) -> float:
        """In-memory bytes of one output row, measured on one batch of the first selected shard."""
        if self._row_bytes is None:
            self._row_bytes = 0.0
            for w in self._work:
                sample = self._sample(w, self._output_columns())
                if sample is not None and sample.num_rows:
                    self._row_bytes = sample.nbytes / sample.num_rows
                    break
        return self._row_bytes

    def _sample(self, work: ShardPick, columns: list[str]) -> pa.RecordBatch | None:
        raise NotImplementedError

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None) -> list[ReadTask]:
        columns = self._output_columns()
        schema = pa.schema([self._schema.field(c) for c in columns])
        row_bytes = self._bytes_per_row()
        tasks = []
        for group in split_work(self._work, max(1, parallelism), weight=self._num_rows):
            rows = sum(self._num_rows(w) for w in group)
            meta = BlockMetadata(
                num_rows=rows,
                size_bytes=int(rows * row_bytes),
                input_files=tuple(shard_name(self._store, w.shard_id) for w in group),
                exec_stats=None,
            )
            tasks.append(
                ReadTask(_reader(type(self)._read_group, self._store, group, columns, schema), meta, schema=schema,
                         per_task_row_limit=per_task_row_limit)
            )
        return tasks

    @staticmethod
    def _read_group(store: str, group: list[ShardPick], columns: list[str], schema: pa.Schema) -> Iterator[pa.Table]:
        raise NotImplementedError


def _reader(fn: Callable[..., Iterator[pa.Table]], *args: Any) -> Callable[[], Iterable[pa.Table]]:
    def read() -> Iterable[pa.Table]:
        return fn(*args)

    return read


class GamesDatasource(_StoreDatasource):
    """One row per selected game: the game-level columns of ``games.arrow`` (docs/format.md)."""

    _kind = "games"

    def _num_rows(self, work: ShardPick) -> int:
        return work.num_games

    def _sample(self, work: ShardPick, columns: list[str]) -> pa.RecordBatch | None:
        table = _games_of(self._store, work, columns)
        return table.to_batches()[0] if table.num_rows else None

    @staticmethod
    def _read_group(store: str, group: list[ShardPick], columns: list[str], schema: pa.Schema) -> Iterator[pa.Table]:
        for work in group:
            yield conform(_games_of(store, work, columns), schema)


def _games_of(store: str, work: ShardPick, columns: list[str]) -> pa.Table:
    reader = open_shard(store, work.shard_id)
    try:
        return reader.games.take(pa.array(work.rows)).select(columns)
    finally:
        reader.close()


class MovesDatasource(_StoreDatasource):
    """One row per move of the selected games: the columns of ``moves.arrow`` (docs/format.md)."""

    _kind = "moves"

    def _num_rows(self, work: ShardPick) -> int:
        return work.num_moves

    def _sample(self, work: ShardPick, columns: list[str]) -> pa.RecordBatch | None:
        schema = pa.schema([self._schema.field(c) for c in columns])
        for batch in _moves_of(self._store, work, schema):
            return batch
        return None

    @staticmethod
    def _read_group(store: str, group: list[ShardPick], columns: list[str], schema: pa.Schema) -> Iterator[pa.Table]:
        for work in group:
            batches = list(_moves_of(store, work, schema))
            if batches:
                yield pa.Table.from_batches(batches, schema=schema)


def _moves_of(store: str, work: ShardPick, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The picked games' moves of one shard, in ``schema`` (the one read path: gamestore/readpath.py)."""
    reader = open_shard(store, work.shard_id)
    try:
        yield from shard_batches(reader, work, columns=schema.names, schema=schema)
    finally:
        reader.close()


def read_games(store: Any, *, where: str | None = None, columns: Sequence[str] | None = None,
               parallelism: int = -1) -> "ray.data.Dataset":
    """The selected games (``where``: SQL over the ``games`` view) as a Ray Dataset, one row per game."""
    import ray.data

    return ray.data.read_datasource(GamesDatasource(store, where=where, columns=columns), override_num_blocks=_blocks(parallelism))


def read_moves(store: Any, *, where: str | None = None, columns: Sequence[str] | None = None,
               parallelism: int = -1) -> "ray.data.Dataset":
    """The moves of the selected games as a Ray Dataset, one row per move (a game's moves in order)."""
    import ray.data

    return ray.data.read_datasource(MovesDatasource(store, where=where, columns=columns), override_num_blocks=_blocks(parallelism))


def _blocks(parallelism: int) -> int | None:
    return None if parallelism <= 0 else int(parallelism)

