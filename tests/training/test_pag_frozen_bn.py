"""pag_bn: frozen. The PAG pass normalises with the clean batch's statistics, constant w.r.t. the repeated
rows: the loss is still Eq. 4-5 (equal to the per-image brute force under the same statistics), the
forward values equal the batch-statistics ones, only the cross-row gradient terms go (the parameters'
path through the statistics stays), and running statistics are updated once."""

from __future__ import annotations

import copy
from functools import partial

import pytest
import torch
from torch.nn import functional as F

from pagstore.training.frozen_bn import batch_norm_layers, frozen_batch_norm, record_batch_stats
from pagstore.loss import (input_grads_log_prob, input_grads_shared_forward, pag_alignment_loss,
                           pag_alignment_loss_bruteforce)
from pagstore.models import build_model
from pagstore.training.augment import sample_augmentation
from pagstore.training.objectives import ObjectiveSpec, objective_loss


def _model(classes: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("small-cnn", classes, (1, 8, 8), width=4, mean=[0.3], std=[0.2]).train()
    # running statistics away from their (0, 1) init, so "unchanged" and "updated" are distinguishable
    with torch.no_grad():
        model(torch.rand(16, 1, 8, 8) * 3)
    return model


def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


def test_frozen_loss_equals_bruteforce_under_the_same_statistics() -> None:
    model, x, g = _model(), torch.rand(5, 1, 8, 8), torch.randn(5, 4, 1, 8, 8)
    with record_batch_stats(model) as stats:
        model(x)
    assert len(stats) == 2
    with frozen_batch_norm(stats):
        ours = pag_alignment_loss(model, x, g)
        ours.backward(retain_graph=True)  # the statistics' graph is shared with the brute force
        g_ours = _grads(model)
        model.zero_grad()
        brute = pag_alignment_loss_bruteforce(model, x, g)  # one image at a time: needs the frozen stats
        brute.backward()
        g_brute = _grads(model)
    assert torch.allclose(ours, brute, rtol=1e-5)
    for a, b in zip(g_ours, g_brute):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert "forward" not in batch_norm_layers(model)[0].__dict__  # the override is gone after the block


def test_forward_values_match_batch_mode_but_the_cross_row_gradient_terms_go() -> None:
    model, x = _model(), torch.rand(6, 1, 8, 8)
    targets = torch.arange(4).expand(6, 4)
    v_batch, logits_batch = input_grads_log_prob(model, x, targets, create_graph=False, return_logits=True)
    with record_batch_stats(model) as stats:
        model(x)
    with frozen_batch_norm(stats):
        v_frozen, logits_frozen = input_grads_log_prob(model, x, targets, create_graph=False, return_logits=True)
    # repeating each image 4 times leaves the batch mean / biased variance unchanged: same forward
    assert torch.allclose(logits_batch, logits_frozen, atol=1e-5)
    # ... but batch mode differentiates through the statistics too, so the input-gradients differ
    assert not torch.allclose(v_batch, v_frozen, atol=1e-4)
    cos = F.cosine_similarity(v_batch.flatten(2), v_frozen.flatten(2), dim=2)
    assert float(cos.min()) > 0.5


def test_the_parameters_path_through_the_statistics_is_kept() -> None:
    # Batch norm cancels a bias added before it, so in batch mode the PAG loss does not depend on the
    # first convolution's bias. Frozen keeps that invariance because the recorded mean follows the bias;
    # statistics detached from the parameters would not (and make training drift).
    model, x, g = _model(), torch.rand(6, 1, 8, 8), torch.randn(6, 4, 1, 8, 8)
    bias = model.net[0].bias

    def bias_grad(detach: bool) -> torch.Tensor:
        model.zero_grad()
        with record_batch_stats(model) as stats:
            model(x)
        if detach:
            stats = {m: (mu.detach(), var.detach()) for m, (mu, var) in stats.items()}
        with frozen_batch_norm(stats):
            pag_alignment_loss(model, x, g).backward()
        return bias.grad.clone()

    model.zero_grad()
    pag_alignment_loss(model, x, g).backward()
    scale = float(model.net[0].weight.grad.abs().max())
    assert float(bias.grad.abs().max()) < 1e-4 * scale  # batch mode: invariant
    assert float(bias_grad(detach=False).abs().max()) < 1e-4 * scale
    assert float(bias_grad(detach=True).abs().max()) > 1e-2 * scale


def test_record_without_update_restores_running_statistics() -> None:
    model = _model()
    bn = batch_norm_layers(model)[0]
    before = (bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked))
    with torch.no_grad(), record_batch_stats(model, update_running=False) as stats:
        model(torch.rand(4, 1, 8, 8))
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])
    assert int(bn.num_batches_tracked) == before[2]
    assert stats[bn][0].shape == (4,)


