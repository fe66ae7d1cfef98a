import csv

import pytest
import torch

from pagstore.evaluation.apgd_sweep import plot_sweep, robust_accuracy_curve, write_sweep_csv
from tests.evaluation.tiny import make_data, trained_cnn


def test_curve_starts_at_clean_accuracy_and_falls(tmp_path):
    model = trained_cnn()
    x, y = make_data(16, seed=8)
    points = robust_accuracy_curve(model, x, y, {"L2": [0.0, 3.0], "Linf": [0.0, 0.5]}, n_iter=10)
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    by = {(p.norm, p.eps): p.accuracy for p in points}
    assert by[("L2", 0.0)] == pytest.approx(clean) and by[("Linf", 0.0)] == pytest.approx(clean)
    # Past half the distance between classes (1.6 L2, 0.4 Linf) APGD breaks most images.
    assert by[("L2", 3.0)] < 0.5 * clean and by[("Linf", 0.5)] < 0.5 * clean
    write_sweep_csv(points, tmp_path / "sweep.csv")
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert [(r["norm"], float(r["eps"])) for r in rows] == [("L2", 0.0), ("L2", 3.0), ("Linf", 0.0), ("Linf", 0.5)]
    plot_sweep(points, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
