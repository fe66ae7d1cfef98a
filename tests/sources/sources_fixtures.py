"""Tiny data and a tiny real diffusion checkpoint shared by the source, distill and stage tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pagstore.data.prepared import PreparedSplit
from pagstore.improved_diffusion import create_model_and_diffusion
from pagstore.improved_diffusion.checkpoint import save_checkpoint


def tiny_images(n: int = 40, classes: int = 3, shape: tuple[int, ...] = (1, 4, 4), seed: int = 0) -> PreparedSplit:
    """Random uint8 images, every class present; sample 5 is an exact duplicate of sample 2 (same class)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    labels = (np.arange(n) % classes).astype(np.int64)
    images[5], labels[5] = images[2], labels[2]
    return PreparedSplit(images, labels, tuple(f"c{i}" for i in range(classes)), {"dataset": "tiny"})


def tiny_vectors(n: int = 30) -> PreparedSplit:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    return PreparedSplit(x, (np.arange(n) % 2).astype(np.int64), ("a", "b"), {"dataset": "toyvec"})


TINY_CONFIG = dict(
    image_size=8, num_channels=32, num_res_blocks=1, num_heads=2, attention_resolutions="4", channel_mult=[1, 2],
    class_cond=True, in_channels=1, diffusion_steps=50, noise_schedule="cosine", learn_sigma=True,
)


def tiny_checkpoint(path: Path, split: PreparedSplit, seed: int = 0) -> Path:
    """A real (untrained) class-conditional UNet with C + 1 labels, weights jittered so eps is not zero."""
    torch.manual_seed(seed)
    config = {**TINY_CONFIG, "num_classes": split.num_classes + 1, "in_channels": split.sample_shape[0],
              "image_size": split.sample_shape[-1]}
    model, _ = create_model_and_diffusion(**config)
    with torch.no_grad():
        for p in model.parameters():  # the original zero-initialises output layers: make them matter
            p.add_(0.05 * torch.randn_like(p))
    save_checkpoint(path, model, model.state_dict(), None, step=0, config=config,
                    dataset_fingerprint=split.fingerprint())
    return path
