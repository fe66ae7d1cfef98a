"""Data feeding: the plain iterator splits by rank; a PAG method trains from a real store's shards, and a
store made from other data is refused before any work."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from train_fixtures import tiny_split, write_prepared, write_store

from pagstore.training.config import TrainCommon
from pagstore.training.data import DatasetMismatchError, array_batches, check_store_matches
from pagstore.training.objectives import ObjectiveSpec
from pagstore.training.run import train_method

COMMON = TrainCommon(model="small-cnn", model_kwargs={"width": 4}, epochs=2, batch_size=16, milestones=(1,),
                     crop_pad=1, eval_samples=20, align_samples=8)


def test_array_batches_split_ranks_disjointly_and_cover_the_split() -> None:
    split = tiny_split(n=30)
    seen = []
    for rank in range(2):
        rows = [x for x, _, g in array_batches(split, 4, seed=0, epoch=3, rank=rank, world_size=2)]
        assert all(g is None for _, _, g in array_batches(split, 4, seed=0, epoch=3, rank=rank, world_size=2))
        seen.append(np.concatenate([r.numpy().reshape(len(r), -1) for r in rows]))
    both = np.concatenate(seen)
    assert len(both) == 30
    assert len({row.tobytes() for row in both}) == len({row.tobytes() for row in split.as_float().reshape(30, -1)})
    first = next(array_batches(split, 30, seed=0, epoch=1))[1]
    again = next(array_batches(split, 30, seed=0, epoch=2))[1]
    assert sorted(first.tolist()) == sorted(again.tolist())


def test_pag_method_trains_from_store_shards(tmp_path) -> None:
    train, prepared = write_prepared(tmp_path)
    write_store(tmp_path / "stores" / "sbg", train)
    spec = ObjectiveSpec(objective="pag", store="sbg", lam=1.0)
    final = train_method("pag-sbg", spec, COMMON, prepared, tmp_path / "stores", tmp_path / "model",
                         tmp_path / "m.json", tmp_path / "p.csv")
    assert (tmp_path / "model" / "checkpoint.pt").is_file()
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(r["pag"] and r["align_cos"] and r["test_acc"] for r in rows)
    assert -1.0 <= final["align_cos"] <= 1.0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["store"] == "sbg" and metrics["lam"] == 1.0 and "pag" in metrics


def test_store_from_other_data_is_refused_before_training(tmp_path) -> None:
    train, prepared = write_prepared(tmp_path)
    write_store(tmp_path / "stores" / "cm", train, fingerprint="sha256:" + "0" * 64)
    with pytest.raises(DatasetMismatchError, match="store was made from dataset sha256:000"):
        check_store_matches(tmp_path / "stores" / "cm", train)
    spec = ObjectiveSpec(objective="pag", store="cm", lam=0.2)
    with pytest.raises(DatasetMismatchError, match="re-run distillation"):
        train_method("pag-cm", spec, COMMON, prepared, tmp_path / "stores", tmp_path / "model",
                     tmp_path / "m.json", tmp_path / "p.csv")
    assert not (tmp_path / "model").exists()


def test_vector_data_trains_without_augmentation_or_clamp(tmp_path) -> None:
    from pagstore.data.prepared import PreparedSplit

    rng = np.random.default_rng(0)
    y = np.arange(40, dtype=np.int64) % 2
    x = (rng.normal(size=(40, 2)) * 0.3 + np.where(y[:, None] == 1, 3.0, -3.0)).astype(np.float32)
    for name in ("train", "test"):
        PreparedSplit(x, y, ("a", "b"), {"split": name}).save(tmp_path / "prepared" / f"{name}.npz")
    common = TrainCommon(model="mlp", model_kwargs={"hidden": 8}, epochs=2, batch_size=8, milestones=(2,), lr=0.1)
    spec = ObjectiveSpec(objective="at", norm="l2", eps=2.0, steps=3)
    final = train_method("at-l2", spec, common, tmp_path / "prepared", tmp_path / "stores", tmp_path / "m",
                         tmp_path / "m.json", tmp_path / "p.csv")
    assert final["test_acc"] > 0.9  # separable blobs far outside [0, 1]: no clamp may squash them
