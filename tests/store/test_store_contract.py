"""The ONE contract suite both store layouts pass: zarr random access and the webdataset shard stream.

Each layout reads a store written by the real writer; the expected content is regenerated independently
from store_fixtures.shard_data, so a reader that reorders, drops or mis-decodes anything fails. Every test
runs on each store variant: format v1, v2 with K = C, v2 with K = 2 < C = 3 classes, v2 K = 2 int8, and v2
stores whose gradient chunks are lz4hc or uncompressed ("none"; float16 and int8).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
import store_fixtures
from store_fixtures import dataset_info, expected, filled_store, new_store, shard_data, write_shards

from pagstore.loaders import ZarrGradientDataset, stream_batches
from pagstore.shards import ExportError, export_webdataset
from pagstore.spec import SpecError
from pagstore.store import StoreError, create_store, open_store

HERE = Path(__file__).parent
REPO = HERE.parents[1]


class ZarrLayout:
    """Random access: a DataLoader over ZarrGradientDataset."""

    name = "zarr"

    def prepare(self, path: Path) -> None:
        pass

    def batches(self, path: Path, batch_size: int, order: list[int] | None = None) -> list[tuple]:
        ds = ZarrGradientDataset(path, with_classes=True)
        sampler = order if order is not None else range(len(ds))
        return list(torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=sampler))

    def epoch_order(self, path: Path, seed: int, epoch: int) -> list[int]:
        n = len(ZarrGradientDataset(path))
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).tolist()


class StreamLayout:
    """Streaming: webdataset tars exported from the store, read by stream_batches."""

    name = "webdataset"

    def prepare(self, path: Path) -> None:
        export_webdataset(path, samples_per_tar=7)  # tars deliberately not aligned with zarr shards

    def batches(self, path: Path, batch_size: int, order: list[int] | None = None) -> list[tuple]:
        assert order is None, "the stream decides its own order"
        return list(stream_batches(path, batch_size, shuffle=False, seed=0, epoch=0, with_classes=True))

    def epoch_order(self, path: Path, seed: int, epoch: int) -> list[int]:
        rows = [b[3] for b in stream_batches(path, 5, shuffle=True, seed=seed, epoch=epoch, with_index=True,
                                             shuffle_buffer=10)]
        return torch.cat(rows).tolist()


@pytest.fixture(params=[ZarrLayout(), StreamLayout()], ids=lambda layout: layout.name)
def layout(request: pytest.FixtureRequest) -> ZarrLayout | StreamLayout:
    return request.param


@pytest.fixture(autouse=True, params=list(store_fixtures.VARIANTS))
def variant(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store variant every test of this module writes and reads (see store_fixtures.VARIANTS)."""
    monkeypatch.setattr(store_fixtures, "VARIANT", dict(store_fixtures.VARIANTS[request.param]))
    return request.param


def _cat(batches: list[tuple]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.cat([b[i] for b in batches]) for i in range(4))


def _assert_content(layout, path: Path, exp: dict[str, np.ndarray], image_dtype: str = "uint8",
                    grad_dtype: str = "float16") -> None:
    layout.prepare(path)
    images, labels, grads, classes = _cat(layout.batches(path, batch_size=6))
    want_images = exp["images"].astype(np.float32) / (255.0 if image_dtype == "uint8" else 1.0)
    want_grads = exp["grads"].astype(grad_dtype).astype(np.float32)
    assert images.dtype == torch.float32 and labels.dtype == torch.int64 and grads.dtype == torch.float32
    np.testing.assert_array_equal(images.numpy(), want_images)
    np.testing.assert_array_equal(labels.numpy(), exp["labels"])
    np.testing.assert_array_equal(grads.numpy(), want_grads)
    assert classes.dtype == torch.int64
    np.testing.assert_array_equal(classes.numpy(), exp["classes"])
    if classes.shape[1] < len(store_fixtures.CLASSES):
        np.testing.assert_array_equal(classes[:, 0].numpy(), exp["labels"])  # true class first


@pytest.mark.parametrize("grad_dtype", ["float16", "float32"])
def test_round_trip_in_store_order(layout, tmp_path: Path, grad_dtype: str) -> None:
    path = tmp_path / "s"
    filled_store(path, num_samples=37, samples_per_shard=8, grad_dtype=grad_dtype)  # last shard partial
    _assert_content(layout, path, expected(37, 8, (1, 4, 4)), grad_dtype=grad_dtype)


def test_raw_float_vectors_stay_as_they_are(layout, tmp_path: Path) -> None:
    path = tmp_path / "s"
    filled_store(path, num_samples=20, samples_per_shard=6, sample_shape=(2,), image_dtype="float32")
    assert open_store(path).spec.pixel_space == "raw"
    _assert_content(layout, path, expected(20, 6, (2,), image_dtype="float32"), image_dtype="float32")


