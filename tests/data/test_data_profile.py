"""Dataset profiles in pipeline.yaml and the reader registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pagstore.config import ConfigError
from pagstore.data import READERS, DatasetProfile, EvalBudget, load_profile
from pagstore.data.registry import parse_options

REPO = Path(__file__).resolve().parents[2]
BUDGET = {"eps_l2": 0.5, "eps_linf": 0.03, "large_eps_l2": 1.0, "large_eps_linf": 0.06}


def _params(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_every_profile_in_the_repo_pipeline_is_valid(tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / "pipeline.yaml").read_text())
    assert doc["profile"] in doc["datasets"]
    for name in doc["datasets"]:
        got_name, profile = load_profile(_params(tmp_path, {**doc, "profile": name}))
        assert got_name == name and isinstance(profile, DatasetProfile)
        assert isinstance(profile.eval, EvalBudget)
        parse_options(profile.reader, profile.options, where=name)  # options match the reader


def test_load_profile_returns_typed_budget(tmp_path: Path) -> None:
    path = _params(tmp_path, {"profile": "t", "datasets": {"t": {"reader": "toy2d", "options": {}, "eval": BUDGET}}})
    name, profile = load_profile(path)
    assert name == "t" and profile.reader == "toy2d" and profile.eval.eps_linf == pytest.approx(0.03)


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"profile": "nope", "datasets": {"t": {}}}, r"profile: 'nope' is not a key of 'datasets'"),
        ({"datasets": {}}, "expected the name of a dataset profile"),
        ({"profile": "t", "datasets": {"t": {"reader": "mnist", "options": {}, "eval": BUDGET}}},
         r"datasets.t.reader: unknown reader 'mnist'"),
        ({"profile": "t", "datasets": {"t": {"reader": "toy2d", "options": {}}}}, r"datasets.t.eval: missing"),
        ({"profile": "t", "datasets": {"t": {"reader": "toy2d", "options": {}, "eval": {**BUDGET, "eps_l2": -1}}}},
         "eps_l2 must be >= 0"),
        ({"profile": "t", "datasets": {"t": {"reader": "toy2d", "options": {}, "eval": BUDGET, "extra": 1}}},
         "unknown key.*'extra'"),
    ],
)
def test_bad_profiles_name_the_key(tmp_path: Path, doc: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_profile(_params(tmp_path, doc))


def test_registry_names() -> None:
    assert set(READERS) == {"digits", "toy2d", "cifar10", "cifar100", "stl10", "imagefolder"}
