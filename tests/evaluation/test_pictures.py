import torch

from pagstore.evaluation.pictures import TargetedAttack, class_columns, lambda_sweep_grid, save_grid, targeted_grid
from tests.evaluation.tiny import NUM_CLASSES, make_data, tiny_cnn, trained_cnn


def test_targeted_grid_layout_and_targets(tmp_path):
    model = trained_cnn()
    x, _ = make_data(3)
    grid = targeted_grid(model, x, NUM_CLASSES, TargetedAttack(norm="L2", eps=6.0, steps=40, step_size=0.4))
    assert grid.shape == (3, 1 + NUM_CLASSES, 1, 8, 8)
    assert torch.equal(grid[:, 0], x)
    with torch.no_grad():
        preds = model(grid[:, 1:].reshape(-1, 1, 8, 8)).argmax(1).view(3, NUM_CLASSES)
    assert (preds == torch.arange(NUM_CLASSES)).float().mean() >= 0.9  # column c pushed toward class c
    save_grid(grid, tmp_path / "g.png", col_labels=class_columns(["a", "b", "c", "d"]), row_labels=["1", "2", "3"])
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_lambda_sweep_grid_one_row_per_model():
    models = [tiny_cnn(seed=s).eval() for s in (1, 2)]
    x, _ = make_data(1)
    grid = lambda_sweep_grid(models, x, NUM_CLASSES, TargetedAttack(eps=1.0, steps=2, step_size=0.5))
    assert grid.shape == (2, 1 + NUM_CLASSES, 1, 8, 8)
    assert class_columns(["a"]) == ["input", "-> a"]
