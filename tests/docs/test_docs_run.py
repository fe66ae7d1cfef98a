"""The commands README.md and docs/ show, run exactly as written in tiny throw-away DVC projects.

One digits project (8x8 images, a 4-step diffusion model, one-epoch width-4 classifiers) runs the training,
distillation, store and torchrun commands in sequence; a CIFAR-10 project (fake archives in the official
layout in data/raw) runs `dvc exp run -S pipeline.yaml:profile=cifar10` with a tiny recipe override. The
static check that every documented command is run somewhere is tests/docs/test_documented_commands.py.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from pagstore.store import open_store
from pagstore.training.checkpoint import load_classifier
from pagstore.verify import verify_store
from tests.data.data_fakes import make_cifar
from tests.helpers.doc_commands import run_documented
from tests.helpers.dvc_project import REPO, deep_merge, dvc, dvc_project, run

TINY_DIFFUSION = {"model": {"image_size": 8, "diffusion_steps": 20}, "train": {"steps": 4, "batch_size": 8},
                  "save_every": 2, "log_every": 2, "sample": {"sampler": "ddim", "respacing": "4", "per_class": 1}}
TINY_DIGITS = {
    "datasets": {"digits": {
        "options": {"image_size": 8, "test_fraction": 0.8},  # 359 train images: 2 tars of 256
        # The recipe, shrunk: what a tiny profile would carry.
        "recipe": {"distill": {"common": {"batch_size": 64}, "sources": {"sbg": {"t": 10, "forward_batch": 8}},
                               "plots": {"t_sweep": [5, 10]}},
                   "train": {"common": {"model_kwargs": {"width": 4}, "epochs": 1, "milestones": [1],
                                        "batch_size": 64, "crop_pad": 1}}}}},
    "train_diffusion": TINY_DIFFUSION,
    "distill": {"common": {"samples_per_shard": 64, "workers": 1}, "plots": {"num_images": 2}},
    "train": {"common": {"eval_samples": 50, "align_samples": 8}},
}
TRAIN_ARGS = ("--params pipeline.yaml --method {m} --prepared data/prepared --stores stores "
              "--out models/classifiers/{m} --metrics metrics/train/{m}.json --plots plots/train/{m}.csv")


def _restore_params(root: Path) -> None:
    """Undo what `dvc exp run -S` applied to the workspace's pipeline.yaml."""
    run(["git", "checkout", "--", "pipeline.yaml"], cwd=root)


def _metrics(root: Path, method: str) -> dict:
    return json.loads((root / f"metrics/train/{method}.json").read_text())


def test_documented_commands_on_tiny_digits(tmp_path: Path) -> None:
    root = dvc_project(tmp_path, TINY_DIGITS)

    # docs/training.md
    run_documented("dvc repro train_plain@vanilla", cwd=root)
    assert load_classifier(root / "models/classifiers/vanilla/checkpoint.pt")[1]["epoch"] == 1
    run_documented("dvc exp run -S pipeline.yaml:++train.common.epochs=20 train_plain@vanilla", cwd=root)
    assert load_classifier(root / "models/classifiers/vanilla/checkpoint.pt")[1]["epoch"] == 20  # stage key wins
    _restore_params(root)

    dvc(root, "repro", "distill_sbg")  # the store `dvc repro -s` needs
    run_documented("dvc repro -s train@pag-sbg", cwd=root)
    assert _metrics(root, "pag-sbg")["lam"] == 1.5  # the digits recipe's lambda

    dvc(root, "repro", "distill@cm")
    m = "pag-cm"
    run_documented("python -m stages.train --params pipeline.yaml --method pag-cm --prepared data/prepared "
                   "--stores stores --out models/classifiers/pag-cm --metrics metrics/train/pag-cm.json "
                   "--plots plots/train/pag-cm.csv", cwd=root)
    assert _metrics(root, m)["store"] == "cm" and TRAIN_ARGS.format(m=m) in _documented_text("training.md")
    run_documented("dvc exp run -S pipeline.yaml:datasets.digits.recipe.train.methods.pag-cm.lam=0.5 train@pag-cm",
                   cwd=root)
    assert _metrics(root, m)["lam"] == 0.5
    _restore_params(root)
    shown = run_documented("pagstore config --profile cifar10", cwd=root).stdout
    assert yaml.safe_load(shown)["train"]["common"]["model"] == "resnet18"

    # docs/training.md and docs/scaling.md: two processes, gloo on the CPU (a fresh run, not a resumed one)
    shutil.rmtree(root / "models/classifiers/pag-sbg")
    run_documented("pagstore export stores/sbg --samples-per-tar 256", cwd=root)
    run_documented("torchrun --standalone --nproc_per_node 2 -m stages.train --params pipeline.yaml --method pag-sbg "
                   "--prepared data/prepared --stores stores --out models/classifiers/pag-sbg "
                   "--metrics metrics/train/pag-sbg.json --plots plots/train/pag-sbg.csv", cwd=root, timeout=300)
    assert load_classifier(root / "models/classifiers/pag-sbg/checkpoint.pt")[1]["world_size"] == 2

    # README.md: the store commands
    run_documented("pagstore inspect stores/sbg", cwd=root)
    info = json.loads(run_documented("pagstore inspect stores/sbg --json", cwd=root).stdout)
    assert info["spec"]["source"]["t"] == 10
    run_documented("pagstore verify stores/sbg", cwd=root)
    run_documented("pagstore export stores/sbg", cwd=root)
    run_documented("pagstore show stores/sbg -o sbg.png", cwd=root)
    assert (root / "sbg.png").stat().st_size > 0

    # docs/scaling.md
    run_documented("python -m stages.distill --params pipeline.yaml --source sbg --prepared data/prepared "
                   "--diffusion models/diffusion/checkpoint.pt --out stores/sbg --plots plots/distill", cwd=root)
    assert verify_store(root / "stores/sbg").ok


