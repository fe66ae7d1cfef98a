"""Run shard tasks on dask.distributed: one source (one diffusion model) per worker via a WorkerPlugin.

Imported only when a scheduler address is given: it imports ``distributed``, which ``import pagstore``
must not. ``"local-cluster:N"`` starts a throw-away ``LocalCluster`` with N single-threaded process workers
(tests, single-machine multi-process runs); any other string is a scheduler address
(``tcp://host:8786``) of a cluster started with ``dask scheduler`` / ``dask worker``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker
from tqdm.auto import tqdm

from pagstore.distill.shard import ShardWork, run_shard
from pagstore.sources.base import GradientSource

PLUGIN_NAME = "pagstore-gradient-source"


class SourcePlugin(WorkerPlugin):
    """Builds the gradient source once when a worker starts; tasks find it by name on their worker."""

    name = PLUGIN_NAME

    def __init__(self, factory: Callable[[], GradientSource], torch_threads: int = 1) -> None:
        self.factory = factory
        self.torch_threads = torch_threads
        self.source: GradientSource | None = None

    def setup(self, worker: object) -> None:
        # Workers share their machine's cores with each other: one torch thread each by default.
        torch.set_num_threads(self.torch_threads)
        self.source = self.factory()


def _worker_task(store_path: str, work: ShardWork, batch_size: int, grad_dtype: str) -> int:
    source = get_worker().plugins[PLUGIN_NAME].source
    return run_shard(store_path, source, work, batch_size, grad_dtype)


@contextlib.contextmanager
def connect(scheduler: str) -> Iterator[Client]:
    """A client for ``scheduler`` (an address, or ``local-cluster:N`` to start N local process workers)."""
    if scheduler.startswith("local-cluster:"):
        try:
            n = int(scheduler.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"scheduler {scheduler!r}: expected 'local-cluster:<number of workers>'") from None
        with LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
        ) as cluster, Client(cluster) as client:
            yield client
    else:
        with Client(scheduler) as client:
            yield client


def run_on_cluster(
    scheduler: str,
    store_path: str,
    todo: list[ShardWork],
    factory: Callable[[], GradientSource],
    batch_size: int,
    grad_dtype: str,
) -> None:
    """Submit one task per shard; show progress as shards complete; re-raise the first task error."""
    with connect(scheduler) as client:
        client.register_plugin(SourcePlugin(factory), name=PLUGIN_NAME)
        futures = [
            client.submit(_worker_task, store_path, w, batch_size, grad_dtype, key=f"pagstore-shard-{w.k}", pure=False)
            for w in todo
        ]
        for future in tqdm(as_completed(futures), total=len(futures), desc="distill", unit="shard", disable=None):
            future.result()
