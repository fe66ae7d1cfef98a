"""Run the evidence experiment: every unit (train, evaluate, sweep, checks), then the report.

Order: main methods x seeds (train + AutoAttack on the fixed subset + alignment metrics), the gradnorm
lambda calibration and its seeds, lambda sweeps, SBG-t sweep (fresh SBG stores), source costs, the
attack-strength checks, and the report. All heavy lifting is the library's: ``train_method``,
``run_autoattack``, the alignment metrics, ``attack_strength_checks``, ``run_distill``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pagstore.config import load_section, read_yaml
from pagstore.evidence.config import EvidenceParams
from pagstore.evidence.units import UnitCache
from pagstore.training.objectives import ObjectiveSpec


class Experiment:
    """State shared by the units: params, recipe, budgets, the fixed image subset and the metric data."""

    def __init__(self, params_path: Path, root: Path = Path(".")) -> None:
        from pagstore.data.prepared import load_split
        from pagstore.data.profile import EvalBudget
        from pagstore.training.config import TrainSection

        self.root = Path(root)
        self.params_path = Path(params_path)
        self.p = load_section(self.params_path, "evidence", EvidenceParams)
        self.base_path = self.root / self.p.base_params
        self.common = load_section(self.base_path, "train", TrainSection).common
        self.profile = read_yaml(self.base_path).get("profile")
        self.budget = load_section(self.base_path, f"datasets.{self.profile}.eval", EvalBudget)
        paths = self.p.paths
        self.prepared = self.root / paths.prepared
        self.stores = self.root / paths.stores
        self.work = self.root / paths.work
        self.cache = UnitCache(self.work)
        self.train = load_split(self.prepared / "train.npz")
        test = load_split(self.prepared / "test.npz")
        n = min(self.p.eval.num_images, len(test))
        idx = np.sort(np.random.default_rng(self.p.eval.subset_seed).permutation(len(test))[:n])
        self.subset = idx
        self.x, self.y = torch.from_numpy(test.as_float(idx)), torch.from_numpy(test.labels[idx])
        self.test_fingerprint = test.fingerprint()

    # -- data for the alignment metrics ---------------------------------------------------------------
    def metric_data(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        from pagstore.evaluation.alignment import load_reference_gradients

        sbg_test = self.root / self.p.paths.sbg_test
        if sbg_test.exists():
            x, y, ref, _ = load_reference_gradients(str(sbg_test), self.p.eval.metric_images)
            return x, y, ref
        k = self.p.eval.metric_images
        return self.x[:k], self.y[:k], None

    def eps(self, norm: str) -> float:
        return self.budget.eps_l2 if norm == "L2" else self.budget.eps_linf

    # -- units ------------------------------------------------------------------------------------------
    def trained(self, name: str, spec: ObjectiveSpec, seed: int, stores: Path | None = None) -> Path:
        """Train (or reuse) ``name`` at ``seed``; returns its checkpoint path."""
        from pagstore.training.run import train_method

        out = self.work / "models" / name / f"s{seed}"
        common = dataclasses.replace(self.common, seed=seed)
        stores = stores or self.stores

        def fn() -> dict[str, Any]:
            return train_method(name, spec, common, self.prepared, stores, out, out / "train.json", out / "train.csv")

        self.cache.get(f"train-{name}-s{seed}", {"spec": spec, "common": common, "stores": str(stores)}, fn)
        return out / "checkpoint.pt"

    def evaluated(self, name: str, seed: int, ckpt: Path, keep_adv: bool = False) -> dict[str, Any]:
        """Clean and AutoAttack per-image flags on the subset, plus every alignment metric."""
        from pagstore.evaluation.alignment import alignment_metrics
        from pagstore.evaluation.autoattack import run_autoattack
        from pagstore.evaluation.manifold import extra_alignment_metrics
        from pagstore.training.checkpoint import load_classifier
        from pagstore.training.controls import input_grad_norm

        ev = self.p.eval

        def fn() -> dict[str, Any]:
            model, _ = load_classifier(ckpt)
            with torch.no_grad():
                clean = (model(self.x).argmax(1) == self.y).tolist()
            out: dict[str, Any] = {"clean": clean, "aa": {}}
            for norm in ev.norms:
                res = run_autoattack(model, self.x, self.y, norm=norm, eps=self.eps(norm), batch_size=ev.batch_size,
                                     seed=0)
                with torch.no_grad():
                    flags = (model(res.x_adv).argmax(1) == self.y) & torch.tensor(clean)
                out["aa"][norm] = flags.tolist()
                if keep_adv:
                    adv_dir = self.work / "adv"
                    adv_dir.mkdir(parents=True, exist_ok=True)
                    torch.save(res.x_adv, adv_dir / f"{name}-s{seed}-{norm}.pt")
            xm, ym, ref = self.metric_data()
            tx, ty = torch.from_numpy(self.train.as_float()), torch.from_numpy(self.train.labels)
            out["metrics"] = {**alignment_metrics(model, xm, ym, ref),
                              **extra_alignment_metrics(model, xm, ym, tx, ty, k=min(ev.manifold_k, len(tx)),
                                                        dim=min(ev.manifold_dim, ev.manifold_k, len(tx))),
                              "input_grad_norm": input_grad_norm(model, xm, ym)}
            return out

        key = {"ckpt": _file_key(ckpt), "eval": ev, "subset": self.subset.tolist(), "keep_adv": keep_adv}
        return self.cache.get(f"eval-{name}-s{seed}", key, fn)["result"]

    def apgd_probe(self, name: str, ckpt: Path) -> dict[str, float]:
        """Clean and APGD-CE accuracy (%) on the subset (the sweeps' cheaper attack)."""
        from pagstore.evaluation.apgd_sweep import apgd_accuracy
        from pagstore.training.checkpoint import load_classifier

        sw = self.p.sweeps

        def fn() -> dict[str, float]:
            model, _ = load_classifier(ckpt)
            with torch.no_grad():
                clean = (model(self.x).argmax(1) == self.y).float().mean().item() * 100
            adv = apgd_accuracy(model, self.x, self.y, norm=sw.norm, eps=self.eps(sw.norm), n_iter=sw.apgd_iter) * 100
            return {"clean": clean, "apgd": adv}

        key = {"ckpt": _file_key(ckpt), "norm": sw.norm, "n_iter": sw.apgd_iter, "subset": self.subset.tolist()}
        return self.cache.get(f"apgd-{name}", key, fn)["result"]

    def distilled(self, name: str, source: str, overrides: dict[str, Any], checkpoint: Path | None) -> Path:
        """A store of ``source`` with ``distill.sources.<source>`` updated by ``overrides``; returns its folder."""
        import yaml

        from stages.distill import run_distill

        base = read_yaml(self.base_path)
        base["distill"]["sources"][source] = {**base["distill"]["sources"].get(source, {}), **overrides}
        params = self.work / "params" / f"{name}.yaml"
        params.parent.mkdir(parents=True, exist_ok=True)
        params.write_text(yaml.safe_dump(base, sort_keys=False))
        stores = self.work / "stores" / name
        kw = {"diffusion": checkpoint} if source == "sbg" else {"classifier": checkpoint}

        def fn() -> dict[str, Any]:
            report = run_distill(params, source, self.prepared, stores / source, **kw)
            return {"ok": report["ok"]}

        key = {"distill": base["distill"]["common"], "source": base["distill"]["sources"][source],
               "ckpt": _file_key(checkpoint) if checkpoint else None}
        self.cache.get(f"distill-{name}", key, fn)
        return stores


def _file_key(path: Path) -> str:
    st = Path(path).stat()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


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
        run_method(p.gradnorm.method, ObjectiveSpec(objective="gradnorm", lam=results["gradnorm_calibration"]["lam"]))

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
        for t in sw.sbg_t:
            stores = ex.distilled(f"sbg-t{t}", "sbg", {"t": int(t)}, diffusion)
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


def calibrate_gradnorm(ex: Experiment, results: dict[str, Any]) -> dict[str, Any]:
    """Train gradnorm at each lam (one seed); pick the lam whose grad-norm ratio to the reference matches."""
    cal = ex.p.gradnorm
    norm_of = lambda m: results["methods"][m]["seeds"][cal.seed]["metrics"]["input_grad_norm"]  # noqa: E731
    ref, target = norm_of(cal.reference), norm_of(cal.match)
    rows = []
    for lam in cal.lams:
        name = f"{cal.method}@lam{lam:g}"
        ckpt = ex.trained(name, ObjectiveSpec(objective="gradnorm", lam=float(lam)), cal.seed)
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
    if nm.is_file():
        m = json.loads(nm.read_text())
        out["nac_train_cpu_seconds"] = m.get("cpu_seconds")
        out["nac_noisy_test_accuracy"] = m.get("noisy_test_accuracy")
    nc = ex.root / "models/noisy_classifier/checkpoint.pt"
    if nc.is_file():
        ex.distilled("nac-cost", "nac", {}, nc)
        out["nac_distill_cpu_seconds"] = json.loads(ex.cache.path("distill-nac-cost").read_text())["cpu_seconds"]
    diffusion = ex.root / ex.p.paths.diffusion
    if diffusion.is_file():
        # the same unit as the SBG-t sweep's store at the base t (so it is distilled once)
        t = int(read_yaml(ex.base_path)["distill"]["sources"]["sbg"]["t"])
        ex.distilled(f"sbg-t{t}", "sbg", {"t": t}, diffusion)
        out["sbg_distill_cpu_seconds"] = json.loads(ex.cache.path(f"distill-sbg-t{t}").read_text())["cpu_seconds"]
    return out


def run_attack_checks(ex: Experiment, results: dict[str, Any], ckpts: dict) -> dict[str, Any]:
    """Checks on the most robust PAG candidate (mean AA, first norm) and the AT model, at one seed."""
    from pagstore.evaluation.attack_checks import attack_strength_checks
    from pagstore.training.checkpoint import load_classifier

    ac = ex.p.attack_checks
    norm = ac.norm

    def mean_aa(m: str) -> float:
        return float(np.mean([np.mean(s["aa"][norm]) for s in results["methods"][m]["seeds"].values()]))

    pag = max(ac.pag_candidates, key=mean_aa)
    adv = {m: torch.load(ex.work / "adv" / f"{m}-s{ac.seed}-{norm}.pt") for m in (pag, ac.at)}
    out: dict[str, Any] = {"pag": pag, "at": ac.at, "seed": ac.seed, "norm": norm, "models": {}}
    for m, other in ((pag, ac.at), (ac.at, pag)):
        ckpt = ckpts[m, ac.seed]
        aa_flags = torch.tensor(results["methods"][m]["seeds"][ac.seed]["aa"][norm])

        def fn(m: str = m, other: str = other, ckpt: Path = ckpt, aa_flags: torch.Tensor = aa_flags) -> dict:
            model, _ = load_classifier(ckpt)
            return attack_strength_checks(model, ex.x, ex.y, aa_flags, norm=norm, eps=ex.eps(norm),
                                          transfer_from=adv[other], tolerance=ac.tolerance,
                                          apgd_iter=ac.apgd_iter, apgd_restarts=ac.apgd_restarts,
                                          square_queries=ac.square_queries, pgd_steps=ac.pgd_steps, seed=ac.seed)

        key = {"ckpt": _file_key(ckpt), "checks": ac, "other": other, "subset": ex.subset.tolist()}
        out["models"][m] = ex.cache.get(f"checks-{m}-s{ac.seed}", key, fn)["result"]
        out["models"][m]["transfer_from"] = other
    return out