def test_epoch_order_is_seeded_complete_and_changes_per_epoch(layout, tmp_path: Path) -> None:
    path = tmp_path / "s"
    filled_store(path, num_samples=40, samples_per_shard=8)
    layout.prepare(path)
    e0, e0_again, e1 = (layout.epoch_order(path, 3, 0), layout.epoch_order(path, 3, 0),
                        layout.epoch_order(path, 3, 1))
    assert sorted(e0) == list(range(40)) and sorted(e1) == list(range(40))
    assert e0 == e0_again and e0 != e1 and e0 != list(range(40))


def test_both_layouts_give_identical_batches_for_the_same_order(tmp_path: Path) -> None:
    path = tmp_path / "s"
    filled_store(path, num_samples=40, samples_per_shard=8)
    export_webdataset(path, samples_per_tar=9)
    streamed = list(stream_batches(path, 6, shuffle=True, seed=1, epoch=2, with_index=True, shuffle_buffer=8))
    order = torch.cat([b[3] for b in streamed]).tolist()
    random_access = ZarrLayout().batches(path, 6, order=order)
    assert len(streamed) == len(random_access) == 7
    for s, r in zip(streamed, random_access):
        for a, b in zip(s[:3], r):
            assert torch.equal(a, b)


def test_resume_after_writer_killed_mid_shard(layout, tmp_path: Path) -> None:
    path = tmp_path / "s"
    new_store(path, num_samples=40, samples_per_shard=8)
    # The child writes shards 0 and 1, then blocks inside shard 2 after its images/labels/index were written
    # but before its grads: the parent SIGKILLs it there.
    script = f"""
import sys, time
sys.path[:0] = [{str(HERE)!r}, {str(REPO)!r}]
from pagstore.store import open_store
from store_fixtures import write_shards
store = open_store({str(path)!r}, "a")
write_shards(store, [0, 1])
class Stall:
    def __init__(self, arr): self.arr = arr
    def __setitem__(self, key, value):
        print("mid-shard", flush=True); time.sleep(120)
store._arrays["grads"] = Stall(store._arrays["grads"])
write_shards(store, [2])
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "mid-shard"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    store = new_store(path, num_samples=40, samples_per_shard=8, mode="a")  # resume: same spec, reopened
    assert store.missing_shards() == [2, 3, 4]
    with pytest.raises(StoreError, match="missing shards"):
        ZarrGradientDataset(path)
    with pytest.raises(StoreError, match="incomplete"):
        export_webdataset(path)
    write_shards(store, store.missing_shards())
    assert store.is_complete()
    _assert_content(layout, path, expected(40, 8, (1, 4, 4)))


def test_concurrent_writers_threads_on_distinct_shards(layout, tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = new_store(path, num_samples=48, samples_per_shard=8)
    barrier = threading.Barrier(3)

    def work(shards: list[int]) -> None:
        barrier.wait()  # start together so the writes really overlap
        write_shards(open_store(path, "r+"), shards)

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(work, [[0, 3], [1, 4], [2, 5]]))
    assert store.is_complete()
    _assert_content(layout, path, expected(48, 8, (1, 4, 4)))


def test_concurrent_writers_processes_on_distinct_shards(layout, tmp_path: Path) -> None:
    path = tmp_path / "s"
    new_store(path, num_samples=32, samples_per_shard=8)
    script = """
