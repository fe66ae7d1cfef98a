"""Read ahead in a background thread, so decoding the next batches overlaps the training step.

zarr's codecs, numpy copies and torch's dtype conversion release the GIL, so one reader thread runs on
another core while the consumer computes (measured in benchmarks/bench_store_read.py, the "+ compute" rows).
DataLoader worker processes do the same with a pickled copy of the dataset per worker; a thread shares the
decoded-shard cache and costs no process start.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()
_POLL_S = 0.1  # how often a blocked producer checks whether the consumer has gone away


class Prefetched(Generic[T]):
    """An iterable whose every pass runs ``make()`` in a daemon thread, ``depth`` items ahead of the consumer.

    Items arrive in ``make()``'s order; an exception in the producer is raised in the consumer at the point
    it would have occurred; a consumer that stops early (break, close, garbage collection) stops the thread.
    """

    def __init__(self, make: Callable[[], Iterable[T]], depth: int = 2, length: int | None = None) -> None:
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self.make, self.depth, self.length = make, depth, length

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("this prefetched iterable has no length")
        return self.length

    def __iter__(self) -> Iterator[T]:
        q: queue.Queue = queue.Queue(self.depth)
        stop = threading.Event()

        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=_POLL_S)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for item in self.make():
                    if not put(item):
                        return
            except BaseException as exc:  # handed to the consumer, which re-raises it
                put((_DONE, exc))
                return
            put((_DONE, None))

        thread = threading.Thread(target=produce, name="pagstore-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if isinstance(item, tuple) and len(item) == 2 and item[0] is _DONE:
                    if item[1] is not None:
                        raise item[1]
                    return
                yield item
        finally:
            stop.set()
            thread.join()
