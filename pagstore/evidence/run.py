"""Run the evidence experiment: every unit (train, evaluate, sweep, checks), then the report.

Order: main methods x seeds (train + AutoAttack on the fixed subset + alignment metrics), the gradnorm
lambda calibration and its seeds, lambda sweeps, SBG-t sweep (fresh SBG stores), source costs, the
attack-strength checks, and the report. All heavy lifting is the library's: ``train_method``,
``run_autoattack``, the alignment metrics, ``attack_strength_checks``, ``run_distill``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pagstore.config import load_section
from pagstore.profiles import effective_params
from pagstore.evidence.config import EvidenceParams
from pagstore.evidence.experiment import Experiment
from pagstore.evidence.steps import calibrate_gradnorm, run_attack_checks, source_costs
from pagstore.training.objectives import ObjectiveSpec


def run_upstream(stages: tuple[str, ...], root: Path) -> float:
    """``dvc repro`` the default pipeline's stages this experiment reads; returns the wall seconds."""
    if not stages:
        return 0.0
    t0 = time.perf_counter()
    dvc = Path(sys.executable).parent / "dvc"
    subprocess.run([str(dvc) if dvc.exists() else "dvc", "repro", *stages], cwd=root, check=True)
    return time.perf_counter() - t0


def run_experiment(params_path: Path, root: Path = Path("."), skip_upstream: bool = False) -> dict[str, Any]:
    """Run every unit and write the report; returns the collected results (also ``<work>/results.json``)."""
    from pagstore.atomic import write_json
    from pagstore.evidence.report import write_report

    t_start = time.perf_counter()
    p = load_section(params_path, "evidence", EvidenceParams)
    upstream_s = 0.0 if skip_upstream else run_upstream(p.upstream, Path(root))
    if upstream_s:  # kept per invocation, so a resumed run still reports the upstream time of earlier ones
        write_json(Path(root) / p.paths.work / "upstream" / f"{time.time_ns()}.json", {"seconds": upstream_s})
    upstream_all = sum(json.loads(f.read_text())["seconds"]
                       for f in (Path(root) / p.paths.work / "upstream").glob("*.json"))
    ex = Experiment(params_path, root)
    checks = p.attack_checks
    keep = {checks.at, *checks.pag_candidates} if checks is not None else set()

    results: dict[str, Any] = {"methods": {}, "sweeps": {"lam": {}, "sbg_t": {}}, "upstream_seconds": upstream_s}
    ckpts: dict[tuple[str, int], Path] = {}

    def run_method(name: str, spec: ObjectiveSpec) -> None:
        per_seed = {}
        for seed in p.seeds:
            ckpts[name, seed] = ex.trained(name, spec, seed)
            per_seed[seed] = ex.evaluated(name, seed, ckpts[name, seed],
                                          keep_adv=name in keep and checks is not None and seed == checks.seed)
        results["methods"][name] = {"spec": dataclasses.asdict(spec), "seeds": per_seed}

    for name, spec in p.methods.items():
        run_method(name, spec)

    if p.gradnorm is not None:
        results["gradnorm_calibration"] = calibrate_gradnorm(ex, results)
        run_method(p.gradnorm.method, p.gradnorm_spec(results["gradnorm_calibration"]["lam"]))

    sw = p.sweeps
    for name, lams in sw.lam.items():
        rows = []
        for lam in lams:
            spec = dataclasses.replace(p.methods[name], lam=float(lam))
            if spec == p.methods[name] and (name, sw.seed) in ckpts:
                ckpt = ckpts[name, sw.seed]
            else:
                ckpt = ex.trained(f"{name}@lam{lam:g}", spec, sw.seed)
            rows.append({"lam": float(lam), **ex.apgd_probe(f"{name}@lam{lam:g}-s{sw.seed}", ckpt)})
        results["sweeps"]["lam"][name] = rows

    diffusion = Path(root) / p.paths.diffusion
    if sw.sbg_t:
        spec = p.methods[sw.sbg_t_method]
        rows = []
        base_t = int(effective_params(ex.base_path)["distill"]["sources"]["sbg"]["t"])
        for t in sw.sbg_t:
            stores = ex.distilled(f"sbg-t{t}", "sbg", {"t": int(t)}, diffusion)
            if int(t) == base_t and spec.store == "sbg" and (sw.sbg_t_method, sw.seed) in ckpts:
                ckpt = ckpts[sw.sbg_t_method, sw.seed]  # the base store's model: same gradients, same recipe
            else:
                ckpt = ex.trained(f"{sw.sbg_t_method}@t{t}", spec, sw.seed, stores=stores)
            rows.append({"t": int(t), **ex.apgd_probe(f"{sw.sbg_t_method}@t{t}-s{sw.seed}", ckpt)})
        results["sweeps"]["sbg_t"] = {"method": sw.sbg_t_method, "rows": rows}

    results["costs"] = source_costs(ex, results)
    if checks is not None:
        results["attack_checks"] = run_attack_checks(ex, results, ckpts)
    records = ex.cache.all_records()
    results["runtime"] = {
        "units_seconds": sum(r["seconds"] for r in records),
        "units_cpu_seconds": sum(r["cpu_seconds"] for r in records),
        "upstream_seconds": upstream_all,
        "this_invocation_seconds": time.perf_counter() - t_start,
        "units_run_now": len(ex.cache.ran), "units_total": len(records),
    }
    results["subset"] = {"indices": ex.subset.tolist(), "test_fingerprint": ex.test_fingerprint}
    results["budget"] = dataclasses.asdict(ex.budget)
    write_json(ex.work / "results.json", results)
    write_report(ex, results)
    return results
