"""Stage ``report``: every evaluated model in one table beside the paper's rows, plus plots and JSON.

Reads ``metrics/eval/<method>.json`` for every method of ``train.methods`` and ``train.plain_methods``
(methods without a metrics file are listed as missing, not fatal), the toy metrics when present, and,
when several lambdas of one method were trained, their checkpoints for the lambda-sweep picture (Fig. 5).
Writes ``reports/results.md``, ``metrics/report.json`` and ``plots/report/*.png``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pagstore.atomic import atomic_dir, write_bytes, write_json
from pagstore.config import load_section, read_yaml
from pagstore.evaluation import report as rep

DATASET_WORDS = {
    "digits": "scikit-learn handwritten digits, upsampled to 16x16x1",
    "cifar10": "CIFAR-10 32x32x3", "cifar100": "CIFAR-100 32x32x3", "stl10": "STL-10",
    "tinyimagenet": "Tiny ImageNet 64x64x3",
}


@dataclass(frozen=True)
class LambdaSweepParams:
    """Fig. 5 picture: test image ``image_index`` pushed toward every class by each lambda's model."""

    image_index: int = 0
    norm: str = "L2"
    eps_factor: float = 1.5
    steps: int = 40


@dataclass(frozen=True)
class ReportParams:
    """The ``report`` section: the summary plot's axes and the lambda-sweep picture settings."""

    alignment_metric: str = "sbg_cos_mean"
    robust_metric: str = "aa_l2"
    lambda_sweep: LambdaSweepParams = field(default_factory=LambdaSweepParams)

    def validate(self) -> None:
        if self.alignment_metric not in rep.ALIGN_KEYS:
            raise ValueError(f"alignment_metric must be one of {rep.ALIGN_KEYS}, got {self.alignment_metric!r}")
        if self.robust_metric not in rep.ROBUST_KEYS:
            raise ValueError(f"robust_metric must be one of {rep.ROBUST_KEYS}, got {self.robust_metric!r}")


def method_names(pipeline: dict[str, Any]) -> list[str]:
    """Methods trained by the pipeline: keys (or items) of train.methods then train.plain_methods."""
    train = pipeline.get("train") or {}
    names: list[str] = []
    for key in ("methods", "plain_methods"):
        group = train.get(key) or {}
        names.extend(group if isinstance(group, (dict, list)) else [])
    return [str(n) for n in names]


def lambda_groups(pipeline: dict[str, Any]) -> dict[str, list[tuple[float, str]]]:
    """Methods that differ only in ``lam``: {group label: [(lam, method), ...] sorted by lam}, 2+ lambdas each."""
    groups: dict[str, list[tuple[float, str]]] = {}
    train = pipeline.get("train") or {}
    for key in ("methods", "plain_methods"):
        for method, cfg in (train.get(key) or {}).items() if isinstance(train.get(key), dict) else []:
            if isinstance(cfg, dict) and isinstance(cfg.get("lam"), (int, float)):
                label = ", ".join(f"{k}={v}" for k, v in sorted(cfg.items()) if k != "lam")
                groups.setdefault(label, []).append((float(cfg["lam"]), str(method)))
    return {k: sorted(v) for k, v in groups.items() if len({lam for lam, _ in v}) > 1}


