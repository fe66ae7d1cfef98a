"""Classifier registry: names users type in ``pipeline.yaml`` map to builder functions.

Every classifier takes model-space float input (B, *S) -- images in [0, 1], or raw vectors -- and returns
logits (B, C). Per-dataset normalisation lives inside the model as fixed buffers (:class:`Normalize`), so
attack budgets and stored gradients are always in [0, 1] pixel space.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator adding ``builder(num_classes, sample_shape, **kw) -> nn.Module`` under ``name``."""

    def wrap(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} registered twice")
        _REGISTRY[name] = builder
        return builder

    return wrap


def model_names() -> list[str]:
    """All registered model names, sorted."""
    return sorted(_REGISTRY)


class Normalize(nn.Module):
    """Fixed per-channel (or per-feature) affine normalisation ``(x - mean) / std``, stored as buffers.

    ``mean``/``std`` of length ch broadcast over (B, ch, H, W); for vectors (B, D) they have length D or 1.
    """

    def __init__(self, mean: Sequence[float] | None, std: Sequence[float] | None, image: bool) -> None:
        super().__init__()
        mean_t = torch.tensor(list(mean) if mean is not None else [0.0], dtype=torch.float32)
        std_t = torch.tensor(list(std) if std is not None else [1.0], dtype=torch.float32)
        if mean_t.shape != std_t.shape:
            raise ValueError(f"normalisation mean {list(mean_t.shape)} and std {list(std_t.shape)} differ in length")
        if (std_t <= 0).any():
            raise ValueError(f"normalisation std must be > 0, got {std_t.tolist()}")
        shape = (1, -1, 1, 1) if image else (1, -1)
        self.register_buffer("mean", mean_t.reshape(shape))
        self.register_buffer("std", std_t.reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """``net(normalize(x))``: the object every registry builder returns. ``x`` (B, *S) -> logits (B, C)."""

    def __init__(self, net: nn.Module, normalize: Normalize) -> None:
        super().__init__()
        self.normalize = normalize
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def build_model(
    name: str,
    num_classes: int,
    sample_shape: Sequence[int],
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **kw: Any,
) -> Classifier:
    """Build classifier ``name`` for inputs (B, *sample_shape) and ``num_classes`` logits.

    Args:
        name: a registry key (see :func:`model_names`).
        num_classes: C, the number of logits.
        sample_shape: (ch, H, W) for images or (D,) for vectors.
        mean, std: fixed normalisation inside the model (per channel for images); None = identity.
        **kw: family-specific options (e.g. ``hidden`` for ``mlp``, ``width`` for ``small-cnn``).

    Raises:
        ValueError: unknown name, or a sample shape / option the family cannot take.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(model_names())}")
    shape = tuple(int(s) for s in sample_shape)
    if num_classes < 2:
        raise ValueError(f"model {name!r}: num_classes must be >= 2, got {num_classes}")
    try:
        net = _REGISTRY[name](num_classes, shape, **kw)
    except TypeError as exc:  # an unknown keyword for this family
        raise ValueError(f"model {name!r}: bad options {sorted(kw)}: {exc}") from None
    return Classifier(net, Normalize(mean, std, image=len(shape) == 3))


def require_image(name: str, shape: tuple[int, ...], min_size: int = 8) -> tuple[int, int, int]:
    """Check ``shape`` is (ch, H, W) with H, W >= ``min_size``; return it."""
    if len(shape) != 3 or min(shape[1:]) < min_size:
        raise ValueError(f"model {name!r} needs image samples (ch, H, W) with H, W >= {min_size}, got {shape}")
    return shape  # type: ignore[return-value]
