"""Augmentation inside the autograd graph: input-gradients come out w.r.t. the un-augmented image."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from pagstore.loss import input_grads_log_prob
from pagstore.models import build_model
from pagstore.training.augment import Augmentation, sample_augmentation


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("small-cnn", 3, (1, 8, 8), width=4).eval()


def test_flip_gradient_equals_unflipping_by_hand() -> None:
    model, x = _model(), torch.rand(2, 1, 8, 8)
    aug = Augmentation(torch.zeros(2, 2, dtype=torch.long), torch.tensor([True, False]), pad=0)
    targets = torch.tensor([[0, 2], [1, 2]])
    through_graph = input_grads_log_prob(model, x, targets, augment=aug.repeat_interleave(2), create_graph=False)
    # by hand: gradient w.r.t. the flipped image, then flipped back for the flipped sample
    z = torch.stack([x[0].flip(-1), x[1]])
    by_hand = input_grads_log_prob(model, z, targets, create_graph=False)
    by_hand[0] = by_hand[0].flip(-1)
    assert torch.allclose(through_graph, by_hand, atol=1e-6)
    assert not torch.allclose(through_graph[0], input_grads_log_prob(model, x, targets, create_graph=False)[0])


def test_crop_is_a_zero_padded_shift() -> None:
    x = torch.arange(2 * 16, dtype=torch.float32).view(2, 1, 4, 4)
    aug = Augmentation(torch.tensor([[1, 1], [0, 2]]), torch.tensor([False, False]), pad=1)
    out = aug(x)
    assert torch.equal(out[0], x[0])  # shift == pad: identity
    assert torch.equal(out[1], F.pad(x[1], (1, 1, 1, 1))[:, 0:4, 2:6])


def test_sampled_augmentation_is_differentiable_and_reproducible() -> None:
    a = sample_augmentation(5, pad=2, generator=torch.Generator().manual_seed(3))
    b = sample_augmentation(5, pad=2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.shifts, b.shifts) and torch.equal(a.flips, b.flips)
    assert int(a.shifts.min()) >= 0 and int(a.shifts.max()) <= 4
    x = torch.rand(5, 1, 6, 6, requires_grad=True)
    a(x).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert not sample_augmentation(50, flip=False).flips.any()
