"""Tables for the overlaid DVC plots: one row per (method, point), a ``method`` column to colour lines by.

DVC draws one chart per data file, and a top-level plot cannot list files that depend on pipeline.yaml's
methods; so the report gathers every method's sweep and training curve into one long-format CSV per
chart (``robust_vs_eps_l2.csv``, ``robust_vs_eps_linf.csv``, ``test_acc_vs_epoch.csv``,
``robust_vs_alignment.csv``) and the templates in ``.dvc/plots/`` draw one line (or point) per method.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from pagstore.atomic import atomic_path

SWEEP_NORMS = {"L2": "robust_vs_eps_l2.csv", "Linf": "robust_vs_eps_linf.csv"}


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _write_csv(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    with atomic_path(path, suffix=".csv") as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_overlay_tables(methods: list[str], out_dir: Path, *, eval_plots: Path | None = None,
                         train_plots: Path | None = None, summary_rows: list[dict[str, Any]] | None = None,
                         alignment_key: str = "sbg_cos_mean", robust_key: str = "aa_l2") -> list[str]:
    """Write the overlay CSVs into ``out_dir`` from ``<eval_plots>/<m>/sweep.csv`` and ``<train_plots>/<m>.csv``.

    Methods without the input file are left out of that chart. ``summary_rows`` (the report's table rows)
    give the robust-vs-alignment points. Returns the names of the files written.
    """
    written = []
    if eval_plots is not None:
        by_norm: dict[str, list[dict[str, Any]]] = {n: [] for n in SWEEP_NORMS}
        for m in methods:
            path = eval_plots / m / "sweep.csv"
            for row in _read_csv(path) if path.is_file() else []:
                if row["norm"] in by_norm:
                    by_norm[row["norm"]].append({"method": m, "eps": row["eps"], "accuracy": row["accuracy"]})
        for norm, name in SWEEP_NORMS.items():
            _write_csv(out_dir / name, ["method", "eps", "accuracy"], by_norm[norm])
            written.append(name)
    if train_plots is not None:
        rows = []
        for m in methods:
            path = train_plots / f"{m}.csv"
            rows += [{"method": m, "epoch": r["epoch"], "test_acc": r["test_acc"]}
                     for r in (_read_csv(path) if path.is_file() else [])]
        _write_csv(out_dir / "test_acc_vs_epoch.csv", ["method", "epoch", "test_acc"], rows)
        written.append("test_acc_vs_epoch.csv")
    if summary_rows is not None:
        points = [{"method": r["method"], alignment_key: r[alignment_key], robust_key: r[robust_key]}
                  for r in summary_rows if isinstance(r.get(alignment_key), (int, float))
                  and isinstance(r.get(robust_key), (int, float))]
        _write_csv(out_dir / "robust_vs_alignment.csv", ["method", alignment_key, robust_key], points)
        written.append("robust_vs_alignment.csv")
    return written
