import json

import numpy as np
import pytest
import torch
import yaml

from pagstore.config import ConfigError
from pagstore.models import build_model
from pagstore.training.checkpoint import save_checkpoint
from pagstore.data.profile import EvalBudget
from stages.evaluate import EvaluateParams, main
from tests.evaluation.tiny import NUM_CLASSES, make_split

TINY_EVAL = {
    "num_images": 8, "seed": 0, "batch_size": 64, "device": "cpu", "autoattack": True, "large_eps": True,
    "alignment_images": 6,
    "sweep": {"eps_factors": [0.0, 1.0], "n_iter": 3},
    "corruptions": {"names": ["contrast_reduction", "gaussian_blur"], "severities": [0.5], "steps": 4, "refine": 1},
    "pictures": {"num_images": 2, "norm": "L2", "eps_factor": 1.0, "steps": 3},
}


def write_params(path, evaluate=None):
    params = {"profile": "tiny",
              "datasets": {"tiny": {"eval": {"eps_l2": 3.0, "eps_linf": 0.5, "large_eps_l2": 4.0,
                                             "large_eps_linf": 0.6}}},
              "evaluate": evaluate or TINY_EVAL}
    path.write_text(yaml.safe_dump(params))


def make_project(tmp_path):
    split = make_split(16, seed=1)
    split.save(tmp_path / "prepared" / "test.npz")
    torch.manual_seed(0)
    cfg = {"name": "small-cnn", "num_classes": NUM_CLASSES, "sample_shape": [1, 8, 8], "kwargs": {"width": 4}}
    model = build_model("small-cnn", NUM_CLASSES, (1, 8, 8), width=4)
    save_checkpoint(tmp_path / "ckpt.pt", model, cfg, {"method": "vanilla", "objective": {"objective": "ce"},
                                                       "epoch": 1, "history": [{"epoch": 1}]})
    # SBG gradients of test images: a real store holding the split's first images.
    from pagstore import create_store

    store = create_store(tmp_path / "sbg-test", num_samples=16, num_classes=NUM_CLASSES, sample_shape=(1, 8, 8),
                         dataset={"name": "tiny", "fingerprint": split.fingerprint(),
                                  "class_names": list(split.class_names), "split": "test"},
                         source={"name": "sbg"}, samples_per_shard=16)
    grads = np.random.default_rng(0).standard_normal((16, NUM_CLASSES, 1, 8, 8)).astype(np.float32)
    store.write_shard(0, split.images, split.labels, grads, np.arange(16))
    write_params(tmp_path / "pipeline.yaml")
    return tmp_path


def run_main(root, **extra):
    args = ["--params", str(root / "pipeline.yaml"), "--method", "vanilla", "--checkpoint", str(root / "ckpt.pt"),
            "--prepared", str(root / "prepared"), "--sbg-test", str(root / "sbg-test"),
            "--metrics", str(root / "metrics" / "vanilla.json"), "--plots", str(root / "plots" / "vanilla"),
            "--state-dir", str(root / "state" / "vanilla")]
    main(args)
    return json.loads((root / "metrics" / "vanilla.json").read_text())


def test_evaluate_stage_writes_metrics_and_plots(tmp_path):
    root = make_project(tmp_path)
    m = run_main(root)
    assert m["method"] == "vanilla" and m["num_images"] == 8
    assert set(m["robust_accuracy"]) == {"aa_l2", "aa_linf", "aa_l2_large", "aa_linf_large"}
    for res in m["autoattack"].values():
        assert res["robust_accuracy"] <= res["clean_accuracy"] == pytest.approx(m["clean_accuracy"])
        assert res["max_perturbation"] <= res["eps"] * (1 + 1e-4) + 1e-4
    assert m["autoattack"]["aa_l2"]["eps"] == 3.0 and m["autoattack"]["aa_linf_large"]["eps"] == 0.6
    assert set(m["corruptions"]) == {"contrast_reduction", "gaussian_blur"}
    assert {"etmann_mean", "sbg_cos_mean", "sbg_cos_true_class"} <= set(m["alignment"])
    assert m["sbg_test"]["num_images"] == 6 and m["sbg_test"]["matches_test_split"] is True
    # The record says what made it: parameters, budget, checkpoint meta (history left out) and data.
    assert m["params"]["evaluate"]["num_images"] == 8 and m["params"]["eval_budget"]["eps_l2"] == 3.0
    assert m["checkpoint"]["meta"]["method"] == "vanilla" and "history" not in m["checkpoint"]["meta"]
    assert m["checkpoint"]["meta"]["model"]["name"] == "small-cnn"
    assert m["test_split"]["fingerprint"].startswith("sha256:")
    plots = root / "plots" / "vanilla"
    assert sorted(p.name for p in plots.iterdir()) == ["sweep.csv", "sweep.png", "targeted.png"]
    assert len((plots / "sweep.csv").read_text().splitlines()) == 1 + 4
    # Resume state is removed after a finished run; a note stays so the declared folder is not empty.
    assert [p.name for p in (root / "state" / "vanilla").iterdir()] == ["README"]


def test_params_are_strict(tmp_path):
    write_params(tmp_path / "p.yaml", {**TINY_EVAL, "num_imgs": 3})
    from pagstore.config import load_section

    with pytest.raises(ConfigError, match="num_imgs"):
        load_section(tmp_path / "p.yaml", "evaluate", EvaluateParams)
    write_params(tmp_path / "p.yaml", {**TINY_EVAL, "corruptions": {**TINY_EVAL["corruptions"], "names": ["fog"]}})
    with pytest.raises(ConfigError, match="fog"):
        load_section(tmp_path / "p.yaml", "evaluate", EvaluateParams)
    with pytest.raises(ConfigError, match="eps_l2 must be >= 0"):
        from pagstore.config import from_dict

        from_dict(EvalBudget, {"eps_l2": -1, "eps_linf": 0.1, "large_eps_l2": 1, "large_eps_linf": 1})


def test_repo_pipeline_sections_load():
    from pathlib import Path

    from pagstore.config import load_section

    repo = Path(__file__).resolve().parents[2] / "pipeline.yaml"
    load_section(repo, "evaluate", EvaluateParams)
    budget = load_section(repo, "datasets.digits.eval", EvalBudget)
    assert budget.large_eps_l2 >= budget.eps_l2 and budget.large_eps_linf >= budget.eps_linf
