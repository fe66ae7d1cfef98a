"""A small CNN for the digits preset: trains in a minute on 2 CPU cores."""

from __future__ import annotations

from torch import nn

from pagstore.models.registry import register, require_image


@register("small-cnn")
def small_cnn(num_classes: int, sample_shape: tuple[int, ...], width: int = 32) -> nn.Module:
    """Two conv-BN-ReLU-pool blocks (width, 2 * width) and a linear head. (B,ch,H,W) -> (B,C).

    Uses softplus-free ReLUs like the paper's models; BN keeps training stable with the PAG term.
    """
    ch, _, _ = require_image("small-cnn", sample_shape)
    return nn.Sequential(
        nn.Conv2d(ch, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * width, num_classes),
    )
