"""Evaluation of trained classifiers: AutoAttack, APGD eps sweeps, targeted PGD pictures, non-norm-bounded
corruptions and gradient-alignment metrics, and the results report over many models.

The public entry points are importable from here (``from pagstore.evaluation import evaluate_checkpoint``):
``evaluate_model`` / ``evaluate_checkpoint`` evaluate one classifier (``model_eval``), ``build_report`` /
``write_report_plots`` build the report (``results``). They and the submodules load on first use, so
``import pagstore`` never pulls in torch, pyautoattack or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "EvaluateParams": "params", "budget_eps": "params",
    "evaluate_model": "model_eval", "evaluate_checkpoint": "model_eval", "select_images": "model_eval",
    "ReportParams": "results", "build_report": "results", "write_report_plots": "results",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'pagstore.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pagstore.evaluation.{_LAZY[name]}"), name)
