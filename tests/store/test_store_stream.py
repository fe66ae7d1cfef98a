"""Streaming specifics: DDP rank split, DataLoader workers, resampled equal-length epochs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from store_fixtures import filled_store

from pagstore.loaders import stream_batches
from pagstore.shards import export_webdataset


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    path = tmp_path / "s"
    filled_store(path, num_samples=40, samples_per_shard=8)
    export_webdataset(path, samples_per_tar=5)  # 8 tars
    return path


def _rows(path: Path, **kw) -> list[int]:
    kw = {"shuffle": True, "seed": 0, "epoch": 0, **kw}
    return torch.cat([b[3] for b in stream_batches(path, 4, with_index=True, **kw)]).tolist()


def test_ranks_partition_the_epoch(exported: Path) -> None:
    parts = [_rows(exported, rank=r, world_size=3) for r in range(3)]
    assert sorted(sum(parts, [])) == list(range(40))
    assert all(parts)  # 8 tars over 3 ranks: 3/3/2 tars each
    assert [len(p) for p in parts] == [15, 15, 10]


def test_workers_split_shards_without_duplicates(exported: Path) -> None:
    rows = _rows(exported, num_workers=2, rank=1, world_size=2)
    assert len(rows) == 20 and len(set(rows)) == 20
    assert sorted(rows) == sorted(_rows(exported, rank=1, world_size=2))


def test_epoch_length_gives_every_rank_the_same_number_of_batches(exported: Path) -> None:
    counts = [len(list(stream_batches(exported, 4, shuffle=True, seed=0, epoch=0, epoch_length=13, rank=r,
                                      world_size=3))) for r in range(3)]
    assert counts == [13, 13, 13]
    a = _rows(exported, epoch_length=6, rank=0, world_size=3)
    assert a == _rows(exported, epoch_length=6, rank=0, world_size=3)  # seeded
    assert a != _rows(exported, epoch_length=6, rank=1, world_size=3)  # ranks draw differently
    assert all(0 <= r < 40 for r in a) and len(a) == 24


def test_torch_distributed_defaults_and_bad_rank(exported: Path) -> None:
    assert not torch.distributed.is_initialized()
    assert sorted(_rows(exported)) == list(range(40))  # no process group: rank 0 of 1
    with pytest.raises(ValueError, match="8 tar\\(s\\) cannot feed 9 ranks"):
        next(stream_batches(exported, 4, shuffle=False, seed=0, epoch=0, rank=0, world_size=9))
    assert len(list(stream_batches(exported, 4, shuffle=False, seed=0, epoch=0, rank=8, world_size=9,
                                   epoch_length=2))) == 2
    with pytest.raises(ValueError, match=r"rank 2 is not in \[0, world_size=2\)"):
        next(stream_batches(exported, 4, shuffle=False, seed=0, epoch=0, rank=2, world_size=2))


def test_zarr_dataset_in_worker_processes(tmp_path: Path) -> None:
    from pagstore.loaders import ZarrGradientDataset

    path = tmp_path / "z"
    filled_store(path, num_samples=24, samples_per_shard=8)
    ds = ZarrGradientDataset(path)
    ds.read_batch([0])  # use the zarr handle (and its event loop) before forking
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2, timeout=60)
    got = torch.cat([b[2] for b in loader])
    assert torch.equal(got, ds.read_batch(list(range(24)))[2])
