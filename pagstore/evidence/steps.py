"""The evidence experiment's composite steps: gradnorm's lambda calibration, the source costs and the
attack-strength checks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pagstore.metrics_files import details_path, read_record
from pagstore.profiles import effective_params
from pagstore.evidence.experiment import Experiment


def calibrate_gradnorm(ex: Experiment, results: dict[str, Any]) -> dict[str, Any]:
    """Train gradnorm at each lam (one seed); pick the lam whose grad-norm ratio to the reference matches."""
    cal = ex.p.gradnorm
    norm_of = lambda m: results["methods"][m]["seeds"][cal.seed]["metrics"]["input_grad_norm"]  # noqa: E731
    ref, target = norm_of(cal.reference), norm_of(cal.match)
    rows = []
    for lam in cal.lams:
        name = f"{cal.method}@lam{lam:g}"
        ckpt = ex.trained(name, ex.p.gradnorm_spec(lam), cal.seed)
        ev = ex.evaluated(name, cal.seed, ckpt)
        rows.append({"lam": float(lam), "input_grad_norm": ev["metrics"]["input_grad_norm"],
                     "ratio": ev["metrics"]["input_grad_norm"] / ref})
    goal = target / ref
    best = min(rows, key=lambda r: abs(math.log(max(r["ratio"], 1e-12)) - math.log(max(goal, 1e-12))))
    return {"lam": best["lam"], "target_ratio": goal, "reference": cal.reference, "match": cal.match,
            "seed": cal.seed, "rows": rows}


def source_costs(ex: Experiment, results: dict[str, Any]) -> dict[str, Any]:
    """CPU-seconds of the noise-aware classifier (train, from its stage metrics) and of distilling each
    store here (nac and SBG at the base t, timed now), beside diffusion training (from its log, if any)."""
    import json

    out: dict[str, Any] = {}
    nm = ex.root / ex.p.paths.noisy_metrics
    if nm.is_file() or details_path(nm).is_file():
        m = read_record(nm)  # the full record (details file) beside the lean metrics file
        out["nac_train_cpu_seconds"] = m.get("cpu_seconds")
        out["nac_noisy_test_accuracy"] = m.get("noisy_test_accuracy")
    nc = ex.root / "models/noisy_classifier/checkpoint.pt"
    if nc.is_file():
        ex.distilled("nac-cost", "nac", {}, nc)
        out["nac_distill_cpu_seconds"] = json.loads(ex.cache.path("distill-nac-cost").read_text())["cpu_seconds"]
    diffusion = ex.root / ex.p.paths.diffusion
    if diffusion.is_file():
        # the same unit as the SBG-t sweep's store at the base t (so it is distilled once)
        t = int(effective_params(ex.base_path)["distill"]["sources"]["sbg"]["t"])
        ex.distilled(f"sbg-t{t}", "sbg", {"t": t}, diffusion)
        out["sbg_distill_cpu_seconds"] = json.loads(ex.cache.path(f"distill-sbg-t{t}").read_text())["cpu_seconds"]
    return out


def run_attack_checks(ex: Experiment, results: dict[str, Any], ckpts: dict) -> dict[str, Any]:
    """Checks on the most robust PAG candidate (mean AA, first norm) and the AT model, at one seed."""
    from pagstore.evaluation.attack_checks import attack_strength_checks

    ac = ex.p.attack_checks
    norm = ac.norm

    def mean_aa(m: str) -> float:
        return float(np.mean([np.mean(s["aa"][norm]) for s in results["methods"][m]["seeds"].values()]))

    pag = max(ac.pag_candidates, key=mean_aa)
    def adv(m: str) -> torch.Tensor:  # read only when a check runs (adv/ is not committed)
        path = ex.work / "adv" / f"{m}-s{ac.seed}-{norm}.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: AutoAttack examples of {m} are gone; delete "
                                    f"{ex.cache.path(f'eval-{m}-s{ac.seed}')} to recompute them")
        return torch.load(path, weights_only=True)  # a plain tensor saved by the evidence run

    out: dict[str, Any] = {"pag": pag, "at": ac.at, "seed": ac.seed, "norm": norm, "models": {}}
    for m, other in ((pag, ac.at), (ac.at, pag)):
        ckpt = ckpts[m, ac.seed]
        aa_flags = torch.tensor(results["methods"][m]["seeds"][ac.seed]["aa"][norm])

        def fn(m: str = m, other: str = other, ckpt: Path = ckpt, aa_flags: torch.Tensor = aa_flags) -> dict:
            model, _ = ex.load(ckpt)
            return attack_strength_checks(model, ex.x, ex.y, aa_flags, norm=norm, eps=ex.eps(norm),
                                          transfer_from=adv(other), tolerance=ac.tolerance,
                                          apgd_iter=ac.apgd_iter, apgd_restarts=ac.apgd_restarts,
                                          square_queries=ac.square_queries, pgd_steps=ac.pgd_steps, seed=ac.seed)

        key = {"ckpt": ex.ckpt_key(ckpt), "checks": ac, "other": other, "subset": ex.subset.tolist()}
        out["models"][m] = ex.cache.get(f"checks-{m}-s{ac.seed}", key, fn)["result"]
        out["models"][m]["transfer_from"] = other
    return out
