"""The PAG term (Eq. 4-5): agrees with a per-sample, per-class brute force; differentiable; K sampling."""

from __future__ import annotations

import pytest
import torch

from pagstore.loss import (
    input_grads_log_prob,
    pag_alignment_loss,
    pag_alignment_loss_bruteforce,
    pag_alignment_loss_reference_layout,
    sample_target_classes,
)
from pagstore.models import build_model


@pytest.fixture
def setup() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    # eval mode: in train mode BN couples the repeated rows, and the brute force sees one image at a time
    model = build_model("small-cnn", 4, (1, 8, 8), width=4, mean=[0.3], std=[0.2]).eval()
    return model, torch.rand(3, 1, 8, 8), torch.randn(3, 4, 1, 8, 8)


def test_all_classes_matches_bruteforce_and_reference_layout(setup) -> None:
    model, x, g = setup
    ours = pag_alignment_loss(model, x, g)
    assert torch.allclose(ours, pag_alignment_loss_bruteforce(model, x, g), rtol=1e-5)
    assert torch.allclose(ours, pag_alignment_loss_reference_layout(model, x, g), rtol=1e-4)
    assert 0.0 < float(ours.detach()) < 2 * 4


def test_given_targets_match_bruteforce_with_c_over_k_scaling(setup) -> None:
    model, x, g = setup
    targets = torch.tensor([[0, 2], [1, 3], [3, 0]])
    ours = pag_alignment_loss(model, x, g, targets)
    assert torch.allclose(ours, pag_alignment_loss_bruteforce(model, x, g, targets), rtol=1e-5)
    # the C/K scaling: the per-image sum over 2 targets is doubled
    v = input_grads_log_prob(model, x, targets, create_graph=False).flatten(2)
    u = torch.stack([g[i, targets[i]] for i in range(3)]).flatten(2)
    manual = (1 - torch.nn.functional.cosine_similarity(v, u, dim=2)).sum(1).mean() * 2
    assert torch.allclose(ours, manual, rtol=1e-5)


def test_parameter_gradient_is_finite_and_nonzero(setup) -> None:
    model, x, g = setup
    pag_alignment_loss(model, x, g).backward()
    total = 0.0
    for p in model.parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all()
            total += float(p.grad.abs().sum())
    assert total > 0


def test_loss_is_zero_for_the_models_own_gradients(setup) -> None:
    model, x, _ = setup
    own = input_grads_log_prob(model, x, torch.arange(4).expand(3, 4), create_graph=False)
    assert float(pag_alignment_loss(model, x, own * 7.0).detach()) == pytest.approx(0.0, abs=1e-4)
    assert float(pag_alignment_loss(model, x, -own).detach()) == pytest.approx(2 * 4, abs=1e-3)


def test_zero_stored_gradient_hits_the_epsilon_floor(setup) -> None:
    model, x, g = setup
    g = g.clone()
    g[0, 1] = 0
    assert torch.isfinite(pag_alignment_loss(model, x, g))


def test_sampled_classes_are_distinct_and_include_the_true_class() -> None:
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 5, 9, 3])
    t = sample_target_classes(labels, 10, 3, gen)
    assert t.shape == (4, 3)
    assert (t[:, 0] == labels).all()
    assert all(len(set(row.tolist())) == 3 for row in t)
    with pytest.raises(ValueError, match="k_classes must be in"):
        sample_target_classes(labels, 10, 11)


def test_k_classes_needs_labels_and_bad_shapes_are_named(setup) -> None:
    model, x, g = setup
    with pytest.raises(ValueError, match="needs labels"):
        pag_alignment_loss(model, x, g, k_classes=2)
    assert torch.isfinite(pag_alignment_loss(model, x, g, labels=torch.tensor([0, 1, 2]), k_classes=2))
    with pytest.raises(ValueError, match="target_grads must be"):
        pag_alignment_loss(model, x, g[:, :, :, :4])


def test_loss_aligns_stored_classes_of_a_k_of_c_store():
    """classes=(B, K): target_grads' slot j is class classes[:, j]; targets are class ids, scaled by C / T."""
    import torch as _torch

    from pagstore.loss import pag_alignment_loss, pag_alignment_loss_bruteforce

    _torch.manual_seed(0)
    model = _torch.nn.Sequential(_torch.nn.Flatten(), _torch.nn.Linear(16, 5))
    x = _torch.rand(4, 1, 4, 4)
    full = _torch.randn(4, 5, 1, 4, 4)  # what a K = C store would hold
    classes = _torch.tensor([[2, 0, 4], [1, 3, 0], [4, 2, 1], [0, 1, 3]])
    stored = full.gather(1, classes.view(4, 3, 1, 1, 1).expand(4, 3, 1, 4, 4))  # the K = 3 stored slots
    got = pag_alignment_loss(model, x, stored, classes=classes)
    want = pag_alignment_loss_bruteforce(model, x, full, classes)  # both scale the sum by C / T = 5 / 3
    _torch.testing.assert_close(got, want)
    # an explicit class-id target list reads each id's slot
    targets = classes[:, [2, 0]]
    _torch.testing.assert_close(pag_alignment_loss(model, x, stored, targets, classes=classes),
                                pag_alignment_loss_bruteforce(model, x, full, targets))
    sampled = pag_alignment_loss(model, x, stored, classes=classes, k_classes=2,
                                 generator=_torch.Generator().manual_seed(0))
    assert _torch.isfinite(sampled)
    with pytest.raises(ValueError, match="among the stored classes"):
        pag_alignment_loss(model, x, stored, _torch.tensor([[3], [2], [0], [2]]), classes=classes)
