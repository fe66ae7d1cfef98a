"""Self-describing diffusion checkpoints: weights, EMA weights, optimiser state and everything that made them.

The file holds only plain Python types and tensors, so ``torch.load(path, weights_only=True)`` reads it;
it is written atomically (a crash mid-save leaves the previous checkpoint intact).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

import pagstore
from pagstore.checkpoint_io import CheckpointError, load_payload, save_payload
from pagstore.checkpoint_io import plain as _plain
from pagstore.improved_diffusion.respace import SpacedDiffusion
from pagstore.improved_diffusion.script_util import create_model_and_diffusion, model_and_diffusion_defaults
from pagstore.improved_diffusion.unet import UNetModel

FORMAT = "pagstore.improved_diffusion.checkpoint/1"
_WEIGHT_KEYS = ("model", "ema", "optimizer")


def save_checkpoint(path: str | Path, model: nn.Module, ema_state: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer | None, step: int, config: dict[str, Any],
                    dataset_fingerprint: str, **extra: Any) -> None:
    """Write a checkpoint to ``path`` atomically.

    Args:
        model: the trained network (its raw weights).
        ema_state: EMA weights, same keys/shapes as ``model.state_dict()``.
        optimizer: its state is kept so training resumes exactly; None for export-only checkpoints.
        step: optimisation steps done.
        config: all ``create_model_and_diffusion`` kwargs (``num_classes`` = C + 1).
        dataset_fingerprint: fingerprint of the training split.
        extra: further plain-typed metadata (class names, training settings, loss history, ...).
    """
    unknown = sorted(set(config) - set(model_and_diffusion_defaults()))
    if unknown:
        raise CheckpointError(f"config has unknown key(s) {unknown}")
    clash = sorted(set(extra) & {"format", "step", "config", "dataset_fingerprint", "num_classes", *_WEIGHT_KEYS})
    if clash:
        raise CheckpointError(f"extra metadata may not override {clash}")
    payload = {
        "format": FORMAT,
        "code_version": pagstore.__version__,
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "ema": {k: v.detach().cpu().clone() for k, v in ema_state.items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": int(step),
        "config": _plain(config),
        "dataset_fingerprint": str(dataset_fingerprint),
        "num_classes": config.get("num_classes"),
        **{k: _plain(v) for k, v in extra.items()},
    }
    save_payload(path, payload)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dictionary (weights included), loaded with ``weights_only=True``."""
    return load_payload(path, FORMAT, "diffusion", hint="run `dvc repro train_diffusion`")


def load_checkpoint(path: str | Path, ema: bool = True) -> tuple[UNetModel, SpacedDiffusion, dict[str, Any]]:
    """Rebuild ``(model.eval(), diffusion, meta)`` from a checkpoint (EMA weights unless ``ema=False``).

    ``meta`` has ``config``, ``dataset_fingerprint``, ``num_classes`` (C + 1; label C = "no class"),
    ``step`` and the extra metadata saved with it (weights and optimiser state left out).
    """
    raw = read_checkpoint(path)
    model, diffusion = create_model_and_diffusion(**raw["config"])
    try:
        model.load_state_dict(raw["ema" if ema else "model"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the recorded config: {exc}") from None
    meta = {k: v for k, v in raw.items() if k not in _WEIGHT_KEYS}
    return model.eval(), diffusion, meta
