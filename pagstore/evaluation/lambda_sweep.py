"""Fig. 5 picture: one test image pushed toward every class by each model of a lambda group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pagstore.evaluation import report as rep
from pagstore.evaluation.results import LambdaSweepParams, lambda_groups


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
