"""Attack-strength checks (issue 16, item 6): does anything find much more than AutoAttack did?

On one model and the same images as its AutoAttack run: APGD-CE with 100 iterations x 5 restarts, Square
alone at 5000 queries (pyautoattack's own classes), PGD-100 (:func:`pagstore.evaluation.pgd.pgd_attack`,
step 2.5 eps / 100 from a random start) and transfer of another model's adversarial examples (e.g. the AT
model's AutoAttack outputs). Each gives per-image robust flags; the check passes when no attack's robust
accuracy is more than ``tolerance`` points (default 2) below AutoAttack's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pagstore.evaluation.pgd import NORMS, perturbation_norms, pgd_attack


def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]).argmax(1) == y[i:i + batch] for i in range(0, len(x), batch)])


def _checked(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, norm: str,
             eps: float, name: str) -> torch.Tensor:
    if len(x) and perturbation_norms(x_adv - x, norm).max().item() > eps * (1 + 1e-4) + 1e-4:
        raise RuntimeError(f"{name} {norm}: returned a perturbation larger than eps {eps}")
    return _correct(model, x_adv, y)


def apgd_flags(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, norm: str, eps: float, n_iter: int = 100,
               n_restarts: int = 5, seed: int = 0) -> torch.Tensor:
    """Robust flags (N,) bool under APGD-CE (``n_restarts`` restarts of ``n_iter`` iterations)."""
    from pyautoattack.autopgd_base import APGDAttack

    flags = _correct(model, x, y)
    idx = flags.nonzero().flatten()
    if len(idx):
        attack = APGDAttack(model, n_iter=n_iter, n_restarts=n_restarts, norm=norm, eps=float(eps), seed=seed,
                            loss="ce", device=str(x.device))
        flags[idx] = _checked(model, x[idx], attack.perturb(x[idx], y[idx]), y[idx], norm, eps, "APGD-CE")
    return flags


def square_flags(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, norm: str, eps: float,
                 n_queries: int = 5000, seed: int = 0) -> torch.Tensor:
    """Robust flags (N,) under the Square attack alone (margin loss, p_init 0.8, as in AutoAttack)."""
    from pyautoattack.square import SquareAttack

    flags = _correct(model, x, y)
    idx = flags.nonzero().flatten()
    if len(idx):
        attack = SquareAttack(model, norm=norm, n_queries=n_queries, eps=float(eps), p_init=0.8, n_restarts=1,
                              seed=seed, loss="margin", device=str(x.device))
        flags[idx] = _checked(model, x[idx], attack.perturb(x[idx], y[idx]), y[idx], norm, eps, "Square")
    return flags


def pgd_flags(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, norm: str, eps: float, steps: int = 100,
              seed: int = 0) -> torch.Tensor:
    """Robust flags (N,) under untargeted PGD on CE, ``steps`` steps of 2.5 eps / steps, random start."""
    flags = _correct(model, x, y)
    idx = flags.nonzero().flatten()
    if len(idx):
        x_adv = pgd_attack(model, x[idx], y[idx], norm=norm, eps=eps, steps=steps, step_size=2.5 * eps / steps,
                           random_start=True, seed=seed)
        flags[idx] = _checked(model, x[idx], x_adv, y[idx], norm, eps, "PGD")
    return flags


def transfer_flags(model: nn.Module, x: torch.Tensor, x_adv_other: torch.Tensor, y: torch.Tensor, *,
                   norm: str, eps: float) -> torch.Tensor:
    """Robust flags (N,): correct on the clean image and on another model's adversarial image of it."""
    return _correct(model, x, y) & _checked(model, x, x_adv_other, y, norm, eps, "transfer")


def attack_strength_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, aa_flags: torch.Tensor, *,
                           norm: str, eps: float, transfer_from: torch.Tensor | None = None,
                           tolerance: float = 2.0, apgd_iter: int = 100, apgd_restarts: int = 5,
                           square_queries: int = 5000, pgd_steps: int = 100, seed: int = 0) -> dict[str, Any]:
    """Run every check; returns {"autoattack": %, "attacks": {name: {"robust_accuracy" %, "below_aa" points,
    "ok"}}, "ok": all passed, "tolerance"}. x (N, ch, H, W) in [0, 1]; aa_flags (N,) from AutoAttack."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if aa_flags.shape != y.shape:
        raise ValueError(f"aa_flags must be ({len(y)},) like y, got {tuple(aa_flags.shape)}")
    model = model.eval()
    runs = {
        f"APGD-CE {apgd_iter} it x {apgd_restarts}": lambda: apgd_flags(
            model, x, y, norm=norm, eps=eps, n_iter=apgd_iter, n_restarts=apgd_restarts, seed=seed),
        f"Square {square_queries} queries": lambda: square_flags(
            model, x, y, norm=norm, eps=eps, n_queries=square_queries, seed=seed),
        f"PGD-{pgd_steps}": lambda: pgd_flags(model, x, y, norm=norm, eps=eps, steps=pgd_steps, seed=seed),
    }
    if transfer_from is not None:
        runs["transfer"] = lambda: transfer_flags(model, x, transfer_from, y, norm=norm, eps=eps)
    aa = aa_flags.float().mean().item() * 100
    out: dict[str, Any] = {"autoattack": aa, "norm": norm, "eps": eps, "num_images": len(y),
                           "tolerance": tolerance, "attacks": {}}
    for name, fn in runs.items():
        flags = fn()
        acc = flags.float().mean().item() * 100
        out["attacks"][name] = {"robust_accuracy": acc, "below_aa": aa - acc, "ok": aa - acc <= tolerance,
                                "flags": flags.tolist()}
    out["ok"] = all(a["ok"] for a in out["attacks"].values())
    return out
