"""The diffusion process: schedules, respacing, losses and both samplers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pagstore.improved_diffusion import create_model_and_diffusion, get_named_beta_schedule, space_timesteps
from pagstore.improved_diffusion.script_util import create_gaussian_diffusion


def test_cosine_schedule_matches_the_formula_and_is_clipped():
    T = 100
    betas = get_named_beta_schedule("cosine", T)
    ab = np.cumprod(1 - betas)
    f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    expected = np.array([f(t + 1) / f(0) for t in range(T - 1)])
    np.testing.assert_allclose(ab[:-1], expected, rtol=1e-10)
    assert betas.max() == pytest.approx(0.999) and betas[-1] == pytest.approx(0.999)


def test_linear_schedule_scales_with_T():
    betas = get_named_beta_schedule("linear", 500)
    assert betas[0] == pytest.approx(0.0002) and betas[-1] == pytest.approx(0.04)
    with pytest.raises(ValueError, match="unknown noise_schedule 'quadratic'"):
        get_named_beta_schedule("quadratic", 10)


def test_space_timesteps():
    assert space_timesteps(1000, "ddim50") == set(range(0, 1000, 20))
    assert space_timesteps(300, "10,15,20") == (
        {round(i * 99 / 9) for i in range(10)}
        | {100 + round(i * 99 / 14) for i in range(15)}
        | {200 + round(i * 99 / 19) for i in range(20)}
    )
    assert space_timesteps(10, [10]) == set(range(10))
    with pytest.raises(ValueError, match="cannot take 20 steps"):
        space_timesteps(10, "20")
    with pytest.raises(ValueError, match="ddim"):
        space_timesteps(100, "ddimx")


def test_respaced_process_keeps_alphabar_and_maps_timesteps():
    base = create_gaussian_diffusion(steps=1000, noise_schedule="cosine", rescale_timesteps=True)
    spaced = create_gaussian_diffusion(steps=1000, noise_schedule="cosine", rescale_timesteps=True,
                                       timestep_respacing="ddim50")
    assert spaced.num_timesteps == 50
    np.testing.assert_allclose(spaced.alphas_cumprod, base.alphas_cumprod[::20], rtol=1e-12)
    t = torch.tensor([0, 1, 49])
    torch.testing.assert_close(spaced.model_timesteps(t), torch.tensor([0.0, 20.0, 980.0]))
    torch.testing.assert_close(base.model_timesteps(torch.tensor([500])), torch.tensor([500.0]))
    small = create_gaussian_diffusion(steps=4000, rescale_timesteps=True)
    torch.testing.assert_close(small.model_timesteps(torch.tensor([2000])), torch.tensor([500.0]))


def test_hybrid_loss_terms_and_vb_rescaling(tiny_config):
    torch.manual_seed(0)
    model, diffusion = create_model_and_diffusion(**tiny_config())
    torch.nn.init.normal_(model.out[2].weight, std=0.1)  # a non-trivial output
    x0, t, y = torch.rand(4, 1, 8, 8) * 2 - 1, torch.tensor([0, 5, 20, 39]), torch.tensor([0, 1, 2, 0])
    noise = torch.randn_like(x0)
    terms = diffusion.training_losses(model, x0, t, y, noise=noise)
    assert set(terms) == {"loss", "mse", "vb"} and terms["loss"].shape == (4,)
    torch.testing.assert_close(terms["loss"], terms["mse"] + terms["vb"])
    x_t = diffusion.q_sample(x0, t, noise)
    eps = model(x_t, diffusion.model_timesteps(t), y)[:, :1]
    torch.testing.assert_close(terms["mse"], ((noise - eps) ** 2).mean(dim=(1, 2, 3)))
    _, plain = create_model_and_diffusion(**tiny_config(rescale_learned_sigmas=False))
    unscaled = plain.training_losses(model, x0, t, y, noise=noise)["vb"]
    torch.testing.assert_close(terms["vb"], unscaled * 40 / 1000)


def test_vb_trains_only_the_variance_channels(tiny_config):
    torch.manual_seed(0)
    model, diffusion = create_model_and_diffusion(**tiny_config())
    torch.nn.init.normal_(model.out[2].weight, std=0.1)
    x0 = torch.rand(2, 1, 8, 8) * 2 - 1
    terms = diffusion.training_losses(model, x0, torch.tensor([3, 30]), torch.tensor([0, 1]))
    terms["vb"].sum().backward()
    grad = model.out[2].weight.grad
    assert grad[0].abs().sum() == 0 and grad[1].abs().sum() > 0  # channel 0 = eps, channel 1 = variance


def test_learned_range_interpolates_between_posterior_and_beta(tiny_config):
    _, diffusion = create_model_and_diffusion(**tiny_config())
    x_t, t = torch.zeros(2, 1, 8, 8), torch.tensor([10, 10])
    out = torch.cat([torch.zeros(2, 1, 8, 8), torch.tensor([-1.0, 1.0]).reshape(2, 1, 1, 1).expand(2, 1, 8, 8)], 1)
    dist = diffusion.output_to_distribution(out, x_t, t)
    lo = diffusion.posterior_log_variance_clipped[10]
    assert dist["log_variance"][0, 0, 0, 0].item() == pytest.approx(lo, rel=1e-5)
    assert dist["log_variance"][1, 0, 0, 0].item() == pytest.approx(math.log(diffusion.betas[10]), rel=1e-5)


@pytest.mark.parametrize("sampler", ["ddim", "ancestral"])
def test_sampling_shapes_and_range(tiny_config, sampler):
    model, diffusion = create_model_and_diffusion(**tiny_config(timestep_respacing="10"))
    loop = diffusion.ddim_sample_loop if sampler == "ddim" else diffusion.p_sample_loop
    g = torch.Generator().manual_seed(0)
    x = loop(model, (3, 1, 8, 8), torch.tensor([0, 1, 2]), generator=g)
    assert x.shape == (3, 1, 8, 8) and x.isfinite().all()
    again = loop(model, (3, 1, 8, 8), torch.tensor([0, 1, 2]), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, again)


def test_ddim_with_exact_eps_recovers_the_data_point():
    """With the true noise prediction for a single data point x0, deterministic DDIM lands on x0."""
    diffusion = create_gaussian_diffusion(steps=100, noise_schedule="cosine", timestep_respacing="ddim20")
    x0 = torch.rand(1, 1, 4, 4) * 1.6 - 0.8
    ab = torch.from_numpy(diffusion.alphas_cumprod).float()

    def oracle(x_t, _ts, _y):
        t = int(round(_ts[0].item() / 5))  # model timesteps are base steps 0, 5, ..., 95
        return (x_t - ab[t].sqrt() * x0) / (1 - ab[t]).sqrt()

    out = diffusion.ddim_sample_loop(oracle, (1, 1, 4, 4), None, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)
