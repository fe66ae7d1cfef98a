"""use_kl=True selects the KL rescaled by the number of steps, as openai/improved-diffusion does."""

from __future__ import annotations

import torch

from pagstore.improved_diffusion import create_model_and_diffusion
from pagstore.improved_diffusion.script_util import create_gaussian_diffusion


def test_use_kl_is_the_rescaled_kl_whatever_rescale_learned_sigmas(tiny_config):
    torch.manual_seed(0)
    model, _ = create_model_and_diffusion(**tiny_config())
    torch.nn.init.normal_(model.out[2].weight, std=0.1)
    x0, t, y = torch.rand(3, 1, 8, 8) * 2 - 1, torch.tensor([0, 7, 39]), torch.tensor([0, 1, 2])
    noise = torch.randn_like(x0)
    kl = create_gaussian_diffusion(steps=40, learn_sigma=True, noise_schedule="cosine", use_kl=True,
                                   rescale_learned_sigmas=False)
    assert kl.loss_type == "rescaled_kl"
    got = kl.training_losses(model, x0, t, y, noise=noise)["loss"]
    plain = create_gaussian_diffusion(steps=40, learn_sigma=True, noise_schedule="cosine")
    plain.loss_type = "kl"  # the per-step KL the old code picked
    torch.testing.assert_close(got, 40 * plain.training_losses(model, x0, t, y, noise=noise)["loss"])
