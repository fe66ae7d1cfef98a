"""Bicubic resizing of uint8 image batches, shared by the readers that change resolution."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm


def resize_bicubic(images: np.ndarray, size: int, batch: int = 512) -> np.ndarray:
    """Resize uint8 images (N, ch, H, W) to (N, ch, size, size) with bicubic interpolation.

    Antialiasing is on only when shrinking (as PIL does), so upsampling is plain bicubic. Results are
    clamped to [0, 255] and rounded, since bicubic overshoots at edges. Work is batched to bound memory.
    """
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"resize_bicubic expects uint8 (N, ch, H, W), got {images.dtype} {images.shape}")
    if size <= 0:
        raise ValueError(f"image size must be positive, got {size}")
    n, ch, h, w = images.shape
    if (h, w) == (size, size):
        return images
    shrink = size < h or size < w
    out = np.empty((n, ch, size, size), dtype=np.uint8)
    for start in tqdm(range(0, n, batch), desc=f"resize to {size}px", disable=None, leave=False):
        x = torch.from_numpy(images[start : start + batch].astype(np.float32))
        y = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=shrink)
        out[start : start + batch] = y.clamp_(0, 255).round_().to(torch.uint8).numpy()
    return out


def resize_meta(from_hw: tuple[int, int], size: int) -> dict[str, object]:
    """The provenance record of :func:`resize_bicubic` for a split's ``meta``."""
    if tuple(from_hw) == (size, size):
        return {"from": list(from_hw), "to": [size, size], "method": "none"}
    shrink = size < from_hw[0] or size < from_hw[1]
    return {
        "from": list(from_hw),
        "to": [size, size],
        "method": "bicubic",
        "implementation": "torch.nn.functional.interpolate(align_corners=False), clamp [0,255], round",
        "antialias": shrink,
    }
