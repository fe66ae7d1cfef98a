"""Outputs of the toy experiment: per-seed model checkpoints, Figure 4 (decision boundaries) and a log summary."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from pagstore.data.prepared import PreparedSplit
from pagstore.toy.config import ToyParams
from pagstore.toy.plots import plot_decision_boundaries

log = logging.getLogger("pagstore.toy")


def save_models(models: dict[str, dict[int, torch.nn.Module]], params: ToyParams, out: Path) -> None:
    """One checkpoint per model and seed (plain types and tensors: loads with ``weights_only=True``)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, by_seed in models.items():
        for seed, model in by_seed.items():
            torch.save({"state_dict": model.state_dict(), "model": "mlp", "num_classes": 2, "sample_shape": [2],
                        "model_kwargs": {"hidden": params.hidden}, "method": name, "seed": seed},
                       out / f"{name}-seed{seed}.pt")


def subtitle(m: dict[str, Any], params: ToyParams) -> str:
    """Panel subtitle: the plotted seed's accuracies and the mean over seeds (L2 eps = attack eps)."""
    i = params.seeds.index(params.plot_seed)
    grid = f", grid {m['robust_grid_per_seed'][i]:.1f}%" if "robust_grid_per_seed" in m else ""
    return (f"seed {params.plot_seed}: clean {m['clean_per_seed'][i]:.1f}%, L2 eps {params.attack.eps:g}: "
            f"PGD {m['robust_per_seed'][i]:.1f}%{grid}\n"
            f"{len(params.seeds)} seeds: PGD {m['robust_mean']:.1f} +- {m['robust_std']:.1f}%")


def draw_figure(models: dict[str, dict[int, torch.nn.Module]], metrics: dict[str, Any], params: ToyParams,
                test: PreparedSplit, path: Path) -> None:
    """Figure 4: the vanilla and NN-PAG models of ``params.plot_seed`` over the test points (n, 2)."""
    seed = params.plot_seed
    titles = {"vanilla": "Vanilla (CE)", "nn-pag": f"NN-PAG (CE + {params.lam:g} x PAG)"}
    plot_decision_boundaries(
        {titles[k]: models[k][seed] for k in titles}, test.images, test.labels,
        path, subtitles={titles[k]: subtitle(metrics[k], params) for k in titles}, eps=params.attack.eps,
    )


def log_summary(metrics: dict[str, Any], params: ToyParams) -> None:
    """One line per model: our mean +- std beside the paper's numbers."""
    for name in ("vanilla", "nn-pag"):
        m, paper = metrics[name], metrics["paper"][name]
        grid = ""
        if "robust_grid_mean" in m:
            grid = f", grid-searched {m['robust_grid_mean']:.1f} +- {m['robust_grid_std']:.1f}"
        log.info("%-8s clean %.1f +- %.1f (paper %.1f)  PGD %.1f +- %.1f (paper %.1f)%s", name, m["clean_mean"],
                 m["clean_std"], paper["clean"], m["robust_mean"], m["robust_std"], paper["robust"], grid)
    log.info("toy: %d seeds in %.1f s", len(params.seeds), metrics["seconds"])
