"""Noise predictions and scores of a trained diffusion model at a given step (used by score-based gradients)."""

from __future__ import annotations

import torch
from torch import nn

from pagstore.improved_diffusion.gaussian_diffusion import GaussianDiffusion


def _as_steps(t: torch.Tensor | int, batch: int, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=torch.long, device=device)
    return t.expand(batch) if t.ndim == 0 else t


def predict_eps(model: nn.Module, diffusion: GaussianDiffusion, x_t: torch.Tensor, t: torch.Tensor | int,
                y: torch.Tensor | None) -> torch.Tensor:
    """The model's epsilon prediction.

    Args:
        x_t: (B, ch, H, W) noisy images in [-1, 1] model space.
        t: step indices of ``diffusion`` ((B,) int64, or one int for the whole batch).
        y: (B,) int64 labels in [0, C]; label C means "no class". None for unconditional models.
    Returns:
        eps: (B, ch, H, W); learned-variance channels are dropped, timesteps rescaled as in training.
    """
    t = _as_steps(t, x_t.shape[0], x_t.device)
    out = model(x_t, diffusion.model_timesteps(t), y)
    eps, _ = diffusion.split_output(out, x_t.shape[1])
    return eps


def score(model: nn.Module, diffusion: GaussianDiffusion, x_t: torch.Tensor, t: torch.Tensor | int,
          y: torch.Tensor | None) -> torch.Tensor:
    """Score grad_x log p_t(x_t | y) = -eps / sqrt(1 - alphabar_t); shapes as :func:`predict_eps`."""
    t = _as_steps(t, x_t.shape[0], x_t.device)
    eps = predict_eps(model, diffusion, x_t, t, y)
    sigma = torch.from_numpy(diffusion.sqrt_one_minus_alphas_cumprod).to(x_t.device)[t].float()
    return -eps / sigma.reshape(-1, *([1] * (x_t.ndim - 1)))
