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

    def _index(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """int64 (B, H*W): for each output pixel, its source in the zero-padded (H + 2 pad) x (W + 2 pad)
        image, flattened; a flipped image reads its crop right to left."""
        b, wp = len(self), w + 2 * self.pad
        shifts, flips = self.shifts.to(device), self.flips.to(device)
        rows = shifts[:, 0:1] + torch.arange(h, device=device)  # (B, H)
        cols = shifts[:, 1:2] + torch.arange(w, device=device)  # (B, W)
        cols = torch.where(flips[:, None], cols.flip(1), cols)
        return (rows[:, :, None] * wp + cols[:, None, :]).view(b, h * w)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Apply to images (B, ch, H, W) -> (B, ch, H, W); differentiable w.r.t. ``x``.

        One gather from the zero-padded image (the flip folded into the index): its backward is one
        scatter-add and its double backward one gather, where indexing, flip and where took several passes
        and an accumulating index_put. The values are those of pad, crop and flip exactly: each output is
        one input pixel or a padding zero. The result is channels_last strided, as the indexing's was, so
        the convolutions after it see the layout they always saw.
        """
        if x.dim() != 4 or x.shape[0] != len(self):
            raise ValueError(f"augmentation for {len(self)} images got input of shape {tuple(x.shape)}")
        b, ch, h, w = x.shape
        xp = F.pad(x, (self.pad,) * 4) if self.pad > 0 else x
        src = xp.permute(0, 2, 3, 1).reshape(b, -1, ch)  # (B, H'*W', ch): a view when xp is channels_last
        idx = self._index(h, w, x.device)[:, :, None].expand(b, h * w, ch)
        return src.gather(1, idx).view(b, h, w, ch).permute(0, 3, 1, 2)

    def adjoint(self, g: torch.Tensor) -> torch.Tensor:
        """The transpose of this linear map, for T gradients per image: (B, T, ch, H, W) w.r.t. the
        augmented images -> w.r.t. the un-augmented ones (what autograd's backward of ``__call__`` gives)."""
        b, t, ch, h, w = g.shape
        if b != len(self):
            raise ValueError(f"augmentation for {len(self)} images got gradients of shape {tuple(g.shape)}")
        p = self.pad
        idx = self._index(h, w, g.device)[:, None, :].expand(b, t * ch, h * w)
        canvas = g.new_zeros(b, t * ch, (h + 2 * p) * (w + 2 * p))
        canvas = canvas.scatter_add(2, idx, g.reshape(b, t * ch, h * w))  # each source pixel receives <= 1
        return canvas.view(b, t, ch, h + 2 * p, w + 2 * p)[..., p:p + h, p:p + w]


def sample_augmentation(
    batch: int, *, pad: int = 4, flip: bool = True, generator: torch.Generator | None = None
) -> Augmentation:
    """Draw crop offsets uniformly in [0, 2 * pad] and flips with probability 1/2 (if ``flip``)."""
    if pad < 0:
        raise ValueError(f"crop padding must be >= 0, got {pad}")
    shifts = torch.randint(0, 2 * pad + 1, (batch, 2), generator=generator)
    flips = torch.rand(batch, generator=generator) < 0.5 if flip else torch.zeros(batch, dtype=torch.bool)
    return Augmentation(shifts, flips, pad)
