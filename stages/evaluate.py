"""Stage ``evaluate@<method>``: robustness, corruptions, PAG pictures and gradient alignment of one classifier.

Reads the ``evaluate`` section and the attack budgets of the dataset profile (``datasets.<profile>.eval``),
the trained checkpoint, the prepared test split and the SBG gradients of test images; writes one metrics
JSON (with the parameters and the checkpoint's meta) and a folder of plots (APGD eps sweep CSV + PNG,
targeted large-eps PGD grid). AutoAttack state files under ``--state-dir`` let an interrupted run resume.
The work is ``pagstore.evaluation.model_eval.evaluate_checkpoint``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from pagstore.errors import user_errors
from pagstore.atomic import atomic_dir, write_json
from pagstore.config import load_section, read_yaml
from pagstore.data.profile import EvalBudget
from pagstore.evaluation.params import EvaluateParams

__all__ = ["EvaluateParams", "main"]


@user_errors("evaluate")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, required=True)
    ap.add_argument("--method", required=True)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--prepared", type=Path, required=True, help="folder holding test.npz")
    ap.add_argument("--sbg-test", type=Path, default=None, help="gradient store of SBG test gradients")
    ap.add_argument("--metrics", type=Path, required=True)
    ap.add_argument("--plots", type=Path, required=True)
    ap.add_argument("--state-dir", type=Path, default=None, help="AutoAttack resume state (kept on failure)")
    args = ap.parse_args(argv)
    from pagstore.evaluation.model_eval import evaluate_checkpoint

    params = load_section(args.params, "evaluate", EvaluateParams)
    profile = read_yaml(args.params).get("profile")
    budget = load_section(args.params, f"datasets.{profile}.eval", EvalBudget)
    with atomic_dir(args.plots) as plots:
        record = evaluate_checkpoint(args.checkpoint, args.prepared / "test.npz", params, budget, plots,
                                     method=args.method, profile=profile, sbg_test=args.sbg_test,
                                     state_dir=args.state_dir)
    write_json(args.metrics, record)
    if args.state_dir is not None:
        # The state only serves to resume an interrupted run; a finished one must not leak into the next.
        # The (empty) folder stays: it is a declared output.
        shutil.rmtree(args.state_dir, ignore_errors=True)
        args.state_dir.mkdir(parents=True, exist_ok=True)


if __name__ == "__main__":
    main()
