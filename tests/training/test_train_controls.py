"""The PAG controls: random and class-shuffled targets, and the gradient-norm objective."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pagstore.config import ConfigError, from_dict
from pagstore.models import build_model
from pagstore.training.config import TrainCommon
from pagstore.training.controls import (
    ControlTargets,
    grad_norm_penalty,
    input_grad_norm,
    random_targets,
    within_class_permutation,
)
from pagstore.training.objectives import ObjectiveSpec, objective_loss
from pagstore.training.run import train_method
from tests.training.train_fixtures import write_prepared, write_store


def test_within_class_permutation_keeps_class_and_moves_every_image():
    labels = np.array([0, 1, 0, 2, 1, 0, 2, 2, 3])
    perm = within_class_permutation(labels, seed=0)
    assert (labels[perm] == labels).all()
    assert sorted(perm.tolist()) == list(range(len(labels)))
    movable = np.isin(labels, [0, 1, 2])            # class 3 has one image: it can only map to itself
    assert (perm[movable] != np.flatnonzero(movable)).all()
    assert (within_class_permutation(labels, 0) == perm).all()
    many = np.arange(60) % 3
    assert not (within_class_permutation(many, 1) == within_class_permutation(many, 0)).all()


def test_random_targets_depend_on_row_only():
    a = random_targets(np.array([3, 7]), (2, 4), seed=0)
    b = random_targets(np.array([7]), (2, 4), seed=0)
    assert torch.equal(a[1], b[0]) and not torch.equal(a[0], a[1])
    assert not torch.equal(random_targets(np.array([7]), (2, 4), seed=1), b)


def test_control_batches_transform_the_store(tmp_path):
    train, _ = write_prepared(tmp_path, n=24)
    store = write_store(tmp_path / "store", train)
    shuffled = ControlTargets(store, "shuffled", seed=0)
    x, y, g = next(shuffled.batches(24, seed=0, epoch=1))
    # rows are sorted within a batch, so row i is store row i; its targets are row perm[i]'s gradients
    assert torch.equal(g, torch.from_numpy(shuffled.grads[shuffled.perm].astype(np.float32)))
    assert not torch.equal(g, torch.from_numpy(shuffled.grads.astype(np.float32)))
    assert torch.equal(y, torch.from_numpy(train.labels))
    rnd = ControlTargets(store, "random", seed=0)
    _, _, gr = next(rnd.batches(24, seed=0, epoch=1))
    assert gr.shape == g.shape and abs(float(gr.std()) - 1.0) < 0.1
    with pytest.raises(ValueError, match="control targets"):
        ControlTargets(store, "store", seed=0)


def test_gradnorm_penalty_is_double_backprop():
    torch.manual_seed(0)
    model = build_model("small-cnn", 3, (1, 8, 8), width=4).eval()  # eval: BN rows independent
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    pen, _ = grad_norm_penalty(model, x, y)
    pen = pen.detach()
    # per-image reference
    ref = 0.0
    for i in range(4):
        xi = x[i:i + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(xi), y[i:i + 1]), xi)
        ref += float(g.pow(2).sum()) / 4
    assert float(pen) == pytest.approx(ref, rel=1e-4)
    spec = ObjectiveSpec(objective="gradnorm", lam=0.5)
    loss, terms = objective_loss(model, x, y, None, spec)
    loss.backward()
    assert terms["loss"] == pytest.approx(terms["ce"] + 0.5 * terms["gradnorm"], rel=1e-5)
    assert all(p.grad is not None for p in model.parameters())
    assert input_grad_norm(model, x, y) > 0


@pytest.mark.parametrize("raw,message", [
    ({"objective": "gradnorm"}, "needs store: null and lam > 0"),
    ({"objective": "gradnorm", "store": "sbg", "lam": 1.0}, "needs store: null"),
    ({"objective": "ce", "targets": "random"}, "transforms a store"),
])
def test_bad_control_specs(raw, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        from_dict(ObjectiveSpec, raw, where="m")


def test_controls_train_end_to_end(tmp_path):
    train, prepared = write_prepared(tmp_path, n=24)
    write_store(tmp_path / "stores" / "cm", train)
    common = TrainCommon(model="small-cnn", epochs=1, batch_size=8, model_kwargs={"width": 4}, crop_pad=1,
                         flip=False, eval_samples=8, align_samples=8)
    for name, spec in {"shuf": ObjectiveSpec(objective="pag", store="cm", lam=1.0, targets="shuffled"),
                       "rand": ObjectiveSpec(objective="pag", store="cm", lam=1.0, targets="random"),
                       "gn": ObjectiveSpec(objective="gradnorm", lam=0.1)}.items():
        out = train_method(name, spec, common, prepared, tmp_path / "stores", tmp_path / name,
                           tmp_path / f"{name}.json", tmp_path / f"{name}.csv")
        assert json.loads((tmp_path / f"{name}.json").read_text())["method"] == name
        assert ("pag" in out) == (name != "gn")
