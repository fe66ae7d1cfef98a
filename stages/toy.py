"""Stage ``toy``: the paper's 2-D experiment (Section 5.1, Appendix G.1), vanilla vs NN-PAG over several seeds.

Reads ``toy`` of pipeline.yaml (independent of ``profile``: it generates its own toy2d data). Writes
``--out`` (the NN gradient stores ``stores/nn-seed<k>`` and the trained models ``models/<name>-seed<k>.pt``,
replaced atomically), ``--metrics`` (metrics/toy.json: per model clean / L2-PGD accuracy mean, std and
per-seed values, the paper's numbers, the parameters) and ``--plots``/decision_boundaries.png (Figure 4).
Example::

    python -m stages.toy --params pipeline.yaml --out runs/toy --metrics metrics/toy.json --plots plots/toy
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from pagstore.errors import user_errors
from pagstore.atomic import atomic_dir, write_json
from pagstore.config import ConfigError, load_section
from pagstore.data.registry import read_dataset
from pagstore.toy.config import ToyParams
from pagstore.toy.experiment import run_toy
from pagstore.toy.plots import plot_decision_boundaries

log = logging.getLogger("stages.toy")


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


def run(params_path: Path, out: Path, metrics_path: Path, plots_dir: Path, workers: int = 1) -> dict[str, Any]:
    """Run the toy experiment with the ``toy`` section of ``params_path``; write every output; return metrics."""
    params = load_section(params_path, "toy", ToyParams)
    splits = read_dataset("toy2d", dataclasses.asdict(params.data), base_dir=params_path.parent,
                          where=f"{params_path}:toy.data")
    train, test = splits["train"], splits["test"]
    with atomic_dir(out) as tmp:
        result = run_toy(params, train, test, tmp / "stores", workers=workers)
        save_models(result.models, params, tmp / "models")
    metrics = result.metrics
    metrics["workers"] = workers
    write_json(metrics_path, metrics)
    seed = params.plot_seed
    titles = {"vanilla": "Vanilla (CE)", "nn-pag": f"NN-PAG (CE + {params.lam:g} x PAG)"}
    plot_decision_boundaries(
        {titles[k]: result.models[k][seed] for k in titles}, test.images, test.labels,
        plots_dir / "decision_boundaries.png", subtitles={titles[k]: subtitle(metrics[k], params) for k in titles},
        eps=params.attack.eps,
    )
    for name in ("vanilla", "nn-pag"):
        m, paper = metrics[name], metrics["paper"][name]
        grid = ""
        if "robust_grid_mean" in m:
            grid = f", grid-searched {m['robust_grid_mean']:.1f} +- {m['robust_grid_std']:.1f}"
        log.info("%-8s clean %.1f +- %.1f (paper %.1f)  PGD %.1f +- %.1f (paper %.1f)%s", name, m["clean_mean"],
                 m["clean_std"], paper["clean"], m["robust_mean"], m["robust_std"], paper["robust"], grid)
    log.info("toy: %d seeds in %.1f s", len(params.seeds), metrics["seconds"])
    return metrics


@user_errors("toy")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, required=True, help="pipeline.yaml")
    parser.add_argument("--out", type=Path, required=True, help="directory for stores and models (runs/toy)")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON (metrics/toy.json)")
    parser.add_argument("--plots", type=Path, required=True, help="figure directory (plots/toy)")
    parser.add_argument("--workers", type=int, default=2,
                        help="seeds run in parallel processes (results do not depend on it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    torch.set_num_threads(1)
    try:
        run(args.params, args.out, args.metrics, args.plots, workers=args.workers)
    except ConfigError as exc:
        raise SystemExit(f"toy: {exc}") from None


if __name__ == "__main__":
    main()
