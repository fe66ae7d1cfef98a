"""Multi-layer perceptron for vector data (toy2d: 2 -> 32 -> 2 with ReLU by default)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from pagstore.models.registry import register


@register("mlp")
def mlp(num_classes: int, sample_shape: tuple[int, ...], hidden: int | Sequence[int] = 32) -> nn.Module:
    """Linear-ReLU layers of widths ``hidden`` then a linear head. Input (B, D) or images (flattened) -> (B, C)."""
    widths = [hidden] if isinstance(hidden, int) else list(hidden)
    if any(int(h) < 1 for h in widths):
        raise ValueError(f"model 'mlp': hidden widths must be >= 1, got {widths}")
    d = 1
    for s in sample_shape:
        d *= int(s)
    layers: list[nn.Module] = [nn.Flatten()]
    for h in widths:
        layers += [nn.Linear(d, int(h)), nn.ReLU()]
        d = int(h)
    layers.append(nn.Linear(d, num_classes))
    return nn.Sequential(*layers)
