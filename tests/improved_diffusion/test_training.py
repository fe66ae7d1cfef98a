"""The training loop: learning, determinism, the "no class" label rate, resume, checkpoints and scores."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from pagstore.improved_diffusion.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from pagstore.improved_diffusion.score import predict_eps, score
from pagstore.improved_diffusion.training import (
    TrainSettings,
    _draw_batch,
    drop_labels,
    images_to_model_space,
    train_diffusion,
)

FP = "sha256:test"


def _data(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes of 8x8 images: a bright left half or a bright top half."""
    g = np.random.default_rng(0)
    labels = np.arange(n) % 2
    images = np.zeros((n, 1, 8, 8), np.uint8)
    images[labels == 0, :, :, :4] = 230
    images[labels == 1, :, :4, :] = 230
    images = np.clip(images + g.integers(0, 25, images.shape), 0, 255).astype(np.uint8)
    return images_to_model_space(images), torch.from_numpy(labels).long()


def _settings(**kw) -> TrainSettings:
    base = dict(steps=6, batch_size=8, lr=2e-3, ema_rate=0.9, seed=0, save_every=3, log_every=2)
    return TrainSettings(**{**base, **kw})


def _train(tmp_path, tiny, name="ck.pt", **kw):
    x, y = _data()
    return train_diffusion(x, y, 2, tiny, _settings(**kw), tmp_path / name, FP, log=lambda *_: None)


def _eval_loss(model, diffusion, x, y) -> float:
    g = torch.Generator().manual_seed(123)
    t = torch.randint(0, diffusion.num_timesteps, (x.shape[0] * 4,), generator=g)
    noise = torch.randn((x.shape[0] * 4, *x.shape[1:]), generator=g)
    with torch.no_grad():
        return diffusion.training_losses(model.eval(), x.repeat(4, 1, 1, 1), t, y.repeat(4), noise)["mse"].mean().item()


def test_loss_decreases_on_a_tiny_dataset(tmp_path, tiny):
    x, y = _data()
    before = train_diffusion(x, y, 2, tiny, _settings(steps=0), tmp_path / "a.pt", FP, log=lambda *_: None)
    start = _eval_loss(before.model, before.diffusion, x, y)
    after = _train(tmp_path, tiny, "b.pt", steps=80, lr=3e-3, save_every=1000, log_every=10)
    end = _eval_loss(after.model, after.diffusion, x, y)
    assert end < 0.7 * start, (start, end)
    assert [s for s, _ in after.history] == list(range(10, 81, 10))


def test_same_seed_same_weights_other_seed_other_weights(tmp_path, tiny):
    a, b = _train(tmp_path, tiny, "a.pt"), _train(tmp_path, tiny, "b.pt")
    c = _train(tmp_path, tiny, "c.pt", seed=1)
    for k, v in a.model.state_dict().items():
        torch.testing.assert_close(v, b.model.state_dict()[k], rtol=0, atol=0)
    assert any(not torch.equal(v, c.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def test_unconditional_label_drawn_with_probability_one_over_c():
    labels = torch.arange(4).repeat(2500)  # C = 4 classes
    dropped = drop_labels(labels, 4, 0.25, torch.Generator().manual_seed(0))
    assert set(dropped.unique().tolist()) <= {0, 1, 2, 3, 4}
    kept = dropped != 4
    assert torch.equal(dropped[kept], labels[kept])
    # the training loop's default rate is 1/C: count "no class" labels over many steps' batches
    settings = TrainSettings(steps=1, batch_size=500, lr=1e-3, seed=0)
    x = torch.zeros(20, 1, 2, 2)
    y = torch.arange(4).repeat(5)
    drawn = torch.cat([_draw_batch(x, y, 4, settings, 10, step)[1] for step in range(20)])
    rate = (drawn == 4).float().mean().item()
    sd = math.sqrt(0.25 * 0.75 / drawn.numel())
    assert abs(rate - 0.25) < 4 * sd, rate


def test_t_window_restricts_timesteps(tmp_path, tiny):
    settings = TrainSettings(steps=1, batch_size=400, lr=1e-3, t_window=(10, 12))
    t = _draw_batch(torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long), 2, settings, 40, 0)[2]
    assert set(t.tolist()) == {10, 11, 12}
    with pytest.raises(ValueError, match="t_window"):
        train_diffusion(*_data(), 2, tiny, replace(settings, t_window=(5, 40)), tmp_path / "x.pt", FP)


def test_resume_continues_from_the_saved_step(tmp_path, tiny):
    straight = _train(tmp_path, tiny, "straight.pt", steps=6)
    first = _train(tmp_path, tiny, "resumed.pt", steps=3)
    assert first.step == 3 and read_checkpoint(tmp_path / "resumed.pt")["step"] == 3
    second = _train(tmp_path, tiny, "resumed.pt", steps=6)
    assert second.resumed_from == 3 and second.step == 6
    for k, v in straight.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[k], v)
        torch.testing.assert_close(second.ema_state[k], straight.ema_state[k])
    assert second.history == straight.history
    other = _train(tmp_path, tiny, "resumed.pt", steps=6, lr=1e-3)  # other settings: start afresh
    assert other.resumed_from == 0


