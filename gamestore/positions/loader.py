"""ResumableLoader: a DataLoader over a PositionDataset that saves and resumes mid-epoch exactly."""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterator, Mapping

from torch.utils.data import DataLoader, IterableDataset

from .dataset import END_OF_WORKER, PositionDataset
from .plan import StateMismatchError

__all__ = ["ResumableLoader", "passthrough"]


def passthrough(batch: Any) -> Any:
    """A ``collate_fn`` that returns the batch as it is.

    Not needed for PositionDataset batches (torch's default conversion passes
    a :class:`~gamestore.torch.Batch` through untouched); kept for code that
    names it.
    """
    return batch


class _Tagged(IterableDataset):
    """Yields ``(worker id, batch)`` and a final ``(worker id, END_OF_WORKER)`` per worker."""

    def __init__(self, dataset: PositionDataset) -> None:
        self.dataset = dataset

    def __iter__(self) -> Iterator[Any]:
        return self.dataset._iterate(tagged=True)


class ResumableLoader:
    """Iterate a :class:`PositionDataset` through DataLoader workers, resumably.

    Batches come in a fixed round-robin order over the workers (a worker that
    has run out is skipped), so the sequence depends only on the dataset's
    options and the epoch.  :meth:`state_dict` records how many batches each
    worker has delivered; a new loader given that state through
    :meth:`load_state_dict` continues with exactly the batches an
    uninterrupted run would have produced next.  Workers are started per
    epoch (call :meth:`set_epoch` between epochs); they open shard files
    themselves and never share a DuckDB connection with this process.
    """

    def __init__(
        self,
        dataset: PositionDataset,
        *,
        num_workers: int = 0,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
        timeout: float = 0,
        multiprocessing_context: Any = None,
        worker_init_fn: Callable[[int], None] | None = None,
    ) -> None:
        if num_workers < 0:
            raise ValueError("num_workers must be >= 0")
        self.dataset = dataset
        self.num_workers = int(num_workers)
        self._loader_kwargs = {
            "pin_memory": pin_memory,
            "timeout": timeout,
            "multiprocessing_context": multiprocessing_context,
            "worker_init_fn": worker_init_fn,
        }
        if num_workers > 0 and prefetch_factor is not None:
            self._loader_kwargs["prefetch_factor"] = prefetch_factor
        self._slots = max(self.num_workers, 1)
        self._counts = [0] * self._slots
        self._next = 0
        self._resuming = False

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` (collective under torch.distributed): new order, newly committed games."""
        self.dataset.set_epoch(epoch)
        self._counts = [0] * self._slots
        self._next = 0
        self._resuming = False

    def state_dict(self) -> dict:
        """The position in the current epoch, valid between any two batches."""
        state = self.dataset._state(self._slots, dict(enumerate(self._counts)))
        state["next_worker"] = self._next
        return state

    def load_state_dict(self, state: Mapping) -> None:
        """Continue from ``state`` on the next iteration (same dataset options and ``num_workers``)."""
        if state.get("num_workers") != self._slots:
            raise StateMismatchError(
                f"the state was saved with {state.get('num_workers')} worker slot(s), this loader has {self._slots}"
            )
        self.dataset.load_state_dict(state)
        batches = state["batches"]
        self._counts = [int(batches.get(w, batches.get(str(w), 0))) for w in range(self._slots)]
        self._next = int(state.get("next_worker", 0))
        self._resuming = True

    def __iter__(self) -> Iterator[Any]:
        if not self._resuming:
            self._counts = [0] * self._slots
            self._next = 0
            self.dataset.load_state_dict(self.dataset._state(self._slots, {}))
        self._resuming = False
        if self.num_workers == 0:
            source: Iterator = self.dataset._iterate(tagged=True)
        else:
            loader = DataLoader(
                _Tagged(self.dataset),
                batch_size=None,
                num_workers=self.num_workers,
                collate_fn=passthrough,
                **self._loader_kwargs,
            )
            source = iter(loader)  # workers start here, each with a copy of the pending resume state
            self.dataset._clear_resume()
        return self._round_robin(source)

    def _round_robin(self, source: Iterator) -> Iterator[Any]:
        k = self._slots
        pending: list[deque] = [deque() for _ in range(k)]
        ended = [False] * k

        def ready() -> Iterator[Any]:
            while not all(ended[w] and not pending[w] for w in range(k)):
                w = self._next
                if pending[w]:
                    batch = pending[w].popleft()
                    self._counts[w] += 1
                    self._next = (w + 1) % k
                    yield batch
                elif ended[w]:
                    self._next = (w + 1) % k
                else:
                    return

        for w, item in source:
            if isinstance(item, str) and item == END_OF_WORKER:
                ended[w] = True
            else:
                pending[w].append(item)
            yield from ready()
        for w in range(k):
            ended[w] = True
        yield from ready()
