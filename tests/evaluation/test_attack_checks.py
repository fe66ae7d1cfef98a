"""Attack-strength checks with the real pyautoattack attacks on a tiny trained CNN."""

import pytest
import torch

from pagstore.evaluation.attack_checks import apgd_flags, attack_strength_checks, transfer_flags
from pagstore.evaluation.autoattack import run_autoattack
from tests.evaluation.tiny import make_data, trained_cnn


def test_checks_agree_with_autoattack_on_a_tiny_model():
    model = trained_cnn()
    x, y = make_data(24, seed=3)
    aa = run_autoattack(model, x, y, norm="L2", eps=0.5)
    with torch.no_grad():
        aa_flags = (model(aa.x_adv).argmax(1) == y) & (model(x).argmax(1) == y)
    out = attack_strength_checks(model, x, y, aa_flags, norm="L2", eps=0.5,
                                 transfer_from=aa.x_adv, apgd_iter=20, apgd_restarts=2, square_queries=200,
                                 pgd_steps=20)
    assert set(out["attacks"]) == {"APGD-CE 20 it x 2", "Square 200 queries", "PGD-20", "transfer"}
    assert out["autoattack"] == pytest.approx(aa.robust_accuracy * 100)
    # transferring the model's own AutoAttack examples breaks exactly what AutoAttack broke
    assert out["attacks"]["transfer"]["robust_accuracy"] == pytest.approx(out["autoattack"])
    for res in out["attacks"].values():
        assert res["ok"] == (res["below_aa"] <= 2.0)
        assert 0 <= res["robust_accuracy"] <= 100


def test_a_weak_reference_fails_the_check():
    # pretend AutoAttack left everything robust: a real attack at a large eps finds far more, so it fails
    model = trained_cnn()
    x, y = make_data(16, seed=4)
    fake_aa = torch.ones(16, dtype=torch.bool)
    out = attack_strength_checks(model, x, y, fake_aa, norm="L2", eps=3.0, apgd_iter=10, apgd_restarts=1,
                                 square_queries=50, pgd_steps=10)
    assert not out["ok"] and not out["attacks"]["PGD-10"]["ok"]


def test_flags_and_bad_inputs():
    model = trained_cnn()
    x, y = make_data(8, seed=5)
    assert apgd_flags(model, x, y, norm="Linf", eps=0.0, n_iter=5, n_restarts=1).sum() == (model(x).argmax(1) == y).sum()
    with pytest.raises(RuntimeError, match="larger than eps"):
        transfer_flags(model, x, (x + 0.5).clamp(0, 1), y, norm="Linf", eps=0.1)
    with pytest.raises(ValueError, match="aa_flags"):
        attack_strength_checks(model, x, y, torch.ones(3, dtype=torch.bool), norm="L2", eps=0.5)