def test_a_finished_checkpoint_is_not_resumed_after_the_training_code_changed(tmp_path, tiny, monkeypatch):
    """A rerun with the same code trains no step; once the improved-diffusion code differs (its source
    fingerprint), the finished checkpoint is not taken as this code's result and training starts afresh."""
    import pagstore.improved_diffusion.training as training_mod

    _train(tmp_path, tiny, "done.pt", steps=3)
    again = _train(tmp_path, tiny, "done.pt", steps=3)
    assert again.resumed_from == 3 and again.step == 3
    monkeypatch.setattr(training_mod, "code_fingerprint", lambda parts: "sha256:" + "2" * 64)
    changed = _train(tmp_path, tiny, "done.pt", steps=3)
    assert changed.resumed_from == 0 and changed.step == 3


def test_checkpoint_round_trip_and_score(tmp_path, tiny):
    result = _train(tmp_path, tiny, "ck.pt")
    raw = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert raw["step"] == 6 and raw["dataset_fingerprint"] == FP and raw["num_classes"] == 3
    model, diffusion, meta = load_checkpoint(tmp_path / "ck.pt")
    assert not model.training and meta["config"]["num_classes"] == 3 and meta["step"] == 6
    assert "model" not in meta and "optimizer" not in meta
    for k, v in result.ema_state.items():
        torch.testing.assert_close(model.state_dict()[k], v)
    raw_model, _, _ = load_checkpoint(tmp_path / "ck.pt", ema=False)
    assert any(not torch.equal(v, raw_model.state_dict()[k]) for k, v in model.state_dict().items())

    x_t, y = torch.randn(2, 1, 8, 8), torch.tensor([0, 2])
    with torch.no_grad():
        eps = predict_eps(model, diffusion, x_t, 20, y)
        full = model(x_t, torch.full((2,), 20 * 1000 / 40), y)  # rescaled timesteps, as in training
        s = score(model, diffusion, x_t, torch.tensor([20, 20]), y)
    assert eps.shape == (2, 1, 8, 8)
    torch.testing.assert_close(eps, full[:, :1])
    torch.testing.assert_close(s, -eps / math.sqrt(1 - diffusion.alphas_cumprod[20]))


def test_bad_checkpoint_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="expected format"):
        load_checkpoint(tmp_path / "other.pt")


def test_images_to_model_space_maps_uint8_to_unit_interval_and_resizes():
    images = np.array([0, 255, 51] * 12, np.uint8).reshape(1, 1, 6, 6)
    x = images_to_model_space(images)
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert images_to_model_space(images, image_size=8).shape == (1, 1, 8, 8)
    with pytest.raises(ValueError, match="uint8 images"):
        images_to_model_space(images.astype(np.float32))
