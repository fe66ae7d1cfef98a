"""`dvc repro toy` in a throw-away DVC project with tiny settings: outputs, metrics, plot, lock entry."""

from __future__ import annotations

import json

import yaml

from pagstore.store import open_store
from tests.helpers.dvc_project import dvc, dvc_project

OVERRIDES = {"toy": {"data": {"points_per_mode": 20, "test_size": 12}, "epochs": 2, "seeds": [0],
                     "grid": {"angles": 8, "radii": 2}}}


def test_dvc_repro_toy(tmp_path):
    root = dvc_project(tmp_path, OVERRIDES)
    dvc(root, "repro", "toy")  # needs no other stage: it makes its own toy2d data
    metrics = json.loads((root / "metrics/toy.details.json").read_text())  # the full record
    assert metrics["params"]["epochs"] == 2 and metrics["seeds"] == [0]
    assert set(metrics["vanilla"]) >= {"clean_mean", "clean_std", "robust_mean", "robust_std", "robust_per_seed"}
    # What DVC shows: per toy model, means in <model>.json and stds in <model>.std.json, the same two columns.
    shown = json.loads(dvc(root, "metrics", "show", "--json").stdout)[""]["data"]
    toy = {path: entry for path, entry in shown.items() if path.startswith("metrics/toy")}
    assert set(toy) == {f"metrics/toy/{m}{s}.json" for m in ("vanilla", "nn-pag") for s in ("", ".std")}
    for model in ("vanilla", "nn-pag"):
        for stat, suffix in (("mean", ""), ("std", ".std")):
            lean = shown[f"metrics/toy/{model}{suffix}.json"]["data"]
            assert lean == {"clean": round(metrics[model][f"clean_{stat}"], 1),
                            "l2": round(metrics[model][f"robust_grid_{stat}"], 1)}
    assert (root / "plots/toy/decision_boundaries.png").stat().st_size > 0
    assert open_store(root / "runs/toy/stores/nn-seed0").is_complete()
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["toy"]["params"]["pipeline.yaml"]["toy"]["epochs"] == 2
    assert not (root / "data/prepared").exists()  # the profile's data were not prepared for it
    assert "didn't change" in dvc(root, "repro", "toy").stdout
