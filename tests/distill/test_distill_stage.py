"""stages/distill.py called directly: SBG store + figures (t-sweep), the test-split store, bad arguments."""

from __future__ import annotations

import pytest
import yaml

from pagstore.config import ConfigError
from pagstore.store import open_store
from stages.distill import main, run_distill
from tests.sources.sources_fixtures import tiny_checkpoint, tiny_images

PARAMS = {"distill": {
    "common": {"samples_per_shard": 8, "grad_dtype": "float16", "scheduler": "", "batch_size": 4, "workers": 1,
               "seed": 0},
    "sources": {"oi": {}, "cm": {"scale_to_image_norm": True}, "nn": {"subset_size": 0},
                "sbg": {"t": 20, "forward_batch": 2}},
    "test": {"num_test": 5},
    "plots": {"num_images": 2, "t_sweep": [5, 20, 40]},
}}


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(PARAMS))
    train, test = tiny_images(n=20, shape=(1, 8, 8)), tiny_images(n=9, shape=(1, 8, 8), seed=4)
    train.save(tmp_path / "prepared/train.npz")
    test.save(tmp_path / "prepared/test.npz")
    tiny_checkpoint(tmp_path / "checkpoint.pt", train)
    return tmp_path


def test_sbg_stage_writes_verified_store_and_figures(project):
    report = run_distill(project / "pipeline.yaml", "sbg", project / "prepared", project / "stores/sbg",
                         project / "checkpoint.pt", project / "plots")
    assert report["ok"]
    store = open_store(project / "stores/sbg")
    assert store.num_samples == 20 and store.spec.source["t"] == 20 and store.spec.dataset.split == "train"
    assert (project / "stores/sbg/shards/index.json").is_file()
    for png in ("sbg.png", "sbg_t_sweep.png"):
        assert (project / "plots" / png).read_bytes()[:4] == b"\x89PNG"


def test_test_split_store_holds_first_num_test_images(project):
    main(["--params", str(project / "pipeline.yaml"), "--source", "sbg", "--split", "test", "--prepared",
          str(project / "prepared"), "--diffusion", str(project / "checkpoint.pt"), "--out",
          str(project / "stores/sbg-test")])
    store = open_store(project / "stores/sbg-test")
    assert store.is_complete() and store.spec.dataset.split == "test"
    assert store.read_index(slice(None)).tolist() == [0, 1, 2, 3, 4]


def test_stage_refuses_bad_arguments(project):
    with pytest.raises(ConfigError, match="needs --diffusion"):
        run_distill(project / "pipeline.yaml", "sbg", project / "prepared", project / "s")
    with pytest.raises(ConfigError, match="train split only"):
        run_distill(project / "pipeline.yaml", "nn", project / "prepared", project / "s", split_name="test")
    with pytest.raises(SystemExit, match="batch_size"):
        bad = {"distill": {**PARAMS["distill"], "common": {**PARAMS["distill"]["common"], "batch_size": 0}}}
        (project / "bad.yaml").write_text(yaml.safe_dump(bad))
        main(["--params", str(project / "bad.yaml"), "--source", "oi", "--prepared", str(project / "prepared"),
              "--out", str(project / "s")])
