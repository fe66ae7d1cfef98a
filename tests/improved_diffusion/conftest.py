"""Tiny diffusion configurations shared by the improved_diffusion tests."""

from __future__ import annotations

from typing import Any

import pytest

from pagstore.improved_diffusion import model_and_diffusion_defaults


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """An 8x8, 1-channel, 3-class (C=2 + "no class") model with learned sigmas and 40 diffusion steps."""
    cfg = model_and_diffusion_defaults()
    cfg.update(image_size=8, num_channels=32, num_res_blocks=1, channel_mult=[1, 2], attention_resolutions="4",
               num_heads=2, learn_sigma=True, diffusion_steps=40, noise_schedule="cosine", class_cond=True,
               num_classes=3, in_channels=1)
    cfg.update(overrides)
    return cfg


@pytest.fixture(name="tiny_config")
def tiny_config_fixture():
    """The :func:`tiny_config` factory (tests call it with overrides)."""
    return tiny_config


@pytest.fixture
def tiny() -> dict[str, Any]:
    return tiny_config()
