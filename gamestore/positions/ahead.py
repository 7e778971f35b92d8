"""Making a generator's items ahead on one helper thread: the batch overlap of :class:`PositionDataset`.

``PositionDataset(assemble_ahead=True)`` runs its batch stream and the batch
assembly here, so that the next batch is made while the consumer uses the
current one (``DataLoader.__next__``'s own per-batch work, the training
step).  The hand-over is two ``queue.SimpleQueue`` (C): made items in order,
and free places bounding how many wait (``depth``); a consumer waiting for
the next item waits in C, without the GIL.  The items come in the
generator's order; an exception raised while making item ``k`` is raised to
the consumer when it asks for item ``k`` (after items ``0..k-1``); closing
the returned generator (a ``break``, an exception, garbage collection) stops
the helper and joins it, so no thread outlives an iteration (fork safety
for DataLoader workers).  The source generator runs, and is closed, on the
helper thread.  The items the consumer took two groups ago go back with a
free place and are dropped on the helper thread: a batch the consumer no
longer references is freed there (freeing its ~13 tensors cost the
consumer ~10 us per batch).
"""
from __future__ import annotations

import threading
from queue import SimpleQueue
from typing import Any, Generator, Iterator, TypeVar

__all__ = ["made_ahead", "DEPTH"]

T = TypeVar("T")
#: items made and not yet taken, at most (a batch of 256 RingRift positions is ~150 KB)
DEPTH = 2
#: items handed over together (a consumer that waits is woken once per group: a wake-up and the GIL taken back cost
#: the consumer ~10 us of CPU)
GROUP = 4
_ITEM, _END, _RAISE = 0, 1, 2


def made_ahead(items: Iterator[T], *, depth: int = DEPTH, group: int = GROUP,
               name: str = "gamestore-assemble") -> Generator[T, None, None]:
    """``items`` made on one helper thread, handed over ``group`` at a time, at most ``depth`` groups ahead of the
    consumer (see the module docstring)."""
    if depth < 1 or group < 1:
        raise ValueError("depth and group must be at least 1")
    ready: SimpleQueue[tuple[int, Any]] = SimpleQueue()
    free: SimpleQueue[list[Any] | None] = SimpleQueue()  # free places, each with a group of items to drop
    for _ in range(depth):
        free.put(None)
    stopped = threading.Event()

    def work() -> None:
        made: list[Any] = []
        try:
            while True:
                free.get()  # a free place (waits without the GIL); the group it carries is dropped here
                if stopped.is_set():
                    return
                made = []
                for item in items:
                    made.append(item)
                    if len(made) == group:
                        break
                else:
                    ready.put((_END, made))
                    return
                ready.put((_ITEM, made))
        except BaseException as exc:  # raised to the consumer after the items made before it
            ready.put((_RAISE, (made, exc)))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        last: list[Any] | None = None
        while True:
            kind, got = ready.get()  # waits without the GIL
            if kind == _RAISE:
                got, exc = got
                yield from got
                raise exc
            # the group before the last one goes back with the free place: the helper drops it, so the batches the
            # consumer no longer holds are freed there (and into its own malloc arena), not on the consumer's thread
            older, last = last, got
            free.put(older)
            del older
            yield from got
            if kind == _END:
                return
    finally:
        stopped.set()
        free.put(None)  # wake the helper if it waits for a place: it sees ``stopped`` and ends
        thread.join()
