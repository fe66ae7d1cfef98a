"""Classifier registry: every family builds, maps (B, *S) -> (B, C), normalises inside, and supports the
double backward the PAG term needs."""

from __future__ import annotations

import pytest
import torch

from pagstore.loss import pag_alignment_loss
from pagstore.models import build_model, model_names

SMALL = {
    "resnet18": {"width": 4},
    "wrn-34-10": {"depth": 10, "widen": 1},
    "vgg11": {},
    "vgg13": {},
    "vgg16": {},
    "vit": {"hidden": 24, "depth": 1, "heads": 4, "mlp_dim": 24},
    "mlp-mixer": {"hidden": 16, "depth": 1, "token_mlp": 8, "channel_mlp": 16},
    "small-cnn": {"width": 4},
    "mlp": {"hidden": 8},
}


def test_registry_lists_the_documented_names() -> None:
    assert set(model_names()) == set(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_forward_shape_and_double_backward(name: str) -> None:
    shape = (2,) if name == "mlp" else (1, 16, 16)
    model = build_model(name, 3, shape, **SMALL[name]).eval()
    x = torch.rand(2, *shape)
    assert model(x).shape == (2, 3)
    loss = pag_alignment_loss(model, x, torch.randn(2, 3, *shape))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_vit_matches_the_paper_size() -> None:
    n = sum(p.numel() for p in build_model("vit", 10, (3, 32, 32)).parameters())
    assert 6.0e6 < n < 6.6e6
    assert build_model("vit", 10, (3, 32, 32)).net.pos.shape == (1, 65, 384)  # 8x8 patches + CLS


def test_mlp_default_is_2_32_2() -> None:
    sizes = [tuple(p.shape) for p in build_model("mlp", 2, (2,)).parameters()]
    assert sizes == [(32, 2), (32,), (2, 32), (2,)]


def test_normalisation_is_a_fixed_buffer_inside_the_model() -> None:
    torch.manual_seed(0)
    a = build_model("small-cnn", 3, (1, 8, 8), width=4, mean=[0.5], std=[0.25]).eval()
    b = build_model("small-cnn", 3, (1, 8, 8), width=4).eval()
    b.load_state_dict({k: v for k, v in a.state_dict().items() if not k.startswith("normalize.")}, strict=False)
    x = torch.rand(4, 1, 8, 8)
    assert torch.allclose(a(x), b((x - 0.5) / 0.25), atol=1e-5)
    assert "normalize.mean" in a.state_dict()
    assert all(not n.startswith("normalize.") for n, _ in a.named_parameters())


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet19'"):
        build_model("resnet19", 10, (3, 32, 32))
    with pytest.raises(ValueError, match="needs image samples"):
        build_model("resnet18", 10, (2,))
    with pytest.raises(ValueError, match="bad options"):
        build_model("small-cnn", 10, (1, 8, 8), depth=3)
    with pytest.raises(ValueError, match="std must be > 0"):
        build_model("mlp", 2, (2,), mean=[0.0], std=[0.0])
