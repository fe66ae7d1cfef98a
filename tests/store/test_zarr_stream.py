"""The shuffled training stream over the zarr store (stores without a webdataset export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from store_fixtures import expected, filled_store

from pagstore.shards import export_webdataset, has_export
from pagstore.training.data import store_batches
from pagstore.zarr_stream import rank_order, zarr_stream_batches


@pytest.mark.parametrize("n, world", [(10, 1), (10, 3), (12, 4), (3, 4)])
def test_rank_order_gives_equal_contiguous_parts_covering_the_order(n: int, world: int) -> None:
    order = np.random.default_rng(0).permutation(n)
    parts = [rank_order(order, r, world) for r in range(world)]
    assert {len(p) for p in parts} == {-(-n // world)}
    assert set(np.concatenate(parts).tolist()) == set(range(n))
    assert np.concatenate(parts)[:n].tolist() == order.tolist()  # contiguous pieces of the order, then padding


def test_stream_is_seeded_split_by_rank_and_matches_the_store(tmp_path: Path) -> None:
    filled_store(tmp_path / "s", num_samples=40, samples_per_shard=8, image_dtype="float32")
    exp = expected(40, 8, (1, 4, 4), image_dtype="float32")
    key = {exp["images"][i].tobytes(): i for i in range(40)}  # images are distinct: identify rows by them

    def rows(rank: int, world: int, epoch: int) -> list[int]:
        out = []
        for x, y, g in zarr_stream_batches(tmp_path / "s", 6, shuffle=True, seed=0, epoch=epoch, rank=rank,
                                           world_size=world):
            for j in range(len(x)):
                i = key[x[j].numpy().tobytes()]
                assert int(y[j]) == exp["labels"][i]
                np.testing.assert_allclose(g[j].numpy(), exp["grads"][i], rtol=1e-3, atol=1e-3)
                out.append(i)
        return out

    one = rows(0, 1, epoch=0)
    assert sorted(one) == list(range(40)) and one != list(range(40))
    assert one == rows(0, 1, epoch=0) and one != rows(0, 1, epoch=1)
    r0, r1, r2 = (rows(r, 3, epoch=0) for r in range(3))
    assert len(r0) == len(r1) == len(r2) == 14 and set(r0 + r1 + r2) == set(range(40))
    plain = [b[0] for b in zarr_stream_batches(tmp_path / "s", 40, shuffle=False, seed=0, epoch=0, rank=0,
                                               world_size=1)]
    np.testing.assert_array_equal(plain[0].numpy(), exp["images"])
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        next(zarr_stream_batches(tmp_path / "s", 0, shuffle=True, seed=0, epoch=0))


def test_training_reads_zarr_when_the_store_has_no_export(tmp_path: Path) -> None:
    """store_batches streams the tars when the export exists and the zarr arrays otherwise; both give every
    sample once per epoch with the same content."""
    filled_store(tmp_path / "s", num_samples=24, samples_per_shard=8)
    assert not has_export(tmp_path / "s")

    def epoch() -> dict[bytes, tuple[int, bytes]]:
        seen = {}
        for x, y, g in store_batches(tmp_path / "s", 5, seed=0, epoch=0):
            for j in range(len(x)):
                seen[x[j].numpy().tobytes()] = (int(y[j]), g[j].numpy().tobytes())
        return seen

    from_zarr = epoch()
    export_webdataset(tmp_path / "s")
    assert has_export(tmp_path / "s")
    from_tars = epoch()
    assert len(from_zarr) == 24 and from_zarr == from_tars
    assert all(isinstance(t, torch.Tensor) for t in next(store_batches(tmp_path / "s", 5, seed=0, epoch=0)))
