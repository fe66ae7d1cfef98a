"""Lean metrics files and the full records beside them.

What DVC declares as metrics (``metrics/<stage>/<name>.json``) holds only the scalars a reader compares
across models and experiments, so ``dvc metrics show`` and ``dvc exp show`` stay readable. The full record
(parameters, checkpoint meta, per-attack results, timings, store specs) goes to ``<name>.details.json``
beside it, a plain output. Readers that need more than the scalars (the report) open the details file
when there is one and fall back to the metrics file, which is the full record when a stage ran without
``--details``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROBUST_KEYS = ("aa_l2", "aa_linf", "aa_l2_large", "aa_linf_large")
# Short names, so that one model's train + eval rows of `dvc metrics show` fit 160 columns
# (tests/pipeline/test_pipeline_dvc.py): lean name -> key in the full record. The alignment metrics are the
# two the report compares; the per-class-group SBG cosines stay in the details file.
ALIGN_KEYS = {"sbg_cos": "sbg_cos_mean", "etmann": "etmann_mean"}
TRAIN_KEYS = {"test_acc": "test_acc", "align_cos": "align_cos", "seconds": "train_seconds"}
# The toy headline per model, lean name -> key in the full record: accuracy (%) on clean points and under
# L2 PGD, mean and std over seeds (the grid-searched bound and per-seed values stay in the details).
TOY_KEYS = {"clean": "clean_mean", "clean_sd": "clean_std", "pgd": "robust_mean", "pgd_sd": "robust_std"}
# Report correlations, lean name "l2~sbg" for the record's "aa_l2~sbg_cos_mean".
CORR_ALIGN = {"sbg_cos_mean": "sbg", "etmann_mean": "etmann"}


def details_path(metrics_path: str | Path) -> Path:
    """``metrics/eval/x.json`` -> ``metrics/eval/x.details.json`` (the full record beside the lean file)."""
    path = Path(metrics_path)
    return path.with_name(path.name.removesuffix(".json") + ".details.json")


def read_record(metrics_path: str | Path) -> dict[str, Any]:
    """The full record behind ``metrics_path``: its details file if present, else the file itself.

    A missing or unparsable file raises ``ValueError`` naming it.
    """
    path = Path(metrics_path)
    full = details_path(path)
    source = full if full.is_file() else path
    if not source.is_file():
        raise ValueError(f"{path}: metrics file not found (run the stage that writes it)")
    try:
        data = json.loads(source.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
    return data


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def lean_eval(record: dict[str, Any]) -> dict[str, float]:
    """Clean accuracy, AutoAttack accuracy per budget and the alignment metrics of an evaluate record."""
    out: dict[str, float] = {"clean": record["clean_accuracy"]}
    robust = record.get("robust_accuracy") or {}
    out.update({k: robust[k] for k in ROBUST_KEYS if _is_num(robust.get(k))})
    align = record.get("alignment") or {}
    out.update({short: align[full] for short, full in ALIGN_KEYS.items() if _is_num(align.get(full))})
    return out


def lean_train(final: dict[str, Any]) -> dict[str, float]:
    """Final test accuracy, alignment with the store's gradients (store-backed methods) and train seconds."""
    return {short: final[full] for short, full in TRAIN_KEYS.items() if _is_num(final.get(full))}


def lean_toy(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per toy model, mean and std over seeds of clean and L2-PGD accuracy (%): clean, clean_sd, pgd, pgd_sd."""
    out = {}
    for model, entry in metrics.items():
        if model in ("paper", "params") or not isinstance(entry, dict):
            continue
        stats = {short: entry[full] for short, full in TOY_KEYS.items() if _is_num(entry.get(full))}
        if stats:
            out[model] = stats
    return out


def lean_report(report: dict[str, Any]) -> dict[str, float | None]:
    """The correlations across models of each robust metric with each alignment metric ("l2~sbg", ...)."""
    out = {}
    for key, value in (report.get("correlations") or {}).items():
        robust, _, align = key.partition("~")
        out[f"{robust.removeprefix('aa_')}~{CORR_ALIGN.get(align, align)}"] = value
    return out
