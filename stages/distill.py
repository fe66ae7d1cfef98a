"""Stage distill: compute a gradient store for one source (distill@oi/cm/nn, distill_sbg, distill_test).

Reads ``distill.common`` and ``distill.sources.<name>`` (and ``distill.test`` with ``--split test``,
``distill.plots`` with ``--plots``) of pipeline.yaml; builds ``--out`` (resuming it if a previous run was
interrupted; a finished store is rebuilt, since DVC only reruns a stage whose inputs changed), exports the
webdataset shards, verifies the store (the stage fails if verification fails) and draws the figures. The
work is ``pagstore.distill.build.build_store``. Example::

    python -m stages.distill --params pipeline.yaml --source sbg --prepared data/prepared \
        --diffusion models/diffusion/checkpoint.pt --out stores/sbg --plots plots/distill
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pagstore.config import ConfigError
from pagstore.errors import user_errors
from pagstore.profiles import load_effective
from pagstore.distill.config import DistillCommon, DistillPlots, DistillTest, source_params
from pagstore.sources import SOURCES


def run_distill(params_path: Path, name: str, prepared: Path, out: Path, diffusion: Path | None = None,
                plots_dir: Path | None = None, split_name: str = "train",
                classifier: Path | None = None) -> dict[str, Any]:
    """Load the sections ``name`` needs, then build, export and verify ``out``. Returns the verify report."""
    from pagstore.distill.build import build_store

    common = load_effective(params_path, "distill.common", DistillCommon)
    src = source_params(params_path, name)
    num_test = load_effective(params_path, "distill.test", DistillTest).num_test if split_name == "test" else None
    plots_cfg = load_effective(params_path, "distill.plots", DistillPlots) if plots_dir is not None else None
    return build_store(name, src, common, prepared, out, diffusion, plots_cfg, plots_dir, split_name, num_test,
                       classifier=classifier)


@user_errors("distill")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, required=True, help="pipeline.yaml")
    ap.add_argument("--source", required=True, choices=sorted(SOURCES))
    ap.add_argument("--prepared", type=Path, required=True, help="prepared data dir (train.npz, test.npz)")
    ap.add_argument("--diffusion", type=Path, default=None, help="diffusion checkpoint (sbg only)")
    ap.add_argument("--out", type=Path, required=True, help="store directory to write")
    ap.add_argument("--plots", type=Path, default=None, help="directory for the figures")
    ap.add_argument("--split", choices=["train", "test"], default="train")
    ap.add_argument("--classifier", type=Path, default=None, help="noisy-classifier checkpoint (nac only)")
    args = ap.parse_args(argv)
    try:
        run_distill(args.params, args.source, args.prepared, args.out, args.diffusion, args.plots, args.split,
                    args.classifier)
    except ConfigError as exc:
        sys.exit(f"distill: {exc}")


if __name__ == "__main__":
    main()
