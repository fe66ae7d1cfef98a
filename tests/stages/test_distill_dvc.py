"""`dvc repro distill@cm` on a tiny prepared split in a throw-away DVC project: store, export, plot, lock;
a parameter change redoes the (persisted) store instead of resuming it."""

from __future__ import annotations

import yaml

from pagstore.store import open_store
from pagstore.verify import verify_store
from tests.helpers.dvc_project import dvc, dvc_project
from tests.sources.sources_fixtures import tiny_images

OVERRIDES = {"distill": {"common": {"samples_per_shard": 16, "batch_size": 8, "workers": 1},
                         "plots": {"num_images": 2}}}


def test_dvc_repro_distill_cm(tmp_path):
    root = dvc_project(tmp_path, OVERRIDES)
    split = tiny_images(n=40, classes=3, shape=(1, 8, 8))
    split.save(root / "data/prepared/train.npz")
    split.save(root / "data/prepared/test.npz")
    dvc(root, "repro", "-s", "distill@cm")
    store = open_store(root / "stores/cm")
    assert store.is_complete() and store.num_shards == 3 and store.spec.source["scale_to_image_norm"] is True
    assert verify_store(root / "stores/cm").ok
    assert (root / "stores/cm/shards/index.json").is_file()
    assert (root / "plots/distill/cm.png").stat().st_size > 0
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert "distill@cm" in lock["stages"]
    assert "up to date" in dvc(root, "status", "distill@cm").stdout.lower() or "didn't change" in dvc(
        root, "repro", "-s", "distill@cm").stdout

    params = yaml.safe_load((root / "pipeline.yaml").read_text())
    params["distill"]["sources"]["cm"]["scale_to_image_norm"] = False
    (root / "pipeline.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(root, "repro", "-s", "distill@cm")
    store = open_store(root / "stores/cm")
    assert store.is_complete() and store.spec.source["scale"] == 1.0
