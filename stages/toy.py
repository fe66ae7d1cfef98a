"""Stage ``toy``: the paper's 2-D experiment (Section 5.1, Appendix G.1), vanilla vs NN-PAG over several seeds.

Reads ``toy`` of pipeline.yaml (independent of ``profile``: it generates its own toy2d data). Writes
``--out`` (the NN gradient stores ``stores/nn-seed<k>`` and the trained models ``models/<name>-seed<k>.pt``,
replaced atomically), ``--details`` (metrics/toy.details.json: per model clean / L2-PGD / eps-disk accuracy
mean, std and per-seed values, the paper's numbers, the parameters), ``--metrics`` (metrics/toy/: per model
``<model>.json`` with the means of clean and eps-disk robust accuracy, ``<model>.std.json`` their stds: what
``dvc metrics show`` lists) and ``--plots``/decision_boundaries.png (Figure 4).
The work is ``pagstore.toy.experiment.run_toy`` and ``pagstore.toy.outputs``.
Example::

    python -m stages.toy --params pipeline.yaml --out runs/toy --details metrics/toy.details.json \
        --metrics metrics/toy --plots plots/toy
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
from pagstore.metrics_files import lean_toy, toy_metrics_files
from pagstore.toy.config import ToyParams
from pagstore.toy.experiment import run_toy
from pagstore.toy.outputs import draw_figure, log_summary, save_models


def run(params_path: Path, out: Path, details: Path, plots_dir: Path, workers: int = 1,
        metrics_dir: Path | None = None) -> dict[str, Any]:
    """Run the toy experiment with the ``toy`` section of ``params_path``; write every output; return metrics.

    The full metrics go to ``details``; with ``metrics_dir``, one lean file per toy model and statistic.
    """
    params = load_section(params_path, "toy", ToyParams)
    splits = read_dataset("toy2d", dataclasses.asdict(params.data), base_dir=params_path.parent,
                          where=f"{params_path}:toy.data")
    train, test = splits["train"], splits["test"]
    with atomic_dir(out) as tmp:
        result = run_toy(params, train, test, tmp / "stores", workers=workers)
        save_models(result.models, params, tmp / "models")
    metrics = result.metrics
    metrics["workers"] = workers
    write_json(details, metrics)
    if metrics_dir is not None:
        for path, lean in toy_metrics_files(metrics_dir, lean_toy(metrics)).items():
            write_json(path, lean)
    draw_figure(result.models, metrics, params, test, plots_dir / "decision_boundaries.png")
    log_summary(metrics, params)
    return metrics


@user_errors("toy")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, required=True, help="pipeline.yaml")
    parser.add_argument("--out", type=Path, required=True, help="directory for stores and models (runs/toy)")
    parser.add_argument("--details", type=Path, required=True, help="full metrics JSON (metrics/toy.details.json)")
    parser.add_argument("--metrics", type=Path, default=None,
                        help="folder of the lean per-model metrics files DVC shows (metrics/toy)")
    parser.add_argument("--plots", type=Path, required=True, help="figure directory (plots/toy)")
    parser.add_argument("--workers", type=int, default=2,
                        help="seeds run in parallel processes (results do not depend on it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    torch.set_num_threads(1)
    try:
        run(args.params, args.out, args.details, args.plots, workers=args.workers, metrics_dir=args.metrics)
    except ConfigError as exc:
        raise SystemExit(f"toy: {exc}") from None


if __name__ == "__main__":
    main()
