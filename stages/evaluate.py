"""Stage ``evaluate@<method>``: robustness, corruptions, PAG pictures and gradient alignment of one classifier.

Reads the ``evaluate`` section and the attack budgets of the dataset profile (``datasets.<profile>.eval``),
the trained checkpoint, the prepared test split and the SBG gradients of test images; writes one metrics
JSON (with the parameters and the checkpoint's meta) and a folder of plots (APGD eps sweep CSV + PNG,
targeted large-eps PGD grid). AutoAttack state files under ``--state-dir`` let an interrupted run resume.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

import pagstore
from pagstore.atomic import atomic_dir, write_json
from pagstore.config import load_section, read_yaml
from pagstore.data.prepared import PreparedSplit, load_split
from pagstore.data.profile import EvalBudget

NORM_KEYS = {"L2": "eps_l2", "Linf": "eps_linf"}


def budget_eps(budget: EvalBudget, norm: str, large: bool = False) -> float:
    """The radius of ``norm`` ("L2" / "Linf") in a dataset's budget, standard or large."""
    return getattr(budget, ("large_" if large else "") + NORM_KEYS[norm])


@dataclass(frozen=True)
class SweepParams:
    """APGD-CE curve: eps = factor * the profile's eps of each norm; ``n_iter`` APGD iterations."""

    eps_factors: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
    n_iter: int = 20


@dataclass(frozen=True)
class CorruptionParams:
    """Which corruptions, the severities to report accuracy at, and the minimal-severity search."""

    names: tuple[str, ...] = ("gaussian_blur", "salt_and_pepper", "contrast_reduction", "blended_uniform_noise")
    severities: tuple[float, ...] = (0.1, 0.25, 0.5)
    steps: int = 20
    refine: int = 4


@dataclass(frozen=True)
class PictureParams:
    """Targeted PGD grid: eps = eps_factor * the profile's large eps of ``norm``."""

    num_images: int = 6
    norm: str = "L2"
    eps_factor: float = 1.5
    steps: int = 40


@dataclass(frozen=True)
class EvaluateParams:
    """The ``evaluate`` section. ``num_images``: test images attacked (null = the whole test split)."""

    num_images: int | None = 50
    seed: int = 0
    batch_size: int = 250
    device: str = "auto"                          # auto | cpu | cuda | cuda:N (pagstore.devices)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    autoattack: bool = True
    large_eps: bool = True
    alignment_images: int = 100
    sweep: SweepParams = field(default_factory=SweepParams)
    corruptions: CorruptionParams = field(default_factory=CorruptionParams)
    pictures: PictureParams = field(default_factory=PictureParams)

    def validate(self) -> None:
        from pagstore.devices import check_device

        check_device(self.device)
        if self.num_images is not None and self.num_images < 1:
            raise ValueError(f"num_images must be >= 1 or null (all), got {self.num_images}")
        if self.pictures.norm not in NORM_KEYS:
            raise ValueError(f"pictures.norm must be one of {list(NORM_KEYS)}, got {self.pictures.norm!r}")
        from pagstore.evaluation.corruptions import CORRUPTIONS

        unknown = [n for n in self.corruptions.names if n not in CORRUPTIONS]
        if unknown:
            raise ValueError(f"corruptions.names: unknown {unknown}; known: {list(CORRUPTIONS)}")


