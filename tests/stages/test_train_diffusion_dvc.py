"""The train_diffusion stage: strict params, and `dvc repro train_diffusion` (with resume) in a DVC project."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from pagstore.config import ConfigError, load_section
from pagstore.data import PreparedSplit
from pagstore.improved_diffusion.checkpoint import load_checkpoint
from stages.train_diffusion import TrainDiffusionParams, main, settings_from_params
from tests.helpers.dvc_project import dvc, dvc_project

TINY = {
    "model": {"diffusion_steps": 20},
    "train": {"steps": 4, "batch_size": 8},
    "save_every": 2,
    "log_every": 2,
    "sample": {"sampler": "ddim", "respacing": "4", "per_class": 1, "seed": 0},
}


def _params(tmp_path: Path, section: dict) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"train_diffusion": section}))
    return path


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"preset": "cifar11"}, "unknown; known presets"),
        ({"preset": "digits-small", "model": {"num_channel": 64}}, "model.num_channel: unknown"),
        ({"preset": "digits-small", "model": {"num_classes": 5}}, "set from the dataset"),
        ({"preset": "digits-small", "model": {"learn_sigma": "yes"}}, "model.learn_sigma: expected true/false"),
        ({"preset": "digits-small", "train": {"step": 3}}, "unknown key"),
    ],
)
def test_bad_params_name_the_key(tmp_path, section, message):
    with pytest.raises(ConfigError, match=message):
        load_section(_params(tmp_path, section), "train_diffusion", TrainDiffusionParams)


def test_overrides_replace_the_preset_recipe(tmp_path):
    params = load_section(_params(tmp_path, {"preset": "cifar10", "train": {"lr": 3e-4}, "t_window": [100, 400]}),
                          "train_diffusion", TrainDiffusionParams)
    s = settings_from_params(params)
    assert (s.lr, s.batch_size, s.ema_rate, s.t_window) == (3e-4, 128, 0.9999, (100, 400))


def test_stage_resizes_to_the_preset_size_and_records_it(tmp_path):
    rng = np.random.default_rng(0)
    split = PreparedSplit(rng.integers(0, 256, (12, 1, 12, 12), dtype=np.uint8), np.arange(12) % 3,
                          ("a", "b", "c"), {})
    split.save(tmp_path / "train.npz")
    params = _params(tmp_path, {"preset": "digits-small", **TINY, "train": {"steps": 2, "batch_size": 4}})
    out = tmp_path / "out"
    main(["--params", str(params), "--train", str(tmp_path / "train.npz"), "--checkpoint", str(out / "ck.pt"),
          "--samples", str(out / "s.png"), "--loss-csv", str(out / "loss.csv")])
    model, diffusion, meta = load_checkpoint(out / "ck.pt")
    assert meta["config"]["image_size"] == 16 and meta["data_image_size"] == [12, 12]
    assert meta["num_classes"] == 4 and meta["class_names"] == ["a", "b", "c"] and diffusion.num_timesteps == 20


def test_dvc_repro_train_diffusion_and_resume(tmp_path):
    root = dvc_project(tmp_path, {"profile": "digits", "train_diffusion": {"preset": "digits-small", **TINY}})
    dvc(root, "repro", "train_diffusion")
    model, diffusion, meta = load_checkpoint(root / "models/diffusion/checkpoint.pt")
    assert meta["step"] == 4 and meta["num_classes"] == 11 and meta["config"]["in_channels"] == 1
    assert meta["config"]["image_size"] == 16 and meta["preset"] == "digits-small"
    lines = (root / "plots/diffusion/loss.csv").read_text().splitlines()
    assert lines[0] == "step,loss" and [line.split(",")[0] for line in lines[1:]] == ["2", "4"]
    grid = Image.open(root / "plots/diffusion/samples.png")
    assert grid.height > grid.width  # 10 class rows, 1 sample each
    with torch.no_grad():
        out = model(torch.zeros(2, 1, 16, 16), torch.zeros(2), torch.tensor([0, 10]))
    assert out.shape == (2, 2, 16, 16)

    # More steps: the persisted checkpoint is resumed at step 4, not retrained from scratch.
    params = yaml.safe_load((root / "pipeline.yaml").read_text())
    params["train_diffusion"]["train"]["steps"] = 6
    (root / "pipeline.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = dvc(root, "repro", "train_diffusion")
    assert "resuming diffusion training from step 4" in proc.stdout + proc.stderr
    _, _, meta = load_checkpoint(root / "models/diffusion/checkpoint.pt")
    assert meta["step"] == 6
    assert "up to date" in dvc(root, "status", "train_diffusion").stdout
