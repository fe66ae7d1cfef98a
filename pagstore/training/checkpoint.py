"""Self-describing classifier checkpoints, loadable with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of Python types and tensors:
  format: "pagstore-classifier/1"
  model: {name, num_classes, sample_shape, kwargs}   -- enough to rebuild it with ``build_model``
  state_dict, optimizer, scheduler                  -- weights and the state needed to resume
  meta: {method, objective, recipe, store, dataset_fingerprint, epoch, epochs, history, code_version}
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pagstore.atomic import atomic_path
from pagstore.models import build_model

FORMAT = "pagstore-classifier/1"


class CheckpointError(ValueError):
    """A classifier checkpoint is missing, unreadable or not in the expected format."""


def _plain(obj: Any) -> Any:
    """Convert containers the weights-only unpickler rejects (Counter, tuples inside meta) to plain ones."""
    if isinstance(obj, Counter):
        return {int(k): int(v) for k, v in obj.items()}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    model_config: dict[str, Any],
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> None:
    """Write the checkpoint atomically. ``model_config`` = {name, num_classes, sample_shape, kwargs}."""
    missing = {"name", "num_classes", "sample_shape", "kwargs"} - set(model_config)
    if missing:
        raise CheckpointError(f"model_config lacks {sorted(missing)}")
    payload = {
        "format": FORMAT,
        "model": _plain(model_config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": _plain(scheduler.state_dict()) if scheduler is not None else None,
        "meta": _plain(meta),
    }
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint dict (weights only, never arbitrary pickles); check its format."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: classifier checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt / unsafe files
        raise CheckpointError(f"{path}: not a readable classifier checkpoint ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: expected format {FORMAT!r}, found {found!r}")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Rebuild the model a checkpoint dict describes and load its weights (train mode)."""
    cfg = ckpt["model"]
    model = build_model(cfg["name"], int(cfg["num_classes"]), tuple(cfg["sample_shape"]), **cfg["kwargs"])
    model.load_state_dict(ckpt["state_dict"])
    return model


def restore_scheduler_state(state: dict[str, Any]) -> dict[str, Any]:
    """Undo :func:`_plain` for MultiStepLR (its milestones are a Counter)."""
    state = dict(state)
    if isinstance(state.get("milestones"), dict):
        state["milestones"] = Counter({int(k): int(v) for k, v in state["milestones"].items()})
    return state


def load_classifier(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load a trained classifier in eval mode and its meta.

    Returns:
        (model.eval(), meta) where meta has ``model`` (name, num_classes, sample_shape, kwargs), ``method``,
        ``objective`` (incl. lam), ``recipe``, ``store`` (spec or None), ``dataset_fingerprint``, ``epoch``.
    """
    ckpt = load_checkpoint(path)
    meta = dict(ckpt["meta"])
    meta["model"] = ckpt["model"]
    return model_from_checkpoint(ckpt).eval(), meta