import sys
sys.path[:0] = [{here!r}, {repo!r}]
from pagstore.store import open_store
from store_fixtures import write_shards
write_shards(open_store({path!r}, "r+"), {shards})
"""
    procs = [subprocess.Popen([sys.executable, "-c", script.format(here=str(HERE), repo=str(REPO), path=str(path),
                                                                   shards=shards)])
             for shards in ([0, 2], [1, 3])]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert open_store(path).is_complete()
    files = sorted(p.name for p in (path / "grads" / "c").iterdir())
    assert files == ["0", "1", "2", "3"]  # one shard file per writer task, nothing else
    _assert_content(layout, path, expected(32, 8, (1, 4, 4)))


def test_gradient_chunks_carry_the_variants_codecs_in_plain_zarr_metadata(tmp_path: Path) -> None:
    """What plain zarr sees: the variant's compression in the gradient arrays' codec lists (crc32c always),
    zstd for the other arrays; so a store of another compression is still just zarr."""
    path = tmp_path / "s"
    filled_store(path, num_samples=16, samples_per_shard=8)
    comp = store_fixtures.VARIANT["grad_compression"]
    grad_arrays = ["grads"] + (["grad_scales"] if store_fixtures.VARIANT["grad_codec"] == "int8" else [])
    for name in grad_arrays + ["images", "labels"]:
        inner = json.loads((path / name / "zarr.json").read_text())["codecs"][0]["configuration"]["codecs"]
        want = comp if name in grad_arrays else "zstd"
        assert [c["name"] for c in inner] == (["bytes", "crc32c"] if want == "none" else ["bytes", "blosc", "crc32c"])
        if want != "none":
            assert inner[1]["configuration"]["cname"] == want, name
    assert open_store(path).grad_compression == comp


def test_newer_format_version_is_refused(layout, tmp_path: Path) -> None:
    path = tmp_path / "s"
    filled_store(path, num_samples=16, samples_per_shard=8)
    layout.prepare(path)
    if layout.name == "zarr":
        group = zarr.open_group(str(path), mode="r+")
        group.attrs["format_version"] = 3
        with pytest.raises(SpecError, match=r"format_version 3 .*newer.*format_version 1, 2"):
            layout.batches(path, 4)
    else:
        index_file = path / "shards" / "index.json"
        index = json.loads(index_file.read_text())
        index["spec"]["format_version"] = 3
        index_file.write_text(json.dumps(index))
        with pytest.raises(SpecError, match=r"format_version 3 .*newer.*format_version 1, 2"):
            layout.batches(path, 4)


def test_rejected_write_leaves_shard_missing_and_layout_refuses(layout, tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = new_store(path, num_samples=16, samples_per_shard=8)
    write_shards(store, [0])
    d = shard_data(1, 8, 16, (1, 4, 4), num_target_classes=store.spec.num_target_classes)
    d["grads"][5, 1, 0, 1, 1] = np.nan
    with pytest.raises(StoreError, match="sample 13"):
        store.write_shard(1, d["images"], d["labels"], d["grads"], d["index"], d["classes"])
    assert store.missing_shards() == [1]
    with pytest.raises(StoreError, match="missing shards"):
        layout.prepare(path) if layout.name == "webdataset" else layout.batches(path, 4)


def test_stream_without_export_names_the_command(tmp_path: Path) -> None:
    path = tmp_path / "s"
    filled_store(path, num_samples=8, samples_per_shard=8)
    with pytest.raises(ExportError, match="pagstore export"):
        next(stream_batches(path, 4, shuffle=False, seed=0, epoch=0))


def test_create_modes(tmp_path: Path) -> None:
    path = tmp_path / "s"
    filled_store(path, num_samples=16, samples_per_shard=8)
    with pytest.raises(StoreError, match="already exists"):
        new_store(path, num_samples=16, samples_per_shard=8, mode="w-")
    with pytest.raises(StoreError, match="num_samples: existing 16 != requested 24"):
        new_store(path, num_samples=24, samples_per_shard=8, mode="a")
    assert new_store(path, num_samples=16, samples_per_shard=8, mode="a").is_complete()
    assert new_store(path, num_samples=16, samples_per_shard=8, mode="w").missing_shards() == [0, 1]
    with pytest.raises(StoreError, match="read-only"):
        write_shards(open_store(path, "r"), [0])
    with pytest.raises(StoreError, match="no gradient store"):
        open_store(tmp_path / "nothing", "r")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "precious.txt").write_text("x")
    with pytest.raises(StoreError, match="not a gradient store; refusing"):
        create_store(tmp_path / "other", "w", num_samples=4, num_classes=3, sample_shape=(2,),
                     image_dtype="float32", dataset=dataset_info(), source={"name": "x"})
    assert os.path.exists(tmp_path / "other" / "precious.txt")


def test_chunk_shuffled_order_is_a_seeded_permutation(tmp_path: Path) -> None:
    from pagstore.loaders import chunk_shuffled_order

    order = chunk_shuffled_order(100, 7, seed=0, epoch=0)
    assert sorted(order) == list(range(100)) and order != list(range(100))
    assert order == chunk_shuffled_order(100, 7, seed=0, epoch=0)
    assert order != chunk_shuffled_order(100, 7, seed=0, epoch=1)
    # 98 = 14 blocks of 7: each group of 2 blocks (14 samples) touches exactly 2 blocks
    order = chunk_shuffled_order(98, 7, seed=0, epoch=0, mix_blocks=2)
    blocks_per_group = [len({i // 7 for i in order[s:s + 14]}) for s in range(0, 98, 14)]
    assert max(blocks_per_group) == 2
    filled_store(tmp_path / "s", num_samples=40, samples_per_shard=8)
    ds = ZarrGradientDataset(tmp_path / "s")
    assert sorted(ds.epoch_order(seed=1, epoch=0)) == list(range(40))


def test_batch_loader_matches_per_sample_loader(tmp_path: Path) -> None:
    path = tmp_path / "s"
    filled_store(path, num_samples=30, samples_per_shard=8)
    ds = ZarrGradientDataset(path)
    order = ds.epoch_order(seed=0, epoch=0)
    fast = list(ds.loader(7, order))
    slow = ZarrLayout().batches(path, 7, order=order)
    assert len(fast) == len(slow) == 5
    for a, b in zip(fast, slow):
        assert all(torch.equal(u, v) for u, v in zip(a, b))
