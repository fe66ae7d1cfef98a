"""`dvc repro -s report` in a throw-away DVC project, on fixture metrics; `dvc metrics show` sees the result."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from pagstore.metrics_files import details_path, lean_eval
from tests.helpers.dvc_project import dvc, dvc_project
from tests.stages.report_fixtures import TOY, TRAIN, write_eval_dir


def test_dvc_repro_report(tmp_path: Path) -> None:
    # Replace (not merge) the train groups: the report lists exactly the methods of the pipeline.
    root = dvc_project(tmp_path)
    params = yaml.safe_load((root / "pipeline.yaml").read_text())
    params["train"]["methods"] = TRAIN["methods"]
    params["train"]["plain_methods"] = TRAIN["plain_methods"]
    (root / "pipeline.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The layout the stages write: lean metrics files, the full records beside them.
    for path in sorted(write_eval_dir(root).glob("*.json")):
        path.rename(details_path(path))
        path.write_text(json.dumps(lean_eval(json.loads(details_path(path).read_text()))))
    (root / "metrics" / "toy.details.json").write_text(json.dumps(TOY))
    for dep in ("models/classifiers", "data/prepared"):  # upstream outputs the report only reads for Fig. 5
        (root / dep).mkdir(parents=True)
        (root / dep / "README").write_text("fixture\n")
    (root / "plots" / "eval" / "vanilla").mkdir(parents=True)
    (root / "plots" / "eval" / "vanilla" / "sweep.csv").write_text(
        "norm,eps,accuracy,num_images\nL2,0,0.98,50\nL2,1,0.12,50\nLinf,0,0.98,50\nLinf,0.1,0.08,50\n")
    (root / "plots" / "train").mkdir(parents=True)
    (root / "plots" / "train" / "pag-sbg.csv").write_text("epoch,test_acc\n1,0.5\n2,0.9\n")
    out = dvc(root, "repro", "-s", "report")
    assert "WARNING" not in out.stdout + out.stderr
    assert (root / "plots" / "report" / "robust_vs_eps_linf.csv").read_text().splitlines() == [
        "method,eps,accuracy", "vanilla,0,0.98", "vanilla,0.1,0.08"]
    assert (root / "plots" / "report" / "test_acc_vs_epoch.csv").read_text().splitlines() == [
        "method,epoch,test_acc", "pag-sbg,1,0.5", "pag-sbg,2,0.9"]
    md = (root / "reports" / "results.md").read_text()
    assert "| pag-sbg | 94.0 | 55.0 |" in md and "## 2-D toy" in md
    assert "Not evaluated (no metrics file): at-linf." in md
    shown = json.loads(dvc(root, "metrics", "show", "--json").stdout)[""]["data"]
    details = json.loads((root / "metrics" / "report.details.json").read_text())
    assert details["models"]["at-l2"]["aa_l2"] == 0.6
    # The report's metrics: per budget, the correlation of its robust accuracy with each alignment metric.
    for budget in ("l2", "linf"):
        assert shown[f"metrics/correlation/{budget}.json"]["data"] == {
            short: round(details["correlations"][f"aa_{budget}~{full}"], 3)
            for short, full in (("sbg_cos", "sbg_cos_mean"), ("etmann", "etmann_mean"))}
    assert shown["metrics/eval/vanilla.json"]["data"]["clean"] == 98.0
    assert (root / "plots" / "report" / "robust_vs_alignment.png").is_file()
