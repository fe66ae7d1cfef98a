"""Factories with the original's flag names: ``model_and_diffusion_defaults`` and ``create_model_and_diffusion``.

Differences from openai/improved-diffusion, on purpose: ``num_classes`` comes from the caller (the dataset's
C + 1, label C meaning "no class") instead of a hard-coded 1000; ``in_channels`` is a flag (digits are
1-channel); ``channel_mult`` may be given for image sizes the original does not list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pagstore.improved_diffusion.gaussian_diffusion import get_named_beta_schedule
from pagstore.improved_diffusion.respace import SpacedDiffusion, space_timesteps
from pagstore.improved_diffusion.unet import UNetModel

CHANNEL_MULT_BY_SIZE: dict[int, tuple[int, ...]] = {
    256: (1, 1, 2, 2, 4, 4),
    64: (1, 2, 3, 4),
    32: (1, 2, 2, 2),
}


def model_and_diffusion_defaults() -> dict[str, Any]:
    """Default flags of the original (64x64, 128 channels, linear schedule, ...) plus this project's extras."""
    return dict(
        image_size=64,
        num_channels=128,
        num_res_blocks=2,
        num_heads=4,
        num_heads_upsample=-1,
        attention_resolutions="16,8",
        dropout=0.0,
        learn_sigma=False,
        sigma_small=False,
        class_cond=False,
        diffusion_steps=1000,
        noise_schedule="linear",
        timestep_respacing="",
        use_kl=False,
        predict_xstart=False,
        rescale_timesteps=True,
        rescale_learned_sigmas=True,
        use_checkpoint=False,
        use_scale_shift_norm=True,
        num_classes=None,
        in_channels=3,
        channel_mult=None,
    )


def create_model_and_diffusion(**kwargs: Any) -> tuple[UNetModel, SpacedDiffusion]:
    """Build (UNetModel, diffusion) from flags; every key of ``model_and_diffusion_defaults()`` is accepted.

    Missing keys take their defaults; unknown keys raise TypeError naming them.
    """
    defaults = model_and_diffusion_defaults()
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise TypeError(f"unknown model/diffusion option(s) {unknown}; known: {sorted(defaults)}")
    cfg = {**defaults, **kwargs}
    model = create_model(
        image_size=cfg["image_size"], num_channels=cfg["num_channels"], num_res_blocks=cfg["num_res_blocks"],
        learn_sigma=cfg["learn_sigma"], class_cond=cfg["class_cond"], use_checkpoint=cfg["use_checkpoint"],
        attention_resolutions=cfg["attention_resolutions"], num_heads=cfg["num_heads"],
        num_heads_upsample=cfg["num_heads_upsample"], use_scale_shift_norm=cfg["use_scale_shift_norm"],
        dropout=cfg["dropout"], num_classes=cfg["num_classes"], in_channels=cfg["in_channels"],
        channel_mult=cfg["channel_mult"],
    )
    diffusion = create_gaussian_diffusion(
        steps=cfg["diffusion_steps"], learn_sigma=cfg["learn_sigma"], sigma_small=cfg["sigma_small"],
        noise_schedule=cfg["noise_schedule"], use_kl=cfg["use_kl"], predict_xstart=cfg["predict_xstart"],
        rescale_timesteps=cfg["rescale_timesteps"], rescale_learned_sigmas=cfg["rescale_learned_sigmas"],
        timestep_respacing=cfg["timestep_respacing"],
    )
    return model, diffusion


def resolve_channel_mult(image_size: int, channel_mult: Sequence[int] | None) -> tuple[int, ...]:
    """The per-level channel multipliers: the override if given, else the original's choice for the size."""
    if channel_mult is not None:
        mult = tuple(int(m) for m in channel_mult)
        if not mult or min(mult) < 1:
            raise ValueError(f"channel_mult must be a non-empty list of positive integers, got {channel_mult!r}")
        if image_size % 2 ** (len(mult) - 1):
            raise ValueError(f"image_size {image_size} cannot be halved {len(mult) - 1} times "
                             f"(channel_mult {mult} has {len(mult)} levels)")
        return mult
    if image_size not in CHANNEL_MULT_BY_SIZE:
        raise ValueError(f"no default channel_mult for image_size {image_size} (known sizes: "
                         f"{sorted(CHANNEL_MULT_BY_SIZE)}); pass channel_mult, e.g. [1, 2, 2] for 16x16")
    return CHANNEL_MULT_BY_SIZE[image_size]


def create_model(*, image_size: int, num_channels: int, num_res_blocks: int, learn_sigma: bool, class_cond: bool,
                 use_checkpoint: bool, attention_resolutions: str, num_heads: int, num_heads_upsample: int,
                 use_scale_shift_norm: bool, dropout: float, num_classes: int | None = None, in_channels: int = 3,
                 channel_mult: Sequence[int] | None = None) -> UNetModel:
    """The UNet for ``image_size`` images; ``attention_resolutions`` are feature-map sizes, e.g. "16,8"."""
    mult = resolve_channel_mult(image_size, channel_mult)
    if class_cond and (num_classes is None or num_classes < 1):
        raise ValueError(f"class_cond=True needs num_classes (the dataset's C + 1), got {num_classes!r}")
    try:
        resolutions = [int(r) for r in str(attention_resolutions).split(",") if r.strip()]
    except ValueError:
        raise ValueError("attention_resolutions must be comma-separated integers, "
                         f"got {attention_resolutions!r}") from None
    bad = [r for r in resolutions if r < 1 or image_size % r]
    if bad:
        raise ValueError(f"attention_resolutions {bad} do not divide image_size {image_size}")
    return UNetModel(
        in_channels=in_channels,
        model_channels=num_channels,
        out_channels=in_channels * (2 if learn_sigma else 1),
        num_res_blocks=num_res_blocks,
        attention_resolutions=tuple(image_size // r for r in resolutions),
        dropout=dropout,
        channel_mult=mult,
        num_classes=num_classes if class_cond else None,
        use_checkpoint=use_checkpoint,
        num_heads=num_heads,
        num_heads_upsample=num_heads_upsample,
        use_scale_shift_norm=use_scale_shift_norm,
    )


def create_gaussian_diffusion(*, steps: int = 1000, learn_sigma: bool = False, sigma_small: bool = False,
                              noise_schedule: str = "linear", use_kl: bool = False, predict_xstart: bool = False,
                              rescale_timesteps: bool = False, rescale_learned_sigmas: bool = False,
                              timestep_respacing: str = "") -> SpacedDiffusion:
    """The diffusion process for the flags; ``timestep_respacing`` "" keeps all ``steps``."""
    betas = get_named_beta_schedule(noise_schedule, steps)
    # As the original: use_kl always means the KL scaled by the number of steps (rescale_learned_sigmas
    # only picks between the MSE variants); unscaled "kl" is T times smaller and trains nothing.
    if use_kl:
        loss_type = "rescaled_kl"
    else:
        loss_type = "rescaled_mse" if rescale_learned_sigmas else "mse"
    return SpacedDiffusion(
        use_timesteps=space_timesteps(steps, timestep_respacing or [steps]),
        betas=betas,
        model_mean_type="start_x" if predict_xstart else "epsilon",
        model_var_type="learned_range" if learn_sigma else ("fixed_small" if sigma_small else "fixed_large"),
        loss_type=loss_type,
        rescale_timesteps=rescale_timesteps,
    )
