"""Collect evaluation metrics of many models into one comparison (markdown table, JSON, plot).

Inputs are the ``metrics/eval/<method>.json`` files written by the evaluate stage (and optionally the toy
stage's metrics); everything is read defensively, a missing number is shown as "-" rather than failing,
but an unreadable file is an error naming it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pagstore.metrics_files import read_record
from pagstore.evaluation.paper import PAPER_TABLE6, PAPER_TOY, paper_row_for

ROBUST_KEYS = ("aa_l2", "aa_linf", "aa_l2_large", "aa_linf_large")
ALIGN_KEYS = ("sbg_cos_mean", "etmann_mean")


class ReportError(ValueError):
    """An input metrics file is missing or malformed."""


def read_metrics(path: str | Path) -> dict[str, Any]:
    """Read one metrics file's full record (its ``.details.json`` when there is one, as
    :func:`pagstore.metrics_files.read_record`); a missing or unparsable file raises ReportError naming it."""
    try:
        return read_record(path)
    except ValueError as exc:
        raise ReportError(str(exc)) from None


def summarize(method: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """Flatten one evaluate metrics file into the numbers of the comparison table (fractions in [0, 1])."""
    robust = metrics.get("robust_accuracy") or {}
    align = metrics.get("alignment") or {}
    meta = (metrics.get("checkpoint") or {}).get("meta") or {}
    row: dict[str, Any] = {"method": method, "clean": metrics.get("clean_accuracy"),
                           "num_images": metrics.get("num_images")}
    row.update({k: robust.get(k) for k in ROBUST_KEYS})
    row.update({k: align.get(k) for k in ALIGN_KEYS})
    row["model"] = meta.get("model") if isinstance(meta.get("model"), str) else (meta.get("model") or {}).get("name")
    row["corruptions"] = {name: c.get("median_min_severity")
                          for name, c in (metrics.get("corruptions") or {}).items() if isinstance(c, dict)}
    return row


def _pct(v: Any) -> str:
    return "-" if not isinstance(v, (int, float)) or math.isnan(v) else f"{100 * v:.1f}"


def _num(v: Any, digits: int = 3) -> str:
    return "-" if not isinstance(v, (int, float)) or math.isnan(v) else f"{v:.{digits}f}"


def _paper(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def results_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: our numbers (%) and, on the same line, the paper's corresponding CIFAR-10 row."""
    head = ("| method | clean | AA L2 | AA Linf | L2 large | Linf large | SBG cos | Etmann "
            "| paper row | clean | AA L2 | AA Linf | L2 large | Linf large |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        p = paper_row_for(r["method"])
        paper = (f"{p.name} ({p.model}, {p.table}) | {_paper(p.clean)} | {_paper(p.aa_l2)} | {_paper(p.aa_linf)} "
                 f"| {_paper(p.aa_l2_large)} | {_paper(p.aa_linf_large)}") if p else "- | - | - | - | - | -"
        lines.append(f"| {r['method']} | {_pct(r['clean'])} | {_pct(r['aa_l2'])} | {_pct(r['aa_linf'])} "
                     f"| {_pct(r['aa_l2_large'])} | {_pct(r['aa_linf_large'])} | {_num(r['sbg_cos_mean'])} "
                     f"| {_num(r['etmann_mean'])} | {paper} |")
    return "\n".join(lines)


def corruption_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of median minimal severities (higher = more robust) with the paper's Table 6."""
    names = list(PAPER_TABLE6)
    head = "| method | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (len(names) + 1)]
    for r in rows:
        lines.append(f"| {r['method']} | " + " | ".join(_num(r['corruptions'].get(n)) for n in names) + " |")
    for i, label in enumerate(("paper AT L2 (robust acc. %)", "paper SBG (robust acc. %)")):
        lines.append(f"| {label} | " + " | ".join(f"{PAPER_TABLE6[n][i]:.2f}" for n in names) + " |")
    return "\n".join(lines)


def toy_section(toy: dict[str, Any]) -> str:
    """Markdown table of the toy stage's models beside Appendix G.1: clean accuracy, the exhaustive
    eps-disk search as the robust accuracy and PGD beside it as an upper bound (mean +- std over seeds).

    Accepts either ``{"clean_mean": .., "clean_std": ..}`` or ``{"clean": {"mean": .., "std": ..}}`` per model;
    entries that carry neither (params, seeds, the paper's numbers) are skipped. Without a grid search
    (``robust_grid``) the robust column is "-" and only PGD's upper bound is shown.
    """
    paper = toy.get("paper") if isinstance(toy.get("paper"), dict) else PAPER_TOY
    lines = ["| model | clean | robust (eps-disk search) | PGD (upper bound) | paper clean | paper robust (PGD) |",
             "|---|---|---|---|---|---|"]
    for model, entry in toy.items():
        if model in ("paper", "params") or not isinstance(entry, dict):
            continue
        clean, pgd, grid = _stat(entry, "clean"), _stat(entry, "robust"), _stat(entry, "robust_grid")
        if clean is None and pgd is None:
            continue
        ref = paper.get(model, {}) if isinstance(paper.get(model), dict) else {}
        lines.append(f"| {model} | {_mean_std(clean)} | {_mean_std(grid)} | {_mean_std(pgd)} "
                     f"| {_num(ref.get('clean'), 1)} | {_num(ref.get('robust'), 1)} |")
    units = toy.get("units")
    return "\n".join(lines) + (f"\n\nUnits (toy stage): {units}" if isinstance(units, str) else "")


def _stat(entry: dict[str, Any], name: str) -> tuple[float, float | None] | None:
    if isinstance(entry.get(f"{name}_mean"), (int, float)):
        std = entry.get(f"{name}_std")
        return float(entry[f"{name}_mean"]), float(std) if isinstance(std, (int, float)) else None
    inner = entry.get(name)
    if isinstance(inner, dict) and isinstance(inner.get("mean"), (int, float)):
        std = inner.get("std")
        return float(inner["mean"]), float(std) if isinstance(std, (int, float)) else None
    if isinstance(inner, (int, float)) and not isinstance(inner, bool):
        return float(inner), None
    return None


def _mean_std(stat: tuple[float, float | None] | None) -> str:
    if stat is None:
        return "-"
    mean, std = stat
    return f"{mean:.4g}" + (f" +- {std:.2g}" if std is not None else "")


def pearson(xs: list[float], ys: list[float]) -> float | None:
    """Pearson correlation of paired values, None when fewer than 3 pairs or zero variance."""
    if len(xs) < 3:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((a - mx) * (b - my) for a, b in zip(xs, ys))
    sxx = sum((a - mx) ** 2 for a in xs)
    syy = sum((b - my) ** 2 for b in ys)
    return None if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def plot_robust_vs_alignment(rows: list[dict[str, Any]], x_key: str, y_key: str, path: str | Path) -> None:
    """Scatter of ``y_key`` robust accuracy (%) vs ``x_key`` alignment, one labelled point per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pagstore.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(5, 4))
    for r in rows:
        x, y = r.get(x_key), r.get(y_key)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            ax.scatter(x, 100 * y)
            ax.annotate(r["method"], (x, 100 * y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(x_key)
    ax.set_ylabel(f"{y_key} (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
