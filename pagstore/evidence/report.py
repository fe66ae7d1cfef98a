"""``reports/evidence.md``: every number from the run's unit results, with intervals and verdicts.

Accuracies are means over seeds and images with a two-stage bootstrap 95% interval
(:mod:`pagstore.evaluation.intervals`); a sentence "A beats B" appears only where the intervals separate.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from pagstore.evaluation.intervals import Interval, bootstrap_mean, compare, spearman_interval

METRICS = (("sbg_cos_mean", "SBG cos (this paper)"),
           ("closest_class_cos_mean", "closest wrong-class NN direction cos (alpha_dx)"),
           ("on_manifold_fraction_mean", "on-manifold fraction (local PCA)"),
           ("etmann_mean", "Etmann |cos(x, grad)|"))


def commit_of(root: Path) -> str:
    """HEAD's hash, with "+dirty" when tracked files differ from it ("unknown" outside a git checkout)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def accuracy_interval(method: dict[str, Any], key: str, n_boot: int, norm: str | None = None) -> Interval:
    """Bootstrap interval (%) of clean (key "clean") or AA (key "aa", ``norm``) flags over seeds x images."""
    seeds = method["seeds"].values()
    flags = [s["clean"] if key == "clean" else s["aa"][norm] for s in seeds]
    return bootstrap_mean(np.array(flags, dtype=float), n_boot=n_boot, scale=100.0)


def metric_mean(method: dict[str, Any], key: str) -> float | None:
    vals = [s["metrics"].get(key) for s in method["seeds"].values()]
    vals = [v for v in vals if isinstance(v, (int, float))]
    return float(np.mean(vals)) if vals else None


def write_report(ex: Any, results: dict[str, Any]) -> str:
    """Write the markdown report and the figures; returns the markdown."""
    p = ex.p
    report_path = ex.root / p.paths.report
    aa = {m: accuracy_interval(r, "aa", p.eval.n_boot, p.eval.norms[0]) for m, r in results["methods"].items()}
    md = _header(ex, results) + _table(ex, results) + _claims(ex, aa) + _alignment(ex, results)
    md += _calibration_and_costs(results) + _sweeps(ex, results, report_path) + _checks(ex, results) + _toy(ex)
    text = "\n".join(md).rstrip() + "\n"
    from pagstore.atomic import atomic_path

    with atomic_path(report_path, suffix=".md") as tmp:
        Path(tmp).write_text(text)
    return text


def _header(ex: Any, results: dict[str, Any]) -> list[str]:
    p, rt = ex.p, results["runtime"]
    return ["# Evidence: seeds, intervals, controls and alignment metrics (issue 16)", "",
            f"- Commit: `{commit_of(ex.root)}`; params: `{ex.params_path}` (base recipe `{p.base_params}`, "
            f"profile `{ex.profile}`).",
            f"- Measured runtime: {rt['units_seconds'] / 60:.1f} min of experiment units "
            f"({rt['units_cpu_seconds'] / 60:.1f} CPU-min) plus {rt['upstream_seconds'] / 60:.1f} min of upstream "
            "`dvc repro` (default-pipeline stages; 0 when they were already up to date); this invocation "
            f"{rt['this_invocation_seconds'] / 60:.1f} min ({rt['units_run_now']} of {rt['units_total']} units run "
            "now, the rest reused).",
            f"- {len(p.seeds)} training seeds per method ({', '.join(map(str, p.seeds))}); AutoAttack (standard) "
            f"{', '.join(f'{n} eps {ex.eps(n):g}' for n in p.eval.norms)} on the same {len(ex.y)} test images "
            f"for every model (seeded subset, seed {p.eval.subset_seed}).",
            f"- Intervals: 95%, two-stage bootstrap over seeds and images ({p.eval.n_boot} resamples). \"A beats B\" "
            "only where the two intervals do not overlap; otherwise \"not distinguishable\".", ""]


