"""Closest-class alignment and the local-PCA on-manifold fraction on data with a known geometry."""

import pytest
import torch
from torch import nn

from pagstore.evaluation.manifold import (
    closest_class_alignment,
    extra_alignment_metrics,
    on_manifold_fraction,
    tangent_bases,
)


class Linear2(nn.Module):
    """logits = W x with fixed rows: the input-gradient of z_c - z_y is W_c - W_y exactly."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return x.flatten(1) @ self.w.T


def test_closest_class_cosine_is_one_when_gradient_points_at_the_other_class():
    # class 0 at the origin, class 1 at e0 * 2: a model whose margin gradient is +e0 is perfectly aligned
    train_x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 0.1]]).view(3, 1, 1, 2)
    train_y = torch.tensor([0, 1, 1])
    aligned = Linear2(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    x, y = torch.tensor([[0.1, 0.0]]).view(1, 1, 1, 2), torch.tensor([0])
    assert closest_class_alignment(aligned, x, y, train_x, train_y).item() == pytest.approx(1.0, abs=1e-6)
    orthogonal = Linear2(torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    assert closest_class_alignment(orthogonal, x, y, train_x, train_y).abs().item() < 1e-6


def test_tangent_space_of_a_plane_and_the_fraction():
    # training points on the plane spanned by the first two of 6 coordinates
    gen = torch.Generator().manual_seed(0)
    train = torch.zeros(200, 6)
    train[:, :2] = torch.randn(200, 2, generator=gen)
    x = torch.zeros(3, 6)
    bases = tangent_bases(x, train, k=40, dim=2)
    assert bases.shape == (3, 2, 6)
    on = torch.zeros(3, 6)
    on[:, 0] = 1.0
    off = torch.zeros(3, 6)
    off[:, 4] = 1.0
    assert on_manifold_fraction(on, bases) == pytest.approx(torch.ones(3), abs=1e-5)
    assert on_manifold_fraction(off, bases) == pytest.approx(torch.zeros(3), abs=1e-5)
    half = on + off
    assert on_manifold_fraction(half, bases) == pytest.approx(torch.full((3,), 0.5), abs=1e-5)
    with pytest.raises(ValueError, match="dim <= k"):
        tangent_bases(x, train, k=2, dim=3)


def test_extra_metrics_on_a_trained_tiny_cnn():
    from tests.evaluation.tiny import make_data, trained_cnn

    model = trained_cnn()
    x, y = make_data(16, seed=5)
    tx, ty = make_data(120, seed=6)
    out = extra_alignment_metrics(model, x, y, tx, ty, k=20, dim=4)
    assert -1 <= out["closest_class_cos_mean"] <= 1
    assert 0 <= out["on_manifold_fraction_mean"] <= 1
    assert out["on_manifold_random_baseline"] == pytest.approx(4 / 64)
