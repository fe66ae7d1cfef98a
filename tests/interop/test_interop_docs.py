"""README "Use the paper's released data and models": every command run as written, on fakes in the official
formats, in a throw-away DVC project (CIFAR-10 profile on a fake archive)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import yaml

from pagstore.data.prepared import load_split
from pagstore.metrics_files import read_record
from pagstore.store import open_store
from pagstore.training.checkpoint import load_classifier
from tests.data.data_fakes import make_cifar
from tests.helpers.doc_commands import run_documented
from tests.helpers.dvc_project import dvc, dvc_project
from tests.interop.fakes import make_diffusion_state, make_gradient_set, make_official_classifier

TINY_EVAL = {
    "num_images": 3, "alignment_images": 3, "autoattack": False, "large_eps": False,
    "sweep": {"eps_factors": [0.0, 1.0], "n_iter": 2},
    "corruptions": {"names": ["contrast_reduction"], "severities": [0.5], "steps": 2, "refine": 1},
    "pictures": {"num_images": 1, "norm": "L2", "eps_factor": 1.0, "steps": 2},
}
OVERRIDES = {
    "profile": "cifar10",
    "train": {"common": {"model": "small-cnn", "model_kwargs": {"width": 4}, "epochs": 1, "milestones": [1],
                         "batch_size": 32, "crop_pad": 1, "eval_samples": 4, "align_samples": 4}},
    "evaluate": TINY_EVAL,
    "external_models": {"sbg-rn18": {"checkpoint": "data/paper/rn18_sbg.pt", "layout": "pag-rob",
                                     "arch": "resnet18"}},
}


def _sbg_test_store(root: Path) -> None:
    """stores/sbg-test (a dependency of every evaluate stage): random gradients of the test images."""
    from pagstore import create_store

    split = load_split(root / "data/prepared/test.npz")
    n = len(split)
    store = create_store(root / "stores/sbg-test", num_samples=n, num_classes=10, sample_shape=(3, 32, 32),
                         dataset={"name": "cifar10", "fingerprint": split.fingerprint(),
                                  "class_names": list(split.class_names), "split": "test"},
                         source={"name": "sbg"}, samples_per_shard=n)
    grads = np.random.default_rng(0).standard_normal((n, 10, 3, 32, 32)).astype(np.float32)
    store.write_shard(0, split.images, split.labels, grads, np.arange(n))


def test_readme_paper_workflow_on_fakes(tmp_path: Path) -> None:
    root = dvc_project(tmp_path, OVERRIDES)
    make_cifar(root / "data/raw", "cifar10", "python", per_batch=20)  # 100 images: every class present
    run_documented("dvc repro -s prepare", cwd=root)
    train = load_split(root / "data/prepared/train.npz")
    _, _, order, data = make_gradient_set(root / "data/paper", train)

    run_documented("pagstore import pag-rob data/paper/c10_sbg_data.pt data/paper/c10_sbg_label.pt "
                   "--prepared data/prepared --out stores/sbg", cwd=root)
    store = open_store(root / "stores/sbg")
    np.testing.assert_array_equal(store.read_index(slice(None)), order)
    assert store.spec.source["data_file"] == "c10_sbg_data.pt"

    run_documented("dvc repro -s train@pag-sbg", cwd=root)
    _, meta = load_classifier(root / "models/classifiers/pag-sbg/checkpoint.pt")
    assert meta["store"]["source"]["name"] == "imported" and meta["objective"]["objective"] == "pag"

    # Only the paper's files: no diffusion model, so no stores/sbg-test; the evaluation runs without alignment.
    official = make_official_classifier(root / "data/paper/rn18_sbg.pt")
    run_documented("dvc repro -s evaluate_external@sbg-rn18", cwd=root)
    metrics = read_record(root / "metrics/eval/external-sbg-rn18.json")  # the full record beside the lean file
    assert metrics["method"] == "sbg-rn18 (external)" and metrics["checkpoint"]["meta"]["external"]["external"]
    assert metrics["checkpoint"]["meta"]["external"]["paper"]["row"] == "SBG"
    assert "sbg_test" not in metrics and 0.0 <= metrics["clean_accuracy"] <= 1.0
    assert "changed" not in dvc(root, "status", "evaluate_external@sbg-rn18").stdout
    _sbg_test_store(root)  # with SBG test gradients present, the alignment metric is there too
    dvc(root, "repro", "-s", "-f", "evaluate_external@sbg-rn18")
    metrics = read_record(root / "metrics/eval/external-sbg-rn18.json")  # the full record beside the lean file
    assert metrics["sbg_test"]["matches_test_split"] is True and "sbg_cos_mean" in metrics["alignment"]

    from pagstore.evaluation.results import ReportParams, build_report

    md, report, _ = build_report(ReportParams(), yaml.safe_load((root / "pipeline.yaml").read_text()),
                                 root / "metrics/eval", None)
    assert "| sbg-rn18 (external) |" in md and report["models"]["sbg-rn18 (external)"]["external"] is True
    # the row is built from the full record beside the lean metrics file, not from the lean keys
    assert report["models"]["sbg-rn18 (external)"]["clean"] == metrics["clean_accuracy"]

    run_documented("pagstore import classifier data/paper/rn18_sbg.pt --layout pag-rob --arch resnet18 "
                   "--num-classes 10 --out models/external/rn18_sbg.pt", cwd=root)
    model, _ = load_classifier(root / "models/external/rn18_sbg.pt")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), official((x - 0.5) / 0.5), rtol=0, atol=1e-5)

    run_documented("pagstore export stores/sbg --format pag-rob --out data/official", cwd=root)
    exported = torch.load(root / "data/official/c10_sbg_data.pt", weights_only=True)
    torch.testing.assert_close(exported[:, 0], data[:, 0], rtol=0, atol=1e-6)  # their images, their order


def test_empty_external_models_gives_no_stage(tmp_path: Path) -> None:
    root = dvc_project(tmp_path)
    assert yaml.safe_load((root / "pipeline.yaml").read_text())["external_models"] == {}
    stages = dvc(root, "stage", "list").stdout
    assert "evaluate_external" not in stages and "report" in stages
    dag = dvc(root, "dag", "report").stdout  # the report's upstream graph parses and holds no external stage
    assert "evaluate@pag-sbg" in dag and "evaluate_external" not in dag


def test_readme_diffusion_import_with_the_cifar10_flags(tmp_path: Path) -> None:
    # ~10 s (a 52.5M-parameter state_dict is written and read): the only run of this documented command.
    flags = ["--image_size", "32", "--num_channels", "128", "--num_res_blocks", "3", "--learn_sigma", "True",
             "--dropout", "0.3", "--diffusion_steps", "4000", "--noise_schedule", "cosine"]
    src = make_diffusion_state(tmp_path / "data/paper/cifar10_uncond.pt", flags)
    run_documented("pagstore import diffusion data/paper/cifar10_uncond.pt --out models/diffusion/uncond.pt -- "
                   "--image_size 32 --num_channels 128 --num_res_blocks 3 --learn_sigma True --dropout 0.3 "
                   "--diffusion_steps 4000 --noise_schedule cosine", cwd=tmp_path)
    from pagstore.improved_diffusion.checkpoint import load_checkpoint

    model, diffusion, meta = load_checkpoint(tmp_path / "models/diffusion/uncond.pt")
    assert sum(p.numel() for p in model.parameters()) == 52_546_438 and diffusion.num_timesteps == 4000
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([100.0])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t), src(x, t), rtol=0, atol=0)
