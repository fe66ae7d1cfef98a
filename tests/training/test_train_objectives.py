"""Objective composition: every base term with and without PAG gives a finite loss with the right terms;
impossible method specs are rejected with the key named."""

from __future__ import annotations

import copy

import pytest
import torch

from pagstore.config import ConfigError, from_dict
from pagstore.models import build_model
from pagstore.training.augment import sample_augmentation
from pagstore.training.objectives import ObjectiveSpec, objective_loss

CASES = {
    "vanilla": ({"objective": "ce"}, {"ce"}),
    "pag": ({"objective": "pag", "store": "sbg", "lam": 1.5}, {"ce", "pag"}),
    "pag-k": ({"objective": "pag", "store": "cm", "lam": 0.2, "k_classes": 2}, {"ce", "pag"}),
    "at": ({"objective": "at", "norm": "l2", "eps": 0.5, "steps": 2}, {"adv"}),
    "trades": ({"objective": "trades", "norm": "linf", "eps": 0.03, "steps": 2}, {"ce", "adv"}),
    "at+pag": ({"objective": "at", "store": "sbg", "lam": 0.2, "norm": "l2", "eps": 0.5, "steps": 2},
               {"adv", "pag"}),
    "trades+pag": ({"objective": "trades", "store": "sbg", "lam": 0.5, "eps": 0.03, "steps": 2},
                   {"ce", "adv", "pag"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_objective_trains(case: str) -> None:
    raw, terms = CASES[case]
    spec = from_dict(ObjectiveSpec, raw, where=case)
    torch.manual_seed(0)
    model = build_model("small-cnn", 3, (1, 8, 8), width=4)
    x, y, g = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]), torch.randn(4, 3, 1, 8, 8)
    gen = torch.Generator().manual_seed(0)
    aug = sample_augmentation(4, pad=1, generator=gen)
    loss, out = objective_loss(model, x, y, g, spec, augment=aug, generator=gen)
    loss.backward()
    assert torch.isfinite(loss)
    assert terms | {"loss", "acc"} == set(out)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    if "pag" in out:
        base = sum(v for k, v in out.items() if k in ("ce", "adv"))
        if spec.objective == "trades":
            base = out["ce"] + spec.beta * out["adv"]
        assert out["loss"] == pytest.approx(base + spec.lam * out["pag"], rel=1e-5)


def test_pag_needs_gradients_in_the_batch() -> None:
    spec = ObjectiveSpec(objective="pag", store="sbg", lam=1.0)
    model = build_model("mlp", 2, (2,), hidden=4)
    with pytest.raises(ValueError, match="needs stored gradients"):
        objective_loss(model, torch.rand(3, 2), torch.tensor([0, 1, 0]), None, spec, clamp=None)


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"objective": "pag"}, "needs a store"),
        ({"objective": "ce", "store": "sbg", "lam": 1.0}, "write objective: pag"),
        ({"objective": "pag", "store": "sbg", "lam": 0.0}, "lam must be > 0"),
        ({"objective": "pag", "store": "xyz", "lam": 1.0}, "store: expected null or one of"),
        ({"objective": "at", "norm": "l2"}, "needs eps > 0"),
        ({"objective": "at", "norm": "l3", "eps": 1.0}, "norm"),
        ({"objective": "ce", "lam": 0.5}, "has no effect without a store"),
        ({"objective": "ce", "lambda": 0.5}, "unknown key"),
    ],
)
def test_bad_method_specs_are_config_errors(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(ObjectiveSpec, raw, where="pipeline.yaml:train.methods.x")


@pytest.mark.parametrize("k_classes", [None, 2])
def test_pag_reuses_the_true_class_row_for_cross_entropy(k_classes) -> None:
    torch.manual_seed(0)
    model = build_model("small-cnn", 3, (1, 8, 8), width=4)
    x, y, g = torch.rand(5, 1, 8, 8), torch.tensor([0, 1, 2, 0, 2]), torch.randn(5, 3, 1, 8, 8)
    gen = torch.Generator().manual_seed(1)
    aug = sample_augmentation(5, pad=1, generator=gen)
    spec = ObjectiveSpec(objective="pag", store="sbg", lam=1.0, k_classes=k_classes)
    _, terms = objective_loss(model, x, y, g, spec, augment=aug, generator=gen)
    # train mode: the repeated rows see the same BN batch statistics as the plain augmented batch
    expected = float(torch.nn.functional.cross_entropy(model(aug(x)), y).detach())
    assert terms["ce"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("pag_bn", ["batch", "frozen"])
@pytest.mark.parametrize("k_classes", [None, 1])
def test_pag_on_a_k_of_c_store_aligns_its_stored_classes(k_classes, pag_bn) -> None:
    """A K < C store's batch carries classes (B, K), true class first: the PAG term aligns those class ids
    (k_classes samples among them, the true class always), and the CE term still reuses the true-class row.
    The reference is the repeated-rows loss under the same batch-norm statistics as ``pag_bn``."""
    from contextlib import nullcontext

    from pagstore.loss import pag_alignment_loss
    from pagstore.training.frozen_bn import frozen_batch_norm, record_batch_stats

    torch.manual_seed(0)
    model = build_model("small-cnn", 4, (1, 8, 8), width=4)
    x, y = torch.rand(3, 1, 8, 8), torch.tensor([3, 0, 1])
    classes = torch.tensor([[3, 1], [0, 2], [1, 3]])
    g = torch.randn(3, 2, 1, 8, 8)
    spec = ObjectiveSpec(objective="pag", store="sbg", lam=1.0, k_classes=k_classes, pag_bn=pag_bn)
    ref_model = copy.deepcopy(model)  # objective_loss updates running statistics; the reference starts equal
    _, terms = objective_loss(model, x, y, g, spec, generator=torch.Generator().manual_seed(0), classes=classes)
    targets = classes if k_classes is None else classes[:, :1]  # k = 1: the true class alone
    stats_ctx = nullcontext()
    if pag_bn == "frozen":
        with record_batch_stats(ref_model) as stats:
            ref_model(x)
        stats_ctx = frozen_batch_norm(stats)
    with stats_ctx:
        want = pag_alignment_loss(ref_model, x, g, targets, classes=classes, create_graph=False)
    assert terms["pag"] == pytest.approx(float(want.detach()), rel=1e-5)
    assert terms["ce"] == pytest.approx(float(torch.nn.functional.cross_entropy(model(x), y).detach()), rel=1e-4)
