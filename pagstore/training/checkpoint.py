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

from pagstore.checkpoint_io import CheckpointError, load_payload, save_payload
from pagstore.checkpoint_io import plain as _plain
from pagstore.models import build_model

FORMAT = "pagstore-classifier/1"


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
    save_payload(path, payload)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint dict (weights only, never arbitrary pickles); check its format."""
    return load_payload(path, FORMAT, "classifier")


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
