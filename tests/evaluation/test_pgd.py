import pytest
import torch

from pagstore.evaluation.pgd import perturbation_norms, pgd_attack, project
from tests.evaluation.tiny import NUM_CLASSES, make_data, tiny_cnn, trained_cnn


@pytest.mark.parametrize("norm", ["L2", "Linf"])
def test_project_respects_eps(norm):
    delta = torch.randn(16, 1, 8, 8) * 3
    out = project(delta, norm, 0.7)
    assert (perturbation_norms(out, norm) <= 0.7 + 1e-5).all()
    small = delta * 1e-3
    assert torch.allclose(project(small, norm, 0.7), small)  # inside the ball: unchanged


def test_targeted_pgd_reaches_every_target_on_undefended_model():
    model = tiny_cnn(seed=1).eval()
    x, _ = make_data(8)
    rows = x.repeat_interleave(NUM_CLASSES, 0)
    targets = torch.arange(NUM_CLASSES).repeat(8)
    adv = pgd_attack(model, rows, targets, norm="L2", eps=6.0, steps=60, step_size=0.3, targeted=True)
    with torch.no_grad():
        hit = (model(adv).argmax(1) == targets).float().mean().item()
    assert hit >= 0.95
    assert (perturbation_norms(adv - rows, "L2") <= 6.0 + 1e-4).all()
    assert adv.min() >= 0 and adv.max() <= 1


@pytest.mark.parametrize("norm,eps", [("L2", 1.5), ("Linf", 0.3)])
def test_untargeted_pgd_lowers_accuracy_and_respects_eps(norm, eps):
    model = trained_cnn()
    x, y = make_data(32, seed=5)
    adv = pgd_attack(model, x, y, norm=norm, eps=eps, steps=20, step_size=eps / 5, random_start=True)
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean()
        robust = (model(adv).argmax(1) == y).float().mean()
    assert clean > 0.9 and robust < clean
    assert (perturbation_norms(adv - x, norm) <= eps * (1 + 1e-5) + 1e-6).all()


def test_unclipped_pgd_for_vector_data():
    model = torch.nn.Linear(2, 2)
    x = torch.tensor([[10.0, -10.0]])
    adv = pgd_attack(model, x, torch.tensor([0]), norm="L2", eps=15, steps=10, step_size=2, clip=None)
    # A linear model's gradient direction never changes: 10 steps of 2 go straight to the eps-15 sphere.
    assert perturbation_norms(adv - x, "L2").item() == pytest.approx(15, abs=1e-3)
    assert (adv.abs() > 1).any()  # not boxed into [0, 1]


def test_pgd_rejects_bad_norm():
    with pytest.raises(ValueError, match="norm"):
        pgd_attack(tiny_cnn(), *make_data(2), norm="L3", eps=1, steps=1, step_size=1)
