"""SBG on a real tiny UNet checkpoint: Eq. 8 against a per-label reference, batch invariance, fixed noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pagstore.improved_diffusion.checkpoint import load_checkpoint
from pagstore.improved_diffusion.score import score
from pagstore.sources import SourceError, build_source
from pagstore.sources.sbg import sample_noise
from tests.sources.sources_fixtures import tiny_checkpoint, tiny_images


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    split = tiny_images(n=12, classes=3, shape=(1, 8, 8))
    ckpt = tiny_checkpoint(tmp_path_factory.mktemp("sbg") / "checkpoint.pt", split)
    return split, ckpt


def test_sbg_matches_per_label_reference(setup):
    split, ckpt = setup
    src = build_source("sbg", {"t": 20, "forward_batch": 2}, split, seed=5, checkpoint=ckpt)
    idx = np.array([3, 7, 0], dtype=np.int64)
    x = split.as_float(idx)
    g = src.compute(x, split.labels[idx], idx)
    assert g.shape == (3, 3, 1, 8, 8) and g.dtype == np.float32
    model, diffusion, _ = load_checkpoint(ckpt)
    ab = float(diffusion.alphas_cumprod[20])
    with torch.no_grad():
        for i, j in enumerate(idx):
            x0 = 2 * torch.from_numpy(x[i : i + 1]) - 1
            x_t = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * sample_noise(5, j, (1, 8, 8))
            s = [score(model, diffusion, x_t.float(), 20, torch.tensor([y])) for y in range(4)]
            for c in range(3):
                ref = 2.0 * (s[c] - s[3])[0].numpy()
                np.testing.assert_allclose(g[i, c], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert np.abs(g).max() > 0
    desc = src.describe()
    assert desc["t"] == 20 and desc["pixel_chain_rule"] == 2.0 and desc["alphabar_t"] == pytest.approx(ab)
    assert desc["model"]["checkpoint"] == str(ckpt) and desc["seed"] == 5


def test_sbg_bytes_do_not_depend_on_batching(setup):
    split, ckpt = setup
    src = build_source("sbg", {"t": 25, "forward_batch": 4}, split, checkpoint=ckpt)
    x, y, idx = split.as_float(), split.labels, np.arange(len(split), dtype=np.int64)
    runs = [np.concatenate([src.compute(x[s : s + b], y[s : s + b], idx[s : s + b]) for s in range(0, len(x), b)])
            for b in (12, 5, 1)]
    assert runs[0].tobytes() == runs[1].tobytes() == runs[2].tobytes()
    # Reordering samples reorders gradients and nothing else: noise follows the dataset index.
    perm = np.array([11, 2, 9, 4])
    assert src.compute(x[perm], y[perm], idx[perm]).tobytes() == runs[0][perm].tobytes()


def test_noise_is_fixed_by_seed_and_index():
    a = sample_noise(0, 17, (1, 8, 8))
    assert torch.equal(a, sample_noise(0, 17, (1, 8, 8)))
    assert not torch.equal(a, sample_noise(0, 18, (1, 8, 8)))
    assert not torch.equal(a, sample_noise(1, 17, (1, 8, 8)))


def test_sbg_bad_inputs(setup, tmp_path):
    split, ckpt = setup
    with pytest.raises(SourceError, match=r"t=50 is outside"):
        build_source("sbg", {"t": 50}, split, checkpoint=ckpt)
    with pytest.raises(SourceError, match="needs checkpoint"):
        build_source("sbg", {"t": 5}, split)
    other = tiny_images(n=12, classes=4, shape=(1, 8, 8))
    with pytest.raises(SourceError, match="expected C \\+ 1 = 5"):
        build_source("sbg", {"t": 5}, other, checkpoint=ckpt)
    shifted = tiny_images(n=12, classes=3, shape=(1, 8, 8), seed=9)
    with pytest.raises(SourceError, match="trained on dataset"):
        build_source("sbg", {"t": 5}, shifted, checkpoint=ckpt)


def test_sbg_k_of_c_computes_only_the_asked_classes(setup):
    """K-of-C distillation: K + 1 model rows per image (not C + 1), the same gradients as the full compute."""
    from pagstore.classes import choose_classes

    split, ckpt = setup
    src = build_source("sbg", {"t": 20, "forward_batch": 2}, split, seed=5, checkpoint=ckpt)
    idx = np.arange(5, dtype=np.int64)
    x, y = split.as_float(idx), split.labels[idx]
    full = src.compute(x, y, idx)
    rows = []
    inner = src.eps_fn
    src.eps_fn = lambda x_t, t, lab: (rows.append(lab.clone()), inner(x_t, t, lab))[1]
    classes = choose_classes(y, idx, 3, 2, seed=1)
    part = src.compute(x, y, idx, classes)
    src.eps_fn = inner
    assert part.shape == (5, 2, 1, 8, 8)
    labels_seen = torch.cat(rows).view(-1, 3)  # 3 forwards of 2 images (one padded) x (K + 1 = 3) rows
    assert labels_seen.shape[0] == 6 and (labels_seen[:5, :2].numpy() == classes).all() and (labels_seen[:, 2] == 3).all()
    want = np.take_along_axis(full, classes[:, :, None, None, None], axis=1)
    np.testing.assert_allclose(part, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
