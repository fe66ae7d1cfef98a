"""PGD for AT / TRADES: stays inside the eps-ball and [0, 1], and raises the loss."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from pagstore.models import build_model
from pagstore.training.attacks import pgd


@pytest.fixture
def model_data() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model("small-cnn", 3, (1, 8, 8), width=4)
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 3, (16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(20):  # a little training so the loss surface is not flat
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), x, y


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5)])
def test_pgd_respects_eps_and_raises_loss(model_data, norm: str, eps: float) -> None:
    model, x, y = model_data
    gen = torch.Generator().manual_seed(0)
    x_adv = pgd(model, x, y, norm=norm, eps=eps, generator=gen)
    d = (x_adv - x).flatten(1)
    size = d.abs().max(1).values if norm == "linf" else d.norm(dim=1)
    assert float(size.max()) <= eps * (1 + 1e-4)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    with torch.no_grad():
        assert float(F.cross_entropy(model(x_adv), y)) > float(F.cross_entropy(model(x), y))


def test_trades_kl_attack_moves_the_prediction(model_data) -> None:
    model, x, _ = model_data
    x_adv = pgd(model, x, norm="linf", eps=0.1, loss="kl", generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        kl = F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(model(x), 1), reduction="batchmean")
    assert float(kl) > 0
    assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6


def test_pgd_restores_train_mode_and_rejects_bad_norm(model_data) -> None:
    model, x, y = model_data
    model.train()
    pgd(model, x, y, norm="l2", eps=0.1, steps=1)
    assert model.training
    with pytest.raises(ValueError, match="norm must be"):
        pgd(model, x, y, norm="l1", eps=0.1)
