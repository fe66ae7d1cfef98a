"""Toy metrics on hand-built linear classifiers whose answers are known exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pagstore.toy.config import ToyAttack
from pagstore.toy.evaluate import LINE, accuracy, line_alignment, robust_accuracy


def linear(direction: tuple[float, float], offset: float = 0.0) -> nn.Module:
    """Logits (-s, s) with s = <direction, x> + offset: class 1 where s > 0."""
    m = nn.Linear(2, 2)
    with torch.no_grad():
        d = torch.tensor(direction)
        m.weight.copy_(torch.stack([-d, d]))
        m.bias.copy_(torch.tensor([-offset, offset]))
    return m


def points_on_line(t: torch.Tensor) -> torch.Tensor:
    return t.view(-1, 1) * LINE.view(1, 2)


def test_line_alignment_is_one_across_the_line_and_zero_along_it():
    x = points_on_line(torch.linspace(-40, 40, 50))
    assert line_alignment(linear((1.0, 2.0)), x) == pytest.approx(1.0, abs=1e-6)
    assert line_alignment(linear((2.0, -1.0)), x) == pytest.approx(0.0, abs=1e-6)
    assert line_alignment(linear((1.0, 0.0)), x) == pytest.approx(1 / 5**0.5, abs=1e-6)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        line_alignment(linear((1.0, 2.0)), torch.zeros(3, 3))


def test_robust_accuracy_matches_the_distance_to_a_boundary_across_the_line():
    # Boundary x . LINE = 0, so an L2 attack needs exactly |t| to flip a point at signed position t.
    t = torch.tensor([-30.0, -20.0, -10.0, -5.0, 5.0, 10.0, 20.0, 30.0])
    x, y = points_on_line(t), (t > 0).long()
    model = linear(tuple(LINE.tolist()))
    assert accuracy(model, x, y) == 100.0
    attack = ToyAttack(eps=15.0, steps=10, step_size=2.0, random_start=True)
    # 10 steps of 2 reach the eps = 15 sphere: points closer than 15 fall, the others survive.
    assert robust_accuracy(model, x, y, attack, seed=0) == pytest.approx(100.0 * 4 / 8)
    no_attack = ToyAttack(eps=0.0, steps=10, step_size=2.0, random_start=False)
    assert robust_accuracy(model, x, y, no_attack, seed=0) == 100.0
