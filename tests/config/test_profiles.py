"""Profiles carry their recipe: the merged configuration of each paper profile against the paper's values,
digits against today's values, precedence of the stage sections, and strictness of the recipe."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from pagstore.config import ConfigError
from pagstore.profiles import effective_from_data, effective_params, load_effective
from pagstore.training.config import TrainSection
from tests.helpers.doc_commands import run_documented
from tests.helpers.dvc_project import REPO

PIPELINE = REPO / "pipeline.yaml"
C10_LINF, C10_L2 = 8 / 255, 0.5
PAPER_COMMON = {"model": "resnet18", "model_kwargs": {"width": 64}, "epochs": 100, "lr": 0.01, "momentum": 0.9,
                "weight_decay": 0.0001, "milestones": [50, 75], "crop_pad": 4, "flip": True}


def _lams(cfg: dict) -> dict[str, float]:
    return {name: spec["lam"] for name, spec in cfg["train"]["methods"].items()}


def _eps(cfg: dict) -> dict[str, tuple[str, float]]:
    both = {**cfg["train"]["methods"], **cfg["train"]["plain_methods"]}
    return {n: (s["norm"], s["eps"]) for n, s in both.items() if s["objective"] in ("at", "trades")}


def _alphabar(t: int, steps: int, s: float = 0.008) -> float:
    import math

    f = lambda u: math.cos((u / steps + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731 (improved-DDPM cosine)
    return f(t + 1) / f(0)


def test_digits_merged_is_todays_configuration() -> None:
    """The keys that moved into the digits recipe keep the values the default run had before profiles."""
    cfg = effective_params(PIPELINE, "digits")
    assert cfg["train_diffusion"]["preset"] == "digits-small"
    assert cfg["distill"]["common"]["batch_size"] == 32
    assert cfg["distill"]["sources"]["sbg"] == {"t": 400, "forward_batch": 8}
    assert cfg["distill"]["plots"] == {"num_images": 4, "t_sweep": [25, 100, 200, 300, 400, 500, 600, 800]}
    common = cfg["train"]["common"]
    assert {k: common[k] for k in ("model", "model_kwargs", "epochs", "batch_size", "milestones", "crop_pad",
                                   "flip", "lr")} == {
        "model": "small-cnn", "model_kwargs": {"width": 16}, "epochs": 8, "batch_size": 64, "milestones": [5, 7],
        "crop_pad": 2, "flip": False, "lr": 0.01}
    assert _lams(cfg) == {"pag-sbg": 1.5, "pag-sbg-k1": 1.5, "pag-sbg-k3": 1.5, "pag-cm": 0.2, "pag-oi": 0.2,
                          "pag-nn": 0.2, "at-l2-pag-sbg": 0.2, "trades-linf-pag-sbg": 0.5}
    assert _eps(cfg) == {"at-l2-pag-sbg": ("l2", 1.0), "trades-linf-pag-sbg": ("linf", 0.1), "at-l2": ("l2", 1.0),
                         "at-linf": ("linf", 0.1), "trades-linf": ("linf", 0.1)}
    assert {n: s.get("k_classes") for n, s in cfg["train"]["methods"].items() if s.get("k_classes")} == {
        "pag-sbg-k1": 1, "pag-sbg-k3": 3}


def test_cifar10_is_the_papers_recipe() -> None:
    from pagstore.models.registry import build_model

    cfg = effective_params(PIPELINE, "cifar10")
    common = cfg["train"]["common"]
    assert {k: common[k] for k in PAPER_COMMON} == PAPER_COMMON and common["batch_size"] == 64
    model = build_model(common["model"], 10, (3, 32, 32), **common["model_kwargs"])
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 11.2
    assert cfg["train_diffusion"]["preset"] == "cifar10"
    # t scaled to the 4000-step cosine schedule: the same noise level as digits' t = 400 of 1000 steps.
    t = cfg["distill"]["sources"]["sbg"]["t"]
    assert t == 1600 and abs(_alphabar(t, 4000) - _alphabar(400, 1000)) < 0.005
    assert _lams(cfg) == {"pag-sbg": 1.5, "pag-sbg-k1": 1.5, "pag-sbg-k3": 1.5, "pag-cm": 0.2, "pag-oi": 0.2,
                          "pag-nn": 0.2, "at-l2-pag-sbg": 0.2, "trades-linf-pag-sbg": 0.5}
    for name, (norm, eps) in _eps(cfg).items():
        assert eps == pytest.approx(C10_L2 if norm == "l2" else C10_LINF, abs=1e-12), name
    section = load_effective_for(cfg)
    assert section.method("at-l2").eps == 0.5 and section.common.flip is True


def load_effective_for(cfg: dict) -> TrainSection:
    from pagstore.config import from_dict

    return from_dict(TrainSection, cfg["train"], where="effective train")


def test_cifar100_and_stl10_are_the_papers_recipes() -> None:
    c100 = effective_params(PIPELINE, "cifar100")
    assert {k: c100["train"]["common"][k] for k in PAPER_COMMON} == PAPER_COMMON
    assert c100["train_diffusion"]["preset"] == "cifar10"
    lams = _lams(c100)
    assert lams["pag-cm"] == 0.5 and lams["pag-sbg"] == 1.0
    ks = {n: s.get("k_classes") for n, s in c100["train"]["methods"].items()}
    assert ks["pag-sbg"] == ks["pag-cm"] == 10 and ks["pag-sbg-k1"] == 1 and ks["pag-sbg-k3"] == 3
    for norm, eps in _eps(c100).values():
        assert eps == pytest.approx(C10_L2 if norm == "l2" else C10_LINF, abs=1e-12)

    stl = effective_params(PIPELINE, "stl10")
    assert {k: stl["train"]["common"][k] for k in PAPER_COMMON} == PAPER_COMMON
    assert stl["train"]["common"]["batch_size"] == 32 and stl["train_diffusion"]["preset"] == "imagenet64"
    assert _lams(stl)["pag-cm"] == 0.2 and _lams(stl)["pag-sbg"] == 1.0
    assert _eps(stl)["at-linf"] == ("linf", pytest.approx(4 / 255, abs=1e-12))
    for cfg in (c100, stl):
        load_effective_for(cfg)


def _data(**stage) -> dict:
    data = yaml.safe_load(PIPELINE.read_text())
    for key, value in stage.items():
        data[key] = value
    return data


def test_a_key_in_the_stage_section_wins() -> None:
    data = _data()
    data["profile"] = "cifar10"
    data["train"]["common"]["epochs"] = 3
    data["train"]["methods"]["pag-cm"]["lam"] = 0.7
    data["train"]["plain_methods"]["at-l2"]["eps"] = 0.25
    data["train_diffusion"]["preset"] = "digits-small"
    cfg = effective_from_data(data)
    assert cfg["train"]["common"]["epochs"] == 3 and cfg["train"]["common"]["model"] == "resnet18"
    assert cfg["train"]["methods"]["pag-cm"]["lam"] == 0.7 and cfg["train"]["methods"]["pag-oi"]["lam"] == 0.2
    assert cfg["train"]["plain_methods"]["at-l2"]["eps"] == 0.25
    assert cfg["train"]["plain_methods"]["at-linf"]["eps"] == pytest.approx(C10_LINF)
    assert cfg["train_diffusion"]["preset"] == "digits-small"
    assert cfg["datasets"] == data["datasets"]  # the file's own profiles are not touched


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["datasets"]["digits"]["recipe"]["train"]["common"].update(widht=3),
         r"pipeline.yaml:train \(with datasets.digits.recipe.train\).common: unknown key\(s\) 'widht'"),
        (lambda d: d["datasets"]["digits"]["recipe"].update(evaluate={}),
         r"datasets.digits.recipe: unknown section\(s\) 'evaluate'"),
        (lambda d: d["datasets"]["digits"]["recipe"].pop("distill"),
         r"datasets.digits.recipe: missing section\(s\) distill"),
        (lambda d: d["datasets"]["digits"]["recipe"]["train"]["methods"].pop("pag-cm"),
         r"methods.pag-cm: lam must be > 0 when a store is used"),
        (lambda d: d["datasets"]["digits"].pop("recipe"), r"datasets.digits.recipe: missing"),
        (lambda d: d.update(profile="cifar11"), r"profile: 'cifar11' is not a key of 'datasets'"),
        (lambda d: d["datasets"]["digits"]["recipe"]["distill"].update(comon={}),
         r"datasets.digits.recipe.distill: unknown key\(s\) 'comon'"),
        (lambda d: d["datasets"]["digits"]["recipe"]["distill"]["sources"].update(sgb={"t": 3}),
         r"datasets.digits.recipe.distill.sources: unknown source\(s\) 'sgb'"),
    ],
)
def test_recipe_errors_name_the_key(tmp_path: Path, edit, message: str) -> None:
    data = copy.deepcopy(_data())
    edit(data)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=message):
        load_effective(path, "train", TrainSection)


def test_every_profile_merges_and_loads_strictly() -> None:
    """`pagstore config`'s checks (the stage dataclasses) pass for every shipped profile."""
    from pagstore.cli_config import effective_config

    for name in yaml.safe_load(PIPELINE.read_text())["datasets"]:
        cfg = effective_config(PIPELINE, name)
        assert cfg["profile"] == name and list(cfg["datasets"]) == [name] and "recipe" not in cfg["datasets"][name]