def draw_lambda_sweeps(params: LambdaSweepParams, pipeline: dict[str, Any], models_dir: Path,
                       prepared: Path, rows: list[dict[str, Any]], out_dir: Path) -> list[str]:
    """Write ``lambda_sweep_<i>.png`` for each lambda group whose checkpoints exist; return the file names."""
    from pagstore.data.prepared import load_split
    from pagstore.evaluation.pictures import TargetedAttack, class_columns, lambda_sweep_grid, save_grid
    from pagstore.training.checkpoint import load_classifier

    import torch

    groups = lambda_groups(pipeline)
    if not groups:
        return []
    split = load_split(prepared / "test.npz")
    profile = pipeline.get("profile")
    budget = ((pipeline.get("datasets") or {}).get(profile) or {}).get("eval") or {}
    eps = params.eps_factor * float(budget[f"large_eps_{params.norm.lower()}"])
    attack = TargetedAttack(norm=params.norm, eps=eps, steps=params.steps, step_size=2.5 * eps / params.steps)
    x = torch.from_numpy(split.as_float(slice(params.image_index, params.image_index + 1)))
    robust = {r["method"]: r.get("aa_l2") for r in rows}
    written = []
    for i, (label, members) in enumerate(sorted(groups.items())):
        present = [(lam, m) for lam, m in members if (models_dir / m / "checkpoint.pt").is_file()]
        if len(present) < 2:
            continue
        models = [load_classifier(models_dir / m / "checkpoint.pt")[0] for _, m in present]
        grid = lambda_sweep_grid(models, x, split.num_classes, attack)
        row_labels = [f"lam {lam:g}\nAA L2 {rep._pct(robust.get(m))}" for lam, m in present]
        name = f"lambda_sweep_{i}.png"
        save_grid(grid, out_dir / name, col_labels=class_columns(split.class_names), row_labels=row_labels,
                  title=f"{label}: targeted {attack.norm} PGD, eps {eps:g}")
        written.append(name)
    return written


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def all_correlations(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Pearson correlation across models of every robust metric with every alignment metric ("aa_l2~etmann_mean")."""
    out = {}
    for r_key in rep.ROBUST_KEYS:
        for a_key in rep.ALIGN_KEYS:
            pairs = [(r[a_key], r[r_key]) for r in rows
                     if _is_num(r.get(a_key)) and _is_num(r.get(r_key))]
            out[f"{r_key}~{a_key}"] = rep.pearson([a for a, _ in pairs], [b for _, b in pairs])
    return out


def build_report(params: ReportParams, pipeline: dict[str, Any], eval_dir: Path,
                 toy_path: Path | None) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """Return (markdown, report JSON, table rows) from the evaluate metrics under ``eval_dir``."""
    rows, missing = [], []
    for method in method_names(pipeline):
        path = eval_dir / f"{method}.json"
        if path.is_file():
            rows.append(rep.summarize(method, rep.read_metrics(path)))
        else:
            missing.append(method)
    profile = pipeline.get("profile", "?")
    budget = ((pipeline.get("datasets") or {}).get(profile) or {}).get("eval") or {}
    num_images = sorted({r["num_images"] for r in rows if r.get("num_images")})
    models = sorted({str(r["model"]) for r in rows if r.get("model")}) or ["?"]
    xs = [(r[params.alignment_metric], r[params.robust_metric]) for r in rows
          if _is_num(r.get(params.alignment_metric)) and _is_num(r.get(params.robust_metric))]
    corr = rep.pearson([a for a, _ in xs], [b for _, b in xs])
    md = [
        "# Results", "",
        "Ours beside the paper (Ganz, Kawar & Elad, ICML 2023). **The settings differ**: the numbers are not "
        "expected to match, only the ordering of methods is comparable.", "",
        f"- **A {'/'.join(map(str, num_images)) or '?'}-image smoke run**, one training seed per method: at 40% "
        "robust accuracy a 50-image figure is +-14 points (95%), so close rows cannot be told apart. Seeds, "
        "bootstrap intervals, controls, sweeps and attack checks: [reports/evidence.md](evidence.md).",
        f"- **Ours**: dataset `{profile}` ({DATASET_WORDS.get(profile, profile)}), model {', '.join(models)}, "
        f"{', '.join(map(str, num_images)) or '?'} test images; AutoAttack standard at L2 eps "
        f"{budget.get('eps_l2', '?')}, Linf eps {budget.get('eps_linf', '?')}; large eps L2 "
        f"{budget.get('large_eps_l2', '?')}, Linf {budget.get('large_eps_linf', '?')}.",
        "- **Paper**: CIFAR-10 32x32x3, ResNet-18 (TRADES rows: WRN-34-10), full 10k test set; AutoAttack "
        "standard at L2 eps 0.5, Linf eps 8/255; large eps L2 1.0, Linf 16/255.",
        "- Accuracies in %. SBG cos: mean cosine between the model's input-gradients and the SBG gradients "
        "of held-out test images (all classes); Etmann: |<x, grad logit>| / (|x| |grad|).", "",
        rep.results_table(rows), "",
        f"Pearson correlation of {params.robust_metric} with {params.alignment_metric} across models: "
        f"{'-' if corr is None else f'{corr:.3f}'} ({len(xs)} models).", "",
        "## Non-norm-bounded attacks", "",
        "Ours: median minimal severity in [0, 1] that changes the prediction (higher = more robust; "
        "foolbox-style linear + binary search). Paper (Table 6): foolbox robust accuracy (%), ResNet-18 "
        "CIFAR-10, at budgets the paper does not state: the two measure different quantities.", "",
        rep.corruption_table(rows), "",
    ]
    toy = rep.read_metrics(toy_path) if toy_path is not None and toy_path.is_file() else None
    if toy is not None:
        md += ["## 2-D toy (Appendix G.1)", "",
               "Paper: both models 100% clean; L2 PGD eps 15 (10 steps of 2): vanilla 0.0%, NN-PAG 75.5% "
               "(accuracies in %).", "",
               "Robust accuracy is the exhaustive search of each test point's eps-disk (a polar grid, exact "
               "in 2-D up to the grid); PGD beside it misses boundaries and is only an upper bound.", "",
               rep.toy_section(toy), ""]
    if missing:
        md += [f"Not evaluated (no metrics file): {', '.join(missing)}.", ""]
    report = {"profile": profile, "eval_budget": budget, "params": asdict(params),
              "correlations": all_correlations(rows),
              "models": {r["method"]: r for r in rows}, "missing": missing,
              "correlation": {"x": params.alignment_metric, "y": params.robust_metric, "pearson": corr,
                              "num_models": len(xs)},
              "toy": toy}
    return "\n".join(md), report, rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, required=True)
    ap.add_argument("--eval-dir", type=Path, required=True, help="folder of metrics/eval/<method>.json")
    ap.add_argument("--toy", type=Path, default=None, help="toy metrics JSON (optional)")
    ap.add_argument("--models", type=Path, default=None, help="models/classifiers, for the lambda-sweep picture")
    ap.add_argument("--prepared", type=Path, default=None, help="data/prepared, for the lambda-sweep picture")
    ap.add_argument("--markdown", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True)
    ap.add_argument("--plots", type=Path, required=True)
    args = ap.parse_args(argv)
    params = load_section(args.params, "report", ReportParams)
    md, report, rows = build_report(params, read_yaml(args.params), args.eval_dir, args.toy)
    with atomic_dir(args.plots) as plots:
        rep.plot_robust_vs_alignment(rows, params.alignment_metric, params.robust_metric,
                                     plots / "robust_vs_alignment.png")
        sweeps = []
        if args.models is not None and args.prepared is not None:
            sweeps = draw_lambda_sweeps(params.lambda_sweep, read_yaml(args.params), args.models, args.prepared,
                                        rows, plots)
    rel = Path(os.path.relpath(args.plots, args.markdown.parent))
    md += f"\n## Plots\n\n![robust accuracy vs alignment]({rel / 'robust_vs_alignment.png'})\n"
    for name in sweeps:
        md += f"\n![lambda sweep (Fig. 5 layout)]({rel / name})\n"
    report["lambda_sweeps"] = sweeps
    write_json(args.metrics, report)
    write_bytes(args.markdown, (md + "\n").encode())


if __name__ == "__main__":
    main()