def _table(ex: Any, results: dict[str, Any]) -> list[str]:
    p, methods, n_boot = ex.p, results["methods"], ex.p.eval.n_boot
    md = ["## Accuracy and alignment per method", "",
          "| method | clean | " + " | ".join(f"AA {n}" for n in p.eval.norms) + " | "
          + " | ".join(label for _, label in METRICS) + " | input-grad norm |",
          "|---|---|" + "---|" * len(p.eval.norms) + "---|" * len(METRICS) + "---|"]
    for m, r in methods.items():
        cells = [accuracy_interval(r, "clean", n_boot).fmt()]
        cells += [accuracy_interval(r, "aa", n_boot, n).fmt() for n in p.eval.norms]
        cells += [_f(metric_mean(r, k), 3) for k, _ in METRICS] + [_f(metric_mean(r, "input_grad_norm"), 3)]
        md.append(f"| {m} | " + " | ".join(cells) + " |")
    first = next(iter(methods[next(iter(methods))]["seeds"].values()))["metrics"]
    md += ["", f"On-manifold fraction: ||P g||^2 / ||g||^2 for g = grad_x log p(y|x), P the span of the top "
               f"{first.get('on_manifold_dim')} principal directions of the {first.get('on_manifold_k')} nearest "
               f"training images (random direction: {_f(first.get('on_manifold_random_baseline'), 3)}). Alignment "
               f"metrics on {p.eval.metric_images} held-out test images (the SBG test store).", ""]
    return md


def _claims(ex: Any, aa: dict[str, Interval]) -> list[str]:
    md = ["## The paper's claims and the controls, within the intervals", "",
          f"AA {ex.p.eval.norms[0]} robust accuracy, mean [95% interval]:", ""]
    for c in ex.p.comparisons:
        if c.a not in aa or c.b not in aa:
            md.append(f"- **{c.claim}**: not run ({c.a if c.a not in aa else c.b} missing).")
            continue
        verdict = compare(c.a, aa[c.a], c.b, aa[c.b])
        holds = verdict == f"{c.a} beats {c.b}"
        md.append(f"- **{c.claim}**: {verdict} ({c.a} {aa[c.a].fmt()} vs {c.b} {aa[c.b].fmt()}) -> "
                  f"{'holds on digits' if holds else 'not shown on digits'}.")
    return md


def _alignment(ex: Any, results: dict[str, Any]) -> list[str]:
    norm0, n_boot = ex.p.eval.norms[0], ex.p.eval.n_boot
    md = ["", "### Alignment against robustness", "",
          f"Spearman correlation of each metric with AA {norm0} robust accuracy across all (method, seed) pairs, "
          "with a pair-bootstrap 95% interval:", "", "| metric | Spearman | pairs | verdict |", "|---|---|---|---|"]
    holding: list[str] = []
    failing: list[str] = []
    pairs = [(s["metrics"], float(np.mean(s["aa"][norm0])) * 100)
             for r in results["methods"].values() for s in r["seeds"].values()]
    for key, label in METRICS:
        xs = [mt.get(key) for mt, _ in pairs]
        ok = [i for i, v in enumerate(xs) if isinstance(v, (int, float))]
        if len(ok) < 3:
            md.append(f"| {label} | - | {len(ok)} | too few pairs |")
            failing.append(label)
            continue
        iv = spearman_interval([xs[i] for i in ok], [pairs[i][1] for i in ok], n_boot=n_boot)
        if not np.isfinite(iv.mean):
            md.append(f"| {label} | undefined (a constant side) | {len(ok)} | not distinguishable from 0 |")
            failing.append(label)
            continue
        word = "correlates" if iv.lo > 0 else ("anti-correlates" if iv.hi < 0 else "not distinguishable from 0")
        md.append(f"| {label} | {iv.fmt(3)} | {len(ok)} | {word} |")
        (holding if word == "correlates" else failing).append(label)
    verdict = f"holds on digits for {', '.join(holding)}" if holding else "holds for no metric"
    if failing:
        verdict += f"; not shown for {', '.join(failing)} (Spearman interval not above 0)"
    return md + ["", f"- **Alignment correlates with robustness**: {verdict}."]


def _calibration_and_costs(results: dict[str, Any]) -> list[str]:
    md: list[str] = []
    cal = results.get("gradnorm_calibration")
    if cal:
        md += ["", "## Gradient-norm control: choosing its lambda", "",
               f"Target: {cal['match']}'s held-out input-gradient norm / {cal['reference']}'s = "
               f"{cal['target_ratio']:.3f} (seed {cal['seed']}). Chosen lambda: **{cal['lam']:g}** (closest log ratio).",
               "", "| lambda | input-grad norm | ratio to reference |", "|---|---|---|"]
        md += [f"| {r['lam']:g} | {r['input_grad_norm']:.4f} | {r['ratio']:.3f} |" for r in cal["rows"]]
    costs = results.get("costs") or {}
    if costs:
        md += ["", "## Noise-aware classifier source: cost", "", "| step | CPU-seconds |", "|---|---|"]
        for k, label in (("nac_train_cpu_seconds", "noisy classifier training (stage metrics)"),
                         ("nac_distill_cpu_seconds", "nac store distillation (timed here)"),
                         ("sbg_distill_cpu_seconds", "SBG store distillation (timed here)")):
            md.append(f"| {label} | {_f(costs.get(k), 1)} |")
        md += ["", "Diffusion training is not rerun here (the default run's `train_diffusion` stage; its measured "
                   "time is in docs/evidence.md); SBG needs it plus its distillation, nac needs only the two "
                   "steps above."]
    return md


