"""Evaluate one classifier: AutoAttack, APGD eps sweep, corruptions, targeted PGD pictures, gradient alignment.

``evaluate_model`` works on a model in memory; ``evaluate_checkpoint`` loads a checkpoint and adds the
provenance (parameters, checkpoint hash and meta, test-split fingerprint, code version) that makes the
record self-describing. Both write their figures into a folder the caller owns (the stage makes it atomic).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pagstore.data.prepared import PreparedSplit
from pagstore.data.profile import EvalBudget
from pagstore.evaluation.params import NORM_KEYS, EvaluateParams, PictureParams, budget_eps


def select_images(split: PreparedSplit, num_images: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of the test split: x (n, ch, H, W) in [0, 1], y (n,)."""
    if split.pixel_space != "unit":
        raise ValueError(f"evaluate needs image data (pixel space 'unit'), got {split.pixel_space!r} "
                         f"with sample shape {split.sample_shape}")
    n = len(split) if num_images is None else min(num_images, len(split))
    idx = np.sort(np.random.default_rng(seed).permutation(len(split))[:n])
    return torch.from_numpy(split.as_float(idx)), torch.from_numpy(split.labels[idx])


def evaluate_model(model: nn.Module, split: PreparedSplit, params: EvaluateParams, budget: EvalBudget,
                   plots_dir: Path, *, sbg_test: Path | None = None, state_dir: Path | None = None,
                   state_key: str = "model", title: str = "",
                   train_split: PreparedSplit | None = None) -> dict[str, Any]:
    """Run every evaluation on ``model`` and write sweep.csv, sweep.png, targeted.png into ``plots_dir``.

    Returns the measurements: num_images, clean_accuracy, robust_accuracy {aa_l2, ...}, autoattack (full
    results), corruptions, pictures (attack settings), alignment, sbg_test (when given) and timing_s.
    With ``params.manifold`` and ``train_split`` the alignment also holds the closest-class cosine and the
    on-manifold fraction (:mod:`pagstore.evaluation.manifold`).
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
    if params.manifold is not None and train_split is not None:
        from pagstore.evaluation.manifold import extra_alignment_metrics

        tx, ty = torch.from_numpy(train_split.as_float()), torch.from_numpy(train_split.labels)
        out["alignment"].update(extra_alignment_metrics(model, xa, ya, tx, ty, k=params.manifold.k,
                                                        dim=params.manifold.dim))
    timing["alignment"] = time.perf_counter() - t
    out["timing_s"] = timing
    return out


def run_autoattacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: EvaluateParams,
                    budget: EvalBudget, state_dir: Path | None, state_key: str) -> dict[str, dict]:
    """AutoAttack at each norm's eps (and large eps) on x (n, ch, H, W): {"aa_l2": result dict, ...}."""
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
    """"sha256:<hex>" of a file, read in 1 MiB blocks (checkpoints can be large)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def evaluate_checkpoint(checkpoint: Path, test_split: Path, params: EvaluateParams, budget: EvalBudget,
                        plots_dir: Path, *, method: str, profile: str | None = None,
                        sbg_test: Path | None = None, state_dir: Path | None = None) -> dict[str, Any]:
    """Evaluate the classifier saved at ``checkpoint`` on ``test_split`` (a prepared .npz); return the record.

    The record is ``evaluate_model``'s measurements plus method, params, checkpoint (path, sha256, meta
    without the per-epoch history), test_split (path, fingerprint) and code_version.
    """
    import pagstore
    from pagstore.data.prepared import load_split
    from pagstore.training.checkpoint import load_classifier

    split = load_split(test_split)
    model, meta = load_classifier(checkpoint)
    ckpt_hash = file_sha256(checkpoint)
    train_path = Path(test_split).parent / "train.npz"  # the manifold metrics' neighbours (same prepared dir)
    train = load_split(train_path) if params.manifold is not None and train_path.is_file() else None
    record = evaluate_model(model, split, params, budget, plots_dir, sbg_test=sbg_test, state_dir=state_dir,
                            state_key=ckpt_hash.split(":")[1][:16], title=method, train_split=train)
    record.update({
        "method": method,
        "params": {"evaluate": asdict(params), "profile": profile, "eval_budget": asdict(budget)},
        # The per-epoch history lives in metrics/train; the rest of the meta says what made the model.
        "checkpoint": {"path": str(checkpoint), "sha256": ckpt_hash,
                       "meta": {k: v for k, v in meta.items() if k != "history"}},
        "test_split": {"path": str(test_split), "fingerprint": split.fingerprint()},
        "code_version": pagstore.__version__,
    })
    if "sbg_test" in record:
        # Recorded, not enforced: the alignment uses the store's own images, so a mismatch is only a warning.
        record["sbg_test"]["matches_test_split"] = record["sbg_test"]["dataset_fingerprint"] == split.fingerprint()
    return record
