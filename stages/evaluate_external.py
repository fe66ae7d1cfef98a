"""Stage ``evaluate_external@<name>``: the full evaluation of a released classifier (``external_models``).

Converts ``external_models.<name>.checkpoint`` into our checkpoint (``--out``/checkpoint.pt, with its card),
then evaluates it exactly as ``evaluate@<method>`` does. The work is ``pagstore.interop.external`` and
``pagstore.evaluation.model_eval.evaluate_checkpoint``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from pagstore.atomic import atomic_dir, write_json
from pagstore.metrics_files import lean_eval
from pagstore.config import ConfigError, from_dict, load_section, read_yaml
from pagstore.data.profile import EvalBudget
from pagstore.evaluation.params import EvaluateParams
from pagstore.interop.external import ExternalModel, convert_external


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, required=True)
    ap.add_argument("--name", required=True, help="key of external_models")
    ap.add_argument("--out", type=Path, required=True, help="folder for our converted checkpoint")
    ap.add_argument("--prepared", type=Path, required=True, help="folder holding test.npz")
    ap.add_argument("--sbg-test", type=Path, default=None,
                    help="SBG test gradients for the alignment metric, used when present (not a DVC dependency: "
                         "a user holding only released files has no diffusion model to make them)")
    ap.add_argument("--metrics", type=Path, required=True,
                    help="metrics JSON: the scalars to compare (the full record when --details is not given)")
    ap.add_argument("--details", type=Path, default=None, help="full record: parameters, meta, per-attack results")
    ap.add_argument("--plots", type=Path, required=True)
    ap.add_argument("--state-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    from pagstore.data.prepared import load_split
    from pagstore.evaluation.model_eval import evaluate_checkpoint

    pipeline = read_yaml(args.params)
    entries = pipeline.get("external_models") or {}
    if not isinstance(entries, dict) or args.name not in entries:
        raise ConfigError(f"{args.params}: external_models.{args.name} not found")
    entry = from_dict(ExternalModel, entries[args.name], where=f"external_models.{args.name}")
    params = load_section(args.params, "evaluate", EvaluateParams)
    profile = pipeline.get("profile")
    budget = load_section(args.params, f"datasets.{profile}.eval", EvalBudget)
    split = load_split(args.prepared / "test.npz")
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / "checkpoint.pt"
    convert_external(args.name, entry, ckpt, split.num_classes, split.sample_shape)
    sbg_test = args.sbg_test if args.sbg_test is not None and args.sbg_test.exists() else None
    if args.sbg_test is not None and sbg_test is None:
        print(f"{args.sbg_test} not found: no SBG alignment metric (run `dvc repro distill_test` to add it)")
    with atomic_dir(args.plots) as plots:
        record = evaluate_checkpoint(ckpt, args.prepared / "test.npz", params, budget, plots,
                                     method=f"{args.name} (external)", profile=profile, sbg_test=sbg_test,
                                     state_dir=args.state_dir)
    if args.details is not None:
        write_json(args.details, record)
    write_json(args.metrics, lean_eval(record) if args.details is not None else record)
    if args.state_dir is not None:  # as evaluate: a finished run's resume state must not leak into the next
        shutil.rmtree(args.state_dir, ignore_errors=True)
        args.state_dir.mkdir(parents=True, exist_ok=True)


if __name__ == "__main__":
    main()