@pytest.mark.slow
def test_documented_local_cluster_distillation(tmp_path: Path) -> None:
    """docs/scaling.md's cluster command on 2 local worker processes (slow: each worker loads torch and the
    model; tests/distill/test_distill_engine.py covers the same LocalCluster path in the default suite)."""
    root = dvc_project(tmp_path, TINY_DIGITS)
    dvc(root, "repro", "distill_sbg")
    before = open_store(root / "stores/sbg").read(slice(0, 4))[2]
    run_documented("dvc exp run -S pipeline.yaml:distill.common.scheduler=local-cluster:2 distill_sbg", cwd=root)
    assert yaml.safe_load((root / "pipeline.yaml").read_text())["distill"]["common"]["scheduler"] == "local-cluster:2"
    assert (open_store(root / "stores/sbg").read(slice(0, 4))[2] == before).all()  # same bytes on 2 processes


def _documented_text(doc: str) -> str:
    return " ".join((REPO / "docs" / doc).read_text().replace("\\\n", " ").split())


TINY_CIFAR = {
    "datasets": {"cifar10": {"recipe": {
        "distill": {"common": {"batch_size": 16}, "sources": {"sbg": {"t": 10, "forward_batch": 4}},
                    "plots": {"t_sweep": [5, 10]}},
        "train": {"common": {"model_kwargs": {"width": 4}, "epochs": 1, "milestones": [1], "batch_size": 8}}}}},
    "train_diffusion": {"model": {"num_channels": 32, "num_res_blocks": 1, "diffusion_steps": 20,
                                  "attention_resolutions": "8", "num_heads": 1},
                        "train": {"steps": 2, "batch_size": 4}, "save_every": 2, "log_every": 1,
                        "sample": {"sampler": "ddim", "respacing": "2", "per_class": 1}},
    "distill": {"common": {"samples_per_shard": 8, "workers": 1}, "plots": {"num_images": 1}, "test": {"num_test": 4}},
    "train": {"common": {"eval_samples": 4, "align_samples": 2}},
    "evaluate": {"num_images": 4, "autoattack": False, "large_eps": False, "alignment_images": 4,
                 "sweep": {"eps_factors": [0.0, 1.0], "n_iter": 2},
                 "corruptions": {"names": ["contrast_reduction"], "severities": [0.5], "steps": 2, "refine": 1},
                 "pictures": {"num_images": 1, "steps": 2}},
    "toy": {"data": {"points_per_mode": 20, "test_size": 12}, "epochs": 2, "seeds": [0],
            "grid": {"angles": 8, "radii": 2}},
}


