"""Bootstrap intervals, interval comparisons and the Spearman interval."""

import numpy as np
import pytest

from pagstore.evaluation.intervals import Interval, bootstrap_mean, compare, spearman, spearman_interval


def test_interval_width_matches_binomial_error():
    # 200 images at 40% robust, one seed: the 95% interval is about +-1.96 * sqrt(.4 * .6 / 200) = +-6.8 pts
    rng = np.random.default_rng(0)
    outcomes = (rng.permutation(200) < 80).astype(float)
    iv = bootstrap_mean(outcomes, scale=100, n_boot=4000)
    assert iv.mean == pytest.approx(40.0)
    assert 5.5 < (iv.hi - iv.lo) / 2 < 8.0
    assert iv.lo < 40 < iv.hi


def test_seed_spread_widens_the_interval():
    # same overall accuracy, but seeds disagree a lot: the interval must be wider than one pooled seed's
    rng = np.random.default_rng(1)
    agree = np.stack([(rng.random(200) < 0.5) for _ in range(3)]).astype(float)
    spread = np.stack([(rng.random(200) < p) for p in (0.2, 0.5, 0.8)]).astype(float)
    w_agree = bootstrap_mean(agree).hi - bootstrap_mean(agree).lo
    w_spread = bootstrap_mean(spread).hi - bootstrap_mean(spread).lo
    assert w_spread > 2 * w_agree


def test_compare_says_beats_only_when_separated():
    hi, mid, lo = Interval(50, 45, 55), Interval(47, 42, 52), Interval(30, 25, 35)
    assert compare("A", hi, "B", lo) == "A beats B"
    assert compare("B", lo, "A", hi) == "A beats B"
    assert compare("A", hi, "C", mid) == "A and C are not distinguishable"


def test_spearman_and_its_interval():
    x = np.arange(12.0)
    assert spearman(x, x ** 3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert np.isnan(spearman(x, np.ones(12)))
    rng = np.random.default_rng(0)
    noisy = x + rng.normal(0, 3, 12)
    iv = spearman_interval(x, noisy)
    assert iv.lo <= iv.mean <= iv.hi and iv.lo < 1.0
    unrelated = spearman_interval(x, rng.permutation(np.arange(12.0)))
    assert unrelated.lo < 0.2  # an unrelated ordering must not yield an interval claiming correlation


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="seeds, images"):
        bootstrap_mean(np.zeros((2, 0)))
    with pytest.raises(ValueError, match=">= 3 pairs"):
        spearman_interval([1, 2], [1, 2])
