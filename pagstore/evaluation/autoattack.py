"""AutoAttack (standard version: APGD-CE, APGD-T, FAB-T, Square) through the official ``pyautoattack``.

The attacks run one at a time, each on the images still robust, with the standard version's settings
(pyautoattack's own ``AutoAttack`` object runs each one). After every attack the per-image robust flags are
saved to ``state_path`` (JSON, written atomically), so an interrupted evaluation resumes at the next
attack. pyautoattack 0.2.0's own ``state_path`` cannot resume: it serialises the set of attacks with
``str()`` and then compares that string to a set, so every resume fails with "different set of attacks".

Every result is checked: returned perturbations within eps (a broken wrapper or dtype issue would silently
inflate robustness), robust <= clean accuracy, and robust-flagged images are classified correctly.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pagstore.atomic import write_json
from pagstore.evaluation.pgd import NORMS, perturbation_norms

# Float slack for the eps check: AutoAttack projects in float32 and FAB's projections are iterative.
EPS_TOLERANCE = 1e-4
STANDARD_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")
STATE_VERSION = 1


class AttackCheckError(RuntimeError):
    """An attack result violates its own contract (perturbation beyond eps, robust > clean accuracy)."""


@dataclass(frozen=True)
class AutoAttackResult:
    """Outcome of one AutoAttack run on ``num_images`` images."""

    norm: str
    eps: float
    num_images: int
    clean_accuracy: float
    robust_accuracy: float
    max_perturbation: float
    attacks: tuple[str, ...]
    resumed: bool
    # Robust accuracy after each attack, in order (the AutoAttack log's numbers).
    after_attack: dict[str, float] = field(default_factory=dict)
    # The adversarial images (N, ch, H, W); images broken before a resume are returned unchanged.
    x_adv: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-able summary (everything but ``x_adv``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "x_adv"}


def run_autoattack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str,
    eps: float,
    batch_size: int = 250,
    seed: int = 0,
    device: str = "cpu",
    state_path: str | Path | None = None,
) -> AutoAttackResult:
    """Run standard AutoAttack at radius ``eps`` and return checked clean and robust accuracy.

    Args:
        model: logits model on [0, 1] images, in eval mode.
        x: (N, ch, H, W) float32 images in [0, 1]; y: (N,) int64 labels.
        norm: "L2" or "Linf".
        state_path: JSON file of per-image robust flags; if it exists the run resumes from it, skipping
            finished attacks. Give a path that identifies model, data, norm and eps (they are checked).

    Raises:
        ValueError: bad shapes, values outside [0, 1], unknown norm, eps < 0.
        AttackCheckError: a returned perturbation exceeds eps, robust accuracy exceeds clean accuracy, or
            the state file belongs to another run.
    """
    from pyautoattack import AutoAttack  # lazy: keep `import pagstore` light

    _check_inputs(x, y, norm, eps)
    x, y = x.detach().cpu(), y.detach().cpu()
    identity = {"version": STATE_VERSION, "norm": norm, "eps": float(eps), "num_images": int(len(y)),
                "seed": seed, "attacks": list(STANDARD_ATTACKS)}
    state = _load_state(Path(state_path), identity) if state_path is not None else None
    resumed = state is not None
    with torch.no_grad():
        clean_flags = _predict(model, x, batch_size, device) == y
    if state is None:
        state = {**identity, "done": [], "robust": clean_flags.tolist(), "after_attack": {}}
    robust = torch.tensor(state["robust"], dtype=torch.bool)
    x_adv = x.clone()
    num_classes = int(model(x[:1].to(device)).shape[1])
    for name in STANDARD_ATTACKS:
        if name in state["done"]:
            continue
        idx = torch.nonzero(robust).flatten()
        if len(idx):
            attack = AutoAttack(model, norm=norm, eps=float(eps), version="standard", device=device, seed=seed)
            attack.logger.setLevel(logging.WARNING)
            # The standard version targets the 9 runner-up classes; fewer classes have fewer targets.
            attack.apgd_targeted.n_target_classes = min(9, num_classes - 1)
            attack.fab.n_target_classes = min(9, num_classes - 1)
            attack.attacks_to_run = [name]
            adv, _ = attack.run_standard_evaluation(x[idx], y[idx], batch_size=batch_size)
            adv = adv.detach().cpu()
            with torch.no_grad():
                broken = _predict(model, adv, batch_size, device) != y[idx]
            x_adv[idx[broken]] = adv[broken]
            robust[idx[broken]] = False
        state["done"].append(name)
        state["robust"] = robust.tolist()
        state["after_attack"][name] = robust.float().mean().item()
        if state_path is not None:
            write_json(state_path, state)
    norms = perturbation_norms(x_adv - x, norm)
    result = AutoAttackResult(
        norm=norm, eps=float(eps), num_images=int(len(y)), clean_accuracy=clean_flags.float().mean().item(),
        robust_accuracy=robust.float().mean().item(), max_perturbation=float(norms.max()) if len(norms) else 0.0,
        attacks=STANDARD_ATTACKS, resumed=resumed, after_attack=dict(state["after_attack"]), x_adv=x_adv,
    )
    check_attack_result(result)
    if (robust & ~clean_flags).any():
        raise AttackCheckError(f"{state_path}: an image flagged robust is misclassified without attack")
    return result


def check_attack_result(result: AutoAttackResult) -> None:
    """Raise AttackCheckError unless max perturbation <= eps (+ tolerance) and robust <= clean accuracy."""
    if result.max_perturbation > result.eps * (1 + EPS_TOLERANCE) + EPS_TOLERANCE:
        raise AttackCheckError(
            f"AutoAttack {result.norm}: max perturbation {result.max_perturbation:.6f} exceeds eps {result.eps}"
        )
    if result.robust_accuracy > result.clean_accuracy + 1e-12:
        raise AttackCheckError(
            f"AutoAttack {result.norm} eps {result.eps}: robust accuracy {result.robust_accuracy} "
            f"> clean accuracy {result.clean_accuracy}"
        )


def _predict(model: nn.Module, x: torch.Tensor, batch_size: int, device: str) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)])


def _load_state(path: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state if ``path`` exists and belongs to this run (same norm, eps, images...), else None."""
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AttackCheckError(f"{path}: AutoAttack state is not valid JSON ({exc}); delete it") from None
    for key, value in identity.items():
        if state.get(key) != value:
            raise AttackCheckError(
                f"{path}: AutoAttack state has {key}={state.get(key)!r}, this run has {value!r} "
                "(a state file of a different run? delete it)"
            )
    return state


def _check_inputs(x: torch.Tensor, y: torch.Tensor, norm: str, eps: float) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if x.dim() != 4:
        raise ValueError(
            f"AutoAttack needs images (N, ch, H, W) in [0, 1], got shape {tuple(x.shape)} "
            "(for vector data use pagstore.evaluation.pgd.pgd_attack with clip=None)"
        )
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must be ({x.shape[0]},), got {tuple(y.shape)}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"images must lie in [0, 1], got range [{x.min().item()}, {x.max().item()}]")
