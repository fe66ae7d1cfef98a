"""Build the results report: every evaluated model in one table beside the paper's rows, plus plots and JSON.

``build_report`` reads ``<eval_dir>/<method>.json`` (or the full record beside it, ``<method>.details.json``)
for every method of ``train.methods`` and
``train.plain_methods`` (methods without a metrics file are listed as missing, not fatal) and the toy metrics
when present; ``write_report_plots`` draws the summary scatter and, when several lambdas of one method were
trained, the lambda-sweep picture (Fig. 5), and returns the markdown that links them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pagstore.evaluation import report as rep
from pagstore.metrics_files import details_path

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
    from pagstore.interop.external import METRICS_PREFIX, external_names

    rows, missing = [], []
    for method in method_names(pipeline):
        path = eval_dir / f"{method}.json"
        if path.is_file() or details_path(path).is_file():
            rows.append(rep.summarize(method, rep.read_metrics(path)))
        else:
            missing.append(method)
    for name in external_names(pipeline):  # released models (evaluate_external@<name>), labelled as such
        path = eval_dir / f"{METRICS_PREFIX}{name}.json"
        if path.is_file() or details_path(path).is_file():  # evaluate_external writes lean + details too
            rows.append({**rep.summarize(f"{name} (external)", rep.read_metrics(path)), "external": True})
        else:
            missing.append(f"{name} (external)")
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
    toy = None
    if toy_path is not None and (toy_path.is_file() or details_path(toy_path).is_file()):
        toy = rep.read_metrics(toy_path)
    if toy is not None:
        md += ["## 2-D toy (Appendix G.1)", "",
               "Paper: both models 100% clean; L2 PGD eps 15 (10 steps of 2): vanilla 0.0%, NN-PAG 75.5% "
               "(accuracies in %).", "",
               "Robust accuracy is the exhaustive search of each test point's eps-disk (a polar grid: the tightest "
               "figure, exact up to the grid's resolution); PGD beside it misses boundaries and is a looser upper bound.", "",
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


def write_report_plots(params: ReportParams, pipeline: dict[str, Any], rows: list[dict[str, Any]],
                       plots_dir: Path, plots_link: Path, models_dir: Path | None = None,
                       prepared: Path | None = None) -> tuple[str, list[str]]:
    """Draw the report's figures into ``plots_dir``; return (markdown "## Plots" section, lambda-sweep files).

    ``plots_link``: the plots folder as the markdown links it (relative to results.md; ``plots_dir`` may be
    a temporary folder renamed into place later). The lambda sweeps
    need ``models_dir`` (models/classifiers) and ``prepared`` (data/prepared); without them none is drawn.
    """
    rep.plot_robust_vs_alignment(rows, params.alignment_metric, params.robust_metric,
                                 plots_dir / "robust_vs_alignment.png")
    sweeps: list[str] = []
    if models_dir is not None and prepared is not None:
        from pagstore.evaluation.lambda_sweep import draw_lambda_sweeps

        sweeps = draw_lambda_sweeps(params.lambda_sweep, pipeline, models_dir, prepared, rows, plots_dir)
    rel = plots_link
    md = f"\n## Plots\n\n![robust accuracy vs alignment]({rel / 'robust_vs_alignment.png'})\n"
    for name in sweeps:
        md += f"\n![lambda sweep (Fig. 5 layout)]({rel / name})\n"
    return md, sweeps
