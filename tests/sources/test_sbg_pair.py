"""SBG from a pair: a class-conditional model and a separate unconditional one, each with its own schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pagstore.config import ConfigError
from pagstore.improved_diffusion import create_model_and_diffusion
from pagstore.improved_diffusion.checkpoint import load_checkpoint, save_checkpoint
from pagstore.improved_diffusion.score import predict_eps
from pagstore.interop.diffusion_import import import_diffusion
from pagstore.sources import build_source
from pagstore.sources.sbg import sample_noise
from tests.sources.sources_fixtures import TINY_CONFIG, tiny_images

UNCOND_FLAGS = ["--image_size", "8", "--in_channels", "1", "--num_channels", "32", "--num_res_blocks", "1",
                "--channel_mult", "1,2", "--attention_resolutions", "4", "--num_heads", "2", "--learn_sigma", "True",
                "--diffusion_steps", "80", "--noise_schedule", "linear"]


@pytest.fixture
def pair(tmp_path):
    split = tiny_images(n=12, classes=3, shape=(1, 8, 8))
    torch.manual_seed(0)
    config = {**TINY_CONFIG, "num_classes": 3}  # C labels, no "no class" label
    cond, _ = create_model_and_diffusion(**config)
    with torch.no_grad():
        for p in cond.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_checkpoint(tmp_path / "cond.pt", cond, cond.state_dict(), None, step=0, config=config,
                    dataset_fingerprint=split.fingerprint())
    from pagstore.interop.diffusion_import import parse_flags
    uncond, _ = create_model_and_diffusion(**parse_flags(UNCOND_FLAGS)[0])
    with torch.no_grad():
        for p in uncond.parameters():
            p.add_(0.05 * torch.randn_like(p))
    torch.save(uncond.state_dict(), tmp_path / "uncond_sd.pt")  # a bare original-style state_dict
    import_diffusion(tmp_path / "uncond_sd.pt", tmp_path / "uncond.pt", UNCOND_FLAGS)
    return split, tmp_path / "cond.pt", tmp_path / "uncond.pt"


def _reference(split, cond_path, uncond_path, t_c, ab_c, t_u, ab_u, idx):
    cm, cd, _ = load_checkpoint(cond_path)
    um, ud, _ = load_checkpoint(uncond_path)
    x0 = torch.from_numpy(split.images[idx]).float() / 255 * 2 - 1
    noise = torch.stack([sample_noise(0, int(i), (1, 8, 8)) for i in idx])
    out = []
    with torch.no_grad():
        for j in range(len(idx)):
            x_c = np.sqrt(ab_c) * x0[j:j + 1] + np.sqrt(1 - ab_c) * noise[j:j + 1]
            x_u = np.sqrt(ab_u) * x0[j:j + 1] + np.sqrt(1 - ab_u) * noise[j:j + 1]
            s_u = -predict_eps(um, ud, x_u.float(), t_u, None) / np.sqrt(1 - ab_u)
            s_c = torch.cat([-predict_eps(cm, cd, x_c.float(), t_c, torch.tensor([y])) / np.sqrt(1 - ab_c)
                             for y in range(3)])
            out.append(2 * (s_c - s_u))
    return torch.stack(out)


def test_pair_with_a_timestep_per_model_matches_the_per_model_reference(pair):
    split, cond, uncond = pair
    src = build_source("sbg", {"t": 20, "t_uncond": 30, "uncond_checkpoint": str(uncond), "forward_batch": 2},
                       split, checkpoint=cond)
    idx = np.array([0, 3, 7])
    g = src.compute(torch.from_numpy(split.images[idx]).float() / 255, torch.from_numpy(split.labels[idx]),
                    torch.from_numpy(idx))
    ab_c = load_checkpoint(cond)[1].alphas_cumprod[20]
    ab_u = load_checkpoint(uncond)[1].alphas_cumprod[30]
    torch.testing.assert_close(g, _reference(split, cond, uncond, 20, ab_c, 30, ab_u, idx), rtol=1e-4, atol=1e-4)
    d = src.describe()
    assert d["pair"] and d["model"]["checkpoint"] == str(cond) and d["uncond_model"]["checkpoint"] == str(uncond)
    assert d["uncond_model"]["imported_from"]["file"] == "uncond_sd.pt" and d["num_timesteps_uncond"] == 80


def test_pair_with_one_shared_noise_level_picks_each_models_nearest_step(pair):
    split, cond, uncond = pair
    src = build_source("sbg", {"t": None, "alphabar": 0.5, "uncond_checkpoint": str(uncond)}, split, checkpoint=cond)
    ab_c, ab_u = load_checkpoint(cond)[1].alphas_cumprod, load_checkpoint(uncond)[1].alphas_cumprod
    assert src.t == int(np.argmin(abs(ab_c - 0.5))) and src.t_uncond == int(np.argmin(abs(ab_u - 0.5)))
    assert src.t != src.t_uncond  # the schedules differ: 50-step cosine vs 80-step linear
    idx = np.array([1, 2])
    g = src.compute(torch.from_numpy(split.images[idx]).float() / 255, torch.from_numpy(split.labels[idx]),
                    torch.from_numpy(idx))
    ref = _reference(split, cond, uncond, src.t, 0.5, src.t_uncond, 0.5, idx)  # one x_t at alphabar 0.5
    torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-4)


def test_pair_settings_are_checked(pair):
    split, cond, uncond = pair
    with pytest.raises(ConfigError, match="with uncond_checkpoint give t_uncond too"):
        build_source("sbg", {"t": 20, "uncond_checkpoint": str(uncond)}, split, checkpoint=cond)
    with pytest.raises(ConfigError, match="exactly one of t .* and alphabar"):
        build_source("sbg", {"t": 20, "alphabar": 0.4}, split, checkpoint=cond)
    from pagstore.sources import SourceError
    with pytest.raises(SourceError, match="has 3 labels, expected C \\+ 1 = 4"):
        build_source("sbg", {"t": 20}, split, checkpoint=cond)  # alone, a model without "no class" cannot do SBG