@pytest.mark.parametrize("objective", ["pag", "trades", "at"])
def test_objective_frozen_updates_running_stats_once_and_trains(objective: str) -> None:
    model, x, y = _model(3), torch.rand(8, 1, 8, 8), torch.randint(0, 3, (8,))
    g = torch.randn(8, 3, 1, 8, 8)
    aug = sample_augmentation(8, pad=1, flip=False, generator=torch.Generator().manual_seed(1))
    extra = {"eps": 0.1} if objective != "pag" else {}
    spec = ObjectiveSpec(objective=objective, store="sbg", lam=1.0, pag_bn="frozen", **extra)
    spec.validate()
    reference = copy.deepcopy(model)
    if objective != "pag":  # the updates are those of plain AT / TRADES (AT's no-grad clean forward adds none)
        objective_loss(reference, x, y, None, ObjectiveSpec(objective=objective, eps=0.1), augment=aug,
                       generator=torch.Generator().manual_seed(0))
    else:  # the clean forward is the CE forward: one update with the augmented batch
        reference(aug(x))
    loss, terms = objective_loss(model, x, y, g, spec, augment=aug, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert terms["pag"] > 0
    for bn, ref in zip(batch_norm_layers(model), batch_norm_layers(reference)):
        assert torch.allclose(bn.running_mean, ref.running_mean, atol=1e-6)
        assert torch.allclose(bn.running_var, ref.running_var, atol=1e-6)
        assert int(bn.num_batches_tracked) == int(ref.num_batches_tracked)


def test_frozen_objective_matches_manual_composition() -> None:
    model, x, y = _model(3), torch.rand(8, 1, 8, 8), torch.randint(0, 3, (8,))
    g = torch.randn(8, 3, 1, 8, 8)
    spec = ObjectiveSpec(objective="pag", store="sbg", lam=0.5, pag_bn="frozen")
    loss, terms = objective_loss(model, x, y, g, spec)
    model2 = _model(3)
    with record_batch_stats(model2) as stats:
        ce = F.cross_entropy(model2(x), y)
    with frozen_batch_norm(stats):
        pag = pag_alignment_loss_bruteforce(model2, x, g)
    assert float(loss.detach()) == pytest.approx(float((ce + 0.5 * pag).detach()), rel=1e-5)
    assert terms["ce"] == pytest.approx(float(ce.detach()), rel=1e-6)


def test_bad_pag_bn_value_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"pag_bn: expected one of \['batch', 'frozen'\], got 'eval'"):
        ObjectiveSpec(objective="pag", store="sbg", lam=1.0, pag_bn="eval").validate()  # type: ignore[arg-type]


@pytest.mark.parametrize("case", ["all", "k", "stored"])
def test_shared_forward_equals_the_repeated_rows_under_frozen_statistics(case: str) -> None:
    # The frozen path takes the T input-gradients of an image from one forward (batched VJPs): the loss
    # and every parameter gradient must be those of the B x T repeated rows, augmentation included.
    model, x, y = _model(), torch.rand(6, 1, 8, 8), torch.randint(0, 4, (6,))
    gen = torch.Generator().manual_seed(3)
    aug = sample_augmentation(6, pad=2, flip=True, generator=gen)
    kw: dict = {}
    g = torch.randn(6, 4, 1, 8, 8)
    if case == "k":
        kw = {"target_classes": torch.stack([torch.randperm(4, generator=gen)[:2] for _ in range(6)])}
    if case == "stored":  # a K = 3-of-4 store: slot 0 the true class
        classes = torch.stack([torch.cat([y[i:i + 1], torch.tensor([c for c in range(4) if c != y[i]])[:2]])
                               for i in range(6)])
        g, kw = g[:, :3], {"classes": classes}
    t = 2 if case == "k" else (3 if case == "stored" else 4)

    def loss_and_grads(shared: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        with record_batch_stats(model) as stats:
            model(aug(x))
        with frozen_batch_norm(stats):
            fn = partial(input_grads_shared_forward, model, augment=aug) if shared else None
            loss = pag_alignment_loss(model, x, g, augment=aug.repeat_interleave(t), input_grads=fn, **kw)
        loss.backward()
        return loss.detach(), _grads(model)

    (l_rep, g_rep), (l_shared, g_shared) = loss_and_grads(False), loss_and_grads(True)
    assert torch.allclose(l_shared, l_rep, rtol=1e-5)
    scale = max(float(b.abs().max()) for b in g_rep)  # pre-BN biases have zero gradient (float noise)
    for a, b in zip(g_shared, g_rep):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6 * scale)


def test_shared_forward_needs_rows_that_do_not_interact() -> None:
    # With train-mode batch statistics the B-row backward adds cross-image terms the repeated layout does
    # not have, which is why only the frozen path shares the forward; frozen, the two agree.
    model, x = _model(), torch.rand(6, 1, 8, 8)
    targets = torch.arange(4).expand(6, 4)
    v_rep = input_grads_log_prob(model, x, targets, create_graph=False)
    v_shared, _ = input_grads_shared_forward(model, x, targets, create_graph=False)
    assert not torch.allclose(v_rep, v_shared, atol=1e-4)
    with record_batch_stats(model) as stats:
        model(x)
    with frozen_batch_norm(stats):
        v_rep = input_grads_log_prob(model, x, targets, create_graph=False)
        v_shared, _ = input_grads_shared_forward(model, x, targets, create_graph=False)
    assert torch.allclose(v_rep, v_shared, atol=1e-6)
