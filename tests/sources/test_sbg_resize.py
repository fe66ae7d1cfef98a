"""SBG with a diffusion model at another image size than the data (issue 13, item 5): the scores are taken
on the data resized into the model's size, and the gradient comes back through the resize's adjoint."""

from __future__ import annotations

import numpy as np
import torch

from pagstore.distill import SourceRecipe, distill
from pagstore.improved_diffusion.checkpoint import load_checkpoint, save_checkpoint
from pagstore.improved_diffusion.score import score
from pagstore.improved_diffusion.script_util import create_model_and_diffusion
from pagstore.improved_diffusion.training import resize_to_model
from pagstore.sources import build_source
from pagstore.sources.sbg import sample_noise
from pagstore.store import open_store
from tests.sources.sources_fixtures import TINY_CONFIG, tiny_images


def _checkpoint_at(path, split, image_size: int):
    """A jittered tiny UNet of ``image_size`` px, recorded as trained on ``split`` (of another size)."""
    torch.manual_seed(0)
    config = {**TINY_CONFIG, "num_classes": split.num_classes + 1, "in_channels": 1, "image_size": image_size}
    model, _ = create_model_and_diffusion(**config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_checkpoint(path, model, model.state_dict(), None, step=0, config=config,
                    dataset_fingerprint=split.fingerprint())
    return path


def _resize_matrix(h: int, s: int) -> torch.Tensor:
    """The resize as an explicit (s*s, h*h) matrix, column k = resize of the k-th basis image."""
    basis = torch.eye(h * h).view(h * h, 1, h, h)
    return resize_to_model(basis, s).reshape(h * h, s * s).T


def test_16px_data_with_an_8px_model_maps_the_gradient_back_through_the_adjoint(tmp_path):
    split = tiny_images(n=6, classes=2, shape=(1, 16, 16))
    ckpt = _checkpoint_at(tmp_path / "ckpt.pt", split, 8)
    t = 15
    src = build_source("sbg", {"t": t, "forward_batch": 2}, split, seed=3, checkpoint=ckpt)
    idx = np.array([0, 4, 5], dtype=np.int64)
    x = split.as_float(idx)
    g = src.compute(x, split.labels[idx], idx)
    assert g.shape == (3, 2, 1, 16, 16) and np.isfinite(g).all() and np.abs(g).max() > 0

    # Reference, written independently: scores at 8 px, then the transpose of the resize as a matrix.
    model, diffusion, _ = load_checkpoint(ckpt)
    ab = float(diffusion.alphas_cumprod[t])
    r = _resize_matrix(16, 8)  # (64, 256)
    with torch.no_grad():
        for i, j in enumerate(idx):
            x0 = (r @ (2 * torch.from_numpy(x[i]).reshape(256) - 1)).view(1, 1, 8, 8).clamp(-1, 1)
            x_t = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * sample_noise(3, j, (1, 8, 8))
            s = [score(model, diffusion, x_t.float(), t, torch.tensor([y])) for y in range(3)]
            for c in range(2):
                ref = (r.T @ (2.0 * (s[c] - s[2])).reshape(64)).view(1, 16, 16).numpy()
                np.testing.assert_allclose(g[i, c], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())

    desc = src.describe()
    assert desc["resize"]["from"] == [16, 16] and desc["resize"]["to"] == [8, 8]
    assert "adjoint" in desc["resize"]["gradient"]


def test_the_store_spec_records_the_resize_and_same_size_stores_do_not(tmp_path):
    split = tiny_images(n=8, classes=2, shape=(1, 16, 16))
    split.save(tmp_path / "train.npz")
    for size, name in ((8, "mismatch"), (16, "same")):
        ckpt = _checkpoint_at(tmp_path / f"{name}.pt", split, size)
        recipe = SourceRecipe("sbg", {"t": 10, "forward_batch": 4}, str(tmp_path / "train.npz"), 0, str(ckpt))
        distill(tmp_path / name, split, recipe, samples_per_shard=8, batch_size=4, workers=1)
        store = open_store(tmp_path / name)
        assert store.is_complete() and tuple(store.spec.sample_shape) == (1, 16, 16)
        source = store.spec.source
        if size == 8:
            assert source["resize"]["from"] == [16, 16] and source["resize"]["to"] == [8, 8]
        else:
            assert "resize" not in source and "precision" not in source


def test_adjoint_identity_of_the_resize():
    u, v = torch.randn(3, 1, 16, 16, dtype=torch.float64), torch.randn(3, 1, 8, 8, dtype=torch.float64)
    leaf = torch.zeros_like(u, requires_grad=True)
    (back,) = torch.autograd.grad(resize_to_model(leaf, 8), leaf, grad_outputs=v)
    assert torch.allclose((resize_to_model(u, 8) * v).sum(), (u * back).sum(), rtol=1e-10)
