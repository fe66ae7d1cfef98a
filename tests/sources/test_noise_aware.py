"""The noise-aware classifier source: training on x_t, its gradients, its store and its checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from pagstore.config import ConfigError
from pagstore.noisy_classifier import NoisyClassifierParams, alphabar, noisy
from pagstore.sources import SourceError, build_source
from pagstore.sources.sbg import sample_noise
from pagstore.store import open_store
from stages.distill import run_distill
from stages.train_noisy_classifier import main as train_main
from tests.sources.sources_fixtures import tiny_images

NOISY = {"t": 200, "schedule": "cosine", "diffusion_steps": 1000, "model": "small-cnn",
         "model_kwargs": {"width": 4}, "epochs": 3, "batch_size": 8, "lr": 0.05, "seed": 0}
PARAMS = {
    "noisy_classifier": NOISY,
    "distill": {"common": {"samples_per_shard": 8, "grad_dtype": "float32", "scheduler": "", "batch_size": 4,
                           "workers": 1, "seed": 0},
                "sources": {"nac": {"t": 200}}, "plots": {"num_images": 2, "t_sweep": [5]}},
}


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(PARAMS))
    tiny_images(n=20, shape=(1, 8, 8)).save(tmp_path / "prepared/train.npz")
    tiny_images(n=9, shape=(1, 8, 8), seed=4).save(tmp_path / "prepared/test.npz")
    train_main(["--params", str(tmp_path / "pipeline.yaml"), "--prepared", str(tmp_path / "prepared"),
                "--checkpoint", str(tmp_path / "nc.pt"), "--metrics", str(tmp_path / "nc.json")])
    return tmp_path


def test_alphabar_matches_the_committed_schedule_note():
    # pipeline.yaml documents alphabar(400) = 0.65 for the 1000-step cosine schedule
    assert alphabar("cosine", 1000, 400) == pytest.approx(0.65, abs=0.01)


def test_source_gradients_are_the_classifier_gradient_at_x_t(project):
    from pagstore.data.prepared import load_split
    from pagstore.training.checkpoint import load_classifier

    train = load_split(project / "prepared/train.npz")
    metrics = json.loads((project / "nc.json").read_text())
    assert 0 <= metrics["noisy_test_accuracy"] <= 1 and metrics["cpu_seconds"] > 0
    src = build_source("nac", {"t": 200}, train, checkpoint=project / "nc.pt", seed=3)
    x, y = torch.from_numpy(train.as_float(np.arange(2))), torch.from_numpy(train.labels[:2])
    g = src.compute(x, y, torch.tensor([5, 11]))
    model, _ = load_classifier(project / "nc.pt")
    ab = alphabar("cosine", 1000, 200)
    for row, index in enumerate((5, 11)):
        xt = noisy(x[row:row + 1], sample_noise(3, index, (1, 8, 8))[None], ab).requires_grad_(True)
        for c in range(train.num_classes):
            (ref,) = torch.autograd.grad(torch.log_softmax(model(xt), 1)[0, c], xt)
            assert torch.allclose(g[row, c], 2.0 * ref[0], atol=1e-5)
    assert src.describe()["alphabar_t"] == pytest.approx(ab)


def test_distill_nac_store_and_checks(project):
    report = run_distill(project / "pipeline.yaml", "nac", project / "prepared", project / "stores/nac",
                         plots_dir=project / "plots", classifier=project / "nc.pt")
    assert report["ok"]
    store = open_store(project / "stores/nac")
    assert store.spec.source["name"] == "nac" and store.num_samples == 20
    assert np.isfinite(store.read(slice(0, 4))[2]).all()
    with pytest.raises(ConfigError, match="needs --classifier"):
        run_distill(project / "pipeline.yaml", "nac", project / "prepared", project / "s2")
    from pagstore.data.prepared import load_split

    with pytest.raises(SourceError, match="trained at t = 200"):
        build_source("nac", {"t": 300}, load_split(project / "prepared/train.npz"), checkpoint=project / "nc.pt")


def test_bad_noisy_params_are_named():
    from pagstore.config import from_dict

    with pytest.raises((ConfigError, ValueError), match="t must be in"):
        from_dict(NoisyClassifierParams, {**NOISY, "t": 1000}, where="noisy_classifier")
