"""Class-conditional sample grids: a quick visual check that the diffusion model learned every class."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import nn

from pagstore.atomic import atomic_path
from pagstore.improved_diffusion.script_util import create_model_and_diffusion

Sampler = Literal["ddim", "ancestral"]


@torch.no_grad()
def sample_classes(model: nn.Module, config: dict[str, Any], labels: torch.Tensor, *, sampler: Sampler = "ddim",
                   respacing: str = "50", seed: int = 0, batch_size: int = 256) -> torch.Tensor:
    """Draw one sample per entry of ``labels`` (B,) with a respaced process -> (B, ch, H, W) in [-1, 1].

    ``respacing`` is a ``timestep_respacing`` string ("50", "ddim25", ...) applied to the model's config.
    """
    if sampler not in ("ddim", "ancestral"):
        raise ValueError(f"sampler must be 'ddim' or 'ancestral', got {sampler!r}")
    _, diffusion = create_model_and_diffusion(**{**config, "timestep_respacing": respacing})
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    shape = (config.get("in_channels", 3), config["image_size"], config["image_size"])
    loop = diffusion.ddim_sample_loop if sampler == "ddim" else diffusion.p_sample_loop
    device = next(model.parameters()).device  # sample where the model is (noise is drawn on the CPU)
    out = [loop(model, (len(chunk), *shape), chunk.to(device), generator=g, device=device).cpu()
           for chunk in labels.split(batch_size)]
    model.train(was_training)
    return torch.cat(out)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] float (B, ch, H, W) -> uint8 (B, ch, H, W)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def grid_image(images: np.ndarray, rows: int, scale: int = 1, pad: int = 1) -> Image.Image:
    """Tile uint8 (rows*cols, ch, H, W) images row-major into one PIL image, upscaled by ``scale`` (nearest)."""
    n, ch, h, w = images.shape
    if n % rows:
        raise ValueError(f"{n} images do not fill {rows} rows")
    cols = n // rows
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, ch), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        y0, x0 = pad + r * (h + pad), pad + c * (w + pad)
        canvas[y0:y0 + h, x0:x0 + w] = img.transpose(1, 2, 0)
    pil = Image.fromarray(canvas[..., 0] if ch == 1 else canvas)
    return pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST) if scale > 1 else pil


def save_class_grid(path: str | Path, model: nn.Module, config: dict[str, Any], num_classes: int,
                    per_class: int = 8, **sample_kwargs: Any) -> np.ndarray:
    """Write a PNG grid with one row per class (``num_classes`` = C rows) atomically; returns the uint8 samples."""
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    images = to_uint8(sample_classes(model, config, labels, **sample_kwargs))
    scale = max(1, 48 // config["image_size"])  # tiny images are unreadable at 1:1
    with atomic_path(path, suffix=".png") as tmp:
        grid_image(images, rows=num_classes, scale=scale).save(tmp, format="PNG")
    return images
