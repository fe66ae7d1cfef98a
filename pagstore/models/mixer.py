"""MLP-Mixer (Tolstikhin et al., 2021) sized for small images: token- and channel-mixing MLPs."""

from __future__ import annotations

import torch
from torch import nn

from pagstore.models.registry import register, require_image


class MixerLayer(nn.Module):
    """x + TokenMLP(LN(x)^T)^T, then x + ChannelMLP(LN(x)). (B, T, D) -> (B, T, D)."""

    def __init__(self, tokens: int, dim: int, token_mlp: int, channel_mlp: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.token = nn.Sequential(nn.Linear(tokens, token_mlp), nn.GELU(), nn.Linear(token_mlp, tokens))
        self.ln2 = nn.LayerNorm(dim)
        self.channel = nn.Sequential(nn.Linear(dim, channel_mlp), nn.GELU(), nn.Linear(channel_mlp, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token(self.ln1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel(self.ln2(x))


@register("mlp-mixer")
def mlp_mixer(
    num_classes: int, sample_shape: tuple[int, ...], patch: int = 4, hidden: int = 256, depth: int = 8,
    token_mlp: int = 128, channel_mlp: int = 512,
) -> nn.Module:
    """Patch embedding, ``depth`` mixer layers, LN, mean over tokens, linear head. (B,ch,H,W) -> (B,C)."""
    ch, h, w = require_image("mlp-mixer", sample_shape, min_size=patch)
    if h % patch or w % patch:
        raise ValueError(f"model 'mlp-mixer': image {h}x{w} is not a multiple of patch size {patch}")
    tokens = (h // patch) * (w // patch)
    return nn.Sequential(
        nn.Conv2d(ch, hidden, patch, stride=patch),
        nn.Flatten(2),
        _Transpose(),
        *[MixerLayer(tokens, hidden, token_mlp, channel_mlp) for _ in range(depth)],
        nn.LayerNorm(hidden),
        _MeanTokens(),
        nn.Linear(hidden, num_classes),
    )


class _Transpose(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, T) -> (B, T, D)
        return x.transpose(1, 2)


class _MeanTokens(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, D)
        return x.mean(dim=1)
