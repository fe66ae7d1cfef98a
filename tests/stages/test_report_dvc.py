"""`dvc repro -s report` in a throw-away DVC project, on fixture metrics; `dvc metrics show` sees the result."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.helpers.dvc_project import dvc, dvc_project
from tests.stages.report_fixtures import TOY, TRAIN, write_eval_dir


def test_dvc_repro_report(tmp_path: Path) -> None:
    # Replace (not merge) the train groups: the report lists exactly the methods of the pipeline.
    root = dvc_project(tmp_path)
    params = yaml.safe_load((root / "pipeline.yaml").read_text())
    params["train"]["methods"] = TRAIN["methods"]
    params["train"]["plain_methods"] = TRAIN["plain_methods"]
    (root / "pipeline.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_eval_dir(root)
    (root / "metrics" / "toy.json").write_text(json.dumps(TOY))
    for dep in ("models/classifiers", "data/prepared"):  # upstream outputs the report only reads for Fig. 5
        (root / dep).mkdir(parents=True)
        (root / dep / "README").write_text("fixture\n")
    dvc(root, "repro", "-s", "report")
    md = (root / "reports" / "results.md").read_text()
    assert "| pag-sbg | 94.0 | 55.0 |" in md and "## 2-D toy" in md
    assert "Not evaluated (no metrics file): at-linf." in md
    shown = json.loads(dvc(root, "metrics", "show", "--json").stdout)[""]["data"]
    assert shown["metrics/report.json"]["data"]["models"]["at-l2"]["aa_l2"] == 0.6
    assert shown["metrics/eval/vanilla.json"]["data"]["clean_accuracy"] == 0.98
    assert (root / "plots" / "report" / "robust_vs_alignment.png").is_file()
