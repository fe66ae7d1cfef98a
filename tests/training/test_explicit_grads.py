"""pagstore.training.explicit_grads: the written-out input-gradients of piecewise-linear sequential nets
give the loss and parameter gradients autograd gives through the B x T repeated rows under the same
frozen statistics (augmentation, K targets, a K-of-C store, eval-mode BN, strided convolutions), and
only qualifying models take that path."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from pagstore.loss import pag_alignment_loss
from pagstore.models import build_model
from pagstore.models.registry import Classifier, Normalize
from pagstore.training.augment import sample_augmentation
from pagstore.training.explicit_grads import explicit_input_grads, explicit_supported
from pagstore.training.frozen_bn import frozen_batch_norm, record_batch_stats


def _small_cnn(size: int = 12) -> nn.Module:
    torch.manual_seed(0)
    model = build_model("small-cnn", 5, (3, size, size), width=4, mean=[0.4, 0.5, 0.6], std=[0.2, 0.3, 0.25])
    with torch.no_grad():
        model.train()(torch.rand(16, 3, size, size) * 2)  # running statistics away from (0, 1)
    return model


def _strided() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 6, 2, stride=2, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 3 * 3, 5))
    return Classifier(net, Normalize(None, None, image=True))


def _compare(model: nn.Module, kw: dict, g: torch.Tensor, t: int, aug_pad: int = 2) -> None:
    x = torch.rand(6, *g.shape[2:])
    aug = sample_augmentation(6, pad=aug_pad, flip=True, generator=torch.Generator().manual_seed(1))

    def loss_and_grads(explicit: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        with record_batch_stats(model) as stats:
            model(aug(x))
        fn = partial(explicit_input_grads, model, stats=stats, augment=aug) if explicit else None
        with frozen_batch_norm(stats):
            loss = pag_alignment_loss(model, x, g, augment=aug.repeat_interleave(t), input_grads=fn, **kw)
        loss.backward()
        return loss.detach(), [p.grad.clone() if p.grad is not None else torch.zeros_like(p)
                               for p in model.parameters()]

    (l_ref, g_ref), (l_ours, g_ours) = loss_and_grads(False), loss_and_grads(True)
    assert torch.allclose(l_ours, l_ref, rtol=1e-5)
    scale = max(float(b.abs().max()) for b in g_ref)  # pre-BN biases have zero gradient (float noise)
    for a, b in zip(g_ours, g_ref):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6 * scale)


@pytest.mark.parametrize("case", ["all", "k", "stored", "eval-bn", "strided", "odd"])
def test_explicit_equals_autograd_through_the_repeated_rows(case: str) -> None:
    # 12 px: small-cnn's adaptive pool maps 3 x 3 to 2 x 2 (uneven windows); 11 px: pools drop a row
    size = 11 if case == "odd" else 12
    model = _strided().train() if case == "strided" else _small_cnn(size).train()
    if case == "eval-bn":  # eval-mode layers normalise with running statistics, in both paths
        model.net[1].eval()
    gen = torch.Generator().manual_seed(2)
    y = torch.randint(0, 5, (6,), generator=gen)
    g, kw, t = torch.randn(6, 5, 3, size, size, generator=gen), {}, 5
    if case == "k":
        kw, t = {"target_classes": torch.stack([torch.randperm(5, generator=gen)[:2] for _ in range(6)])}, 2
    if case == "stored":  # a 3-of-5 store, the true class in slot 0
        classes = torch.stack([torch.cat([y[i:i + 1], torch.tensor([c for c in range(5) if c != y[i]])[:2]])
                               for i in range(6)])
        g, kw, t = g[:, :3], {"classes": classes}, 3
    _compare(model, kw, g, t)


def test_explicit_without_augmentation_and_channels_last() -> None:
    model = _small_cnn().train().to(memory_format=torch.channels_last)
    x = torch.rand(4, 3, 12, 12).contiguous(memory_format=torch.channels_last)
    targets = torch.arange(5).expand(4, 5)
    with record_batch_stats(model) as stats:
        model(x)
    with frozen_batch_norm(stats):
        rep = torch.autograd.grad(torch.log_softmax(model(x.requires_grad_(True)), 1)[:, 2].sum(), x)[0]
    v, logits = explicit_input_grads(model, x, targets, stats)
    assert v.shape == (4, 5, 3, 12, 12) and logits.shape == (4, 5, 5)
    assert torch.allclose(v[:, 2], rep, atol=1e-6)


def test_only_piecewise_linear_sequential_nets_qualify() -> None:
    assert explicit_supported(_small_cnn()) and explicit_supported(_strided())
    for name in ("resnet18", "vgg11", "vit"):
        assert not explicit_supported(build_model(name, 10, (3, 32, 32)))
    overlapping = Classifier(nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(3, stride=2), nn.Flatten(),
                                           nn.Linear(4 * 4 * 4, 2)), Normalize(None, None, image=True))
    assert not explicit_supported(overlapping)  # overlapping windows sum gradients: autograd's route
    assert not explicit_supported(Classifier(nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU()),
                                             Normalize(None, None, image=True)))
