"""Small building blocks shared by the UNet: fp32 group norm, sinusoidal timestep embedding, zero init."""

from __future__ import annotations

import math

import torch
from torch import nn

NORM_GROUPS = 32


class GroupNorm32(nn.GroupNorm):
    """GroupNorm that always computes its statistics in float32 (stable under half precision)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


def normalization(channels: int) -> GroupNorm32:
    """The UNet's normalisation layer: 32-group GroupNorm over ``channels`` (must be a multiple of 32)."""
    if channels % NORM_GROUPS:
        raise ValueError(
            f"GroupNorm uses {NORM_GROUPS} groups, so every channel count must be a multiple of {NORM_GROUPS}; "
            f"got {channels} (choose num_channels/model_channels as a multiple of 32)"
        )
    return GroupNorm32(NORM_GROUPS, channels)


def conv_nd(dims: int, *args, **kwargs) -> nn.Module:
    """A 1-, 2- or 3-D convolution."""
    layers = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
    if dims not in layers:
        raise ValueError(f"dims must be 1, 2 or 3, got {dims}")
    return layers[dims](*args, **kwargs)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero all parameters of ``module`` so a residual branch starts as the identity."""
    for p in module.parameters():
        p.detach().zero_()
    return module


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps.

    Args:
        timesteps: (B,) timesteps as the network sees them (already rescaled to [0, 1000) if configured).
        dim: embedding width; the first half holds cosines, the second sines (odd widths get a zero pad).
    Returns:
        (B, dim) float32 embedding.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    )
    args = timesteps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb
