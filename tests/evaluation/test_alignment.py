import numpy as np
import pytest
import torch
from torch import nn

from pagstore.evaluation.alignment import alignment_metrics, cosine, etmann_alignment, input_gradients, sbg_alignment


def linear_model(seed=0, d=6, c=3):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, c))
    return model.eval(), model[1].weight.detach().double().numpy(), model[1].bias.detach().double().numpy()


def hand_grads(w, b, x):
    """grad_x log softmax(Wx + b)_c = W_c - sum_k p_k W_k, by hand in numpy: (n, C, d)."""
    logits = x @ w.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return w[None, :, :] - (p @ w)[:, None, :]


def test_input_gradients_match_hand_computation():
    model, w, b = linear_model()
    x = torch.rand(5, 1, 2, 3)
    g = input_gradients(model, x)
    assert g.shape == (5, 3, 1, 2, 3)
    expected = hand_grads(w, b, x.flatten(1).double().numpy())
    np.testing.assert_allclose(g.flatten(2).double().numpy(), expected, atol=1e-5)


def test_sbg_alignment_equals_hand_cosines():
    model, w, b = linear_model(seed=1)
    x = torch.rand(4, 1, 2, 3)
    y = torch.tensor([0, 1, 2, 0])
    ref = torch.randn(4, 3, 1, 2, 3)
    g = hand_grads(w, b, x.flatten(1).double().numpy())
    r = ref.flatten(2).double().numpy()
    cos = (g * r).sum(-1) / (np.linalg.norm(g, axis=-1) * np.linalg.norm(r, axis=-1))
    out = sbg_alignment(model, x, y, ref, batch_size=3)
    assert out["cos_mean"] == pytest.approx(cos.mean(), abs=1e-5)
    true = cos[np.arange(4), y.numpy()]
    assert out["cos_true_class"] == pytest.approx(true.mean(), abs=1e-5)
    mask = np.ones_like(cos, dtype=bool)
    mask[np.arange(4), y.numpy()] = False
    assert out["cos_other_classes"] == pytest.approx(cos[mask].mean(), abs=1e-5)
    # The model's own gradients are perfectly aligned, their negatives perfectly anti-aligned.
    own = input_gradients(model, x)
    assert sbg_alignment(model, x, y, own)["cos_mean"] == pytest.approx(1.0, abs=1e-5)
    assert sbg_alignment(model, x, y, -own)["cos_mean"] == pytest.approx(-1.0, abs=1e-5)


def test_etmann_alignment_equals_hand_computation():
    model, w, b = linear_model(seed=2)
    x = torch.rand(6, 1, 2, 3)
    xf = x.flatten(1).double().numpy()
    pred = (xf @ w.T + b).argmax(1)
    wp = w[pred]
    expected = np.abs((xf * wp).sum(1)) / (np.linalg.norm(xf, axis=1) * np.linalg.norm(wp, axis=1))
    np.testing.assert_allclose(etmann_alignment(model, x).double().numpy(), expected, atol=1e-6)
    metrics = alignment_metrics(model, x, torch.zeros(6, dtype=torch.long), None)
    assert metrics == {"etmann_mean": pytest.approx(expected.mean(), abs=1e-6)}


def test_cosine_and_shape_errors():
    a = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])
    b = torch.tensor([[[0.0, 2.0]], [[2.0, 2.0]]])
    assert cosine(a, b).flatten().tolist() == pytest.approx([0.0, 1.0])
    model, _, _ = linear_model()
    with pytest.raises(ValueError, match="reference gradients must be"):
        sbg_alignment(model, torch.rand(2, 1, 2, 3), torch.zeros(2, dtype=torch.long), torch.rand(2, 3, 6))
