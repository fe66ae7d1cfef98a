"""Fixture metrics files for the report tests: what the evaluate and toy stages write, with known numbers."""

from __future__ import annotations

import json
from pathlib import Path

NUMBERS = {  # method: (clean, aa_l2, aa_linf, aa_l2_large, aa_linf_large, sbg_cos, etmann)
    "vanilla": (0.98, 0.12, 0.08, 0.0, 0, 0.05, 0.20),  # an int 0, as a hand-written JSON may hold
    "pag-sbg": (0.94, 0.55, 0.31, 0.12, 0.02, 0.40, 0.35),
    "at-l2": (0.95, 0.60, 0.25, 0.15, 0.01, 0.30, 0.33),
}
TRAIN = {
    "methods": {"pag-sbg": {"objective": "pag", "store": "sbg", "lam": 1.5}},
    "plain_methods": {"vanilla": {"objective": "ce"}, "at-l2": {"objective": "at", "norm": "l2", "eps": 1.0},
                      "at-linf": {"objective": "at", "norm": "linf", "eps": 0.1}},
}
# As the toy stage writes it (percent; per-seed lists; the paper's numbers; its parameters).
TOY = {"vanilla": {"clean_mean": 100.0, "clean_std": 0.0, "robust_mean": 1.5, "robust_std": 0.7,
                   "robust_per_seed": [1.0, 2.0]},
       "nn-pag": {"clean_mean": 99.5, "clean_std": 0.5, "robust_mean": 70.25, "robust_std": 3.5},
       "paper": {"vanilla": {"clean": 100.0, "robust": 0.0}, "nn-pag": {"clean": 100.0, "robust": 75.5}},
       "seeds": [0, 1], "params": {"attack": {"eps": 15.0}}, "seconds": 12.0, "units": "percent"}


def eval_metrics(method: str) -> dict:
    clean, l2, linf, l2l, linfl, cos, etm = NUMBERS[method]
    return {
        "method": method, "num_images": 50, "clean_accuracy": clean,
        "robust_accuracy": {"aa_l2": l2, "aa_linf": linf, "aa_l2_large": l2l, "aa_linf_large": linfl},
        "alignment": {"sbg_cos_mean": cos, "etmann_mean": etm},
        "corruptions": {"gaussian_blur": {"median_min_severity": 0.125, "accuracy_at": {"0.1": 0.5}}},
        "checkpoint": {"meta": {"model": {"name": "small-cnn"}, "method": method}},
    }


def write_eval_dir(root: Path, methods=tuple(NUMBERS)) -> Path:
    out = root / "metrics" / "eval"
    out.mkdir(parents=True, exist_ok=True)
    for m in methods:
        (out / f"{m}.json").write_text(json.dumps(eval_metrics(m)))
    return out