def test_pagstore_config_profile_cifar10_json(tmp_path: Path) -> None:
    """The documented command, in a copy of the project: the paper's recipe, in pipeline.yaml's own keys."""
    import shutil

    shutil.copy2(PIPELINE, tmp_path / "pipeline.yaml")
    out = run_documented("pagstore config --profile cifar10 --json", cwd=tmp_path)
    cfg = json.loads(out.stdout)
    assert cfg["profile"] == "cifar10" and cfg["train"]["common"]["model"] == "resnet18"
    assert cfg["train"]["common"]["model_kwargs"] == {"width": 64} and cfg["train"]["common"]["epochs"] == 100
    assert cfg["train"]["plain_methods"]["at-l2"]["eps"] == 0.5
    assert cfg["train"]["plain_methods"]["at-linf"]["eps"] == pytest.approx(8 / 255)
    assert cfg["train"]["methods"]["pag-sbg"]["lam"] == 1.5 and cfg["train_diffusion"]["preset"] == "cifar10"
    assert cfg["distill"]["sources"]["sbg"]["t"] == 1600
    assert set(cfg) >= {"train_diffusion", "distill", "train", "evaluate", "report", "toy"}
    bad = run_documented("pagstore config --profile cifar11", cwd=tmp_path, check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == ("pagstore config: pipeline.yaml:profile: 'cifar11' is not a key of 'datasets' "
                                  "(known: ['cifar10', 'cifar100', 'digits', 'stl10', 'tinyimagenet'])")
