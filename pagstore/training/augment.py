"""Differentiable per-sample augmentation (random crop with zero padding, horizontal flip).

The augmentation is part of the autograd graph: padding is ``F.pad``, the crop is advanced indexing and
the flip is ``torch.flip``, so the input-gradient of the classifier is taken w.r.t. the un-augmented
image, and the stored gradient (also w.r.t. the un-augmented image) never needs transforming.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class Augmentation:
    """Fixed random parameters for one batch.

    Attributes:
        shifts: int64 (B, 2) crop offsets (row, col) into the padded image, each in [0, 2 * pad].
        flips: bool (B,) flip horizontally.
        pad: zero padding on every side before cropping.
    """

    shifts: torch.Tensor
    flips: torch.Tensor
    pad: int

    def __len__(self) -> int:
        return int(self.flips.shape[0])

    def repeat_interleave(self, repeats: int) -> Augmentation:
        """The same augmentation for a batch where each image is repeated ``repeats`` times in a row."""
        return Augmentation(
            self.shifts.repeat_interleave(repeats, 0), self.flips.repeat_interleave(repeats, 0), self.pad
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Apply to images (B, ch, H, W) -> (B, ch, H, W); differentiable w.r.t. ``x``."""
        if x.dim() != 4 or x.shape[0] != len(self):
            raise ValueError(f"augmentation for {len(self)} images got input of shape {tuple(x.shape)}")
        b, _, h, w = x.shape
        if self.pad > 0:
            xp = F.pad(x, (self.pad,) * 4)
            rows = (self.shifts[:, 0:1].to(x.device) + torch.arange(h, device=x.device))  # (B, H)
            cols = (self.shifts[:, 1:2].to(x.device) + torch.arange(w, device=x.device))  # (B, W)
            bidx = torch.arange(b, device=x.device).view(b, 1, 1)
            # advanced indices around a slice put the indexed dims first: (B, H, W, ch)
            x = xp[bidx, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        flips = self.flips.to(x.device).view(b, 1, 1, 1)
        return torch.where(flips, x.flip(-1), x)


def sample_augmentation(
    batch: int, *, pad: int = 4, flip: bool = True, generator: torch.Generator | None = None
) -> Augmentation:
    """Draw crop offsets uniformly in [0, 2 * pad] and flips with probability 1/2 (if ``flip``)."""
    if pad < 0:
        raise ValueError(f"crop padding must be >= 0, got {pad}")
    shifts = torch.randint(0, 2 * pad + 1, (batch, 2), generator=generator)
    flips = torch.rand(batch, generator=generator) < 0.5 if flip else torch.zeros(batch, dtype=torch.bool)
    return Augmentation(shifts, flips, pad)
