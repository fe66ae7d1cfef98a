"""Toy metrics on hand-built linear classifiers whose answers are known exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pagstore.toy.config import ToyAttack
from pagstore.toy.evaluate import LINE, accuracy, grid_robust_accuracy, line_alignment, robust_accuracy


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
    t = torch.tensor([-30.0, -16.0, -14.0, -5.0, 5.0, 14.0, 16.0, 30.0])
    x, y = points_on_line(t), (t > 0).long()
    model = linear(tuple(LINE.tolist()))
    assert accuracy(model, x, y) == 100.0
    # From x itself, 10 steps of 2 along the (constant) gradient reach the eps = 15 sphere: |t| < 15 falls.
    exact = ToyAttack(eps=15.0, steps=10, step_size=2.0, random_start=False)
    assert robust_accuracy(model, x, y, exact, seed=0) == pytest.approx(100.0 * 4 / 8)
    # A random start (radius up to 15) may point away from the boundary, leaving 20 - 15 = 5 of the 10 x 2
    # budget sure to reach it: points within 5 always fall. Small logits here: with large ones the CE
    # gradient drops under the 1e-12 norm floor (as in foolbox) and PGD stalls, which is why the toy
    # metrics also search the eps-disk on a grid.
    t = torch.tensor([-30.0, -20.0, -4.5, -2.0, 2.0, 4.5, 20.0, 30.0])
    x, y = points_on_line(t), (t > 0).long()
    gentle = linear(tuple((0.1 * LINE).tolist()))
    for seed in range(3):
        assert robust_accuracy(gentle, x, y, ToyAttack(), seed=seed) == pytest.approx(100.0 * 4 / 8)
    no_attack = ToyAttack(eps=0.0, steps=10, step_size=2.0, random_start=True)
    assert robust_accuracy(model, x, y, no_attack, seed=0) == 100.0


def test_grid_search_finds_every_point_closer_than_eps_to_the_boundary():
    t = torch.tensor([-30.0, -16.0, -14.0, -5.0, 5.0, 14.0, 16.0, 30.0])
    x, y = points_on_line(t), (t > 0).long()
    model = linear(tuple(LINE.tolist()))
    assert grid_robust_accuracy(model, x, y, eps=15.0, angles=72, radii=10) == pytest.approx(100.0 * 4 / 8)
    # Shifting the boundary by 2 along the line moves the points at -14 and 16 across eps = 15.
    shifted = linear(tuple(LINE.tolist()), offset=-2.0)
    assert grid_robust_accuracy(shifted, x, y, eps=15.0, angles=72, radii=10) == pytest.approx(100.0 * 4 / 8)
    assert grid_robust_accuracy(model, x, y, eps=0.0, angles=4, radii=1) == 100.0
    with pytest.raises(ValueError, match="angles"):
        grid_robust_accuracy(model, x, y, eps=1.0, angles=0, radii=1)
