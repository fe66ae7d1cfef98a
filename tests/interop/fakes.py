"""Fake files in the exact layouts of the paper's release (royg27/PAG-ROB) and of openai/improved-diffusion.

- gradient sets: ``torch.save`` of a float32 (N, 11, 3, 32, 32) tensor (image in [-1, 1], then one gradient
  per class) and an int64 (N,) label tensor;
- classifiers: ``DataParallel(model).state_dict()`` of their CIFAR ResNet-18 (keys prefixed ``module.``),
  written here from the layout the issue describes, saved from CPU tensors but recorded as on ``cuda:0``;
- diffusion: a bare improved-diffusion ``state_dict``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pagstore.data.prepared import PreparedSplit

SHAPE = (3, 32, 32)
C = 10


def make_prepared(root: Path, n: int = 24, seed: int = 0, name: str = "cifar10") -> PreparedSplit:
    """``root/train.npz`` (and a small test.npz) of random uint8 CIFAR-shaped images."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    names = tuple(f"class_{i}" for i in range(C))
    split = PreparedSplit(rng.integers(0, 256, (n, *SHAPE), dtype=np.uint8), rng.integers(0, C, n).astype(np.int64),
                          names, {"dataset": name, "split": "train"})
    split.save(root / "train.npz")
    PreparedSplit(rng.integers(0, 256, (6, *SHAPE), dtype=np.uint8), rng.integers(0, C, 6).astype(np.int64),
                  names, {"dataset": name, "split": "test"}).save(root / "test.npz")
    return split


def official_images(u8: np.ndarray) -> torch.Tensor:
    """What their pipeline feeds the model: ToTensor (x / 255) then Normalize(0.5, 0.5), float32."""
    return (torch.from_numpy(u8).float() / 255.0 - 0.5) / 0.5


def make_gradient_set(out_dir: Path, split: PreparedSplit, realization: str = "sbg", seed: int = 1,
                      order: np.ndarray | None = None) -> tuple[Path, Path, np.ndarray, torch.Tensor]:
    """``c10_<realization>_{data,label}.pt`` for the rows ``order`` of ``split`` (default: a permutation)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(split)) if order is None else order
    grads = torch.from_numpy(rng.standard_normal((len(order), C, *SHAPE)).astype(np.float32))
    data = torch.cat([official_images(split.images[order])[:, None], grads], dim=1)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_path, label_path = out_dir / f"c10_{realization}_data.pt", out_dir / f"c10_{realization}_label.pt"
    torch.save(data, data_path)
    torch.save(torch.from_numpy(split.labels[order]), label_path)
    return data_path, label_path, order, data


class OfficialBlock(nn.Module):
    """Their BasicBlock: conv1/bn1/conv2/bn2 and a shortcut.0 / shortcut.1 where the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class OfficialResNet18(nn.Module):
    """Their CIFAR ResNet-18 (3x3 stem, no max-pool, layer1..4, linear), fed (x - 0.5) / 0.5 by their code."""

    def __init__(self, num_classes: int = C) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin, stages = 64, []
        for i, cout in enumerate((64, 128, 256, 512)):
            stages.append(nn.Sequential(OfficialBlock(cin, cout, 1 if i == 0 else 2), OfficialBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(F.avg_pool2d(out, 4), 1))


def make_official_classifier(path: Path, seed: int = 0) -> OfficialResNet18:
    """Save ``DataParallel(OfficialResNet18()).state_dict()`` (non-trivial BN statistics) to ``path``."""
    torch.manual_seed(seed)
    model = OfficialResNet18()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.1, 0.1)
    nn.init.normal_(model.linear.weight, std=1.0)  # logits of order 1, so a 1e-5 agreement means something
    path.parent.mkdir(parents=True, exist_ok=True)
    save_as_cuda(nn.DataParallel(model).state_dict(), path)
    return model.eval()


def save_as_cuda(obj: object, path: Path) -> None:
    """``torch.save`` recording every storage as on ``cuda:0``, as the released files do (made from CPU
    tensors here: loading without ``map_location`` then fails on a machine without CUDA, as theirs would)."""
    import torch.serialization as ser

    original = ser.location_tag
    ser.location_tag = lambda storage: "cuda:0"
    try:
        torch.save(obj, path)
    finally:
        ser.location_tag = original


DIFFUSION_FLAGS = ["--image_size", "32", "--num_channels", "32", "--num_res_blocks", "1", "--learn_sigma", "True",
                   "--attention_resolutions", "16", "--num_heads", "2", "--diffusion_steps", "100",
                   "--noise_schedule", "cosine"]


def make_diffusion_state(path: Path, flags: list[str] = DIFFUSION_FLAGS, num_classes: int | None = None,
                         seed: int = 0) -> nn.Module:
    """A bare state_dict of the UNet these original flags describe (label_emb of ``num_classes`` rows if given)."""
    from pagstore.improved_diffusion.script_util import create_model_and_diffusion
    from pagstore.interop.diffusion_import import parse_flags

    cfg, _ = parse_flags(flags)
    if num_classes is not None:
        cfg.update(class_cond=True, num_classes=num_classes)
    torch.manual_seed(seed)
    model, _ = create_model_and_diffusion(**cfg)
    with torch.no_grad():
        for p in model.parameters():  # the zero-initialised output convs would make every output 0
            p.add_(torch.randn_like(p) * 0.02)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval()


class Payload:
    """A pickle that would run code when unpickled without weights_only."""

    def __reduce__(self):  # noqa: ANN204
        return (print, ("pwned",))
