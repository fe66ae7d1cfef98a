"""Every compute stage under `dvc repro` with `device: auto` (the CPU here) and `precision: bf16` (CPU
autocast), on tiny settings: prepare -> train_diffusion -> distill_sbg / distill_test -> train@pag-sbg ->
evaluate@pag-sbg, and toy. The 8-px digits with the 16-px digits-small model also run SBG's resize path."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import yaml

from pagstore.metrics_files import read_record
from pagstore.store import open_store
from pagstore.training.checkpoint import load_classifier
from tests.helpers.dvc_project import dvc, dvc_project

EXEC = {"device": "auto", "precision": "bf16"}
OVERRIDES = {
    "datasets": {"digits": {"options": {"image_size": 8, "test_fraction": 0.8}}},
    "train_diffusion": {"model": {"diffusion_steps": 20, "num_channels": 32, "num_res_blocks": 1}, **EXEC,
                        "train": {"steps": 3, "batch_size": 8}, "save_every": 3, "log_every": 1,
                        "sample": {"sampler": "ddim", "respacing": "2", "per_class": 1, "seed": 0}},
    "distill": {"common": {"samples_per_shard": 512, "batch_size": 64, "workers": 1, **EXEC},
                "sources": {"sbg": {"t": 8, "forward_batch": 16}},
                "test": {"num_test": 16}, "plots": {"num_images": 1, "t_sweep": [8]}},
    "train": {"common": {"model_kwargs": {"width": 4}, "epochs": 1, "milestones": [1], "batch_size": 128,
                         "crop_pad": 1, "eval_samples": 50, "align_samples": 8, **EXEC},
              "methods": {"pag-sbg": {"objective": "pag", "store": "sbg", "lam": 1.5, "k_classes": 2}}},
    "evaluate": {"num_images": 4, "batch_size": 64, "autoattack": False, "large_eps": False,
                 "alignment_images": 4, "sweep": {"eps_factors": [1.0], "n_iter": 2},
                 "corruptions": {"names": ["contrast_reduction"], "severities": [0.5], "steps": 2, "refine": 1},
                 "pictures": {"num_images": 1, "norm": "L2", "eps_factor": 1.0, "steps": 2}, **EXEC},
    "toy": {"data": {"points_per_mode": 20, "test_size": 12}, "epochs": 2, "seeds": [0],
            "grid": {"angles": 8, "radii": 2}, **EXEC},
}


# Slow: on a CPU without native bf16 (this project's 2-core AMD EPYC machines emulate it) the bf16 SBG
# distillation alone takes ~7 minutes, most of the suite's time; tests/devices covers bf16 per component.
@pytest.mark.slow
def test_every_stage_runs_with_device_auto_and_bf16(tmp_path):
    root = dvc_project(tmp_path, OVERRIDES)
    dvc(root, "repro", "evaluate@pag-sbg", "toy")

    ckpt = torch.load(root / "models/diffusion/checkpoint.pt", weights_only=True)
    assert ckpt["params"]["precision"] == "bf16" and ckpt["signature"]["settings"]["precision"] == "bf16"
    assert all(np.isfinite(v) for _, v in ckpt["loss_history"])

    sbg = open_store(root / "stores/sbg")
    assert sbg.is_complete() and sbg.spec.source["precision"] == "bf16"
    assert sbg.spec.source["resize"]["from"] == [8, 8] and sbg.spec.source["resize"]["to"] == [16, 16]
    _, _, grads = sbg.read(np.arange(4))
    assert grads.shape[-2:] == (8, 8) and np.isfinite(grads.astype(np.float32)).all()

    _, meta = load_classifier(root / "models/classifiers/pag-sbg/checkpoint.pt")
    expected_device = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert meta["execution"]["device"] == expected_device and meta["execution"]["precision"] == "bf16"
    assert meta["execution"]["channels_last"] is torch.cuda.is_available()
    train = read_record(root / "metrics/train/pag-sbg.json")  # the full record beside the lean file
    assert np.isfinite(train["loss"]) and train["pag"] > 0

    ev = read_record(root / "metrics/eval/pag-sbg.json")
    assert ev["params"]["evaluate"]["precision"] == "bf16" and 0 <= ev["clean_accuracy"] <= 1
    assert np.isfinite(ev["alignment"]["sbg_cos_mean"])

    toy = read_record(root / "metrics/toy.details.json")
    assert toy["params"]["precision"] == "bf16" and np.isfinite(toy["nn-pag"]["train_loss_mean"])
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert {"train_diffusion", "distill_sbg", "distill_test", "train@pag-sbg", "evaluate@pag-sbg", "toy"} <= set(lock)
