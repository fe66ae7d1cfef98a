"""The paper's small ViT for CIFAR: 4x4 patches (8x8 grid at 32px), 7 layers, hidden 384, MLP 384,
12 heads, a CLS token and learned position embeddings (~6.3M parameters)."""

from __future__ import annotations

import torch
from torch import nn

from pagstore.models.registry import register, require_image


class SelfAttention(nn.Module):
    """Multi-head self-attention written out (softmax(q k^T / sqrt(d)) v): the fused CPU kernel of
    ``nn.MultiheadAttention`` has no double backward, which the PAG term needs. (B, T, D) -> (B, T, D)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = self.drop(torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1))
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, d))


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer: x + MHSA(LN(x)), then x + MLP(LN(x)). (B, T, D) -> (B, T, D)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ViT(nn.Module):
    """Vision transformer classifying from the CLS token. (B, ch, H, W) -> (B, C)."""

    def __init__(
        self, num_classes: int, in_ch: int, size: int, patch: int, dim: int, depth: int, heads: int,
        mlp_dim: int, dropout: float,
    ) -> None:
        super().__init__()
        if size % patch:
            raise ValueError(f"model 'vit': image size {size} is not a multiple of patch size {patch}")
        if dim % heads:
            raise ValueError(f"model 'vit': hidden {dim} is not divisible by heads {heads}")
        tokens = (size // patch) ** 2
        self.embed = nn.Conv2d(in_ch, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.Sequential(*[EncoderLayer(dim, heads, mlp_dim, dropout) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)  # (B, tokens, dim)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1) + self.pos
        t = self.layers(self.drop(t))
        return self.head(self.ln(t[:, 0]))


@register("vit")
def vit(
    num_classes: int, sample_shape: tuple[int, ...], patch: int = 4, hidden: int = 384, depth: int = 7,
    heads: int = 12, mlp_dim: int = 384, dropout: float = 0.0,
) -> nn.Module:
    ch, h, w = require_image("vit", sample_shape, min_size=patch)
    if h != w:
        raise ValueError(f"model 'vit' needs square images, got {h}x{w}")
    return ViT(num_classes, ch, h, patch, hidden, depth, heads, mlp_dim, dropout)
