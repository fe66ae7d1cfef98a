"""pagstore.evaluation.results used as a library: the report from metrics files, the plots, the repo's run."""

from __future__ import annotations

import json
from pathlib import Path

from pagstore.config import load_section
from tests.stages.report_fixtures import TRAIN, write_eval_dir

REPO = Path(__file__).resolve().parents[2]
PIPELINE = {"profile": "digits", "datasets": {"digits": {"eval": {"eps_l2": 1.0, "eps_linf": 0.1,
                                                                   "large_eps_l2": 2.0, "large_eps_linf": 0.2}}},
            "train": TRAIN}


def test_build_report_and_plots_without_a_stage(tmp_path):
    from pagstore.evaluation import ReportParams, build_report, write_report_plots

    md, report, rows = build_report(ReportParams(), PIPELINE, write_eval_dir(tmp_path), None)
    assert [r["method"] for r in rows] == ["pag-sbg", "vanilla", "at-l2"] and report["missing"] == ["at-linf"]
    # The figures go where the caller says; the links use the folder results.md will see.
    plots_md, sweeps = write_report_plots(ReportParams(), PIPELINE, rows, tmp_path, Path("../figs"))
    assert sweeps == []  # no models folder: no lambda-sweep picture
    assert plots_md == "\n## Plots\n\n![robust accuracy vs alignment](../figs/robust_vs_alignment.png)\n"
    assert (tmp_path / "robust_vs_alignment.png").read_bytes()[:4] == b"\x89PNG"


def test_committed_metrics_give_the_committed_report():
    """The report of the committed default run, rebuilt from the committed metrics, is byte-for-byte the same."""
    from pagstore.evaluation.results import ReportParams, build_report

    params = load_section(REPO / "pipeline.yaml", "report", ReportParams)
    from pagstore.profiles import effective_params  # what the report stage passes: the recipe merged

    md, report, _ = build_report(params, effective_params(REPO / "pipeline.yaml"), REPO / "metrics" / "eval",
                                 REPO / "metrics" / "toy.details.json")
    committed = (REPO / "reports" / "results.md").read_text()
    assert committed.startswith(md + "\n## Plots\n")
    saved = json.loads((REPO / "metrics" / "report.details.json").read_text())
    assert json.loads(json.dumps(report)) == {k: v for k, v in saved.items() if k != "lambda_sweeps"}
    lean = json.loads((REPO / "metrics" / "correlation" / "linf.json").read_text())
    assert lean == {"sbg_cos": round(report["correlations"]["aa_linf~sbg_cos_mean"], 3),
                    "etmann": round(report["correlations"]["aa_linf~etmann_mean"], 3)}