def _cifar_project(tmp_path: Path, methods: dict | None = None, plain: dict | None = None) -> Path:
    """A DVC project with fake CIFAR-10 archives in data/raw and (optionally) fewer methods."""
    root = dvc_project(tmp_path, TINY_CIFAR)
    make_cifar(root / "data" / "raw", "cifar10", "python", per_batch=20)  # every class present
    params = yaml.safe_load((root / "pipeline.yaml").read_text())
    if methods is not None:
        params["train"]["methods"], params["train"]["plain_methods"] = methods, plain or {}
    (root / "pipeline.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "commit", "-qam", "fewer methods"], cwd=root, check=False)
    return root


@pytest.mark.slow
def test_profile_cifar10_runs_the_whole_pipeline(tmp_path: Path) -> None:
    """README's command on the real archive layout: every stage runs with the cifar10 recipe."""
    root = _cifar_project(tmp_path, {"pag-sbg": {"objective": "pag", "store": "sbg"}},
                          {"at-l2": {"objective": "at", "norm": "l2", "steps": 1}})
    run_documented("dvc exp run -S pipeline.yaml:profile=cifar10", cwd=root, timeout=900)
    assert yaml.safe_load((root / "pipeline.yaml").read_text())["profile"] == "cifar10"
    _check_cifar10_outputs(root)


def _check_cifar10_outputs(root: Path) -> None:
    meta = json.loads((root / "data/prepared/meta.json").read_text())
    assert meta["profile"] == "cifar10" and meta["sample_shape"] == [3, 32, 32]
    sbg = _metrics(root, "pag-sbg")
    assert sbg["lam"] == 1.5  # Table 8
    _, ckpt = load_classifier(root / "models/classifiers/pag-sbg/checkpoint.pt")
    assert ckpt["model"]["name"] == "resnet18" and ckpt["recipe"]["flip"] is True and ckpt["recipe"]["crop_pad"] == 4
    _, at = load_classifier(root / "models/classifiers/at-l2/checkpoint.pt")
    assert at["objective"]["eps"] == 0.5  # the cifar10 evaluation budget
    assert open_store(root / "stores/sbg").spec.source["t"] == 10
    report = json.loads((root / "metrics/report.json").read_text())
    assert report["profile"] == "cifar10"


def test_profile_cifar10_fast_variant(tmp_path: Path) -> None:
    """The same switch, cheaply: prepare runs on the archive, and every stage's merged config is cifar10's."""
    root = _cifar_project(tmp_path)
    run_documented("dvc exp run -S pipeline.yaml:profile=cifar10 prepare", cwd=root)
    meta = json.loads((root / "data/prepared/meta.json").read_text())
    assert meta["profile"] == "cifar10" and meta["sizes"] == {"train": 100, "test": 21}
    cfg = json.loads(run_documented("pagstore config --json", cwd=root).stdout)
    common = cfg["train"]["common"]
    assert (cfg["profile"], common["model"], common["epochs"], common["crop_pad"], common["flip"]) == (
        "cifar10", "resnet18", 1, 4, True)
    assert cfg["train_diffusion"]["preset"] == "cifar10" and cfg["train"]["methods"]["pag-sbg"]["lam"] == 1.5
    assert cfg["train"]["plain_methods"]["at-linf"]["eps"] == pytest.approx(8 / 255)
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["prepare"]
    assert "data/raw" in {d["path"] for d in lock["deps"]}


def test_raw_archive_is_a_dependency_of_prepare(tmp_path: Path) -> None:
    root = _cifar_project(tmp_path)
    params = yaml.safe_load((root / "pipeline.yaml").read_text())
    params["profile"] = "cifar10"
    (root / "pipeline.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(root, "repro", "prepare")
    assert "up to date" in dvc(root, "status", "prepare").stdout
    make_cifar(root / "data" / "raw", "cifar10", "python", seed=1)  # a replaced archive
    assert "data/raw" in dvc(root, "status", "prepare").stdout
    archive = root / "data/raw/cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])  # and a cut-off one
    failed = dvc(root, "repro", "prepare", check=False)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    line = [ln for ln in failed.stderr.splitlines() if ln.startswith("prepare: ")]
    assert len(line) == 1 and "cifar-10-python.tar.gz" in line[0] and "truncated" in line[0]


def test_method_names_parse_in_dvc_set_params() -> None:
    """`dvc exp run -S` uses Hydra's override grammar, where '+' in a key does not parse (checked with DVC
    3.67: "mismatched input '+' expecting EQUAL"); every method name must be settable."""
    train = yaml.safe_load((REPO / "pipeline.yaml").read_text())["train"]
    for name in [*train["methods"], *train["plain_methods"]]:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", name), name
