"""Stage ``toy``: the paper's 2-D experiment (Section 5.1, Appendix G.1), vanilla vs NN-PAG over several seeds.

Reads ``toy`` of pipeline.yaml (independent of ``profile``: it generates its own toy2d data). Writes
``--out`` (the NN gradient stores ``stores/nn-seed<k>`` and the trained models ``models/<name>-seed<k>.pt``,
replaced atomically), ``--metrics`` (metrics/toy.json: per model clean / L2-PGD accuracy mean, std and
per-seed values, the paper's numbers, the parameters) and ``--plots``/decision_boundaries.png (Figure 4).
The work is ``pagstore.toy.experiment.run_toy`` and ``pagstore.toy.outputs``.
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
from pagstore.toy.outputs import draw_figure, log_summary, save_models


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
    draw_figure(result.models, metrics, params, test, plots_dir / "decision_boundaries.png")
    log_summary(metrics, params)
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