def _sweeps(ex: Any, results: dict[str, Any], report_path: Path) -> list[str]:
    from pagstore.evidence.figures import sweep_plot

    sw, sweeps, fig_dir = ex.p.sweeps, results.get("sweeps", {}), ex.root / ex.p.paths.figures
    if not (sweeps.get("lam") or sweeps.get("sbg_t")):
        return []
    attack = f"APGD-CE {sw.norm} {sw.apgd_iter} it"
    md = ["", "## Sweeps (one seed, APGD-CE only: an upper bound on AA robust accuracy)", ""]
    for name, rows in sweeps.get("lam", {}).items():
        png = fig_dir / f"lambda_{name}.png"
        sweep_plot(rows, "lam", png, f"{name}: accuracy vs lambda (seed {sw.seed})", attack, log_x=True)
        md += [f"### lambda, {name}", "", f"![{name} lambda sweep]({_rel(png, report_path)})", "",
               "| lambda | clean | " + attack + " |", "|---|---|---|"]
        md += [f"| {r['lam']:g} | {r['clean']:.1f} | {r['apgd']:.1f} |" for r in rows] + [""]
    st = sweeps.get("sbg_t")
    if st:
        png = fig_dir / "sbg_t.png"
        sweep_plot(st["rows"], "t", png, f"{st['method']}: accuracy vs SBG t", attack)
        md += ["### SBG distillation t", "", f"![SBG t sweep]({_rel(png, report_path)})", "",
               "| t | clean | " + attack + " |", "|---|---|---|"]
        md += [f"| {r['t']} | {r['clean']:.1f} | {r['apgd']:.1f} |" for r in st["rows"]] + [""]
    return md


def _checks(ex: Any, results: dict[str, Any]) -> list[str]:
    ac = results.get("attack_checks")
    if not ac:
        return []
    md = ["", "## Attack-strength checks", "",
          f"Most robust PAG model: **{ac['pag']}**; AT counterpart: **{ac['at']}** (seed {ac['seed']}, "
          f"{ac['norm']} eps {ex.eps(ac['norm']):g}, same {len(ex.y)} images). An attack fails the check when "
          "it finds more than 2 points below AutoAttack.", "",
          "| model | AutoAttack | attack | robust acc. | points below AA | check |", "|---|---|---|---|---|---|"]
    for m, res in ac["models"].items():
        for name, a in res["attacks"].items():
            label = f"transfer from {res['transfer_from']}" if name == "transfer" else name
            md.append(f"| {m} | {res['autoattack']:.1f} | {label} | {a['robust_accuracy']:.1f} | "
                      f"{a['below_aa']:+.1f} | {'ok' if a['ok'] else '**FAILS**'} |")
    passed = all(res["ok"] for res in ac["models"].values())
    md += ["", f"- **No attack finds more than 2 points below AutoAttack**: "
               f"{'holds' if passed else 'does NOT hold (see FAILS rows): AutoAttack overstates robustness here'}.", ""]
    return md


def _toy(ex: Any) -> list[str]:
    toy_path = ex.root / ex.p.paths.toy
    if not toy_path.is_file():
        return []
    from pagstore.evaluation.report import toy_section

    return ["", "## 2-D toy (Appendix G.1)", "",
            "Robust accuracy = exhaustive search of each point's eps-disk (polar grid, exact up to its resolution); "
            "PGD beside it is a looser upper bound (committed toy stage output, `metrics/toy.details.json`).", "",
            toy_section(json.loads(toy_path.read_text())), ""]


def _f(v: Any, digits: int) -> str:
    return "-" if not isinstance(v, (int, float)) else f"{v:.{digits}f}"


def _rel(path: Path, report: Path) -> str:
    import os

    return os.path.relpath(path, report.parent)
