"""`dvc repro -s evaluate_plain@vanilla` in a throw-away DVC project with tiny upstream artifacts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.evaluation.test_evaluate_stage import TINY_EVAL, make_project
from tests.helpers.dvc_project import dvc, dvc_project


def test_dvc_repro_evaluate(tmp_path: Path) -> None:
    root = dvc_project(tmp_path, {"evaluate": TINY_EVAL})
    made = make_project(tmp_path / "made")  # checkpoint, prepared test split, SBG test store
    shutil.copytree(made / "prepared", root / "data" / "prepared")
    (root / "models" / "classifiers" / "vanilla").mkdir(parents=True)
    shutil.copy2(made / "ckpt.pt", root / "models" / "classifiers" / "vanilla" / "checkpoint.pt")
    shutil.copytree(made / "sbg-test", root / "stores" / "sbg-test")
    out = dvc(root, "repro", "-s", "evaluate_plain@vanilla")
    assert "WARNING" not in out.stdout + out.stderr  # e.g. not "'state/eval/vanilla' is empty"
    metrics = json.loads((root / "metrics" / "eval" / "vanilla.details.json").read_text())
    assert metrics["method"] == "vanilla" and metrics["params"]["profile"] == "digits"
    assert metrics["autoattack"]["aa_l2"]["eps"] == 1.0  # the digits profile's budget
    lean = json.loads((root / "metrics" / "eval" / "vanilla.json").read_text())
    assert {"clean", "l2", "linf", "l2_large", "linf_large", "sbg_cos", "etmann"} == set(lean)
    assert len(lean) <= 12 and all(isinstance(v, float) for v in lean.values())
    # percent with one decimal, cosines with three
    assert lean["l2"] == round(100 * metrics["robust_accuracy"]["aa_l2"], 1)
    assert lean["clean"] == round(100 * metrics["clean_accuracy"], 1)
    assert lean["sbg_cos"] == round(metrics["alignment"]["sbg_cos_mean"], 3)
    assert (root / "plots" / "eval" / "vanilla" / "targeted.png").is_file()
    assert "evaluate_plain@vanilla" in (root / "dvc.lock").read_text()
    status = dvc(root, "status", "evaluate_plain@vanilla").stdout
    assert "changed" not in status
