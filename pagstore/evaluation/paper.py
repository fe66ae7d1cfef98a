"""The paper's published numbers (Ganz, Kawar & Elad, ICML 2023), to print beside ours.

All rows: CIFAR-10, 32x32x3, full 10k test set, AutoAttack standard, L2 eps 0.5 and Linf eps 8/255; large
eps: L2 1.0 and Linf 16/255. ResNet-18, except the TRADES rows (WideResNet-34-10, Table 4). Accuracies in %.
Table 6 (non-norm-bounded attacks, foolbox, ResNet-18 CIFAR-10) is given for AT L2 and SBG only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's CIFAR-10 tables; None where the paper reports no number."""

    name: str
    model: str
    clean: float
    aa_l2: float
    aa_linf: float
    aa_l2_large: float | None = None
    aa_linf_large: float | None = None
    table: str = "Table 1"


PAPER_ROWS: dict[str, PaperRow] = {
    "vanilla": PaperRow("Vanilla", "ResNet-18", 93.61, 0.00, 0.00),
    "oi": PaperRow("OI", "ResNet-18", 79.46, 46.63, 13.50),
    "cm": PaperRow("CM", "ResNet-18", 81.41, 47.25, 11.24),
    "nn": PaperRow("NN", "ResNet-18", 80.65, 42.12, 7.51),
    "sbg": PaperRow("SBG", "ResNet-18", 78.56, 55.39, 23.97, 30.43, 1.92, "Tables 1, 3"),
    "at-linf": PaperRow("AT Linf", "ResNet-18", 82.49, 56.57, 37.59, 25.26, 8.02, "Tables 1, 3"),
    "at-l2": PaperRow("AT L2", "ResNet-18", 86.79, 60.82, 19.63, 18.81, 0.50, "Tables 1, 3"),
    "at-l2+pag": PaperRow("AT L2 + PAG (SBG)", "ResNet-18", 85.54, 61.73, 23.52, table="Table 4"),
    "trades": PaperRow("TRADES Linf", "WRN-34-10", 83.04, 57.41, 43.54, table="Table 4"),
    "trades+pag": PaperRow("TRADES Linf + PAG (SBG)", "WRN-34-10", 84.59, 62.66, 45.78, table="Table 4"),
}

# Table 6, % robust accuracy (foolbox), ResNet-18 on CIFAR-10: attack -> (AT L2, SBG).
PAPER_TABLE6: dict[str, tuple[float, float]] = {
    "salt_and_pepper": (29.86, 42.59),
    "contrast_reduction": (20.02, 44.71),
    "gaussian_blur": (28.03, 51.54),
    "blended_uniform_noise": (34.95, 34.30),
}

# Appendix G.1: 2-D toy, L2 PGD eps 15, 10 steps of 2; both models 100% clean.
PAPER_TOY = {"vanilla": {"clean": 100.0, "robust": 0.0}, "nn-pag": {"clean": 100.0, "robust": 75.5}}


def paper_row_for(method: str) -> PaperRow | None:
    """The paper row a method name corresponds to (e.g. "pag-sbg" -> SBG, "at-l2-pag-sbg" -> AT L2 + PAG).

    Names are matched on their parts (split on -, +, _), so suffixes like lambda tags do not matter.
    """
    name = method.lower()
    parts = set(re.split(r"[-+_ ]+", name))
    has_pag = "pag" in parts or any(p in parts for p in ("sbg", "oi", "cm", "nn"))
    if "trades" in parts:
        return PAPER_ROWS["trades+pag" if has_pag else "trades"]
    if "at" in parts:
        if has_pag:
            return PAPER_ROWS["at-l2+pag"] if "l2" in parts else None
        if "l2" in parts:
            return PAPER_ROWS["at-l2"]
        return PAPER_ROWS["at-linf"] if "linf" in parts else None
    if "vanilla" in parts or "ce" in parts:
        return PAPER_ROWS["vanilla"]
    for source in ("sbg", "oi", "cm", "nn"):
        if source in parts:
            return PAPER_ROWS[source]
    return None
