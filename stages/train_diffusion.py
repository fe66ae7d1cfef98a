"""Stage ``train_diffusion``: train the class-conditional diffusion model (C + 1 labels) on the prepared train split.

Outputs: the checkpoint (resumable: a rerun continues from its saved step when settings and data match),
a sample grid (one row per class, DDIM or respaced ancestral sampling with the EMA weights) and the loss
curve as ``step,loss`` CSV. The work is ``pagstore.improved_diffusion.recipe.train_on_split``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pagstore.errors import user_errors
from pagstore.profiles import load_effective
from pagstore.improved_diffusion.recipe import TrainDiffusionParams, settings_from_params, train_on_split

__all__ = ["TrainDiffusionParams", "main", "settings_from_params"]


@user_errors("train_diffusion")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, required=True, help="pipeline.yaml")
    parser.add_argument("--train", type=Path, required=True, help="prepared train split (data/prepared/train.npz)")
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="output checkpoint (models/diffusion/checkpoint.pt)")
    parser.add_argument("--samples", type=Path, required=True, help="output sample grid PNG")
    parser.add_argument("--loss-csv", type=Path, required=True, help="output loss curve CSV (step,loss)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    params = load_effective(args.params, "train_diffusion", TrainDiffusionParams)
    train_on_split(params, args.train, args.checkpoint, args.samples, args.loss_csv)


if __name__ == "__main__":
    main()
