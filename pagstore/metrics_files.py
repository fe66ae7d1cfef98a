"""Lean metrics files and the full records beside them.

What DVC declares as metrics (``metrics/<stage>/<name>.json``) holds only the scalars a reader compares
across models and experiments, so ``dvc metrics show`` stays readable: every kind of file draws its keys
from one small vocabulary (``clean``, ``l2``, ``linf``, ``l2_large``, ``linf_large``, ``sbg_cos``,
``etmann``, ``test_acc``, ``align``, ``train_s``), because DVC prints one column per distinct key across
all files. Accuracies are percent with one decimal, cosines and correlations three decimals, seconds one
decimal: values as wide as their headers, and no more digits than a 50- to 450-image measurement carries. The full record
(parameters, checkpoint meta, per-attack results, timings, store specs) goes to ``<name>.details.json``
beside it, a plain output. Readers that need more than the scalars (the report) open the details file
when there is one and fall back to the metrics file, which is the full record when a stage ran without
``--details``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# lean key -> key of the full record's robust_accuracy: robust accuracy (%) at each of the profile's budgets
ROBUST_KEYS = {"l2": "aa_l2", "linf": "aa_linf", "l2_large": "aa_l2_large", "linf_large": "aa_linf_large"}
# The two alignment metrics the report compares; the per-class-group SBG cosines stay in the details file.
ALIGN_KEYS = {"sbg_cos": "sbg_cos_mean", "etmann": "etmann_mean"}
# Training: final test accuracy (%), cosine with the store's targets (store-backed methods), wall seconds.
TRAIN_KEYS = {"test_acc": "test_acc", "align": "align_cos", "train_s": "train_seconds"}
# The toy, per model: clean and robust accuracy (%) under the exhaustive L2 eps-disk search (the toy's
# strongest attack; PGD, an upper bound, stays in the details), mean over seeds (std in a second file).
TOY_KEYS = {"clean": "clean", "l2": "robust_grid"}
# metrics/correlation/<budget>.json: the Pearson correlation across models of robust accuracy at that budget
# with each alignment metric, keyed by the alignment metric (large budgets stay in the details file).
CORRELATION_BUDGETS = ("l2", "linf")


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


def _pct(fraction: float) -> float:
    return round(100.0 * fraction, 1)


def lean_eval(record: dict[str, Any]) -> dict[str, float]:
    """Clean accuracy, AutoAttack accuracy per budget (%) and the alignment metrics of an evaluate record."""
    out: dict[str, float] = {"clean": _pct(record["clean_accuracy"])}
    robust = record.get("robust_accuracy") or {}
    out.update({short: _pct(robust[full]) for short, full in ROBUST_KEYS.items() if _is_num(robust.get(full))})
    align = record.get("alignment") or {}
    out.update({short: round(align[full], 3) for short, full in ALIGN_KEYS.items() if _is_num(align.get(full))})
    return out


def lean_train(final: dict[str, Any]) -> dict[str, float]:
    """Final test accuracy (%), alignment with the store's gradients (store-backed methods), train seconds."""
    out = {}
    if _is_num(final.get("test_acc")):
        out["test_acc"] = _pct(final["test_acc"])
    if _is_num(final.get("align_cos")):
        out["align"] = round(final["align_cos"], 3)
    if _is_num(final.get("train_seconds")):
        out["train_s"] = round(final["train_seconds"], 1)
    return out


def lean_noisy_classifier(record: dict[str, Any]) -> dict[str, float]:
    """The noise-aware classifier's accuracy on noised test images (%) and its training seconds."""
    return {"test_acc": _pct(record["noisy_test_accuracy"]), "train_s": round(record["train_seconds"], 1)}


def lean_toy(metrics: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Per toy model, ``{"mean": {clean, l2}, "std": {clean, l2}}`` over seeds (accuracy in %)."""
    out = {}
    for model, entry in metrics.items():
        # the lambda-sweep models (nn-pag-lam<v>) stay in the details: DVC declares vanilla and nn-pag
        if model in ("paper", "params", "dataset") or model.startswith("nn-pag-lam") or not isinstance(entry, dict):
            continue
        stats = {stat: {short: round(entry[f"{full}_{stat}"], 1) for short, full in TOY_KEYS.items()
                        if _is_num(entry.get(f"{full}_{stat}"))} for stat in ("mean", "std")}
        if stats["mean"]:
            out[model] = stats
    return out


def toy_metrics_files(directory: str | Path, lean: dict[str, dict[str, dict[str, float]]]) -> dict[Path, dict]:
    """``metrics/toy/<model>.json`` (means) and ``metrics/toy/<model>.std.json`` (stds): one row each in
    ``dvc metrics show``, under the same two columns."""
    directory = Path(directory)
    files = {}
    for model, stats in lean.items():
        files[directory / f"{model}.json"] = stats["mean"]
        files[directory / f"{model}.std.json"] = stats["std"]
    return files


def lean_correlations(report: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per budget of CORRELATION_BUDGETS, the correlation of its robust accuracy with each alignment metric,
    keyed by the lean alignment name: ``{"l2": {"sbg_cos": r, "etmann": r}, "linf": {...}}``."""
    corr = report.get("correlations") or {}
    out: dict[str, dict[str, float | None]] = {}
    for budget in CORRELATION_BUDGETS:
        row = {}
        for short, full in ALIGN_KEYS.items():
            key = f"{ROBUST_KEYS[budget]}~{full}"
            if key in corr:
                row[short] = None if corr[key] is None else round(corr[key], 3)
        if row:
            out[budget] = row
    return out
