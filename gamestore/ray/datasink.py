"""Writing a Ray Dataset of game records into a store, from the Ray tasks themselves.

A game record does not survive Ray's conversion of rows to Arrow (policies
keyed by move strings would become one struct with every key of the
dataset, absent keys as nulls), so a dataset of records carries each record
whole in one binary column, ``record``: :func:`records_to_dataset` and
:func:`encode_record` make it, ``map_batches`` functions that play games
return ``{"record": [encode_record(r) for r in games]}``.  The encoding is
pickle (numpy vectors and floats come back bit for bit): decode only
datasets of your own pipeline.

Each write task commits its own shards (one per block it writes), so no
task waits for another; a retried task (its node died after some blocks
were committed) finds those games in the store and skips them, so nothing
is written twice.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ray.data import Datasink
from ray.data.block import Block, BlockAccessor

from .plan import store_location
from ..errors import RecordError

if TYPE_CHECKING:
    import ray.data

__all__ = ["GamesDatasink", "WriteSummary", "encode_record", "decode_record", "records_to_dataset", "write_games"]

RECORD_COLUMN = "record"


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One game record as the bytes of a ``record`` column."""
    return pickle.dumps(dict(record), protocol=5)


def decode_record(data: bytes) -> dict:
    record = pickle.loads(data)
    if not isinstance(record, dict):
        raise RecordError(f"a {RECORD_COLUMN!r} value must encode a dict, not {type(record).__name__}")
    return record


def records_to_dataset(records: Iterable[Mapping[str, Any]], *, blocks: int | None = None) -> "ray.data.Dataset":
    """A Ray Dataset with one row per game record (column ``record``), ready for :func:`write_games`."""
    import ray.data

    rows = [{RECORD_COLUMN: encode_record(r)} for r in records]
    return ray.data.from_items(rows, override_num_blocks=blocks)


@dataclass
class WriteSummary:
    """What one write (all tasks together) did."""

    games_written: int = 0
    games_skipped: int = 0
    tasks: int = 0


class GamesDatasink(Datasink[tuple[int, int]]):
    """Writes each block's game records into the store at ``store`` and commits them (one shard per block)."""

    def __init__(self, store: str, *, column: str = RECORD_COLUMN) -> None:
        self._store = store
        self._column = column
        self.summary = WriteSummary()

    def on_write_start(self, schema: Any = None) -> None:
        names = getattr(schema, "names", None)
        if names is not None and self._column not in names:
            raise RecordError(
                f"the dataset has no {self._column!r} column (columns: {list(names)}):"
                " make it with gamestore.ray.records_to_dataset or encode_record"
            )
        from ..store import open as open_store

        open_store(self._store, create=False).close()  # a missing store fails here, before any task runs

    def write(self, blocks: Iterable[Block], ctx: Any) -> tuple[int, int]:
        from ..store import open as open_store

        written = skipped = 0
        with open_store(self._store, create=False) as store:
            for block in blocks:
                data = BlockAccessor.for_block(block).to_arrow().column(self._column).to_pylist()
                records = [decode_record(d) for d in data]
                store.refresh()  # a retry must see the shards its earlier attempt committed
                fresh = [r for r in records if r.get("game_id") not in store]
                if fresh:
                    written += store.write_games(fresh, on_duplicate="skip")
                    store.flush()
                skipped += len(records) - len(fresh)
        return written, skipped

    def on_write_complete(self, write_result: Any) -> None:
        returns: Sequence[tuple[int, int]] = write_result.write_returns
        self.summary = WriteSummary(
            games_written=sum(w for w, _ in returns), games_skipped=sum(s for _, s in returns), tasks=len(returns)
        )


def write_games(dataset: "ray.data.Dataset", store: Any, *, column: str = RECORD_COLUMN,
                ray_remote_args: Mapping[str, Any] | None = None) -> WriteSummary:
    """Write the game records of ``dataset`` (column ``column``) into ``store``, from the Ray tasks.

    Games already in the store are skipped.  Returns how many games were written and skipped.
    """
    sink = GamesDatasink(store_location(store), column=column)
    dataset.write_datasink(sink, ray_remote_args=dict(ray_remote_args or {}))
    return sink.summary