def select_images(split: PreparedSplit, num_images: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of the test split: x (n, ch, H, W) in [0, 1], y (n,)."""
    if split.pixel_space != "unit":
        raise ValueError(f"evaluate needs image data (pixel space 'unit'), got {split.pixel_space!r} "
                         f"with sample shape {split.sample_shape}")
    n = len(split) if num_images is None else min(num_images, len(split))
    idx = np.sort(np.random.default_rng(seed).permutation(len(split))[:n])
    return torch.from_numpy(split.as_float(idx)), torch.from_numpy(split.labels[idx])


def evaluate(model: nn.Module, split: PreparedSplit, params: EvaluateParams, budget: EvalBudget,
             plots_dir: Path, *, sbg_test: Path | None = None, state_dir: Path | None = None,
             state_key: str = "model", title: str = "") -> dict[str, Any]:
    """Run every evaluation on ``model`` and write the plots into ``plots_dir``; return the metrics.

    Everything runs on ``params.device`` at ``params.precision``: the model is wrapped (OnDevice) so the
    corruption, picture and alignment code, which holds CPU tensors, runs its forwards and backwards there.
    """
    from pagstore.devices import OnDevice, resolve_device
    from pagstore.evaluation import alignment, corruptions

    device = resolve_device(params.device)
    model = OnDevice(model.eval(), device, params.precision).eval()
    params = replace(params, device=str(device))  # attacks take the resolved device
    x, y = select_images(split, params.num_images, params.seed)
    timing: dict[str, float] = {}
    with torch.no_grad():
        clean = (model(x.to(params.device)).argmax(1).cpu() == y).float().mean().item()
    out: dict[str, Any] = {"num_images": len(y), "clean_accuracy": clean, "robust_accuracy": {}, "autoattack": {}}
    t = time.perf_counter()
    if params.autoattack:
        out["autoattack"] = run_autoattacks(model, x, y, params, budget, state_dir, state_key)
        out["robust_accuracy"] = {k: v["robust_accuracy"] for k, v in out["autoattack"].items()}
    timing["autoattack"] = time.perf_counter() - t
    t = time.perf_counter()
    write_sweep(model, x, y, params, budget, plots_dir, title)
    timing["sweep"] = time.perf_counter() - t
    t = time.perf_counter()
    cp = params.corruptions
    out["corruptions"] = corruptions.corruption_report(model, x, y, list(cp.names), list(cp.severities),
                                                       steps=cp.steps, refine=cp.refine, seed=params.seed)
    timing["corruptions"] = time.perf_counter() - t
    t = time.perf_counter()
    out["pictures"] = write_targeted_grid(model, x, split, params.pictures, budget, plots_dir, title)
    timing["pictures"] = time.perf_counter() - t
    t = time.perf_counter()
    xa, ya, ref = x[: params.alignment_images], y[: params.alignment_images], None
    if sbg_test is not None:
        xa, ya, ref, out["sbg_test"] = alignment.load_reference_gradients(str(sbg_test), params.alignment_images)
    out["alignment"] = alignment.alignment_metrics(model, xa, ya, ref)
    timing["alignment"] = time.perf_counter() - t
    out["timing_s"] = timing
    return out


def run_autoattacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: EvaluateParams,
                    budget: EvalBudget, state_dir: Path | None, state_key: str) -> dict[str, dict]:
    """AutoAttack at each norm's eps (and large eps): {"aa_l2": result dict, "aa_linf_large": ..., ...}."""
    from pagstore.evaluation.autoattack import run_autoattack

    results = {}
    for large in (False, True) if params.large_eps else (False,):
        for norm in NORM_KEYS:
            key = f"aa_{norm.lower()}" + ("_large" if large else "")
            eps = budget_eps(budget, norm, large)
            # The name ties a state file to model, images, norm and eps, so a resume never mixes runs.
            state = None if state_dir is None else state_dir / f"{key}-eps{eps:.6g}-n{len(y)}-{state_key}.json"
            res = run_autoattack(model, x, y, norm=norm, eps=eps, batch_size=params.batch_size,
                                 seed=params.seed, device=params.device, state_path=state)
            results[key] = res.as_dict()
    return results


def write_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: EvaluateParams,
                budget: EvalBudget, plots_dir: Path, title: str) -> None:
    """APGD-CE accuracy vs eps (factors of the profile's eps) -> sweep.csv and sweep.png."""
    from pagstore.evaluation import apgd_sweep

    eps_by_norm = {n: [f * budget_eps(budget, n) for f in params.sweep.eps_factors] for n in NORM_KEYS}
    points = apgd_sweep.robust_accuracy_curve(model, x, y, eps_by_norm, n_iter=params.sweep.n_iter,
                                              seed=params.seed, device=params.device)
    apgd_sweep.write_sweep_csv(points, plots_dir / "sweep.csv")
    apgd_sweep.plot_sweep(points, plots_dir / "sweep.png", title=title)


def write_targeted_grid(model: nn.Module, x: torch.Tensor, split: PreparedSplit, pp: PictureParams,
                        budget: EvalBudget, plots_dir: Path, title: str) -> dict[str, Any]:
    """Large-eps targeted PGD toward every class (paper Fig. 9/11 layout) -> targeted.png; returns the settings."""
    from pagstore.evaluation import pictures

    eps = pp.eps_factor * budget_eps(budget, pp.norm, large=True)
    attack = pictures.TargetedAttack(norm=pp.norm, eps=eps, steps=pp.steps, step_size=2.5 * eps / pp.steps)
    grid = pictures.targeted_grid(model, x[: pp.num_images], split.num_classes, attack)
    pictures.save_grid(grid, plots_dir / "targeted.png", col_labels=pictures.class_columns(split.class_names),
                       title=f"{title}: targeted {attack.norm} PGD, eps {attack.eps:g}")
    return asdict(attack)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


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
    from pagstore.training.checkpoint import load_classifier

    params = load_section(args.params, "evaluate", EvaluateParams)
    profile = read_yaml(args.params).get("profile")
    budget = load_section(args.params, f"datasets.{profile}.eval", EvalBudget)
    split = load_split(args.prepared / "test.npz")
    model, meta = load_classifier(args.checkpoint)
    ckpt_hash = file_sha256(args.checkpoint)
    with atomic_dir(args.plots) as plots:
        metrics = evaluate(model, split, params, budget, plots, sbg_test=args.sbg_test,
                           state_dir=args.state_dir, state_key=ckpt_hash.split(":")[1][:16], title=args.method)
    metrics.update({
        "method": args.method,
        "params": {"evaluate": asdict(params), "profile": profile, "eval_budget": asdict(budget)},
        # The per-epoch history lives in metrics/train; the rest of the meta says what made the model.
        "checkpoint": {"path": str(args.checkpoint), "sha256": ckpt_hash,
                       "meta": {k: v for k, v in meta.items() if k != "history"}},
        "test_split": {"path": str(args.prepared / "test.npz"), "fingerprint": split.fingerprint()},
        "code_version": pagstore.__version__,
    })
    if "sbg_test" in metrics:
        # Recorded, not enforced: the alignment uses the store's own images, so a mismatch is only a warning.
        metrics["sbg_test"]["matches_test_split"] = metrics["sbg_test"]["dataset_fingerprint"] == split.fingerprint()
    write_json(args.metrics, metrics)
    if args.state_dir is not None:
        # The state only serves to resume an interrupted run; a finished one must not leak into the next.
        # The (empty) folder stays: it is a declared output.
        shutil.rmtree(args.state_dir, ignore_errors=True)
        args.state_dir.mkdir(parents=True, exist_ok=True)


if __name__ == "__main__":
    main()
