"""VGG-11/13/16 with batch norm, CIFAR head (global average pool + one linear layer)."""

from __future__ import annotations

import torch
from torch import nn

from pagstore.models.registry import register, require_image

_CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """Conv-BN-ReLU stacks with max-pools; pools are skipped once the map is 1x1. (B,ch,H,W) -> (B,C)."""

    def __init__(self, cfg: list[int | str], num_classes: int, in_ch: int, size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_ch
        for v in cfg:
            if v == "M":
                if size >= 2:  # small inputs (16px digits) would otherwise pool to nothing
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def _builder(name: str):  # noqa: ANN202 - registry closure
    def build(num_classes: int, sample_shape: tuple[int, ...]) -> nn.Module:
        ch, h, w = require_image(name, sample_shape)
        return VGG(_CONFIGS[name], num_classes, ch, min(h, w))

    return build


for _name in _CONFIGS:
    register(_name)(_builder(_name))
