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


def _indexing_reference(aug: Augmentation, x: torch.Tensor) -> torch.Tensor:
    """pad, crop by advanced indexing, flip: the definition the gather must reproduce."""
    b, _, h, w = x.shape
    xp = F.pad(x, (aug.pad,) * 4)
    out = torch.stack([xp[i, :, s0:s0 + h, s1:s1 + w] for i, (s0, s1) in enumerate(aug.shifts.tolist())])
    return torch.where(aug.flips.view(b, 1, 1, 1), out.flip(-1), out)


def test_gather_equals_pad_crop_flip_exactly_and_keeps_the_layout() -> None:
    aug = sample_augmentation(7, pad=3, generator=torch.Generator().manual_seed(1))
    x = torch.rand(7, 3, 10, 12, requires_grad=True)
    out = aug(x)
    assert torch.equal(out, _indexing_reference(aug, x))
    assert out.is_contiguous(memory_format=torch.channels_last)  # as main's indexing gave it
    w = torch.randn_like(out)
    (ours,) = torch.autograd.grad((out * w).sum(), x)
    (ref,) = torch.autograd.grad((_indexing_reference(aug, x) * w).sum(), x)
    assert torch.equal(ours, ref)


def test_adjoint_is_the_backward_for_t_gradients_per_image() -> None:
    aug = sample_augmentation(4, pad=2, generator=torch.Generator().manual_seed(5))
    x = torch.rand(4, 2, 6, 6, requires_grad=True)
    g = torch.randn(4, 3, 2, 6, 6)  # T = 3 gradients per image w.r.t. the augmented image
    adj = aug.adjoint(g)
    assert adj.shape == g.shape
    for t in range(3):
        (ref,) = torch.autograd.grad(aug(x), x, grad_outputs=g[:, t])
        assert torch.equal(adj[:, t], ref)
