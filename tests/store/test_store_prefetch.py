"""The reader thread (pagstore.prefetch) and the zarr loader's batches with and without it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import store_fixtures
import torch
from store_fixtures import expected, filled_store

from pagstore.loaders import ZarrGradientDataset
from pagstore.prefetch import Prefetched


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pagstore-prefetch"]


def test_prefetched_keeps_order_and_length_and_reruns() -> None:
    it = Prefetched(lambda: iter(range(50)), depth=3, length=50)
    assert list(it) == list(range(50)) == list(it)  # every pass is a fresh producer
    assert len(it) == 50
    with pytest.raises(TypeError, match="no length"):
        len(Prefetched(lambda: iter([])))
    with pytest.raises(ValueError, match="depth must be >= 1, got 0"):
        Prefetched(lambda: iter([]), depth=0)


def test_prefetched_raises_the_producers_error_after_the_items_before_it() -> None:
    def make():
        yield 1
        yield 2
        raise KeyError("shard 7")

    got = []
    with pytest.raises(KeyError, match="shard 7"):
        for x in Prefetched(make, depth=1):
            got.append(x)
    assert got == [1, 2]
    assert not _prefetch_threads()


def test_prefetched_stops_its_thread_when_the_consumer_stops_early() -> None:
    made = []

    def make():
        for i in range(10_000):
            made.append(i)
            yield i

    it = iter(Prefetched(make, depth=2))
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    time.sleep(0.2)
    assert len(made) <= 3 + 2 + 1  # bounded read-ahead: consumed + queue depth + one being put
    it.close()
    assert not _prefetch_threads() and len(made) < 10


@pytest.mark.parametrize("variant", ["v1", "v2-K2", "v2-K2-int8"])
def test_loader_batches_equal_with_and_without_prefetch_and_match_the_store(tmp_path: Path, monkeypatch,
                                                                            variant: str) -> None:
    monkeypatch.setattr(store_fixtures, "VARIANT", dict(store_fixtures.VARIANTS[variant]))
    filled_store(tmp_path / "s", num_samples=40, samples_per_shard=8, grad_dtype="float32")
    ds = ZarrGradientDataset(tmp_path / "s")
    order = ds.epoch_order(seed=3, epoch=1) + [5, 5, 0]  # runs, shuffles and repeats
    threaded, plain = list(ds.loader(6, order)), list(ds.loader(6, order, prefetch=0))
    assert isinstance(ds.loader(6, order, prefetch=0), torch.utils.data.DataLoader)
    assert len(threaded) == len(plain) == len(ds.loader(6, order)) == 8
    exp = expected(40, 8, (1, 4, 4))
    for j, (a, b) in enumerate(zip(threaded, plain)):
        rows = order[j * 6:(j + 1) * 6]
        for u, v in zip(a, b):
            assert u.dtype == v.dtype and torch.equal(u, v)
        np.testing.assert_allclose(a[2].numpy(), exp["grads"][rows], rtol=1e-3, atol=1e-3)  # float16-free path
        np.testing.assert_array_equal(a[1].numpy(), exp["labels"][rows])


def test_batches_do_not_alias_the_shard_cache(tmp_path: Path) -> None:
    """Editing a returned batch in place (float images, labels, grads) must not change later batches."""
    filled_store(tmp_path / "s", num_samples=16, samples_per_shard=8, image_dtype="float32")
    ds = ZarrGradientDataset(tmp_path / "s")
    first = [t.clone() for t in ds.read_batch(range(8))]
    for t in ds.read_batch(range(8)):
        t.add_(1)
    for u, v in zip(first, ds.read_batch(range(8))):
        assert torch.equal(u, v)


def test_int8_batch_decodes_like_the_store(tmp_path: Path, monkeypatch) -> None:
    """The loader decodes int8 straight into its float32 batch; it must equal GradientStore.read."""
    from pagstore.store import open_store

    monkeypatch.setattr(store_fixtures, "VARIANT", dict(store_fixtures.VARIANTS["v2-K2-int8"]))
    filled_store(tmp_path / "s", num_samples=24, samples_per_shard=8, grad_dtype="float32")
    rows = [9, 10, 11, 12, 2, 23]
    grads = ZarrGradientDataset(tmp_path / "s").read_batch(rows)[2]
    np.testing.assert_array_equal(grads.numpy(), open_store(tmp_path / "s").read(rows)[2])


def test_webdataset_stream_is_the_same_with_and_without_its_reader_thread(tmp_path: Path) -> None:
    from pagstore.loaders import stream_batches
    from pagstore.shards import export_webdataset

    filled_store(tmp_path / "s", num_samples=30, samples_per_shard=8)
    export_webdataset(tmp_path / "s", samples_per_tar=8)
    kw = {"shuffle": True, "seed": 1, "epoch": 2, "with_index": True}
    threaded = list(stream_batches(tmp_path / "s", 4, **kw))
    plain = list(stream_batches(tmp_path / "s", 4, prefetch=0, **kw))
    assert len(threaded) == len(plain) == 8
    assert all(torch.equal(u, v) for a, b in zip(threaded, plain) for u, v in zip(a, b))
    assert not _prefetch_threads()
