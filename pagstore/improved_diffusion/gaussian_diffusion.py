"""The Gaussian diffusion process of improved DDPM: schedules, training losses, ancestral and DDIM sampling.

The process never owns a network: every method that needs one takes ``model`` (called as
``model(x_t, model_timesteps(t), y)``), so the same UNet serves training, respaced sampling and scoring.
Schedule arrays are numpy float64 (``alphas_cumprod`` etc., shape (T,)), as in the original.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from pagstore.improved_diffusion.losses import discretized_gaussian_log_likelihood, normal_kl

MeanType = Literal["epsilon", "start_x"]
VarType = Literal["fixed_large", "fixed_small", "learned", "learned_range"]
LossType = Literal["mse", "rescaled_mse", "kl", "rescaled_kl"]
Model = Callable[..., torch.Tensor]


def get_named_beta_schedule(name: str, num_diffusion_timesteps: int) -> np.ndarray:
    """Betas (T,) float64 for the "linear" (DDPM, scaled to T) or "cosine" (improved DDPM) schedule."""
    if num_diffusion_timesteps < 1:
        raise ValueError(f"diffusion_steps must be >= 1, got {num_diffusion_timesteps}")
    if name == "linear":
        scale = 1000 / num_diffusion_timesteps  # keeps the total noise comparable for any T
        return np.linspace(scale * 0.0001, scale * 0.02, num_diffusion_timesteps, dtype=np.float64)
    if name == "cosine":
        return betas_for_alpha_bar(
            num_diffusion_timesteps, lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        )
    raise ValueError(f"unknown noise_schedule {name!r}; expected 'linear' or 'cosine'")


def betas_for_alpha_bar(num_diffusion_timesteps: int, alpha_bar: Callable[[float], float],
                        max_beta: float = 0.999) -> np.ndarray:
    """Discretise a continuous alphabar(t), t in [0, 1], into betas clipped at ``max_beta`` (avoids t=T blow-up)."""
    t = np.arange(num_diffusion_timesteps + 1) / num_diffusion_timesteps
    ab = np.array([alpha_bar(float(s)) for s in t], dtype=np.float64)
    return np.minimum(1.0 - ab[1:] / ab[:-1], max_beta)


def _extract(arr: np.ndarray, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Gather arr[t] as float32 and shape it (B, 1, ..., 1) to broadcast against a (B, ...) tensor."""
    out = torch.from_numpy(arr).to(t.device)[t].float()
    return out.reshape(-1, *([1] * (ndim - 1)))


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over all but the batch dimension: (B, ...) -> (B,)."""
    return x.mean(dim=tuple(range(1, x.ndim)))


class GaussianDiffusion:
    """Forward process, model-output interpretation, losses and samplers for one beta schedule."""

    def __init__(self, *, betas: np.ndarray, model_mean_type: MeanType, model_var_type: VarType,
                 loss_type: LossType, rescale_timesteps: bool = False):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or not ((betas > 0) & (betas <= 1)).all():
            raise ValueError("betas must be a 1-D array with values in (0, 1]")
        self.model_mean_type, self.model_var_type = model_mean_type, model_var_type
        self.loss_type, self.rescale_timesteps = loss_type, rescale_timesteps
        self.betas = betas
        self.num_timesteps = int(betas.shape[0])

        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.alphas_cumprod_next = np.append(self.alphas_cumprod[1:], 0.0)
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1)
        # q(x_{t-1} | x_t, x_0)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # The posterior variance is 0 at t=0; borrow t=1's value so the log stays finite.
        self.posterior_log_variance_clipped = np.log(
            np.append(self.posterior_variance[1:2], self.posterior_variance[1:])
            if self.num_timesteps > 1 else np.maximum(self.posterior_variance, 1e-20)
        )
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)

    # ---- timesteps as the network sees them -------------------------------------------------------------
    def model_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """Map step indices (B,) of this process to the network's timestep input (rescaled to [0, 1000))."""
        return t.float() * (1000.0 / self.num_timesteps) if self.rescale_timesteps else t

    # ---- forward process --------------------------------------------------------------------------------
    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Sample x_t ~ q(x_t | x_0): sqrt(ab_t) x_0 + sqrt(1 - ab_t) noise. Shapes (B, ...)."""
        noise = torch.randn_like(x_start) if noise is None else noise
        return (_extract(self.sqrt_alphas_cumprod, t, x_start.ndim) * x_start
                + _extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.ndim) * noise)

    def q_posterior_mean_variance(self, x_start: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
                                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
        n = x_t.ndim
        mean = _extract(self.posterior_mean_coef1, t, n) * x_start + _extract(self.posterior_mean_coef2, t, n) * x_t
        return mean, _extract(self.posterior_variance, t, n), _extract(self.posterior_log_variance_clipped, t, n)

    # ---- reverse process --------------------------------------------------------------------------------
    def split_output(self, output: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Split the network output into (mean part (B, ch, ...), variance values or None)."""
        if self.model_var_type in ("learned", "learned_range"):
            if output.shape[1] != 2 * channels:
                raise ValueError(f"a learned-variance model must output {2 * channels} channels, "
                                 f"got {output.shape[1]}")
            return output[:, :channels], output[:, channels:]
        if output.shape[1] != channels:
            raise ValueError(f"model must output {channels} channels, got {output.shape[1]}")
        return output, None

    def predict_xstart_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        n = x_t.ndim
        return (_extract(self.sqrt_recip_alphas_cumprod, t, n) * x_t
                - _extract(self.sqrt_recipm1_alphas_cumprod, t, n) * eps)

    def predict_eps_from_xstart(self, x_t: torch.Tensor, t: torch.Tensor, pred_xstart: torch.Tensor) -> torch.Tensor:
        n = x_t.ndim
        return ((_extract(self.sqrt_recip_alphas_cumprod, t, n) * x_t - pred_xstart)
                / _extract(self.sqrt_recipm1_alphas_cumprod, t, n))

    def output_to_distribution(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                               clip_denoised: bool = True) -> dict[str, torch.Tensor]:
        """Interpret a network output as p(x_{t-1} | x_t): mean, variance, log_variance, pred_xstart, eps."""
        n = x_t.ndim
        mean_out, var_values = self.split_output(output, x_t.shape[1])
        if self.model_var_type == "learned":
            log_var = var_values
        elif self.model_var_type == "learned_range":
            # The network interpolates (in log space) between the two extreme choices of the variance.
            min_log = _extract(self.posterior_log_variance_clipped, t, n)
            max_log = _extract(np.log(self.betas), t, n)
            frac = (var_values + 1) / 2
            log_var = frac * max_log + (1 - frac) * min_log
        elif self.model_var_type == "fixed_large":
            # beta_t, except at t=0 where the posterior variance is better for the decoder
            log_var = _extract(np.log(np.append(self.posterior_variance[1:2], self.betas[1:])), t, n)
        else:
            log_var = _extract(self.posterior_log_variance_clipped, t, n)
        log_var = log_var.expand_as(x_t) if log_var.shape != x_t.shape else log_var

        if self.model_mean_type == "epsilon":
            pred_xstart = self.predict_xstart_from_eps(x_t, t, mean_out)
        else:
            pred_xstart = mean_out
        if clip_denoised:
            pred_xstart = pred_xstart.clamp(-1, 1)
        eps = self.predict_eps_from_xstart(x_t, t, pred_xstart)
        mean, _, _ = self.q_posterior_mean_variance(pred_xstart, x_t, t)
        return {"mean": mean, "variance": torch.exp(log_var), "log_variance": log_var,
                "pred_xstart": pred_xstart, "eps": eps}

    def p_mean_variance(self, model: Model, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                        clip_denoised: bool = True) -> dict[str, torch.Tensor]:
        """Run the model at step indices ``t`` (B,) and return the p(x_{t-1} | x_t) terms."""
        return self.output_to_distribution(model(x_t, self.model_timesteps(t), y), x_t, t, clip_denoised)

    # ---- losses -----------------------------------------------------------------------------------------
    def vb_terms_bpd(self, output: torch.Tensor, x_start: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
                     ) -> torch.Tensor:
        """Variational-bound term in bits per dim (B,): KL at t > 0, decoder NLL at t = 0."""
        true_mean, _, true_log_var = self.q_posterior_mean_variance(x_start, x_t, t)
        out = self.output_to_distribution(output, x_t, t, clip_denoised=False)
        kl = mean_flat(normal_kl(true_mean, true_log_var, out["mean"], out["log_variance"])) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x_start, means=out["mean"], log_scales=0.5 * out["log_variance"])
        nll = mean_flat(nll) / math.log(2.0)
        return torch.where(t == 0, nll, kl)

    def training_losses(self, model: Model, x_start: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                        noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-sample losses (B,) for x_start (B, ch, H, W) in [-1, 1] at step indices t (B,).

        Returns ``loss`` and, as applicable, ``mse`` and ``vb``. With a learned variance the hybrid objective
        is MSE + vb, where vb sees the mean prediction detached so it trains only the variance.
        """
        noise = torch.randn_like(x_start) if noise is None else noise
        x_t = self.q_sample(x_start, t, noise)
        output = model(x_t, self.model_timesteps(t), y)
        terms: dict[str, torch.Tensor] = {}
        if self.loss_type in ("kl", "rescaled_kl"):
            terms["loss"] = self.vb_terms_bpd(output, x_start, x_t, t)
            if self.loss_type == "rescaled_kl":
                terms["loss"] = terms["loss"] * self.num_timesteps
            return terms
        mean_out, var_values = self.split_output(output, x_start.shape[1])
        target = noise if self.model_mean_type == "epsilon" else x_start
        terms["mse"] = mean_flat((target - mean_out) ** 2)
        terms["loss"] = terms["mse"]
        if var_values is not None:
            frozen = torch.cat([mean_out.detach(), var_values], dim=1)
            vb = self.vb_terms_bpd(frozen, x_start, x_t, t)
            if self.loss_type == "rescaled_mse":
                vb = vb * (self.num_timesteps / 1000.0)  # keeps vb's weight independent of T
            terms["vb"] = vb
            terms["loss"] = terms["mse"] + vb
        return terms

    # ---- sampling ---------------------------------------------------------------------------------------
    def _loop(self, step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], shape: tuple[int, ...],
              noise: torch.Tensor | None, generator: torch.Generator | None, device: torch.device | str,
              progress: bool) -> torch.Tensor:
        # Noise is drawn on the CPU (a CPU generator) and moved: the same samples on every device.
        x = torch.randn(shape, generator=generator).to(device) if noise is None else noise.to(device)
        for i in tqdm(range(self.num_timesteps - 1, -1, -1), desc="sampling", disable=not progress, leave=False):
            t = torch.full((shape[0],), i, dtype=torch.long, device=device)
            z = torch.randn(shape, generator=generator).to(device)
            x = step(x, t, z)
        return x

    @torch.no_grad()
    def p_sample_loop(self, model: Model, shape: tuple[int, ...], y: torch.Tensor | None = None, *,
                      noise: torch.Tensor | None = None, clip_denoised: bool = True,
                      generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                      progress: bool = False) -> torch.Tensor:
        """Ancestral sampling over all steps of this process -> samples (shape) in [-1, 1]."""
        def step(x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            out = self.p_mean_variance(model, x, t, y, clip_denoised)
            nonzero = (t != 0).float().reshape(-1, *([1] * (x.ndim - 1)))  # no noise at the last step
            return out["mean"] + nonzero * torch.exp(0.5 * out["log_variance"]) * z
        return self._loop(step, shape, noise, generator, device, progress)

    @torch.no_grad()
    def ddim_sample_loop(self, model: Model, shape: tuple[int, ...], y: torch.Tensor | None = None, *,
                         noise: torch.Tensor | None = None, clip_denoised: bool = True, eta: float = 0.0,
                         generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                         progress: bool = False) -> torch.Tensor:
        """DDIM sampling (eta=0: deterministic) over all steps of this process -> samples in [-1, 1]."""
        def step(x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            out = self.p_mean_variance(model, x, t, y, clip_denoised)
            n = x.ndim
            ab, ab_prev = _extract(self.alphas_cumprod, t, n), _extract(self.alphas_cumprod_prev, t, n)
            sigma = eta * torch.sqrt((1 - ab_prev) / (1 - ab)) * torch.sqrt(1 - ab / ab_prev)
            mean = out["pred_xstart"] * torch.sqrt(ab_prev) + torch.sqrt(1 - ab_prev - sigma ** 2) * out["eps"]
            nonzero = (t != 0).float().reshape(-1, *([1] * (n - 1)))
            return mean + nonzero * sigma * z
        return self._loop(step, shape, noise, generator, device, progress)
