import json

import pytest
import torch

from pagstore.evaluation.autoattack import AttackCheckError, AutoAttackResult, check_attack_result, run_autoattack
from pagstore.evaluation.pgd import perturbation_norms
from tests.evaluation.tiny import make_data, trained_cnn


@pytest.fixture(scope="module")
def model():
    return trained_cnn()


@pytest.mark.parametrize("norm,eps", [("L2", 1.2), ("Linf", 0.25)])
def test_autoattack_accuracy_below_clean_and_within_eps(model, norm, eps):
    x, y = make_data(12, seed=3)
    res = run_autoattack(model, x, y, norm=norm, eps=eps, seed=0)
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    assert res.clean_accuracy == pytest.approx(clean)
    assert res.robust_accuracy <= res.clean_accuracy
    assert res.robust_accuracy < 1.0  # a budget this large breaks some points of a plain model
    norms = perturbation_norms(res.x_adv - x, norm)
    assert (norms <= eps * (1 + 1e-4) + 1e-5).all()
    assert res.max_perturbation == pytest.approx(norms.max().item())
    with torch.no_grad():
        fooled = model(res.x_adv).argmax(1) != y
    # Every image not counted robust was either misclassified already or is broken by its x_adv.
    assert fooled.float().mean().item() == pytest.approx(1 - res.robust_accuracy)
    assert "x_adv" not in res.as_dict() and json.dumps(res.as_dict())


def test_autoattack_resumes_from_state(model, tmp_path):
    x, y = make_data(8, seed=4)
    state = tmp_path / "aa" / "state.json"
    first = run_autoattack(model, x, y, norm="L2", eps=3.0, state_path=state)
    assert state.is_file() and not first.resumed
    again = run_autoattack(model, x, y, norm="L2", eps=3.0, state_path=state)
    assert again.resumed
    assert again.robust_accuracy == first.robust_accuracy
    assert again.after_attack == first.after_attack
    assert again.clean_accuracy == first.clean_accuracy


def test_interrupted_run_resumes_at_next_attack(model, tmp_path):
    x, y = make_data(8, seed=4)
    state = tmp_path / "state.json"
    full = run_autoattack(model, x, y, norm="L2", eps=1.2)
    # An interruption after APGD-CE leaves this state behind (flags after the first attack only).
    saved = ({"version": 1, "norm": "L2", "eps": 1.2, "num_images": 8, "seed": 0,
                                   "attacks": ["apgd-ce", "apgd-t", "fab-t", "square"], "done": ["apgd-ce"],
                                   "robust": [True] * 8, "after_attack": {"apgd-ce": 1.0}})
    state.write_text(json.dumps(saved))
    resumed = run_autoattack(model, x, y, norm="L2", eps=1.2, state_path=state)
    assert resumed.resumed
    assert resumed.after_attack["apgd-ce"] == 1.0  # taken from the state, not rerun
    assert json.loads(state.read_text())["done"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    # The later attacks still ran on all 8 images and broke what APGD-CE broke in the full run.
    assert full.robust_accuracy < 1.0
    assert resumed.robust_accuracy < 1.0


def test_state_of_other_run_is_refused(model, tmp_path):
    state = tmp_path / "state.json"
    run_autoattack(model, *make_data(8), norm="L2", eps=3.0, state_path=state)
    with pytest.raises(AttackCheckError, match="num_images=8"):
        run_autoattack(model, *make_data(6), norm="L2", eps=3.0, state_path=state)


def test_check_attack_result_catches_violations():
    ok = dict(norm="L2", eps=0.5, num_images=4, clean_accuracy=0.75, robust_accuracy=0.5,
              max_perturbation=0.5, attacks=("apgd-ce",), resumed=False)
    check_attack_result(AutoAttackResult(**ok))
    with pytest.raises(AttackCheckError, match="exceeds eps"):
        check_attack_result(AutoAttackResult(**{**ok, "max_perturbation": 0.6}))
    with pytest.raises(AttackCheckError, match="> clean accuracy"):
        check_attack_result(AutoAttackResult(**{**ok, "robust_accuracy": 1.0}))


def test_rejects_vectors_and_out_of_range(model):
    with pytest.raises(ValueError, match="pgd_attack"):
        run_autoattack(torch.nn.Linear(2, 2), torch.zeros(3, 2), torch.zeros(3, dtype=torch.long),
                       norm="L2", eps=1.0)
    x, y = make_data(4)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        run_autoattack(model, x * 3, y, norm="L2", eps=1.0)
    with pytest.raises(ValueError, match="norm"):
        run_autoattack(model, x, y, norm="L1x", eps=1.0)
