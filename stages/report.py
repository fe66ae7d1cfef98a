"""Stage ``report``: every evaluated model in one table beside the paper's rows, plus plots and JSON.

Reads ``metrics/eval/<method>.json`` for every method of ``train.methods`` and ``train.plain_methods``
(methods without a metrics file are listed as missing, not fatal), the toy metrics when present, and,
when several lambdas of one method were trained, their checkpoints for the lambda-sweep picture (Fig. 5).
Writes ``reports/results.md``, ``--details`` (the full report JSON), ``--correlations`` (metrics/correlation/
``<budget>.json``: the correlation of that budget's robust accuracy with each alignment metric, what
``dvc metrics show`` lists) and ``plots/report/`` (PNGs, and the CSVs of the overlaid DVC plots: every method's eps
sweep and test-accuracy curve in one table). The work is ``pagstore.evaluation.results`` and ``.overlays``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pagstore.errors import user_errors
from pagstore.atomic import atomic_dir, write_bytes, write_json
from pagstore.config import load_section
from pagstore.evaluation.overlays import write_overlay_tables
from pagstore.profiles import effective_params
from pagstore.evaluation.results import ReportParams, build_report, lambda_groups, method_names, write_report_plots
from pagstore.metrics_files import lean_correlations

__all__ = ["ReportParams", "build_report", "lambda_groups", "main", "method_names"]


@user_errors("report")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, required=True)
    ap.add_argument("--eval-dir", type=Path, required=True, help="folder of metrics/eval/<method>.json")
    ap.add_argument("--toy", type=Path, default=None, help="toy metrics JSON (optional)")
    ap.add_argument("--models", type=Path, default=None, help="models/classifiers, for the lambda-sweep picture")
    ap.add_argument("--prepared", type=Path, default=None, help="data/prepared, for the lambda-sweep picture")
    ap.add_argument("--markdown", type=Path, required=True)
    ap.add_argument("--details", type=Path, required=True, help="full report JSON (models, budget, toy, ...)")
    ap.add_argument("--correlations", type=Path, default=None,
                    help="folder of the lean correlation metrics files DVC shows (metrics/correlation)")
    ap.add_argument("--eval-plots", type=Path, default=None, help="plots/eval, for the overlaid eps-sweep tables")
    ap.add_argument("--train-plots", type=Path, default=None, help="plots/train, for the overlaid epoch table")
    ap.add_argument("--plots", type=Path, required=True)
    args = ap.parse_args(argv)
    params = load_section(args.params, "report", ReportParams)
    pipeline = effective_params(args.params)  # train.methods with the profile's recipe (lam, eps)
    md, report, rows = build_report(params, pipeline, args.eval_dir, args.toy)
    with atomic_dir(args.plots) as plots:
        link = Path(os.path.relpath(args.plots, args.markdown.parent))
        plots_md, sweeps = write_report_plots(params, pipeline, rows, plots, link, args.models, args.prepared)
        write_overlay_tables(method_names(pipeline), plots, eval_plots=args.eval_plots,
                             train_plots=args.train_plots, summary_rows=rows,
                             alignment_key=params.alignment_metric, robust_key=params.robust_metric)
    report["lambda_sweeps"] = sweeps
    write_json(args.details, report)
    if args.correlations is not None:
        for budget, row in lean_correlations(report).items():
            write_json(args.correlations / f"{budget}.json", row)
    write_bytes(args.markdown, (md + plots_md + "\n").encode())


if __name__ == "__main__":
    main()
