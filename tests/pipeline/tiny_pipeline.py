"""The whole default stage graph, shrunk to run in about a minute: digits at 8x8, three methods, a
20-step diffusion model, one-epoch classifiers, AutoAttack on 8 images, a one-seed toy."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.evaluation.test_evaluate_stage import TINY_EVAL
from tests.helpers.dvc_project import dvc_project

# As in pipeline.yaml: the lambdas come from the digits profile's recipe.
METHODS = {"pag-sbg": {"objective": "pag", "store": "sbg"}, "pag-cm": {"objective": "pag", "store": "cm"}}
PLAIN = {"vanilla": {"objective": "ce"}}
ALL_METHODS = [*METHODS, *PLAIN]

OVERRIDES = {
    "datasets": {"digits": {"options": {"image_size": 8, "test_fraction": 0.5}}},
    "train_diffusion": {"model": {"diffusion_steps": 20, "image_size": 8},
                        "train": {"steps": 4, "batch_size": 16}, "save_every": 2, "log_every": 2,
                        "sample": {"sampler": "ddim", "respacing": "4", "per_class": 1, "seed": 0}},
    "distill": {"common": {"samples_per_shard": 512, "batch_size": 256, "workers": 1},
                "sources": {"sbg": {"t": 8, "forward_batch": 64}, "nn": {"subset_size": 50}},
                "test": {"num_test": 16}, "plots": {"num_images": 2, "t_sweep": [4, 8]}},
    "train": {"common": {"model_kwargs": {"width": 4}, "epochs": 2, "milestones": [2], "batch_size": 128,
                         "crop_pad": 1, "eval_samples": 100, "align_samples": 8}},
    "evaluate": {**TINY_EVAL, "alignment_images": 8},
    "toy": {"data": {"points_per_mode": 20, "test_size": 12}, "epochs": 2, "seeds": [0],
            "grid": {"angles": 8, "radii": 2}},
}


def tiny_pipeline(tmp_path: Path) -> Path:
    """A git + DVC project holding the real pipeline with OVERRIDES and only the methods above."""
    root = dvc_project(tmp_path, OVERRIDES)
    params = yaml.safe_load((root / "pipeline.yaml").read_text())
    params["train"]["methods"], params["train"]["plain_methods"] = METHODS, PLAIN  # replace, not merge
    (root / "pipeline.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root
