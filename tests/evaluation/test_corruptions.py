import pytest
import torch

from pagstore.evaluation.corruptions import (CORRUPTIONS, accuracy_at, corruption_report, get_corruption,
                                             minimal_severity)
from tests.evaluation.tiny import make_data, trained_cnn


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_severity_zero_is_identity(name):
    x, _ = make_data(6)
    assert torch.equal(get_corruption(name)(x, torch.zeros(6), 0), x)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruption_grows_monotonically_and_stays_in_range(name):
    x, _ = make_data(6)
    dists = []
    for s in (0.0, 0.1, 0.3, 0.6, 1.0):
        out = get_corruption(name)(x, torch.full((6,), s), 7)
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
        dists.append((out - x).flatten(1).norm(dim=1))
    for a, b in zip(dists, dists[1:]):
        assert (b >= a - 1e-5).all()
    assert (dists[-1] > 0).all()


def test_endpoints_match_their_definitions():
    x, _ = make_data(4)
    assert torch.allclose(CORRUPTIONS["contrast_reduction"](x, torch.ones(4), 0), torch.full_like(x, 0.5))
    blur = CORRUPTIONS["gaussian_blur"](x, torch.ones(4), 0)  # sigma = 8 on 8x8: nearly the image mean
    assert torch.allclose(blur, x.mean(dim=(2, 3), keepdim=True).expand_as(x), atol=0.02)
    # A small blur of a constant image is the same constant (reflect boundaries add no edge effects).
    flat = torch.full((1, 1, 8, 8), 0.3)
    assert torch.allclose(CORRUPTIONS["gaussian_blur"](flat, torch.tensor([0.1]), 0), flat, atol=1e-6)
    sp = CORRUPTIONS["salt_and_pepper"](x, torch.ones(4), 0)
    assert set(sp.unique().tolist()) <= {0.0, 1.0}
    # Same seed, same noise; another seed, other noise.
    a = CORRUPTIONS["blended_uniform_noise"](x, torch.full((4,), 0.5), 1)
    assert torch.equal(a, CORRUPTIONS["blended_uniform_noise"](x, torch.full((4,), 0.5), 1))
    assert not torch.equal(a, CORRUPTIONS["blended_uniform_noise"](x, torch.full((4,), 0.5), 2))


@pytest.mark.parametrize("name", ["contrast_reduction", "blended_uniform_noise", "salt_and_pepper"])
def test_minimal_severity_is_the_boundary(name):
    model = trained_cnn()
    x, y = make_data(12, seed=9)
    mins = minimal_severity(model, x, y, name, steps=10, refine=5, seed=3)
    corrupt = get_corruption(name)
    found = torch.isfinite(mins) & (mins > 0)
    assert found.any()
    with torch.no_grad():
        at = model(corrupt(x, torch.where(found, mins, torch.zeros(12)), 3)).argmax(1)
        # The bracket after the scan is 1/10 wide, after 5 bisections 1/320: its lower end was correct.
        lower = torch.where(found, mins - 0.1 / 2**5 - 1e-6, torch.zeros(12)).clamp_min(0)
        below = model(corrupt(x, lower, 3)).argmax(1)
    assert (at[found] != y[found]).all()       # misclassified at the reported severity
    assert (below[found] == y[found]).all()    # and correct just below it (within the bisection width)


def test_report_has_fixed_severities_and_median():
    model = trained_cnn()
    x, y = make_data(8, seed=2)
    rep = corruption_report(model, x, y, ["contrast_reduction"], [0.0, 0.5, 1.0], steps=8, refine=3)
    r = rep["contrast_reduction"]
    assert r["accuracy_at"]["0"] == pytest.approx(accuracy_at(model, x, y, "contrast_reduction", 0.0))
    assert r["accuracy_at"]["1"] <= r["accuracy_at"]["0"]
    assert r["median_min_severity"] is None or 0 <= r["median_min_severity"] <= 1
    assert 0 <= r["fooled_fraction"] <= 1


def test_unknown_corruption_is_named():
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        get_corruption("fog")
