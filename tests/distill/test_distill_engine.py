"""The distillation engine: store contents, batch/worker invariance (threads and a 2-worker LocalCluster),
resume after SIGKILL, refusal to resume a different distillation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np
import pytest

from pagstore.distill import DistillError, SourceRecipe, distill
from pagstore.store import open_store
from tests.sources.sources_fixtures import tiny_checkpoint, tiny_images, tiny_vectors

REPO = Path(__file__).resolve().parents[2]


def _arrays(path: Path) -> dict[str, bytes]:
    store = open_store(path)
    assert store.is_complete()
    images, labels, grads = store.read(slice(None))
    return {"images": images.tobytes(), "labels": labels.tobytes(), "grads": grads.tobytes(),
            "index": store.read_index(slice(None)).tobytes()}


@pytest.fixture(scope="module")
def sbg_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sbg-engine")
    split = tiny_images(n=14, classes=3, shape=(1, 8, 8))
    split.save(root / "train.npz")
    ckpt = tiny_checkpoint(root / "checkpoint.pt", split)
    recipe = SourceRecipe("sbg", {"t": 20, "forward_batch": 2}, str(root / "train.npz"), seed=1, checkpoint=str(ckpt))
    return split, recipe, root


def test_store_holds_source_output(tmp_path):
    split = tiny_vectors(n=30)
    split.save(tmp_path / "train.npz")
    recipe = SourceRecipe("nn", {"subset_size": 0}, str(tmp_path / "train.npz"), seed=2)
    idx = np.arange(3, 30, 2)
    res = distill(tmp_path / "s", split, recipe, indices=idx, samples_per_shard=4, grad_dtype="float32", batch_size=3)
    assert res.shards_computed == [0, 1, 2, 3] and res.num_shards == 4
    store = open_store(tmp_path / "s")
    images, labels, grads = store.read(slice(None))
    np.testing.assert_array_equal(store.read_index(slice(None)), idx)
    np.testing.assert_array_equal(images, split.images[idx])
    np.testing.assert_array_equal(labels, split.labels[idx])
    np.testing.assert_array_equal(grads, recipe().compute(split.images[idx], split.labels[idx], idx))
    assert store.spec.source["name"] == "nn" and store.spec.dataset.fingerprint == split.fingerprint()
    # A complete store: rerunning does nothing; another source's parameters are refused.
    again = distill(tmp_path / "s", split, recipe, indices=idx, samples_per_shard=4, grad_dtype="float32")
    assert again.shards_computed == []
    other = SourceRecipe("nn", {"subset_size": 5}, str(tmp_path / "train.npz"), seed=2)
    with pytest.raises(DistillError, match="cannot resume.*source"):
        distill(tmp_path / "s", split, other, indices=idx, samples_per_shard=4, grad_dtype="float32")
    redone = distill(tmp_path / "s", split, other, indices=idx, samples_per_shard=4, grad_dtype="float32",
                     replace_mismatched=True)
    assert redone.shards_computed == [0, 1, 2, 3]
    assert open_store(tmp_path / "s").spec.source["subset_size"] == 5


def test_sbg_bytes_same_for_batch_sizes_threads_and_cluster(sbg_setup, tmp_path):
    split, recipe, _ = sbg_setup
    runs = {
        "b1-w1": dict(batch_size=1, workers=1),
        "b3-w2": dict(batch_size=3, workers=2),
        "b5-cluster2": dict(batch_size=5, scheduler="local-cluster:2"),
    }
    results = {}
    # Process workers forked, not spawned: spawned workers re-import torch, ~15 s on this 2-core machine.
    with dask.config.set({"distributed.worker.multiprocessing-method": "fork"}):
        for name, kw in runs.items():
            distill(tmp_path / name, split, recipe, samples_per_shard=4, **kw)
            results[name] = _arrays(tmp_path / name)
    ref = results["b1-w1"]
    for name, arrays in results.items():
        assert arrays == ref, name
    assert np.frombuffer(ref["grads"], np.float16).any()


def test_sigkilled_distillation_resumes_to_same_bytes(sbg_setup, tmp_path):
    split, recipe, root = sbg_setup
    distill(tmp_path / "full", split, recipe, samples_per_shard=2, batch_size=2, workers=1)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "tests.distill.slow_distill", str(root / "train.npz"), recipe.checkpoint,
           str(tmp_path / "cut"), "0.6"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        try:
            done = int(open_store(tmp_path / "cut").done_flags().sum())
        except Exception:  # the store is being created
            continue
        if done >= 2:
            break
    assert proc.poll() is None, f"subprocess ended early: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = open_store(tmp_path / "cut")
    assert 2 <= int(store.done_flags().sum()) < store.num_shards
    missing = store.missing_shards()
    res = distill(tmp_path / "cut", split, recipe, samples_per_shard=2, batch_size=2, workers=1)
    assert res.shards_computed == missing
    assert _arrays(tmp_path / "cut") == _arrays(tmp_path / "full")



def test_grad_compression_reaches_the_store_and_is_kept_on_resume(tmp_path):
    split = tiny_vectors(n=12)
    split.save(tmp_path / "train.npz")
    recipe = SourceRecipe("nn", {"subset_size": 0}, str(tmp_path / "train.npz"), seed=2)
    kw = {"samples_per_shard": 4, "grad_dtype": "float32", "batch_size": 4}
    distill(tmp_path / "s", split, recipe, grad_compression="none", **kw)
    store = open_store(tmp_path / "s")
    assert store.grad_compression == "none" and store.is_complete()
    np.testing.assert_array_equal(store.read(slice(None))[2], recipe().compute(split.images, split.labels,
                                                                                np.arange(12)))
    with pytest.raises(DistillError, match=r"cannot resume: .*grad_compression: existing 'none' != requested 'zstd'"):
        distill(tmp_path / "s", split, recipe, **kw)
    with pytest.raises(DistillError, match=r"^grad_compression must be one of \['zstd', 'lz4hc', 'none'\], got 'lz4'$"):
        distill(tmp_path / "t", split, recipe, grad_compression="lz4", **kw)
    assert not (tmp_path / "t").exists()


def test_build_store_passes_distill_common_grad_compression(tmp_path):
    from pagstore.config import from_dict
    from pagstore.distill.build import build_store
    from pagstore.distill.config import DistillCommon

    split = tiny_vectors(n=12)
    split.save(tmp_path / "train.npz")
    common = from_dict(DistillCommon, {"samples_per_shard": 4, "grad_dtype": "float16", "scheduler": "",
                                       "batch_size": 4, "workers": 1, "seed": 0, "device": "cpu",
                                       "grad_compression": "lz4hc", "export_webdataset": False})
    report = build_store("nn", {"subset_size": 0}, common, tmp_path, tmp_path / "s")
    assert report["ok"] and open_store(tmp_path / "s").grad_compression == "lz4hc"
